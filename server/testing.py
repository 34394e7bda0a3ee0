"""Helpers for testing against a real server: throwaway PostgreSQL schemas and uvicorn processes.

Shipped with the package (like Optuna's ``optuna.testing``) so that every test folder, and
users' own integration tests, can start a real server on loopback the same way.
"""

from __future__ import annotations

import contextlib
import os
import random
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator, Mapping
from pathlib import Path

import httpx
import sqlalchemy as sa

from autolr.server.db import make_engine

#: Environment variable naming the PostgreSQL server the tests may use.
POSTGRES_ENV = "AUTOLR_TEST_POSTGRES_URL"
#: Used when it is unset: the local server (trust auth, database ``test``) of the project's
#: machines and CI; where none answers, the PostgreSQL tests skip saying so.
DEFAULT_POSTGRES_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


def postgres_url_or_reason() -> tuple[str | None, str]:
    """The test PostgreSQL URL if one answers, else None and why not.

    ``AUTOLR_TEST_POSTGRES_URL`` when set; otherwise the local server the project's machines
    run (`DEFAULT_POSTGRES_URL`), so a plain ``make test`` uses it where it answers.
    """
    url = os.environ.get(POSTGRES_ENV) or DEFAULT_POSTGRES_URL
    engine = make_engine(url, connect_args={"connect_timeout": 3})
    try:
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
    except sa.exc.OperationalError as exc:
        return None, (
            f"no PostgreSQL answers at {url} (set {POSTGRES_ENV} to another): "
            f"{str(exc).splitlines()[0]}"
        )
    finally:
        engine.dispose()
    return url, ""


@contextlib.contextmanager
def temporary_schema(url: str) -> Iterator[str]:
    """A fresh PostgreSQL schema for one test session; yields a URL whose search_path is it.

    Test runs sharing one database never see each other's tables; the schema is dropped at
    the end.
    """
    schema = f"autolr_test_{uuid.uuid4().hex[:12]}"
    admin = make_engine(url)
    with admin.begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    scoped = sa.make_url(url).update_query_dict({"options": f"-csearch_path={schema}"})
    try:
        yield scoped.render_as_string(hide_password=False)
    finally:
        with admin.begin() as conn:
            conn.execute(sa.text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        admin.dispose()


def _ephemeral_range() -> tuple[int, int]:
    try:
        low, high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        return int(low), int(high)
    except (OSError, ValueError):
        return 32768, 60999


def free_port() -> int:
    """A TCP port on loopback that nothing listens on right now.

    Chosen below the kernel's ephemeral range, so that while a test server is down (killed on
    purpose) no outgoing connection, not even a client retrying against that very port (TCP
    self-connect), can be handed the port and keep the restarted server from binding it.
    """
    low, _high = _ephemeral_range()
    candidates = list(range(max(1024, low - 12_000), low))
    random.shuffle(candidates)
    for port in candidates[:200]:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:  # fall back: any port
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class ServerProcess:
    """``python -m autolr.server`` in a subprocess on loopback, for end-to-end tests.

    Args:
        database_url: the database the server uses (migrated at start).
        port: fixed port (default: a free one, kept across `restart`).
        log_path: where the server's output goes (default: discarded).
        env: extra environment variables (``AUTOLR_ADMIN_KEY``, ...).

    Example:
        >>> with ServerProcess("sqlite:///tmp/jobs.db") as server:  # doctest: +SKIP
        ...     httpx.get(server.url + "/healthz").json()
        {'status': 'ok'}
    """

    def __init__(
        self,
        database_url: str,
        *,
        port: int | None = None,
        log_path: Path | None = None,
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.database_url = database_url
        self.port = port or free_port()
        self.log_path = log_path
        self.env = dict(env or {})
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """Base URL of the server."""
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 60.0) -> ServerProcess:
        """Start the server and wait until ``/healthz`` answers."""
        env = {
            **os.environ,
            "AUTOLR_DATABASE_URL": self.database_url,
            "AUTOLR_LOG_LEVEL": "warning",
            # one process unless a test asks for more (``autolr serve`` defaults to one per
            # core): a test's SIGKILL must take the whole server down, not orphan workers
            "AUTOLR_WORKERS": "1",
            **self.env,
        }
        out = open(self.log_path, "ab") if self.log_path else subprocess.DEVNULL  # noqa: SIM115
        try:
            self.process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "autolr.server",
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(self.port),
                ],
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        finally:
            if self.log_path:
                out.close()  # type: ignore[union-attr]
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"server exited with code {self.process.returncode} while starting; "
                    f"see {self.log_path or 'its output'}"
                )
            try:
                if httpx.get(self.url + "/healthz", timeout=1.0).status_code == 200:
                    return self
            except httpx.TransportError:
                pass
            time.sleep(0.05)
        self.kill()
        raise TimeoutError(f"server on port {self.port} did not answer within {timeout}s")

    def kill(self) -> None:
        """SIGKILL: the process gets no chance to clean up (what a crash looks like)."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=30)

    def stop(self) -> None:
        """Graceful stop (SIGTERM), falling back to SIGKILL."""
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.kill()

    def restart(self, timeout: float = 60.0) -> ServerProcess:
        """Kill the server if it runs and start it again on the same port and database."""
        self.kill()
        return self.start(timeout)

    def __enter__(self) -> ServerProcess:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()
