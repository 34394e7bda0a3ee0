"""Small deterministic training setups shared by the client tests."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn

#: A budget the controller accepts that runs in well under a second of training: two or three
#: stages of three probes. Forecasts need about 20 points per probe. All three probes are the
#: searcher's space-filling ones, so no GP is fitted to propose (that costs ~0.5 s a probe on a
#: busy 2-core machine); `GP` below turns proposals on where a test needs them.
SMALL: dict[str, Any] = {
    "min_lr": 1e-3,
    "max_lr": 1.0,
    "total_steps": 400,
    "tau_min": 40,
    "tau_max": 80,
    "probes_per_stage": 3,
    "initial_probes": 3,
    "min_stages": 2,
    "min_probe_steps": 20,
    "loss_source": "train",
    "seed": 3,
    # the paper's stage mechanics, which several tests assert (restore before each train)
    "reuse_best_probe": False,
    "anneal_fraction": 0.0,
    "probe_budget": None,
}
#: `SMALL` with the GP proposing each stage's third probe.
GP: dict[str, Any] = {**SMALL, "initial_probes": 2}


def make_data(seed: int = 0, n: int = 256, d: int = 8) -> tuple[torch.Tensor, torch.Tensor]:
    """A regression problem with a known linear teacher plus noise."""
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d, generator=gen)
    y = x @ torch.randn(d, 1, generator=gen) + 0.1 * torch.randn(n, 1, generator=gen)
    return x, y


def make_model(seed: int = 0, d: int = 8, batchnorm: bool = False) -> nn.Module:
    torch.manual_seed(seed)
    layers: list[nn.Module] = [nn.Linear(d, 16)]
    if batchnorm:
        layers.append(nn.BatchNorm1d(16))
    layers += [nn.Tanh(), nn.Linear(16, 1)]
    return nn.Sequential(*layers)


def batch(
    data: tuple[torch.Tensor, torch.Tensor], step: int, size: int = 32
) -> tuple[torch.Tensor, torch.Tensor]:
    """The mini-batch of global step ``step``: deterministic, so runs can be replayed."""
    x, y = data
    n = x.shape[0] // size
    i = step % n
    return x[i * size : (i + 1) * size], y[i * size : (i + 1) * size]


def train_step(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    data: tuple[torch.Tensor, torch.Tensor],
    step: int,
) -> torch.Tensor:
    """One SGD step on batch ``step``; returns the (attached) loss tensor."""
    xb, yb = batch(data, step)
    loss = nn.functional.mse_loss(model(xb), yb)
    loss.backward()
    optimizer.step()
    optimizer.zero_grad()
    return loss


def params_of(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def assert_same_tensors(a: dict[str, Any], b: dict[str, Any]) -> None:
    """Bit-for-bit equality of two dicts of tensors (NaN-safe)."""
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


def run(
    tuner: Any,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    data: tuple[torch.Tensor, torch.Tensor],
    *,
    start: int = 0,
    stop: int | None = None,
    as_float: bool = False,
    on_step: Callable[[int], None] | None = None,
) -> int:
    """Train until the tuner finishes (or ``stop`` global steps); return the next step index."""
    step = start
    while not tuner.finished and (stop is None or step < stop):
        if on_step is not None:
            on_step(step)  # sees the LR this step will use
        loss = train_step(model, optimizer, data, step)
        tuner.step(loss.item() if as_float else loss)
        step += 1
    return step
