"""Running the server process(es): logging, one migration, then uvicorn."""

from __future__ import annotations

import gc
import logging
import os
import sys
import time

import uvicorn

from autolr.server import db
from autolr.server.logs import configure_logging
from autolr.server.settings import Settings, get_settings

log = logging.getLogger(__name__)


def _export(settings: Settings) -> None:
    """Put the settings in the environment, where uvicorn's worker processes read them."""
    values = settings.model_dump(exclude={"admin_key", "database_password"})
    values["migrate_on_startup"] = False  # migrated once, here, before the workers start
    for name, value in values.items():
        os.environ[f"AUTOLR_{name.upper()}"] = (
            str(value).lower() if isinstance(value, bool) else str(value)
        )
    if settings.admin_key is not None:
        os.environ["AUTOLR_ADMIN_KEY"] = settings.admin_key.get_secret_value()
    if settings.database_password is not None:
        os.environ["AUTOLR_DATABASE_PASSWORD"] = settings.database_password.get_secret_value()


def tune_process(settings: Settings) -> None:
    """Process-wide knobs for a server process (never applied by `create_app`, a library call).

    Keeps the event loop responsive while the thread pool fits GPs:

    - a short GIL switch interval, so the loop takes the GIL back sooner;
    - one torch thread (`Settings.torch_threads`): no spinning OpenMP workers;
    - a warm-up GP proposal, so the first request does not import BoTorch in a worker thread
      (imports hold the GIL for long stretches) and first-call costs are paid before serving;
    - ``gc.freeze()`` afterwards: the hundreds of thousands of objects torch and BoTorch create
      at import leave the collector's view, so a full collection no longer stalls every thread
      (including the loop) for a few hundred milliseconds.
    """
    sys.setswitchinterval(settings.switch_interval_s)
    import torch

    torch.set_num_threads(settings.torch_threads)
    if settings.warm_up:
        started = time.perf_counter()
        try:
            _warm_up()
        except Exception:  # a failed warm-up costs speed, not correctness
            log.warning("warm-up decision failed", exc_info=True)
        log.info("warmed up", extra={"seconds": round(time.perf_counter() - started, 3)})
    gc.collect()
    gc.freeze()


def _warm_up() -> None:
    """Import the searcher's stack and run one GP proposal (its first-call costs included)."""
    from autolr.search import GPSearcher

    searcher = GPSearcher(n_init=1)
    searcher.propose([0.25, 0.75], [1.0, 0.5], seed=0)
    # with known variances too: the dense engine reads each model variant from BoTorch once
    searcher.propose([0.25, 0.75], [1.0, 0.5], seed=0, noise=[0.01, 0.02])


def serve(settings: Settings) -> None:
    """Migrate the database, then serve until interrupted.

    With ``workers > 1`` uvicorn starts that many processes, each building its own app from
    the environment (`autolr.server.app.create_app_from_env`); they share the database, which
    must then be PostgreSQL or a local SQLite file.
    """
    configure_logging(settings.log_level)
    engine = db.make_engine(settings.engine_url)
    try:
        db.upgrade(engine)
    finally:
        engine.dispose()
    _export(settings)
    get_settings.cache_clear()  # the app factory must read the exported values
    log.info(
        "serving",
        extra={"host": settings.host, "port": settings.port, "workers": settings.workers},
    )
    uvicorn.run(
        "autolr.server.app:create_app_from_env",
        factory=True,
        host=settings.host,
        port=settings.port,
        workers=settings.workers,
        timeout_keep_alive=settings.keep_alive_s,
        log_level=settings.log_level,
        log_config=None,
    )
