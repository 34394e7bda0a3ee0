"""The one rule for a report sent again (`autolr.protocol.report_difference`): the service
answers or refuses a resent report by it, the client compares its record with the service's."""

from __future__ import annotations

import math

import pytest

from autolr.protocol import Branch, Report, report_difference

BASE = Report(segment=3, kind="probe", train_losses=[1.0, math.nan, 0.5], val_losses=[(2, 0.7)])


@pytest.mark.parametrize(
    ("change", "what"),
    [
        ({"train_losses": [1.0, math.nan, 0.4]}, "train_losses differ at 1 of 3 steps"),
        ({"train_losses": [1.0, math.nan]}, "2 train_losses, recorded 3"),
        ({"train_losses": [1.0, math.inf, 0.5]}, "first at index 1: recorded nan, sent inf"),
        ({"val_losses": [(2, 0.8)]}, "val_losses differ"),
        ({"val_losses": [(3, 0.7)]}, "val_losses differ"),
        ({"kind": "train"}, "kind='train', recorded 'probe'"),
        ({"total_steps": 900}, "total_steps=900, recorded None"),
        ({"branches": [Branch(at=1, steps=2, lr=0.1, lr_end=0.01)]}, "branches differ"),
    ],
)
def test_a_difference_in_content_is_named(change: dict[str, object], what: str) -> None:
    found = report_difference(BASE, BASE.model_copy(update=change))
    assert found is not None and what in found


@pytest.mark.parametrize(
    "change",
    [
        {},
        {"extra_steps": 5},  # the caller's business: the service merges, the client compares
        {"kind": None},  # an older client names no kind
        {"train_losses": [1.0, math.nan, 0.5]},  # NaN equals NaN
    ],
)
def test_what_the_rule_leaves_out_is_no_difference(change: dict[str, object]) -> None:
    assert report_difference(BASE, BASE.model_copy(update=change)) is None
