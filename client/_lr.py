"""Writing one tuned LR into an optimizer with several parameter groups.

The rule (AutoLRS pitfall 7): the tuned value is the LR of the *first* group, and every other
group keeps the ratio to the first group that it had when the tuner was created. A no-decay group
at the same LR follows the tuned LR exactly; layer-wise LRs (say 0.1x for the backbone) keep their
shape. The reference set the same LR on every group, which silently flattened such schedules.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch


class GroupLR:
    """Sets ``lr * ratio[i]`` on group ``i``.

    Args:
        optimizer: the optimizer to drive.
        ratios: ratios from a checkpoint; by default each group's LR divided by the first group's
            (all 1.0 when the first group's LR is 0, which carries no ratio information).
    """

    __slots__ = ("_base", "_groups", "ratios")

    def __init__(
        self, optimizer: torch.optim.Optimizer, ratios: Sequence[float] | None = None
    ) -> None:
        self._groups = optimizer.param_groups
        lrs = [float(g["lr"]) for g in self._groups]
        self._base = lrs[0]
        if ratios is not None:
            self.ratios = [float(r) for r in ratios]
        elif self._base > 0:
            self.ratios = [lr / self._base for lr in lrs]
        else:
            self.ratios = [1.0] * len(lrs)

    def set(self, lr: float) -> None:
        """Write ``lr`` into every group (groups added later get their ratio on first sight)."""
        groups = self._groups
        if len(groups) != len(self.ratios):
            self._extend()
        for group, ratio in zip(groups, self.ratios, strict=True):
            value = lr * ratio
            cur = group["lr"]
            if isinstance(cur, torch.Tensor):  # fused/capturable optimizers allow tensor LRs
                cur.fill_(value)
            else:
                group["lr"] = value

    def _extend(self) -> None:
        base = self._base if self._base > 0 else 1.0
        for group in self._groups[len(self.ratios) :]:
            self.ratios.append(float(group["lr"]) / base if self._base > 0 else 1.0)
        del self.ratios[len(self._groups) :]
