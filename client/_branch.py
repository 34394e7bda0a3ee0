"""`CooldownBranch`: a decayed model from any point of a run, without disturbing the run.

Warmup–stable–decay schedules can cool down from any checkpoint (Hägele et al. 2024): train a
short branch with the LR decaying to ~0 and the model is as good as a run planned to end there.
`AutoLR.cooldown` runs such a branch inside the main run: it snapshots model, optimizer and
scaler, trains the branch's steps with the LR going linearly from the LR in use to
`autolr.policy.THRESHOLDS.anneal_end_ratio` of it, hands the cooled model to the user, and
restores the snapshot, so the main run goes on exactly as if the branch had not run. The branch's
steps count toward the budget (they are training steps the user paid for).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

from autolr.client._losses import Loss
from autolr.client._snapshot import StateSnapshot
from autolr.policy import THRESHOLDS
from autolr.protocol import Branch, Instruction

#: What `AutoLR.cooldown` calls with the cooled model (its return value is ignored).
OnDone = Callable[[torch.nn.Module], Any]


@dataclass
class CooldownBranch:
    """One running branch: its LR ramp, where it left the segment, and its losses.

    Attributes:
        ramp: the branch as a segment of kind ``"branch"`` (its LR at step i is
            ``ramp.lr_at(i)``), numbered like the segment it interrupted.
        at: steps of the interrupted segment run before the branch.
        lr_before: the main run's LR, set again after the restore.
        on_done: called with the model after the branch's last step.
        snapshot: the state the main run continues from.
    """

    ramp: Instruction
    at: int
    lr_before: float
    on_done: OnDone
    snapshot: StateSnapshot
    losses: list[Loss] = field(default_factory=list)

    @classmethod
    def begin(
        cls,
        segment: Instruction,
        *,
        at: int,
        lr: float,
        steps: int,
        on_done: OnDone,
        snapshot: StateSnapshot,
    ) -> CooldownBranch:
        """Snapshot the live state and plan a decay of ``steps`` steps from ``lr``."""
        snapshot.save()
        ramp = Instruction(
            segment=segment.segment,
            kind="branch",
            lr=lr,
            lr_end=lr * THRESHOLDS.anneal_end_ratio,
            steps=steps,
            stage=segment.stage,
            probe=segment.probe,
        )
        return cls(ramp=ramp, at=at, lr_before=lr, on_done=on_done, snapshot=snapshot)

    @property
    def done(self) -> bool:
        """Whether every step of the branch has run."""
        return len(self.losses) >= self.ramp.steps

    def record(self, train_losses: list[float]) -> Branch:
        """The branch as the report of its segment carries it."""
        return Branch(
            at=self.at,
            steps=len(train_losses),
            lr=self.ramp.lr,
            lr_end=self.ramp.lr_end,
            train_losses=train_losses,
        )

    def finish(self, model: torch.nn.Module) -> None:
        """Hand the cooled model to ``on_done``, then bring the main run's state back (also
        when ``on_done`` raises) and free the snapshot's memory."""
        try:
            self.on_done(model)
        finally:
            self.snapshot.restore()
            self.snapshot.close()
