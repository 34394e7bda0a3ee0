"""Outage trials: SIGKILL a real ``autolr serve`` at a random step of a real training run.

The measurement of issue 16, rerun. Each trial trains a small PyTorch model (full-batch SGD,
deterministic, padded to about 1 ms per step) with ``AutoLR(..., server=url)``, SIGKILLs the
server at a random step (odd trials: a random step of any segment; even trials: a random step
inside a probe, when the model is in a probe state), restarts it on the same database after a random delay (``--min-down``
to ``--max-down`` seconds, plus its own start-up of several seconds), and trains until
``tuner.finished`` (or 20x the budget, to measure an overrun). Then it waits for the server,
syncs, and compares the run with the uninterrupted one (embedded mode, same config: the same
controller, so the same decisions):

    steps       steps trained until `finished` (the budget is TOTAL_STEPS)
    kill        the step of the kill and the kind of segment running then
    same LRs    the per-step LR sequence equals the uninterrupted run's
    same w      the final weights equal the uninterrupted run's bit for bit (and are finite)
    record      the server's record, once synced, equals ``tuner.schedule`` (finished, the
                budget used, no extra steps)
    max step    the longest ``tuner.step()`` call, ms (a local decision is a GP fit)
    sync s      how long the final ``tuner.sync()`` took once the server was back

``--long-outage-s`` adds one trial, killed inside a probe, whose server stays down that long (the
issue measured 45,231 steps against 1,200 for 60 s). PostgreSQL trials use a fresh schema on ``--postgres-url``
(skipped, with the reason, when it does not answer).

Usage:
    .venv/bin/python benchmarks/outage_trials.py [--trials-sqlite 20] [--trials-postgres 5]
        [--min-down 0.2] [--max-down 8] [--long-outage-s 60] [--seed 0] [--json PATH]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

from autolr.client import AutoLR
from autolr.client._http import HttpTransport
from autolr.server.testing import ServerProcess, postgres_url_or_reason, temporary_schema

TOTAL_STEPS = 1200
CONFIG: dict[str, Any] = {
    "min_lr": 1e-3,
    "max_lr": 0.5,
    "total_steps": TOTAL_STEPS,
    "probes_per_stage": 3,
    "initial_probes": 2,
    "seed": 3,
    "probe_budget": None,
}
STEP_S = 0.001  # the training loop's pace: about 1 ms per step, as in the issue


class Problem:
    """A small MLP regressing a noisy linear target, full-batch SGD: fully deterministic."""

    def __init__(self) -> None:
        generator = torch.Generator().manual_seed(0)
        self.x = torch.randn(256, 8, generator=generator)
        w = torch.randn(8, 1, generator=generator)
        self.y = self.x @ w + 0.1 * torch.randn(256, 1, generator=generator)
        torch.manual_seed(0)
        self.model = torch.nn.Sequential(
            torch.nn.Linear(8, 16), torch.nn.Tanh(), torch.nn.Linear(16, 1)
        )
        self.optimizer = torch.optim.SGD(self.model.parameters(), lr=0.01)

    def step(self) -> torch.Tensor:
        began = time.perf_counter()
        loss = torch.nn.functional.mse_loss(self.model(self.x), self.y)
        self.optimizer.zero_grad()
        loss.backward()
        self.optimizer.step()
        pad = STEP_S - (time.perf_counter() - began)
        if pad > 0:
            time.sleep(pad)
        return loss.detach()

    @property
    def lr(self) -> float:
        return float(self.optimizer.param_groups[0]["lr"])

    def weights(self) -> dict[str, torch.Tensor]:
        return {k: v.detach().clone() for k, v in self.model.state_dict().items()}


def reference() -> dict[str, Any]:
    problem = Problem()
    tuner = AutoLR(problem.model, problem.optimizer, **CONFIG)
    lrs = []
    while not tuner.finished:
        lrs.append(problem.lr)
        tuner.step(problem.step())
    probe_steps, at = [], 0
    for seg in tuner.schedule:
        if seg.kind == "probe":
            probe_steps += range(at + 1, at + seg.steps)  # strictly inside the probe
        at += seg.steps
    return {
        "lrs": lrs,
        "schedule": tuner.schedule,
        "weights": problem.weights(),
        "probe_steps": probe_steps,
    }


def trial(
    server: ServerProcess,
    ref: dict[str, Any],
    rng: random.Random,
    down_s: float | None,
    *,
    in_probe: bool,
) -> dict[str, Any]:
    """One run with one kill at a random step; the server is back ``down_s`` s later."""
    problem = Problem()
    tuner = AutoLR(problem.model, problem.optimizer, server=server.url, **CONFIG)
    kill_at = rng.randrange(1, TOTAL_STEPS)
    if in_probe:
        kill_at = rng.choice(ref["probe_steps"])
    down = down_s if down_s is not None else rng.uniform(ARGS.min_down, ARGS.max_down)
    back = threading.Event()
    errors: list[BaseException] = []
    lrs: list[float] = []
    longest, step, killed_in = 0.0, 0, "-"

    def restart() -> None:
        try:
            time.sleep(down)
            server.start(timeout=120)
        except BaseException as exc:
            errors.append(exc)
        back.set()

    while not tuner.finished and step < 20 * TOTAL_STEPS:
        if step == kill_at:
            inst = tuner.instruction
            killed_in = inst.kind if inst is not None else "-"
            server.kill()
            threading.Thread(target=restart, daemon=True).start()
        lrs.append(problem.lr)
        loss = problem.step()
        began = time.perf_counter()
        tuner.step(loss)
        longest = max(longest, time.perf_counter() - began)
        step += 1
    finished = tuner.finished
    back.wait(300)
    if errors:
        raise RuntimeError(f"the server did not restart: {errors[0]}")
    began = time.perf_counter()
    synced = tuner.sync(timeout=120)
    sync_s = time.perf_counter() - began
    record_ok = False
    transport = tuner.transport
    if synced and isinstance(transport, HttpTransport):
        job = transport.job()
        record_ok = (
            job["status"] == "finished"
            and job["steps_used"] == TOTAL_STEPS
            and all(s["extra_steps"] == 0 for s in job["segments"])
            and [(s["kind"], s["lr"], s["lr_end"], s["steps"]) for s in job["schedule"]]
            == [(s.kind, s.lr, s.lr_end, s.steps) for s in tuner.schedule]
        )
    weights = problem.weights()
    same_w = all(
        torch.isfinite(v).all() and torch.equal(v, ref["weights"][k]) for k, v in weights.items()
    )
    tuner.close()
    return {
        "kill_at": kill_at,
        "killed_in": killed_in,
        "down_s": round(down, 2),
        "steps": step,
        "finished": finished,
        "same_lrs": lrs == ref["lrs"],
        "same_schedule": tuner.schedule == ref["schedule"],
        "same_weights": bool(same_w),
        "ends_on_probe": tuner.schedule[-1].kind == "probe" if tuner.schedule else False,
        "record": record_ok,
        "max_step_ms": round(1000 * longest, 1),
        "sync_s": round(sync_s, 2),
    }


@contextlib.contextmanager
def backend(name: str) -> Iterator[str | None]:
    if name == "sqlite":
        with tempfile.TemporaryDirectory() as folder:
            yield f"sqlite:///{Path(folder) / 'autolr.db'}"
        return
    os.environ.setdefault("AUTOLR_TEST_POSTGRES_URL", ARGS.postgres_url)
    url, reason = postgres_url_or_reason()
    if url is None:
        print(f"postgresql skipped: {reason}")
        yield None
        return
    with temporary_schema(url) as scoped:
        yield scoped


def run_backend(name: str, trials: int, ref: dict[str, Any], rng: random.Random) -> list[dict]:
    rows: list[dict[str, Any]] = []
    long_outage = name == "sqlite" and ARGS.long_outage_s > 0
    if trials <= 0 and not long_outage:
        return rows
    with backend(name) as url:
        if url is None:
            return rows
        server = ServerProcess(url, env={"AUTOLR_WARM_UP": "false"})
        server.start(timeout=120)
        try:
            plan: list[float | None] = [None] * trials
            if long_outage:
                plan.append(ARGS.long_outage_s)
            for i, down in enumerate(plan):
                # the long outage starts inside a probe (the worst case)
                outcome = trial(server, ref, rng, down, in_probe=i % 2 == 1 or down is not None)
                row = {"backend": name, "trial": i + 1, **outcome}
                rows.append(row)
                print(_line(row), flush=True)
        finally:
            server.stop()
    return rows


COLUMNS = (
    ("backend", 8),
    ("trial", 5),
    ("kill_at", 7),
    ("killed_in", 9),
    ("down_s", 6),
    ("steps", 6),
    ("same_lrs", 8),
    ("same_weights", 12),
    ("record", 6),
    ("max_step_ms", 11),
    ("sync_s", 6),
)


def _line(row: dict[str, Any]) -> str:
    return " ".join(str(row[k]).rjust(w) for k, w in COLUMNS)


def main() -> int:
    torch.set_num_threads(1)  # as in the server: one GP fit per thread, identical rounding
    rng = random.Random(ARGS.seed)
    ref = reference()
    print(f"uninterrupted run: {len(ref['lrs'])} steps, {len(ref['schedule'])} segments")
    print(" ".join(k.rjust(w) for k, w in COLUMNS))
    rows = run_backend("sqlite", ARGS.trials_sqlite, ref, rng)
    rows += run_backend("postgresql", ARGS.trials_postgres, ref, rng)
    if not rows:
        return 1
    exact = sum(r["steps"] == TOTAL_STEPS and r["finished"] for r in rows)
    print()
    print(f"trials: {len(rows)}")
    print(f"ended at exactly {TOTAL_STEPS} steps: {exact}/{len(rows)}")
    print(
        f"steps: median {statistics.median(r['steps'] for r in rows):.0f}, "
        f"max {max(r['steps'] for r in rows)}"
    )
    for key, label in (
        ("same_lrs", "per-step LRs of the uninterrupted run"),
        ("same_schedule", "schedule of the uninterrupted run"),
        ("same_weights", "final weights finite and equal to the uninterrupted run's"),
        ("record", "server's record equal to tuner.schedule after sync"),
    ):
        print(f"{label}: {sum(r[key] for r in rows)}/{len(rows)}")
    print(f"ended on a probe: {sum(r['ends_on_probe'] for r in rows)}/{len(rows)}")
    probe_kills = [r for r in rows if r["killed_in"] == "probe"]
    print(
        f"killed during a probe: {len(probe_kills)} trials, "
        f"{sum(r['same_weights'] for r in probe_kills)} with the uninterrupted weights"
    )
    print(f"longest step: {max(r['max_step_ms'] for r in rows):.0f} ms")
    if ARGS.json:
        Path(ARGS.json).write_text(json.dumps(rows, indent=1))
    ok = all(
        r["steps"] == TOTAL_STEPS and r["same_lrs"] and r["same_weights"] and r["record"]
        for r in rows
    )
    return 0 if ok else 1


def _args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials-sqlite", type=int, default=20)
    parser.add_argument("--trials-postgres", type=int, default=5)
    parser.add_argument("--min-down", type=float, default=0.2)
    parser.add_argument("--max-down", type=float, default=8.0)
    parser.add_argument("--long-outage-s", type=float, default=60.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--postgres-url",
        default=os.environ.get(
            "AUTOLR_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
        ),
    )
    parser.add_argument("--json", default=None, help="write the rows here")
    return parser.parse_args(argv)


ARGS = _args(sys.argv[1:]) if __name__ == "__main__" else _args([])

if __name__ == "__main__":
    sys.exit(main())
