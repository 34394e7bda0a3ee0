"""The log-LR search space: learning rates mapped to the unit interval.

The searcher works on ``x_unit = (log lr - log min_lr) / (log max_lr - log min_lr)``
so that the GP sees the same geometry whatever the LR range.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from autolr.errors import ConfigError


@dataclass(frozen=True)
class LogSpace:
    """A closed LR interval ``[min_lr, max_lr]`` on a log scale.

    Example:
        >>> space = LogSpace(1e-4, 1e-1)
        >>> round(space.to_unit(1e-2), 6)
        0.666667
        >>> space.to_lr(0.0)
        0.0001
    """

    min_lr: float
    max_lr: float

    def __post_init__(self) -> None:
        if not (math.isfinite(self.min_lr) and math.isfinite(self.max_lr)):
            raise ConfigError(f"min_lr={self.min_lr} and max_lr={self.max_lr} must be finite")
        if not 0 < self.min_lr < self.max_lr:
            raise ConfigError(
                f"need 0 < min_lr < max_lr, got min_lr={self.min_lr}, max_lr={self.max_lr}"
            )

    @property
    def log_width(self) -> float:
        """Width of the interval in natural-log units."""
        return math.log(self.max_lr) - math.log(self.min_lr)

    def to_unit(self, lr: float) -> float:
        """Map an LR to [0, 1] (values outside the range are clamped)."""
        x = (math.log(lr) - math.log(self.min_lr)) / self.log_width
        return min(1.0, max(0.0, x))

    def to_lr(self, x_unit: float) -> float:
        """Map a point of [0, 1] back to an LR inside ``[min_lr, max_lr]``."""
        x = min(1.0, max(0.0, x_unit))
        if x == 0.0:
            return self.min_lr
        if x == 1.0:
            return self.max_lr
        lr = math.exp(math.log(self.min_lr) + x * self.log_width)
        return min(self.max_lr, max(self.min_lr, lr))
