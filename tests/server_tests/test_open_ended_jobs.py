"""Open-ended jobs on the service: a budget set mid-run and a cooldown branch (issue 21)."""

from __future__ import annotations

from typing import Any

import torch
from fastapi.testclient import TestClient
from server_helpers import bearer, create_job, post_report

from autolr.cli_jobs import schedule_rows
from autolr.client import AutoLR, ReplaySchedule
from autolr.client._http import HttpTransport
from autolr.protocol import Branch, Instruction, Report

OPEN: dict[str, Any] = {
    "min_lr": 1e-3,
    "max_lr": 0.5,
    "tau_min": 60,
    "tau_max": 120,
    "probes_per_stage": 3,
    "initial_probes": 3,  # no GP fits: fast
    "seed": 5,
    "loss_source": "train",
}
TOTAL = 700


def _mse(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    with torch.no_grad():
        return float(torch.nn.functional.mse_loss(model(x), y))


def test_a_job_told_its_budget_late_ends_on_time_and_records_its_branch(
    client: TestClient,
) -> None:
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(128, 4, generator=gen)
    y = x @ torch.randn(4, 1, generator=gen)
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Tanh(), torch.nn.Linear(8, 1))
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    transport = HttpTransport("http://testserver", client=client)
    tuner = AutoLR(model, opt, transport=transport, progress=False, **OPEN)
    cooled: list[float] = []
    steps = 0
    while not tuner.finished:
        if steps == 200:
            tuner.set_total_steps(TOTAL)
        if steps == 150:
            tuner.cooldown(25, lambda m: cooled.append(_mse(m, x, y)))
        loss = torch.nn.functional.mse_loss(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        tuner.step(loss.detach())
        steps += 1
    assert steps == TOTAL == tuner.steps_run and len(cooled) == 1
    assert tuner.service_state == "online"
    job = transport.job()
    assert job["status"] == "finished" and job["steps_used"] == TOTAL
    assert job["total_steps"] == TOTAL == job["config"]["total_steps"]
    assert job["schedule"][-1]["kind"] == "anneal"
    [branch] = job["branches"]
    assert branch["instruction"]["kind"] == "branch" and branch["steps_run"] == 25
    rows = schedule_rows(job)
    assert [r["kind"] for r in rows].count("branch") == 1
    # a replay trains the main run only: the branch adds no step to it
    main = [r for r in rows if r["kind"] != "branch"]
    replays = [
        ReplaySchedule(torch.optim.SGD(model.parameters(), lr=0.1), r, include_probes=True)
        for r in (rows, main)
    ]
    assert replays[0].total_steps == replays[1].total_steps == TOTAL - 25
    token = tuner.state_dict()["transport"]["token"]
    listed = client.get("/v1/jobs").json()
    assert [j["total_steps"] for j in listed["jobs"] if j["job_id"] == tuner.job_id] == [TOTAL]
    page = client.get(f"/dashboard/jobs/{tuner.job_id}", headers=bearer(token))
    assert page.status_code == 200 and "band branch" in page.text
    tuner.close()


def test_a_budget_below_the_steps_used_is_a_422_naming_total_steps(client: TestClient) -> None:
    job = create_job(client, total_steps=None, tau_min=60, tau_max=120)
    first = Instruction.model_validate(job["instruction"])
    losses = [1.0 - 0.01 * i for i in range(first.steps)]
    branch = Branch(at=3, steps=10, lr=0.1, lr_end=1e-4, train_losses=[0.5] * 10)
    below = Report(segment=0, train_losses=losses, total_steps=first.steps, branches=[branch])
    response = post_report(client, job, below)
    assert response.status_code == 422, response.text
    assert f"total_steps={first.steps} is below the {first.steps + 10} steps" in response.text
    ok = below.model_copy(update={"total_steps": 5000})
    assert post_report(client, job, ok).status_code == 200
    # the same segment again with another budget is not the recorded report
    other = post_report(client, job, ok.model_copy(update={"total_steps": 6000}))
    assert other.status_code == 409 and "total_steps=6000, recorded 5000" in other.text
