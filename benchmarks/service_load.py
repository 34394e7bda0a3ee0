"""Service load: N simulated jobs against a real ``autolr serve`` on loopback.

Each job is an asyncio task that creates a job (``POST /v1/jobs``), then carries out every
instruction on a noisy quadratic (`autolr.simulate.NoisyQuadratic`: synthetic loss curves, no
training), "trains" for a random think time, and reports (``POST /v1/jobs/{id}/reports`` with
its Bearer token), until the job finishes or ``--duration`` seconds have passed. All jobs share
one ``httpx.AsyncClient`` whose pool holds a connection per job.

Usage:
    .venv/bin/python benchmarks/service_load.py [--jobs-list 1,50,200,500]
        [--backends sqlite,postgresql] [--duration 30] [--cadence 5] [--workers 1,2]
        [--json benchmarks/results/service_load.json]

``--workers`` takes a list: every (backend, N) cell runs once per worker count, one after the
other on a fresh server and database each, and a last table sets them side by side (decisions/s
and p99 of each, and their ratio to the first count). Worker memory: the resident and unique
(USS: pages no other process shares) memory of each uvicorn worker process, idle (after
warm-up) and at the end of the cell.

Measured per (backend, N):
    decisions/s     reports answered (2xx) / wall time of the measurement window
    offered/s       N / (mean think time): what the jobs would send if answers were instant
    p50/p99         report latency (request sent to answer read), ms; job creation apart
    errors          non-2xx answers, timeouts, transport errors (creates included). No
                    non-2xx answer is expected: each job reports in order, one at a time
    server RSS      resident memory of the server's process tree (psutil), sampled every
                    0.5 s: at start (idle, warmed up) and the maximum
    cpu             server and benchmark-process CPU time / wall time (100% = one core)
Targets: 0 errors, p99 < 1 s (the brief states p99 for 500 jobs; applied to every N).

Cadence. A job sends a report at the end of each segment, after a think time drawn uniformly
from 0.5-2x ``--cadence`` (seeded; mean 1.25x), so N jobs offer N / (1.25 cadence) reports/s.
A real training run reports once per segment: probes of τ' = τ/10 >= 100 steps and stages of
τ >= 1000 steps at the default config, i.e. every several seconds to minutes. The default
cadence of 5 s is therefore far denser than reality (500 such jobs offer 80 reports/s), and
the job config below makes segments short (total_steps=3000: probes of 20-59 steps) so that
every kind of decision occurs within a short run. The load is closed-loop per job: a job
sends its next report only after the answer to the previous one, so an overloaded server
shows up as fewer decisions/s than offered and a growing latency, not as an unbounded queue.

On an error a job waits its think time and sends the same request again, as the real client
does (reports are idempotent). The request timeout is the client's (`HttpTransport`: read
60 s). Each cell starts a fresh server on a fresh database: a SQLite file in a temporary
folder, or a fresh schema in the dedicated PostgreSQL database ``autolr_bench`` (created if
absent, on the server of ``--postgres-url``; the schema is dropped afterwards). PostgreSQL is
skipped, with the reason printed, when it does not answer.

The benchmark process shares the machine with the server: its own CPU use and event-loop lag
are reported so that a client-side bottleneck cannot pass for a server-side one.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import platform
import random
import re
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psutil
import sqlalchemy as sa

from autolr import TunerConfig
from autolr.protocol import Instruction
from autolr.server.db import make_engine
from autolr.server.settings import Settings
from autolr.server.testing import ServerProcess, temporary_schema
from autolr.simulate import NoisyQuadratic

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_JSON = ROOT / "benchmarks" / "results" / "service_load.json"
DEFAULT_POSTGRES = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
BENCH_DATABASE = "autolr_bench"
P99_TARGET_MS = 1000.0
THINK_RANGE = (0.5, 2.0)  # think time per segment, as multiples of --cadence
# As the client's HttpTransport (client/_http.py DEFAULT_TIMEOUT); pool: never waited on here.
TIMEOUT = httpx.Timeout(connect=5.0, read=60.0, write=30.0, pool=60.0)
SAMPLE_EVERY_S = 0.5
PROGRESS_EVERY_S = 5.0


def percentile(values: list[float], q: float) -> float | None:
    """Nearest-rank percentile; None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(1, math.ceil(q / 100.0 * len(ordered))) - 1]


def job_config(index: int, seed: int, total_steps: int) -> dict[str, Any]:
    """A small job: short segments, every kind of decision (space filling, GP, train, anneal)."""
    fields: dict[str, Any] = {
        "min_lr": 1e-3,
        "max_lr": 1.0,  # the NQM diverges above 2 (h_max = 1)
        "total_steps": total_steps,  # 3000: 32 segments, probes of 20-59 steps
        "seed": seed + index,
    }
    TunerConfig.build(**fields)  # fail here, not with 500 identical 422s
    return fields


# --------------------------------------------------------------------------- databases
def postgres_database(base_url: str) -> tuple[str | None, str]:
    """URL of the dedicated benchmark database (created if absent), or None and why not."""
    base = sa.make_url(base_url)
    admin = make_engine(base, isolation_level="AUTOCOMMIT", connect_args={"connect_timeout": 3})
    try:
        with admin.connect() as conn:
            exists = conn.execute(
                sa.text("SELECT 1 FROM pg_database WHERE datname = :name"),
                {"name": BENCH_DATABASE},
            ).first()
            if exists is None:
                conn.execute(sa.text(f'CREATE DATABASE "{BENCH_DATABASE}"'))
    except sa.exc.SQLAlchemyError as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        safe = base.render_as_string(hide_password=True)
        return None, f"PostgreSQL at {safe} is unreachable or refused: {first}"
    finally:
        admin.dispose()
    return base.set(database=BENCH_DATABASE).render_as_string(hide_password=False), ""


@contextlib.contextmanager
def fresh_database(backend: str, postgres_url: str | None) -> Iterator[str]:
    """A database no earlier run has touched: a new SQLite file or a new PostgreSQL schema."""
    if backend == "sqlite":
        with tempfile.TemporaryDirectory(prefix="autolr-bench-") as tmp:
            yield f"sqlite:///{Path(tmp) / 'bench.db'}"
    else:
        assert postgres_url is not None
        with temporary_schema(postgres_url) as scoped:
            yield scoped


# --------------------------------------------------------------------------- measurement
@dataclass
class Cell:
    """What one (backend, N) run records."""

    backend: str
    jobs: int
    workers: int = 1
    latencies_ms: list[float] = field(default_factory=list)
    create_ms: list[float] = field(default_factory=list)
    errors: Counter[str] = field(default_factory=Counter)
    error_samples: list[str] = field(default_factory=list)
    created: int = 0
    finished: int = 0
    inflight: int = 0
    rss_samples: list[int] = field(default_factory=list)
    loop_lag_ms: list[float] = field(default_factory=list)

    def error(self, kind: str, detail: str) -> None:
        self.errors[kind] += 1
        if len(self.error_samples) < 5:
            self.error_samples.append(f"{kind}: {detail[:300]}")


def process_tree(pid: int) -> list[psutil.Process]:
    """The server process and its children (uvicorn workers when ``--workers`` > 1)."""
    try:
        root = psutil.Process(pid)
        return [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


def tree_rss(pid: int) -> int:
    """Summed RSS of the tree, bytes (pages shared between workers count once per worker)."""
    total = 0
    for proc in process_tree(pid):
        with contextlib.suppress(psutil.Error):
            total += proc.memory_info().rss
    return total


def worker_memory(pid: int) -> list[dict[str, float]]:
    """RSS and USS (MiB) of each uvicorn worker: the server's children that run the app.

    With one worker uvicorn runs the app in the server process itself, which is then the one.
    """
    try:
        root = psutil.Process(pid)
        children = root.children(recursive=False)
    except psutil.NoSuchProcess:
        return []
    workers = [c for c in children if "resource_tracker" not in " ".join(_cmdline(c))] or [root]
    out = []
    for proc in workers:
        with contextlib.suppress(psutil.Error):
            info = proc.memory_full_info()
            out.append(
                {"rss_mib": round(info.rss / 2**20, 1), "uss_mib": round(info.uss / 2**20, 1)}
            )
    return out


def _cmdline(proc: psutil.Process) -> list[str]:
    try:
        return proc.cmdline()
    except psutil.Error:
        return []


def tree_cpu(pid: int) -> float:
    """CPU seconds (user + system) of the tree so far."""
    total = 0.0
    for proc in process_tree(pid):
        with contextlib.suppress(psutil.Error):
            times = proc.cpu_times()
            total += times.user + times.system
    return total


def scrape_metrics(text: str) -> dict[str, Any]:
    """Server-side decision time and report outcomes from ``/metrics``."""
    out: dict[str, Any] = {"reports_by_outcome": {}}
    for line in text.splitlines():
        if match := re.match(r'autolr_reports_total\{outcome="(\w+)"\} ([\d.e+]+)', line):
            out["reports_by_outcome"][match[1]] = int(float(match[2]))
        elif match := re.match(r"autolr_decision_seconds_(sum|count) ([\d.e+-]+)", line):
            out[f"decision_{match[1]}"] = float(match[2])
    count, total = out.pop("decision_count", 0.0), out.pop("decision_sum", 0.0)
    out["decision_ms_mean"] = round(1000 * total / count, 2) if count else None
    return out


async def request(
    cell: Cell, client: httpx.AsyncClient, url: str, body: dict[str, Any], headers: dict[str, str]
) -> tuple[dict[str, Any] | None, float]:
    """POST ``body``; the JSON answer (None on any error, which is counted) and ms taken."""
    started = time.perf_counter()
    cell.inflight += 1
    try:
        response = await client.post(url, json=body, headers=headers)
    except httpx.TimeoutException as exc:
        cell.error("timeout", f"{type(exc).__name__} after {time.perf_counter() - started:.1f}s")
        return None, 0.0
    except httpx.HTTPError as exc:
        cell.error("transport", f"{type(exc).__name__}: {exc}")
        return None, 0.0
    finally:
        cell.inflight -= 1
    elapsed_ms = (time.perf_counter() - started) * 1000
    if not response.is_success:
        cell.error(f"http {response.status_code}", response.text)
        return None, elapsed_ms
    return response.json(), elapsed_ms


async def run_job(
    cell: Cell,
    client: httpx.AsyncClient,
    index: int,
    args: argparse.Namespace,
    deadline: float,
) -> None:
    """One simulated training run: create, then follow instructions until done or time is up."""
    rng = random.Random(args.seed * 1_000_003 + index)
    model = NoisyQuadratic(seed=args.seed + index)
    config = job_config(index, args.seed, args.total_steps)

    def think() -> float:
        return rng.uniform(*THINK_RANGE) * args.cadence

    # Jobs start spread over one cadence, as jobs of a cluster do, not all in the same instant.
    await asyncio.sleep(rng.uniform(0, args.cadence))
    created = None
    while created is None:
        if time.perf_counter() >= deadline:
            return
        created, ms = await request(cell, client, "/v1/jobs", config, {})
        if created is None:
            await asyncio.sleep(think())
    cell.created += 1
    cell.create_ms.append(ms)
    headers = {"Authorization": f"Bearer {created['token']}"}
    url = f"/v1/jobs/{created['job_id']}/reports"
    instruction = Instruction.model_validate(created["instruction"])
    while not instruction.finished:
        report = model.follow(instruction).model_dump(mode="json")  # the "training"
        answer = None
        while answer is None:
            pause = think()
            if time.perf_counter() + pause >= deadline:
                return
            await asyncio.sleep(pause)
            answer, ms = await request(cell, client, url, report, headers)
        cell.latencies_ms.append(ms)
        instruction = Instruction.model_validate(answer)
    cell.finished += 1


async def sample(cell: Cell, pid: int, stop: asyncio.Event) -> None:
    """Server RSS every 0.5 s, and this process's event-loop lag (late wake-ups)."""
    while not stop.is_set():
        cell.rss_samples.append(tree_rss(pid))
        before = time.perf_counter()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), SAMPLE_EVERY_S)
        if not stop.is_set():
            cell.loop_lag_ms.append((time.perf_counter() - before - SAMPLE_EVERY_S) * 1000)


async def progress(cell: Cell, started: float, stop: asyncio.Event) -> None:
    """A line every 5 s so a long run shows it is alive and how it is going."""
    while True:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), PROGRESS_EVERY_S)
        if stop.is_set():
            return
        elapsed = time.perf_counter() - started
        recent = cell.latencies_ms[-500:]
        p99 = percentile(recent, 99)
        rss = cell.rss_samples[-1] / 2**20 if cell.rss_samples else float("nan")
        print(
            f"  [{cell.backend} N={cell.jobs}] t={elapsed:5.1f}s created={cell.created} "
            f"reports={len(cell.latencies_ms)} ({len(cell.latencies_ms) / elapsed:.1f}/s) "
            f"in flight={cell.inflight} p99(last 500)={p99 or 0:.0f}ms "
            f"errors={sum(cell.errors.values())} rss={rss:.0f}MiB",
            flush=True,
        )


async def drive(cell: Cell, server: ServerProcess, args: argparse.Namespace) -> dict[str, Any]:
    """Run the N jobs for ``--duration`` seconds; the raw timing figures."""
    assert server.process is not None
    pid = server.process.pid
    limits = httpx.Limits(max_connections=cell.jobs + 8, max_keepalive_connections=cell.jobs + 8)
    me = psutil.Process()
    async with httpx.AsyncClient(base_url=server.url, limits=limits, timeout=TIMEOUT) as client:
        stop = asyncio.Event()
        started = time.perf_counter()
        server_cpu0, client_cpu0 = tree_cpu(pid), sum(me.cpu_times()[:2])
        deadline = started + args.duration
        watchers = [
            asyncio.create_task(sample(cell, pid, stop)),
            asyncio.create_task(progress(cell, started, stop)),
        ]
        await asyncio.gather(*(run_job(cell, client, i, args, deadline) for i in range(cell.jobs)))
        wall = time.perf_counter() - started  # >= duration: in-flight answers are waited for
        server_cpu, client_cpu = tree_cpu(pid) - server_cpu0, sum(me.cpu_times()[:2]) - client_cpu0
        stop.set()
        await asyncio.gather(*watchers)
        metrics = scrape_metrics((await client.get("/metrics")).text)
    return {
        "wall_s": wall,
        "server_cpu_pct": 100 * server_cpu / wall,
        "client_cpu_pct": 100 * client_cpu / wall,
        "metrics": metrics,
    }


def run_cell(
    backend: str,
    jobs: int,
    workers: int,
    args: argparse.Namespace,
    postgres_url: str | None,
    logs: Path,
) -> dict[str, Any]:
    """Start a fresh server on a fresh database, drive N jobs, stop it; one result row."""
    cell = Cell(backend=backend, jobs=jobs, workers=workers)
    load_start = os.getloadavg()[0]
    with fresh_database(backend, postgres_url) as url:
        log_path = logs / f"server-{backend}-{jobs}-{workers}.log"
        env = {"AUTOLR_WORKERS": str(workers), "AUTOLR_WARM_UP": str(args.warm_up).lower()}
        server = ServerProcess(url, log_path=log_path, env=env)
        server.start(timeout=120)
        try:
            assert server.process is not None
            # let every worker finish starting (each warms up: imports, one GP fit)
            time.sleep(1.0 + (4.0 if workers > 1 and args.warm_up else 0.0))
            rss_idle = tree_rss(server.process.pid)
            workers_idle = worker_memory(server.process.pid)
            raw = asyncio.run(drive(cell, server, args))
            rss_end = tree_rss(server.process.pid)
            workers_end = worker_memory(server.process.pid)
        finally:
            server.stop()
    mean_think = args.cadence * sum(THINK_RANGE) / 2
    errors = sum(cell.errors.values())
    p50, p99 = percentile(cell.latencies_ms, 50), percentile(cell.latencies_ms, 99)
    row: dict[str, Any] = {
        "backend": backend,
        "jobs": jobs,
        "workers": workers,
        "duration_s": args.duration,
        "cadence_s": args.cadence,
        "wall_s": round(raw["wall_s"], 2),
        "reports": len(cell.latencies_ms),
        "decisions_per_s": round(len(cell.latencies_ms) / raw["wall_s"], 2),
        "offered_per_s": round(jobs / mean_think, 2),
        "latency_ms": {
            "p50": _round(p50),
            "p90": _round(percentile(cell.latencies_ms, 90)),
            "p99": _round(p99),
            "max": _round(max(cell.latencies_ms, default=None)),
            "mean": _round(sum(cell.latencies_ms) / len(cell.latencies_ms))
            if cell.latencies_ms
            else None,
        },
        "create_latency_ms": {
            "p50": _round(percentile(cell.create_ms, 50)),
            "p99": _round(percentile(cell.create_ms, 99)),
        },
        "errors": errors,
        "errors_by_kind": dict(cell.errors),
        "error_samples": cell.error_samples,
        "jobs_created": cell.created,
        "jobs_finished": cell.finished,
        "server_rss_mib": {
            "idle": round(rss_idle / 2**20, 1),
            "max": round(max([rss_idle, rss_end, *cell.rss_samples]) / 2**20, 1),
            "end": round(rss_end / 2**20, 1),
        },
        "worker_memory_mib": {"idle": workers_idle, "end": workers_end},
        "server_cpu_pct": round(raw["server_cpu_pct"], 1),
        "client_cpu_pct": round(raw["client_cpu_pct"], 1),
        "client_loop_lag_ms": {
            "p99": _round(percentile(cell.loop_lag_ms, 99)),
            "max": _round(max(cell.loop_lag_ms, default=None)),
        },
        "server_decision_ms_mean": raw["metrics"]["decision_ms_mean"],
        "server_reports_by_outcome": raw["metrics"]["reports_by_outcome"],
        "load_average_1m": {"start": round(load_start, 2), "end": round(os.getloadavg()[0], 2)},
    }
    row["pass"] = bool(errors == 0 and p99 is not None and p99 < P99_TARGET_MS)
    return row


def _round(value: float | None, digits: int = 1) -> float | None:
    return None if value is None else round(value, digits)


# --------------------------------------------------------------------------- output
HEADER = (
    f"{'backend':<10} {'jobs':>4} {'wk':>2} {'offered/s':>9} {'decisions/s':>11} {'p50 ms':>8} "
    f"{'p99 ms':>8} {'errors':>6} {'rss idle/max MiB':>16} {'srv cpu':>7} {'cli cpu':>7}  verdict"
)


def format_row(row: dict[str, Any]) -> str:
    lat = row["latency_ms"]
    rss = row["server_rss_mib"]
    p50 = f"{lat['p50']:.0f}" if lat["p50"] is not None else "-"
    p99 = f"{lat['p99']:.0f}" if lat["p99"] is not None else "-"
    return (
        f"{row['backend']:<10} {row['jobs']:>4} {row['workers']:>2} {row['offered_per_s']:>9.1f} "
        f"{row['decisions_per_s']:>11.1f} {p50:>8} {p99:>8} {row['errors']:>6} "
        f"{rss['idle']:>7.0f}/{rss['max']:<8.0f} {row['server_cpu_pct']:>6.0f}% "
        f"{row['client_cpu_pct']:>6.0f}%  {'PASS' if row['pass'] else 'FAIL'}"
    )


def format_details(row: dict[str, Any]) -> str:
    """The figures behind a row: where the time went."""
    lag = row["client_loop_lag_ms"]["max"]
    return (
        f"reports={row['reports']} wall={row['wall_s']}s p90={row['latency_ms']['p90']}ms "
        f"max={row['latency_ms']['max']}ms create p99={row['create_latency_ms']['p99']}ms "
        f"server decision mean={row['server_decision_ms_mean']}ms "
        f"jobs created/finished={row['jobs_created']}/{row['jobs_finished']} "
        f"client loop lag max={lag}ms load={row['load_average_1m']['start']}->"
        f"{row['load_average_1m']['end']}"
    )


def side_by_side(rows: list[dict[str, Any]]) -> list[str]:
    """Each (backend, N) with every worker count: decisions/s and p99, ratios to the first."""
    lines = []
    cells: dict[tuple[str, int], list[dict[str, Any]]] = {}
    for row in rows:
        if "failed" not in row:
            cells.setdefault((row["backend"], row["jobs"]), []).append(row)
    for (backend, jobs), group in cells.items():
        if len(group) < 2:
            continue
        base = group[0]
        parts = []
        for row in group:
            rate, p99 = row["decisions_per_s"], row["latency_ms"]["p99"]
            ratio = rate / base["decisions_per_s"] if base["decisions_per_s"] else math.nan
            memory = row["worker_memory_mib"]["idle"]
            uss = "/".join(f"{w['uss_mib']:.0f}" for w in memory)
            parts.append(
                f"{row['workers']} worker(s): {rate:.1f}/s ({ratio:.2f}x), p99 {p99 or 0:.0f} ms, "
                f"errors {row['errors']}, worker USS idle {uss} MiB"
            )
        lines.append(f"{backend:<10} {jobs:>4}  " + " | ".join(parts))
    return lines


def parse_list(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--jobs-list", default="1,50,200,500", help="values of N, comma-separated")
    parser.add_argument("--backends", default="sqlite,postgresql", help="sqlite and/or postgresql")
    parser.add_argument("--duration", type=float, default=30.0, help="seconds of load per cell")
    parser.add_argument("--cadence", type=float, default=5.0, help="think time scale, seconds")
    parser.add_argument(
        "--workers", default="1,2", help="uvicorn worker counts to compare, comma-separated"
    )
    parser.add_argument("--total-steps", type=int, default=3000, help="each job's step budget")
    parser.add_argument("--seed", type=int, default=0, help="seeds think times and loss noise")
    parser.add_argument(
        "--no-warm-up", dest="warm_up", action="store_false", help="AUTOLR_WARM_UP=false"
    )
    parser.add_argument(
        "--postgres-url",
        default=os.environ.get("AUTOLR_TEST_POSTGRES_URL", DEFAULT_POSTGRES),
        help=f"PostgreSQL server to use (its database {BENCH_DATABASE!r} is created and used)",
    )
    parser.add_argument("--json", type=Path, default=DEFAULT_JSON, help="write results here")
    parser.add_argument("--strict", action="store_true", help="exit 1 if a row fails a target")
    args = parser.parse_args(argv)
    try:
        jobs_list = [int(n) for n in parse_list(args.jobs_list)]
    except ValueError:
        parser.error("--jobs-list takes integers, e.g. 1,50,200,500")
    backends = parse_list(args.backends)
    if bad := [b for b in backends if b not in ("sqlite", "postgresql")]:
        parser.error(f"unknown backend(s) {bad}: use sqlite and/or postgresql")
    try:
        workers_list = [int(n) for n in parse_list(args.workers)]
    except ValueError:
        parser.error("--workers takes integers, e.g. 1,2")
    if min(jobs_list, default=0) < 1 or args.duration <= 0 or args.cadence <= 0:
        parser.error("--jobs-list values, --duration and --cadence must be positive")
    if min(workers_list, default=0) < 1:
        parser.error("--workers values must be positive")

    settings = Settings(
        database_url="(per cell)", workers=1, log_level="warning", warm_up=args.warm_up
    ).model_dump(
        mode="json",
        exclude={"admin_key", "database_url", "host", "port", "workers", "decision_threads"},
    )
    meta: dict[str, Any] = {
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "python": platform.python_version(),
        "cpu_count": os.cpu_count(),
        "load_average_1m_start": round(os.getloadavg()[0], 2),
        "server_settings": settings,
        "workers_list": workers_list,
        "decision_threads": "cores // workers (the default)",
        "job_config": job_config(0, args.seed, args.total_steps) | {"seed": "seed + job index"},
        "cadence_s": args.cadence,
        "think_time_s": [args.cadence * THINK_RANGE[0], args.cadence * THINK_RANGE[1]],
        "duration_s": args.duration,
        "request_timeout_s": TIMEOUT.read,
        "targets": {"errors": 0, "p99_ms": P99_TARGET_MS},
    }
    print(
        f"service load: {len(backends)} backend(s) x N in {jobs_list}, {args.duration:g}s each, "
        f"think time {meta['think_time_s'][0]:g}-{meta['think_time_s'][1]:g}s per report, "
        f"cpus={os.cpu_count()}, load average {os.getloadavg()[0]:.2f}",
        flush=True,
    )
    print("server settings: " + ", ".join(f"{k}={v}" for k, v in settings.items()), flush=True)
    print(f"job config: {meta['job_config']}", flush=True)

    rows: list[dict[str, Any]] = []
    skipped: list[dict[str, str]] = []
    with tempfile.TemporaryDirectory(prefix="autolr-bench-logs-") as tmp:
        logs = Path(tmp)
        for backend in backends:
            postgres_url = None
            if backend == "postgresql":
                postgres_url, reason = postgres_database(args.postgres_url)
                if postgres_url is None:
                    print(f"SKIP postgresql: {reason}", flush=True)
                    skipped.append({"backend": backend, "reason": reason})
                    continue
            for jobs in jobs_list:
                for workers in workers_list:
                    print(
                        f"{backend}, N={jobs}, {workers} worker(s): starting a fresh server ...",
                        flush=True,
                    )
                    try:
                        row = run_cell(backend, jobs, workers, args, postgres_url, logs)
                    except Exception as exc:  # one broken cell must not lose the others' figures
                        log = logs / f"server-{backend}-{jobs}-{workers}.log"
                        tail = log.read_text()[-2000:] if log.exists() else ""
                        print(f"  FAILED to run: {type(exc).__name__}: {exc}\n{tail}", flush=True)
                        rows.append(
                            {
                                "backend": backend,
                                "jobs": jobs,
                                "workers": workers,
                                "pass": False,
                                "failed": repr(exc),
                            }
                        )
                        continue
                    rows.append(row)
                    print("  " + format_row(row), flush=True)
                    print("  " + format_details(row), flush=True)
                    if row["error_samples"]:
                        samples = " | ".join(row["error_samples"])
                        print("  errors, first few: " + samples, flush=True)

    meta["load_average_1m_end"] = round(os.getloadavg()[0], 2)
    print()
    print(
        f"targets: 0 errors, p99 < {P99_TARGET_MS:.0f} ms; "
        f"load average {meta['load_average_1m_start']} at start, {meta['load_average_1m_end']} "
        "at end"
    )
    print(HEADER)
    for row in rows:
        print(
            format_row(row)
            if "failed" not in row
            else f"{row['backend']:<10} {row['jobs']:>4} {row['workers']:>2}  could not run: "
            f"{row['failed']}"
        )
    for skip in skipped:
        print(f"{skip['backend']:<10} skipped: {skip['reason']}")
    if len(workers_list) > 1:
        print("\nside by side (ratios: decisions/s against the first worker count):")
        for line in side_by_side(rows):
            print(line)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps({"meta": meta, "rows": rows, "skipped": skipped}, indent=2))
    print(f"wrote {args.json}")
    return 1 if args.strict and not all(row["pass"] for row in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
