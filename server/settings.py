"""Server settings, read from ``AUTOLR_*`` environment variables, a ``.env`` file, or secret
files.

Secrets (the admin key, the database password) should not sit in the environment, where
``docker inspect`` and child processes see them: each field may also come from a file named
``autolr_<field>`` in the secrets folder (``AUTOLR_SECRETS_DIR``, default ``/run/secrets``,
where Docker and Kubernetes mount secrets). Environment variables win over files.

Nothing here runs at import time: `get_settings` builds the settings on first call and caches
them, and `autolr.server.app.create_app` takes a `Settings` so tests pass their own.
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal, Self

import sqlalchemy as sa
from pydantic import Field, SecretStr, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SecretsSettingsSource,
    SettingsConfigDict,
)

#: Where secret files are read from unless ``AUTOLR_SECRETS_DIR`` says otherwise.
DEFAULT_SECRETS_DIR = "/run/secrets"

LogLevel = Literal["critical", "error", "warning", "info", "debug"]


def _default_threads() -> int:
    """The cores this process may run on (its CPU affinity: ``taskset``, a container's cpuset;
    a CPU quota without a cpuset is not seen, so set ``AUTOLR_WORKERS`` there)."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)


class Settings(BaseSettings):
    """Everything an operator can set. Each field reads ``AUTOLR_<FIELD>``.

    Example:
        >>> Settings(database_url="sqlite:///jobs.db").max_losses_per_report
        200000
    """

    model_config = SettingsConfigDict(
        env_prefix="AUTOLR_", env_file=".env", extra="ignore", frozen=True
    )

    database_url: str = Field(
        default="sqlite:///autolr.db",
        description="SQLAlchemy URL: sqlite:///path.db or postgresql+psycopg://user@host/db.",
    )
    admin_key: SecretStr | None = Field(
        default=None,
        description="When set, creating and listing jobs need it (Bearer or X-Admin-Key).",
    )
    require_admin_key: bool = Field(
        default=False,
        description="Refuse to start without an admin key (deployments set it: no open server).",
    )
    database_password: SecretStr | None = Field(
        default=None,
        description="The database password, when database_url carries none (from a secret file).",
    )
    # A report carries one loss per step; 200k covers τ_max = 8000 with wide margin while a
    # JSON float is ~20 bytes, so the largest report stays a few MB (below max_body_bytes).
    max_losses_per_report: int = Field(
        default=200_000, ge=1, description="Losses per report, at most."
    )
    max_body_bytes: int = Field(
        default=16 * 2**20, ge=1024, description="Request body size, at most."
    )
    # Decisions (GP fits) run in the thread pool; more at once than cores only adds contention
    # and starves the event loop of the GIL, so the rest wait on a semaphore (which frees it).
    # Unset, each worker process takes its share of the cores (`_share_cores`).
    decision_threads: int = Field(
        default_factory=_default_threads, ge=1, description="Decisions computed at once."
    )
    # GP fits are tiny (tens of points): intra-op threads only oversubscribe the cores that the
    # decision threads and the event loop share, and OpenMP's spinning workers starve the loop.
    torch_threads: int = Field(default=1, ge=1, description="torch intra-op threads per process.")
    # Python's GIL hand-off interval (default 5 ms): shorter lets the event loop take the GIL
    # sooner from threads that are fitting GPs, so /healthz stays fast under load.
    switch_interval_s: float = Field(
        default=0.0005, gt=0, le=0.1, description="sys.setswitchinterval for the server process."
    )
    warm_up: bool = Field(default=True, description="Run one GP proposal at process start.")
    migrate_on_startup: bool = Field(
        default=True, description="Run Alembic migrations in create_app."
    )
    # uvicorn closes an idle keep-alive connection after this long (its default: 5 s). httpx
    # (the client, `HttpTransport`) drops its idle ones after 5 s too: with equal timers a
    # report sent on a connection the server is closing at that instant fails with a
    # ReadError (seen in benchmarks/service_load.py at a 5 s cadence). Longer here, the
    # client always closes first.
    keep_alive_s: int = Field(
        default=30, ge=1, description="Seconds an idle HTTP keep-alive connection is kept."
    )
    log_level: LogLevel = "info"
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=0, le=65535)
    # One process per core by default: a decision is CPU-bound Python under the GIL, so a
    # process decides on one core at a time (issue 19; README "Performance figures").
    workers: int = Field(
        default_factory=_default_threads, ge=1, description="uvicorn worker processes."
    )

    @model_validator(mode="before")
    @classmethod
    def _share_cores(cls, data: Any) -> Any:
        """Unset ``decision_threads``: the cores divided among the workers (at least 1)."""
        if not isinstance(data, dict) or data.get("decision_threads") is not None:
            return data
        workers = data.get("workers")
        try:
            count = _default_threads() if workers is None else int(workers)
        except (TypeError, ValueError):
            return data  # the field's own validation names the bad value
        if count >= 1:
            return {**data, "decision_threads": max(1, _default_threads() // count)}
        return data

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Arguments, then the environment, then ``.env``, then secret files (when the folder
        exists: most machines have no ``/run/secrets``)."""
        folder = os.environ.get("AUTOLR_SECRETS_DIR", DEFAULT_SECRETS_DIR)
        sources = [init_settings, env_settings, dotenv_settings]
        if Path(folder).is_dir():
            sources.append(SecretsSettingsSource(settings_cls, secrets_dir=folder))
        return tuple(sources)

    @model_validator(mode="after")
    def _check_secrets(self) -> Self:
        if self.admin_key is not None and not self.admin_key.get_secret_value().strip():
            raise ValueError("admin_key is blank: set a real key or leave AUTOLR_ADMIN_KEY unset")
        if self.require_admin_key and self.admin_key is None:
            raise ValueError(
                "require_admin_key=true but no admin key is set: set AUTOLR_ADMIN_KEY or put it "
                "in the secret file autolr_admin_key (folder AUTOLR_SECRETS_DIR, default "
                f"{DEFAULT_SECRETS_DIR})"
            )
        return self

    @property
    def engine_url(self) -> str:
        """``database_url`` with ``database_password`` filled in (when the URL has none)."""
        if self.database_password is None:
            return self.database_url
        url = sa.make_url(self.database_url)
        if url.password is not None:
            return self.database_url
        return url.set(password=self.database_password.get_secret_value()).render_as_string(
            hide_password=False
        )


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings from the environment, built once."""
    return Settings()
