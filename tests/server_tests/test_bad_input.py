"""Bad input: one test per rule, asserting status, location and message."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient
from server_helpers import SMALL_JOB, bearer, create_job

from autolr.protocol import Instruction
from autolr.simulate import NoisyQuadratic

JSON = {"Content-Type": "application/json"}


def _create_raw(client: TestClient, text: str) -> Any:
    return client.post("/v1/jobs", content=text.encode(), headers=JSON)


@pytest.mark.parametrize(
    ("body", "loc", "message"),
    [
        ({**SMALL_JOB, "min_lr": -1}, ["body", "min_lr"], "min_lr=-1: Input should be greater"),
        ({**SMALL_JOB, "probes_per_stage": 0}, ["body", "probes_per_stage"], "probes_per_stage=0"),
        ({**SMALL_JOB, "min_lr": "x"}, ["body", "min_lr"], "min_lr='x'"),
        ({**SMALL_JOB, "tau_mni": 5}, ["body", "tau_mni"], "tau_mni: unknown field"),
        ({**SMALL_JOB, "loss_source": "test"}, ["body", "loss_source"], "loss_source='test'"),
        # found by the schema fuzzer: this budget overflowed the database's integer column (500)
        (
            {**SMALL_JOB, "total_steps": 2_489_185_677_083_910_078_464},
            ["body", "total_steps"],
            "total_steps=2489185677083910078464",
        ),
    ],
)
def test_config_field_errors_are_422_naming_field_and_value(
    client: TestClient, body: dict[str, Any], loc: list[str], message: str
) -> None:
    response = client.post("/v1/jobs", json=body)
    assert response.status_code == 422
    answer = response.json()
    assert answer["code"] == "validation_error"
    assert [d["loc"] for d in answer["detail"]] == [loc]
    assert message in answer["message"]


def test_config_combination_error_names_both_fields_and_values(client: TestClient) -> None:
    response = client.post("/v1/jobs", json={**SMALL_JOB, "min_lr": 0.5, "max_lr": 0.1})
    assert response.status_code == 422
    assert "min_lr=0.5 must be smaller than max_lr=0.1" in response.json()["message"]


@pytest.mark.parametrize("token", ["NaN", "Infinity", "-Infinity", "1e999"])
def test_non_finite_numbers_are_rejected_in_configs(client: TestClient, token: str) -> None:
    text = json.dumps(SMALL_JOB).replace('"max_lr": 1.0', f'"max_lr": {token}')
    response = _create_raw(client, text)
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "max_lr"]
    assert "finite" in response.json()["message"]


@pytest.mark.parametrize(
    "text", ['{"min_lr": 0.1,', "not json", "[1, 2", '{"min_lr": 1e-3}}', "\x00"]
)
def test_malformed_json_is_422(client: TestClient, text: str) -> None:
    response = _create_raw(client, text)
    assert response.status_code == 422
    assert response.json()["detail"][0]["type"] == "json_invalid"
    assert "malformed JSON" in response.json()["message"]


@pytest.mark.parametrize("text", ["[]", '"config"', "null", "3"])
def test_json_that_is_not_an_object_is_422(client: TestClient, text: str) -> None:
    response = _create_raw(client, text)
    assert response.status_code == 422, response.text


def _first_report(job: dict[str, Any]) -> dict[str, Any]:
    report = NoisyQuadratic(seed=0).follow(Instruction.model_validate(job["instruction"]))
    return report.model_dump(mode="json")


@pytest.mark.parametrize("bad", ["null", "NaN", "Infinity", "-Infinity"])
def test_non_finite_losses_are_accepted_in_reports(client: TestClient, bad: str) -> None:
    job = create_job(client)
    body = _first_report(job)
    losses = [str(v) for v in body["train_losses"]]
    losses[5:] = [bad] * (len(losses) - 5)  # the probe diverged at step 6
    text = json.dumps(body).split('"train_losses": [')
    text[1] = ", ".join(losses) + "]" + text[1].split("]", 1)[1]
    response = client.post(
        f"/v1/jobs/{job['job_id']}/reports",
        content='"train_losses": ['.join(text).encode(),
        headers={**JSON, **bearer(job["token"])},
    )
    assert response.status_code == 200, response.text
    detail = client.get(f"/v1/jobs/{job['job_id']}", headers=bearer(job["token"])).json()
    [probe] = detail["stages"][0]["probes"]
    assert probe["ok"] is False and probe["forecast"] is None
    assert detail["segments"][0]["losses"][5:] == [None] * (len(losses) - 5)


def test_report_above_the_losses_cap_is_413_with_the_limit(
    make_client: Callable[..., TestClient],
) -> None:
    client = make_client(max_losses_per_report=2000)
    job = create_job(client)
    response = client.post(
        f"/v1/jobs/{job['job_id']}/reports",
        json={"segment": 0, "train_losses": [1.0] * 2001},
        headers=bearer(job["token"]),
    )
    assert response.status_code == 413
    assert response.json()["code"] == "too_many_losses"
    assert "train_losses has 2001 values" in response.json()["message"]
    assert "at most 2000" in response.json()["message"]


def test_job_whose_segments_exceed_the_losses_cap_is_422_at_creation(
    make_client: Callable[..., TestClient],
) -> None:
    client = make_client(max_losses_per_report=500)
    response = client.post("/v1/jobs", json={**SMALL_JOB, "total_steps": None, "tau_max": 8000})
    assert response.status_code == 422
    assert response.json()["code"] == "bad_config"
    assert (
        "8000 steps" in response.json()["message"] and "at most 500" in response.json()["message"]
    )


def test_body_above_the_size_cap_is_413(make_client: Callable[..., TestClient]) -> None:
    client = make_client(max_body_bytes=4096)
    job = create_job(client)
    url = f"/v1/jobs/{job['job_id']}/reports"
    body = json.dumps({"segment": 0, "train_losses": [1.2345678] * 1000}).encode()
    headers = {**JSON, **bearer(job["token"])}
    declared = client.post(url, content=body, headers=headers)

    def chunks() -> Any:  # no Content-Length: the server must count while reading
        for i in range(0, len(body), 1000):
            yield body[i : i + 1000]

    streamed = client.post(url, content=chunks(), headers=headers)
    for response in (declared, streamed):
        assert response.status_code == 413, response.text
        assert "AUTOLR_MAX_BODY_BYTES" in response.json()["message"]


def test_report_with_more_losses_than_steps_is_422(client: TestClient) -> None:
    job = create_job(client)
    response = client.post(
        f"/v1/jobs/{job['job_id']}/reports",
        json={"segment": 0, "train_losses": [1.0] * 21},
        headers=bearer(job["token"]),
    )
    assert response.status_code == 422
    assert response.json()["code"] == "bad_report"
    assert "21 train_losses" in response.json()["message"]


def test_report_with_wrong_kind_is_422(client: TestClient) -> None:
    job = create_job(client)
    body = {**_first_report(job), "kind": "train"}
    response = client.post(
        f"/v1/jobs/{job['job_id']}/reports", json=body, headers=bearer(job["token"])
    )
    assert response.status_code == 422 and "kind='train'" in response.json()["message"]


def test_report_field_errors_name_the_location(client: TestClient) -> None:
    job = create_job(client)
    response = client.post(
        f"/v1/jobs/{job['job_id']}/reports",
        json={"segment": -1, "train_losses": [1.0, "x"], "bogus": 1},
        headers=bearer(job["token"]),
    )
    assert response.status_code == 422
    locs = {tuple(d["loc"]) for d in response.json()["detail"]}
    assert locs == {("body", "segment"), ("body", "train_losses", 1), ("body", "bogus")}
    assert "train_losses.1='x'" in response.json()["message"]


def test_list_query_errors_are_422(client: TestClient) -> None:
    for params in ({"limit": 0}, {"limit": "many"}, {"status": "paused"}, {"offset": -1}):
        response = client.get("/v1/jobs", params=params)
        assert response.status_code == 422, params


def test_unknown_route_and_method_are_404_and_405_json(client: TestClient) -> None:
    assert client.get("/v2/jobs").json()["code"] == "not_found"
    response = client.put("/v1/jobs")
    assert response.status_code == 405 and response.json()["code"] == "method_not_allowed"
