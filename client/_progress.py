"""The tuner's progress lines: one per stage, and a summary table at the end.

A search that runs silently for hours cannot be trusted or stopped early, so by default the
tuner prints what each stage decided, as Optuna prints each trial: the LR the stage trains
with, the rule of the stage policy that chose it (`Instruction.decision`, the same record the
dashboard shows), the probes it spent and the steps left. ``progress=False`` sends the same
lines to the ``autolr.client`` logger at INFO instead.
"""

from __future__ import annotations

import logging
import sys
from typing import TextIO

from autolr.protocol import Instruction

log = logging.getLogger("autolr.client")


class Progress:
    """Writes the tuner's lines to a stream (``print``-like) or to the logger.

    Args:
        enabled: print the lines; False logs them at INFO on ``autolr.client`` instead.
        stream: where to print (default: ``sys.stderr`` at the time of writing).
    """

    def __init__(self, enabled: bool = True, stream: TextIO | None = None) -> None:
        self._enabled = enabled
        self._stream = stream
        #: the stage policy's line of each stage seen in this process (for the summary)
        self.decisions: dict[int, str] = {}

    def emit(self, text: str) -> None:
        """One line (or a table) for people."""
        if not self._enabled:
            log.info("%s", text)
            return
        print(text, file=self._stream or sys.stderr, flush=True)

    def stage(
        self,
        inst: Instruction,
        *,
        probes: int,
        probe_steps: int,
        steps_run: int,
        total_steps: int | None,
    ) -> str:
        """The line for a stage whose search just ended and whose training starts."""
        decision = inst.decision or f"lr={inst.lr:.4g}"
        self.decisions[inst.stage] = decision
        if total_steps is None:
            where = f"step {steps_run}"
        else:
            where = f"step {steps_run}/{total_steps}, {max(total_steps - steps_run, 0)} left"
        line = (
            f"autolr stage {inst.stage}: trains lr={inst.lr:.4g} for {inst.steps} steps | "
            f"rule {decision} | {probes} probes, {probe_steps} steps | {where}"
        )
        self.emit(line)
        return line
