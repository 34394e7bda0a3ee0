"""``/v1/jobs``: create, report, read, list and cancel tuning jobs.

Handlers that touch the controller or the database are plain ``def``: FastAPI runs them in the
thread pool, so a GP fit never blocks the event loop.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query

from autolr.protocol import Instruction, Report
from autolr.server.deps import AdminDep, JobCredentialsDep, JobDep, ServiceDep
from autolr.server.models import (
    ErrorAnswer,
    JobCreate,
    JobCreated,
    JobDetail,
    JobInfo,
    JobList,
    RecordedReport,
    RecordedReports,
)
from autolr.server.service import MAX_SEGMENT
from autolr.server.store import JobStatus

router = APIRouter(prefix="/v1/jobs", tags=["jobs"])


def _errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    return {status: {"model": ErrorAnswer} for status in statuses}


@router.post(
    "",
    status_code=201,
    response_model=JobCreated,
    responses=_errors(401, 413, 422),
    summary="Create a job",
)
def create_job(body: JobCreate, service: ServiceDep, _admin: AdminDep) -> JobCreated:
    """Create a tuning job from a `TunerConfig` and return its id, token and first instruction.

    An optional ``name`` (printable, at most 200 characters) labels the job in lists, the
    dashboard and exports; it changes no decision.

    Needs the admin key when the server has one (``AUTOLR_ADMIN_KEY``). Non-finite numbers are
    rejected here (they are only meaningful as losses, in reports).
    """
    created = service.create(body.tuner_config(), name=body.name)
    return JobCreated(job_id=created.job_id, token=created.token, instruction=created.instruction)


@router.post(
    "/{job_id}/reports",
    response_model=Instruction,
    responses=_errors(401, 404, 409, 413, 422),
    summary="Report a segment, get the next instruction",
)
def report(credentials: JobCredentialsDep, body: Report, service: ServiceDep) -> Instruction:
    """Report the losses of the awaited segment and get the next instruction.

    Idempotent: re-sending the report for a segment already recorded returns the same
    instruction and changes nothing. A resent report whose losses differ from the recorded ones
    is a 409 ``report_differs`` saying what differs (the record stands); one that only adds
    ``extra_steps`` to the latest report is merged (the budget counts them). Losses may be NaN
    or ±inf (as JSON ``null`` or the ``NaN`` / ``Infinity`` tokens): they mean divergence. A
    report for a later segment is a 409 naming the expected one; a 409 with
    ``retryable: true`` (a concurrent report won a race) may simply be resent. Integers beyond
    what the database stores are a 422 naming the field.
    """
    return service.report_as(credentials.job_id, credentials.token, body, admin=credentials.admin)


@router.get(
    "/{job_id}",
    response_model=JobDetail,
    responses=_errors(401, 404, 422),
    summary="Read a job",
)
def get_job(job: JobDep, service: ServiceDep) -> JobDetail:
    """The job's config, status, the instruction it awaits, the schedule so far, each stage's
    probes with their predicted losses, and the segment log with loss summaries."""
    return JobDetail.of_record(job, job.state, service.store.history(job.job_id))


@router.get(
    "/{job_id}/reports",
    response_model=RecordedReports,
    responses=_errors(401, 404, 422),
    summary="Read a job's recorded reports",
)
def recorded_reports(
    job: JobDep,
    service: ServiceDep,
    start: Annotated[int, Query(ge=0, le=MAX_SEGMENT, description="First segment.")] = 0,
    stop: Annotated[
        int | None, Query(ge=0, le=MAX_SEGMENT, description="Segment to stop before.")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> RecordedReports:
    """The reports the job recorded from segment ``start`` (with the instruction each one was
    answered with), a page at a time: what a client that lost track of the job (an old
    checkpoint, an outage) needs to continue from the job's record."""
    rows, next_start = service.recorded_reports(job, start=start, stop=stop, limit=limit)
    return RecordedReports(
        reports=[
            RecordedReport(
                segment=row.segment,
                report=Report.model_validate(row.report),
                answer=Instruction.model_validate(row.answer),
                created_at=row.created_at,
            )
            for row in rows
        ],
        next_start=next_start,
    )


@router.get("", response_model=JobList, responses=_errors(401, 422), summary="List jobs")
def list_jobs(
    service: ServiceDep,
    _admin: AdminDep,
    status: Annotated[JobStatus | None, Query(description="Only jobs with this status.")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0, le=2**31 - 1)] = 0,
) -> JobList:
    """Jobs, newest first, a page at a time. Needs the admin key when the server has one."""
    rows = service.store.list_jobs(status=status, limit=limit + 1, offset=offset)
    more = len(rows) > limit
    return JobList(
        jobs=[JobInfo.of(row) for row in rows[:limit]],
        next_offset=offset + limit if more else None,
    )


@router.delete(
    "/{job_id}",
    response_model=JobInfo,
    responses=_errors(401, 404, 422),
    summary="Cancel a job",
)
def cancel_job(job: JobDep, service: ServiceDep) -> JobInfo:
    """Cancel a running job: later reports get a 409 saying so. The job's record stays
    readable. Cancelling a finished or cancelled job changes nothing."""
    return JobInfo.of(service.cancel(job))
