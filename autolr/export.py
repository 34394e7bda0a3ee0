"""The export format of a job's schedule: one row per finished segment, as JSON rows or CSV.

``autolr export`` (`autolr.cli.jobs`) writes it from a server's job record, `TunerResults`
from the embedded controller's record, and `autolr.client.ReplaySchedule` reads it back. It is
a pure function of a job record (``Controller.record()`` or ``GET /v1/jobs/{id}``, which
hold ``segments`` and ``stages`` in the same shape), so it lives in the core, where every
shell can import it without loading another.
"""

from __future__ import annotations

import csv
from collections.abc import Mapping, Sequence
from typing import IO, Any

__all__ = ["EXPORT_COLUMNS", "schedule_rows", "write_csv"]

#: Columns of an exported schedule. ``steps`` counts the steps run; ``extra_steps`` the steps
#: trained after the segment at its last LR while the client could not reach the server;
#: ``kept`` marks a probe segment whose end state the stage's training continued from
#: (``reuse_best_probe``; with the "final" objective the probe's constant part, never its
#: cooldown tail), so its steps are part of the final model's history.
EXPORT_COLUMNS = (
    "segment",
    "kind",
    "stage",
    "probe",
    "lr",
    "lr_end",
    "steps",
    "start_step",
    "extra_steps",
    "kept",
)


def schedule_rows(job: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The export rows of a job: one dict per finished segment, keys `EXPORT_COLUMNS`.

    Args:
        job: ``GET /v1/jobs/{id}``'s answer, or `autolr.Controller.record()` (both carry
            ``segments`` and ``stages`` in the same shape).
    """
    reused = {s["stage"]: s.get("reused_probe") for s in job.get("stages", [])}
    branches: dict[int, list[Mapping[str, Any]]] = {}
    for branch in job.get("branches", []):
        branches.setdefault(branch["instruction"]["segment"], []).append(branch)
    rows = []
    for record in job["segments"]:
        inst = record["instruction"]
        probe = inst.get("probe")
        # the reused probe's constant part; its cooldown tail (lr_end < lr) was a trial only
        kept = (
            inst["kind"] == "probe"
            and probe is not None
            and reused.get(inst["stage"]) == probe
            and inst["lr_end"] == inst["lr"]
        )
        rows.append(_row(record, kept))
        # a cooldown branch ran inside its segment: listed after it (replays skip it)
        rows += [_row(b, False) for b in branches.get(inst["segment"], [])]
    return rows


def _row(record: Mapping[str, Any], kept: bool) -> dict[str, Any]:
    """One export row of a segment (or branch) record."""
    inst = record["instruction"]
    return {
        "segment": inst["segment"],
        "kind": inst["kind"],
        "stage": inst["stage"],
        "probe": inst.get("probe"),
        "lr": inst["lr"],
        "lr_end": inst["lr_end"],
        "steps": record["steps_run"],
        "start_step": record["start_step"],
        "extra_steps": record.get("extra_steps", 0),
        "kept": kept,
    }


def write_csv(rows: Sequence[Mapping[str, Any]], out: IO[str]) -> None:
    """Rows as CSV with a header. Floats keep every digit (``repr``), so replays are exact."""
    writer = csv.DictWriter(out, fieldnames=EXPORT_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow(
            {
                **row,
                "probe": "" if row["probe"] is None else row["probe"],
                "lr": repr(float(row["lr"])),
                "lr_end": repr(float(row["lr_end"])),
                "kept": int(bool(row["kept"])),
            }
        )
