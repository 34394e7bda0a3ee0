"""Per-report cost over an open-ended job's life: latency at segment 50 against segment 5,000.

    .venv/bin/python benchmarks/report_cost.py [--points 50,5000] [--window 70] [--repeats 5]
        [--backends sqlite,postgresql] [--gp] [--json benchmarks/results/report_cost.json]

One open-ended job (no ``total_steps``) runs through the real service layer
(`autolr.server.service.JobService` on `SqlStore`: authorize, load, decide, save in one
transaction), fed by a noisy quadratic (`autolr.simulate.NoisyQuadratic`, synthetic losses).
At each point N the next ``--window`` reports are timed; the job is then put back to segment N
(its row as it was, later report and history rows deleted) and the window is timed again,
``--repeats`` times, alternating between the points (one job per point, all alike). The figure
of a point is the median over repeats of the window's median report latency; the ratio is the
last point's over the first's (target ≤ 1.2). The same in this thread's CPU time is printed
beside it: on a shared machine it moves less with other work than wall time does.

What is measured is what grows with a job's age: the stored state's parse and rewrite, and the
store's writes. The decisions themselves are kept cheap by default (``initial_probes =
probes_per_stage``: the GP never fits), since a GP fit's 20-40 ms would only dilute a growth;
``--gp`` uses the default search instead. Segments are short (τ of 20-40 steps) so that 5,000
segments take a minute, not hours; the state's and rows' sizes per segment do not depend on τ
(losses are kept as at most 64 bucket means per segment).

Also printed: the stored state's size at each point (format 2, bounded) and what format 1
(the whole history inside the state, rewritten on every report) would have held.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import json
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import sqlalchemy as sa

from autolr import TunerConfig
from autolr.protocol import Instruction
from autolr.server import db
from autolr.server.metrics import Metrics
from autolr.server.schema import jobs, reports, segment_log, stage_log
from autolr.server.service import JobService
from autolr.server.store import SqlStore, dumps
from autolr.server.testing import postgres_url_or_reason, temporary_schema
from autolr.simulate import NoisyQuadratic

#: The job: open-ended, short segments; no GP fit unless --gp (see the module docstring).
CONFIG: dict[str, Any] = {
    "min_lr": 1e-3,
    "max_lr": 1.0,
    "tau_min": 20,
    "tau_max": 40,
    "probes_per_stage": 3,
    "initial_probes": 3,
    "seed": 1,
}
#: Acceptance (issue 19): latency at the last point ≤ this times the first point's.
TARGET_RATIO = 1.2


def _config(gp: bool) -> TunerConfig:
    if gp:
        return TunerConfig(**{**CONFIG, "probes_per_stage": 6, "initial_probes": 3})
    return TunerConfig(**CONFIG)


@contextlib.contextmanager
def _database(backend: str) -> Iterator[str | None]:
    """A fresh database URL for ``backend`` (None when PostgreSQL does not answer)."""
    if backend == "sqlite":
        with tempfile.TemporaryDirectory() as folder:
            yield f"sqlite:///{folder}/report_cost.db"
        return
    url, reason = postgres_url_or_reason()
    if url is None:
        print(f"postgresql: skipped ({reason})")
        yield None
        return
    with temporary_schema(url) as scoped:
        yield scoped


class TimedStore(SqlStore):
    """`SqlStore` that adds up the wall time of the calls a report makes (``seconds``)."""

    seconds = 0.0

    def token_hash(self, job_id: str) -> str | None:
        started = time.perf_counter()
        try:
            return super().token_hash(job_id)
        finally:
            self.seconds += time.perf_counter() - started

    def load(self, job_id: str) -> Any:
        started = time.perf_counter()
        try:
            return super().load(job_id)
        finally:
            self.seconds += time.perf_counter() - started

    def save_report(self, job_id: str, **kwargs: Any) -> int:
        started = time.perf_counter()
        try:
            return super().save_report(job_id, **kwargs)
        finally:
            self.seconds += time.perf_counter() - started


class Job:
    """One open-ended job on a service, driven report by report."""

    def __init__(self, service: JobService, config: TunerConfig) -> None:
        self.service = service
        created = service.create(config)
        self.job_id, self.token = created.job_id, created.token
        self.inst: Instruction = created.instruction
        self.model = NoisyQuadratic(seed=7)

    def step(self) -> tuple[float, float, float]:
        """Report the awaited segment; the seconds the service took: wall, this thread's CPU
        (the database server's work and waits left out), and the store's calls' wall."""
        report = self.model.follow(self.inst)
        store = self.service.store
        assert isinstance(store, TimedStore)
        started, cpu, in_store = time.perf_counter(), time.thread_time(), store.seconds
        self.inst = self.service.report_as(self.job_id, self.token, report)
        wall, cpu = time.perf_counter() - started, time.thread_time() - cpu
        return wall, cpu, store.seconds - in_store

    def mark(self) -> tuple[dict[str, Any], Instruction, NoisyQuadratic]:
        """What `reset` needs to put the job back where it is now."""
        engine = self.service.store.engine  # type: ignore[attr-defined]
        with engine.connect() as conn:
            row = conn.execute(sa.select(jobs).where(jobs.c.id == self.job_id)).one()
        return dict(row._mapping), self.inst, copy.deepcopy(self.model)

    def reset(self, marked: tuple[dict[str, Any], Instruction, NoisyQuadratic]) -> None:
        """Put the job back to ``marked``: its row, and no report or record made since."""
        row, inst, model = marked
        engine = self.service.store.engine  # type: ignore[attr-defined]
        since = row["segment"]
        with engine.begin() as conn:
            for table in (reports, segment_log, stage_log):
                conn.execute(
                    table.delete().where(table.c.job_id == self.job_id, table.c.segment >= since)
                )
            values = {k: v for k, v in row.items() if k != "id"}
            conn.execute(jobs.update().where(jobs.c.id == self.job_id).values(**values))
        self.inst = inst
        self.model = copy.deepcopy(model)

    def sizes(self) -> tuple[int, int]:
        """Bytes of the stored state, and of the same job as a format-1 state (the history
        inside it)."""
        store = self.service.store
        state = store.load(self.job_id).state
        history = store.history(self.job_id)
        latest = [state["stage"]] if state.get("stage") is not None else []
        old = {
            "format": 1,
            "config": state["config"],
            "steps_used": state["steps_used"],
            "current": state["current"],
            "stages": history.stages + latest,
            "segments": history.segments,
            "branches": history.branches,
        }
        return len(dumps(state)), len(dumps(old))


def run_backend(
    backend: str, points: list[int], window: int, repeats: int, gp: bool
) -> dict[str, Any] | None:
    """Latencies and state sizes at each point for one backend (None: backend skipped).

    One job per point, all in one database and alike (same config, seed and losses), each
    driven to its point; the repeats then alternate between the points, so a burst of load
    from elsewhere on the machine hits every point alike.
    """
    with _database(backend) as url:
        if url is None:
            return None
        engine = db.make_engine(url)
        db.upgrade(engine)
        store = TimedStore(engine)
        service = JobService(
            store, Metrics(store.count_by_status), max_losses_per_report=100_000, decision_threads=1
        )
        started = time.perf_counter()
        marks = []
        for point in points:
            job = Job(service, _config(gp))
            while job.inst.segment < point:
                job.step()
            marks.append((job, job.mark(), job.sizes()))
        wall: list[list[float]] = [[] for _ in points]
        cpu: list[list[float]] = [[] for _ in points]
        stored: list[list[float]] = [[] for _ in points]
        for _ in range(repeats):
            for i, (job, marked, _sizes) in enumerate(marks):
                job.reset(marked)
                times = [job.step() for _ in range(window)]
                wall[i].append(statistics.median(t[0] for t in times))
                cpu[i].append(statistics.median(t[1] for t in times))
                stored[i].append(statistics.median(t[2] for t in times))
        out: dict[str, Any] = {"backend": backend, "points": []}
        for i, point in enumerate(points):
            state_bytes, format1_bytes = marks[i][2]
            entry = {
                "segment": point,
                "median_ms": 1000 * statistics.median(wall[i]),
                "cpu_median_ms": 1000 * statistics.median(cpu[i]),
                "store_median_ms": 1000 * statistics.median(stored[i]),
                "repeat_medians_ms": [round(1000 * m, 3) for m in wall[i]],
                "state_bytes": state_bytes,
                "format1_state_bytes": format1_bytes,
            }
            out["points"].append(entry)
            print(
                f"{backend:10s} segment {point:6d}: report {entry['median_ms']:7.2f} ms wall, "
                f"{entry['cpu_median_ms']:6.2f} ms CPU, {entry['store_median_ms']:6.2f} ms in "
                f"the store (repeat medians "
                f"{', '.join(f'{m:.1f}' for m in entry['repeat_medians_ms'])}); "
                f"stored state {state_bytes / 1024:5.1f} KB "
                f"(format 1 would hold {format1_bytes / 1024:8.1f} KB)",
                flush=True,
            )
        first, last = out["points"][0], out["points"][-1]
        out["ratio"] = last["median_ms"] / first["median_ms"]
        out["cpu_ratio"] = last["cpu_median_ms"] / first["cpu_median_ms"]
        out["max_state_bytes"] = max(p["state_bytes"] for p in out["points"])
        out["seconds"] = time.perf_counter() - started
        verdict = "PASS" if out["ratio"] <= TARGET_RATIO else "FAIL"
        print(
            f"{backend:10s} ratio segment {last['segment']} / segment {first['segment']}: "
            f"{out['ratio']:.3f} wall (target <= {TARGET_RATIO}: {verdict}), "
            f"{out['cpu_ratio']:.3f} CPU; largest stored state "
            f"{out['max_state_bytes'] / 1024:.1f} KB; {out['seconds']:.0f} s",
            flush=True,
        )
        store.close()
        return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--points", default="50,5000", help="segments to measure at")
    parser.add_argument("--window", type=int, default=70, help="reports timed per repeat")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--backends", default="sqlite,postgresql")
    parser.add_argument("--gp", action="store_true", help="the default GP search decides")
    parser.add_argument("--json", type=Path, default=None, help="write the figures here")
    args = parser.parse_args(argv)
    points = sorted(int(p) for p in args.points.split(","))
    print(
        f"report_cost: points {points}, window {args.window} reports, {args.repeats} repeats, "
        f"{'GP search' if args.gp else 'no GP fit'}; {platform.python_version()}, "
        f"{platform.machine()}",
        flush=True,
    )
    results = []
    for backend in args.backends.split(","):
        found = run_backend(backend.strip(), points, args.window, args.repeats, args.gp)
        if found is not None:
            results.append(found)
    if args.json is not None:
        args.json.write_text(json.dumps({"config": CONFIG, "results": results}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
