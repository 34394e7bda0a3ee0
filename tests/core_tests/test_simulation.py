"""On the noisy quadratic model the best LR per stage is known: the controller must find it.

Figure (seeds 0-4, 40k-step budget, LR range 1e-3..10, four decades): the chosen LR is within a
factor of 2 of the oracle's greedy choice in at least 70% of stages; see the assertion.
"""

from __future__ import annotations

from autolr import Controller, TunerConfig
from autolr.simulate import NoisyQuadratic


def _ratios(seed: int) -> list[float]:
    cfg = TunerConfig(min_lr=1e-3, max_lr=10.0, total_steps=40_000, seed=seed)
    ctl = Controller(cfg)
    model = NoisyQuadratic(seed=seed)
    ratios = []
    ins = ctl.start()
    while not ins.finished:
        if ins.kind == "train" and ins.restore:
            here = model.m
            model.m = model.snapshot_m.copy()
            tau = ctl.stages[-1].tau
            oracle = model.best_lr(tau, cfg.min_lr, cfg.max_lr)
            model.m = here
            ratios.append(max(ins.lr / oracle, oracle / ins.lr))
        ins = ctl.report(model.follow(ins))
    return ratios


def test_chosen_lr_is_near_the_oracle_in_most_stages() -> None:
    ratios = [r for seed in range(5) for r in _ratios(seed)]
    within = sum(r <= 2.0 for r in ratios) / len(ratios)
    print(f"stages within 2x of the oracle: {within:.0%} of {len(ratios)}; ratios={ratios}")
    assert len(ratios) >= 20
    assert within >= 0.7
