"""No credential ever reaches the server's output, whichever way a client comes in.

A real server (uvicorn on loopback, access log on, JSON lines) with an admin key; a tuner
(`AutoLR(server=..., admin_key=..., name=...)`) trains a tiny model through it; then every
way in is used: API headers, the dashboard's login forms and cookies, old ``?token=`` /
``?key=`` links, and clients that put credentials in URLs where they do not belong. The
server's whole output is then searched for the job's token and the admin key.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any

import httpx
import pytest
import torch
from typer.testing import CliRunner

from autolr.cli import app
from autolr.client import AutoLR
from autolr.server.testing import ServerProcess

ADMIN_KEY = "e2e-admin-key-that-must-never-be-logged"
CONFIG: dict[str, Any] = {
    "min_lr": 1e-3,
    "max_lr": 0.5,
    "total_steps": 400,
    "probes_per_stage": 3,
    "initial_probes": 2,
    "seed": 3,
}


def _train(url: str, name: str) -> AutoLR:
    """A tiny regression trained to the end of its budget through the server."""
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(128, 4, generator=generator)
    y = x @ torch.randn(4, 1, generator=generator)
    model = torch.nn.Linear(4, 1)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    tuner = AutoLR(model, optimizer, server=url, admin_key=ADMIN_KEY, name=name, **CONFIG)
    while not tuner.finished:
        loss = torch.nn.functional.mse_loss(model(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        tuner.step(loss.detach())
    return tuner


def _every_way_in(url: str, job_id: str, token: str) -> None:
    """Each request a client might send with the token or the admin key, right or wrong."""
    job, dash = f"/v1/jobs/{job_id}", f"/dashboard/jobs/{job_id}"
    bearer = {"Authorization": f"Bearer {token}"}
    with httpx.Client(base_url=url, timeout=60) as client:
        # the API, as documented
        assert client.get(job, headers=bearer).status_code == 200
        assert client.get(f"{job}/reports", headers=bearer).status_code == 200
        assert client.get("/v1/jobs", headers={"X-Admin-Key": ADMIN_KEY}).status_code == 200
        assert client.get("/v1/jobs", headers={"Authorization": f"Bearer {ADMIN_KEY}"}).is_success
        # credentials in URLs, where the API does not read them
        for query in ({"token": token}, {"access_token": token}, {"t": token}, {"key": ADMIN_KEY}):
            assert client.get(job, params=query).status_code == 401
        assert client.get("/v1/jobs", params={"admin_key": ADMIN_KEY}).status_code == 401
        # wrong credentials that contain the real ones
        assert client.get(job, headers={"Authorization": f"Bearer {token}x"}).status_code == 404
        # the dashboard: headers, old links, login forms, cookies
        assert client.get(dash, headers=bearer).status_code == 200
        assert client.get(dash, headers={"X-Admin-Key": ADMIN_KEY}).status_code == 200
        assert client.get(dash, params={"token": token}).status_code == 303
        assert client.get(dash, params={"key": ADMIN_KEY}).status_code == 303
        assert client.get("/dashboard", params={"key": ADMIN_KEY}).status_code == 303
        assert client.get(dash, params={"token": token + "x"}).status_code == 404
    with httpx.Client(base_url=url, timeout=60, follow_redirects=True) as browser:
        assert browser.post(f"{dash}/login", data={"token": token}).status_code == 200
        assert browser.get(dash).status_code == 200  # by cookie
        assert browser.post("/dashboard/login", data={"key": ADMIN_KEY}).status_code == 200
        assert browser.get("/dashboard").status_code == 200
        assert browser.post("/dashboard/login", data={"key": ADMIN_KEY + "x"}).status_code == 401
    # the command line
    runner = CliRunner()
    env = {"AUTOLR_SERVER": url, "AUTOLR_ADMIN_KEY": "", "AUTOLR_TOKEN": ""}
    for args in (
        ["jobs", "show", job_id, "--token", token],
        ["jobs", "list", "--admin-key", ADMIN_KEY],
        ["export", job_id, "--token", token],
    ):
        result = runner.invoke(app, args, env=env)
        assert result.exit_code == 0, result.output


def test_the_server_output_never_holds_a_token_or_the_admin_key(
    server_factory: Callable[..., ServerProcess],
    sqlite_url: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    server = server_factory(
        sqlite_url, env={"AUTOLR_ADMIN_KEY": ADMIN_KEY, "AUTOLR_LOG_LEVEL": "info"}
    )
    server.start()
    with caplog.at_level(logging.INFO, logger="autolr"):
        tuner = _train(server.url, "secret-free run")
    job_id = tuner.job_id
    assert job_id is not None
    token = tuner.state_dict()["transport"]["token"]
    assert isinstance(token, str) and len(token) >= 32
    # the client says where the dashboard is, and nothing more
    dashboard = f"{server.url}/dashboard/jobs/{job_id}"
    assert any(dashboard in r.getMessage() for r in caplog.records)
    assert not any(token in r.getMessage() for r in caplog.records)
    tuner.close()

    _every_way_in(server.url, job_id, token)
    listed = httpx.get(f"{server.url}/v1/jobs", headers={"X-Admin-Key": ADMIN_KEY}).json()
    assert [j["name"] for j in listed["jobs"]] == ["secret-free run"]
    server.stop()

    assert server.log_path is not None
    output = server.log_path.read_text()
    lines = [json.loads(line) for line in output.splitlines() if line.startswith("{")]
    access = [line["message"] for line in lines if line.get("logger") == "uvicorn.access"]
    # the access log ran, saw the URLs that carried credentials, and redacted them
    assert any(f"/dashboard/jobs/{job_id}?token=[redacted]" in line for line in access)
    assert any("/v1/jobs?admin_key=[redacted]" in line for line in access)
    assert any(f"/v1/jobs/{job_id}?t=[redacted]" in line for line in access)
    assert len(access) > 30  # the training's reports are in it too
    assert token not in output
    assert ADMIN_KEY not in output
    assert token[:16] not in output and ADMIN_KEY[:16] not in output


def test_the_tuner_takes_the_admin_key_from_the_environment(
    server_factory: Callable[..., ServerProcess],
    sqlite_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    server = server_factory(sqlite_url, env={"AUTOLR_ADMIN_KEY": ADMIN_KEY})
    server.start()
    model = torch.nn.Linear(2, 1)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    monkeypatch.delenv("AUTOLR_ADMIN_KEY", raising=False)
    keyless = AutoLR(model, optimizer, server=server.url, **CONFIG)
    keyless.step(1.0)
    assert keyless.service_state != "online"  # a keyed server refuses a job without the key
    keyless.close()
    monkeypatch.setenv("AUTOLR_ADMIN_KEY", ADMIN_KEY)
    tuner = AutoLR(model, optimizer, server=server.url, name="from the environment", **CONFIG)
    for _ in range(5):
        tuner.step(1.0)
    assert tuner.service_state == "online" and tuner.job_id is not None
    tuner.close()
    listed = httpx.get(f"{server.url}/v1/jobs", headers={"X-Admin-Key": ADMIN_KEY}).json()
    assert [(j["job_id"], j["name"]) for j in listed["jobs"]] == [
        (tuner.job_id, "from the environment")
    ]
