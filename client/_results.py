"""`TunerResults`: what a run found, in the format the server exports.

Embedded mode (the default) has no service to ask for an export, so the tuner hands its record
over as a results object: the same rows as ``autolr export`` (`autolr.export.EXPORT_COLUMNS`,
read back by `ReplaySchedule`), one summary row per stage with the rule that chose its LR, the
losses the controller kept for drawing, and a PNG of the LR schedule and the loss curve.
"""

from __future__ import annotations

import io
import json
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

#: Columns of `TunerResults.summary`, one row per stage.
SUMMARY_COLUMNS = ("stage", "probes", "probe_steps", "train_steps", "lr", "rule")


@dataclass(frozen=True)
class StageSummary:
    """One stage: how much it searched, the LR it trained with and the rule that chose it.

    Attributes:
        stage: stage index.
        probes: probe segments run.
        probe_steps: steps spent probing.
        train_steps: steps trained (and annealed) in the stage.
        lr: the LR its first train segment started at (None: the stage never trained).
        rule: the stage policy's rule (``"-"`` where the record has none).
        decision: the policy's one-line summary (rule, LR and the best probes' objectives).
    """

    stage: int
    probes: int
    probe_steps: int
    train_steps: int
    lr: float | None
    rule: str
    decision: str = ""


@dataclass(frozen=True)
class TunerResults:
    """A run's schedule and stages, exportable like a server job.

    Attributes:
        job_id: the job's id (``"local"`` in embedded mode).
        status: ``"running"`` or ``"finished"``.
        config: the job's `TunerConfig` as a JSON mapping.
        rows: the export rows, one per segment run (`autolr.export.EXPORT_COLUMNS`).
        stages: one `StageSummary` per stage.
        losses: ``(step, loss, kind)`` points to draw: per-segment bucket means of the training
            loss from the controller's record (empty when this process holds no record).
        name: the job's name, if it has one.
    """

    job_id: str | None
    status: str
    config: Mapping[str, Any]
    rows: list[dict[str, Any]]
    stages: list[StageSummary]
    losses: list[tuple[int, float, str]] = field(default_factory=list)
    name: str | None = None

    # ----------------------------------------------------------------- export
    def to_dict(self) -> dict[str, Any]:
        """The document ``autolr export --format json`` writes (`ReplaySchedule` reads it)."""
        return {
            "job_id": self.job_id,
            "name": self.name,
            "status": self.status,
            "config": dict(self.config),
            "schedule": [dict(row) for row in self.rows],
        }

    def to_json(self, path: str | os.PathLike[str] | None = None) -> str:
        """The JSON export; written to ``path`` when given. Returns the text."""
        text = json.dumps(self.to_dict(), indent=2) + "\n"
        if path is not None:
            with open(path, "w", encoding="utf-8") as stream:
                stream.write(text)
        return text

    def to_csv(self, path: str | os.PathLike[str] | None = None) -> str:
        """The CSV export (every digit of each LR kept); written to ``path`` when given."""
        from autolr.export import write_csv

        buffer = io.StringIO()
        write_csv(self.rows, buffer)
        if path is not None:
            with open(path, "w", encoding="utf-8", newline="") as stream:
                stream.write(buffer.getvalue())
        return buffer.getvalue()

    # ----------------------------------------------------------------- for people
    def summary(self) -> str:
        """A fixed-width table, one row per stage, and a line of totals."""
        head = ("stage", "probes", "probe steps", "train steps", "lr", "rule")
        body = [
            (
                str(s.stage),
                str(s.probes),
                str(s.probe_steps),
                str(s.train_steps),
                "-" if s.lr is None else f"{s.lr:.4g}",
                s.rule,
            )
            for s in self.stages
        ]
        widths = [max(len(r[i]) for r in [head, *body]) for i in range(len(head))]
        lines = [
            "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in [head, *body]
        ]
        total = sum(int(r["steps"]) + int(r["extra_steps"]) for r in self.rows)
        probing = sum(int(r["steps"]) for r in self.rows if r["kind"] == "probe")
        lines.append(
            f"{total} steps, {probing} of them probing ({100.0 * probing / max(total, 1):.0f}%)"
        )
        return "\n".join(line.rstrip() for line in lines)

    def plot(self, path: str | os.PathLike[str]) -> str:
        """Draw the LR schedule (top) and the training loss (bottom) into a PNG at ``path``.

        Probe segments are grey: they trained from the stage snapshot, which was restored
        afterwards. Needs matplotlib (``pip install "autolr[plot]"``).
        """
        try:
            import matplotlib
        except ImportError:
            raise ImportError(
                "TunerResults.plot needs matplotlib: pip install 'autolr[plot]'"
            ) from None
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        colors = {
            "probe": "0.65",
            "warmup": "tab:green",
            "train": "tab:blue",
            "anneal": "tab:purple",
        }
        fig, (ax_lr, ax_loss) = plt.subplots(2, 1, figsize=(10, 6.5), sharex=True)
        seen: set[str] = set()
        for row in self.rows:
            start, steps = int(row["start_step"]), max(int(row["steps"]), 1)
            kind = str(row["kind"])
            ax_lr.plot(
                [start, start + steps],
                [float(row["lr"]), float(row["lr_end"])],
                color=colors.get(kind, "k"),
                lw=2,
                label=None if kind in seen else kind,
            )
            seen.add(kind)
        for kind, color in colors.items():
            points = [(s, v) for s, v, k in self.losses if k == kind and math.isfinite(v)]
            if points:
                xs, ys = zip(*points, strict=True)
                ax_loss.scatter(xs, ys, s=4, color=color, label=f"train loss ({kind})")
        ax_lr.set_yscale("log")
        ax_lr.set_ylabel("learning rate")
        ax_lr.set_title(f"autolr job {self.job_id or '-'}: LR schedule (grey: probes)")
        ax_lr.legend(loc="best")
        finite = [v for _s, v, k in self.losses if k != "probe" and math.isfinite(v) and v > 0]
        if finite:  # a diverging probe would stretch the axis over many decades
            ax_loss.set_yscale("log")
            ax_loss.set_ylim(min(finite) * 0.5, max(finite) * 3)
            ax_loss.legend(loc="best")
        ax_loss.set_xlabel("optimizer step (search included)")
        ax_loss.set_ylabel("training loss")
        fig.tight_layout()
        fig.savefig(path, dpi=100)
        plt.close(fig)
        return str(path)


def results_from_controller(
    state: Mapping[str, Any], *, finished: bool, name: str | None = None
) -> TunerResults:
    """Results from `Controller.record()` (or ``GET /v1/jobs/{id}``): the server's export
    rows, stages and losses."""
    from autolr.export import schedule_rows

    rows = schedule_rows(state)
    decisions: dict[int, tuple[str, str]] = {}
    for record in state.get("stages", []):
        made = record.get("decisions") or []
        if made:
            last = made[-1]
            decisions[int(record["stage"])] = (str(last["rule"]), _decision_line(last))
    losses: list[tuple[int, float, str]] = []
    for record in state.get("segments", []):
        values = record.get("losses") or []
        start, steps = int(record["start_step"]), int(record["steps_run"])
        kind = str(record["instruction"]["kind"])
        for i, value in enumerate(values):
            if value is not None:
                # bucket i covers steps [i*n/k, (i+1)*n/k): draw it at the bucket's middle
                losses.append((start + int((i + 0.5) * steps / len(values)), float(value), kind))
    return TunerResults(
        job_id=_job_id(state),
        status="finished" if finished else "running",
        config=dict(state["config"]),
        rows=rows,
        stages=stage_summaries(rows, decisions),
        losses=losses,
        name=name,
    )


def results_from_schedule(
    segments: Sequence[Any],
    config: Mapping[str, Any],
    *,
    job_id: str | None,
    finished: bool,
    decisions: Mapping[int, str],
    name: str | None = None,
) -> TunerResults:
    """Results from `AutoLR.schedule` alone (a server run): no losses, no ``kept`` marks."""
    rows, start = [], 0
    for seg in segments:
        rows.append(
            {
                "segment": seg.segment,
                "kind": seg.kind,
                "stage": seg.stage,
                "probe": seg.probe,
                "lr": seg.lr,
                "lr_end": seg.lr_end,
                "steps": seg.steps,
                "start_step": start,
                "extra_steps": seg.extra_steps,
                "kept": False,
            }
        )
        start += seg.steps + seg.extra_steps
    rules = {stage: (line.split(":", 1)[0], line) for stage, line in decisions.items()}
    return TunerResults(
        job_id=job_id,
        status="finished" if finished else "running",
        config=dict(config),
        rows=rows,
        stages=stage_summaries(rows, rules),
        name=name,
    )


def stage_summaries(
    rows: Sequence[Mapping[str, Any]], decisions: Mapping[int, tuple[str, str]]
) -> list[StageSummary]:
    """One `StageSummary` per stage of the export ``rows`` (warmup, stage -1, left out)."""
    out = []
    for stage in sorted({int(r["stage"]) for r in rows if int(r["stage"]) >= 0}):
        mine = [r for r in rows if int(r["stage"]) == stage]
        probes = [r for r in mine if r["kind"] == "probe"]
        trained = [r for r in mine if r["kind"] in ("train", "anneal")]
        first = next((r for r in trained if r["kind"] == "train"), None)
        rule, line = decisions.get(stage, ("-", ""))
        out.append(
            StageSummary(
                stage=stage,
                probes=len({r["probe"] for r in probes}),  # a cooldown tail is a 2nd row
                probe_steps=sum(int(r["steps"]) for r in probes),
                train_steps=sum(int(r["steps"]) + int(r["extra_steps"]) for r in trained),
                lr=None if first is None else float(first["lr"]),
                rule=rule,
                decision=line,
            )
        )
    return out


def _decision_line(decision: Mapping[str, Any]) -> str:
    try:
        from autolr.policy import Decision

        return Decision.model_validate(decision).summary()
    except Exception:  # a record from another autolr version: the rule is enough
        return f"{decision.get('rule')}: lr={decision.get('lr')}"


def _job_id(state: Mapping[str, Any]) -> str:
    return str(state.get("job_id") or "local")
