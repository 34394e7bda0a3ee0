"""Fixtures for end-to-end tests: real ``python -m autolr.server`` processes on loopback."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from autolr.server.testing import ServerProcess, postgres_url_or_reason, temporary_schema


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    """A SQLite file of this test's own."""
    return f"sqlite:///{tmp_path / 'autolr.db'}"


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A fresh schema on the test PostgreSQL server (skips without one)."""
    url, reason = postgres_url_or_reason()
    if url is None:
        pytest.skip(reason)
    with temporary_schema(url) as scoped:
        yield scoped


@pytest.fixture
def server_factory(tmp_path: Path) -> Iterator[Callable[..., ServerProcess]]:
    """Make (not start) server processes; all are stopped at the end, logs in ``tmp_path``.

    The start-up warm-up (a GP fit) is off unless a test asks for it: it only moves the cost
    of the first decision, and tests start many servers.
    """
    servers: list[ServerProcess] = []

    def make(database_url: str, *, warm_up: bool = False, **kwargs: Any) -> ServerProcess:
        log_path = tmp_path / f"server-{len(servers)}.log"
        env = {"AUTOLR_WARM_UP": str(warm_up).lower(), **kwargs.pop("env", {})}
        server = ServerProcess(database_url, log_path=log_path, env=env, **kwargs)
        servers.append(server)
        return server

    yield make
    for server in servers:
        server.stop()


@pytest.fixture(autouse=True)
def _one_torch_thread() -> Iterator[None]:
    """One intra-op thread, as in the server (`Settings.torch_threads`): GP fits on a few
    points gain nothing from more, and oversubscribed cores make them many times slower."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
