"""Log-uniform random search: the dependency-free baseline and the GP's fallback."""

from __future__ import annotations

import random
from collections.abc import Sequence

from autolr.search._common import (
    SearcherBase,
    argmin_first,
    farthest_point,
    feasible_intervals,
    sample_intervals,
    validate_bounds,
    validate_min_distance,
    validate_noise,
    validate_observations,
)


class RandomSearcher(SearcherBase):
    """Propose points uniformly in ``x_unit`` (log-uniform in LR), away from observations.

    Stateless and free of optional dependencies (no torch), so the controller can always
    fall back to it when ``GPSearcher`` raises ``SearchError``.

    Args:
        min_distance: no proposal lies closer than this to an observed point (x_unit
            units, i.e. a fraction of the log-LR range; 0.02 of a 3-decade range is
            about 15% in LR). Probing a near-duplicate wastes a probe.

    Raises:
        SearchInputError: ``min_distance`` outside [0, 0.5).

    Example:
        >>> searcher = RandomSearcher()
        >>> x = searcher.propose([0.5], [1.0], seed=0)
        >>> 0.0 <= x <= 1.0 and abs(x - 0.5) >= 0.02
        True
        >>> searcher.choose([0.2, 0.5, 0.8], [1.3, 0.9, 1.1])
        1
    """

    def __init__(self, *, min_distance: float = 0.02) -> None:
        self.min_distance = validate_min_distance(min_distance)

    def __repr__(self) -> str:
        return f"RandomSearcher(min_distance={self.min_distance!r})"

    def propose(
        self,
        x_unit: Sequence[float],
        y: Sequence[float],
        *,
        seed: int,
        bounds: tuple[float, float] = (0.0, 1.0),
        noise: Sequence[float] | None = None,
    ) -> float:
        """A uniform draw from the part of ``bounds`` at least ``min_distance`` from every point.

        Args:
            x_unit: observed points in [0, 1], length n (may be empty).
            y: their finite outcomes, length n (unused except for validation).
            seed: the draw is a pure function of ``(x_unit, seed)``. The n-th proposal
                uses the n-th number of the stream seeded by ``seed`` (n = len(x_unit)), so
                a caller that keeps one seed for a whole search still gets independent
                draws, not the same quantile of a shrinking feasible set.
            bounds: the sub-interval of [0, 1] to draw from.
            noise: per-observation variances (validated, otherwise unused).

        Returns:
            A point in [0, 1]. When no point is ``min_distance`` away from every
            observation, the point farthest from all of them.

        Raises:
            SearchInputError: invalid observations.
        """
        xs, _ = validate_observations(x_unit, y)
        validate_noise(noise, len(xs))
        lo, hi = validate_bounds(bounds)
        intervals = feasible_intervals(xs, self.min_distance, lo, hi)
        if not intervals:
            return min(hi, max(lo, farthest_point(xs)))
        rng = random.Random(seed)
        for _ in range(len(xs)):
            rng.random()
        return sample_intervals(intervals, rng)

    def choose(
        self, x_unit: Sequence[float], y: Sequence[float], *, noise: Sequence[float] | None = None
    ) -> int:
        """Index of the lowest outcome (ties: the first; ``noise`` is validated, not used).

        Raises:
            SearchInputError: invalid or empty observations.
        """
        _, ys = validate_observations(x_unit, y)
        validate_noise(noise, len(ys))
        return argmin_first(ys)
