"""Schedule-quality benchmark: autolr against tuned baseline schedules at the same step budget.

    python benchmarks/quality/run.py                       # everything (resumes from the cache)
    python benchmarks/quality/run.py --tasks digits --methods cosine,autolr --jobs 2
    python benchmarks/quality/run.py --autolr-variant "paperlike:kappa=100,initial_probes=10"

For every task: constant, cosine (5% warmup), linear decay (5% warmup), step decay (×0.1 at 50%
and 75%) and Schedule-Free, each over a 7-point log grid of peak LRs (seed 0), then the best grid
point of the best family on the extra seeds; autolr (and any variants) on every seed with an LR
range one decade wider than the grid on each side. Every method gets the same number of
optimizer steps; autolr's probe steps count against that budget. Finished runs are cached in
``<out>/quality_cache.json`` (keyed by task, method, config, LR, seed and scale), so an
interrupted benchmark resumes where it stopped. Results: ``quality.json``, ``quality.md`` and
``quality_<task>.png`` in ``--out``.
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import itertools
import json
import math
import os
import sys
import time
from collections.abc import Iterable
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import report  # noqa: E402
import schedules  # noqa: E402
from tasks import TASKS  # noqa: E402

#: Bump when a change to the harness or the tasks invalidates cached runs.
HARNESS_VERSION = 1
#: Validation points per run: every 5% of the budget (plus step 0).
EVAL_POINTS = 20
#: Per-step traces (LR) are stored at most this many points per run.
TRACE_POINTS = 1000
BASELINES = ("constant", "cosine", "linear", "step", "schedulefree")
#: Named autolr configurations selectable with --methods (TunerConfig overrides).
PRESETS: dict[str, dict[str, Any]] = {
    # the AutoLRS reference's search behaviour as far as TunerConfig can express it: all probes
    # space-filling (κ=1e6 made the reference's BO a fixed grid; κ is capped at 100 here)
    "autolr-paperlike": {"initial_probes": 10, "kappa": 100.0},
}


@functools.cache
def _autolr_code_digest() -> str:
    """Hash of the controller's and client's sources: a changed algorithm never hits the cache."""
    root = HERE.parent.parent
    h = hashlib.sha1()
    sources = [*root.glob("autolr/**/*.py"), *root.glob("client/**/*.py")]
    for path in sorted(p for p in sources if p.name != "demo.py"):
        h.update(path.relative_to(root).as_posix().encode())
        h.update(path.read_bytes())
    return h.hexdigest()[:12]


@dataclass(frozen=True)
class RunSpec:
    task: str
    method: str  # a baseline family, "autolr" or an autolr variant name
    lr: float | None  # peak LR (baselines); None for autolr
    seed: int
    scale: float
    overrides: tuple[tuple[str, Any], ...] = ()  # TunerConfig overrides (autolr methods)

    @property
    def is_autolr(self) -> bool:
        return self.method not in BASELINES

    def key(self) -> str:
        # The defaults are part of the key: a run cached under other TunerConfig defaults
        # (e.g. before the "beyond AutoLRS" options became default) must not be reused.
        if self.is_autolr:
            from autolr import TunerConfig

            cfg = json.dumps(
                {
                    "defaults": TunerConfig().model_dump(mode="json"),
                    "code": _autolr_code_digest(),
                    **dict(self.overrides),
                },
                sort_keys=True,
            )
            digest = hashlib.sha1(cfg.encode()).hexdigest()[:8]
        else:
            digest = "default"
        lr = "auto" if self.lr is None else f"{self.lr:.6g}"
        return (
            f"v{HARNESS_VERSION}|{self.task}|{self.method}|cfg={digest}|lr={lr}|"
            f"seed={self.seed}|scale={self.scale:g}"
        )

    def label(self) -> str:
        lr = "" if self.lr is None else f" lr={self.lr:.3g}"
        return f"{self.task} {self.method}{lr} seed={self.seed}"


# ---------------------------------------------------------------------------------------------
# one run
# ---------------------------------------------------------------------------------------------


def _finite(x: float) -> float | None:
    return x if x is not None and math.isfinite(x) else None


def _eval_steps(total: int) -> list[int]:
    return sorted({round(k * total / EVAL_POINTS) for k in range(EVAL_POINTS + 1)})


def _stride(total: int) -> int:
    return max(1, math.ceil(total / TRACE_POINTS))


def _bucket_means(values: list[float], total: int) -> list[float | None]:
    """Mean training loss per 5% of the budget (None where non-finite or not run)."""
    out: list[float | None] = []
    edges = [round(k * total / EVAL_POINTS) for k in range(EVAL_POINTS + 1)]
    for a, b in itertools.pairwise(edges):
        chunk = values[a:b]
        m = sum(chunk) / len(chunk) if chunk else float("nan")
        out.append(_finite(m))
    return out


def _segments(schedule: Iterable[Any]) -> list[dict[str, Any]]:
    out = []
    for seg in schedule:
        get = seg.get if isinstance(seg, dict) else (lambda k, s=seg: getattr(s, k, None))
        out.append({k: get(k) for k in ("kind", "lr", "lr_end", "steps", "stage", "probe")})
    return out


def run_one(spec: RunSpec) -> dict[str, Any]:
    """Train one run and return its record (plain JSON types)."""
    import torch

    torch.set_num_threads(1)
    task = TASKS[spec.task]
    total = task.budget(spec.scale)
    grid = task.grid()
    evals = set(_eval_steps(total))
    stride = _stride(total)
    setup = task.make(spec.seed)
    model = setup.model
    sf = spec.method == "schedulefree"
    warm = schedules.warmup_steps(total)

    if spec.is_autolr:
        from autolr.client import AutoLR

        opt = setup.optimizer(task.lr_center)
        min_lr, max_lr = grid[0] / 10, grid[-1] * 10
        tuner = AutoLR(
            model,
            opt,
            min_lr=min_lr,
            max_lr=max_lr,
            total_steps=total,
            val_fn=lambda: setup.val_loss(model),
            seed=spec.seed,
            strict=True,  # a failing controller must fail the run, not detach
            **dict(spec.overrides),
        )
        mult = None
    else:
        assert spec.lr is not None
        opt = setup.optimizer(spec.lr, schedulefree=sf, warmup_steps=warm if sf else 0)
        tuner = None
        mult = schedules.schedulefree_nominal if sf else schedules.SCHEDULES[spec.method]
        peaks = [spec.lr * g["lr"] / opt.param_groups[0]["lr"] for g in opt.param_groups]
        if sf:
            opt.train()

    def validate() -> float:
        if sf:
            opt.eval()
            v = setup.val_loss(model)
            opt.train()
            return v
        return setup.val_loss(model)

    start = time.perf_counter()
    val_curve: list[tuple[int, float | None]] = [(0, _finite(validate()))]
    losses: list[float] = []
    lr_trace: list[float] = []
    diverged = False
    steps_run = 0
    for t in range(total):
        if mult is not None and not sf:
            m = mult(t, total)
            for g, peak in zip(opt.param_groups, peaks, strict=True):
                g["lr"] = peak * m
        if t % stride == 0:
            lr_trace.append(spec.lr * mult(t, total) if sf else opt.param_groups[0]["lr"])
        batch = next(setup.batches)
        loss = setup.loss(model, batch)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        steps_run = t + 1
        value = float(loss.detach())
        losses.append(value)
        if steps_run in evals:
            # the model as it is after `steps_run` steps (for autolr possibly a probe state)
            val_curve.append((steps_run, _finite(validate())))
        if tuner is not None:
            tuner.step(value)  # a float: lets the tuner end a diverging probe at once
            if tuner.finished:
                break
        elif not math.isfinite(value) or value > 1e6:
            diverged = True
            break
    wall = time.perf_counter() - start

    final = _finite(validate())
    if final is None:
        diverged = True
    rec: dict[str, Any] = {
        "task": spec.task,
        "method": spec.method,
        "family": "autolr" if spec.is_autolr else spec.method,
        "lr": spec.lr,
        "seed": spec.seed,
        "scale": spec.scale,
        "budget": total,
        "steps_run": steps_run,
        "final_val": final,
        "diverged": diverged,
        "val_curve": [[s, v] for s, v in val_curve],
        "train_curve": _bucket_means(losses, total),
        "lr_trace": lr_trace,
        "lr_trace_stride": stride,
        "wall_s": round(wall, 2),
        "overrides": dict(spec.overrides),
        "key": spec.key(),
        "code": _autolr_code_digest() if spec.is_autolr else None,
    }
    if tuner is not None:
        if not tuner.finished and steps_run == total:
            raise RuntimeError(f"autolr did not finish within its budget of {total} steps")
        segs = _segments(tuner.schedule)
        probe_steps = sum(s["steps"] or 0 for s in segs if s["kind"] == "probe")
        rec.update(
            min_lr=min_lr,
            max_lr=max_lr,
            schedule=segs,
            probe_share=probe_steps / total,
            train_lrs=[s["lr"] for s in segs if s["kind"] == "train"],
            finished=bool(tuner.finished),
        )
        close = getattr(tuner, "close", None)
        if close is not None:
            close()
    return rec


# ---------------------------------------------------------------------------------------------
# orchestration
# ---------------------------------------------------------------------------------------------


class Cache:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.data: dict[str, Any] = {}
        if path.exists():
            self.data = json.loads(path.read_text())

    def get(self, spec: RunSpec) -> dict[str, Any] | None:
        return self.data.get(spec.key())

    def put(self, rec: dict[str, Any]) -> None:
        self.data[rec["key"]] = rec
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.data))
        os.replace(tmp, self.path)


def _fmt_time(seconds: float) -> str:
    m, s = divmod(int(seconds), 60)
    return f"{m}m{s:02d}s"


class Runner:
    def __init__(self, cache: Cache, jobs: int) -> None:
        self.cache = cache
        self.jobs = jobs
        self.t0 = time.perf_counter()
        self.done = 0

    def run(self, specs: list[RunSpec]) -> list[dict[str, Any]]:
        results: dict[str, dict[str, Any]] = {}
        todo = []
        for spec in specs:
            rec = self.cache.get(spec)
            if rec is not None:
                results[spec.key()] = rec
            else:
                todo.append(spec)
        if len(results):
            print(f"  {len(results)} runs from the cache, {len(todo)} to run", flush=True)
        for rec in self._execute(todo):
            results[rec["key"]] = rec
        return [results[s.key()] for s in specs if s.key() in results]

    def _log(self, spec: RunSpec, rec: dict[str, Any] | None, err: str | None = None) -> None:
        self.done += 1
        elapsed = _fmt_time(time.perf_counter() - self.t0)
        if rec is None:
            print(
                f"[{self.done:4d}] {spec.label():45s} FAILED: {err}  (elapsed {elapsed})",
                flush=True,
            )
            return
        final = "diverged" if rec["final_val"] is None else f"{rec['final_val']:.4f}"
        extra = f" probe={rec['probe_share']:.0%}" if "probe_share" in rec else ""
        print(
            f"[{self.done:4d}] {spec.label():45s} val={final:>9s}{extra}  {rec['wall_s']:6.1f}s"
            f"  (elapsed {elapsed})",
            flush=True,
        )

    def _execute(self, specs: list[RunSpec]) -> Iterable[dict[str, Any]]:
        if not specs:
            return
        if self.jobs <= 1:
            for spec in specs:
                try:
                    rec = run_one(spec)
                except Exception as exc:  # keep the benchmark going; the failure is logged
                    self._log(spec, None, f"{type(exc).__name__}: {exc}")
                    continue
                self.cache.put(rec)
                self._log(spec, rec)
                yield rec
            return
        import multiprocessing as mp

        with ProcessPoolExecutor(self.jobs, mp_context=mp.get_context("spawn")) as pool:
            pending = {pool.submit(run_one, s): s for s in specs}
            while pending:
                finished, _ = wait(pending, return_when=FIRST_COMPLETED)
                for fut in finished:
                    spec = pending.pop(fut)
                    try:
                        rec = fut.result()
                    except Exception as exc:
                        self._log(spec, None, f"{type(exc).__name__}: {exc}")
                        continue
                    self.cache.put(rec)
                    self._log(spec, rec)
                    yield rec


def _parse_value(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def _parse_pairs(items: Iterable[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for item in items:
        for part in filter(None, (p.strip() for p in item.split(","))):
            if "=" not in part:
                raise SystemExit(f"expected key=value, got {part!r}")
            k, v = part.split("=", 1)
            out[k.strip()] = _parse_value(v.strip())
    return out


def _validate_overrides(
    name: str, overrides: dict[str, Any], tasks: list[str], scale: float
) -> None:
    from autolr.config import TunerConfig

    for t in tasks:
        task = TASKS[t]
        grid = task.grid()
        try:
            TunerConfig.build(
                min_lr=grid[0] / 10,
                max_lr=grid[-1] * 10,
                total_steps=task.budget(scale),
                **overrides,
            )
        except ValueError as exc:
            raise SystemExit(f"{name} on {t}: {exc}") from None


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--tasks", default=",".join(TASKS), help=f"comma list of {', '.join(TASKS)}")
    p.add_argument(
        "--methods",
        default=",".join((*BASELINES, "autolr")),
        help="comma list of "
        + ", ".join((*BASELINES, "autolr", *PRESETS))
        + " and names given with --autolr-variant (all variants run by default)",
    )
    p.add_argument("--seeds", type=int, default=3, help="seeds for autolr and the best baseline")
    p.add_argument("--scale", type=float, default=1.0, help="multiply every step budget")
    p.add_argument("--grid-points", type=int, default=7, help="LR grid points (centred subset)")
    p.add_argument("--out", type=Path, default=HERE.parent / "results")
    p.add_argument("--jobs", type=int, default=1, help="runs in parallel (processes)")
    p.add_argument(
        "--autolr-config",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="TunerConfig override for the 'autolr' method (repeatable)",
    )
    p.add_argument(
        "--autolr-name", default="autolr", help="name of the method configured by --autolr-config"
    )
    p.add_argument(
        "--autolr-variant",
        action="append",
        default=[],
        metavar="NAME:K=V,K=V",
        help="an extra autolr method with its own TunerConfig overrides (repeatable)",
    )
    p.add_argument("--no-report", action="store_true", help="run only; skip JSON/MD/PNG output")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    tasks = [t for t in args.tasks.split(",") if t]
    for t in tasks:
        if t not in TASKS:
            raise SystemExit(f"unknown task {t!r}; choose from {', '.join(TASKS)}")
    autolr_methods: dict[str, dict[str, Any]] = {args.autolr_name: _parse_pairs(args.autolr_config)}
    autolr_methods.update(PRESETS)
    for v in args.autolr_variant:
        name, _, rest = v.partition(":")
        if not name or name in BASELINES:
            raise SystemExit(f"bad --autolr-variant {v!r}: expected NAME:key=value,...")
        autolr_methods[name] = _parse_pairs([rest])
    requested = [m for m in args.methods.split(",") if m]
    requested += [
        v.partition(":")[0] for v in args.autolr_variant if v.partition(":")[0] not in requested
    ]
    if args.autolr_name != "autolr":
        requested = [args.autolr_name if m == "autolr" else m for m in requested]
    for m in requested:
        if m not in BASELINES and m not in autolr_methods:
            raise SystemExit(f"unknown method {m!r}")
    baselines = [m for m in requested if m in BASELINES]
    autolrs = {m: autolr_methods[m] for m in requested if m not in BASELINES}
    if autolrs:
        for name, ov in autolrs.items():
            _validate_overrides(name, ov, tasks, args.scale)

    args.out.mkdir(parents=True, exist_ok=True)
    cache = Cache(args.out / "quality_cache.json")
    runner = Runner(cache, args.jobs)
    seeds = list(range(args.seeds))
    print(
        f"quality benchmark: tasks={tasks} methods={requested} seeds={args.seeds} "
        f"scale={args.scale:g} jobs={args.jobs} out={args.out}",
        flush=True,
    )

    all_runs: list[dict[str, Any]] = []
    for t in tasks:
        task = TASKS[t]
        grid = task.grid(7)
        k = max(1, min(7, args.grid_points))
        lo = (7 - k) // 2
        grid = grid[lo : lo + k]
        print(f"== {t}: {task.budget(args.scale)} steps, LR grid {grid}", flush=True)
        first = [RunSpec(t, m, lr, 0, args.scale) for m in baselines for lr in grid]
        first += [
            RunSpec(t, m, None, s, args.scale, tuple(sorted(ov.items())))
            for m, ov in autolrs.items()
            for s in seeds
        ]
        runs = runner.run(first)
        best = report.best_baseline(runs)
        if best is not None and len(seeds) > 1:
            fam, lr = best
            print(f"  best baseline: {fam} lr={lr:.3g}; extra seeds {seeds[1:]}", flush=True)
            runs += runner.run([RunSpec(t, fam, lr, s, args.scale) for s in seeds[1:]])
            # the best cosine too: the yardstick ("within 1% of the best-of-grid cosine")
            cosine = report.best_baseline([r for r in runs if r["family"] == "cosine"])
            if cosine is not None and cosine != best:
                _, clr = cosine
                runs += runner.run([RunSpec(t, "cosine", clr, s, args.scale) for s in seeds[1:]])
        all_runs += runs

    if not args.no_report:
        meta = {
            "tasks": {
                t: {
                    "description": TASKS[t].description,
                    "budget": TASKS[t].budget(args.scale),
                    "grid": TASKS[t].grid(),
                }
                for t in tasks
            },
            "seeds": args.seeds,
            "scale": args.scale,
            "harness_version": HARNESS_VERSION,
            "autolr_methods": autolrs,
            "eval_points": EVAL_POINTS,
        }
        paths = report.write_all(all_runs, meta, args.out)
        for p in paths:
            print(f"wrote {p}", flush=True)
    print(f"done in {_fmt_time(time.perf_counter() - runner.t0)}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
