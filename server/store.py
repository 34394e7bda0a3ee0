"""Durable job storage: the `JobStore` contract and its SQLAlchemy implementation, `SqlStore`.

The service layer around it is ``load → advance the controller → save(expected_version)``: the
store never decides anything, it only guarantees that a save is atomic and that two saves
from the same loaded version cannot both succeed.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal, Protocol, get_args

import sqlalchemy as sa

from autolr.errors import JobNotFound, StaleVersion
from autolr.server.schema import jobs, reports, segment_log, stage_log

JobStatus = Literal["running", "finished", "cancelled"]
JOB_STATUSES: tuple[JobStatus, ...] = get_args(JobStatus)


@dataclass(frozen=True)
class JobSummary:
    """The listing columns of a job (no state: cheap to read many)."""

    job_id: str
    status: JobStatus
    segment: int
    stage: int
    steps_used: int
    total_steps: int | None
    created_at: datetime
    updated_at: datetime
    name: str | None  # what the user called the job (None: unnamed)


@dataclass(frozen=True)
class JobRecord(JobSummary):
    """A whole job as stored. ``state`` is `Controller.state_dict()` of the current version."""

    token_hash: str
    version: int
    config: dict[str, Any]
    state: dict[str, Any]


#: `JobUpdate.total_steps` of a save that leaves the job's budget as it is.
UNCHANGED = -1


@dataclass(frozen=True)
class HistoryRows:
    """A job's finished records as JSON-ready dicts, oldest first (`autolr.controller.History`).

    In a `JobUpdate`, the records its report made (appended to the job's rows); from
    `JobStore.history`, all of them. A cooldown branch's record names the segment it ran in.
    """

    stages: list[dict[str, Any]] = field(default_factory=list)
    segments: list[dict[str, Any]] = field(default_factory=list)
    branches: list[dict[str, Any]] = field(default_factory=list)


@dataclass(frozen=True)
class JobUpdate:
    """What a save changes: the new controller state, the listing columns derived from it,
    and the finished records the report made (``records``, appended to the job's history).

    ``total_steps`` is the budget in force when a report set one mid-run (`UNCHANGED`: as is).
    """

    state: dict[str, Any]
    status: JobStatus
    segment: int
    stage: int
    steps_used: int
    total_steps: int | None = UNCHANGED
    records: HistoryRows = field(default_factory=HistoryRows)

    def budget(self) -> dict[str, int | None]:
        """The ``total_steps`` column's new value, when the report changed it."""
        return {} if self.total_steps == UNCHANGED else {"total_steps": self.total_steps}


@dataclass(frozen=True)
class StoredReport:
    """One applied report and the instruction it produced (both as JSON-ready dicts)."""

    segment: int
    report: dict[str, Any]
    answer: dict[str, Any]
    created_at: datetime


class JobStore(Protocol):
    """Where jobs live between requests.

    Contract (every implementation; `tests/server_tests/test_store_contract.py` checks it):
        - Pass-by-value: arguments are copied on the way in, results are fresh objects; mutating
          either never changes what is stored.
        - Thread safety: every method may be called from many threads (and processes, for a
          shared database) at once.
        - ``create`` stores a new job at version 1; an existing id raises `ValueError`.
        - ``load`` returns the job's current version or raises `autolr.JobNotFound`.
        - ``save_report`` atomically stores the report and its answer, replaces the state,
          appends ``update.records`` to the job's history and bumps the version, but only if
          the job is still at ``expected_version`` and has no report for that segment;
          otherwise it raises `StaleVersion` and changes nothing. It returns the new version.
          Once it returns, the write is durable. Its cost does not grow with the job's history.
        - ``answer_for`` returns the stored answer to the report for ``segment``, or None;
          ``report_for`` the stored report and answer, or None.
        - ``token_hash`` returns the job's token hash, or None for an unknown id, reading
          nothing else (the cost of an authorization must not depend on the job's size).
        - ``amend_report`` replaces the stored report and answer of ``segment``, the state and
          the history records that report made, under the same version rule as
          ``save_report``; the report must exist.
        - ``history`` returns the job's finished records (`HistoryRows`), oldest first; an unknown
          id has none.
        - ``cancel`` moves a running job to ``cancelled`` (bumping the version), so a save
          racing with it fails; it returns the job as stored afterwards and raises
          `autolr.JobNotFound` for an unknown id. Finished or cancelled jobs are left as they are.
        - ``list_jobs`` returns summaries, newest first; ``count_by_status`` counts every status.
    """

    def create(
        self,
        job_id: str,
        *,
        token_hash: str,
        config: Mapping[str, Any],
        update: JobUpdate,
        total_steps: int | None,
        name: str | None = None,
    ) -> JobRecord: ...

    def load(self, job_id: str) -> JobRecord: ...

    def save_report(
        self,
        job_id: str,
        *,
        expected_version: int,
        segment: int,
        report: Mapping[str, Any],
        answer: Mapping[str, Any],
        update: JobUpdate,
    ) -> int: ...

    def answer_for(self, job_id: str, segment: int) -> dict[str, Any] | None: ...

    def report_for(self, job_id: str, segment: int) -> StoredReport | None: ...

    def token_hash(self, job_id: str) -> str | None: ...

    def history(self, job_id: str) -> HistoryRows: ...

    def amend_report(
        self,
        job_id: str,
        *,
        expected_version: int,
        segment: int,
        report: Mapping[str, Any],
        answer: Mapping[str, Any],
        update: JobUpdate,
    ) -> int: ...

    def reports(
        self, job_id: str, *, start: int = 0, stop: int | None = None, limit: int | None = None
    ) -> list[StoredReport]: ...

    def cancel(self, job_id: str) -> JobRecord: ...

    def list_jobs(
        self, *, status: JobStatus | None = None, limit: int = 100, offset: int = 0
    ) -> list[JobSummary]: ...

    def count_by_status(self) -> dict[JobStatus, int]: ...

    def close(self) -> None: ...


def dumps(value: Any) -> str:
    """JSON text that keeps NaN and ±inf (as the ``NaN``/``Infinity`` tokens)."""
    return json.dumps(value, allow_nan=True, separators=(",", ":"))


def loads(text: str) -> Any:
    """Inverse of `dumps`."""
    return json.loads(text)


def _utc(value: datetime) -> datetime:
    # SQLite hands timezone-aware values back naive; they were written in UTC.
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def _now() -> datetime:
    return datetime.now(UTC)


_SUMMARY_COLUMNS = (
    jobs.c.id,
    jobs.c.status,
    jobs.c.segment,
    jobs.c.stage,
    jobs.c.steps_used,
    jobs.c.total_steps,
    jobs.c.created_at,
    jobs.c.updated_at,
    jobs.c.name,
)


def _advance_version(
    conn: sa.Connection, job_id: str, expected_version: int, update: JobUpdate, now: datetime
) -> None:
    """Write ``update`` as the job's next version, or raise `StaleVersion` when another
    writer got there first (or the job is no longer running): the optimistic check."""
    result = conn.execute(
        jobs.update()
        .where(
            jobs.c.id == job_id,
            jobs.c.version == expected_version,
            jobs.c.status == "running",
        )
        .values(
            version=expected_version + 1,
            state=dumps(update.state),
            status=update.status,
            segment=update.segment,
            stage=update.stage,
            steps_used=update.steps_used,
            updated_at=now,
            **update.budget(),
        )
    )
    if result.rowcount != 1:
        raise StaleVersion(job_id, expected_version)


def _append_history(conn: sa.Connection, job_id: str, segment: int, records: HistoryRows) -> None:
    """Insert the records the report for ``segment`` made (a branch is numbered within its
    segment from 1, after the segment's own row at position 0)."""
    rows = [
        {
            "job_id": job_id,
            "segment": int(r["instruction"]["segment"]),
            "position": 0,
            "record": dumps(r),
        }
        for r in records.segments
    ]
    positions: dict[int, int] = {}
    for r in records.branches:
        at = int(r["instruction"]["segment"])
        positions[at] = positions.get(at, 0) + 1
        rows.append(
            {"job_id": job_id, "segment": at, "position": positions[at], "record": dumps(r)}
        )
    if rows:
        conn.execute(segment_log.insert(), rows)
    stages = [
        {"job_id": job_id, "stage": int(r["stage"]), "segment": segment, "record": dumps(r)}
        for r in records.stages
    ]
    if stages:
        conn.execute(stage_log.insert(), stages)


def _summary_fields(row: Any) -> dict[str, Any]:
    return {
        "job_id": row.id,
        "status": row.status,
        "segment": row.segment,
        "stage": row.stage,
        "steps_used": row.steps_used,
        "total_steps": row.total_steps,
        "created_at": _utc(row.created_at),
        "updated_at": _utc(row.updated_at),
        "name": row.name,
    }


class SqlStore:
    """`JobStore` on SQLAlchemy Core: SQLite (WAL) or PostgreSQL (psycopg 3).

    Every write is one transaction. A save is ``UPDATE jobs ... WHERE id = :id AND version =
    :expected`` followed by ``INSERT INTO reports`` and the inserts of the records the report
    finished (``segment_log``, ``stage_log``: append-only, so a save writes the same amount
    whatever the job's age); zero updated rows (or a duplicate row) means another writer won,
    and the transaction rolls back. Loads read committed data
    only and hold no lock while the controller decides, so a slow decision blocks nobody.

    Args:
        engine: from `autolr.server.db.make_engine`, already migrated.
    """

    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine

    def create(
        self,
        job_id: str,
        *,
        token_hash: str,
        config: Mapping[str, Any],
        update: JobUpdate,
        total_steps: int | None,
        name: str | None = None,
    ) -> JobRecord:
        now = _now()
        try:
            with self.engine.begin() as conn:
                conn.execute(
                    jobs.insert().values(
                        id=job_id,
                        token_hash=token_hash,
                        status=update.status,
                        version=1,
                        config=dumps(dict(config)),
                        state=dumps(update.state),
                        segment=update.segment,
                        stage=update.stage,
                        steps_used=update.steps_used,
                        total_steps=total_steps,
                        name=name,
                        created_at=now,
                        updated_at=now,
                    )
                )
                _append_history(conn, job_id, -1, update.records)
        except sa.exc.IntegrityError:
            raise ValueError(f"job id {job_id!r} already exists") from None
        return self.load(job_id)

    def token_hash(self, job_id: str) -> str | None:
        with self.engine.connect() as conn:
            value = conn.execute(
                sa.select(jobs.c.token_hash).where(jobs.c.id == job_id)
            ).scalar_one_or_none()
        return None if value is None else str(value)

    def load(self, job_id: str) -> JobRecord:
        with self.engine.connect() as conn:
            row = conn.execute(
                sa.select(
                    *_SUMMARY_COLUMNS,
                    jobs.c.token_hash,
                    jobs.c.version,
                    jobs.c.config,
                    jobs.c.state,
                ).where(jobs.c.id == job_id)
            ).one_or_none()
        if row is None:
            raise JobNotFound(job_id)
        return JobRecord(
            **_summary_fields(row),
            token_hash=row.token_hash,
            version=row.version,
            config=loads(row.config),
            state=loads(row.state),
        )

    def save_report(
        self,
        job_id: str,
        *,
        expected_version: int,
        segment: int,
        report: Mapping[str, Any],
        answer: Mapping[str, Any],
        update: JobUpdate,
    ) -> int:
        now = _now()
        try:
            with self.engine.begin() as conn:
                _advance_version(conn, job_id, expected_version, update, now)
                conn.execute(
                    reports.insert().values(
                        job_id=job_id,
                        segment=segment,
                        report=dumps(dict(report)),
                        answer=dumps(dict(answer)),
                        created_at=now,
                    )
                )
                _append_history(conn, job_id, segment, update.records)
        except sa.exc.IntegrityError:
            raise StaleVersion(job_id, expected_version) from None
        return expected_version + 1

    def history(self, job_id: str) -> HistoryRows:
        with self.engine.connect() as conn:
            segments = conn.execute(
                sa.select(segment_log.c.position, segment_log.c.record)
                .where(segment_log.c.job_id == job_id)
                .order_by(segment_log.c.segment, segment_log.c.position)
            ).all()
            stages = conn.execute(
                sa.select(stage_log.c.record)
                .where(stage_log.c.job_id == job_id)
                .order_by(stage_log.c.stage)
            ).scalars()
            return HistoryRows(
                stages=[loads(text) for text in stages],
                segments=[loads(r.record) for r in segments if r.position == 0],
                branches=[loads(r.record) for r in segments if r.position > 0],
            )

    def answer_for(self, job_id: str, segment: int) -> dict[str, Any] | None:
        with self.engine.connect() as conn:
            text = conn.execute(
                sa.select(reports.c.answer).where(
                    reports.c.job_id == job_id, reports.c.segment == segment
                )
            ).scalar_one_or_none()
        return None if text is None else dict(loads(text))

    def report_for(self, job_id: str, segment: int) -> StoredReport | None:
        found = self.reports(job_id, start=segment, stop=segment + 1)
        return found[0] if found else None

    def amend_report(
        self,
        job_id: str,
        *,
        expected_version: int,
        segment: int,
        report: Mapping[str, Any],
        answer: Mapping[str, Any],
        update: JobUpdate,
    ) -> int:
        now = _now()
        with self.engine.begin() as conn:
            _advance_version(conn, job_id, expected_version, update, now)
            changed = conn.execute(
                reports.update()
                .where(reports.c.job_id == job_id, reports.c.segment == segment)
                .values(report=dumps(dict(report)), answer=dumps(dict(answer)))
            )
            if changed.rowcount != 1:
                raise StaleVersion(job_id, expected_version)  # rolls the job update back
            for table in (segment_log, stage_log):
                conn.execute(
                    table.delete().where(table.c.job_id == job_id, table.c.segment == segment)
                )
            _append_history(conn, job_id, segment, update.records)
        return expected_version + 1

    def reports(
        self, job_id: str, *, start: int = 0, stop: int | None = None, limit: int | None = None
    ) -> list[StoredReport]:
        query = sa.select(reports).where(reports.c.job_id == job_id, reports.c.segment >= start)
        if stop is not None:
            query = query.where(reports.c.segment < stop)
        query = query.order_by(reports.c.segment)
        if limit is not None:
            query = query.limit(limit)
        with self.engine.connect() as conn:
            rows = conn.execute(query).all()
        return [
            StoredReport(
                segment=row.segment,
                report=loads(row.report),
                answer=loads(row.answer),
                created_at=_utc(row.created_at),
            )
            for row in rows
        ]

    def cancel(self, job_id: str) -> JobRecord:
        with self.engine.begin() as conn:
            conn.execute(
                jobs.update()
                .where(jobs.c.id == job_id, jobs.c.status == "running")
                .values(status="cancelled", version=jobs.c.version + 1, updated_at=_now())
            )
        return self.load(job_id)

    def list_jobs(
        self, *, status: JobStatus | None = None, limit: int = 100, offset: int = 0
    ) -> list[JobSummary]:
        query = sa.select(*_SUMMARY_COLUMNS).order_by(jobs.c.created_at.desc(), jobs.c.id)
        if status is not None:
            query = query.where(jobs.c.status == status)
        with self.engine.connect() as conn:
            rows = conn.execute(query.limit(limit).offset(offset)).all()
        return [JobSummary(**_summary_fields(row)) for row in rows]

    def count_by_status(self) -> dict[JobStatus, int]:
        counts: dict[JobStatus, int] = dict.fromkeys(JOB_STATUSES, 0)
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(jobs.c.status, sa.func.count()).group_by(jobs.c.status)
            ).all()
        for status, count in rows:
            if status in counts:
                counts[status] = int(count)
        return counts

    def close(self) -> None:
        self.engine.dispose()
