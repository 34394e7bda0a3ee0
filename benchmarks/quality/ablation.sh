#!/usr/bin/env bash
# Reruns the whole quality benchmark: the baselines, autolr's defaults, the paper's method
# (TunerConfig.autolrs()) and one leave-one-out ablation per "beyond AutoLRS" option.
# Finished runs are cached in benchmarks/results/quality_cache.json, so a rerun only does what is new.
set -euo pipefail
cd "$(dirname "$0")/../.."
exec .venv/bin/python benchmarks/quality/run.py --seeds 5 --jobs 2 \
  --methods constant,cosine,linear,step,schedulefree,autolr \
  --autolr-variant "autolrs:warm_start=False,adaptive_probes=False,reuse_best_probe=False,anneal_fraction=0,prefer_larger_lr=0,forecast_noise=False,damp_moves=False,probe_budget=null,probe_fraction=0.1" \
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
