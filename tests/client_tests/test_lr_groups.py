"""One tuned LR drives several param groups, each keeping its initial ratio to the first."""

from __future__ import annotations

import pytest
import torch

from autolr.client._lr import GroupLR


def _optimizer(lrs, tensor_lr=False):
    params = [torch.nn.Parameter(torch.zeros(2)) for _ in lrs]
    groups = [
        {"params": [p], "lr": torch.tensor(lr) if tensor_lr else lr}
        for p, lr in zip(params, lrs, strict=True)
    ]
    return torch.optim.Adam(groups, lr=1.0)


def test_groups_keep_their_initial_ratio_to_the_first_group():
    opt = _optimizer([0.1, 0.01, 0.0])
    GroupLR(opt).set(0.5)
    assert [g["lr"] for g in opt.param_groups] == pytest.approx([0.5, 0.05, 0.0])


def test_a_group_added_later_gets_its_ratio_on_first_sight():
    opt = _optimizer([0.2])
    lrs = GroupLR(opt)
    opt.add_param_group({"params": [torch.nn.Parameter(torch.zeros(1))], "lr": 0.02})
    lrs.set(1.0)
    assert [g["lr"] for g in opt.param_groups] == pytest.approx([1.0, 0.1])


def test_tensor_learning_rates_are_filled_in_place():
    opt = _optimizer([0.1, 0.05], tensor_lr=True)
    before = opt.param_groups[1]["lr"]
    GroupLR(opt).set(0.3)
    assert opt.param_groups[1]["lr"] is before
    assert float(before) == pytest.approx(0.15)
