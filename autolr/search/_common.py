"""Pure-Python helpers shared by the searchers (no torch import: RandomSearcher uses them).

All points live in ``[0, 1]``, the normalized log-LR of ``autolr.space.LogSpace``.
"""

from __future__ import annotations

import inspect
import itertools
import math
import random
from collections.abc import Callable, Sequence
from typing import Any, ClassVar

from autolr.errors import SearchInputError

#: Feasible intervals shorter than this are treated as empty (a point in them would sit
#: within rounding of an excluded neighbourhood's edge).
_MIN_INTERVAL = 1e-12


class SearcherBase:
    """The optional parts of the `Searcher` contract, declared with their defaults.

    A searcher states what it supports instead of the controller guessing it from signatures.
    Subclass it (``RandomSearcher`` and ``GPSearcher`` do) and override what differs.

    Attributes:
        accepts_noise: ``propose``, ``choose`` (and ``decide``, where present) take the
            ``noise=`` keyword (known variances of the outcomes). True by default: the
            keyword is part of the protocol.
    """

    accepts_noise: ClassVar[bool] = True


def accepts_noise(searcher: object, method: Callable[..., Any]) -> bool:
    """Whether to pass ``noise=`` to ``method``, a method of ``searcher``.

    A searcher that declares `SearcherBase.accepts_noise` is taken at its word. One that does
    not (written before the keyword joined the protocol, and not a `SearcherBase`) is read from
    the method's signature, so it gets the outcomes alone instead of failing every decision.
    """
    declared = getattr(searcher, "accepts_noise", None)
    if isinstance(declared, bool):
        return declared
    try:
        params = inspect.signature(method).parameters.values()
    except (TypeError, ValueError):  # no signature to read (a C callable): pass it
        return True
    return any(p.name == "noise" or p.kind is p.VAR_KEYWORD for p in params)


def validate_observations(
    x_unit: Sequence[float], y: Sequence[float]
) -> tuple[list[float], list[float]]:
    """Check and copy observations (pass-by-value: the caller's sequences are not kept).

    Args:
        x_unit: observed points, each finite and inside [0, 1]; length n.
        y: observed outcomes (lower is better), each finite; length n.

    Returns:
        The two sequences as fresh lists of Python floats.

    Raises:
        SearchInputError: lengths differ, a point is outside [0, 1] or not finite, or an
            outcome is not finite (divergent probes must be given a finite penalty first).
    """
    xs = [float(v) for v in x_unit]
    ys = [float(v) for v in y]
    if len(xs) != len(ys):
        raise SearchInputError(
            f"x_unit and y must have the same length, got len(x_unit)={len(xs)} and len(y)={len(ys)}"
        )
    for i, v in enumerate(xs):
        if not (math.isfinite(v) and 0.0 <= v <= 1.0):
            raise SearchInputError(
                f"x_unit[{i}]={v!r} is outside [0, 1]; map learning rates with LogSpace.to_unit"
            )
    for i, v in enumerate(ys):
        if not math.isfinite(v):
            raise SearchInputError(
                f"y[{i}]={v!r} is not finite; replace a divergent probe's outcome by a finite "
                "penalty (e.g. the worst finite forecast plus a margin) before searching"
            )
    return xs, ys


def validate_noise(noise: Sequence[float] | None, n: int) -> list[float] | None:
    """Check and copy per-observation noise variances (``None``: unknown, learned by the model).

    Raises:
        SearchInputError: the length is not n, or a variance is negative or not finite.
    """
    if noise is None:
        return None
    vs = [float(v) for v in noise]
    if len(vs) != n:
        raise SearchInputError(f"noise must have one variance per observation: {len(vs)} != {n}")
    for i, v in enumerate(vs):
        if not (math.isfinite(v) and v >= 0.0):
            raise SearchInputError(f"noise[{i}]={v!r} must be a finite variance >= 0")
    return vs


def validate_bounds(bounds: tuple[float, float]) -> tuple[float, float]:
    """Check a search region ``(lo, hi)``: finite, with ``0 <= lo < hi <= 1``.

    Raises:
        SearchInputError: the bounds are out of range or empty.
    """
    lo, hi = float(bounds[0]), float(bounds[1])
    if not (math.isfinite(lo) and math.isfinite(hi) and 0.0 <= lo < hi <= 1.0):
        raise SearchInputError(f"bounds={bounds!r} must satisfy 0 <= lo < hi <= 1")
    return lo, hi


def validate_min_distance(min_distance: float) -> float:
    """Check the ``min_distance`` option: finite and in [0, 0.5).

    Raises:
        SearchInputError: the value is out of range.
    """
    value = float(min_distance)
    if not (math.isfinite(value) and 0.0 <= value < 0.5):
        raise SearchInputError(f"min_distance={min_distance!r} must be in [0, 0.5)")
    return value


def argmin_first(values: Sequence[float]) -> int:
    """Index of the smallest value; ties go to the first index (deterministic)."""
    if not values:
        raise SearchInputError("choose needs at least one observation, got none")
    best = 0
    for i, v in enumerate(values):
        if v < values[best]:
            best = i
    return best


def feasible_intervals(
    x_unit: Sequence[float], min_distance: float, lo: float = 0.0, hi: float = 1.0
) -> list[tuple[float, float]]:
    """The closed sub-intervals of ``[lo, hi]`` at distance ≥ ``min_distance`` from every point.

    Args:
        x_unit: observed points in [0, 1].
        min_distance: exclusion radius in x_unit units.
        lo: left end of the region of interest.
        hi: right end of the region of interest.

    Returns:
        Disjoint intervals ``(a, b)`` with ``a <= b``, sorted; intervals shorter than 1e-12
        are dropped, and the exclusion radius is widened by 1e-9 relative (and 1e-15
        absolute) so that every point of the result is ≥ ``min_distance`` away exactly. Empty when every point of ``[lo, hi]`` is too close to an observation.
    """
    # A hair wider than min_distance, so that a point drawn at an interval's edge is at
    # least min_distance away after floating-point rounding too.
    radius = min_distance * (1.0 + 1e-9) + 1e-15
    intervals: list[tuple[float, float]] = []
    start = lo
    for centre in sorted(x_unit):
        left, right = centre - radius, centre + radius
        if right <= start:
            continue
        if left >= hi:
            break
        if left - start > _MIN_INTERVAL:
            intervals.append((start, left))
        start = max(start, right)
    if hi - start > _MIN_INTERVAL:
        intervals.append((start, hi))
    return intervals


def sample_intervals(intervals: Sequence[tuple[float, float]], rng: random.Random) -> float:
    """A point drawn uniformly from the union of disjoint intervals (which must be non-empty)."""
    total = sum(b - a for a, b in intervals)
    u = rng.random() * total
    for a, b in intervals:
        width = b - a
        if u < width:
            return min(b, a + u)
        u -= width
    return intervals[-1][1]


def farthest_point(x_unit: Sequence[float]) -> float:
    """The point of [0, 1] farthest from every observation (ties: the smallest).

    The optimum of ``max_z min_i |z - x_i|`` is an end of [0, 1] or the midpoint of two
    neighbouring observations, so only those candidates are compared.
    """
    if not x_unit:
        return 0.5
    pts = sorted(x_unit)
    candidates = [0.0, 1.0] + [(a + b) / 2.0 for a, b in itertools.pairwise(pts)]
    best_z, best_d = 0.0, -1.0
    for z in sorted(candidates):
        d = min(abs(z - p) for p in pts)
        if d > best_d:
            best_z, best_d = z, d
    return best_z


def space_filling_point(
    x_unit: Sequence[float], *, n_strata: int, min_distance: float, seed: int
) -> float:
    """The next point of a seeded, randomly shifted grid (a stratified design, evenly spaced).

    [0, 1] is cut into ``n_strata`` equal strata; ``seed`` fixes a visiting order of the
    strata. Every stratum's design point sits at the same offset within it, so the design
    points are exactly ``1 / n_strata`` apart: the offset of the first observation when there
    is one (the design goes on from where it started, whatever seed the caller passes next),
    else a uniform draw. The result is the design point of the first stratum, in that order,
    that holds no observation yet. (Independent offsets per stratum, a Latin hypercube, put
    two of three points 0.05 apart: on a 5-decade range two probes a factor 1.7 apart and a
    gap of 2.9 decades, and stage 0 trained 300x below the best LR.)

    A design point closer than ``min_distance`` to an observation (a neighbour across the
    stratum boundary) is redrawn uniformly from the stratum's feasible part; if no empty
    stratum has one, the point is drawn from the feasible part of [0, 1], and if there is
    none, it is the point farthest from all observations.

    Args:
        x_unit: observed points in [0, 1].
        n_strata: number of strata (the searcher's ``n_init``), ≥ 1.
        min_distance: exclusion radius in x_unit units.
        seed: fixes the design.

    Returns:
        A point in [0, 1].
    """
    rng = random.Random(seed)
    order = list(range(n_strata))
    rng.shuffle(order)
    shift = rng.random()
    if x_unit:
        shift = (x_unit[0] * n_strata) % 1.0
    offsets = [shift] * n_strata
    width = 1.0 / n_strata
    occupied = {min(int(v * n_strata), n_strata - 1) for v in x_unit}
    for stratum in order:
        if stratum in occupied:
            continue
        lo, hi = stratum * width, min(1.0, (stratum + 1) * width)
        point = min(hi, lo + offsets[stratum] * width)
        if all(abs(point - v) >= min_distance for v in x_unit):
            return point
        inside = feasible_intervals(x_unit, min_distance, lo, hi)
        if inside:
            return sample_intervals(inside, rng)
    anywhere = feasible_intervals(x_unit, min_distance)
    if anywhere:
        return sample_intervals(anywhere, rng)
    return farthest_point(x_unit)
