"""The Dockerfile and docker-compose.yml, checked without a Docker engine (CI has none).

The files are parsed and their promises checked (multi-stage build, non-root user, the
server extra, health check, volume, PostgreSQL with two replicas); the command the image runs,
``autolr serve``, is then run here as a subprocess and must answer ``/healthz``.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
import yaml

from autolr.server.testing import free_port

ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Instruction:
    keyword: str
    args: str
    stage: int  # index of the FROM this instruction belongs to


def parse_dockerfile(text: str) -> list[Instruction]:
    """Instructions with continuation lines joined and comments dropped."""
    out: list[Instruction] = []
    logical = ""
    stage = -1
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            logical += line[:-1] + " "
            continue
        logical += line
        keyword, _, args = logical.partition(" ")
        if keyword.upper() == "FROM":
            stage += 1
        out.append(Instruction(keyword.upper(), args.strip(), stage))
        logical = ""
    return out


@pytest.fixture(scope="module")
def dockerfile() -> list[Instruction]:
    return parse_dockerfile((ROOT / "Dockerfile").read_text())


@pytest.fixture(scope="module")
def final_stage(dockerfile: list[Instruction]) -> list[Instruction]:
    last = max(i.stage for i in dockerfile)
    return [i for i in dockerfile if i.stage == last]


def env_of(stage: list[Instruction]) -> dict[str, str]:
    env: dict[str, str] = {}
    for ins in stage:
        if ins.keyword == "ENV":
            for pair in shlex.split(ins.args):
                key, _, value = pair.partition("=")
                env[key] = value
    return env


def test_the_build_is_multi_stage_and_copies_the_wheel(
    dockerfile: list[Instruction], final_stage: list[Instruction]
) -> None:
    froms = [i for i in dockerfile if i.keyword == "FROM"]
    assert len(froms) >= 2
    assert any(i.keyword == "COPY" and "--from=" in i.args for i in final_stage)


def test_the_runtime_runs_as_a_non_root_user_who_owns_the_volume(
    final_stage: list[Instruction],
) -> None:
    users = [i.args.split(":")[0] for i in final_stage if i.keyword == "USER"]
    assert users and users[-1] not in ("root", "0")
    [volume] = [i for i in final_stage if i.keyword == "VOLUME"]
    paths = json.loads(volume.args) if volume.args.startswith("[") else volume.args.split()
    runs = " ".join(i.args for i in final_stage if i.keyword == "RUN")
    for path in paths:  # otherwise the non-root user cannot create the SQLite file
        assert f"mkdir -p {path}" in runs and f"{users[-1]}:{users[-1]} {path}" in runs


def test_the_sqlite_database_lives_on_the_volume(final_stage: list[Instruction]) -> None:
    url = sa.make_url(env_of(final_stage)["AUTOLR_DATABASE_URL"])
    assert url.get_backend_name() == "sqlite" and url.database
    [volume] = [i for i in final_stage if i.keyword == "VOLUME"]
    paths = json.loads(volume.args) if volume.args.startswith("[") else volume.args.split()
    database = PurePosixPath(url.database)
    assert database.is_absolute()
    assert any(database.is_relative_to(path) for path in paths)


def test_the_server_extra_is_installed(final_stage: list[Instruction]) -> None:
    installs = [i.args for i in final_stage if i.keyword == "RUN" and "pip install" in i.args]
    assert any("[server]" in args for args in installs)


def test_the_image_serves_on_all_interfaces_port_8000(final_stage: list[Instruction]) -> None:
    [cmd] = [i for i in final_stage if i.keyword == "CMD"]
    argv = json.loads(cmd.args)  # exec form: signals reach the server, not a shell
    assert argv[:2] == ["autolr", "serve"]
    assert argv[argv.index("--host") + 1] == "0.0.0.0"
    assert argv[argv.index("--port") + 1] == "8000"
    assert any(i.keyword == "EXPOSE" and i.args.split()[0] == "8000" for i in final_stage)


def test_the_health_check_asks_healthz(final_stage: list[Instruction]) -> None:
    [check] = [i for i in final_stage if i.keyword == "HEALTHCHECK"]
    assert "CMD" in check.args and ":8000/healthz" in check.args


def _compose() -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    return document


def test_compose_runs_two_replicas_on_postgres() -> None:
    services = _compose()["services"]
    [(db_name, db)] = [(n, s) for n, s in services.items() if "postgres" in s.get("image", "")]
    replicas = {n: s for n, s in services.items() if s.get("build") == "."}
    assert len(replicas) >= 2
    db_env = db["environment"]
    for name, service in replicas.items():
        url = sa.make_url(service["environment"]["AUTOLR_DATABASE_URL"])
        assert url.get_backend_name() == "postgresql", name
        assert url.host == db_name, name
        assert (url.username, url.password, url.database) == (
            db_env["POSTGRES_USER"],
            db_env["POSTGRES_PASSWORD"],
            db_env["POSTGRES_DB"],
        ), name
        assert db_name in service["depends_on"], name
    host_ports = [p.split(":")[0] for s in replicas.values() for p in s.get("ports", [])]
    assert len(host_ports) == len(set(host_ports)) >= 2  # each replica reachable on its own


def test_the_image_command_answers_healthz(tmp_path: Path) -> None:
    """``autolr serve`` (the image's CMD, the console script) on loopback, database from the
    environment as in the image."""
    port = free_port()
    script = Path(sys.executable).with_name("autolr")
    env = {
        **os.environ,
        "AUTOLR_DATABASE_URL": f"sqlite:///{tmp_path / 'data' / 'autolr.db'}",
        "AUTOLR_WARM_UP": "false",
    }
    (tmp_path / "data").mkdir()
    log = (tmp_path / "serve.log").open("wb")
    process = subprocess.Popen(
        [str(script), "serve", "--host", "127.0.0.1", "--port", str(port)],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 60
        answer = None
        while time.monotonic() < deadline and process.poll() is None:
            try:
                answer = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1)
                break
            except httpx.TransportError:
                time.sleep(0.1)
        assert answer is not None, (tmp_path / "serve.log").read_text()[-2000:]
        assert answer.status_code == 200 and answer.json() == {"status": "ok"}
        assert (tmp_path / "data" / "autolr.db").exists()
        lines = (tmp_path / "serve.log").read_text().splitlines()
        records = [json.loads(line) for line in lines if line.startswith("{")]
        assert any(r["message"] == "serving" and r["port"] == port for r in records)
    finally:
        process.terminate()
        process.wait(timeout=30)
        log.close()
