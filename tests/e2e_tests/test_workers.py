"""``autolr serve`` with several worker processes: one per core by default, all serving.

A decision is CPU-bound Python (the GIL), so one process decides on one core at a time; the
default runs a uvicorn worker per core (issue 19). Here two real workers on one SQLite file
serve concurrent jobs to the end, and a stop takes every worker down.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import psutil
import pytest

from autolr.client._http import HttpTransport
from autolr.config import TunerConfig
from autolr.controller import Controller
from autolr.server.settings import Settings
from autolr.server.testing import ServerProcess
from autolr.server.views import SegmentPublic, as_public
from autolr.simulate import NoisyQuadratic, run_job

CONFIG = TunerConfig(
    min_lr=1e-3,
    max_lr=1.0,
    total_steps=600,
    min_stages=2,
    probes_per_stage=3,
    initial_probes=2,
    seed=5,
)


def test_workers_default_to_the_cores_and_share_them_for_decisions(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("AUTOLR_WORKERS", raising=False)
    monkeypatch.delenv("AUTOLR_DECISION_THREADS", raising=False)
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    assert Settings().workers == cores
    assert Settings().decision_threads == 1  # cores // cores
    assert Settings(workers=1).decision_threads == cores
    assert Settings(workers=1, decision_threads=3).decision_threads == 3  # explicit wins
    monkeypatch.setenv("AUTOLR_WORKERS", "1")
    assert Settings().decision_threads == cores


def _workers(server: ServerProcess) -> list[psutil.Process]:
    assert server.process is not None
    children = psutil.Process(server.process.pid).children()
    return [c for c in children if "resource_tracker" not in " ".join(c.cmdline())]


@pytest.mark.timeout(240)
def test_two_workers_serve_concurrent_jobs_to_the_end(
    server_factory: Callable[..., ServerProcess], sqlite_url: str
) -> None:
    server = server_factory(sqlite_url, env={"AUTOLR_WORKERS": "2"})
    server.start(timeout=120)
    workers = _workers(server)
    assert len(workers) == 2, [w.cmdline() for w in workers]

    def one_job(seed: int) -> tuple[list[object], list[object]]:
        config = CONFIG.model_copy(update={"seed": seed})
        transport = HttpTransport(server.url, strict=True)
        try:
            instruction = transport.start(config)
            model = NoisyQuadratic(seed=seed)
            while not instruction.finished:
                instruction = transport.report(model.follow(instruction))
            served = transport.job()
        finally:
            transport.close()
        embedded = Controller(config)
        run_job(embedded, NoisyQuadratic(seed=seed))
        assert served["status"] == "finished"
        return served["segments"], as_public(SegmentPublic, embedded.segments)

    with ThreadPoolExecutor(4) as pool:
        for served, expected in pool.map(one_job, range(4)):
            assert served == expected  # the same decisions as the embedded controller

    server.stop()
    assert not any(w.is_running() and w.status() != psutil.STATUS_ZOMBIE for w in workers)
