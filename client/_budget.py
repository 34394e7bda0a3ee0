"""The step budget of a framework callback: the trainer's, unless the user gave the same one.

A tuner whose ``total_steps`` differs from the trainer's plan either stops the trainer part-way
into its final decay (the trainer plans more steps) or is cut off before its decay (the trainer
plans fewer): both silently waste the run, so the callbacks take the budget from the trainer
and refuse a different one.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from autolr.config import TunerConfig


def configured_total_steps(options: Mapping[str, Any]) -> int | None:
    """``total_steps`` as the user gave it: a keyword, or a field of ``config=``."""
    if options.get("total_steps") is not None:
        return int(options["total_steps"])
    config = options.get("config")
    if isinstance(config, TunerConfig):
        return config.total_steps
    if isinstance(config, Mapping) and config.get("total_steps") is not None:
        return int(config["total_steps"])
    return None


def with_trainer_budget(
    options: Mapping[str, Any], trainer_steps: float | None, *, source: str, fix: str
) -> dict[str, Any]:
    """The tuner options with ``total_steps`` set to the trainer's optimizer steps.

    Args:
        options: the callback's tuner options.
        trainer_steps: optimizer steps the trainer will run (None or inf: no fixed end).
        source: where ``trainer_steps`` comes from, for messages
            (``"trainer.estimated_stepping_batches"``).
        fix: how to give the trainer that many steps, for messages (``"Trainer(max_steps=N)"``).

    Raises:
        ValueError: ``total_steps`` was given and differs from the trainer's budget.
    """
    given = configured_total_steps(options)
    known = trainer_steps is not None and math.isfinite(trainer_steps) and trainer_steps > 0
    if not known:
        return dict(options)  # the trainer runs until stopped: the tuner's budget ends it
    steps = int(trainer_steps)  # type: ignore[arg-type]
    if given is None:
        return {**options, "total_steps": steps}
    if given != steps:
        effect = (
            f"the trainer would stop {given - steps} steps before the tuner's final decay ends"
            if steps < given
            else f"the tuner would stop the trainer {steps - given} steps before its planned end"
        )
        raise ValueError(
            f"total_steps={given} does not match the trainer's budget of {steps} optimizer "
            f"steps ({source}): {effect}. Leave total_steps out to use the trainer's {steps}, "
            f"or set {fix.replace('N', str(given))}"
        )
    return dict(options)
