"""`AutoLR.load_state_dict` checks everything before it changes anything (issue 16).

A corrupted checkpoint used to be taken piecewise: lr=NaN turned the weights NaN, mode=99
never finished, a snapshot of another architecture crashed 9 steps later. Each now is a
ValueError naming what is wrong, and the tuner is left exactly as it was.
"""

from __future__ import annotations

import copy
import math
import re
from collections.abc import Callable
from typing import Any

import pytest
import torch
from client_helpers import SMALL, make_data, make_model, params_of, run

from autolr.client import AutoLR


def _tuner(**kw: Any) -> tuple[AutoLR, torch.nn.Module, torch.optim.Optimizer]:
    model = make_model()
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    return AutoLR(model, opt, **{**SMALL, **kw}), model, opt


@pytest.fixture(scope="module")
def saved() -> dict[str, Any]:
    """A checkpoint taken mid-probe of stage 1 (snapshot taken, Adam state present)."""
    tuner, model, opt = _tuner()
    run(tuner, model, opt, make_data(), stop=150)
    return tuner.state_dict()


def _other_architecture(state: dict[str, Any]) -> None:
    wide = torch.nn.Sequential(torch.nn.Linear(8, 32), torch.nn.Tanh(), torch.nn.Linear(32, 1))
    other = AutoLR(wide, torch.optim.Adam(wide.parameters(), lr=1e-2), **SMALL)
    run(other, wide, other._optimizer, make_data(), stop=150)
    state["snapshot"] = other.state_dict()["snapshot"]


def _set(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def change(state: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        target: Any = state
        for key in parents:
            target = target[int(key)] if isinstance(target, list) else target[key]
        if isinstance(target, list):
            target[int(last)] = value
        else:
            target[last] = value

    return change


def _drop_param(state: dict[str, Any]) -> None:
    state["snapshot"]["model"].pop(next(iter(state["snapshot"]["model"])))


def _shrink_moment(state: dict[str, Any]) -> None:
    entry = state["snapshot"]["state"][0]
    entry["exp_avg"] = entry["exp_avg"][:1]


CORRUPTIONS = {
    "lr NaN": (_set("lr", math.nan), "lr=nan"),
    "instruction lr inf": (_set("instruction.lr", math.inf), "LRs must be finite"),
    "mode 99": (_set("mode", 99), "mode=99"),
    "pos past the segment": (_set("pos", 10_000), "pos=10000"),
    "another architecture": (_other_architecture, "snapshot: 0.weight is (32, 8)"),
    "a parameter missing": (_drop_param, "not the model's"),
    "an optimizer moment reshaped": (_shrink_moment, "optimizer state 'exp_avg' of parameter 0"),
    "a snapshot group lr NaN": (_set("snapshot.groups.0.lr", math.nan), "not a finite number"),
    "lr ratios of two groups": (_set("lr_ratios", [1.0, 1.0]), "lr_ratios"),
    "a malformed schedule": (_set("schedule.0.kind", "explode"), "schedule[0]"),
    "a controller that is not one": (_set("transport.controller", {"x": 1}), "controller"),
    "losses not numbers": (_set("losses", ["a"]), "losses must hold numbers"),
    "format 7": (_set("format", 7), "format 7"),
    "no config": (lambda s: s.pop("config"), "lacks config"),
    "bad config": (_set("config.min_lr", -1.0), "config"),
}


@pytest.mark.parametrize("name", list(CORRUPTIONS))
def test_a_corrupted_state_is_refused_whole_and_changes_nothing(
    saved: dict[str, Any], name: str
) -> None:
    corrupt, message = CORRUPTIONS[name]
    state = copy.deepcopy(saved)
    corrupt(state)
    tuner, model, opt = _tuner()
    run(tuner, model, opt, make_data(), stop=30)
    before = (
        tuner.lr,
        tuner.instruction,
        tuner.segment_step,
        tuner.schedule,
        opt.param_groups[0]["lr"],
        params_of(model),
    )
    snapshot = tuner._snapshot.state_dict()
    with pytest.raises(ValueError, match=re.escape(message)):
        tuner.load_state_dict(state)
    after = (
        tuner.lr,
        tuner.instruction,
        tuner.segment_step,
        tuner.schedule,
        opt.param_groups[0]["lr"],
        params_of(model),
    )
    assert after[:5] == before[:5]
    assert all(torch.equal(after[5][k], before[5][k]) for k in before[5])
    now = tuner._snapshot.state_dict()
    assert all(torch.equal(now["model"][k], snapshot["model"][k]) for k in snapshot["model"])
    run(tuner, model, opt, make_data(), start=30)  # and it trains on to its budget
    assert tuner.finished and tuner.steps_run == SMALL["total_steps"]


def test_the_intact_state_loads(saved: dict[str, Any]) -> None:
    tuner, _, _ = _tuner()
    tuner.load_state_dict(copy.deepcopy(saved))
    assert tuner.segment_step == saved["pos"] and tuner.lr == saved["lr"]


def test_resume_with_a_corrupted_state_raises_before_anything_starts(
    saved: dict[str, Any],
) -> None:
    state = copy.deepcopy(saved)
    state["lr"] = math.nan
    model = make_model()
    with pytest.raises(ValueError, match="lr=nan"):
        AutoLR(model, torch.optim.Adam(model.parameters(), lr=1e-2), **SMALL, resume=state)
