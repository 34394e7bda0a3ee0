"""`AutoLR` reconciles with the service's record (issue 16, fast: the app in-process).

A run resumed from a checkpoint older than the service's job re-runs segments the service
already recorded. With deterministic training its reports are the recorded ones and the
service answers them again; with losses that differ (nondeterministic kernels, another data
order) the service refuses them (409 report_differs), the tuner reads the record and follows
it, and the run still ends at exactly the budget with the service's record equal to its
schedule.
"""

from __future__ import annotations

import logging
from typing import Any

import pytest
import torch
from fastapi.testclient import TestClient

from autolr.client import AutoLR
from autolr.client._http import HttpTransport

TOTAL = 600
CONFIG: dict[str, Any] = {
    "min_lr": 1e-3,
    "max_lr": 0.5,
    "total_steps": TOTAL,
    "probes_per_stage": 3,
    "initial_probes": 3,  # no GP fits: fast
    "seed": 5,
    "probe_budget": None,
}


class Problem:
    def __init__(self) -> None:
        gen = torch.Generator().manual_seed(0)
        self.x = torch.randn(128, 4, generator=gen)
        self.y = self.x @ torch.randn(4, 1, generator=gen)
        torch.manual_seed(0)
        self.model = torch.nn.Sequential(
            torch.nn.Linear(4, 8), torch.nn.Tanh(), torch.nn.Linear(8, 1)
        )
        self.opt = torch.optim.SGD(self.model.parameters(), lr=0.01)

    def step(self) -> torch.Tensor:
        loss = torch.nn.functional.mse_loss(self.model(self.x), self.y)
        self.opt.zero_grad()
        loss.backward()
        self.opt.step()
        return loss.detach()


def _train(tuner: AutoLR, problem: Problem, start: int, stop: int | None, scale: float) -> int:
    step = start
    while not tuner.finished and (stop is None or step < stop):
        tuner.step(problem.step() * scale)
        step += 1
        assert step <= TOTAL
    return step


@pytest.mark.parametrize("scale", [1.0, 1.0001])  # the same losses again, or other ones
def test_resume_from_an_older_checkpoint_follows_the_service_record(
    client: TestClient, scale: float, caplog: pytest.LogCaptureFixture
) -> None:
    problem = Problem()
    first = AutoLR(
        problem.model,
        problem.opt,
        transport=HttpTransport("http://testserver", client=client),
        **CONFIG,
    )
    _train(first, problem, 0, 130, 1.0)
    ckpt = {
        "model": {k: v.clone() for k, v in problem.model.state_dict().items()},
        "opt": problem.opt.state_dict(),
        "tuner": first.state_dict(),
    }
    _train(first, problem, 130, 400, 1.0)  # the job goes on; then the process dies
    recorded = first.schedule
    assert len(recorded) > len(ckpt["tuner"]["schedule"]) + 3

    problem = Problem()
    problem.model.load_state_dict(ckpt["model"])
    problem.opt.load_state_dict(ckpt["opt"])
    resumed = AutoLR(
        problem.model,
        problem.opt,
        transport=HttpTransport("http://testserver", client=client),
        resume=ckpt["tuner"],
        **CONFIG,
    )
    with caplog.at_level(logging.INFO, logger="autolr.client"):
        steps = _train(resumed, problem, 130, None, scale)
    assert resumed.finished and steps == TOTAL == resumed.steps_run
    assert resumed.service_state == "online"
    # the segments the service had recorded are run again as recorded
    assert [(s.kind, s.lr, s.steps) for s in resumed.schedule[: len(recorded)]] == [
        (s.kind, s.lr, s.steps) for s in recorded
    ]
    followed = any("follows the record" in r.getMessage() for r in caplog.records)
    assert followed == (scale != 1.0)
    transport = resumed.transport
    assert isinstance(transport, HttpTransport)
    job = transport.job()
    assert job["status"] == "finished" and job["steps_used"] == TOTAL
    assert [(s["kind"], s["lr"], s["steps"]) for s in job["schedule"]] == [
        (s.kind, s.lr, s.steps) for s in resumed.schedule
    ]
