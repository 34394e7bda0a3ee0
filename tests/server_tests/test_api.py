"""The HTTP API's behaviour, end to end through the app (real store, real controller)."""

from __future__ import annotations

import math
from collections.abc import Callable

import pytest
from fastapi.testclient import TestClient
from server_helpers import SMALL_JOB, bearer, create_job, post_report, run_to_end

from autolr.config import TunerConfig
from autolr.controller import Controller, StageRecord, objective_error
from autolr.protocol import Instruction, Report
from autolr.server.store import SqlStore
from autolr.server.views import SegmentPublic, StagePublic, as_public
from autolr.simulate import NoisyQuadratic, run_job


def test_create_answers_201_with_id_token_and_first_instruction(client: TestClient) -> None:
    job = create_job(client)
    assert len(job["job_id"]) == 32 and len(job["token"]) >= 40
    first = Instruction.model_validate(job["instruction"])
    assert first == Controller(TunerConfig(**SMALL_JOB)).start()


def test_job_runs_to_finished_like_the_embedded_controller(
    make_client: Callable[..., TestClient], database_url: str
) -> None:
    client = make_client(database_url)
    job = create_job(client)
    served = run_to_end(client, job, NoisyQuadratic(seed=3))
    embedded = Controller(TunerConfig(**SMALL_JOB))
    run_job(embedded, NoisyQuadratic(seed=3))
    assert served[-1].finished
    detail = client.get(f"/v1/jobs/{job['job_id']}", headers=bearer(job["token"])).json()
    assert detail["status"] == "finished" and detail["finished"] is True
    assert detail["steps_used"] == SMALL_JOB["total_steps"]
    assert [Instruction.model_validate(s) for s in detail["schedule"]] == embedded.schedule
    assert detail["segments"] == as_public(SegmentPublic, embedded.segments)
    assert detail["stages"] == as_public(StagePublic, embedded.stages)


def test_read_shows_probes_with_predicted_losses_and_segment_summaries(
    client: TestClient,
) -> None:
    job = create_job(client)
    model = NoisyQuadratic(seed=0)
    instruction = Instruction.model_validate(job["instruction"])
    for _ in range(7):  # the first stage's 3 probes (a constant part and a cooldown tail each)
        instruction = Instruction.model_validate(
            post_report(client, job, model.follow(instruction)).json()
        )
    detail = client.get(f"/v1/jobs/{job['job_id']}", headers=bearer(job["token"])).json()
    assert detail["status"] == "running" and detail["segment"] == 7
    assert detail["current"]["segment"] == 7 and detail["config"]["seed"] == 7
    [stage] = detail["stages"][:1]
    assert len(stage["probes"]) == 3
    assert all(p["ok"] and p["forecast"] > 0 and p["drop"] is not None for p in stage["probes"])
    assert stage["chosen_lr"] in [p["lr"] for p in stage["probes"]]
    # the stage policy's record: its rule, and each probe's evidence
    [decision] = stage["decisions"]
    assert decision["rule"] == "search-best" and decision["lr"] == stage["chosen_lr"]
    assert [e["probe"] for e in decision["evidence"]] == [0, 1, 2]
    assert [s["kind"] for s in detail["schedule"]] == ["probe"] * 6 + ["train"]
    assert detail["schedule"][-1]["decision"].startswith("search-best: lr=")
    first = detail["segments"][0]
    assert first["steps_run"] == 15 and first["loss_mean"] > 0 and len(first["losses"]) == 15


#: Bookkeeping the controller keeps that the API does not publish (`autolr.server.views`).
INTERNAL_STAGE_FIELDS = {"train_left", "chunk_baseline", "chunk_noise", "chunk_error"}
INTERNAL_STAGE_FIELDS |= {"best_saved", "bounds", "pending", "pending_val", "diverged_lrs"}
INTERNAL_STAGE_FIELDS |= {"baseline_spread", "baseline_noise", "baseline_error"}


def test_read_publishes_views_not_the_controllers_records(client: TestClient) -> None:
    job = create_job(client)
    model = NoisyQuadratic(seed=0)
    instruction = Instruction.model_validate(job["instruction"])
    for _ in range(7):
        instruction = Instruction.model_validate(
            post_report(client, job, model.follow(instruction)).json()
        )
    detail = client.get(f"/v1/jobs/{job['job_id']}", headers=bearer(job["token"])).json()
    stage = detail["stages"][0]
    assert "train_left" in StageRecord.model_fields  # the controller does keep them
    assert not INTERNAL_STAGE_FIELDS & set(stage)
    assert not {"level"} & set(stage["probes"][0])
    assert not {"loss_last_error"} & set(detail["segments"][0])
    service = client.app.state.service  # type: ignore[attr-defined]
    [finished] = service.store.history(str(job["job_id"])).stages  # stage 0, from its row
    record = StageRecord.model_validate(finished)  # the same stage, as the controller keeps it
    for probe, kept in zip(stage["probes"], record.probes, strict=True):
        assert probe["objective"] == kept.objective  # derived by the controller's formulas
        assert probe["objective_error"] == objective_error(kept)
    schema = client.get("/openapi.json").json()["components"]["schemas"]
    assert {"StagePublic", "ProbePublic", "SegmentPublic"} <= set(schema)
    assert not {"StageRecord", "ProbeRecord", "SegmentRecord"} & set(schema)


def test_duplicate_report_returns_the_same_instruction_and_changes_nothing(
    client: TestClient,
) -> None:
    job = create_job(client)
    report = NoisyQuadratic(seed=0).follow(Instruction.model_validate(job["instruction"]))
    first = post_report(client, job, report)
    again = post_report(client, job, report)
    assert first.status_code == again.status_code == 200
    assert first.json() == again.json()
    detail = client.get(f"/v1/jobs/{job['job_id']}", headers=bearer(job["token"])).json()
    assert len(detail["segments"]) == 1 and detail["steps_used"] == len(report.train_losses)


def test_wrong_segment_is_409_naming_the_expected_segment(client: TestClient) -> None:
    job = create_job(client)
    report = NoisyQuadratic(seed=0).follow(Instruction.model_validate(job["instruction"]))
    response = post_report(client, job, report.model_copy(update={"segment": 5}))
    assert response.status_code == 409
    body = response.json()
    assert body["code"] == "wrong_segment" and body["expected_segment"] == 0
    assert "expects segment 0" in body["message"]
    assert body.get("retryable", False) is False


def test_report_after_the_end_is_409_finished(client: TestClient) -> None:
    job = create_job(client)
    last = run_to_end(client, job)[-1]
    response = client.post(
        f"/v1/jobs/{job['job_id']}/reports",
        json={"segment": last.segment, "train_losses": [1.0]},
        headers=bearer(job["token"]),
    )
    assert response.status_code == 409 and response.json()["code"] == "finished"


def test_cancel_then_report_is_409_cancelled(client: TestClient) -> None:
    job = create_job(client)
    response = client.delete(f"/v1/jobs/{job['job_id']}", headers=bearer(job["token"]))
    assert response.status_code == 200 and response.json()["status"] == "cancelled"
    report = NoisyQuadratic(seed=0).follow(Instruction.model_validate(job["instruction"]))
    response = post_report(client, job, report)
    assert response.status_code == 409
    assert response.json()["code"] == "cancelled" and "cancelled" in response.json()["message"]
    detail = client.get(f"/v1/jobs/{job['job_id']}", headers=bearer(job["token"])).json()
    assert detail["status"] == "cancelled" and detail["segments"] == []


def test_cancel_a_finished_job_keeps_it_finished(client: TestClient) -> None:
    job = create_job(client)
    run_to_end(client, job)
    response = client.delete(f"/v1/jobs/{job['job_id']}", headers=bearer(job["token"]))
    assert response.status_code == 200 and response.json()["status"] == "finished"


def test_list_jobs_newest_first_with_status_filter_and_paging(client: TestClient) -> None:
    ids = [create_job(client)["job_id"] for _ in range(3)]
    token = create_job(client)
    client.delete(f"/v1/jobs/{token['job_id']}", headers=bearer(token["token"]))
    listed = client.get("/v1/jobs").json()
    assert [j["job_id"] for j in listed["jobs"]] == [token["job_id"], *reversed(ids)]
    assert listed["next_offset"] is None
    page = client.get("/v1/jobs", params={"limit": 2}).json()
    assert len(page["jobs"]) == 2 and page["next_offset"] == 2
    cancelled = client.get("/v1/jobs", params={"status": "cancelled"}).json()["jobs"]
    assert [j["job_id"] for j in cancelled] == [token["job_id"]]
    assert "token" not in listed["jobs"][0] and "config" not in listed["jobs"][0]


def test_healthz_docs_and_openapi(client: TestClient) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    assert client.get("/docs").status_code == 200
    paths = client.get("/openapi.json").json()["paths"]
    assert {"/v1/jobs", "/v1/jobs/{job_id}", "/v1/jobs/{job_id}/reports", "/healthz"} <= set(paths)


def _metric(text: str, name: str) -> float:
    for line in text.splitlines():
        if line.startswith(name + " ") or (
            line.startswith(name + "{") and line.split(" ")[0] == name
        ):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"{name} not in /metrics")


def test_metrics_count_jobs_reports_decisions_and_errors(client: TestClient) -> None:
    job = create_job(client)
    create_job(client)
    report = NoisyQuadratic(seed=0).follow(Instruction.model_validate(job["instruction"]))
    post_report(client, job, report)
    post_report(client, job, report)  # duplicate
    post_report(client, job, report.model_copy(update={"segment": 9}))  # 409
    client.delete(f"/v1/jobs/{job['job_id']}", headers=bearer(job["token"]))
    text = client.get("/metrics").text
    assert _metric(text, 'autolr_jobs{status="running"}') == 1
    assert _metric(text, 'autolr_jobs{status="cancelled"}') == 1
    assert _metric(text, 'autolr_reports_total{outcome="applied"}') == 1
    assert _metric(text, 'autolr_reports_total{outcome="duplicate"}') == 1
    assert _metric(text, "autolr_decision_seconds_count") == 1
    assert _metric(text, 'autolr_errors_total{code="409",error="wrong_segment"}') == 1


def test_two_apps_in_one_process_keep_separate_metrics(
    make_client: Callable[..., TestClient], tmp_path: pytest.TempPathFactory
) -> None:
    a = make_client(f"sqlite:///{tmp_path}/a.db")
    b = make_client(f"sqlite:///{tmp_path}/b.db")
    create_job(a)
    assert _metric(a.get("/metrics").text, "autolr_jobs_created_total") == 1
    assert _metric(b.get("/metrics").text, "autolr_jobs_created_total") == 0


def test_replaying_the_stored_reports_rebuilds_the_stored_state(
    make_client: Callable[..., TestClient], database_url: str
) -> None:
    client = make_client(database_url)
    job = create_job(client)
    model = NoisyQuadratic(seed=2)
    instruction = Instruction.model_validate(job["instruction"])
    for _ in range(9):  # into stage 2, with a NaN-diverged probe on the way
        report = model.follow(instruction)
        if instruction.segment == 1:
            report = report.model_copy(
                update={"train_losses": [*report.train_losses[:3], math.nan]}
            )
        instruction = Instruction.model_validate(post_report(client, job, report).json())
    store: SqlStore = client.app.state.store  # type: ignore[attr-defined]
    stored = store.load(job["job_id"])
    replay = Controller(TunerConfig.model_validate(stored.config))
    replay.start()
    for row in store.reports(job["job_id"]):
        answer = replay.report(Report.model_validate(row.report))
        assert answer.model_dump(mode="json") == row.answer
    assert replay.state_dict() == stored.state
