"""Stage lengths: the τ schedule of AutoLRS, scaled to the step budget.

AutoLRS doubles τ from 1000 to 8000 steps. With a budget of a few thousand steps that gives
one stage and a half, so when ``total_steps`` is known both ends of the τ range are scaled
down by one common factor, the largest that fits ``min_stages`` whole stages (k probes of τ'
steps plus τ training steps each) after warmup. The rule is deterministic and cheap.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from autolr.config import TunerConfig


@dataclass(frozen=True)
class StagePlan:
    """The τ range actually used by a job (after budget scaling)."""

    tau_min: int
    tau_max: int
    probes_per_stage: int  # probes per stage the budget is planned for
    probe_fraction: float
    min_probe_steps: int

    def tau(self, stage: int) -> int:
        """Train-segment length τ of stage ``stage`` (doubling, capped at ``tau_max``)."""
        return int(min(self.tau_max, self.tau_min * 2 ** min(stage, 62)))

    def probe_steps(self, stage: int) -> int:
        """Probe length τ' of stage ``stage``: ``probe_fraction·τ``, at least ``min_probe_steps``."""
        return max(self.min_probe_steps, round(self.probe_fraction * self.tau(stage)))

    def search_steps(self, stage: int) -> int:
        """Steps the search of stage ``stage`` costs (k·τ')."""
        return self.probes_per_stage * self.probe_steps(stage)

    def stage_steps(self, stage: int) -> int:
        """Steps stage ``stage`` costs in all: search plus training."""
        return self.search_steps(stage) + self.tau(stage)

    def steps_for(self, n_stages: int) -> int:
        """Steps the first ``n_stages`` stages cost."""
        return sum(self.stage_steps(s) for s in range(n_stages))


def _plan(config: TunerConfig, tau_min: int, tau_max: int) -> StagePlan:
    return StagePlan(
        tau_min=tau_min,
        tau_max=tau_max,
        probes_per_stage=config.planned_probes,
        probe_fraction=config.probe_fraction,
        min_probe_steps=config.min_probe_steps,
    )


def _scaled(config: TunerConfig, tau_min: int) -> StagePlan:
    scale = tau_min / config.tau_min
    tau_max = max(tau_min, int(config.tau_max * scale))
    return _plan(config, tau_min, tau_max)


def _smallest_tau(config: TunerConfig) -> int:
    # A stage shorter than one probe makes no sense: τ never scales below τ'_min.
    return min(config.tau_min, config.min_probe_steps)


def minimum_budget(config: TunerConfig) -> int:
    """Smallest ``total_steps`` that fits one stage at the smallest allowed τ.

    The anneal takes ``anneal_fraction`` of what follows warmup, so the stages get the rest.
    """
    stage = _scaled(config, _smallest_tau(config)).steps_for(1)
    return config.warmup_steps + math.ceil(stage / (1.0 - config.anneal_fraction))


def _fitting_stages(config: TunerConfig, room: int) -> int:
    """``min_stages``, or fewer when even the smallest τ cannot fit that many (at least 1)."""
    smallest = _scaled(config, _smallest_tau(config))
    for n in range(config.min_stages, 0, -1):
        if smallest.steps_for(n) <= room:
            return n
    return 1


def stage_plan(config: TunerConfig) -> StagePlan:
    """The τ range for ``config``: as configured, or scaled so ``min_stages`` fit the budget.

    A budget too small for ``min_stages`` stages even at the smallest τ gets as many stages as
    fit (at least one) instead of an error: a short run still gets a search and a schedule.
    """
    full = _plan(config, config.tau_min, config.tau_max)
    if config.total_steps is None:
        return full
    room = config.total_steps - config.warmup_steps - config.anneal_steps
    stages = _fitting_stages(config, room)
    if full.steps_for(stages) <= room:
        return full
    # Largest τ_min whose scaled plan fits; stage cost is monotone in τ_min, so bisect.
    lo, hi = _smallest_tau(config), config.tau_min
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if _scaled(config, mid).steps_for(stages) <= room:
            lo = mid
        else:
            hi = mid - 1
    return _scaled(config, lo)
