"""The noisy quadratic model (NQM) in closed form: autolr's decisions against ground truth.

    python benchmarks/nqm.py                   # 3 noise levels x 5 seeds, prints the table
    python benchmarks/nqm.py --noise 10 --seeds 1 --set kappa=1

Zhang et al. (NeurIPS 2019): curvatures h_i, SGD on ½Σh_i θ_i² with gradient noise of
covariance H/B. For any LR sequence the per-dimension second moment follows
s_i ← (1−ηh_i)² s_i + η² h_i / B, so the expected loss ½Σh_i s_i of every schedule is exact.

The controller runs against a *sampled* NQM (it sees the loss of a stochastic trajectory), while the same snapshot/restore operations are applied to the exact second moments:
the reported final loss is the exact expected loss of the schedule autolr chose, probes and
restores included. Baseline: a 7-point grid of cosine schedules (5% warmup), exact.
"Best LR for the remaining budget" of a stage: the peak of the plan autolr follows from there
(constant, then its final linear decay to ~0) that minimizes the exact final loss from the
stage's starting second moments, by a fine 1-D grid.
"""

from __future__ import annotations

import argparse
import math
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from autolr import Controller, TunerConfig
from autolr.protocol import Report

DIM = 100
STEPS = 3000
#: Noise levels (batch sizes B) of the acceptance check: low, medium and high noise.
BATCHES = (1.0, 8.0, 64.0)
MIN_LR, MAX_LR = 1e-3, 3.0
VERBOSE = False


@dataclass(frozen=True)
class NQM:
    h: np.ndarray  # curvatures
    batch: float

    @classmethod
    def make(cls, batch: float, dim: int = DIM) -> NQM:
        return cls(h=1.0 / np.arange(1, dim + 1, dtype=np.float64), batch=batch)

    def loss(self, s: np.ndarray) -> float:
        return float(0.5 * np.dot(self.h, s))

    def evolve(self, s: np.ndarray, lrs: np.ndarray) -> np.ndarray:
        """Exact second moments after the LR sequence ``lrs`` (diverged: inf)."""
        s = s.copy()
        with np.errstate(over="ignore", invalid="ignore"):
            for lr in lrs:
                s = (1.0 - lr * self.h) ** 2 * s + lr * lr * self.h / self.batch
        return s


def cosine_lrs(peak: float, total: int) -> np.ndarray:
    warm = max(1, math.ceil(0.05 * total))
    t = np.arange(total)
    ramp = (t + 1) / warm
    frac = (t - warm + 1) / max(1, total - warm)
    return peak * np.where(t < warm, ramp, 0.5 * (1 + np.cos(math.pi * frac)))


def plan_lrs(peak: float, total: int, anneal: int) -> np.ndarray:
    """Constant at ``peak``, then the final linear decay over the last ``anneal`` steps."""
    const = np.full(max(0, total - anneal), peak)
    decay = np.linspace(peak, peak * 1e-3, num=min(anneal, total)) if anneal > 0 else []
    return np.concatenate([const, decay])


def best_peak(nqm: NQM, s: np.ndarray, total: int, anneal: int) -> float:
    grid = np.exp(np.linspace(math.log(MIN_LR), math.log(MAX_LR), 61))
    losses = [nqm.loss(nqm.evolve(s, plan_lrs(lr, total, anneal))) for lr in grid]
    return float(grid[int(np.nanargmin(np.nan_to_num(losses, nan=np.inf)))])


def run_autolr(nqm: NQM, seed: int, overrides: dict[str, object]) -> dict[str, object]:
    rng = np.random.default_rng(seed)
    theta = rng.normal(size=nqm.h.size)
    s = np.ones_like(nqm.h)  # E[θ²] of the initial distribution
    cfg = TunerConfig.build(min_lr=MIN_LR, max_lr=MAX_LR, total_steps=STEPS, seed=seed, **overrides)
    ctl = Controller(cfg)
    inst = ctl.start()
    snap = best = (theta.copy(), s.copy())
    stage_checks: list[tuple[int, float, float]] = []
    stage_start: dict[int, np.ndarray] = {}
    while not inst.finished:
        if inst.save_best:
            best = (theta.copy(), s.copy())
        if inst.restore:
            theta, s = snap[0].copy(), snap[1].copy()
        if inst.restore_best:
            theta, s = best[0].copy(), best[1].copy()
        if inst.snapshot:
            snap = (theta.copy(), s.copy())
            stage_start.setdefault(inst.stage, s.copy())
        losses = []
        sd = np.sqrt(nqm.h / nqm.batch)
        for k in range(inst.steps):
            lr = inst.lr_at(k)
            # the loss of the sampled trajectory, as a large evaluation batch would measure it:
            # noisy through θ only (a per-step mini-batch loss of this NQM is noise-dominated)
            losses.append(float(0.5 * np.dot(nqm.h, theta**2)))
            with np.errstate(over="ignore", invalid="ignore"):
                theta = theta - lr * (nqm.h * theta + sd * rng.normal(size=theta.size))
                s = (1.0 - lr * nqm.h) ** 2 * s + lr * lr * nqm.h / nqm.batch
            if not math.isfinite(losses[-1]):
                break
        inst = ctl.report(Report(segment=inst.segment, train_losses=losses))
    used_until_stage = {}
    for seg in ctl.segments:
        used_until_stage.setdefault(seg.instruction.stage, seg.start_step)
    for st in ctl.stages:
        if st.chosen_lr is None or st.stage not in stage_start:
            continue
        remaining = STEPS - st.start_step
        anneal = cfg.anneal_steps
        stage_checks.append(
            (st.stage, st.chosen_lr, best_peak(nqm, stage_start[st.stage], remaining, anneal))
        )
    if VERBOSE:
        for st in ctl.stages:
            d = st.decision
            print(f"  stage {st.stage} tau={st.tau} start={st.start_step} base={st.baseline}")
            if d is not None:
                print("   ", d.summary(), d.note)
                for e in d.evidence:
                    print(
                        f"     lr={e.lr:.3g} ok={e.ok} fc={e.forecast} drop={e.drop} "
                        f"obj={e.objective} se={e.error:.3g} {e.reason}"
                    )
    probe = sum(seg.steps_run for seg in ctl.segments if seg.instruction.kind == "probe")
    return {"final": nqm.loss(s), "stages": stage_checks, "probe_share": probe / STEPS}


def _parse(v: str) -> object:
    if v.lower() in ("true", "false"):
        return v.lower() == "true"
    for kind in (int, float):
        try:
            return kind(v)
        except ValueError:
            pass
    return v


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--noise", type=float, nargs="*", default=list(BATCHES), help="batch sizes B")
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--set", action="append", default=[], help="TunerConfig override k=v")
    ap.add_argument("-v", "--verbose", action="store_true")
    args = ap.parse_args()
    global VERBOSE
    VERBOSE = args.verbose
    overrides: dict[str, object] = {}
    for item in args.set:
        k, v = item.split("=", 1)
        overrides[k] = _parse(v)
    worst_ratio = 0.0
    for batch in args.noise:
        nqm = NQM.make(batch)
        s0 = np.ones_like(nqm.h)
        grid = [0.03 * 2.0**i for i in range(7)]
        cos = {lr: nqm.loss(nqm.evolve(s0, cosine_lrs(lr, STEPS))) for lr in grid}
        lr_cos = min(cos, key=lambda k: cos[k])
        runs = [run_autolr(nqm, seed, overrides) for seed in range(args.seeds)]
        mean = float(np.mean([r["final"] for r in runs]))
        ratio = mean / cos[lr_cos]
        worst_ratio = max(worst_ratio, ratio)
        lr_ratios = [lr / best for r in runs for _, lr, best in r["stages"]]
        within = sum(1 for q in lr_ratios if 0.5 <= q <= 2.0)
        print(
            f"B={batch:g}: autolr {mean:.4g} / best cosine {cos[lr_cos]:.4g} (lr {lr_cos:.3g}) "
            f"= {ratio:.3f}; stages within 2x of best LR: {within}/{len(lr_ratios)} "
            f"(lr/best: {', '.join(f'{q:.2f}' for q in lr_ratios)}); "
            f"probe share {np.mean([r['probe_share'] for r in runs]):.3f}",
            flush=True,
        )
    print(f"worst ratio {worst_ratio:.3f}")


if __name__ == "__main__":
    main()
