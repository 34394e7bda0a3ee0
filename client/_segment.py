"""`Segment`: one entry of `AutoLR.schedule`, the record of what actually ran."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from autolr.protocol import Instruction


@dataclass(frozen=True)
class Segment:
    """A segment the tuner ran: ``steps`` steps with the LR going linearly ``lr → lr_end``.

    Readable as attributes or as keys (``seg.kind`` or ``seg["kind"]``), so code written against
    plain dicts works too. ``steps`` counts the steps actually run, which is fewer than asked
    for a probe ended early by a non-finite loss. ``extra_steps`` counts steps trained after the
    segment at ``lr_end`` while the controller could not be reached.

    Attributes:
        segment: 0-based segment index.
        kind: ``"warmup"``, ``"probe"``, ``"train"`` or ``"anneal"``.
        lr: LR of the first step (of the first param group).
        lr_end: LR of the last step.
        steps: steps run.
        stage: stage index (-1 for warmup).
        probe: probe index inside the stage, or None.
        extra_steps: steps trained after the segment without a controller.
    """

    segment: int
    kind: str
    lr: float
    lr_end: float
    steps: int
    stage: int
    probe: int | None = None
    extra_steps: int = 0

    @classmethod
    def ran(cls, instruction: Instruction, steps: int) -> Segment:
        """The record of ``instruction`` after ``steps`` steps."""
        return cls(
            segment=instruction.segment,
            kind=instruction.kind,
            lr=instruction.lr,
            lr_end=instruction.lr_end,
            steps=steps,
            stage=instruction.stage,
            probe=instruction.probe,
        )

    def __getitem__(self, key: str) -> Any:
        try:
            return getattr(self, key)
        except AttributeError:
            raise KeyError(key) from None

    def to_dict(self) -> dict[str, Any]:
        """Plain dict (for checkpoints and JSON)."""
        return asdict(self)
