"""Stage snapshots restore model, optimizer and scaler state exactly, cheaply and in place."""

from __future__ import annotations

import os

import pytest
import torch
from client_helpers import assert_same_tensors, make_data, make_model, params_of, train_step

from autolr.client import SnapshotError, StateSnapshot


def _opt_state(optimizer: torch.optim.Optimizer) -> dict[str, torch.Tensor]:
    out = {}
    for i, p in enumerate(optimizer.param_groups[0]["params"]):
        for k, v in optimizer.state[p].items():
            out[f"{i}.{k}"] = v.clone() if isinstance(v, torch.Tensor) else torch.tensor(v)
    return out


def _setup(opt: str = "adam", batchnorm: bool = True):
    model = make_model(batchnorm=batchnorm)
    if opt == "adam":
        optimizer = torch.optim.Adam(model.parameters(), lr=1e-2, weight_decay=1e-3)
    else:
        optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    return model, optimizer, make_data()


@pytest.mark.parametrize("device", ["cpu", "same", "disk"])
@pytest.mark.parametrize("opt", ["adam", "sgd"])
def test_restore_is_bit_exact_and_replays_identically(device, opt, tmp_path):
    model, optimizer, data = _setup(opt)
    for s in range(3):
        train_step(model, optimizer, data, s)
    snap = StateSnapshot(model, optimizer, device=device, directory=tmp_path)
    snap.save()
    params0, state0 = params_of(model), _opt_state(optimizer)

    for s in range(3, 8):
        train_step(model, optimizer, data, s)
    after_a = params_of(model)
    assert not torch.equal(after_a["0.weight"], params0["0.weight"])

    snap.restore()
    assert_same_tensors(params_of(model), params0)
    assert_same_tensors(_opt_state(optimizer), state0)
    for s in range(3, 8):
        train_step(model, optimizer, data, s)
    assert_same_tensors(params_of(model), after_a)  # same batches after restore: same params

    snap.restore()  # a second restore from the same snapshot works too
    assert_same_tensors(params_of(model), params0)
    snap.close()


def test_restore_keeps_tensor_identity_and_never_aliases_the_snapshot():
    model, optimizer, data = _setup("adam")
    train_step(model, optimizer, data, 0)
    weight = model[0].weight
    moment = optimizer.state[weight]["exp_avg"]
    snap = StateSnapshot(model, optimizer)
    snap.save()
    train_step(model, optimizer, data, 1)
    snap.restore()
    assert model[0].weight is weight
    assert optimizer.state[weight]["exp_avg"] is moment
    saved = snap.state_dict()
    train_step(model, optimizer, data, 2)  # must not write through into the snapshot
    assert_same_tensors(snap.state_dict()["model"], saved["model"])


def test_later_saves_reuse_the_preallocated_buffers():
    model, optimizer, data = _setup("adam")
    train_step(model, optimizer, data, 0)
    snap = StateSnapshot(model, optimizer)
    snap.save()
    ptrs = {k: v.data_ptr() for k, v in snap._buffers["model"].items()}
    train_step(model, optimizer, data, 1)
    snap.save()
    assert ptrs == {k: v.data_ptr() for k, v in snap._buffers["model"].items()}
    assert snap.nbytes > 0


def test_snapshot_before_the_first_step_clears_optimizer_state_on_restore():
    model, optimizer, data = _setup("adam")
    snap = StateSnapshot(model, optimizer)
    snap.save()
    params0 = params_of(model)
    train_step(model, optimizer, data, 0)
    assert len(optimizer.state) > 0
    snap.restore()
    assert len(optimizer.state) == 0  # Adam starts fresh again, as it did at the snapshot
    assert_same_tensors(params_of(model), params0)


def test_group_settings_are_restored():
    model, optimizer, _ = _setup("sgd")
    snap = StateSnapshot(model, optimizer)
    snap.save()
    optimizer.param_groups[0]["momentum"] = 0.5
    optimizer.param_groups[0]["lr"] = 123.0
    snap.restore()
    assert optimizer.param_groups[0]["momentum"] == 0.9
    assert optimizer.param_groups[0]["lr"] == 0.05


def test_grad_scaler_is_restored():
    model, optimizer, _ = _setup("sgd")
    scaler = torch.amp.GradScaler("cpu", init_scale=1024.0)
    scaler.scale(torch.ones(()))  # initializes the scale tensor, as in a real AMP step
    snap = StateSnapshot(model, optimizer, scaler=scaler)
    snap.save()
    scaler.update(new_scale=8.0)
    assert scaler.get_scale() == 8.0
    snap.restore()
    assert scaler.get_scale() == 1024.0


@pytest.mark.parametrize("device", ["cpu", "disk"])
def test_state_dict_moves_a_snapshot_to_a_fresh_process(device):
    model, optimizer, data = _setup("adam")
    for s in range(2):
        train_step(model, optimizer, data, s)
    snap = StateSnapshot(model, optimizer, device=device)
    snap.save()
    params0, state0 = params_of(model), _opt_state(optimizer)
    payload = snap.state_dict()

    # a rebuilt model and optimizer, as after preemption, at some other point of training
    model2, optimizer2, _ = _setup("adam")
    for s in range(5):
        train_step(model2, optimizer2, data, s)
    snap2 = StateSnapshot(model2, optimizer2, device=device)
    snap2.load_state_dict(payload)
    snap2.restore()
    assert_same_tensors(params_of(model2), params0)
    assert_same_tensors(_opt_state(optimizer2), state0)
    snap2.close()


def test_disk_snapshot_file_is_removed_on_close(tmp_path):
    model, optimizer, _ = _setup("sgd")
    snap = StateSnapshot(model, optimizer, device="disk", directory=tmp_path)
    snap.save()
    assert len(os.listdir(tmp_path)) == 1
    snap.close()
    assert os.listdir(tmp_path) == []
    assert not snap.taken


def test_restore_without_snapshot_is_an_error():
    model, optimizer, _ = _setup("sgd")
    with pytest.raises(SnapshotError, match="none was taken"):
        StateSnapshot(model, optimizer).restore()


def test_restore_into_an_edited_model_is_an_error():
    model, optimizer, _ = _setup("sgd", batchnorm=False)
    snap = StateSnapshot(model, optimizer)
    snap.save()
    model.append(torch.nn.Linear(1, 1))
    with pytest.raises(SnapshotError, match="changed since the stage snapshot"):
        snap.restore()


def test_unknown_snapshot_device_is_rejected():
    model, optimizer, _ = _setup("sgd")
    with pytest.raises(ValueError, match="snapshot_device='gpu'"):
        StateSnapshot(model, optimizer, device="gpu")  # type: ignore[arg-type]
