"""A job's history in its own rows (issue 19): old stored states migrate, decisions stay.

Jobs stored before the history moved out of the state (controller state format 1, database
revision 0002) are converted by migration 0003: the state becomes the bounded format 2, the
history becomes rows, and the job goes on deciding exactly as it would have. Downgrading puts
the history back into the state.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
import sqlalchemy as sa
from server_helpers import bearer

from autolr import Controller, TunerConfig
from autolr.protocol import Branch, Instruction, Report
from autolr.server import db
from autolr.server.metrics import Metrics
from autolr.server.service import JobService
from autolr.server.store import SqlStore, dumps
from autolr.server.views import SegmentPublic, StagePublic
from autolr.simulate import NoisyQuadratic

OPEN: dict[str, Any] = {
    "min_lr": 1e-3,
    "max_lr": 1.0,
    "tau_min": 20,
    "tau_max": 40,
    "probes_per_stage": 3,
    "initial_probes": 3,  # no GP fits: fast
    "seed": 3,
}


def _follow(model: NoisyQuadratic, inst: Instruction) -> Report:
    """The model's report, with a cooldown branch inside every train segment."""
    report = model.follow(inst)
    if inst.kind != "train":
        return report
    branch = Branch(at=2, steps=5, lr=inst.lr, lr_end=inst.lr * 1e-3, train_losses=[0.5] * 5)
    return report.model_copy(update={"branches": [branch]})


def _old_job(segments: int) -> tuple[Controller, NoisyQuadratic, dict[str, Any]]:
    """A controller ``segments`` reports in, and its state as format 1 stored it."""
    ctl, model = Controller(TunerConfig(**OPEN)), NoisyQuadratic(seed=4)
    inst = ctl.start()
    for _ in range(segments):
        inst = ctl.report(_follow(model, inst))
    return ctl, model, {"format": 1, **ctl.record()}


def _insert_old_job(engine: sa.Engine, job_id: str, state: dict[str, Any]) -> None:
    with engine.begin() as conn:
        conn.execute(
            sa.text(
                "INSERT INTO jobs (id, token_hash, status, version, config, state, segment, "
                "stage, steps_used, total_steps, created_at, updated_at) VALUES (:id, :h, "
                "'running', 7, :config, :state, :segment, 0, :steps, NULL, :t, :t)"
            ),
            {
                "id": job_id,
                "h": "h" * 64,
                "config": dumps(state["config"]),
                "state": dumps(state),
                "segment": state["current"]["segment"],
                "steps": state["steps_used"],
                "t": "2026-01-01 00:00:00",
            },
        )


def test_a_stored_format_1_state_migrates_to_rows_and_decides_on_identically(
    database_url: str,
) -> None:
    ctl, model, old = _old_job(30)
    assert old["branches"] and len(old["stages"]) >= 3
    engine = _at_0002(database_url)
    _insert_old_job(engine, "old", old)
    db.upgrade(engine)
    store = SqlStore(engine)
    job = store.load("old")
    assert job.state == ctl.state_dict()  # the bounded state the controller keeps now
    history = store.history("old")
    assert history.segments == old["segments"] and history.branches == old["branches"]
    assert history.stages == old["stages"][:-1]  # the latest stage stays in the state
    service = JobService(
        store, Metrics(store.count_by_status), max_losses_per_report=10_000, decision_threads=2
    )
    inst = ctl.current
    for _ in range(12):  # on through a stage's end: the same answers as the old controller's
        report = _follow(model, inst)
        inst = ctl.report(report)
        assert service.report(store.load("old"), report) == inst
    history = store.history("old")
    assert history.segments == [s.model_dump(mode="json") for s in ctl.segments]
    assert history.stages == [s.model_dump(mode="json") for s in ctl.stages][:-1]
    store.close()


def test_downgrade_puts_the_history_back_into_the_state(database_url: str) -> None:
    _ctl, _model, old = _old_job(20)
    engine = _at_0002(database_url)
    _insert_old_job(engine, "old", old)
    db.upgrade(engine)
    _downgrade(engine, "0002")
    with engine.connect() as conn:
        text = conn.execute(sa.text("SELECT state FROM jobs WHERE id = 'old'")).scalar_one()
    db.upgrade(engine)  # the session's PostgreSQL schema is shared by later tests
    assert json.loads(text) == json.loads(dumps(old))
    engine.dispose()


def _at_0002(url: str) -> sa.Engine:
    """An engine on a database at revision 0002 (PostgreSQL's session schema may be ahead)."""
    engine = db.make_engine(url)
    db.upgrade(engine, "0002")
    _downgrade(engine, "0002")
    return engine


def _downgrade(engine: sa.Engine, revision: str) -> None:
    """Alembic's downgrade on the packaged migrations (the server only ever upgrades)."""
    from alembic import command

    cfg = db.alembic_config()
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, revision)


def test_the_api_reads_the_history_from_its_rows(make_client: Any) -> None:
    client = make_client()
    created = client.post("/v1/jobs", json=OPEN).json()
    inst = Instruction.model_validate(created["instruction"])
    embedded, model = Controller(TunerConfig(**OPEN)), NoisyQuadratic(seed=2)
    assert embedded.start() == inst
    for _ in range(25):
        report = _follow(model, inst)
        answer = client.post(
            f"/v1/jobs/{created['job_id']}/reports",
            json=report.model_dump(mode="json"),
            headers=bearer(created["token"]),
        )
        inst = Instruction.model_validate(answer.json())
        assert embedded.report(report) == inst
    detail = client.get(f"/v1/jobs/{created['job_id']}", headers=bearer(created["token"])).json()
    record = embedded.record()
    views = {"stages": StagePublic, "segments": SegmentPublic, "branches": SegmentPublic}
    for key, view in views.items():  # the API answers the public views of the records
        assert detail[key] == [view.of(r).model_dump(mode="json") for r in record[key]], key
    assert detail["schedule"] == [s["instruction"] for s in record["segments"]]


@pytest.mark.parametrize("segments", [0, 1, 9])
def test_format_1_states_load_with_their_history(segments: int) -> None:
    ctl, _model, old = _old_job(segments)
    again = Controller.from_state_dict(old)
    assert again.state_dict() == ctl.state_dict() and again.record() == ctl.record()
