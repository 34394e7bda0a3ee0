"""Baseline LR schedules: multipliers of the peak LR as a function of the step.

Every schedule maps a 0-based step ``t`` of a ``total``-step run to a factor in [0, 1] that
multiplies each param group's peak LR (so per-group LR ratios are kept). Warmup is linear over
the first 5% of the steps, as in most recipes; the decays end at (almost) zero on the last step.
"""

from __future__ import annotations

import math
from collections.abc import Callable

WARMUP_FRACTION = 0.05

Schedule = Callable[[int, int], float]


def warmup_steps(total: int) -> int:
    return max(1, math.ceil(WARMUP_FRACTION * total))


def constant(t: int, total: int) -> float:
    return 1.0


def _warm(t: int, total: int) -> float | None:
    w = warmup_steps(total)
    return (t + 1) / w if t < w else None


def cosine(t: int, total: int) -> float:
    """Linear warmup over 5% of the steps, then a half cosine from 1 to 0."""
    ramp = _warm(t, total)
    if ramp is not None:
        return ramp
    w = warmup_steps(total)
    frac = (t - w + 1) / max(1, total - w)
    return 0.5 * (1.0 + math.cos(math.pi * frac))


def linear(t: int, total: int) -> float:
    """Linear warmup over 5% of the steps, then a linear decay from 1 to 0."""
    ramp = _warm(t, total)
    if ramp is not None:
        return ramp
    w = warmup_steps(total)
    return 1.0 - (t - w + 1) / max(1, total - w)


def step(t: int, total: int) -> float:
    """No warmup; ×0.1 at 50% and again at 75% of the steps."""
    if t < total // 2:
        return 1.0
    if t < (3 * total) // 4:
        return 0.1
    return 0.01


def schedulefree_nominal(t: int, total: int) -> float:
    """What Schedule-Free's own ``warmup_steps`` does to its LR (for plots only)."""
    ramp = _warm(t, total)
    return 1.0 if ramp is None else ramp


SCHEDULES: dict[str, Schedule] = {
    "constant": constant,
    "cosine": cosine,
    "linear": linear,
    "step": step,
}
