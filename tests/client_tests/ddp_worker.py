"""One rank of the data-parallel test (run by test_ddp.py as a subprocess, gloo backend).

Usage: python ddp_worker.py RANK WORLD_SIZE INIT_FILE OUT_FILE
"""

from __future__ import annotations

import sys

import torch
import torch.distributed as dist
from client_helpers import SMALL, batch, make_data, make_model

from autolr.client import AutoLR


def main(rank: int, world: int, init_file: str, out: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    model = torch.nn.parallel.DistributedDataParallel(make_model(seed=0))
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    data = make_data(n=512)
    tuner = AutoLR(model, opt, **SMALL)
    local: list[float] = []
    step = 0
    while not tuner.finished:
        xb, yb = batch(data, step * world + rank)  # each rank trains on its own shard
        loss = torch.nn.functional.mse_loss(model(xb), yb)
        loss.backward()
        opt.step()
        opt.zero_grad()
        local.append(loss.item())  # for the test's check only; the tuner never syncs per step
        tuner.step(loss)
        step += 1
    result = {
        "schedule": [s.to_dict() for s in tuner.schedule],
        "params": {k: v.detach().clone() for k, v in model.module.state_dict().items()},
        "job_id": tuner.job_id,
        "has_transport": tuner.transport is not None,
        "local": local,
        "reported": None,
        "steps": step,
    }
    if tuner.transport is not None:
        result["reported"] = [r.losses for r in tuner.transport.controller.segments]
    torch.save(result, out)
    tuner.close()
    dist.barrier()
    dist.destroy_process_group()


if __name__ == "__main__":
    main(int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4])
