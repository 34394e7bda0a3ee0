"""Open-ended training: cooldown branches and a budget set mid-run, with real training."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from client_helpers import SMALL, batch, make_model
from torch import nn

from autolr.client import AutoLR
from autolr.client.errors import ClientError
from autolr.policy import THRESHOLDS

#: `SMALL` without a budget, with the default final decay once a budget is set.
OPEN: dict[str, Any] = {**SMALL, "total_steps": None, "anneal_fraction": 0.5}
BRANCH_STEPS = 40


def _data(seed: int, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """A noisy regression problem (teacher seed 0 for train and validation alike)."""
    teacher = torch.Generator().manual_seed(0)
    w = torch.randn(8, 1, generator=teacher)
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 8, generator=gen)
    return x, x @ w + 0.5 * torch.randn(n, 1, generator=gen)


TRAIN, VAL = _data(1, 512), _data(2, 512)


def _val_loss(model: nn.Module) -> float:
    with torch.no_grad():
        return float(nn.functional.mse_loss(model(VAL[0]), VAL[1]))


def _step(model: nn.Module, opt: torch.optim.Optimizer, i: int) -> torch.Tensor:
    xb, yb = batch(TRAIN, i, size=16)
    loss = nn.functional.mse_loss(model(xb), yb)
    loss.backward()
    opt.step()
    opt.zero_grad()
    return loss.detach()


def _setup() -> tuple[nn.Module, torch.optim.Optimizer]:
    model = make_model(0)
    return model, torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)


def _state(model: nn.Module, opt: torch.optim.Optimizer) -> dict[str, Any]:
    return {
        "model": {k: v.clone() for k, v in model.state_dict().items()},
        "momentum": [opt.state[p]["momentum_buffer"].clone() for p in model.parameters()],
        "lrs": [g["lr"] for g in opt.param_groups],
    }


def _same(a: dict[str, Any], b: dict[str, Any]) -> bool:
    return (
        a["lrs"] == b["lrs"]
        and all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"])
        and all(torch.equal(x, y) for x, y in zip(a["momentum"], b["momentum"], strict=True))
    )


def _run(main_steps: int, branch_at: tuple[int, ...]) -> dict[str, Any]:
    """An open-ended run of ``main_steps`` main-run steps, branching at the first train step
    from each of ``branch_at``; what each branch saw and handed on."""
    model, opt = _setup()
    tuner = AutoLR(model, opt, progress=False, **OPEN)
    out: dict[str, Any] = {"branches": [], "handed": []}
    todo, main = list(branch_at), 0
    before: dict[str, Any] = {}
    while main < main_steps:
        inst = tuner.instruction
        if todo and main >= todo[0] and inst is not None and inst.kind == "train":
            todo.pop(0)
            before = _state(model, opt)
            out["branches"].append({"val_before": _val_loss(model), "lr": tuner.lr})
            tuner.cooldown(BRANCH_STEPS, lambda m: out["handed"].append(_val_loss(m)))
            for j in range(BRANCH_STEPS):
                assert tuner.in_cooldown
                tuner.step(_step(model, opt, 10_000 + j))  # the branch's own batches
            assert not tuner.in_cooldown
            out["branches"][-1]["restored"] = _same(before, _state(model, opt))
            out["branches"][-1]["lr_after"] = tuner.lr
        tuner.step(_step(model, opt, main))
        main += 1
    out["final"] = _state(model, opt)
    out["schedule"] = [s for s in tuner.schedule if s.kind != "branch"]
    out["branch_segments"] = [s for s in tuner.schedule if s.kind == "branch"]
    out["steps_run"] = tuner.steps_run
    out["export_kinds"] = [r["kind"] for r in tuner.results().rows]
    tuner.close()
    return out


def test_cooldown_branches_hand_on_cooler_models_and_leave_the_run_as_it_was() -> None:
    points = (120, 260, 400)
    branched = _run(520, points)
    plain = _run(520, ())
    assert len(branched["handed"]) == len(points)
    for record, handed in zip(branched["branches"], branched["handed"], strict=True):
        assert handed < record["val_before"], (handed, record)
        assert record["restored"], "parameters, momentum or LR changed across the branch"
        assert record["lr_after"] == record["lr"]
    # the main run went on as if no branch had run: same decisions, same final state
    assert branched["schedule"] == plain["schedule"]
    assert _same(branched["final"], plain["final"])
    # the branches count as steps, and are recorded as decays to anneal_end_ratio
    assert branched["steps_run"] == plain["steps_run"] + len(points) * BRANCH_STEPS
    for seg in branched["branch_segments"]:
        assert seg.steps == BRANCH_STEPS
        assert seg.lr_end == pytest.approx(seg.lr * THRESHOLDS.anneal_end_ratio)
    assert branched["export_kinds"].count("branch") == len(points)


@pytest.mark.parametrize("set_at, total", [(0, 600), (150, 600), (330, 340), (200, 200)])
def test_a_budget_set_mid_run_ends_at_exactly_that_step_decayed(set_at: int, total: int) -> None:
    model, opt = _setup()
    tuner = AutoLR(model, opt, progress=False, **OPEN)
    steps = 0
    while not tuner.finished:
        if steps == set_at:
            tuner.set_total_steps(total)
            if tuner.finished:
                break
        tuner.step(_step(model, opt, steps))
        steps += 1
        assert steps <= total or set_at > steps
    assert steps == total == tuner.steps_run
    assert tuner.config.total_steps == total
    last = tuner.schedule[-1]
    if total > set_at:
        assert last.kind == "anneal"
        assert (
            last.lr_end
            == pytest.approx(tuner.schedule[-2].lr_end * THRESHOLDS.anneal_end_ratio, rel=0.5)
            or last.lr_end < 1e-2 * last.lr
        )
        assert tuner.lr == pytest.approx(last.lr_end)
    tuner.close()


def test_a_budget_below_the_steps_run_is_refused_naming_total_steps() -> None:
    model, opt = _setup()
    tuner = AutoLR(model, opt, progress=False, **OPEN)
    for i in range(50):
        tuner.step(_step(model, opt, i))
    with pytest.raises(ValueError, match="total_steps=49 is below the 50 steps"):
        tuner.set_total_steps(49)
    tuner.cooldown(5, lambda m: None)
    with pytest.raises(ClientError, match="cooldown branch is running"):
        tuner.set_total_steps(500)
    for i in range(5):
        tuner.step(_step(model, opt, 100 + i))
    with pytest.raises(ValueError, match="below the 55 steps"):
        tuner.set_total_steps(54)
    tuner.close()


def test_a_branch_must_leave_a_budgeted_run_room_to_end_on_time() -> None:
    model, opt = _setup()
    tuner = AutoLR(model, opt, progress=False, **{**OPEN, "total_steps": 400})
    with pytest.raises(ValueError, match="steps=400: a cooldown branch counts toward"):
        tuner.cooldown(400, lambda m: None)
    steps = 0
    tuner.cooldown(30, lambda m: None)
    while not tuner.finished:
        tuner.step(_step(model, opt, steps))
        steps += 1
    assert steps == 400 == tuner.steps_run
    tuner.close()


def test_a_checkpoint_keeps_a_budget_set_mid_run() -> None:
    model, opt = _setup()
    tuner = AutoLR(model, opt, progress=False, **OPEN)
    for i in range(70):
        tuner.step(_step(model, opt, i))
    tuner.set_total_steps(300)
    tuner.cooldown(10, lambda m: None)
    for i in range(10):
        tuner.step(_step(model, opt, 1000 + i))
    state = tuner.state_dict()
    tuner.close()
    model2, opt2 = _setup()
    model2.load_state_dict(model.state_dict())
    opt2.load_state_dict(opt.state_dict())
    resumed = AutoLR(model2, opt2, progress=False, resume=state, **OPEN)
    assert resumed.config.total_steps == 300
    steps = resumed.steps_run
    while not resumed.finished:
        resumed.step(_step(model2, opt2, steps))
        steps += 1
    assert steps == 300 == resumed.steps_run
    assert resumed.schedule[-1].kind == "anneal"
    resumed.close()


def test_a_budget_that_ends_inside_a_probe_leaves_the_stage_state_not_the_probe() -> None:
    model, opt = _setup()
    tuner = AutoLR(model, opt, progress=False, **OPEN)
    stage_start: dict[str, Any] = {}
    steps = 0
    while True:
        inst = tuner.instruction
        assert inst is not None
        if inst.snapshot and tuner.segment_step == 0:
            stage_start = {k: v.clone() for k, v in model.state_dict().items()}
        if inst.kind == "probe" and inst.probe == 1 and tuner.segment_step == 5 and steps > 200:
            break
        tuner.step(_step(model, opt, steps))
        steps += 1
    tuner.set_total_steps(steps)
    assert tuner.finished and tuner.steps_run == steps
    now = model.state_dict()
    assert all(torch.equal(now[k], v) for k, v in stage_start.items())
    tuner.close()
