"""What the controller and the training side say to each other.

An `Instruction` tells the client what to run next (one segment); a `Report` returns that
segment's losses. Both are plain pydantic models, so they travel as JSON unchanged. Losses may be
NaN or ±inf (divergence); in JSON these travel as ``null``, which `Report` reads back as NaN.
"""

from __future__ import annotations

import math
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

#: ``branch`` is never instructed: it records a cooldown branch the client ran on its own
#: (`Branch`), so logs, exports and dashboards can show it.
SegmentKind = Literal["warmup", "probe", "train", "anneal", "branch"]

#: Upper bound on losses in one report; a segment never exceeds τ_max steps by much.
MAX_LOSSES_PER_REPORT = 1_000_000


class Instruction(BaseModel):
    """One segment to run: ``steps`` steps with the LR going linearly from ``lr`` to ``lr_end``.

    Before the first step, in this order: if ``save_best``, copy the current model/optimizer state
    (the end of the probe just run) into the best-probe slot; load the stage snapshot if
    ``restore``, or the best-probe slot if ``restore_best``; take a new stage snapshot if
    ``snapshot``; then set the LR. Call the validation function every ``eval_every`` steps
    (counting from the segment's start) when it is not None. ``finished`` means the budget is
    spent: ``steps`` is 0 and nothing more will come.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    segment: int = Field(ge=0, description="0-based index, one more than the previous segment.")
    kind: SegmentKind
    lr: float = Field(gt=0, description="LR at the segment's first step.")
    lr_end: float = Field(gt=0, description="LR at the segment's last step (linear ramp).")
    steps: int = Field(ge=0, description="Steps in the segment.")
    restore: bool = Field(False, description="Load the stage snapshot before the first step.")
    snapshot: bool = Field(False, description="Take a stage snapshot before the first step.")
    save_best: bool = Field(False, description="Keep the current state as the best probe's.")
    restore_best: bool = Field(False, description="Load the best probe's state first.")
    eval_every: int | None = Field(None, ge=1, description="Call val_fn every n steps.")
    finished: bool = Field(False, description="The budget is spent; stop training.")
    stage: int = Field(-1, ge=-1, description="Stage index (-1 for warmup).")
    probe: int | None = Field(None, ge=0, description="Probe index inside the stage.")
    decision: str | None = Field(
        None,
        max_length=2000,
        description="On a stage's first train segment: the stage policy's rule and evidence.",
    )

    def lr_at(self, step: int) -> float:
        """LR for step ``step`` (0-based) of this segment: the linear ramp ``lr → lr_end``."""
        if self.steps <= 1 or self.lr == self.lr_end:
            return self.lr
        frac = min(max(step, 0), self.steps - 1) / (self.steps - 1)
        return self.lr + (self.lr_end - self.lr) * frac


class Branch(BaseModel):
    """A cooldown branch the client ran inside a segment (``AutoLR.cooldown``).

    It trained ``steps`` steps from a snapshot of the state after step ``at`` of the segment,
    with the LR going linearly ``lr → lr_end``, then restored that snapshot: the segment went
    on as if it had not run. Its steps count toward the budget; its losses are only recorded.
    """

    model_config = ConfigDict(extra="forbid")

    at: int = Field(ge=0, description="Steps of the segment run before the branch started.")
    steps: int = Field(ge=1, description="Steps the branch trained.")
    lr: float = Field(gt=0, description="LR at the branch's first step.")
    lr_end: float = Field(gt=0, description="LR at the branch's last step.")
    train_losses: list[float] = Field(default_factory=list, max_length=MAX_LOSSES_PER_REPORT)

    @field_validator("train_losses", mode="before")
    @classmethod
    def _nulls_are_nan(cls, value: Any) -> Any:
        if isinstance(value, list):
            return [math.nan if v is None else v for v in value]
        return value


class Report(BaseModel):
    """The losses of one finished segment.

    ``train_losses`` holds one loss per step run (a probe may stop early after a divergence).
    ``val_losses`` holds ``(step, loss)`` pairs, ``step`` counted from the segment's start
    (1-based: the loss after that many steps). ``extra_steps`` counts steps the client trained
    after the segment while it could not reach the controller, so the budget stays honest.
    ``total_steps`` and ``branches`` are optional (older clients send neither): a budget set
    mid-run, and the cooldown branches run inside the segment.
    """

    model_config = ConfigDict(extra="forbid")

    segment: int = Field(ge=0)
    train_losses: list[float] = Field(max_length=MAX_LOSSES_PER_REPORT)
    val_losses: list[tuple[int, float]] = Field(default_factory=list, max_length=100_000)
    kind: SegmentKind | None = Field(None, description="Echo of the instruction's kind, checked.")
    extra_steps: int = Field(0, ge=0, description="Steps trained past the segment, unreported.")
    total_steps: int | None = Field(
        None,
        ge=1,
        description="A new step budget (AutoLR.set_total_steps), applied before the next "
        "instruction. The segment may end short of its steps (none run at all included) to "
        "let the final decay start in time.",
    )
    branches: list[Branch] = Field(
        default_factory=list, max_length=1000, description="Cooldown branches run inside it."
    )

    @field_validator("train_losses", mode="before")
    @classmethod
    def _nulls_are_nan(cls, value: Any) -> Any:
        if isinstance(value, list):
            return [math.nan if v is None else v for v in value]
        return value

    @field_validator("val_losses", mode="before")
    @classmethod
    def _val_nulls_are_nan(cls, value: Any) -> Any:
        if isinstance(value, list):
            return [
                (p[0], math.nan if p[1] is None else p[1])
                if isinstance(p, list | tuple) and len(p) == 2
                else p
                for p in value
            ]
        return value


def same_loss(x: float, y: float) -> bool:
    """Two losses are the same: equal, or both NaN (NaN never equals itself in Python)."""
    return x == y or (x != x and y != y)


def report_difference(recorded: Report, sent: Report) -> str | None:
    """What differs between two reports of one segment, besides ``extra_steps`` (None: same).

    The one rule for a report sent again: the service answers a resent report with its
    recorded answer when this finds nothing (`autolr.server.service.JobService`), and the
    client compares its record with the service's by it (``autolr.client._link``). Losses
    compare exactly, NaN equal to NaN and infinities to themselves; ``kind`` only when both
    reports name one (older clients send none). ``extra_steps`` is left to the caller: the
    service lets a resent report add to them, the client wants them equal. (The controller
    itself answers a report of the segment before the awaited one idempotently by its index
    alone: it keeps no reports, the service and the client keep them and apply this.)
    """
    if recorded.kind is not None and sent.kind is not None and recorded.kind != sent.kind:
        return f"kind={sent.kind!r}, recorded {recorded.kind!r}"
    a, b = recorded.train_losses, sent.train_losses
    if len(a) != len(b):
        return f"{len(b)} train_losses, recorded {len(a)}"
    differ = [i for i, (x, y) in enumerate(zip(a, b, strict=True)) if not same_loss(x, y)]
    if differ:
        i = differ[0]
        return (
            f"train_losses differ at {len(differ)} of {len(a)} steps (first at index {i}: "
            f"recorded {a[i]!r}, sent {b[i]!r})"
        )
    va, vb = recorded.val_losses, sent.val_losses
    if len(va) != len(vb) or any(
        step_a != step_b or not same_loss(xa, xb)
        for (step_a, xa), (step_b, xb) in zip(va, vb, strict=True)
    ):
        return f"val_losses differ ({len(vb)} sent, {len(va)} recorded)"
    if recorded.total_steps != sent.total_steps:
        return f"total_steps={sent.total_steps}, recorded {recorded.total_steps}"
    if [b.model_dump_json() for b in recorded.branches] != [
        b.model_dump_json() for b in sent.branches
    ]:
        return f"branches differ ({len(sent.branches)} sent, {len(recorded.branches)} recorded)"
    return None
