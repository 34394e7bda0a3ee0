"""The demo runs end to end on a tiny budget: stage lines, a summary and the PNG."""

from __future__ import annotations

import math

from autolr.client import demo


def test_demo_prints_stages_and_a_summary_and_writes_the_plot(tmp_path, capsys):
    out = tmp_path / "schedule.png"
    summary = demo.main(["--out", str(out), "--steps", "700", "--probes", "3"])
    printed = capsys.readouterr().out.splitlines()
    stage_lines = [line for line in printed if line.startswith("stage ")]
    # one line per stage, plus one per train segment that diverged and was rolled back
    kept = [line for line in stage_lines if "rolled back" not in line]
    assert len(kept) == summary["stages"] >= 2
    for line in stage_lines:
        assert "tau=" in line and "probes [" in line and "chosen lr=" in line
        # at most --probes per stage; later stages get what probe_budget leaves
        assert "val loss=" in line and line.count("->") <= 3
    assert stage_lines[0].count("->") == 3
    assert printed[-1].startswith("final: val loss ")
    assert "probing" in printed[-1] and str(out) in printed[-1]
    assert summary["total_steps"] == 700
    assert 0 < summary["probe_steps"] < 700
    assert math.isfinite(summary["val_loss"]) and summary["val_accuracy"] > 0.2
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
