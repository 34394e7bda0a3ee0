"""FSDP2 (``fully_shard``) with two gloo ranks on CPU: the tuner snapshots and restores each
rank's shards, both ranks run the same schedule, and both processes exit cleanly (issue 17
saw aborts at exit)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from client_helpers import SMALL

WORKER = Path(__file__).with_name("fsdp_worker.py")

pytestmark = pytest.mark.skipif(
    not torch.distributed.is_available(), reason="this torch build has no torch.distributed"
)


def test_two_fsdp_ranks_run_one_job_and_exit_cleanly(tmp_path):
    world = 2
    init = tmp_path / "init"
    outs = [tmp_path / f"rank{r}.pt" for r in range(world)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    procs = [
        subprocess.Popen(
            [sys.executable, str(WORKER), str(r), str(world), str(init), str(outs[r])],
            cwd=WORKER.parent,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for r in range(world)
    ]
    logs = []
    for p in procs:
        try:
            logs.append(p.communicate(timeout=240)[0])
        except subprocess.TimeoutExpired:
            for q in procs:
                q.kill()
            pytest.fail("an FSDP rank hung")
    assert [p.returncode for p in procs] == [0, 0], "\n".join(logs)

    r0, r1 = (torch.load(o) for o in outs)
    assert r0["schedule"] == r1["schedule"]
    assert r0["steps"] == r1["steps"] == SMALL["total_steps"]
    assert r0["restores"] > 0 and r1["restores"] > 0
    assert r0["mismatches"] == r1["mismatches"] == 0  # every restore brought the shards back
    assert r0["finite"] and r1["finite"]
