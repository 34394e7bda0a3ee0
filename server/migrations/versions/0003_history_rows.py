"""A job's history in append-only rows; the stored controller state keeps what decisions read.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01

Until now ``jobs.state`` (controller state format 1) held every finished segment, cooldown
branch and stage, so every report parsed and rewrote the whole history. Format 2 holds the
latest stage, the latest segment and running totals; the history moves to ``segment_log`` and
``stage_log`` (see `autolr.server.schema`). The upgrade converts every stored format-1 state
with `autolr.controller.upgrade_state` (the same conversion that loads an old embedded
checkpoint, so the job's future decisions are unchanged) and writes its history rows; the
downgrade puts the rows back into format-1 states.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | None = None
depends_on: str | None = None

_jobs = sa.table("jobs", sa.column("id", sa.String), sa.column("state", sa.Text))
_segment_log = sa.table(
    "segment_log",
    sa.column("job_id", sa.String),
    sa.column("segment", sa.Integer),
    sa.column("position", sa.Integer),
    sa.column("record", sa.Text),
)
_stage_log = sa.table(
    "stage_log",
    sa.column("job_id", sa.String),
    sa.column("stage", sa.Integer),
    sa.column("segment", sa.Integer),
    sa.column("record", sa.Text),
)


def _dumps(value: Any) -> str:
    # as `autolr.server.store.dumps` (NaN and ±inf kept): migrations do not import the app
    return json.dumps(value, allow_nan=True, separators=(",", ":"))


def _states(conn: sa.Connection) -> Iterator[tuple[str, dict[str, Any]]]:
    """Every job's id and parsed state, one job in memory at a time."""
    ids = [row.id for row in conn.execute(sa.select(_jobs.c.id).order_by(_jobs.c.id))]
    for job_id in ids:
        text = conn.execute(sa.select(_jobs.c.state).where(_jobs.c.id == job_id)).scalar_one()
        yield job_id, json.loads(text)


def _finished_by(stage: int, segments: list[dict[str, Any]], current: dict[str, Any]) -> int:
    """The report that finished ``stage``: the one answered with stage ``stage + 1``'s first
    segment (the first segment that names that stage)."""
    nxt = next(
        (s["instruction"]["segment"] for s in segments if s["instruction"]["stage"] == stage + 1),
        current["segment"],
    )
    return int(nxt) - 1


def upgrade() -> None:
    """Create ``segment_log`` and ``stage_log``; move every format-1 state's history there."""
    op.create_table(
        "segment_log",
        sa.Column(
            "job_id",
            sa.String(64),
            sa.ForeignKey("jobs.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("segment", sa.Integer, primary_key=True),
        sa.Column("position", sa.Integer, primary_key=True),
        sa.Column("record", sa.Text, nullable=False),
    )
    op.create_table(
        "stage_log",
        sa.Column(
            "job_id",
            sa.String(64),
            sa.ForeignKey("jobs.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("stage", sa.Integer, primary_key=True),
        sa.Column("segment", sa.Integer, nullable=False),
        sa.Column("record", sa.Text, nullable=False),
    )
    op.create_index("ix_stage_log_segment", "stage_log", ["job_id", "segment"])

    from autolr.controller import upgrade_state

    conn = op.get_bind()
    for job_id, state in _states(conn):
        if state.get("format") != 1:
            continue
        new, history = upgrade_state(state)
        old_segments = state.get("segments", [])
        segment_rows = [
            {
                "job_id": job_id,
                "segment": s.instruction.segment,
                "position": 0,
                "record": _dumps(s.model_dump(mode="json")),
            }
            for s in history.segments
        ]
        positions: dict[int, int] = {}
        for b in history.branches:
            positions[b.instruction.segment] = positions.get(b.instruction.segment, 0) + 1
            segment_rows.append(
                {
                    "job_id": job_id,
                    "segment": b.instruction.segment,
                    "position": positions[b.instruction.segment],
                    "record": _dumps(b.model_dump(mode="json")),
                }
            )
        stage_rows = [
            {
                "job_id": job_id,
                "stage": s.stage,
                "segment": _finished_by(s.stage, old_segments, state["current"]),
                "record": _dumps(s.model_dump(mode="json")),
            }
            for s in history.stages
        ]
        if segment_rows:
            conn.execute(_segment_log.insert(), segment_rows)
        if stage_rows:
            conn.execute(_stage_log.insert(), stage_rows)
        conn.execute(_jobs.update().where(_jobs.c.id == job_id).values(state=_dumps(new)))


def downgrade() -> None:
    """Put each job's history rows back into a format-1 state; drop the history tables."""
    conn = op.get_bind()
    for job_id, state in _states(conn):
        if state.get("format") != 2:
            continue
        rows = conn.execute(
            sa.select(_segment_log.c.position, _segment_log.c.record)
            .where(_segment_log.c.job_id == job_id)
            .order_by(_segment_log.c.segment, _segment_log.c.position)
        ).all()
        stages = [
            json.loads(text)
            for text in conn.execute(
                sa.select(_stage_log.c.record)
                .where(_stage_log.c.job_id == job_id)
                .order_by(_stage_log.c.stage)
            ).scalars()
        ]
        if state.get("stage") is not None:
            stages.append(state["stage"])
        old = {
            "format": 1,
            "config": state["config"],
            "steps_used": state.get("steps_used", 0),
            "current": state["current"],
            "stages": stages,
            "segments": [json.loads(r.record) for r in rows if r.position == 0],
            "branches": [json.loads(r.record) for r in rows if r.position > 0],
        }
        conn.execute(_jobs.update().where(_jobs.c.id == job_id).values(state=_dumps(old)))
    op.drop_index("ix_stage_log_segment", table_name="stage_log")
    op.drop_table("stage_log")
    op.drop_table("segment_log")
