"""The database tables, as SQLAlchemy Core metadata (Alembic's target and the store's queries).

``jobs`` (one row per job: the controller state, of bounded size, and a few denormalized
columns for listing), ``reports`` (one row per applied report: the report and the instruction
it produced, so a duplicate gets the stored answer and the log can be replayed), and the job's
history, append-only: ``segment_log`` (one row per finished segment and cooldown branch) and
``stage_log`` (one row per finished stage), each written by the report that finished it, so a
report writes the same amount at segment 10 and at segment 10,000. JSON travels in
``Text`` columns written with ``allow_nan`` so NaN and ±inf losses round-trip exactly on both
SQLite and PostgreSQL (PostgreSQL's json type rejects NaN).
"""

from __future__ import annotations

import sqlalchemy as sa

metadata = sa.MetaData()

#: Longest job name, in characters (a label for people, not a document).
NAME_MAX_LENGTH = 200

jobs = sa.Table(
    "jobs",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("token_hash", sa.String(64), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    # Optimistic concurrency: every write is UPDATE ... WHERE version = :expected.
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("config", sa.Text, nullable=False),
    sa.Column("state", sa.Text, nullable=False),
    sa.Column("segment", sa.Integer, nullable=False),
    sa.Column("stage", sa.Integer, nullable=False),
    sa.Column("steps_used", sa.BigInteger, nullable=False),
    sa.Column("total_steps", sa.BigInteger, nullable=True),
    sa.Column("name", sa.String(NAME_MAX_LENGTH), nullable=True),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    sa.Index("ix_jobs_status", "status"),
    sa.Index("ix_jobs_created_at", "created_at"),
)


def _job_key() -> sa.Column[str]:
    """The key of a job's child rows (reports, history): deleted with the job."""
    return sa.Column(
        "job_id", sa.String(64), sa.ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True
    )


reports = sa.Table(
    "reports",
    metadata,
    _job_key(),
    sa.Column("segment", sa.Integer, primary_key=True),
    sa.Column("report", sa.Text, nullable=False),
    sa.Column("answer", sa.Text, nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
)

#: One row per finished segment (``position`` 0) and per cooldown branch run inside it
#: (``position`` 1, 2, ...): `autolr.controller.SegmentRecord` as JSON.
segment_log = sa.Table(
    "segment_log",
    metadata,
    _job_key(),
    sa.Column("segment", sa.Integer, primary_key=True),
    sa.Column("position", sa.Integer, primary_key=True),
    sa.Column("record", sa.Text, nullable=False),
)

#: One row per finished stage: `autolr.controller.StageRecord` as JSON. ``segment`` is the
#: report that finished it (the one whose answer began the next stage): amending that report
#: replaces the row.
stage_log = sa.Table(
    "stage_log",
    metadata,
    _job_key(),
    sa.Column("stage", sa.Integer, primary_key=True),
    sa.Column("segment", sa.Integer, nullable=False),
    sa.Column("record", sa.Text, nullable=False),
    sa.Index("ix_stage_log_segment", "job_id", "segment"),
)
