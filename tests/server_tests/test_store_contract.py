"""The `JobStore` contract, run against every backend (SQLite file and PostgreSQL)."""

from __future__ import annotations

import math
import threading
from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa

from autolr.errors import JobNotFound
from autolr.server import db
from autolr.server.store import HistoryRows, JobUpdate, SqlStore, StaleVersion


def _update(
    segment: int, *, status: str = "running", marker: str = "", records: HistoryRows | None = None
) -> JobUpdate:
    return JobUpdate(
        state={"segment": segment, "marker": marker, "nested": {"values": [1.0, 2.0]}},
        status=status,  # type: ignore[arg-type]
        segment=segment,
        stage=segment // 4,
        steps_used=segment * 10,
        records=records or HistoryRows(),
    )


def _records(
    segment: int, *, branches: int = 0, stage: int | None = None, mark: str = ""
) -> HistoryRows:
    """What the report for ``segment`` made: its segment record, branches, a finished stage."""
    inst = {"segment": segment, "kind": "train"}
    return HistoryRows(
        segments=[{"instruction": inst, "mark": mark, "losses": [1.0, math.nan]}],
        branches=[{"instruction": inst, "branch": i} for i in range(branches)],
        stages=[] if stage is None else [{"stage": stage, "mark": mark}],
    )


@pytest.fixture
def store(database_url: str) -> Iterator[SqlStore]:
    engine = db.make_engine(database_url)
    db.upgrade(engine)
    store = SqlStore(engine)
    yield store
    store.close()


def _create(store: SqlStore, job_id: str = "job-a", **kwargs: Any) -> None:
    store.create(
        job_id,
        token_hash="h" * 64,
        config={"min_lr": 1e-3, "max_lr": 1.0},
        update=_update(0),
        total_steps=kwargs.get("total_steps", 1200),
        name=kwargs.get("name"),
    )


class TestJobStoreContract:
    """Each test states one clause of the `JobStore` docstring."""

    def test_create_then_load_round_trips_at_version_1(self, store: SqlStore) -> None:
        _create(store)
        job = store.load("job-a")
        assert (job.job_id, job.version, job.status, job.segment, job.total_steps) == (
            "job-a",
            1,
            "running",
            0,
            1200,
        )
        assert job.config == {"min_lr": 1e-3, "max_lr": 1.0}
        assert job.state == _update(0).state
        assert job.created_at.tzinfo is not None

    def test_create_twice_raises_value_error(self, store: SqlStore) -> None:
        _create(store)
        with pytest.raises(ValueError, match="already exists"):
            _create(store)

    def test_load_unknown_raises_job_not_found(self, store: SqlStore) -> None:
        with pytest.raises(JobNotFound):
            store.load("nope")

    def test_results_are_copies(self, store: SqlStore) -> None:
        _create(store)
        job = store.load("job-a")
        job.state["nested"]["values"].append(99.0)
        assert store.load("job-a").state["nested"]["values"] == [1.0, 2.0]

    def test_save_bumps_version_and_stores_report_and_answer(self, store: SqlStore) -> None:
        _create(store)
        report = {"segment": 0, "train_losses": [1.0, math.nan, math.inf, -math.inf]}
        version = store.save_report(
            "job-a",
            expected_version=1,
            segment=0,
            report=report,
            answer={"segment": 1},
            update=_update(1),
        )
        assert version == 2
        job = store.load("job-a")
        assert (job.version, job.segment, job.steps_used) == (2, 1, 10)
        assert store.answer_for("job-a", 0) == {"segment": 1}
        assert store.answer_for("job-a", 1) is None
        [stored] = store.reports("job-a")
        losses = stored.report["train_losses"]
        assert losses[0] == 1.0 and math.isnan(losses[1]) and losses[2:] == [math.inf, -math.inf]

    def test_stale_version_raises_and_changes_nothing(self, store: SqlStore) -> None:
        _create(store)
        store.save_report(
            "job-a",
            expected_version=1,
            segment=0,
            report={},
            answer={"a": 1},
            update=_update(1, marker="first"),
        )
        with pytest.raises(StaleVersion):
            store.save_report(
                "job-a",
                expected_version=1,
                segment=1,
                report={},
                answer={"a": 2},
                update=_update(2, marker="second"),
            )
        job = store.load("job-a")
        assert (job.version, job.state["marker"]) == (2, "first")
        assert store.answer_for("job-a", 1) is None

    def test_second_report_for_a_segment_raises_stale_version(self, store: SqlStore) -> None:
        _create(store)
        store.save_report(
            "job-a", expected_version=1, segment=0, report={}, answer={"a": 1}, update=_update(1)
        )
        with pytest.raises(StaleVersion):
            store.save_report(
                "job-a",
                expected_version=2,
                segment=0,
                report={},
                answer={"a": 2},
                update=_update(2),
            )
        assert store.load("job-a").version == 2
        assert store.answer_for("job-a", 0) == {"a": 1}

    def test_concurrent_saves_from_one_version_apply_once(self, store: SqlStore) -> None:
        _create(store)
        barrier = threading.Barrier(6)
        outcomes: list[str] = []

        def save(i: int) -> None:
            barrier.wait()
            try:
                store.save_report(
                    "job-a",
                    expected_version=1,
                    segment=0,
                    report={"i": i},
                    answer={"i": i},
                    update=_update(1, marker=str(i)),
                )
                outcomes.append("won")
            except StaleVersion:
                outcomes.append("lost")

        threads = [threading.Thread(target=save, args=(i,)) for i in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert sorted(outcomes) == ["lost"] * 5 + ["won"]
        job = store.load("job-a")
        assert job.version == 2
        assert store.answer_for("job-a", 0) == {"i": int(job.state["marker"])}

    def test_cancel_bumps_version_so_racing_saves_fail(self, store: SqlStore) -> None:
        _create(store)
        cancelled = store.cancel("job-a")
        assert (cancelled.status, cancelled.version) == ("cancelled", 2)
        with pytest.raises(StaleVersion):
            store.save_report(
                "job-a", expected_version=2, segment=0, report={}, answer={}, update=_update(1)
            )
        assert store.cancel("job-a").version == 2  # cancelling again changes nothing

    def test_cancel_leaves_finished_jobs_alone(self, store: SqlStore) -> None:
        _create(store)
        store.save_report(
            "job-a",
            expected_version=1,
            segment=0,
            report={},
            answer={},
            update=_update(1, status="finished"),
        )
        assert store.cancel("job-a").status == "finished"

    def test_cancel_unknown_raises_job_not_found(self, store: SqlStore) -> None:
        with pytest.raises(JobNotFound):
            store.cancel("nope")

    def test_list_newest_first_with_filter_and_paging(self, store: SqlStore) -> None:
        for name in ("j1", "j2", "j3"):
            _create(store, name)
        store.cancel("j2")
        assert [j.job_id for j in store.list_jobs()] == ["j3", "j2", "j1"]
        assert [j.job_id for j in store.list_jobs(status="cancelled")] == ["j2"]
        assert [j.job_id for j in store.list_jobs(limit=1, offset=1)] == ["j2"]
        assert store.count_by_status() == {"running": 2, "finished": 0, "cancelled": 1}

    def test_a_name_is_stored_and_listed(self, store: SqlStore) -> None:
        _create(store, "named", name="résumé run ✓")
        _create(store, "unnamed")
        assert store.load("named").name == "résumé run ✓"
        assert {j.job_id: j.name for j in store.list_jobs()} == {
            "named": "résumé run ✓",
            "unnamed": None,
        }

    def test_saves_append_their_records_to_the_history_in_order(self, store: SqlStore) -> None:
        _create(store)
        assert store.history("job-a") == HistoryRows()
        for segment in range(3):
            made = _records(segment, branches=segment, stage=0 if segment == 1 else None)
            store.save_report(
                "job-a",
                expected_version=segment + 1,
                segment=segment,
                report={},
                answer={},
                update=_update(segment + 1, records=made),
            )
        history = store.history("job-a")
        assert [s["instruction"]["segment"] for s in history.segments] == [0, 1, 2]
        assert math.isnan(history.segments[0]["losses"][1])
        assert [(b["instruction"]["segment"], b["branch"]) for b in history.branches] == [
            (1, 0),
            (2, 0),
            (2, 1),
        ]
        assert history.stages == [{"stage": 0, "mark": ""}]

    def test_a_stale_save_appends_no_records(self, store: SqlStore) -> None:
        _create(store)
        store.save_report(
            "job-a", expected_version=1, segment=0, report={}, answer={}, update=_update(1)
        )
        with pytest.raises(StaleVersion):
            store.save_report(
                "job-a",
                expected_version=1,
                segment=1,
                report={},
                answer={},
                update=_update(2, records=_records(1, branches=1, stage=0)),
            )
        assert store.history("job-a") == HistoryRows()

    def test_amend_replaces_the_records_of_its_report_only(self, store: SqlStore) -> None:
        _create(store)
        for segment in range(2):
            store.save_report(
                "job-a",
                expected_version=segment + 1,
                segment=segment,
                report={},
                answer={},
                update=_update(segment + 1, records=_records(segment, stage=segment)),
            )
        store.amend_report(
            "job-a",
            expected_version=3,
            segment=1,
            report={"extra_steps": 3},
            answer={},
            update=_update(2, records=_records(1, branches=2, mark="amended")),
        )
        history = store.history("job-a")
        assert [(s["instruction"]["segment"], s["mark"]) for s in history.segments] == [
            (0, ""),
            (1, "amended"),
        ]
        assert len(history.branches) == 2 and history.stages == [{"stage": 0, "mark": ""}]

    def test_history_results_are_copies_and_unknown_jobs_have_none(self, store: SqlStore) -> None:
        _create(store)
        store.save_report(
            "job-a",
            expected_version=1,
            segment=0,
            report={},
            answer={},
            update=_update(1, records=_records(0)),
        )
        store.history("job-a").segments[0]["mark"] = "changed"
        assert store.history("job-a").segments[0]["mark"] == ""
        assert store.history("nope") == HistoryRows()

    def test_upgrade_is_idempotent(self, store: SqlStore) -> None:
        _create(store)
        db.upgrade(store.engine)
        assert store.load("job-a").version == 1
        with store.engine.connect() as conn:
            assert (
                conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalar() == "0003"
            )


def test_concurrent_first_migrations_migrate_once(database_url: str) -> None:
    """Servers starting together on an empty database (the migration lock) all succeed."""
    engines = [db.make_engine(database_url) for _ in range(4)]
    barrier = threading.Barrier(len(engines))
    errors: list[BaseException] = []

    def migrate(engine: sa.Engine) -> None:
        barrier.wait()
        try:
            db.upgrade(engine)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=migrate, args=(e,)) for e in engines]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for engine in engines:
        engine.dispose()
    assert errors == []
    store = SqlStore(db.make_engine(database_url))
    _create(store)
    assert store.load("job-a").version == 1
    store.close()


def test_jobs_created_before_names_upgrade_to_unnamed(database_url: str) -> None:
    """A database at revision 0001 with a job migrates to 0002: the job loads, unnamed."""
    engine = db.make_engine(database_url)
    db.upgrade(engine, "0001")
    now = "2026-01-01 00:00:00"
    with engine.begin() as conn:
        conn.execute(
            sa.text(
                "INSERT INTO jobs (id, token_hash, status, version, config, state, segment, "
                "stage, steps_used, total_steps, created_at, updated_at) VALUES ('old', :h, "
                "'running', 1, '{}', '{}', 0, -1, 0, NULL, :t, :t)"
            ),
            {"h": "h" * 64, "t": now},
        )
    db.upgrade(engine)
    store = SqlStore(engine)
    assert store.load("old").name is None
    store.close()
