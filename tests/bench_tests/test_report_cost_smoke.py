"""Smoke test of the per-report cost benchmark (benchmarks/report_cost.py).

A short open-ended job on SQLite, measured at two points: the run must finish, print the ratio
and write the figures; the stored state must not grow with the job while what format 1 held
does (the latency verdict is the benchmark's, not this test's: a busy machine moves it).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "benchmarks" / "report_cost.py"


@pytest.mark.timeout(180)
def test_report_cost_smoke(tmp_path: Path) -> None:
    out = tmp_path / "report_cost.json"
    proc = subprocess.run(
        [
            sys.executable,
            str(SCRIPT),
            "--points",
            "10,80",
            "--window",
            "7",
            "--repeats",
            "2",
            "--backends",
            "sqlite",
            "--json",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=170,
        cwd=ROOT,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "ratio segment 80 / segment 10" in proc.stdout, proc.stdout
    [result] = json.loads(out.read_text())["results"]
    first, last = result["points"]
    assert first["segment"] == 10 and last["segment"] == 80
    assert all(len(p["repeat_medians_ms"]) == 2 and p["median_ms"] > 0 for p in (first, last))
    assert last["state_bytes"] < 1.5 * first["state_bytes"]
    assert last["format1_state_bytes"] > 4 * first["format1_state_bytes"]
