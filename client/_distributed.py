"""Data-parallel coordination: one job per training run, however many ranks train it.

With ``torch.distributed`` initialized and more than one rank, only rank 0 talks to the
controller; it broadcasts each instruction to the others, and every segment's losses are averaged
across ranks in one ``all_reduce`` at the segment boundary, so the controller sees the same
numbers a single-process run would log. Between boundaries there is no communication at all.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch


@dataclass(frozen=True)
class Group:
    """The default process group as the tuner sees it.

    Attributes:
        rank: this process's rank.
        world_size: number of ranks (> 1).
        device: where collective tensors must live (CUDA for NCCL, CPU otherwise).
    """

    rank: int
    world_size: int
    device: torch.device

    @property
    def leader(self) -> bool:
        """Whether this rank talks to the controller."""
        return self.rank == 0

    def broadcast(self, obj: Any) -> Any:
        """Rank 0's ``obj`` on every rank (a pickled object broadcast)."""
        import torch.distributed as dist

        box = [obj if self.leader else None]
        dist.broadcast_object_list(box, src=0, device=self.device if self._nccl else None)
        return box[0]

    def mean(self, values: torch.Tensor) -> torch.Tensor:
        """Elementwise mean of ``values`` over ranks (one all_reduce; float64)."""
        import torch.distributed as dist

        t = values.to(self.device, torch.float64)
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
        return t / self.world_size

    @property
    def _nccl(self) -> bool:
        return self.device.type != "cpu"


def current_group() -> Group | None:
    """The default process group when data-parallel training is on, else None."""
    if not torch.distributed.is_available():
        return None
    import torch.distributed as dist

    if not dist.is_initialized() or dist.get_world_size() <= 1:
        return None
    backend = str(dist.get_backend()).lower()
    if "nccl" in backend and torch.cuda.is_available():
        device = torch.device("cuda", torch.cuda.current_device())
    else:
        device = torch.device("cpu")
    return Group(rank=dist.get_rank(), world_size=dist.get_world_size(), device=device)
