"""Calling the user's validation function without disturbing training.

The model is put in eval mode and gradients are off while ``val_fn`` runs; afterwards every
module's own ``training`` flag is put back as it was. Restoring flags per module (rather than
calling ``model.train()``) matters for models that keep parts frozen in eval mode, such as a
backbone with frozen batch-norm statistics: ``model.train()`` would silently unfreeze them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

ValFn = Callable[[], Any]


def evaluate(model: torch.nn.Module, val_fn: ValFn) -> float | torch.Tensor:
    """Run ``val_fn`` in eval mode under ``torch.no_grad()``; return its loss unsynchronized.

    Returns:
        A detached tensor (read later, with the segment's other losses) or a float.
    """
    flags = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        with torch.no_grad():
            value = val_fn()
    finally:
        for module, training in flags:
            module.training = training
    if isinstance(value, torch.Tensor):
        return value.detach()
    return float(value)
