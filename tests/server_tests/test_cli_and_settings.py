"""The command line, settings from the environment, and import-time hygiene."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from autolr.cli import app
from autolr.server.logs import JsonFormatter
from autolr.server.settings import Settings, get_settings


def test_autolr_help_lists_serve_and_db() -> None:
    result = CliRunner().invoke(app, ["--help"])
    assert result.exit_code == 0
    assert "serve" in result.output and "db" in result.output


def test_serve_help_names_every_option() -> None:
    result = CliRunner().invoke(app, ["serve", "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0
    for option in ("--host", "--port", "--db", "--workers", "--log-level", "AUTOLR_DATABASE_URL"):
        assert option in result.output


def test_db_upgrade_creates_the_schema(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'jobs.db'}"
    result = CliRunner().invoke(app, ["db", "upgrade", "--db", url])
    assert result.exit_code == 0, result.output
    engine = sa.create_engine(url)
    assert {"jobs", "reports", "alembic_version"} <= set(sa.inspect(engine).get_table_names())
    engine.dispose()


def test_serve_rejects_bad_settings_with_a_message() -> None:
    result = CliRunner().invoke(app, ["serve", "--log-level", "loud"])
    assert result.exit_code == 2
    assert "log_level" in result.output


def test_python_dash_m_autolr_server_is_the_serve_command() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "autolr.server", "--help"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "--db" in result.stdout and "--workers" in result.stdout


def test_settings_read_the_autolr_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AUTOLR_DATABASE_URL", "sqlite:///elsewhere.db")
    monkeypatch.setenv("AUTOLR_ADMIN_KEY", "s3cret-key")
    monkeypatch.setenv("AUTOLR_MAX_LOSSES_PER_REPORT", "123")
    settings = Settings()
    assert settings.database_url == "sqlite:///elsewhere.db"
    assert settings.admin_key is not None and settings.admin_key.get_secret_value() == "s3cret-key"
    assert "s3cret" not in repr(settings)  # the key never shows in logs or tracebacks
    assert settings.max_losses_per_report == 123


def test_get_settings_is_cached(monkeypatch: pytest.MonkeyPatch) -> None:
    get_settings.cache_clear()
    monkeypatch.setenv("AUTOLR_PORT", "9123")
    try:
        assert get_settings() is get_settings() and get_settings().port == 9123
    finally:
        get_settings.cache_clear()


def test_importing_the_server_creates_no_settings_engine_or_database(tmp_path: Path) -> None:
    code = (
        "import autolr.server.app, autolr.server.routes.jobs, autolr.server.store, sys;"
        "from autolr.server.settings import get_settings;"
        "assert get_settings.cache_info().currsize == 0;"
        "print('sqlalchemy.engine' in sys.modules)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    assert list(tmp_path.iterdir()) == []  # no autolr.db appeared


def test_log_lines_are_json_with_job_and_segment() -> None:
    record = logging.LogRecord(
        "autolr.server.service", logging.INFO, __file__, 1, "report applied", None, None
    )
    record.job_id, record.segment = "abc", 4
    line = json.loads(JsonFormatter().format(record))
    assert line["message"] == "report applied" and line["level"] == "info"
    assert (line["job_id"], line["segment"]) == ("abc", 4)


def test_service_logs_carry_job_id_and_segment(
    client: object, caplog: pytest.LogCaptureFixture
) -> None:
    from fastapi.testclient import TestClient
    from server_helpers import create_job, post_report

    from autolr.protocol import Instruction
    from autolr.simulate import NoisyQuadratic

    assert isinstance(client, TestClient)
    job = create_job(client)
    with caplog.at_level(logging.INFO, logger="autolr.server"):
        report = NoisyQuadratic(seed=0).follow(Instruction.model_validate(job["instruction"]))
        post_report(client, job, report)
    [applied] = [r for r in caplog.records if r.getMessage() == "report applied"]
    assert applied.job_id == job["job_id"] and applied.segment == 0  # type: ignore[attr-defined]
    assert applied.next_segment == 1  # type: ignore[attr-defined]
