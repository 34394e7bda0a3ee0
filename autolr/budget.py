"""A step budget learned late: validating it and where the running segment must stop.

Open-ended runs (``total_steps=None``) train stages forever; a user who learns the budget later
(or changes it) sets it mid-run, and the run must still end at exactly that step with its final
decay. The controller applies the new budget at the next report (`autolr.protocol.Report`'s
``total_steps``); the segment running when it is set goes on unless it would reach into the
final decay, in which case the client stops it where the decay must start (or at once when the
decay should have started already). Both sides compute that point here, from the config alone.
"""

from __future__ import annotations

from pydantic import ValidationError

from autolr.config import TunerConfig, describe_validation_error
from autolr.errors import ConfigError
from autolr.protocol import Instruction


def with_total_steps(config: TunerConfig, total_steps: int, *, steps_used: int) -> TunerConfig:
    """``config`` with the budget ``total_steps``, checked against the steps already used.

    Raises:
        ConfigError: ``total_steps`` is below ``steps_used``, or invalid for the config (not an
            integer, too small for one stage); the message names ``total_steps``.
    """
    if isinstance(total_steps, bool) or not isinstance(total_steps, int):
        raise ConfigError(f"total_steps={total_steps!r} must be an integer number of steps")
    if total_steps < steps_used:
        raise ConfigError(
            f"total_steps={total_steps} is below the {steps_used} steps already used (probes, "
            f"training and cooldown branches included); pass at least {steps_used}"
        )
    try:
        return TunerConfig.model_validate({**config.model_dump(), "total_steps": total_steps})
    except ValidationError as exc:
        raise ConfigError(describe_validation_error(exc)) from None


def decay_start(config: TunerConfig, steps_used: int) -> int:
    """The step at which the final decay of ``config``'s budget starts, ``steps_used`` at
    the earliest (a budget set late leaves the decay what is left, not its full share)."""
    total = config.total_steps
    if total is None:
        raise ValueError("decay_start needs a config with total_steps")
    return max(steps_used, total - config.anneal_steps)


def segment_stop(config: TunerConfig, current: Instruction, *, start: int, ran: int) -> int:
    """Steps of ``current`` to run under ``config``'s (new) budget.

    Args:
        config: the config with the new ``total_steps``.
        current: the segment running when the budget was set.
        start: steps used before ``current`` began.
        ran: steps of ``current`` run so far.

    Returns:
        ``current.steps`` when the segment ends before the final decay must start; else the
        step where it must stop (``ran`` when that point has passed). A running anneal always
        stops at once: the controller decays again over the new budget's remaining steps.
    """
    if current.kind == "anneal":
        return ran
    begin = decay_start(config, start + ran)
    if start + current.steps <= begin:
        return current.steps
    return max(ran, begin - start)
