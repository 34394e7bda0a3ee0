"""One rank of the FSDP2 test (run by test_fsdp.py as a subprocess, gloo backend, CPU).

Usage: python fsdp_worker.py RANK WORLD_SIZE INIT_FILE OUT_FILE
"""

from __future__ import annotations

import sys

import torch
import torch.distributed as dist
from client_helpers import SMALL, batch, make_data, make_model
from torch.distributed.fsdp import fully_shard

from autolr.client import AutoLR


def _shards(model: torch.nn.Module) -> list[torch.Tensor]:
    """This rank's shard of every parameter (FSDP2 parameters are DTensors)."""
    return [p.to_local().detach().clone() for p in model.parameters()]


def main(rank: int, world: int, init_file: str, out: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    model = make_model(seed=0)
    for layer in model:
        if isinstance(layer, torch.nn.Linear):
            fully_shard(layer)
    fully_shard(model)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    data = make_data(n=512)
    tuner = AutoLR(model, opt, progress=False, **SMALL)
    snapshot: list[torch.Tensor] | None = None
    restores = mismatches = 0
    step = 0
    while not tuner.finished:
        inst = tuner.instruction
        if inst is not None and tuner.segment_step == 0:
            if inst.snapshot:
                snapshot = _shards(model)
            elif inst.restore and snapshot is not None:  # the stage snapshot came back
                restores += 1
                now = _shards(model)
                mismatches += sum(not torch.equal(a, b) for a, b in zip(now, snapshot, strict=True))
        xb, yb = batch(data, step * world + rank)  # each rank trains on its own shard
        loss = torch.nn.functional.mse_loss(model(xb), yb)
        loss.backward()
        opt.step()
        opt.zero_grad()
        tuner.step(loss)
        step += 1
    result = {
        "schedule": [s.to_dict() for s in tuner.schedule],
        "steps": step,
        "restores": restores,
        "mismatches": mismatches,
        "finite": all(torch.isfinite(t).all().item() for t in _shards(model)),
    }
    torch.save(result, out)
    tuner.close()
    dist.barrier()
    dist.destroy_process_group()


if __name__ == "__main__":
    main(int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4])
