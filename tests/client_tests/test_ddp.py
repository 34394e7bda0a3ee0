"""Two data-parallel ranks (gloo) run one job and end with identical schedules and weights."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from client_helpers import SMALL, assert_same_tensors

WORKER = Path(__file__).with_name("ddp_worker.py")


def test_two_ranks_share_one_job_and_end_identical(tmp_path):
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
            pytest.fail("a DDP rank hung")
    assert [p.returncode for p in procs] == [0, 0], "\n".join(logs)

    r0, r1 = (torch.load(o, weights_only=False) for o in outs)
    assert r0["has_transport"] and not r1["has_transport"]  # only rank 0 talks: one job
    assert r0["job_id"] == r1["job_id"] == "local"
    assert r0["schedule"] == r1["schedule"]
    assert r0["steps"] == r1["steps"] == SMALL["total_steps"]
    assert_same_tensors(r0["params"], r1["params"])
    assert r0["local"] != r1["local"]  # the shards differ, so averaging matters
    # the controller saw each step's loss averaged over the two ranks
    first = r0["schedule"][0]["steps"]
    mean = [(a + b) / 2 for a, b in zip(r0["local"][:first], r1["local"][:first], strict=True)]
    assert r0["reported"][0] == pytest.approx(mean, rel=1e-6)
