"""The Dockerfile and docker-compose.yml, checked without a Docker engine (CI has none).

The files are parsed and their promises checked (multi-stage build, non-root user, the
server extra, health check, volume; compose: one image built once and run as two replicas on
PostgreSQL behind a stock nginx, restart policies, the admin key and database password from
secret files, a balancer log without query strings); the command the image runs,
``autolr serve``, is then run here as a subprocess and must answer ``/healthz``.
"""

from __future__ import annotations

import json
import os
import re
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


#: Restart policies that bring a crashed service back.
RESTARTS = {"always", "unless-stopped", "on-failure"}
#: Stock load-balancer images (no build of ours in front of the replicas).
BALANCERS = ("nginx", "traefik", "haproxy")


def _services() -> dict[str, dict[str, Any]]:
    services: dict[str, dict[str, Any]] = _compose()["services"]
    return services


def _replica_service() -> tuple[str, dict[str, Any]]:
    [(name, service)] = [(n, s) for n, s in _services().items() if "build" in s]
    return name, service


def test_compose_builds_one_image_once_and_runs_it_twice() -> None:
    _, service = _replica_service()  # exactly one service builds
    assert service["build"] == "." and service.get("image")
    assert service["deploy"]["replicas"] >= 2
    assert not service.get("ports")  # replicas are reached through the load balancer only


def test_every_service_restarts_after_a_crash() -> None:
    for name, service in _services().items():
        assert service.get("restart") in RESTARTS, name


def test_a_stock_load_balancer_fronts_the_replicas() -> None:
    replica, _ = _replica_service()
    [(name, lb)] = [
        (n, s) for n, s in _services().items() if s.get("image", "").startswith(BALANCERS)
    ]
    assert "build" not in lb and lb["depends_on"][replica]["condition"] == "service_healthy"
    published = [n for n, s in _services().items() if s.get("ports")]
    assert published == [name]  # the one way in
    [mount] = [v for v in lb["volumes"] if v.endswith(":ro")]
    conf = (ROOT / mount.split(":")[0]).read_text()
    assert f"server {replica}:8000" in conf
    assert "resolver 127.0.0.11" in conf  # Docker's DNS: every replica's address
    # the balancer's access log never prints a query string (where a token may be)
    [log_format] = re.findall(r"log_format\s+(\w+)\s+([^;]+);", conf)
    assert not re.search(r"\$(request|request_uri|args|query_string|arg_\w+)\b", log_format[1])
    assert f"access_log /dev/stdout {log_format[0]};" in conf
    listen = re.search(r"listen\s+(\d+);", conf)
    assert listen is not None and lb["ports"] == [f"8000:{listen.group(1)}"]


def test_the_admin_key_and_database_password_come_from_secret_files() -> None:
    document = _compose()
    _, service = _replica_service()
    env = service["environment"]
    assert env["AUTOLR_REQUIRE_ADMIN_KEY"] == "true"  # no key, no server
    assert "AUTOLR_ADMIN_KEY" not in env and "AUTOLR_DATABASE_PASSWORD" not in env
    assert sa.make_url(env["AUTOLR_DATABASE_URL"]).password is None
    assert {"autolr_admin_key", "autolr_database_password"} <= set(service["secrets"])
    for secret in service["secrets"]:
        path = document["secrets"][secret]["file"]
        assert path.startswith("./secrets/")
    ignored = (ROOT / ".gitignore").read_text().split()
    assert "secrets/" in ignored and "secrets/" in (ROOT / ".dockerignore").read_text().split()
    [db] = [s for s in _services().values() if s.get("image", "").startswith("postgres")]
    assert "POSTGRES_PASSWORD" not in db["environment"]
    assert db["environment"]["POSTGRES_PASSWORD_FILE"] == "/run/secrets/autolr_database_password"
    assert "autolr_database_password" in db["secrets"]


def test_the_server_reads_the_secrets_as_compose_mounts_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each secret lands at /run/secrets/<its name>: the names must be the settings' files."""
    from autolr.server.settings import Settings

    _, service = _replica_service()
    for secret in service["secrets"]:
        (tmp_path / secret).write_text(f"value-of-{secret}\n")
    monkeypatch.setenv("AUTOLR_SECRETS_DIR", str(tmp_path))
    monkeypatch.delenv("AUTOLR_ADMIN_KEY", raising=False)
    for name, value in service["environment"].items():
        monkeypatch.setenv(name, value)
    settings = Settings()
    assert settings.admin_key is not None
    assert settings.admin_key.get_secret_value() == "value-of-autolr_admin_key"
    url = sa.make_url(settings.engine_url)
    assert url.password == "value-of-autolr_database_password" and url.host == "postgres"
    [db] = [s for s in _services().values() if s.get("image", "").startswith("postgres")]
    assert (url.username, url.database) == (
        db["environment"]["POSTGRES_USER"],
        db["environment"]["POSTGRES_DB"],
    )


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
