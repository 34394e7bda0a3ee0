"""`ReplaySchedule`: a tuned schedule, replayed step for step by a plain PyTorch scheduler.

AutoLRS spends part of the budget searching. Once a job has found its schedule, later runs
(another seed, a longer run for the paper's table, a colleague reproducing the result) can
replay that schedule with no service, no controller, no snapshots and no probe steps:
``autolr export JOB --format csv`` writes it, and this scheduler reads it back.
"""

from __future__ import annotations

import bisect
import csv
import json
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch.optim.lr_scheduler import LRScheduler

from autolr.client._results import TunerResults
from autolr.protocol import Instruction

_KINDS = frozenset({"warmup", "probe", "train", "anneal", "branch"})
_TRUE = frozenset({"1", "true", "yes"})

Schedule = (
    str
    | os.PathLike[str]
    | TunerResults
    | Mapping[str, Any]
    | Sequence[Mapping[str, Any]]
    | Sequence[Any]
)


class ReplaySchedule(LRScheduler):
    """Replays an exported autolr schedule: the LR of every step, exactly as the tuner set it.

    Call ``scheduler.step()`` after each ``optimizer.step()``, as with any PyTorch scheduler.
    Step k gets the LR the tuner gave step k of the replayed segments: constant segments
    their LR, warmup and anneal ramps the same linear interpolation (`Instruction.lr_at`), and
    steps trained while the client could not reach the server (``extra_steps``) the segment's
    last LR. After the schedule's last step the last LR holds.

    Why probes are skipped by default: a probe is a trial. It trains from the stage snapshot
    for τ' steps, and the next probe or the stage's training restores that snapshot, so the
    final model never saw a probe's steps. Replaying only warmup, train and anneal segments
    gives the history the final model was trained with, and a run of that many steps. The one
    exception is a probe marked ``kept`` in an export: with ``reuse_best_probe`` the stage's
    training continues from the best probe's end state instead of repeating its steps, so
    those steps are part of the history and are replayed. `AutoLR.schedule` carries no such
    mark; replay the export (``autolr export``) of jobs that reuse probes.
    ``include_probes=True`` replays every segment in order instead: the LR trace of the job
    as it ran (what the dashboard's LR chart shows), not a training history. Cooldown
    branches (kind ``branch``, `AutoLR.cooldown`) are always skipped: they trained a copy.

    Param groups: the replayed value is the LR of the first group; every other group keeps
    the ratio to the first group it had when the scheduler was created, as under `AutoLR`
    (so create the optimizer with the same per-group LRs as the tuned run).

    Args:
        optimizer: the optimizer to drive.
        schedule: a path to ``autolr export``'s JSON or CSV; the JSON document itself (a
            mapping with ``schedule``); an embedded run's `AutoLR.results` (`TunerResults`,
            the same rows, ``kept`` marks included); or a sequence of segments, each a mapping or an object
            with ``kind``, ``lr``, ``lr_end`` and ``steps`` (optionally ``extra_steps`` and
            ``kept``), such as `AutoLR.schedule`.
        last_epoch: the index of the last step taken, to resume; -1 starts afresh.
        include_probes: replay probe segments too (see above).

    Raises:
        ValueError: a segment with an unknown kind, a non-positive LR or negative steps, or no
            segment left to replay.

    Example:
        >>> model = torch.nn.Linear(2, 1)
        >>> opt = torch.optim.SGD(model.parameters(), lr=0.1)
        >>> rows = [{"kind": "warmup", "lr": 0.01, "lr_end": 0.1, "steps": 3},
        ...         {"kind": "probe", "lr": 1.0, "lr_end": 1.0, "steps": 2},
        ...         {"kind": "train", "lr": 0.1, "lr_end": 0.1, "steps": 2}]
        >>> sched = ReplaySchedule(opt, rows)
        >>> lrs = []
        >>> for _ in range(5):
        ...     lrs.append(round(opt.param_groups[0]["lr"], 4))
        ...     opt.step()
        ...     sched.step()
        >>> lrs
        [0.01, 0.055, 0.1, 0.1, 0.1]
    """

    def __init__(
        self,
        optimizer: torch.optim.Optimizer,
        schedule: Schedule,
        last_epoch: int = -1,
        *,
        include_probes: bool = False,
    ) -> None:
        segments = [
            seg
            for seg in _segments(_rows(schedule))
            if _ran_in_line(seg) and (include_probes or _replayed(seg))
        ]
        if not segments:
            raise ValueError(
                "the schedule has no segment to replay (only probes, which are skipped "
                "unless include_probes=True, or no segment at all)"
            )
        self._segments: list[tuple[Instruction, int]] = [
            (inst, extra) for inst, extra, _kept in segments
        ]
        self._starts: list[int] = []
        total = 0
        for inst, extra in self._segments:
            self._starts.append(total)
            total += inst.steps + extra
        self.total_steps = total
        super().__init__(optimizer, last_epoch)

    def lr_at(self, step: int) -> float:
        """The first group's LR at ``step`` (0-based) of the replay."""
        step = max(step, 0)
        i = max(0, bisect.bisect_right(self._starts, step) - 1)
        inst, _extra = self._segments[i]
        local = step - self._starts[i]
        if local >= inst.steps:  # extra steps, or past the end: the segment's last LR held
            return inst.lr_at(inst.steps - 1)
        return inst.lr_at(local)

    def get_lr(self) -> list[float | torch.Tensor]:
        """LRs of every param group for the current step (``last_epoch``)."""
        lr = self.lr_at(self.last_epoch)
        bases = [float(base) for base in self.base_lrs]
        first = bases[0]
        # the same arithmetic as AutoLR (client/_lr.py): lr * (group lr / first group's lr)
        return [lr * (base / first if first > 0 else 1.0) for base in bases]

    def _get_closed_form_lr(self) -> list[float | torch.Tensor]:
        return self.get_lr()

    def state_dict(self) -> dict[str, Any]:
        """The scheduler's position; the schedule itself comes from the constructor (as with
        ``LambdaLR``), so a checkpoint holds plain numbers that ``weights_only`` loads."""
        return {
            key: value
            for key, value in super().state_dict().items()
            if key not in {"_segments", "_starts", "total_steps"}
        }


def _replayed(segment: tuple[Instruction, int, bool]) -> bool:
    inst, _extra, kept = segment
    return inst.kind != "probe" or kept


def _ran_in_line(segment: tuple[Instruction, int, bool]) -> bool:
    """Not a cooldown branch: it ran inside another segment from a copy, and even the LR
    trace (``include_probes``) draws the main run, whose steps went on around it."""
    return segment[0].kind != "branch"


def _rows(schedule: Schedule) -> Iterable[Any]:
    """The segment rows of any accepted form of ``schedule``."""
    document: Any = schedule
    if isinstance(schedule, TunerResults):
        return list(schedule.rows)
    if isinstance(schedule, str | os.PathLike):
        path = Path(schedule)
        with path.open(newline="", encoding="utf-8") as stream:
            if path.suffix.lower() == ".csv":
                return list(csv.DictReader(stream))
            document = json.load(stream)
    if isinstance(document, Mapping):
        if "schedule" not in document:
            raise ValueError(
                "a schedule mapping must hold the segments under 'schedule' (the document "
                "`autolr export --format json` writes)"
            )
        return list(document["schedule"])
    return list(document)


def _field(row: Any, name: str, default: Any = None) -> Any:
    value = row.get(name, default) if isinstance(row, Mapping) else getattr(row, name, default)
    return default if value in ("", None) else value


def _segments(rows: Iterable[Any]) -> list[tuple[Instruction, int, bool]]:
    """Each row as (its instruction, its extra steps, whether it is a kept probe)."""
    out = []
    for i, row in enumerate(rows):
        kind = str(_field(row, "kind"))
        if kind not in _KINDS:
            raise ValueError(
                f"segment {i}: kind={kind!r} is not one of {sorted(_KINDS)} (is this an "
                "autolr export?)"
            )
        try:
            inst = Instruction(
                segment=i,
                kind=kind,  # checked above
                lr=float(_field(row, "lr")),
                lr_end=float(_field(row, "lr_end", _field(row, "lr"))),
                steps=int(_field(row, "steps")),
            )
            extra = int(_field(row, "extra_steps", 0))
        except (TypeError, ValueError) as exc:
            raise ValueError(
                f"segment {i}: needs lr > 0, lr_end > 0 and steps >= 0 ({exc})"
            ) from None
        if extra < 0:
            raise ValueError(f"segment {i}: extra_steps={extra} must be >= 0")
        kept = str(_field(row, "kept", False)).strip().lower() in _TRUE
        out.append((inst, extra, kept))
    return out
