"""Fixtures for the shipping tests: one real server (uvicorn on loopback) with jobs on it.

The server starts once per session (about five seconds) and holds two jobs driven by
synthetic reports from `autolr.simulate.NoisyQuadratic`: one run to its end, one stopped a
few segments in. The dashboard and CLI tests only read them, except cancel, which makes its
own jobs.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from ship_helpers import ADMIN_KEY, create_job, drive

from autolr.server.testing import ServerProcess


@pytest.fixture(scope="session")
def live_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """``python -m autolr.server`` on a SQLite file, with an admin key."""
    root = tmp_path_factory.mktemp("live-server")
    server = ServerProcess(
        f"sqlite:///{root / 'autolr.db'}",
        log_path=root / "server.log",
        env={"AUTOLR_ADMIN_KEY": ADMIN_KEY, "AUTOLR_WARM_UP": "false"},
    )
    with server:
        yield server


MakeJob = Callable[..., dict[str, Any]]


@pytest.fixture(scope="session")
def make_job(live_server: ServerProcess) -> MakeJob:
    """Create a job on the live server and report ``segments`` of it (None: to its end)."""

    def make(segments: int | None = None, **overrides: Any) -> dict[str, Any]:
        job = create_job(live_server, **overrides)
        drive(live_server, job, segments)
        return job

    return make


@pytest.fixture(scope="session")
def finished_job(make_job: MakeJob) -> dict[str, Any]:
    """A job run to its end."""
    return make_job()


@pytest.fixture(scope="session")
def running_job(make_job: MakeJob) -> dict[str, Any]:
    """A job stopped after its warmup and two probes."""
    return make_job(segments=3)


@pytest.fixture(scope="session")
def artifacts_dir() -> Path:
    """``test-artifacts/`` at the repository root (gitignored): files for people to look at."""
    path = Path(__file__).resolve().parents[2] / "test-artifacts"
    path.mkdir(exist_ok=True)
    return path
