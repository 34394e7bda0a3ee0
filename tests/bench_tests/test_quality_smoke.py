"""Smoke test of the schedule-quality benchmark harness (benchmarks/quality/).

One task with a tiny budget, two baseline families on two grid points, autolr on one seed: the
harness must produce quality.json, quality.md and the PNG with finite numbers, account for every
step of autolr's budget, and skip finished runs when rerun (the per-run cache).
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
    ]
    for r in runs:
        assert r["budget"] == BUDGET
        assert r["final_val"] is not None and math.isfinite(r["final_val"]), r["method"]
        assert r["val_curve"][0][0] == 0 and r["val_curve"][-1][0] == r["steps_run"]
        assert all(v is None or math.isfinite(v) for _, v in r["val_curve"])
        assert r["wall_s"] > 0

    (auto,) = [r for r in runs if r["method"] == "autolr"]
    assert auto["finished"] and auto["steps_run"] == BUDGET
    assert auto["overrides"] == {"probes_per_stage": 4, "min_stages": 2}
    assert sum(s["steps"] for s in auto["schedule"]) == BUDGET  # probes count against the budget
    assert 0 < auto["probe_share"] < 1
    assert auto["schedule"][-1]["kind"] != "probe"  # the run never ends on a probe
    assert auto["min_lr"] < 7.41e-05 and auto["max_lr"] > 0.054  # ≥ 1 decade beyond the grid

    (summary,) = data["summary"]
    assert summary["target"] is not None and math.isfinite(summary["target"])
    assert {row["method"] for row in summary["rows"]} == {"constant", "cosine", "autolr"}

    md = (out / "quality.md").read_text()
    assert "## teacher" in md and "| autolr |" in md and "cosine + warmup" in md
    assert not re.search(r"\bnan\b|\binf\b", md.lower())
    png = out / "quality_teacher.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000

    # rerun: everything comes from the per-run cache, nothing is trained again
    log2 = _run(out, "--no-report")
    assert "5 runs from the cache, 0 to run" in log2, log2
