"""Concurrent reports on one job: never both applied; the loser gets the stored answer (same
content), a 409 saying what differs (other losses) or a 409 it may retry. Runs on every backend
(the race is settled by the database)."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest
import sqlalchemy as sa

from autolr.config import TunerConfig
from autolr.errors import Conflict
from autolr.protocol import Instruction, Report
from autolr.server import db
from autolr.server.errors import Busy, JobCancelled, ReportDiffers
from autolr.server.metrics import Metrics
from autolr.server.service import JobService
from autolr.server.store import SqlStore
from autolr.simulate import NoisyQuadratic

CONFIG = TunerConfig(min_lr=1e-3, max_lr=1.0, total_steps=1200, probes_per_stage=3, seed=7)


@pytest.fixture
def service(database_url: str) -> Iterator[JobService]:
    engine = db.make_engine(database_url)
    db.upgrade(engine)
    store = SqlStore(engine)
    yield JobService(
        store, Metrics(store.count_by_status), max_losses_per_report=10_000, decision_threads=8
    )
    store.close()


def _reports(instruction: Instruction, n: int) -> list[Report]:
    """``n`` different reports for the same segment (different noise seeds)."""
    return [NoisyQuadratic(seed=s).follow(instruction) for s in range(n)]


def _race(service: JobService, job_id: str, token: str, reports: list[Report]) -> list[object]:
    """Send ``reports`` at once, each from a job loaded before anyone saved; the outcomes."""
    barrier = threading.Barrier(len(reports))
    outcomes: list[object] = []

    def send(report: Report) -> None:
        job = service.authorize(job_id, token)
        barrier.wait()  # everyone loaded version 1 before anyone saves
        try:
            outcomes.append(service.report(job, report))
        except ReportDiffers as exc:
            outcomes.append(exc)

    threads = [threading.Thread(target=send, args=(r,)) for r in reports]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return outcomes


def test_concurrent_copies_of_one_report_apply_once_and_get_one_answer(
    service: JobService,
) -> None:
    created = service.create(CONFIG)
    report = _reports(created.instruction, 1)[0]
    outcomes = _race(service, created.job_id, created.token, [report] * 8)
    assert len(outcomes) == 8 and len(set(map(repr, outcomes))) == 1
    assert isinstance(outcomes[0], Instruction)
    job = service.store.load(created.job_id)
    steps = created.instruction.steps
    assert job.version == 2 and job.segment == 1 and job.steps_used == steps
    assert len(service.store.history(created.job_id).segments) == 1


def test_concurrent_different_reports_for_one_segment_apply_exactly_once(
    service: JobService,
) -> None:
    # (This test used to expect every loser to get the winner's answer: their different losses
    # were silently dropped. Now each loser is told its report differs from the record.)
    created = service.create(CONFIG)
    reports = _reports(created.instruction, 8)
    outcomes = _race(service, created.job_id, created.token, reports)
    answers = [o for o in outcomes if isinstance(o, Instruction)]
    refused = [o for o in outcomes if isinstance(o, ReportDiffers)]
    assert len(answers) == 1 and len(refused) == 7
    steps = created.instruction.steps
    assert all(f"train_losses differ at {steps} of {steps} steps" in str(e) for e in refused)
    job = service.store.load(created.job_id)
    assert job.version == 2 and job.segment == 1 and job.steps_used == steps
    [stored] = service.store.reports(created.job_id)
    winner = Report.model_validate(stored.report)
    assert winner in reports
    [segment] = service.store.history(created.job_id).segments
    assert segment["steps_run"] == steps


def test_loser_of_a_race_gets_the_stored_answer_or_is_told_its_report_differs(
    service: JobService,
) -> None:
    created = service.create(CONFIG)
    stale = service.authorize(created.job_id, created.token)
    first, second = _reports(created.instruction, 2)
    answer = service.report(stale, first)
    assert service.report(stale, first) == answer  # saved against version 1: lost, duplicate
    with pytest.raises(ReportDiffers, match="segment 0 differs"):
        service.report(stale, second)  # other losses: refused, the record stands
    assert service.store.load(created.job_id).version == 2


def test_loser_of_a_race_with_a_cancel_is_told_cancelled(service: JobService) -> None:
    created = service.create(CONFIG)
    stale = service.authorize(created.job_id, created.token)
    service.cancel(stale)
    with pytest.raises(JobCancelled):
        service.report(stale, _reports(created.instruction, 1)[0])
    assert service.store.reports(created.job_id) == []


def test_loser_of_a_race_with_another_change_gets_a_retryable_busy(
    service: JobService, database_url: str
) -> None:
    created = service.create(CONFIG)
    stale = service.authorize(created.job_id, created.token)
    engine = db.make_engine(database_url)  # another writer (a future admin operation, say)
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE jobs SET version = version + 1"))
    engine.dispose()
    report = _reports(created.instruction, 1)[0]
    with pytest.raises(Busy, match="retry the same report"):
        service.report(stale, report)
    fresh = service.authorize(created.job_id, created.token)
    assert service.report(fresh, report).segment == 1  # the retry goes through


def test_a_report_two_segments_behind_gets_its_stored_answer_or_is_told_it_differs(
    service: JobService,
) -> None:
    # (This used to be a Conflict: only the latest report was answered again. A client that
    # resumes from an older checkpoint resends older reports, so every recorded one is.)
    created = service.create(CONFIG)
    model = NoisyQuadratic(seed=0)
    r0 = model.follow(created.instruction)
    i1 = service.report(service.store.load(created.job_id), r0)
    service.report(service.store.load(created.job_id), model.follow(i1))
    assert service.report(service.store.load(created.job_id), r0) == i1
    other = NoisyQuadratic(seed=5).follow(created.instruction)
    with pytest.raises(ReportDiffers):
        service.report(service.store.load(created.job_id), other)
    assert service.store.load(created.job_id).version == 3


def test_a_report_for_a_later_segment_is_a_conflict(service: JobService) -> None:
    created = service.create(CONFIG)
    model = NoisyQuadratic(seed=0)
    r0 = model.follow(created.instruction)
    with pytest.raises(Conflict) as info:
        service.report(service.store.load(created.job_id), r0.model_copy(update={"segment": 3}))
    assert (info.value.expected, info.value.got) == (0, 3)
