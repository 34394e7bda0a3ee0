"""Preemption: a run rebuilt from a checkpoint continues exactly as if never interrupted.

The GP proposes probes here, so its determinism across a restart is part of the check.
"""

from __future__ import annotations

import pytest
import torch
from client_helpers import GP, assert_same_tensors, make_data, make_model, params_of, run

from autolr.client import AutoLR


def _fresh(seed: int = 0):
    model = make_model(seed=seed, batchnorm=True)
    return model, torch.optim.Adam(model.parameters(), lr=1e-2)


def _uninterrupted():
    before = torch.get_num_threads()
    torch.set_num_threads(1)  # as in the tests (conftest): the thread count changes rounding
    try:
        model, opt = _fresh()
        tuner = AutoLR(model, opt, **GP)
        run(tuner, model, opt, make_data())
        return tuner.schedule, params_of(model), tuner.results().rows
    finally:
        torch.set_num_threads(before)


@pytest.fixture(scope="module")
def reference():
    return _uninterrupted()


@pytest.mark.parametrize(("stop", "how"), [(30, "resume"), (110, "load_state_dict")])
def test_resume_mid_probe_reproduces_the_uninterrupted_run(reference, stop, how, tmp_path):
    data = make_data()
    model, opt = _fresh()
    tuner = AutoLR(model, opt, **GP)
    run(tuner, model, opt, data, stop=stop)
    inst = tuner.instruction
    assert inst.kind == "probe" and 0 < tuner.segment_step < inst.steps  # really mid-probe
    path = tmp_path / "ckpt.pt"
    torch.save(
        {"model": model.state_dict(), "opt": opt.state_dict(), "tuner": tuner.state_dict()}, path
    )
    del model, opt, tuner

    ckpt = torch.load(path)  # weights_only: the tuner state is plain data and tensors
    model, opt = _fresh(seed=123)  # different initial weights: everything must come from ckpt
    model.load_state_dict(ckpt["model"])
    opt.load_state_dict(ckpt["opt"])
    if how == "resume":
        tuner = AutoLR(model, opt, **GP, resume=ckpt["tuner"])
    else:
        tuner = AutoLR(model, opt, **GP)
        tuner.load_state_dict(ckpt["tuner"])
    assert tuner.lr == opt.param_groups[0]["lr"] == inst.lr
    run(tuner, model, opt, data, start=stop)

    schedule, final, rows = reference
    assert tuner.finished
    assert tuner.schedule == schedule
    assert_same_tensors(params_of(model), final)
    # the embedded record (kept beside the controller state) came through the checkpoint
    assert tuner.results().rows == rows


def test_a_foreign_state_is_rejected():
    model, opt = _fresh()
    tuner = AutoLR(model, opt, **GP)
    with pytest.raises(ValueError, match="not an AutoLR state_dict"):
        tuner.load_state_dict({"format": 99})
