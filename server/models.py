"""Request and response bodies of the HTTP API (the OpenAPI schema is generated from these).

Requests reuse the core models unchanged (`TunerConfig` to create a job, `Report` to report),
so the HTTP API validates exactly what embedded mode validates.
"""

from __future__ import annotations

import unicodedata
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from autolr.config import TunerConfig
from autolr.protocol import Instruction, Report
from autolr.server.schema import NAME_MAX_LENGTH
from autolr.server.store import HistoryRows, JobRecord, JobStatus, JobSummary
from autolr.server.views import SegmentPublic, StagePublic


class JobCreate(TunerConfig):
    """Body of ``POST /v1/jobs``: a `TunerConfig`, optionally with a ``name`` for people.

    The name is not part of the config (it changes no decision); it is stored beside it.
    """

    name: str | None = Field(
        None,
        max_length=NAME_MAX_LENGTH,
        description="A label for people (list, dashboard, export); not used by the tuner.",
    )

    @field_validator("name")
    @classmethod
    def _printable(cls, name: str | None) -> str | None:
        """A name is shown in terminals, logs and pages: no control characters, not blank."""
        if name is None:
            return None
        if not name.strip():
            raise ValueError("name must not be blank")
        bad = next((c for c in name if unicodedata.category(c).startswith("C")), None)
        if bad is not None:
            raise ValueError(f"name must be printable text; it contains {bad!r}")
        return name

    def tuner_config(self) -> TunerConfig:
        """The config without the name."""
        return TunerConfig.model_validate(self.model_dump(exclude={"name"}))


class JobCreated(BaseModel):
    """Answer to ``POST /v1/jobs``. The token is shown only here; keep it."""

    job_id: str
    token: str = Field(description="Send as 'Authorization: Bearer <token>' on this job's routes.")
    instruction: Instruction = Field(description="The first segment to run.")


class JobInfo(BaseModel):
    """A job as listed."""

    model_config = ConfigDict(from_attributes=True)

    job_id: str
    name: str | None = Field(None, description="The name given at creation, if any.")
    status: JobStatus
    segment: int = Field(description="The segment whose report the job awaits.")
    stage: int = Field(description="Stage of that segment (-1 during warmup).")
    steps_used: int = Field(description="Steps reported so far (probes and training).")
    total_steps: int | None
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, job: JobSummary) -> JobInfo:
        """The listing view of a stored job."""
        return cls.model_validate(job)


class JobDetail(JobInfo):
    """A job in full: config, what it awaits, the schedule so far, stages with their probes
    (and each probe's predicted loss) and the segment log with loss summaries, as the public
    views of `autolr.server.views` (not the controller's records)."""

    config: TunerConfig
    current: Instruction = Field(description="The instruction whose report is awaited.")
    finished: bool
    schedule: list[Instruction] = Field(description="Segments run so far, in order.")
    stages: list[StagePublic] = Field(description="Stages so far, with probes and decisions.")
    segments: list[SegmentPublic] = Field(description="Finished segments, with loss summaries.")
    branches: list[SegmentPublic] = Field(
        default_factory=list, description="Cooldown branches (kind 'branch'), in order."
    )

    @classmethod
    def of_record(
        cls, job: JobRecord, state: dict[str, Any], history: HistoryRows | None = None
    ) -> JobDetail:
        """The detail view from a stored job, its parsed controller state and its history rows.

        The stages are the finished ones of ``history`` and the state's latest one; a state of
        format 1 (which held the history itself) is read as it is.
        """
        config = state.get("config", job.config)  # the budget in force (set mid-run or not)
        if state.get("format") == 1:
            history = HistoryRows(
                stages=state.get("stages", []),
                segments=state.get("segments", []),
                branches=state.get("branches", []),
            )
        else:
            # rows written after the state was read (a report landing in between) left out
            rows = history or HistoryRows()
            upto = int(state["current"]["segment"])
            latest = state.get("stage")
            stages = [s for s in rows.stages if latest is None or s["stage"] < latest["stage"]]
            history = HistoryRows(
                stages=stages + ([latest] if latest is not None else []),
                segments=[s for s in rows.segments if s["instruction"]["segment"] < upto],
                branches=[s for s in rows.branches if s["instruction"]["segment"] < upto],
            )
        return cls.model_validate(
            {
                **JobInfo.of(job).model_dump(),
                "total_steps": config.get("total_steps"),
                "config": config,
                "current": state["current"],
                "finished": bool(state["current"].get("finished", False)),
                "schedule": [s["instruction"] for s in history.segments],
                "stages": history.stages,
                "segments": history.segments,
                "branches": history.branches,
            }
        )


class RecordedReport(BaseModel):
    """One report the job recorded, with the instruction it produced."""

    segment: int
    report: Report = Field(description="As recorded (non-finite losses travel as null).")
    answer: Instruction = Field(description="The instruction the report was answered with.")
    created_at: datetime


class RecordedReports(BaseModel):
    """A page of a job's recorded reports. ``next_start`` is None on the last page."""

    reports: list[RecordedReport]
    next_start: int | None


class JobList(BaseModel):
    """A page of jobs, newest first. ``next_offset`` is None on the last page."""

    jobs: list[JobInfo]
    next_offset: int | None


class Health(BaseModel):
    """Liveness: the process answers (it does not touch the database)."""

    status: Literal["ok"] = "ok"


class ErrorAnswer(BaseModel):
    """Every error answer (see `autolr.server.errors`)."""

    message: str = Field(description="What is wrong and how to fix it, in one line.")
    code: str = Field(description="Stable error code, e.g. wrong_segment, not_found, busy.")
    detail: Any = Field(description="FastAPI's detail: the message, or validation problems.")
    expected_segment: int | None = Field(None, description="For wrong_segment: the awaited one.")
    retryable: bool = Field(False, description="True when the same request may simply be resent.")
