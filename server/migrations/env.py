"""Alembic environment: migrates the connection given by `autolr.server.db.upgrade`.

Run through ``autolr db upgrade`` (or `autolr.server.db.upgrade`), which passes an open
connection holding the migration lock. Plain ``alembic -c server/alembic.ini upgrade head`` also
works: it reads ``sqlalchemy.url`` or ``AUTOLR_DATABASE_URL``.
"""

from __future__ import annotations

import os

from alembic import context
from sqlalchemy.engine import Connection

from autolr.server.db import make_engine
from autolr.server.schema import metadata

config = context.config


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        # SQLite cannot ALTER most things; batch mode rebuilds tables instead.
        render_as_batch=True,
    )
    with context.begin_transaction():
        context.run_migrations()


connection = config.attributes.get("connection")
if connection is not None:
    _run(connection)
else:
    url = config.get_main_option("sqlalchemy.url") or os.environ.get(
        "AUTOLR_DATABASE_URL", "sqlite:///autolr.db"
    )
    engine = make_engine(url)
    try:
        with engine.begin() as conn:
            _run(conn)
    finally:
        engine.dispose()
