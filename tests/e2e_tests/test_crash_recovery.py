"""A server killed with SIGKILL mid-stage and restarted on the same database loses nothing:
the job completes with the same segment log as an uninterrupted run with the same seed."""

from __future__ import annotations

import threading
from collections.abc import Callable

from autolr.client._http import HttpTransport, ServerUnavailable
from autolr.config import TunerConfig
from autolr.controller import Controller
from autolr.server.testing import ServerProcess
from autolr.server.views import SegmentPublic, StagePublic, as_public
from autolr.simulate import NoisyQuadratic, run_job

CONFIG = TunerConfig(
    min_lr=1e-3,
    max_lr=1.0,
    total_steps=600,
    min_stages=2,
    probes_per_stage=3,
    initial_probes=2,
    seed=11,
    probe_budget=None,  # every stage searches, so stage 1 has probes to kill in
)


def test_sigkill_mid_stage_then_restart_gives_the_uninterrupted_segment_log(
    server_factory: Callable[..., ServerProcess], sqlite_url: str
) -> None:
    server = server_factory(sqlite_url).start()
    # Retries must outlast a restart (seconds; more on a loaded machine): up to ~50 s.
    transport = HttpTransport(server.url, retries=200, backoff=0.05, backoff_max=0.5, strict=True)
    model = NoisyQuadratic(seed=4)
    instruction = transport.start(CONFIG)
    restarted = threading.Event()
    failures: list[BaseException] = []
    killed = False

    def crash_and_restart() -> None:
        server.kill()
        try:
            server.start()
        except BaseException as exc:  # reported by the main thread
            failures.append(exc)
            return
        restarted.set()

    while not instruction.finished:
        report = model.follow(instruction)
        if not killed and instruction.kind == "probe" and instruction.stage == 1:
            # the report of stage 1's first probe segment is in flight, or about to be
            killed = True
            threading.Thread(target=crash_and_restart).start()
        try:
            instruction = transport.report(report)
        except ServerUnavailable as exc:
            log = server.log_path.read_text()[-3000:] if server.log_path else ""
            raise AssertionError(f"no restart ({failures}); server log:\n{log}") from exc
    assert restarted.wait(60)

    embedded = Controller(CONFIG)
    run_job(embedded, NoisyQuadratic(seed=4))
    served = transport.job()
    assert served["status"] == "finished"
    assert served["segments"] == as_public(SegmentPublic, embedded.segments)
    assert served["stages"] == as_public(StagePublic, embedded.stages)
    transport.close()
