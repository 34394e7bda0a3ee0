"""Schedule-quality benchmark: autolr against tuned baseline schedules at the same step budget.

    python benchmarks/quality/run.py                       # everything (resumes from the cache)
    python benchmarks/quality/run.py --split held-out      # the held-out tasks only
    python benchmarks/quality/run.py --tasks digits --methods cosine,autolr --jobs 2
    python benchmarks/quality/run.py --autolr-variant "paperlike:kappa=100,initial_probes=10"

For every task: each baseline family (by default cosine and linear decay, both with 5% warmup,
and Schedule-Free; constant and step decay on request) over a 7-point log grid of peak LRs on
seed 0, then that family's best grid LR on seeds 1..N-1; autolr (defaults), the paper's method
(``autolrs`` = ``TunerConfig.autolrs()``) and any variants on seeds 0..N-1, with an LR range one
decade wider than the grid on each side (``Task.autolr_range``). Every method gets the same
number of optimizer steps; autolr's probe steps count against that budget. Finished runs are
cached in ``<out>/quality_cache.json`` (keyed by task, method, config, LR, seed and scale; autolr
keys include a digest of the autolr/ and client/ sources, so a changed controller reruns and the
baselines do not); ``<out>/quality_baselines.json`` (committed) holds baseline runs read before
that. An interrupted benchmark resumes where it stopped. Results: ``quality.json``,
``quality.md`` and ``quality_<task>.png`` in ``--out``.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import functools
import hashlib
import itertools
import json
import math
import os
import sys
import time
from collections.abc import Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import report  # noqa: E402
import schedules  # noqa: E402
from tasks import SPLITS, TASKS  # noqa: E402

#: Bump when a change to the harness or the tasks invalidates cached runs.
#: 2: a run stopped by a loss above 1e6 records final_val None (diverged); autolr keys hold the
#: LR range and the config preset.
HARNESS_VERSION = 2
#: Validation points per run: every 5% of the budget (plus step 0).
EVAL_POINTS = 20
#: Per-step traces (LR) are stored at most this many points per run.
TRACE_POINTS = 1000
BASELINES = ("constant", "cosine", "linear", "step", "schedulefree")
#: The baseline families run by default (the issue's: best-of-grid cosine, linear decay to zero,
#: Schedule-Free); constant and step decay still run when --methods names them.
DEFAULT_BASELINES = ("cosine", "linear", "schedulefree")
#: TunerConfig constructors a method can start from (``preset=`` in --autolr-variant).
CONFIG_PRESETS = ("autolrs",)


@dataclass(frozen=True)
class AutolrMethod:
    """An autolr configuration: a TunerConfig preset (None: the defaults) plus overrides."""

    preset: str | None = None
    overrides: tuple[tuple[str, Any], ...] = ()


#: Named autolr configurations selectable with --methods.
PRESETS: dict[str, AutolrMethod] = {
    # the paper's method as published: TunerConfig.autolrs(), every option beyond AutoLRS off
    "autolrs": AutolrMethod(preset="autolrs"),
    # the AutoLRS reference's search behaviour as far as TunerConfig can express it: all probes
    # space-filling (κ=1e6 made the reference's BO a fixed grid; κ is capped at 100 here)
    "autolr-paperlike": AutolrMethod(overrides=(("initial_probes", 10), ("kappa", 100.0))),
}
DEFAULT_METHODS = (*DEFAULT_BASELINES, "autolr", "autolrs")


def build_config(preset: str | None, **fields: Any) -> Any:
    """The TunerConfig of a run: ``TunerConfig.<preset>(**fields)`` or ``TunerConfig.build``."""
    from autolr import TunerConfig

    if preset is None:
        return TunerConfig.build(**fields)
    if preset not in CONFIG_PRESETS:
        raise ValueError(f"unknown config preset {preset!r}; choose from {CONFIG_PRESETS}")
    return getattr(TunerConfig, preset)(**fields)


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
    preset: str | None = None  # TunerConfig preset (autolr methods); None: the defaults

    @property
    def is_autolr(self) -> bool:
        return self.method not in BASELINES

    def key(self) -> str:
        # The defaults are part of the key: a run cached under other TunerConfig defaults
        # (e.g. before the "beyond AutoLRS" options became default) must not be reused.
        if self.is_autolr:
            cfg = json.dumps(
                {
                    "defaults": build_config(self.preset).model_dump(mode="json"),
                    "preset": self.preset,
                    "range": list(TASKS[self.task].autolr_range()),
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
    evals = set(_eval_steps(total))
    stride = _stride(total)
    setup = task.make(spec.seed)
    model = setup.model
    sf = spec.method == "schedulefree"
    warm = schedules.warmup_steps(total)

    if spec.is_autolr:
        from autolr.client import AutoLR

        opt = setup.optimizer(task.lr_center)
        min_lr, max_lr = task.autolr_range()
        config = build_config(
            spec.preset,
            min_lr=min_lr,
            max_lr=max_lr,
            total_steps=total,
            seed=spec.seed,
            **dict(spec.overrides),
        )
        tuner = AutoLR(
            model,
            opt,
            config=config,
            val_fn=lambda: setup.val_loss(model),
            strict=True,  # a failing controller must fail the run, not detach
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
    if diverged or final is None:
        # stopped by a non-finite or exploding loss: the run failed, whatever its val loss
        diverged, final = True, None
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
        "preset": spec.preset,
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


#: The committed baseline runs (``--export-baselines`` writes it), read before the cache.
BASELINE_FILE = "quality_baselines.json"


def baseline_lr_trace(rec: dict[str, Any]) -> list[float]:
    """The LR trace of a baseline run, rebuilt from its schedule (the exported file omits it)."""
    total, lr = rec["budget"], rec["lr"]
    if rec["method"] == "schedulefree":
        mult, peak = schedules.schedulefree_nominal, lr
    else:
        # as run_one computes the first group's peak (bit for bit)
        mult, peak = schedules.SCHEDULES[rec["method"]], lr * lr / lr
    return [peak * mult(t, total) for t in range(0, rec["steps_run"], rec["lr_trace_stride"])]


class Cache:
    """Finished runs by key: ``<out>/quality_cache.json``, over the committed baseline runs.

    Writes merge with what is on disk under a lock, so two benchmarks writing to the same
    folder (two engineers, two terminals) do not drop each other's runs.
    """

    def __init__(self, path: Path, baselines: Path | None = None) -> None:
        self.path = path
        self.frozen: dict[str, Any] = {}
        if baselines is not None and baselines.exists():
            for key, rec in json.loads(baselines.read_text()).items():
                if "lr_trace" not in rec:
                    rec["lr_trace"] = baseline_lr_trace(rec)
                self.frozen[key] = rec
        self.data: dict[str, Any] = {}
        if path.exists():
            self.data = json.loads(path.read_text())

    def get(self, spec: RunSpec) -> dict[str, Any] | None:
        key = spec.key()
        return self.data.get(key) or self.frozen.get(key)

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        # the folder is the lock (no lock file to leave behind; the cache file itself is
        # replaced on every write, so a lock on it would not exclude anyone)
        fd = os.open(self.path.parent, os.O_RDONLY)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # releases the lock

    def put(self, rec: dict[str, Any]) -> None:
        with self._locked():
            if self.path.exists():
                on_disk = json.loads(self.path.read_text())
                self.data = {**on_disk, **self.data}
            self.data[rec["key"]] = rec
            tmp = self.path.with_suffix(f".{os.getpid()}.tmp")
            tmp.write_text(json.dumps(self.data))
            os.replace(tmp, self.path)

    def export_baselines(self, path: Path) -> int:
        """Write every baseline run (cache and committed file) to ``path``, without LR traces
        (rebuilt on load); returns the number of runs."""
        runs = {
            k: {f: v for f, v in rec.items() if f != "lr_trace"}
            for k, rec in sorted({**self.frozen, **self.data}.items())
            if rec["family"] in BASELINES and k.startswith(f"v{HARNESS_VERSION}|")
        }
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(runs, indent=0, sort_keys=True) + "\n")
        os.replace(tmp, path)
        return len(runs)


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


def _validate(name: str, method: AutolrMethod, tasks: list[str], scale: float) -> None:
    for t in tasks:
        task = TASKS[t]
        min_lr, max_lr = task.autolr_range()
        try:
            build_config(
                method.preset,
                min_lr=min_lr,
                max_lr=max_lr,
                total_steps=task.budget(scale),
                **dict(method.overrides),
            )
        except ValueError as exc:
            raise SystemExit(f"{name} on {t}: {exc}") from None


def _variant(text: str) -> tuple[str, AutolrMethod]:
    name, _, rest = text.partition(":")
    if not name or name in BASELINES:
        raise SystemExit(f"bad --autolr-variant {text!r}: expected NAME:key=value,...")
    fields = _parse_pairs([rest])
    preset = fields.pop("preset", None)
    if preset is not None and preset not in CONFIG_PRESETS:
        raise SystemExit(f"bad --autolr-variant {text!r}: preset must be one of {CONFIG_PRESETS}")
    return name, AutolrMethod(preset, tuple(sorted(fields.items())))


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument(
        "--split",
        choices=("all", *SPLITS),
        default="all",
        help="the tasks of one split (tasks.TUNING / tasks.HELD_OUT) or all (default)",
    )
    p.add_argument(
        "--tasks", default=None, help=f"comma list of {', '.join(TASKS)} (overrides --split)"
    )
    p.add_argument(
        "--methods",
        default=",".join(DEFAULT_METHODS),
        help="comma list of "
        + ", ".join((*BASELINES, "autolr", *PRESETS))
        + " and names given with --autolr-variant (all variants run by default); default "
        + ",".join(DEFAULT_METHODS),
    )
    p.add_argument(
        "--seeds",
        type=int,
        default=5,
        help="seeds 0..N-1 for autolr and each family's best grid LR (default 5)",
    )
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
        help="an extra autolr method with its own TunerConfig overrides (repeatable); "
        "preset=autolrs starts from TunerConfig.autolrs() instead of the defaults",
    )
    p.add_argument("--no-report", action="store_true", help="run only; skip JSON/MD/PNG output")
    p.add_argument(
        "--export-baselines",
        action="store_true",
        help=f"write every cached baseline run to <out>/{BASELINE_FILE} (the committed file)",
    )
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.tasks is not None:
        tasks = [t for t in args.tasks.split(",") if t]
    elif args.split == "all":
        tasks = list(TASKS)
    else:
        tasks = list(SPLITS[args.split])
    for t in tasks:
        if t not in TASKS:
            raise SystemExit(f"unknown task {t!r}; choose from {', '.join(TASKS)}")
    autolr_methods: dict[str, AutolrMethod] = {
        args.autolr_name: AutolrMethod(
            overrides=tuple(sorted(_parse_pairs(args.autolr_config).items()))
        )
    }
    for name, method in PRESETS.items():
        autolr_methods.setdefault(name, method)
    for v in args.autolr_variant:
        name, method = _variant(v)
        autolr_methods[name] = method
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
    for name, method in autolrs.items():
        _validate(name, method, tasks, args.scale)

    args.out.mkdir(parents=True, exist_ok=True)
    cache = Cache(args.out / "quality_cache.json", args.out / BASELINE_FILE)
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
            RunSpec(t, m, None, s, args.scale, method.overrides, method.preset)
            for m, method in autolrs.items()
            for s in seeds
        ]
        runs = runner.run(first)
        if len(seeds) > 1:
            # every family's best grid LR (seed 0) on the other seeds: 5-seed means all round
            best = report.best_per_family(runs)
            extra = [
                RunSpec(t, fam, best[fam], s, args.scale)
                for fam in baselines
                if fam in best
                for s in seeds[1:]
            ]
            if extra:
                print(
                    "  best grid LRs: "
                    + ", ".join(f"{fam} {best[fam]:.3g}" for fam in baselines if fam in best)
                    + f"; seeds {seeds[1:]}",
                    flush=True,
                )
                runs += runner.run(extra)
        all_runs += runs

    if args.export_baselines:
        n = cache.export_baselines(args.out / BASELINE_FILE)
        print(f"wrote {args.out / BASELINE_FILE} ({n} baseline runs)", flush=True)
    if not args.no_report:
        meta = {
            "tasks": {
                t: {
                    "description": TASKS[t].description,
                    "budget": TASKS[t].budget(args.scale),
                    "grid": TASKS[t].grid(),
                    "autolr_range": list(TASKS[t].autolr_range()),
                    "split": next((n for n, m in SPLITS.items() if t in m), None),
                }
                for t in tasks
            },
            "seeds": args.seeds,
            "scale": args.scale,
            "harness_version": HARNESS_VERSION,
            "autolr_methods": {
                m: {"preset": a.preset, **dict(a.overrides)} for m, a in autolrs.items()
            },
            "eval_points": EVAL_POINTS,
        }
        paths = report.write_all(all_runs, meta, args.out)
        for p in paths:
            print(f"wrote {p}", flush=True)
        for line in report.split_lines(json.loads((args.out / "quality.json").read_text())):
            print(line, flush=True)
    print(f"done in {_fmt_time(time.perf_counter() - runner.t0)}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
