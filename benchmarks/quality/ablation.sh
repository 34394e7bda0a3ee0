#!/usr/bin/env bash
# Reruns the whole quality benchmark on all ten tasks: the baselines (cosine, linear decay,
# Schedule-Free; read from benchmarks/results/quality_baselines.json), autolr's defaults, the
# paper's method (autolrs = TunerConfig.autolrs(), built into run.py) and one leave-one-out
# ablation per "beyond AutoLRS" option. Finished runs are cached in
# benchmarks/results/quality_cache.json, so a rerun only does what is new. The ablation variants
# cost 9 x 10 tasks x 5 seeds autolr runs on top of the benchmark itself; pass --split tuning to
# ablate on the tuning tasks only (the held-out tasks are for measuring, not for choosing).
set -euo pipefail
cd "$(dirname "$0")/../.."
exec .venv/bin/python benchmarks/quality/run.py --seeds 5 --jobs 2 \
  --methods cosine,linear,schedulefree,autolr,autolrs \
  --autolr-variant "no-probe-budget:probe_budget=null" \
  --autolr-variant "no-warm-start:warm_start=False" \
  --autolr-variant "no-adaptive:adaptive_probes=False" \
  --autolr-variant "no-reuse:reuse_best_probe=False" \
  --autolr-variant "anneal-0.3:anneal_fraction=0.3" \
  --autolr-variant "no-anneal:anneal_fraction=0" \
  --autolr-variant "no-prefer-larger-lr:prefer_larger_lr=0" \
  --autolr-variant "no-forecast-noise:forecast_noise=False" \
  --autolr-variant "no-damp-moves:damp_moves=False" \
  "$@"
