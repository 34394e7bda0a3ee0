"""Helpers shared by the server tests (a module, not conftest: test files import from it)."""

from __future__ import annotations

import math
from typing import Any

from fastapi.testclient import TestClient

from autolr.protocol import Instruction, Report
from autolr.simulate import NoisyQuadratic

#: A small job: 4 stages of 3 probes in 1200 steps (fast to run to the end).
SMALL_JOB: dict[str, Any] = {
    "min_lr": 1e-3,
    "max_lr": 1.0,
    "total_steps": 1200,
    "probes_per_stage": 3,
    "initial_probes": 2,
    "seed": 7,
}


def create_job(client: TestClient, **overrides: Any) -> dict[str, Any]:
    """POST a small job; returns the 201 body (job_id, token, instruction)."""
    response = client.post("/v1/jobs", json={**SMALL_JOB, **overrides})
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


def bearer(token: str) -> dict[str, str]:
    """The Authorization header for a job token."""
    return {"Authorization": f"Bearer {token}"}


def report_json(report: Report) -> dict[str, Any]:
    """A report as JSON, NaN and ±inf as null (what HttpTransport sends)."""
    data: dict[str, Any] = report.model_dump(mode="json")
    data["train_losses"] = [
        v if v is None or math.isfinite(v) else None for v in data["train_losses"]
    ]
    return data


def post_report(client: TestClient, job: dict[str, Any], report: Report) -> Any:
    """POST a report for ``job`` (as returned by `create_job`)."""
    return client.post(
        f"/v1/jobs/{job['job_id']}/reports", json=report_json(report), headers=bearer(job["token"])
    )


def run_to_end(
    client: TestClient, job: dict[str, Any], model: NoisyQuadratic | None = None
) -> list[Instruction]:
    """Follow every instruction with a noisy quadratic model until the job finishes."""
    model = model or NoisyQuadratic(seed=0)
    instruction = Instruction.model_validate(job["instruction"])
    seen = [instruction]
    while not instruction.finished:
        response = post_report(client, job, model.follow(instruction))
        assert response.status_code == 200, response.text
        instruction = Instruction.model_validate(response.json())
        seen.append(instruction)
    return seen
