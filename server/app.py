"""The application factory.

`create_app` builds everything (engine, migrations, store, metrics) from a `Settings`, so
importing this module has no side effects and tests create as many apps as they like.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

import autolr
from autolr.server import db
from autolr.server.errors import install_error_handlers
from autolr.server.limits import BodyLimit
from autolr.server.logs import configure_logging, install_redaction
from autolr.server.metrics import HttpMetrics, Metrics
from autolr.server.routes import dashboard, jobs, ops
from autolr.server.service import JobService
from autolr.server.settings import Settings, get_settings
from autolr.server.store import JobStore, SqlStore

DESCRIPTION = """\
Online learning-rate tuning (AutoLRS) as a service.

A training process creates a job (`POST /v1/jobs`, a `TunerConfig`), runs the segment each
instruction describes, and reports its losses (`POST /v1/jobs/{job_id}/reports`) to get the
next instruction. Reports are idempotent.

**Auth.** Each job has a token, returned once by `POST /v1/jobs`: send it as
`Authorization: Bearer <token>` to report on, read or cancel that job. When the server has an
admin key (`AUTOLR_ADMIN_KEY`), creating and listing jobs need it, as
`Authorization: Bearer <key>` or `X-Admin-Key: <key>`; the admin key also opens every job.
An unknown job and a wrong token get the same 404.
"""


def create_app(settings: Settings | None = None, *, store: JobStore | None = None) -> FastAPI:
    """Build the app.

    Args:
        settings: defaults to `get_settings()` (the ``AUTOLR_*`` environment).
        store: defaults to a `SqlStore` on ``settings.engine_url``, migrated first when
            ``settings.migrate_on_startup``.
    """
    settings = settings or get_settings()
    install_redaction()  # uvicorn's access log prints query strings, where tokens may be
    if store is None:
        engine = db.make_engine(settings.engine_url)
        if settings.migrate_on_startup:
            db.upgrade(engine)
        store = SqlStore(engine)
    metrics = Metrics(store.count_by_status)
    service = JobService(
        store,
        metrics,
        max_losses_per_report=settings.max_losses_per_report,
        decision_threads=settings.decision_threads,
    )
    owned_store = store

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        yield
        owned_store.close()

    app = FastAPI(
        title="autolr",
        version=autolr.__version__,
        description=DESCRIPTION,
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.store = store
    app.state.metrics = metrics
    app.state.service = service
    install_error_handlers(app)
    app.add_middleware(BodyLimit, max_bytes=settings.max_body_bytes)
    app.add_middleware(HttpMetrics, metrics=metrics)  # outermost: counts the 413s too
    app.include_router(jobs.router)
    app.include_router(ops.router)
    app.include_router(dashboard.router)
    return app


def create_app_from_env() -> FastAPI:
    """Factory for ``uvicorn --factory`` and worker processes: settings from the environment.

    It is a process's entry point, so it also sets up logging (JSON lines) and the process-wide
    knobs of `autolr.server.run.tune_process`.
    """
    from autolr.server.run import tune_process

    settings = get_settings()
    configure_logging(settings.log_level)
    tune_process(settings)
    return create_app(settings)
