"""Turning a segment's buffered losses into floats with one device sync.

``tuner.step(loss)`` only appends the detached loss tensor: ``.item()`` per step would force a
device sync every step (nanoGPT's lesson). At the segment boundary the buffer is stacked and read
with a single ``.tolist()``; under data parallelism it is averaged across ranks in the same
single collective.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from autolr.client._distributed import Group

Loss = float | torch.Tensor


def _stack(values: Sequence[Loss], what: str) -> torch.Tensor:
    """One 1-D float64 tensor from floats and 0-dim (or one-element) tensors."""
    tensors = [v for v in values if isinstance(v, torch.Tensor)]
    if not tensors:
        return torch.tensor(values, dtype=torch.float64)
    device = tensors[0].device
    try:
        if len(tensors) == len(values) and all(t.dtype == tensors[0].dtype for t in tensors):
            joined = torch.stack(tensors)  # the common case: one kernel, no conversion
        else:  # floats among tensors (e.g. after a resume), or mixed dtypes
            joined = torch.cat(
                [
                    v.reshape(-1).to(device, torch.float64)
                    if isinstance(v, torch.Tensor)
                    else torch.tensor([v], dtype=torch.float64, device=device)
                    for v in values
                ]
            )
    except RuntimeError:
        joined = None  # tensors of different shapes
    if joined is None or joined.numel() != len(values):
        shapes = sorted({tuple(t.shape) for t in tensors})
        raise ValueError(
            f"{what} must be floats or 0-dim tensors (one value per step), got tensors of "
            f"shape(s) {shapes}; reduce the loss to a scalar (e.g. loss.mean()) first"
        )
    return joined.reshape(-1).to(torch.float64)


def stack_losses(values: Sequence[Loss]) -> torch.Tensor:
    """A run of per-step losses as one 1-D float64 tensor, without reading it (no sync).

    The tuner compacts its buffer with this every `CHUNK_STEPS` steps: a list of thousands of
    0-dim tensors costs a Python object each, which the cyclic garbage collector keeps
    traversing (measured: it triples the per-step cost over a long segment).
    """
    return _stack(values, "losses passed to step()")


def read_losses(
    train: Sequence[Loss],
    val: Sequence[Loss],
    group: Group | None,
    chunks: Sequence[torch.Tensor] = (),
) -> tuple[list[float], list[float]]:
    """Floats for the train and validation losses; rank means when ``group`` is given.

    Args:
        train: the segment's latest losses (floats or 0-dim tensors).
        val: its validation losses.
        group: the data-parallel group, or None.
        chunks: earlier train losses already compacted by `stack_losses` (they come first).
    """
    if not chunks and (
        (not train and not val)
        or (
            group is None
            and all(type(v) is float for v in train)
            and all(type(v) is float for v in val)
        )
    ):
        return [float(v) for v in train], [float(v) for v in val]  # floats: nothing to read
    parts = list(chunks)
    if train:
        parts.append(_stack(train, "losses passed to step()"))
    n_train = sum(p.numel() for p in parts)
    if val:
        parts.append(_stack(val, "values returned by val_fn"))
    device = parts[0].device
    joined = torch.cat([p.to(device) for p in parts])
    if group is not None:
        joined = group.mean(joined)
    values: list[float] = joined.tolist()  # the segment's one device sync
    return values[:n_train], values[n_train:]
