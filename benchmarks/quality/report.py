"""Summaries, Markdown tables and plots of the schedule-quality benchmark.

``python benchmarks/quality/report.py [--out benchmarks/results]`` rebuilds ``quality.md`` and the
PNGs from ``quality.json`` without rerunning anything.

The acceptance figures come first in ``quality.md``, held-out tasks before tuning tasks: per task
the ratio of autolr's mean final validation loss over seeds 0..N-1 to the best-of-grid cosine's
mean over the same seeds (a mean over a mean), its geometric mean over each split's tasks, the
same for the paper preset (``autolrs``), autolr against the preset, the probe share, and the LR
autolr trained at after its first stage relative to the best cosine peak.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
from collections import defaultdict
from pathlib import Path
from typing import Any

BASELINES = ("constant", "cosine", "linear", "step", "schedulefree")
LABELS = {
    "constant": "constant",
    "cosine": "cosine + warmup",
    "linear": "linear decay + warmup",
    "step": "step decay",
    "schedulefree": "Schedule-Free",
}
COLORS = {
    "constant": "tab:gray",
    "cosine": "tab:blue",
    "linear": "tab:green",
    "step": "tab:purple",
    "schedulefree": "tab:orange",
}
AUTOLR_COLORS = ["tab:red", "tab:brown", "tab:pink", "tab:olive", "tab:cyan"]


def _score(rec: dict[str, Any]) -> float:
    v = rec.get("final_val")
    return math.inf if v is None else float(v)


def grid_table(runs: list[dict[str, Any]]) -> dict[str, dict[float, float | None]]:
    """Seed-0 final validation loss per baseline family and LR."""
    out: dict[str, dict[float, float | None]] = defaultdict(dict)
    for r in runs:
        if r["family"] in BASELINES and r["seed"] == 0:
            out[r["family"]][r["lr"]] = r["final_val"]
    return out


def best_per_family(runs: list[dict[str, Any]]) -> dict[str, float]:
    """The best seed-0 grid LR of each baseline family (families that never converged: absent)."""
    best: dict[str, float] = {}
    for fam, row in grid_table(runs).items():
        finite = {lr: v for lr, v in row.items() if v is not None}
        if finite:
            best[fam] = min(finite, key=lambda lr: finite[lr])
    return best


def best_baseline(runs: list[dict[str, Any]]) -> tuple[str, float] | None:
    """(family, lr) of the best seed-0 grid point over all baseline families."""
    table = grid_table(runs)
    cands = [(v, fam, lr) for fam, row in table.items() for lr, v in row.items() if v is not None]
    if not cands:
        return None
    _, fam, lr = min(cands)
    return fam, lr


def steps_to(rec: dict[str, Any], target: float | None) -> int | None:
    """First evaluated step (total steps, probes included) whose val loss is ≤ target."""
    if target is None:
        return None
    for step, v in rec["val_curve"]:
        if v is not None and v <= target:
            return int(step)
    return None


def _gmean(values: list[float]) -> float:
    if any(v == math.inf for v in values):
        return math.inf
    return math.exp(statistics.fmean(math.log(v) for v in values))


def later_stage_lr(rec: dict[str, Any]) -> float | None:
    """Step-weighted geometric mean LR of an autolr run's train segments after stage 0."""
    num = den = 0.0
    for seg in rec.get("schedule", []):
        if seg["kind"] != "train" or (seg["stage"] or 0) < 1 or not seg["steps"]:
            continue
        lo, hi = seg["lr"], seg["lr_end"] if seg["lr_end"] is not None else seg["lr"]
        if lo <= 0 or hi <= 0:
            continue
        num += seg["steps"] * 0.5 * (math.log(lo) + math.log(hi))
        den += seg["steps"]
    return math.exp(num / den) if den else None


def _stats(values: list[float | None]) -> dict[str, Any]:
    finite = [v for v in values if v is not None]
    return {
        "n": len(values),
        "n_diverged": len(values) - len(finite),
        "mean": statistics.fmean(finite) if finite else None,
        "std": statistics.stdev(finite) if len(finite) > 1 else None,
        "values": values,
    }


def summarize(task: str, runs: list[dict[str, Any]]) -> dict[str, Any]:
    runs = [r for r in runs if r["task"] == task]
    table = grid_table(runs)
    best = best_per_family(runs)
    overall = best_baseline(runs)
    target = table.get("cosine", {}).get(best.get("cosine")) if "cosine" in best else None
    rows = []
    for fam in BASELINES:
        if fam not in table:
            continue
        lr = best.get(fam)
        recs = sorted(
            (r for r in runs if r["family"] == fam and r["lr"] == lr), key=lambda r: r["seed"]
        )
        stt = [steps_to(r, target) for r in recs]
        rows.append(
            {
                "method": fam,
                "kind": "baseline",
                "best_lr": lr,
                "final": _stats([r["final_val"] for r in recs]),
                "seeds": [r["seed"] for r in recs],
                "steps_to_target": stt,
                "probe_share": None,
                "best_overall": overall is not None and overall[0] == fam,
            }
        )
    for method in sorted({r["method"] for r in runs if r["family"] == "autolr"}):
        recs = sorted((r for r in runs if r["method"] == method), key=lambda r: r["seed"])
        train_lrs = [lr for r in recs for lr in r.get("train_lrs", [])]
        rows.append(
            {
                "method": method,
                "kind": "autolr",
                "lr_range": [recs[0].get("min_lr"), recs[0].get("max_lr")],
                "train_lr_range": [min(train_lrs), max(train_lrs)] if train_lrs else None,
                "final": _stats([r["final_val"] for r in recs]),
                "seeds": [r["seed"] for r in recs],
                "steps_to_target": [steps_to(r, target) for r in recs],
                "probe_share": statistics.fmean(r["probe_share"] for r in recs),
                "probe_share_max": max(r["probe_share"] for r in recs),
                "finals": [r["final_val"] for r in recs],
                "overrides": recs[0].get("overrides", {}),
                "preset": recs[0].get("preset"),
                "wall_s": statistics.fmean(r["wall_s"] for r in recs),
                "later_stage_lr": [later_stage_lr(r) for r in recs],
            }
        )
    return {
        "task": task,
        "target": target,
        "best_per_family": best,
        "best_baseline": list(overall) if overall else None,
        "grid": {
            fam: {f"{lr:g}": v for lr, v in sorted(row.items())} for fam, row in table.items()
        },
        "rows": rows,
    }


# ---------------------------------------------------------------------------------------------
# Markdown
# ---------------------------------------------------------------------------------------------


def _f(v: float | None, digits: int = 4) -> str:
    if v is None:
        return "—"
    return f"{v:.{digits}g}" if abs(v) < 1e-3 or abs(v) >= 1e4 else f"{v:.{digits}f}"


def _final_cell(st: dict[str, Any]) -> str:
    if st["mean"] is None:
        return f"diverged ({st['n_diverged']}/{st['n']})"
    cell = _f(st["mean"]) + (f" ± {_f(st['std'])}" if st["std"] is not None else "")
    if st["n_diverged"]:
        cell += f" ({st['n_diverged']} diverged)"
    return cell


def _stt_cell(stt: list[int | None], budget: int) -> str:
    reached = [s for s in stt if s is not None]
    if not stt:
        return "—"
    if not reached:
        return f"never (0/{len(stt)})"
    med = statistics.median(reached)
    return f"{med:.0f} = {med / budget:.0%} ({len(reached)}/{len(stt)})"


def _row(summary: dict[str, Any], method: str) -> dict[str, Any] | None:
    return next((r for r in summary["rows"] if r["method"] == method), None)


def ratio(a: dict[str, Any] | None, b: dict[str, Any] | None) -> float | None:
    """Mean of ``a``'s final val losses over the mean of ``b``'s, on the seeds both ran.

    None when either row is missing or shares no seed with the other, or ``b`` diverged on
    one of them; inf when ``a`` diverged on one of them (a failed run is not averaged away).
    """
    if a is None or b is None:
        return None
    va = dict(zip(a["seeds"], a["final"]["values"], strict=True))
    vb = dict(zip(b["seeds"], b["final"]["values"], strict=True))
    seeds = sorted(set(va) & set(vb))
    if not seeds or any(vb[s] is None for s in seeds):
        return None
    if any(va[s] is None for s in seeds):
        return math.inf
    mb = statistics.fmean(vb[s] for s in seeds)
    return statistics.fmean(va[s] for s in seeds) / mb if mb > 0 else None


def split_tables(summaries: list[dict[str, Any]], meta: dict[str, Any]) -> dict[str, Any]:
    """Per split: one row per task (the acceptance figures) and the geometric means."""
    out: dict[str, Any] = {}
    for split in ("held-out", "tuning", None):
        rows = []
        for s in summaries:
            if meta["tasks"][s["task"]].get("split") != split:
                continue
            ours, paper, cos = _row(s, "autolr"), _row(s, "autolrs"), _row(s, "cosine")
            later = [v for v in (ours or {}).get("later_stage_lr", []) if v is not None]
            cos_lr = cos["best_lr"] if cos else None
            rows.append(
                {
                    "task": s["task"],
                    "autolr": ours["final"]["mean"] if ours else None,
                    "autolr_n": len(ours["seeds"]) if ours else 0,
                    "autolr_diverged": ours["final"]["n_diverged"] if ours else 0,
                    "autolrs": paper["final"]["mean"] if paper else None,
                    **{
                        fam: (r["final"]["mean"], r["best_lr"], len(r["seeds"]))
                        if (r := _row(s, fam))
                        else None
                        for fam in ("cosine", "linear", "schedulefree")
                    },
                    "ratio": ratio(ours, cos),
                    "ratio_autolrs": ratio(paper, cos),
                    "ratio_vs_autolrs": ratio(ours, paper),
                    "probe_share": ours["probe_share"] if ours else None,
                    "probe_share_max": ours["probe_share_max"] if ours else None,
                    "later_lr_over_cosine": (_gmean(later) / cos_lr if later and cos_lr else None),
                }
            )
        if not rows:
            continue
        entry: dict[str, Any] = {"rows": rows}
        for key in ("ratio", "ratio_autolrs", "ratio_vs_autolrs"):
            vals = [(r[key], r["task"]) for r in rows if r[key] is not None]
            entry[key] = {
                "geomean": _gmean([v for v, _ in vals]) if vals else None,
                "tasks": len(vals),
                "of": len(rows),
                "worst": list(max(vals)) if vals else None,
            }
        out[split or "other"] = entry
    return _inf_to_text(out)


def _inf_to_text(obj: Any) -> Any:
    """inf as the string "inf": JSON has no infinity, and a diverged autolr seed must not read
    as a missing figure."""
    if isinstance(obj, float) and obj == math.inf:
        return "inf"
    if isinstance(obj, dict):
        return {k: _inf_to_text(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_inf_to_text(v) for v in obj]
    return obj


def _ratio_cell(v: float | str | None) -> str:
    if v is None:
        return "—"
    return "∞ (diverged)" if v in (math.inf, "inf") else f"{v:.3f}"


def _split_section(name: str, entry: dict[str, Any], title: str) -> list[str]:
    lines = [
        f"## {title}",
        "",
        "| task | autolr | cosine (best LR) | linear (best LR) | Schedule-Free (best LR) "
        "| **autolr / cosine** | autolrs / cosine | autolr / autolrs | probe share (max) "
        "| later-stage LR / cosine peak |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in entry["rows"]:
        fams = []
        for fam in ("cosine", "linear", "schedulefree"):
            cell = r[fam]
            if cell is None:
                fams.append("—")
            elif cell[1] is None:
                fams.append("diverged")
            else:
                fams.append(f"{_f(cell[0])} ({cell[1]:.3g})")
        auto = _f(r["autolr"]) + (
            f" ({r['autolr_diverged']} diverged)" if r["autolr_diverged"] else ""
        )
        probe = (
            "—"
            if r["probe_share"] is None
            else f"{r['probe_share']:.1%} ({r['probe_share_max']:.1%})"
        )
        later = "—" if r["later_lr_over_cosine"] is None else f"{r['later_lr_over_cosine']:.2f}"
        lines.append(
            f"| {r['task']} | {auto} | " + " | ".join(fams) + f" | **{_ratio_cell(r['ratio'])}**"
            f" | {_ratio_cell(r['ratio_autolrs'])} | {_ratio_cell(r['ratio_vs_autolrs'])} | "
            f"{probe} | {later} |"
        )
    lines.append("")
    for key, label in (
        ("ratio", "autolr / cosine"),
        ("ratio_autolrs", "autolrs / cosine"),
        ("ratio_vs_autolrs", "autolr / autolrs"),
    ):
        g = entry[key]
        if g["geomean"] is None:
            continue
        worst = g["worst"]
        lines.append(
            f"- geometric mean {label} over {name} tasks: **{_ratio_cell(g['geomean'])}** "
            f"({g['tasks']}/{g['of']} tasks; worst {worst[1]} {_ratio_cell(worst[0])})"
        )
    return [*lines, ""]


def split_lines(data: dict[str, Any]) -> list[str]:
    """One printed line per split: ``held-out geomean autolr/cosine = X (worst task: t X)``."""
    lines = []
    for name, entry in data.get("splits", {}).items():
        for key, label in (("ratio", "autolr/cosine"), ("ratio_autolrs", "autolrs/cosine")):
            g = entry[key]
            if g["geomean"] is None:
                continue
            w = g["worst"]
            lines.append(
                f"{name} geomean {label} = {_ratio_cell(g['geomean'])} "
                f"(worst task: {w[1]} {_ratio_cell(w[0])}; {g['tasks']}/{g['of']} tasks)"
            )
    return lines


def acceptance(summaries: list[dict[str, Any]]) -> list[str]:
    """The "beyond AutoLRS" acceptance, task by task: autolr's defaults against the paper's
    method (AutoLRS preset, ``autolrs``) and the best-of-grid cosine."""
    lines = [
        "## Detail: autolr's defaults against the grid's seed-0 cosine pick",
        "",
        "*vs cosine*: autolr's mean final val loss over the best cosine's seed-0 loss (the "
        "grid's pick; one autolr run against seven), and over the best cosine's mean on the "
        "same seeds. *Seeds within 1%*: autolr seeds at or below 1.01 × the seed-0 cosine.",
        "",
        "| task | autolr (defaults) | probe share (max) | AutoLRS preset | best cosine seed 0 "
        "(mean over seeds) | vs cosine seed 0 | vs cosine mean | seeds within 1% |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for s in summaries:
        ours, paper, cos = _row(s, "autolr"), _row(s, "autolrs"), _row(s, "cosine")
        if ours is None or cos is None or s["target"] is None:
            continue
        mean, target = ours["final"]["mean"], s["target"]
        cos_mean = cos["final"]["mean"]
        finals = [v for v in ours["finals"] if v is not None]
        within = sum(v <= 1.01 * target for v in finals)
        rel = f"{mean / target - 1:+.1%}" if mean is not None else "—"
        rel_mean = f"{mean / cos_mean - 1:+.1%}" if mean is not None and cos_mean else "—"
        lines.append(
            f"| {s['task']} | {_final_cell(ours['final'])} | {ours['probe_share']:.0%} "
            f"({ours['probe_share_max']:.0%}) | "
            + (
                _final_cell(paper["final"]) + f" ({paper['probe_share']:.0%} probing)"
                if paper
                else "—"
            )
            + f" | {_f(target)} ({_f(cos_mean)}) | {rel} | {rel_mean} | "
            f"{within}/{len(ours['finals'])} |"
        )
    return [*lines, ""]


def markdown(
    summaries: list[dict[str, Any]], meta: dict[str, Any], splits: dict[str, Any] | None = None
) -> str:
    lines = [
        "# Schedule-quality benchmark",
        "",
        f"Generated by `python benchmarks/quality/run.py` (harness v{meta['harness_version']}, "
        f"scale {meta['scale']:g}, seeds 0..{meta['seeds'] - 1} for autolr and for each "
        "baseline family's best grid LR, seed 0 for the rest of the grid). Every method gets "
        "the same number of optimizer steps; autolr's probe steps count against it.",
        "",
        "Acceptance tables: the task split is fixed in `benchmarks/quality/tasks.py`; the "
        "held-out table is the one that counts. Losses are means of the final validation loss "
        "over the seeds; each family at its own best seed-0 grid LR. *autolr / cosine*: "
        "autolr's mean over the best-of-grid cosine's mean on the same seeds (∞: an autolr "
        "seed diverged); *autolrs*: the paper's method (`TunerConfig.autolrs()`); *probe "
        "share*: autolr's steps in probe segments / budget, mean (max) over seeds; "
        "*later-stage LR*: autolr's step-weighted geometric-mean LR in train segments after "
        "stage 0 (geometric mean over seeds) over the best cosine peak LR.",
        "",
    ]
    if splits is None:
        splits = split_tables(summaries, meta)
    titles = {
        "held-out": "Held-out tasks (the table that counts)",
        "tuning": "Tuning tasks",
        "other": "Tasks in no split",
    }
    for name, entry in splits.items():
        lines += _split_section(name, entry, titles[name])
    lines += [
        "*Final val loss* below: mean ± std over seeds. *Steps to target*: first evaluation "
        "(every 5% of the budget, total steps including probes) at or below the best-of-grid "
        "cosine's final val loss (seed 0); median over the seeds that reached it, "
        "(reached/seeds).",
        "",
    ]
    lines += acceptance(summaries)
    for s in summaries:
        t = s["task"]
        info = meta["tasks"][t]
        budget = info["budget"]
        lines += [
            f"## {t}",
            "",
            f"{info['description']}. Budget {budget} steps; LR grid "
            + ", ".join(f"{x:g}" for x in info["grid"])
            + f". Target (best cosine): {_f(s['target'])}.",
            "",
        ]
        lines += [
            "| method | best LR | final val loss | seeds | steps to target | probe share |",
            "|---|---|---|---|---|---|",
        ]
        for row in s["rows"]:
            if row["kind"] == "baseline":
                name = LABELS[row["method"]] + (" **(best)**" if row["best_overall"] else "")
                lr = f"{row['best_lr']:.3g}" if row["best_lr"] is not None else "—"
                probe = "—"
            else:
                name = row["method"]
                lo, hi = row["lr_range"]
                lr = f"search {lo:.2g}–{hi:.2g}"
                if row["train_lr_range"]:
                    a, b = row["train_lr_range"]
                    lr += f" (trained {a:.2g}–{b:.2g})"
                probe = f"{row['probe_share']:.0%}"
            lines.append(
                f"| {name} | {lr} | {_final_cell(row['final'])} | {len(row['seeds'])} | "
                f"{_stt_cell(row['steps_to_target'], budget)} | {probe} |"
            )
        lines += ["", "Seed-0 final val loss over the LR grid (— = diverged):", ""]
        grid = info["grid"]
        lines += [
            "| family | " + " | ".join(f"{x:g}" for x in grid) + " |",
            "|---" * (len(grid) + 1) + "|",
        ]
        for fam, row in s["grid"].items():
            vals = [row.get(f"{x:g}", "n/a") for x in grid]
            finite = [v for v in vals if isinstance(v, float)]
            best = min(finite) if finite else None
            cells = []
            for v in vals:
                if v == "n/a":
                    cells.append("")
                elif v is None:
                    cells.append("—")
                else:
                    cells.append(f"**{_f(v)}**" if v == best else _f(v))
            lines.append(f"| {LABELS[fam]} | " + " | ".join(cells) + " |")
        lines += ["", f"![{t}](quality_{t}.png)", ""]
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------------------------
# plots
# ---------------------------------------------------------------------------------------------


def _probe_mask(rec: dict[str, Any], n_points: int) -> list[bool]:
    """For each stored trace point: whether that step belonged to a probe segment."""
    kinds: list[str] = []
    for seg in rec.get("schedule", []):
        kinds += [seg["kind"]] * int(seg["steps"] or 0)
    stride = rec["lr_trace_stride"]
    return [
        (kinds[i * stride] == "probe") if i * stride < len(kinds) else False
        for i in range(n_points)
    ]


def plot(
    task: str, runs: list[dict[str, Any]], summary: dict[str, Any], path: Path, grid: list[float]
) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    runs = [r for r in runs if r["task"] == task]
    fig, (ax_lr, ax_val) = plt.subplots(1, 2, figsize=(13, 4.8))
    for fam, lr in summary["best_per_family"].items():
        rec = next(
            (r for r in runs if r["family"] == fam and r["lr"] == lr and r["seed"] == 0), None
        )
        if rec is None:
            continue
        xs = [i * rec["lr_trace_stride"] for i in range(len(rec["lr_trace"]))]
        label = f"{LABELS[fam]} (lr {lr:g})"
        ax_lr.plot(
            xs, [max(v, 1e-12) for v in rec["lr_trace"]], color=COLORS[fam], lw=1.5, label=label
        )
        vx = [s for s, v in rec["val_curve"] if v is not None]
        vy = [v for s, v in rec["val_curve"] if v is not None]
        ax_val.plot(vx, vy, color=COLORS[fam], lw=1.5, marker=".", label=label)
    methods = sorted({r["method"] for r in runs if r["family"] == "autolr"})
    for i, method in enumerate(methods):
        color = AUTOLR_COLORS[i % len(AUTOLR_COLORS)]
        recs = sorted((r for r in runs if r["method"] == method), key=lambda r: r["seed"])
        for j, rec in enumerate(recs):
            vx = [s for s, v in rec["val_curve"] if v is not None]
            vy = [v for s, v in rec["val_curve"] if v is not None]
            main = j == 0
            ax_val.plot(
                vx,
                vy,
                color=color,
                lw=2.0 if main else 0.8,
                alpha=1.0 if main else 0.45,
                marker="." if main else None,
                label=f"{method} (seed {rec['seed']}; faint: other seeds)" if main else None,
            )
            if not main:
                continue
            trace = rec["lr_trace"]
            xs = [k * rec["lr_trace_stride"] for k in range(len(trace))]
            mask = _probe_mask(rec, len(trace))
            ax_lr.plot(xs, trace, color=color, lw=0.6, alpha=0.35)
            ax_lr.plot(
                xs,
                [v if not p else math.nan for v, p in zip(trace, mask, strict=True)],
                color=color,
                lw=2.0,
                label=f"{method} (seed {rec['seed']}; faint: probes)",
            )
    if summary["target"] is not None:
        ax_val.axhline(summary["target"], color="k", ls="--", lw=0.8, label="target (best cosine)")
    ax_lr.set_yscale("log")
    ax_lr.set_ylim(grid[0] / 30, grid[-1] * 30)  # decays end at ~0: keep the axis readable
    ax_lr.set_xlabel("step (probes included)")
    ax_lr.set_ylabel("LR (first param group)")
    ax_lr.set_title(f"{task}: LR schedules (best LR of each family)")
    ax_val.set_yscale("log")
    ax_val.set_xlabel("step (probes included)")
    ax_val.set_ylabel("validation loss")
    ax_val.set_title(f"{task}: validation loss")
    finite = [v for r in runs for _, v in r["val_curve"] if v is not None]
    if finite and summary["target"] is not None:
        lo = min(finite)
        ax_val.set_ylim(lo * 0.9, max(summary["target"] * 4, lo * 2))
        ax_val.set_ylim(top=min(max(finite), ax_val.get_ylim()[1] * 3))
    ax_lr.legend(fontsize=7, loc="lower left")
    ax_val.legend(fontsize=7, loc="upper right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _clean(obj: Any) -> Any:
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _clean(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_clean(v) for v in obj]
    return obj


def write_all(runs: list[dict[str, Any]], meta: dict[str, Any], out: Path) -> list[Path]:
    tasks = list(meta["tasks"])
    summaries = [summarize(t, runs) for t in tasks]
    splits = split_tables(summaries, meta)
    jpath = out / "quality.json"
    jpath.write_text(
        json.dumps(
            _clean({"meta": meta, "splits": splits, "summary": summaries, "runs": runs}),
            indent=1,
        )
    )
    mpath = out / "quality.md"
    mpath.write_text(markdown(summaries, meta, splits))
    paths = [jpath, mpath]
    for t, s in zip(tasks, summaries, strict=True):
        p = out / f"quality_{t}.png"
        plot(t, runs, s, p, meta["tasks"][t]["grid"])
        paths.append(p)
    return paths


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--out", type=Path, default=Path(__file__).resolve().parent.parent / "results")
    args = p.parse_args()
    data = json.loads((args.out / "quality.json").read_text())
    for path in write_all(data["runs"], data["meta"], args.out):
        print(f"wrote {path}")
    for line in split_lines(json.loads((args.out / "quality.json").read_text())):
        print(line)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
