"""Helpers shared by the shipping tests (a module, not conftest: test files import it)."""

from __future__ import annotations

from typing import Any

import httpx

from autolr.protocol import Instruction
from autolr.server.testing import ServerProcess
from autolr.simulate import NoisyQuadratic

ADMIN_KEY = "ship-tests-admin-key"
#: A small job that still has every segment kind: warmup, 4 stages of probes and training,
#: and the default anneal; its last stage forecasts validation losses.
JOB_CONFIG: dict[str, Any] = {
    "min_lr": 1e-3,
    "max_lr": 1.0,
    "total_steps": 1200,
    "warmup_steps": 50,
    "probes_per_stage": 3,
    "initial_probes": 2,
    "seed": 7,
}


def create_job(server: ServerProcess, **overrides: Any) -> dict[str, Any]:
    """POST a job with the admin key; the 201 body (job_id, token, instruction)."""
    response = httpx.post(
        f"{server.url}/v1/jobs",
        json={**JOB_CONFIG, **overrides},
        headers={"X-Admin-Key": ADMIN_KEY},
        timeout=30,
    )
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


def drive(server: ServerProcess, job: dict[str, Any], segments: int | None = None) -> None:
    """Report ``segments`` segments (all, by default) of ``job`` with a noisy quadratic."""
    model = NoisyQuadratic(seed=1)
    instruction = Instruction.model_validate(job["instruction"])
    headers = {"Authorization": f"Bearer {job['token']}"}
    done = 0
    with httpx.Client(base_url=server.url, headers=headers, timeout=60) as client:
        while not instruction.finished and (segments is None or done < segments):
            report = model.follow(instruction).model_dump(mode="json")
            response = client.post(f"/v1/jobs/{job['job_id']}/reports", json=report)
            assert response.status_code == 200, response.text
            instruction = Instruction.model_validate(response.json())
            done += 1
