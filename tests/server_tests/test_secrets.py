"""Secrets from files (``AUTOLR_SECRETS_DIR``, as Docker mounts them) and a required admin key."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa
from pydantic import ValidationError

from autolr.server.settings import Settings
from autolr.server.testing import ServerProcess

KEY = "key-from-a-secret-file"


def _secrets(folder: Path, **files: str) -> Path:
    folder.mkdir(exist_ok=True)
    for name, value in files.items():
        (folder / name).write_text(value + "\n")  # editors add a newline: it is stripped
    return folder


def test_secret_files_give_the_admin_key_and_the_database_password(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = _secrets(tmp_path / "s", autolr_admin_key=KEY, autolr_database_password="pw:/@x")
    monkeypatch.setenv("AUTOLR_SECRETS_DIR", str(folder))
    monkeypatch.delenv("AUTOLR_ADMIN_KEY", raising=False)
    settings = Settings(database_url="postgresql+psycopg://autolr@db:5432/autolr")
    assert settings.admin_key is not None and settings.admin_key.get_secret_value() == KEY
    url = sa.make_url(settings.engine_url)
    assert (url.username, url.password, url.host) == ("autolr", "pw:/@x", "db")
    assert "pw" not in repr(settings) and "pw" not in str(settings.model_dump())


def test_the_environment_wins_over_a_secret_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AUTOLR_SECRETS_DIR", str(_secrets(tmp_path / "s", autolr_admin_key=KEY)))
    monkeypatch.setenv("AUTOLR_ADMIN_KEY", "from-env")
    assert Settings().admin_key is not None
    assert Settings().admin_key.get_secret_value() == "from-env"  # type: ignore[union-attr]


def test_a_password_in_the_url_is_kept(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AUTOLR_SECRETS_DIR", str(tmp_path / "none"))
    url = "postgresql+psycopg://u:inline@db/x"
    assert Settings(database_url=url, database_password="other").engine_url == url


def test_a_required_admin_key_that_is_missing_stops_the_settings(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AUTOLR_SECRETS_DIR", str(tmp_path / "none"))
    monkeypatch.delenv("AUTOLR_ADMIN_KEY", raising=False)
    with pytest.raises(ValidationError, match="require_admin_key=true but no admin key"):
        Settings(require_admin_key=True)
    with pytest.raises(ValidationError, match="admin_key is blank"):
        Settings(admin_key="  ")


def test_a_server_without_its_required_key_does_not_start(tmp_path: Path) -> None:
    env = {
        "AUTOLR_DATABASE_URL": f"sqlite:///{tmp_path / 'a.db'}",
        "AUTOLR_REQUIRE_ADMIN_KEY": "true",
        "AUTOLR_SECRETS_DIR": str(tmp_path / "none"),
        "PATH": "/usr/bin:/bin",
    }
    result = subprocess.run(
        [sys.executable, "-m", "autolr.server", "--port", "0"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode != 0
    assert "require_admin_key=true but no admin key" in result.stdout + result.stderr


def test_a_server_reads_its_admin_key_from_the_secrets_folder(tmp_path: Path) -> None:
    folder = _secrets(tmp_path / "s", autolr_admin_key=KEY)
    server = ServerProcess(
        f"sqlite:///{tmp_path / 'a.db'}",
        env={
            "AUTOLR_SECRETS_DIR": str(folder),
            "AUTOLR_REQUIRE_ADMIN_KEY": "true",
            "AUTOLR_WARM_UP": "false",
        },
    )
    config = {"min_lr": 1e-3, "max_lr": 1.0}
    with server:
        assert httpx.post(f"{server.url}/v1/jobs", json=config, timeout=30).status_code == 401
        answer = httpx.post(
            f"{server.url}/v1/jobs", json=config, headers={"X-Admin-Key": KEY}, timeout=30
        )
        assert answer.status_code == 201
