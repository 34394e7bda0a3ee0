"""Engines and migrations for the two supported databases.

SQLite (the default, one file) runs in WAL mode with a busy timeout, so readers never block the
writer and concurrent writers queue instead of failing. PostgreSQL (through psycopg 3) is for
several server processes sharing one database. Migrations run under a database-wide lock, so
processes starting together migrate once.
"""

from __future__ import annotations

import logging
import sqlite3
import time
from importlib import resources
from typing import Any

import sqlalchemy as sa
from alembic import command
from alembic.config import Config

log = logging.getLogger(__name__)

#: How long a SQLite writer waits for the lock before failing, in milliseconds.
SQLITE_BUSY_TIMEOUT_MS = 30_000
#: Key of the PostgreSQL advisory lock held while migrating (any constant of ours works).
PG_MIGRATION_LOCK = 0x4155544F4C52  # "AUTOLR"


def is_sqlite(url: str | sa.URL) -> bool:
    """True for ``sqlite`` URLs (any driver)."""
    return sa.make_url(url).get_backend_name() == "sqlite"


def make_engine(url: str | sa.URL, **kwargs: Any) -> sa.Engine:
    """An engine with the settings each backend needs for a multi-threaded server.

    Args:
        url: SQLAlchemy URL, e.g. ``sqlite:///autolr.db`` or
            ``postgresql+psycopg://user@host:5432/db``. A bare ``postgresql://`` URL gets the
            psycopg 3 driver (the only PostgreSQL driver we install).
        **kwargs: passed to `sqlalchemy.create_engine`.
    """
    parsed = sa.make_url(url)
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    if parsed.get_backend_name() != "sqlite":
        kwargs.setdefault("pool_pre_ping", True)
        return sa.create_engine(parsed, **kwargs)
    connect_args = kwargs.pop("connect_args", {})
    # Handlers run in the thread pool; the pool hands one connection to one thread at a time.
    connect_args.setdefault("check_same_thread", False)
    connect_args.setdefault("timeout", SQLITE_BUSY_TIMEOUT_MS / 1000)
    engine = sa.create_engine(parsed, connect_args=connect_args, **kwargs)
    memory = parsed.database in (None, "", ":memory:")

    @sa.event.listens_for(engine, "connect")
    def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
        cur = dbapi_conn.cursor()
        cur.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cur.execute("PRAGMA foreign_keys=ON")
        if not memory:
            _enable_wal(cur)
        cur.close()

    return engine


def _enable_wal(cursor: Any) -> None:
    """Switch a SQLite file to WAL (persistent: a no-op once done).

    The switch needs an exclusive lock, and SQLite refuses it at once, without waiting for the
    busy timeout, while another connection holds a write lock (its deadlock avoidance). That
    happens when processes open a fresh file together, so the switch is retried briefly.
    """
    deadline = time.monotonic() + SQLITE_BUSY_TIMEOUT_MS / 1000
    while cursor.execute("PRAGMA journal_mode").fetchone()[0].lower() != "wal":
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.01)


def alembic_config() -> Config:
    """Alembic configuration pointing at the migrations shipped inside the package."""
    cfg = Config()
    cfg.set_main_option("script_location", str(resources.files("autolr.server") / "migrations"))
    return cfg


def upgrade(engine: sa.Engine, revision: str = "head") -> None:
    """Migrate the database to ``revision`` under a lock, so concurrent starts migrate once.

    PostgreSQL: a transaction-scoped advisory lock. SQLite: ``BEGIN IMMEDIATE`` takes the
    write lock before Alembic reads the current revision, so a second process waits (busy
    timeout) and then finds the schema up to date.
    """
    cfg = alembic_config()
    with engine.connect() as conn:
        if conn.dialect.name == "sqlite":
            conn.exec_driver_sql("BEGIN IMMEDIATE")
        elif conn.dialect.name == "postgresql":
            conn.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": PG_MIGRATION_LOCK})
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, revision)
        conn.commit()
    log.info("database schema at %s", revision, extra={"database": _safe_url(engine)})


def _safe_url(engine: sa.Engine) -> str:
    return engine.url.render_as_string(hide_password=True)
