"""Latency of one search decision (GP fit + acquisition) at 1, 5, 10 and 20 observations.

A decision is what the controller pays between two probes: ``GPSearcher.propose``, which
fits a GP to the stage's observations and minimizes the LCB over the grid. The targets are
p50 < 100 ms and p99 < 300 ms on a 2-core CPU.

Usage:
    .venv/bin/python benchmarks/decision_latency.py [--repeats 30] [--json PATH]
    .venv/bin/python benchmarks/decision_latency.py --compare [--repeats 5]

``--compare`` measures decisions per CPU-second of the two GP engines side by side in one
process (issue 19): ``engine="gpytorch"`` is the pre-issue-19 path (BoTorch's fit with an
autograd closure, GPyTorch's posterior, ``choose`` refitting what ``decide`` just fitted);
``engine="dense"`` is the default (closed form, and ``choose`` reuses ``decide``'s fit). Each
repeat replays the same stages (probes 3..10, with noise variances, as the controller asks:
``decide`` after every probe, ``choose`` at the stage's end) through both, alternating which
runs first; the ratio is the median over repeats, and the decisions are compared.

Rows:
    propose          the controller's default GPSearcher (n_init=3). At n=1 this is a
                     space-filling proposal (no GP), shown for completeness.
    propose (GP)     GPSearcher(n_init=1): the GP path at every n, including n=1.
    choose           GP posterior mean at the observed points (raw argmin below 3).

Each repeat uses a different data seed. The first decision of the process (imports and
first-call overhead) is timed separately and not counted. torch's thread count is left at
its default unless ``--threads`` is given; on a shared machine, idle OpenMP threads spinning
against other processes inflate latency (set OMP_WAIT_POLICY=PASSIVE to compare), so the
load average is printed with the results.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import random
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch

from autolr.search import GPSearcher

SIZES = (1, 5, 10, 20)
P50_TARGET_MS = 100.0
P99_TARGET_MS = 300.0


def objective(x_unit: float, rng: random.Random) -> float:
    """A forecast-loss-like curve over the normalized log-LR: a valley, a cliff, noise."""
    loss = 2.0 + 1.5 * (x_unit - 0.55) ** 2
    if x_unit > 0.85:  # too large an LR: the divergence penalty region
        loss += 10.0 * (x_unit - 0.85)
    return loss + rng.gauss(0.0, 0.02)


def observations(n: int, seed: int) -> tuple[list[float], list[float]]:
    rng = random.Random(seed)
    x_unit = [rng.random() for _ in range(n)]
    return x_unit, [objective(x, rng) for x in x_unit]


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (with 30 samples, p99 is the maximum)."""
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100.0 * len(ordered)))
    return ordered[rank - 1]


def time_ms(call: Callable[[], object]) -> tuple[float, float]:
    """Wall-clock and process CPU milliseconds of one call.

    CPU time (all threads of this process) stays meaningful on a shared machine, where
    wall time also counts the time other processes held the cores.
    """
    wall, cpu = time.perf_counter_ns(), time.process_time_ns()
    call()
    return (time.perf_counter_ns() - wall) / 1e6, (time.process_time_ns() - cpu) / 1e6


def stage_requests(seed: int) -> list[tuple[list[float], list[float], list[float], bool]]:
    """One stage's searcher calls: ``(x, y, noise, at_end)`` after each of 3..10 probes."""
    rng = random.Random(seed)
    x_all = [rng.random() for _ in range(10)]
    y_all = [objective(x, rng) for x in x_all]
    noise_all = [rng.uniform(0.0, 0.02) for _ in x_all]
    return [(x_all[:n], y_all[:n], noise_all[:n], n == 10) for n in range(3, 11)]


def replay(searcher: GPSearcher, stages: list[int]) -> tuple[float, int, list[object]]:
    """Process CPU seconds, decisions made and their outcomes for the given stage seeds."""
    outcomes: list[object] = []
    decisions = 0
    cpu = time.process_time()
    for seed in stages:
        for x, y, noise, at_end in stage_requests(seed):
            outcomes.append(searcher.decide(x, y, seed=seed, noise=noise))
            decisions += 1
            if at_end:
                outcomes.append(searcher.choose(x, y, noise=noise))
    return time.process_time() - cpu, decisions, outcomes


def compare(repeats: int, stages_per_repeat: int, json_path: Path | None) -> int:
    """``--compare``: decisions per CPU-second, GPyTorch engine (today's) against dense."""
    old, new = GPSearcher(engine="gpytorch"), GPSearcher(engine="dense")
    replay(old, [-1])  # first-call costs (imports, the dense engine's spec) not counted
    replay(new, [-1])
    rates: dict[str, list[float]] = {"gpytorch": [], "dense": []}
    ratios: list[float] = []
    same = total = 0
    for r in range(repeats):
        stages = list(range(r * stages_per_repeat, (r + 1) * stages_per_repeat))
        order = [("gpytorch", old), ("dense", new)]
        if r % 2:
            order.reverse()
        results = {name: replay(searcher, stages) for name, searcher in order}
        for name, (cpu, decisions, _) in results.items():
            rates[name].append(decisions / cpu)
        ratios.append(rates["dense"][-1] / rates["gpytorch"][-1])
        for u, v in zip(results["gpytorch"][2], results["dense"][2], strict=True):
            # a decision is the point proposed (or the probe chosen); the gain rounds apart
            same += (u[0] == v[0]) if isinstance(u, tuple) and isinstance(v, tuple) else u == v
            total += 1
    med = {name: statistics.median(v) for name, v in rates.items()}
    print(
        f"decisions per CPU-second (median of {repeats} repeats x {stages_per_repeat} stages, "
        f"load {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores)"
    )
    print(f"  gpytorch engine (pre-issue-19): {med['gpytorch']:8.1f}")
    print(f"  dense engine (default):         {med['dense']:8.1f}")
    print(
        f"  ratio dense/gpytorch: median {statistics.median(ratios):.2f} "
        f"(range {min(ratios):.2f}-{max(ratios):.2f}); identical decisions {same}/{total}"
    )
    if json_path is not None:
        json_path.parent.mkdir(parents=True, exist_ok=True)
        json_path.write_text(
            json.dumps(
                {"rates": rates, "ratios": ratios, "identical": same, "outcomes": total},
                indent=2,
            )
        )
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=30, help="data seeds per row (>= 30)")
    parser.add_argument("--json", type=Path, default=None, help="write the results here")
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads")
    parser.add_argument("--sizes", type=int, nargs="+", default=list(SIZES), help="values of n")
    parser.add_argument("--strict", action="store_true", help="exit 1 if a target is missed")
    parser.add_argument(
        "--compare", action="store_true", help="decisions per CPU-second: engines side by side"
    )
    parser.add_argument("--stages", type=int, default=6, help="stages per repeat (--compare)")
    args = parser.parse_args(argv)
    if args.repeats < 1:
        parser.error("--repeats must be >= 1")
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    if args.compare:
        return compare(args.repeats, args.stages, args.json)

    default, gp_always = GPSearcher(), GPSearcher(n_init=1)
    x0, y0 = observations(5, seed=-1)
    cold_ms, _ = time_ms(lambda: default.propose(x0, y0, seed=0))

    rows: list[dict[str, Any]] = []
    cases: list[tuple[str, Callable[[list[float], list[float], int], object]]] = [
        ("propose", lambda x, y, s: default.propose(x, y, seed=s)),
        ("propose (GP)", lambda x, y, s: gp_always.propose(x, y, seed=s)),
        ("choose", lambda x, y, s: default.choose(x, y)),
    ]
    for n in args.sizes:
        for name, decide in cases:
            samples, cpu_samples = [], []
            for seed in range(args.repeats):
                x_unit, y = observations(n, seed)
                wall, cpu = time_ms(lambda d=decide, x=x_unit, y=y, s=seed: d(x, y, s))
                samples.append(wall)
                cpu_samples.append(cpu)
            gp_path = not (
                (name == "propose" and n < default.n_init) or (name == "choose" and n < 3)
            )
            p50, p99 = percentile(samples, 50), percentile(samples, 99)
            rows.append(
                {
                    "n": n,
                    "decision": name,
                    "path": "GP fit" if gp_path else "no GP",
                    "repeats": args.repeats,
                    "p50_ms": round(p50, 2),
                    "p99_ms": round(p99, 2),
                    "cpu_p50_ms": round(percentile(cpu_samples, 50), 2),
                    "cpu_p99_ms": round(percentile(cpu_samples, 99), 2),
                    "pass": p50 < P50_TARGET_MS and p99 < P99_TARGET_MS,
                }
            )

    env = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "cpu_count": os.cpu_count(),
        "load_average_1m": round(os.getloadavg()[0], 2),
        "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY", "(default)"),
        "cold_first_decision_ms": round(cold_ms, 1),
        "targets_ms": {"p50": P50_TARGET_MS, "p99": P99_TARGET_MS},
    }
    print("decision latency, " + ", ".join(f"{k}={v}" for k, v in env.items() if k != "targets_ms"))
    print(f"targets: p50 < {P50_TARGET_MS:.0f} ms, p99 < {P99_TARGET_MS:.0f} ms")
    print("verdict on wall time; cpu = this process's CPU time (robust to other processes)")
    header = f"{'n':>3}  {'decision':<13} {'path':<7} {'p50 ms':>8} {'p99 ms':>8}"
    print(f"{header} {'cpu p50':>8} {'cpu p99':>8}  verdict")
    for row in rows:
        note = "" if row["path"] == "GP fit" else "  (space filling / argmin: no GP)"
        verdict = "PASS" if row["pass"] else "FAIL"
        print(
            f"{row['n']:>3}  {row['decision']:<13} {row['path']:<7} "
            f"{row['p50_ms']:>8.1f} {row['p99_ms']:>8.1f} "
            f"{row['cpu_p50_ms']:>8.1f} {row['cpu_p99_ms']:>8.1f}  {verdict}{note}"
        )
    all_pass = all(row["pass"] for row in rows)
    if env["torch_threads"] != 1:
        print(
            f"hint: torch uses {env['torch_threads']} intra-op threads; on a busy CPU their "
            "OpenMP workers wait for each other on every small op (5-10x slower here). "
            "Compare with --threads 1."
        )
    print("overall:", "PASS" if all_pass else "FAIL")
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"env": env, "rows": rows, "pass": all_pass}, indent=2))
    return 1 if args.strict and not all_pass else 0


if __name__ == "__main__":
    raise SystemExit(main())
