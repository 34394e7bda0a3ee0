"""Public views of a job's records in the HTTP API (``GET /v1/jobs/{id}``) and the dashboard.

The controller keeps more per stage and segment than a person or a tool should read: the
bookkeeping of a train segment run in chunks, the stage's search bounds, a probe awaiting its
cooldown tail, the standard errors the health checks compare. Publishing its records as they
are would make every such field part of the API, so a change of the controller's bookkeeping
would change the wire format. These views name what a job did, for users: the CLI, a server
job's export (`autolr.export`) and the dashboard read nothing else, and the views keep the
names the export shares with the controller's state (``segments``, ``stages``).

Each view is validated from the controller's own record (``View.of(record)``) or from the
parsed state (`JobDetail.of_record`); fields it does not declare are left out. A probe's
``objective`` and ``objective_error`` are derived with the controller's own formulas
(`autolr.controller.probe_objective`, `objective_error`), never stored twice.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, computed_field

from autolr.controller import objective_error, probe_objective
from autolr.policy import Decision
from autolr.protocol import Instruction

#: Views read records and stored states: what they do not declare is left out, not refused.
_VIEW = ConfigDict(extra="ignore")


class _View(BaseModel):
    model_config = _VIEW

    @classmethod
    def of(cls, record: BaseModel | dict[str, Any]) -> Self:
        """The public view of a controller record (or of its JSON form in a stored state)."""
        data = record.model_dump() if isinstance(record, BaseModel) else record
        return cls.model_validate(data)


class ProbePublic(_View):
    """One probe of a stage: the LR tried, its forecast and what the search ranked it by."""

    probe: int = Field(description="Index of the probe inside its stage.")
    lr: float = Field(description="The LR the probe tried.")
    x_unit: float = Field(
        description="Where the search placed it: the LR's position in the job's log-LR range, "
        "0 at min_lr and 1 at max_lr."
    )
    steps: int = Field(description="Steps whose losses the forecast was fitted to.")
    source: Literal["train", "val"] = Field(description="The loss judged: training or validation.")
    ok: bool = Field(description="False when the probe diverged or could not be forecast.")
    reason: str = Field("", description="Why the probe failed, when it did.")
    forecast: float | None = Field(None, description="The forecast loss at the horizon.")
    first_loss: float | None = Field(None, description="The probe's first loss.")
    last_loss: float | None = Field(None, description="The probe's last loss.")
    noise: float | None = Field(None, description="Per-step loss noise (robust SD, trend removed).")
    drop: float | None = Field(
        None, description="Loss removed by the probe's cooldown tail (objective 'final')."
    )
    drop_error: float = Field(0.0, description="Standard error of drop.")

    @computed_field(description="What the search ranked the probe by: forecast − drop.")  # type: ignore[prop-decorator]  # pydantic's documented form
    @property
    def objective(self) -> float | None:
        return probe_objective(self)

    @computed_field(description="Standard error of objective.")  # type: ignore[prop-decorator]  # pydantic's documented form
    @property
    def objective_error(self) -> float:
        return objective_error(self)


class StagePublic(_View):
    """One stage: its length, its probes, the LR it trains and the decisions that chose it."""

    stage: int = Field(description="Stage index, from 0.")
    tau: int = Field(description="Train steps planned for the stage (τ).")
    probe_steps: int = Field(description="Steps of each probe (τ').")
    start_step: int = Field(description="Steps used when the stage started.")
    source: Literal["train", "val"] = Field(description="The loss its probes were judged on.")
    baseline: float | None = Field(None, description="The loss the stage started from.")
    probes: list[ProbePublic] = Field(default_factory=list)
    chosen_lr: float | None = Field(None, description="The LR the stage trains at.")
    chosen_probe: int | None = Field(None, description="The probe whose LR trains.")
    train_steps: int | None = Field(None, description="Train steps the stage was given.")
    stopped_early: bool = Field(False, description="The search stopped before its last probe.")
    reused_probe: int | None = Field(
        None, description="Training continued from this probe's state (reuse_best_probe)."
    )
    decisions: list[Decision] = Field(
        default_factory=list,
        description="The stage policy's decisions (rule, LR, evidence); the last one trains.",
    )
    search_fallbacks: list[str] = Field(
        default_factory=list, description="Where the search could not decide and probed at random."
    )

    @property
    def decision(self) -> Decision | None:
        """The decision the stage trains with, None before one."""
        return self.decisions[-1] if self.decisions else None


class SegmentPublic(_View):
    """A finished segment (or cooldown branch): the instruction it ran and its losses."""

    instruction: Instruction = Field(description="The instruction the segment ran.")
    start_step: int = Field(description="Steps used before the segment.")
    steps_run: int = Field(description="Steps the report counted (one loss each).")
    extra_steps: int = Field(0, description="Steps trained past the segment, unreported.")
    loss_mean: float | None = Field(None, description="Mean of its finite training losses.")
    loss_last: float | None = Field(None, description="Mean of its last 10% of losses.")
    loss_noise: float | None = Field(
        None, description="Per-step loss noise (robust SD, trend removed)."
    )
    losses: list[float | None] = Field(
        default_factory=list,
        description="Training losses, as at most 64 bucket means (null: not finite).",
    )
    val_losses: list[tuple[int, float | None]] = Field(
        default_factory=list, description="(step within the segment, validation loss) pairs."
    )


def as_public(view: type[_View], records: Sequence[BaseModel]) -> list[dict[str, Any]]:
    """The JSON the API answers for controller ``records`` shown as ``view``: what a served job
    is compared with when the same reports run through an embedded `Controller`."""
    return [view.of(record).model_dump(mode="json") for record in records]
