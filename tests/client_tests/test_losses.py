"""A segment's losses are read once, whatever mix of floats and tensors the loop passed."""

from __future__ import annotations

import math

import pytest
import torch

from autolr.client._losses import read_losses, stack_losses


def test_floats_pass_through_unchanged():
    train, val = read_losses([1.0, math.nan, math.inf], [0.5], None)
    assert train[0] == 1.0 and math.isnan(train[1]) and train[2] == math.inf
    assert val == [0.5]


def test_tensors_of_mixed_dtypes_and_floats_are_read_together():
    values = [torch.tensor(1.5), torch.tensor(2.5, dtype=torch.bfloat16), 3.5, torch.tensor([4.5])]
    train, val = read_losses(values, [torch.tensor(0.25)], None)
    assert train == [1.5, 2.5, 3.5, 4.5]
    assert val == [0.25]


def test_non_finite_tensor_losses_are_kept_not_raised():
    train, _ = read_losses([torch.tensor(float("nan")), torch.tensor(float("-inf"))], [], None)
    assert math.isnan(train[0]) and train[1] == -math.inf


def test_a_non_scalar_loss_names_the_fix():
    with pytest.raises(ValueError, match=r"0-dim tensors .*loss\.mean\(\)"):
        read_losses([torch.ones(3), torch.ones(3)], [], None)


def test_compacted_chunks_come_first_and_mix_with_later_floats():
    chunk = stack_losses([torch.tensor(1.0), torch.tensor(2.0)])
    assert chunk.dtype == torch.float64 and chunk.shape == (2,)
    later = stack_losses(
        [3.0, torch.tensor(4.0)]
    )  # floats restored from a checkpoint, then tensors
    train, val = read_losses([5.0], [torch.tensor(0.5)], None, [chunk, later])
    assert train == [1.0, 2.0, 3.0, 4.0, 5.0]
    assert val == [0.5]


def test_a_non_scalar_loss_is_caught_when_the_buffer_is_compacted():
    with pytest.raises(ValueError, match=r"shape\(s\) \[\(2,\)\]"):
        stack_losses([1.0, torch.ones(2)])
