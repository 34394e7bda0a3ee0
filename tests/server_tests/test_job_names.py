"""Job names: given at creation, stored beside the config, shown in the list and the detail."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

CONFIG: dict[str, Any] = {"min_lr": 1e-3, "max_lr": 1.0, "total_steps": 1200}


def test_a_name_travels_to_the_list_and_the_detail(client: TestClient) -> None:
    created = client.post("/v1/jobs", json={**CONFIG, "name": "resnet50 / lr sweep"})
    assert created.status_code == 201, created.text
    job_id, token = created.json()["job_id"], created.json()["token"]
    listed = {j["job_id"]: j["name"] for j in client.get("/v1/jobs").json()["jobs"]}
    assert listed[job_id] == "resnet50 / lr sweep"
    detail = client.get(f"/v1/jobs/{job_id}", headers={"Authorization": f"Bearer {token}"})
    assert detail.json()["name"] == "resnet50 / lr sweep"
    assert "name" not in detail.json()["config"]  # a label, not part of the tuner's config


def test_a_job_without_a_name_has_none(client: TestClient) -> None:
    created = client.post("/v1/jobs", json=CONFIG)
    assert created.status_code == 201
    [job] = [
        j for j in client.get("/v1/jobs").json()["jobs"] if j["job_id"] == created.json()["job_id"]
    ]
    assert job["name"] is None


@pytest.mark.parametrize(
    ("name", "why"),
    [("", "blank"), ("   ", "blank"), ("a\nb", "printable"), ("x" * 201, "200"), (7, "string")],
)
def test_a_bad_name_is_a_422_naming_the_field(client: TestClient, name: object, why: str) -> None:
    answer = client.post("/v1/jobs", json={**CONFIG, "name": name})
    assert answer.status_code == 422
    assert answer.json()["detail"][0]["loc"] == ["body", "name"]
    assert why in answer.text
