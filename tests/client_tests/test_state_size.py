"""The tuner's checkpoint holds only what can still be restored (issue 17: it was ~3x the model).

One copy of the model and optimizer state (the stage snapshot) during train segments, a second
one only while a stage's probes run with ``reuse_best_probe``, nothing once the run is over; and
a run resumed from a train-segment checkpoint of that smaller state still ends exactly as the
uninterrupted one.
"""

from __future__ import annotations

import io

import pytest
import torch
from client_helpers import SMALL, assert_same_tensors, make_data, make_model, params_of, run

from autolr.client import AutoLR

#: `SMALL` with the best-probe slot in use (the second copy the state can hold).
REUSE = {**SMALL, "reuse_best_probe": True}


def _fresh(seed: int = 0):
    model = make_model(seed=seed, d=8)
    return model, torch.optim.Adam(model.parameters(), lr=1e-2)


def _nbytes(obj) -> int:
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return buffer.tell()


def _tensor_bytes(obj) -> int:
    if isinstance(obj, torch.Tensor):
        return obj.numel() * obj.element_size()
    if isinstance(obj, dict):
        return sum(_tensor_bytes(v) for v in obj.values())
    if isinstance(obj, list | tuple):
        return sum(_tensor_bytes(v) for v in obj)
    return 0


def test_the_state_holds_one_copy_in_train_segments_and_none_at_the_end():
    model, opt = _fresh()
    data = make_data()
    tuner = AutoLR(model, opt, progress=False, **REUSE)
    copies: dict[str, list[float]] = {"probe": [], "train": []}

    def measure(_step: int) -> None:
        inst = tuner.instruction
        if tuner.segment_step != 5 or inst.kind not in copies or not opt.state:
            return
        live = _tensor_bytes(model.state_dict()) + _tensor_bytes(opt.state_dict()["state"])
        state = tuner.state_dict()
        held = _tensor_bytes(state["snapshot"]) + _tensor_bytes(state["best_snapshot"])
        copies[inst.kind].append(held / live)

    run(tuner, model, opt, data, on_step=measure)
    assert copies["train"] and copies["probe"]
    assert max(copies["train"]) <= 1.0  # the stage snapshot (rolls back a diverging segment)
    assert max(copies["probe"]) == pytest.approx(2.0)  # + the best probe's end state
    final = tuner.state_dict()
    assert final["snapshot"] is None and final["best_snapshot"] is None
    assert _nbytes(final) < _nbytes(model.state_dict()) + 200_000  # the record only


def test_resume_from_a_train_segment_checkpoint_without_the_best_slot_is_exact(tmp_path):
    data = make_data()
    model, opt = _fresh()
    reference = AutoLR(model, opt, progress=False, **REUSE)
    run(reference, model, opt, data)
    final = params_of(model)

    model, opt = _fresh()
    tuner = AutoLR(model, opt, progress=False, **REUSE)
    stop = next(  # five steps into the second stage's training
        sum(s.steps for s in reference.schedule[:i]) + 5
        for i, s in enumerate(reference.schedule)
        if s.kind == "train" and s.stage == 1
    )
    run(tuner, model, opt, data, stop=stop)
    assert tuner.instruction.kind == "train"
    state = tuner.state_dict()
    assert state["best_snapshot"] is None
    torch.save(
        {"model": model.state_dict(), "opt": opt.state_dict(), "tuner": state}, tmp_path / "c.pt"
    )

    ckpt = torch.load(tmp_path / "c.pt")
    model, opt = _fresh(seed=7)
    model.load_state_dict(ckpt["model"])
    opt.load_state_dict(ckpt["opt"])
    resumed = AutoLR(model, opt, progress=False, **REUSE, resume=ckpt["tuner"])
    run(resumed, model, opt, data, start=stop)
    assert resumed.finished and resumed.schedule == reference.schedule
    assert_same_tensors(params_of(model), final)
