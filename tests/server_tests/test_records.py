"""A job's record keeps what it was told (issue 16), on every backend.

- A resent report with the recorded content gets the recorded answer (any recorded segment);
  one that only adds ``extra_steps`` to the latest report is merged; one whose losses differ is
  refused with a 409 ``report_differs`` saying what differs. Nothing is silently dropped.
- Job ids are validated before any database (a NUL byte broke every route on PostgreSQL), and
  every integer a report carries is bounded by what the database stores (2**63 was a 500).
- The recorded reports can be read back (what a client that lost track needs).
- A wrong token costs the same whether the job exists or not.
"""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient
from server_helpers import SMALL_JOB, bearer, create_job, post_report, report_json

from autolr.protocol import Instruction, Report
from autolr.server.store import JobUpdate
from autolr.simulate import NoisyQuadratic


@pytest.fixture
def db_client(make_client: Callable[..., TestClient], database_url: str) -> TestClient:
    """An app on each backend in turn."""
    return make_client(database_url)


def _job(client: TestClient, job: dict[str, Any]) -> dict[str, Any]:
    response = client.get(f"/v1/jobs/{job['job_id']}", headers=bearer(job["token"]))
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def _advance(client: TestClient, job: dict[str, Any], n: int) -> list[tuple[Report, Instruction]]:
    """Report ``n`` segments; the reports sent and the answers got."""
    model = NoisyQuadratic(seed=0)
    instruction = Instruction.model_validate(job["instruction"])
    sent = []
    for _ in range(n):
        report = model.follow(instruction)
        response = post_report(client, job, report)
        assert response.status_code == 200, response.text
        instruction = Instruction.model_validate(response.json())
        sent.append((report, instruction))
    return sent


def _stored_state(client: TestClient, job: dict[str, Any]) -> tuple[int, int, list[Any]]:
    record = client.app.state.store.load(job["job_id"])  # type: ignore[attr-defined]
    reports = client.app.state.store.reports(job["job_id"])  # type: ignore[attr-defined]
    return record.version, record.steps_used, [(r.report, r.answer) for r in reports]


# ------------------------------------------------------------------ resent reports
def test_a_resent_report_with_the_recorded_content_gets_the_recorded_answer(
    db_client: TestClient,
) -> None:
    job = create_job(db_client)
    sent = _advance(db_client, job, 3)
    before = _stored_state(db_client, job)
    for report, answer in sent:  # the latest and the older ones alike
        response = post_report(db_client, job, report)
        assert response.status_code == 200
        assert Instruction.model_validate(response.json()) == answer
    assert _stored_state(db_client, job) == before


def test_a_resent_report_with_other_losses_is_a_409_saying_what_differs(
    db_client: TestClient,
) -> None:
    job = create_job(db_client)
    sent = _advance(db_client, job, 2)
    before = _stored_state(db_client, job)
    report, _ = sent[0]
    losses = list(report.train_losses)
    losses[3] += 0.25
    response = post_report(db_client, job, report.model_copy(update={"train_losses": losses}))
    assert response.status_code == 409
    body = response.json()
    assert body["code"] == "report_differs" and body["segment"] == 0
    n = len(losses)
    assert f"train_losses differ at 1 of {n} steps (first at index 3" in body["message"]
    shorter = report.model_copy(update={"train_losses": losses[:10]})
    message = post_report(db_client, job, shorter).json()["message"]
    assert f"10 train_losses, recorded {n}" in message
    assert _stored_state(db_client, job) == before  # the record stands


def test_extra_steps_added_to_the_latest_report_are_merged(db_client: TestClient) -> None:
    job = create_job(db_client)
    sent = _advance(db_client, job, 2)
    report, _ = sent[-1]
    steps_before = _job(db_client, job)["steps_used"]
    merged = report.model_copy(update={"extra_steps": 7})
    response = post_report(db_client, job, merged)
    assert response.status_code == 200, response.text
    answer = Instruction.model_validate(response.json())
    detail = _job(db_client, job)
    assert detail["steps_used"] == steps_before + 7
    assert detail["segments"][-1]["extra_steps"] == 7
    assert detail["current"] == answer.model_dump(mode="json")
    stored = db_client.app.state.store.report_for(job["job_id"], 1)  # type: ignore[attr-defined]
    assert stored.report["extra_steps"] == 7
    # sent again as merged: a duplicate; fewer extra steps, or extra steps on an older report:
    # refused, saying so
    assert Instruction.model_validate(post_report(db_client, job, merged).json()) == answer
    fewer = post_report(db_client, job, report.model_copy(update={"extra_steps": 3}))
    assert fewer.status_code == 409 and "not remove them" in fewer.json()["message"]
    older = post_report(db_client, job, sent[0][0].model_copy(update={"extra_steps": 5}))
    assert older.status_code == 409 and "latest report" in older.json()["message"]
    assert _job(db_client, job)["steps_used"] == steps_before + 7


def test_recorded_reports_read_back_page_by_page_with_non_finite_losses(
    db_client: TestClient,
) -> None:
    job = create_job(db_client)
    first = NoisyQuadratic(seed=1).follow(Instruction.model_validate(job["instruction"]))
    losses = list(first.train_losses)
    losses[-1] = math.nan  # a diverged probe ends on a non-finite loss
    response = post_report(db_client, job, first.model_copy(update={"train_losses": losses}))
    assert response.status_code == 200, response.text
    job = {**job, "instruction": response.json()}
    _advance(db_client, job, 3)
    pages, start = [], 0
    while start is not None:
        answer = db_client.get(
            f"/v1/jobs/{job['job_id']}/reports",
            params={"start": start, "limit": 2},
            headers=bearer(job["token"]),
        )
        assert answer.status_code == 200, answer.text
        pages.append(answer.json()["reports"])
        start = answer.json()["next_start"]
    rows = [row for page in pages for row in page]
    assert [len(p) for p in pages] == [2, 2] and [r["segment"] for r in rows] == [0, 1, 2, 3]
    assert rows[0]["report"]["train_losses"][-1] is None  # NaN travels as null
    back = Report.model_validate(rows[0]["report"])
    assert math.isnan(back.train_losses[-1]) and back.train_losses[:-1] == losses[:-1]
    assert Instruction.model_validate(rows[0]["answer"]).segment == 1
    ranged = db_client.get(
        f"/v1/jobs/{job['job_id']}/reports",
        params={"start": 1, "stop": 3},
        headers=bearer(job["token"]),
    ).json()["reports"]
    assert [r["segment"] for r in ranged] == [1, 2]


# ------------------------------------------------------------------ bad input
BAD_IDS = ["a%00b", "%00", "x" * 65, "a%20b", "a.b", "%C3%A9t%C3%A9", "a;b"]
ROUTES = [
    ("GET", "/v1/jobs/{id}"),
    ("GET", "/v1/jobs/{id}/reports"),
    ("DELETE", "/v1/jobs/{id}"),
    ("POST", "/v1/jobs/{id}/reports"),
]


@pytest.mark.parametrize("bad_id", BAD_IDS)
def test_job_ids_are_checked_before_any_database(db_client: TestClient, bad_id: str) -> None:
    job = create_job(db_client)
    before = _stored_state(db_client, job)
    for method, path in ROUTES:
        body = {"segment": 0, "train_losses": [1.0]} if method == "POST" else None
        response = db_client.request(
            method, path.format(id=bad_id), json=body, headers=bearer(job["token"])
        )
        assert response.status_code == 422, (method, path, response.text)
        answer = response.json()
        assert answer["code"] == "validation_error"
        assert any(d["loc"] == ["path", "job_id"] for d in answer["detail"])
        assert "job_id" in answer["message"]
    assert _stored_state(db_client, job) == before
    assert db_client.get("/healthz").status_code == 200


def test_the_service_checks_job_ids_too(db_client: TestClient) -> None:
    from autolr.server.errors import BadJobId

    service = db_client.app.state.service  # type: ignore[attr-defined]
    with pytest.raises(BadJobId, match="1 to 64 characters"):
        service.authorize("a\x00b", "token")


@pytest.mark.parametrize(
    ("field", "value", "path"),
    [
        ("extra_steps", 2**63, None),
        ("extra_steps", 2**64 + 5, None),
        ("extra_steps", 2**53 + 1, None),
        ("segment", 2**63, None),
        ("segment", 2**31, None),
        ("val_losses", 2**63, "val_losses.0.0"),
    ],
)
def test_integers_beyond_the_database_are_422_naming_the_field(
    db_client: TestClient, field: str, value: int, path: str | None
) -> None:
    job = create_job(db_client)
    _advance(db_client, job, 1)
    before = _stored_state(db_client, job)
    detail = _job(db_client, job)
    report = NoisyQuadratic(seed=3).follow(Instruction.model_validate(detail["current"]))
    body = report_json(report)
    if field == "val_losses":
        body["val_losses"] = [[value, 1.0]]
    else:
        body[field] = value
    response = db_client.post(
        f"/v1/jobs/{job['job_id']}/reports", json=body, headers=bearer(job["token"])
    )
    assert response.status_code == 422, response.text
    answer = response.json()
    assert answer["code"] == "out_of_range"
    assert f"{path or field}={str(value)[:20]}" in answer["message"]
    assert _stored_state(db_client, job) == before
    assert db_client.get("/healthz").status_code == 200


def test_losses_near_the_float_maximum_are_taken_or_refused_with_a_4xx(
    db_client: TestClient,
) -> None:
    """Finite losses of 1e308 overflow sums inside the controller: never a 500."""
    job = create_job(db_client)
    inst = Instruction.model_validate(job["instruction"])
    for _ in range(8):
        before = _stored_state(db_client, job)
        report = Report(segment=inst.segment, kind=inst.kind, train_losses=[1e308] * inst.steps)
        response = post_report(db_client, job, report)
        assert response.status_code in (200, 422), response.text
        if response.status_code == 422:
            assert response.json()["code"] == "bad_report"
            assert _stored_state(db_client, job) == before
            break
        inst = Instruction.model_validate(response.json())


# ------------------------------------------------------------------ timing
def test_a_wrong_token_costs_the_same_whether_the_job_exists(client: TestClient) -> None:
    """A job whose stored state is large (the old check parsed it before comparing tokens)."""
    store = client.app.state.store  # type: ignore[attr-defined]
    job = create_job(client)
    record = store.load(job["job_id"])
    big = {**record.state, "padding": ["x" * 1000] * 4000}  # ~4 MB of state
    store.create(
        "big" + "0" * 29,
        token_hash=record.token_hash,
        config=record.config,
        update=JobUpdate(state=big, status="running", segment=0, stage=0, steps_used=0),
        total_steps=SMALL_JOB["total_steps"],
    )
    wrong = bearer("not-the-token")

    def timed(job_id: str) -> float:
        began = time.perf_counter()
        response = client.get(f"/v1/jobs/{job_id}", headers=wrong)
        elapsed = time.perf_counter() - began
        assert response.status_code == 404
        return elapsed

    existing, missing = [], []
    for _ in range(25):  # interleaved, so load on the machine hits both alike
        existing.append(timed("big" + "0" * 29))
        missing.append(timed("f" * 32))
    a, b = statistics.median(existing), statistics.median(missing)
    # Parsing the 4 MB state took tens of milliseconds; a lookup of the hash takes the same
    # whether the row exists or not.
    assert abs(a - b) < 0.005 + 0.25 * min(a, b), (a, b)
