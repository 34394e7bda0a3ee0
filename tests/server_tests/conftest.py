"""Fixtures for the server tests: apps on SQLite (always) and PostgreSQL (when available).

Each PostgreSQL session works in its own schema (`temporary_schema`), so test runs sharing the
database never collide; each SQLite test gets a file in ``tmp_path``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from autolr.server.app import create_app
from autolr.server.settings import Settings
from autolr.server.testing import postgres_url_or_reason, temporary_schema


@pytest.fixture(scope="session")
def postgres_base_url() -> Iterator[str]:
    """A URL into a schema of our own on the test PostgreSQL server (skips without one)."""
    url, reason = postgres_url_or_reason()
    if url is None:
        pytest.skip(reason)
    with temporary_schema(url) as scoped:
        yield scoped


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """Each backend in turn. PostgreSQL tables are emptied after each test."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'autolr.db'}"
        return
    url = request.getfixturevalue("postgres_base_url")
    yield url
    _truncate(url)


def _truncate(url: str) -> None:
    import sqlalchemy as sa

    from autolr.server.db import make_engine

    engine = make_engine(url)
    with engine.begin() as conn:
        conn.execute(sa.text("TRUNCATE segment_log, stage_log, reports, jobs"))
    engine.dispose()


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    """A fresh SQLite file (for tests whose subject is not the backend)."""
    return f"sqlite:///{tmp_path / 'autolr.db'}"


@pytest.fixture
def make_client(sqlite_url: str) -> Iterator[Callable[..., TestClient]]:
    """Build apps with settings overrides; each returned TestClient is closed afterwards."""
    clients: list[TestClient] = []

    def make(database_url: str = sqlite_url, **settings: Any) -> TestClient:
        app: FastAPI = create_app(Settings(database_url=database_url, **settings))
        client = TestClient(app)
        client.__enter__()
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.__exit__(None, None, None)


@pytest.fixture
def client(make_client: Callable[..., TestClient]) -> TestClient:
    """An app on a fresh SQLite file, with default settings."""
    return make_client()


@pytest.fixture(autouse=True)
def _one_torch_thread() -> Iterator[None]:
    """One intra-op thread, as in a server process (`Settings.torch_threads`): GP fits on a few
    points gain nothing from more, and oversubscribed cores make them many times slower."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
