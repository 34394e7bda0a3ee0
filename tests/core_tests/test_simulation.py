"""On the noisy quadratic model the best LR per stage is known: the controller must find it.

The oracle evaluates the NQM's closed-form expected loss after τ steps from each stage's snapshot
over a fine LR grid (the same greedy objective AutoLRS optimizes). Measured over seeds 0-4
(40k-step budget, LR range 1e-3..10, four decades, curvatures 1e-2..1, 20 stages): the chosen LR
is off the oracle's by a factor of 2.3 (geometric mean over all stages), within 2x in 9 of the
10 later stages (τ ≥ 4·τ_min) and within 2.1x in all of them. The misses are the first two
stages, where the chosen LR is 2-6x too large: from
the initial state a large LR wins the first τ' = τ/10 steps, while the slow directions that
decide the loss at τ barely show in a window that short, and a single exponential fitted to it
cannot see them. That short-window bias is a limitation of AutoLRS's forecaster itself (the
reference implementation shares it); with a wider curvature spectrum (1e-3..1) the bias turns
the other way in late stages, where a larger LR first raises the loss and only later wins.
"""

from __future__ import annotations

import math
import statistics

from autolr import Controller, TunerConfig
from autolr.simulate import NoisyQuadratic


def _stage_outcomes(seed: int) -> list[tuple[int, float]]:
    """Per stage: (stage index, LR ratio max(chosen/oracle, oracle/chosen))."""
    cfg = TunerConfig.autolrs(min_lr=1e-3, max_lr=10.0, total_steps=40_000, seed=seed)
    ctl = Controller(cfg)
    model = NoisyQuadratic(seed=seed, h_min=1e-2)
    out = []
    ins = ctl.start()
    while not ins.finished:
        if ins.kind == "train" and ins.restore:
            tau = ctl.stages[-1].tau
            start = model.snapshot_m
            grid_best = model.best_lr(tau, cfg.min_lr, cfg.max_lr, m=start)
            out.append((ctl.stages[-1].stage, max(ins.lr / grid_best, grid_best / ins.lr)))
        ins = ctl.report(model.follow(ins))
    return out


def test_chosen_lr_is_near_the_oracle_in_most_stages() -> None:
    outcomes = [o for seed in range(5) for o in _stage_outcomes(seed)]
    typical = math.exp(statistics.fmean(math.log(r) for _, r in outcomes))
    late = [r for stage, r in outcomes if stage >= 2]
    late_within = sum(r <= 2.0 for r in late) / len(late)
    print(
        f"{len(outcomes)} stages: LR off the oracle's by {typical:.2f}x (geometric mean); "
        f"stages >= 2: within 2x in {late_within:.0%}, worst {max(late):.2f}x"
    )
    assert len(outcomes) >= 20
    assert typical <= 2.6  # measured 2.29 (2.35 before probes that rise 10 noise levels blew up)
    assert late_within >= 0.9
    assert max(late) <= 2.5  # measured 2.06 (2.42)
