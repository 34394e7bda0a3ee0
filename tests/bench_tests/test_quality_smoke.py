"""Smoke test of the schedule-quality benchmark harness (benchmarks/quality/).

One task with a tiny budget, two baseline families on two grid points, autolr and the paper
preset on one seed: the harness must produce quality.json, quality.md and the PNG with finite
numbers, account for every step of autolr's budget, and skip finished runs when rerun (the
per-run cache). Every task builds and trains a few steps deterministically, and the
tuning/held-out split is the one fixed in tasks.py.
"""

from __future__ import annotations

import json
import math
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
RUN = ROOT / "benchmarks" / "quality" / "run.py"
sys.path.insert(0, str(RUN.parent))
# teacher budget 4000 steps x 0.1 = 400; autolr with 2 stages of 4 probes (its defaults need
# 1100+ steps and 40 GP fits, too slow for a smoke test), which also exercises --autolr-config
BUDGET = 400
ARGS = [
    "--tasks",
    "teacher",
    "--methods",
    "constant,cosine,autolr",
    "--grid-points",
    "2",
    "--seeds",
    "1",
    "--scale",
    "0.1",
    "--autolr-config",
    "probes_per_stage=4",
    "--autolr-config",
    "min_stages=2",
    # the paper preset (TunerConfig.autolrs()) through the same small stage plan
    "--autolr-variant",
    "paper:preset=autolrs,probes_per_stage=4,min_stages=2",
]


def _run(out: Path, *extra: str) -> str:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "MPLBACKEND": "Agg"}
    proc = subprocess.run(
        [sys.executable, str(RUN), *ARGS, "--out", str(out), *extra],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        cwd=ROOT,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc.stdout


@pytest.mark.timeout(180)
def test_quality_harness_smoke(tmp_path: Path) -> None:
    pytest.importorskip("sklearn")
    pytest.importorskip("matplotlib")
    out = tmp_path / "results"
    log = _run(out)
    assert "FAILED" not in log, log

    data = json.loads((out / "quality.json").read_text())
    runs = data["runs"]
    assert sorted((r["method"], r["lr"] is None) for r in runs) == [
        ("autolr", True),
        ("constant", False),
        ("constant", False),
        ("cosine", False),
        ("cosine", False),
        ("paper", True),
    ]
    for r in runs:
        assert r["budget"] == BUDGET
        assert r["final_val"] is not None and math.isfinite(r["final_val"]), r["method"]
        assert r["val_curve"][0][0] == 0 and r["val_curve"][-1][0] == r["steps_run"]
        assert all(v is None or math.isfinite(v) for _, v in r["val_curve"])
        assert r["wall_s"] > 0

    (paper,) = [r for r in runs if r["method"] == "paper"]
    assert paper["preset"] == "autolrs" and paper["finished"]
    assert sum(s["steps"] for s in paper["schedule"]) == BUDGET
    (auto,) = [r for r in runs if r["method"] == "autolr"]
    assert auto["finished"] and auto["steps_run"] == BUDGET
    assert auto["overrides"] == {"probes_per_stage": 4, "min_stages": 2}
    assert sum(s["steps"] for s in auto["schedule"]) == BUDGET  # probes count against the budget
    assert 0 < auto["probe_share"] < 1
    assert auto["schedule"][-1]["kind"] != "probe"  # the run never ends on a probe
    assert auto["min_lr"] < 7.41e-05 and auto["max_lr"] > 0.054  # ≥ 1 decade beyond the grid

    (summary,) = data["summary"]
    assert summary["target"] is not None and math.isfinite(summary["target"])
    assert {row["method"] for row in summary["rows"]} == {"constant", "cosine", "autolr", "paper"}
    (row,) = data["splits"]["tuning"]["rows"]
    assert row["task"] == "teacher" and row["ratio"] > 0 and 0 < row["probe_share"] < 1
    assert data["splits"]["tuning"]["ratio"]["geomean"] == pytest.approx(row["ratio"])
    assert re.search(r"tuning geomean autolr/cosine = \d\.\d{3} \(worst task: teacher", log)

    md = (out / "quality.md").read_text()
    assert "## teacher" in md and "| autolr |" in md and "cosine + warmup" in md
    assert "## Tuning tasks" in md and "Held-out" not in md.split("## Tuning tasks")[1]
    assert not re.search(r"\bnan\b|\binf\b", md.lower())
    png = out / "quality_teacher.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000

    # rerun: everything comes from the per-run cache, nothing is trained again
    log2 = _run(out, "--no-report")
    assert "6 runs from the cache, 0 to run" in log2, log2


def test_split_is_fixed() -> None:
    """Every task in exactly one split, at least half held out, and the split as fixed before
    tuning (moving a task is a change to this test, in review, not a quiet edit)."""
    from tasks import HELD_OUT, SPLITS, TASKS, TUNING, split_of

    assert TUNING == ("digits", "teacher", "charlm", "nqm")
    assert HELD_OUT == ("noisyreg", "bnnet", "logreg", "overfit", "continued", "largebatch")
    assert sorted(TUNING + HELD_OUT) == sorted(TASKS)
    assert not set(TUNING) & set(HELD_OUT)
    assert 2 * len(HELD_OUT) >= len(TASKS)
    assert set(SPLITS) == {"tuning", "held-out"}
    assert all(split_of(t) in SPLITS for t in TASKS)


@pytest.mark.timeout(120)
@pytest.mark.parametrize(
    "name", ["nqm", "noisyreg", "bnnet", "logreg", "overfit", "continued", "largebatch"]
)
def test_task_builds_and_trains(name: str) -> None:
    """make(seed) builds; a few steps run with finite losses, the same under the same seed."""
    pytest.importorskip("sklearn")
    import torch
    from tasks import TASKS

    torch.set_num_threads(1)
    task = TASKS[name]
    grid = task.grid()
    assert len(grid) == 7 and grid == sorted(grid)
    lo, hi = task.autolr_range()
    assert lo < grid[0] and hi >= grid[-1]

    def train(seed: int, schedulefree: bool = False) -> list[float]:
        setup = task.make(seed)
        opt = setup.optimizer(task.lr_center, schedulefree=schedulefree, warmup_steps=2)
        if schedulefree:
            opt.train()
        out = [setup.val_loss(setup.model)]
        for _ in range(5):
            loss = setup.loss(setup.model, next(setup.batches))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            out.append(float(loss.detach()))
        if schedulefree:
            opt.eval()
        out.append(setup.val_loss(setup.model))
        return out

    a = train(1)
    assert all(math.isfinite(v) for v in a), a
    assert train(1) == a  # deterministic under a seed
    assert train(2) != a  # the seed matters
    assert all(math.isfinite(v) for v in train(0, schedulefree=True))
