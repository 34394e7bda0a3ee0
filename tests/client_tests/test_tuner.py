"""AutoLR in embedded mode: the budget, the LR it sets, snapshots, validation and bad input."""

from __future__ import annotations

import itertools
import logging
import math

import pytest
import torch
from client_helpers import (
    SMALL,
    assert_same_tensors,
    make_data,
    make_model,
    params_of,
    run,
    train_step,
)
from torch.utils._python_dispatch import TorchDispatchMode

from autolr import ConfigError, TunerConfig
from autolr.client import AutoLR, ClientError, Segment, TunerFinished


def _sgd(model, lr=0.1):
    return torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9)


def _expected_lrs(schedule: list[Segment]) -> list[float]:
    out = []
    for seg in schedule:
        for j in range(seg.steps):
            frac = j / (seg.steps - 1) if seg.steps > 1 else 0.0
            out.append(seg.lr + (seg.lr_end - seg.lr) * frac)
    return out


def test_embedded_run_spends_the_budget_exactly_then_refuses_steps():
    model, data = make_model(), make_data()
    opt = _sgd(model)
    tuner = AutoLR(model, opt, **SMALL)
    assert tuner.job_id == "local"
    run(tuner, model, opt, data)
    assert tuner.finished
    schedule = tuner.schedule
    assert sum(s.steps for s in schedule) == SMALL["total_steps"] == tuner.steps_run
    assert schedule[-1].kind == "train"  # never ends on a probe
    assert {s.kind for s in schedule} == {"probe", "train"}
    assert schedule[0]["kind"] == schedule[0].kind  # keys work as well as attributes
    with pytest.raises(TunerFinished, match="total_steps=400") as err:
        tuner.step(1.0)
    assert isinstance(err.value, RuntimeError)


def test_every_param_group_follows_the_schedule_at_every_step_with_its_ratio():
    model, data = make_model(), make_data()
    first, rest = list(model.parameters())[:2], list(model.parameters())[2:]
    opt = torch.optim.SGD(
        [{"params": first, "lr": 0.2}, {"params": rest, "lr": 0.05}], lr=0.1, momentum=0.9
    )
    seen: list[tuple[float, float]] = []
    tuner = AutoLR(model, opt, **{**SMALL, "warmup_steps": 30, "total_steps": 430})
    run(
        tuner,
        model,
        opt,
        data,
        on_step=lambda _: seen.append((opt.param_groups[0]["lr"], opt.param_groups[1]["lr"])),
    )
    expected = _expected_lrs(tuner.schedule)
    assert tuner.schedule[0].kind == "warmup"
    assert len(set(expected[:30])) == 30  # the warmup ramps every step
    assert [a for a, _ in seen] == pytest.approx(expected, rel=1e-12)
    # the second group keeps its 1:4 ratio to the first, even right after each restore
    assert [b for _, b in seen] == pytest.approx([0.25 * e for e in expected], rel=1e-12)


def test_probes_and_the_train_segment_start_from_the_stage_snapshot():
    model, data = make_model(batchnorm=True), make_data()
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    starts: dict[int, dict[str, torch.Tensor]] = {}
    restored: dict[int, bool] = {}
    tuner = AutoLR(model, opt, **SMALL)

    def at_step(_: int) -> None:
        inst = tuner.instruction
        if tuner.segment_step == 0:  # the first step of a segment: record where it starts from
            starts[inst.segment] = params_of(model)
            restored[inst.segment] = inst.restore

    run(tuner, model, opt, data, on_step=at_step)
    by_stage: dict[int, list[Segment]] = {}
    for seg in tuner.schedule:
        by_stage.setdefault(seg.stage, []).append(seg)
    for segs in by_stage.values():
        snapshot = starts[segs[0].segment]
        for before, seg in itertools.pairwise(segs):
            if seg.kind == "train" and before.kind == "train":
                continue  # a later chunk of the train segment: it continues
            if seg.kind == "probe" and seg.lr_end < seg.lr:
                continue  # a probe's cooldown tail continues its constant part
            if seg.kind == "train" and not restored[seg.segment]:
                continue  # training on from the best probe's kept state (reuse_best_probe)
            # every later probe and the first train segment were restored
            assert_same_tensors(starts[seg.segment], snapshot)
        assert segs[-1].kind == "train"


def test_float_and_tensor_losses_give_the_same_schedule():
    schedules = []
    for as_float in (False, True):
        model, data = make_model(), make_data()
        opt = _sgd(model)
        tuner = AutoLR(model, opt, **SMALL)
        run(tuner, model, opt, data, as_float=as_float)
        schedules.append(tuner.schedule)
    assert schedules[0] == schedules[1]


def _synthetic_run(tuner, bad_probe: int, bad_loss: object, steps: int = 10_000) -> None:
    """Feed decaying losses; probe ``bad_probe`` of each stage reports ``bad_loss`` from its
    fourth step on."""
    for i in range(steps):
        if tuner.finished:
            return
        inst = tuner.instruction
        loss = 2.0 * math.exp(-i / 300) + 0.1
        if inst.kind == "probe" and inst.probe == bad_probe and tuner.segment_step >= 3:
            loss = bad_loss
        tuner.step(loss)


def test_a_non_finite_float_loss_ends_the_probe_early_and_is_reported():
    model = make_model()
    tuner = AutoLR(model, _sgd(model), **SMALL)
    _synthetic_run(tuner, bad_probe=1, bad_loss=math.nan)
    assert tuner.finished
    bad = [s for s in tuner.schedule if s.kind == "probe" and s.probe == 1]
    assert bad and all(s.steps == 4 for s in bad)  # 3 good steps and the NaN
    stages = tuner.transport.controller.stages
    assert all(not st.probes[1].ok for st in stages)
    assert all(st.chosen_probe != 1 for st in stages)
    assert sum(s.steps for s in tuner.schedule) == SMALL["total_steps"]


def test_a_non_finite_tensor_loss_is_reported_at_the_boundary_never_raised():
    model = make_model()
    tuner = AutoLR(model, _sgd(model), **SMALL)
    _synthetic_run(tuner, bad_probe=0, bad_loss=torch.tensor(math.inf))
    assert tuner.finished
    # read only at the boundary: the constant part runs to its end (15 of the probe's 20
    # steps); a non-finite loss there leaves no floor to measure, so no tail follows
    probes = [s for s in tuner.schedule if s.kind == "probe" and s.probe == 0]
    assert probes and all(s.steps == 15 and s.lr == s.lr_end for s in probes)
    assert all(not st.probes[0].ok for st in tuner.transport.controller.stages)


def test_validation_runs_at_eval_every_in_eval_mode_without_grad_and_restores_flags():
    model, data = make_model(), make_data()
    model.append(torch.nn.Dropout(0.1))
    model[0].eval()  # a frozen part the user keeps in eval mode during training
    calls: list[tuple[int, bool, bool]] = []
    holder: dict[str, AutoLR] = {}

    def val_fn() -> torch.Tensor:
        calls.append((holder["t"].segment_step, model.training, torch.is_grad_enabled()))
        x, y = data
        return torch.nn.functional.mse_loss(model(x[:64]), y[:64])

    opt = _sgd(model, lr=0.01)
    tuner = holder["t"] = AutoLR(
        model, opt, val_fn=val_fn, **{**SMALL, "loss_source": "val", "val_evals_per_probe": 8}
    )
    run(tuner, model, opt, data)
    assert calls and all(not training and not grad for _, training, grad in calls)
    assert model.training and model[-1].training and not model[0].training
    expected = []
    for rec in tuner.transport.controller.segments:
        every = rec.instruction.eval_every
        assert every is not None
        steps = list(range(every, rec.steps_run + 1, every))
        assert [s for s, _ in rec.val_losses] == steps
        expected += steps
    assert [pos for pos, _, _ in calls] == expected


def test_by_default_a_given_val_fn_judges_the_probes_and_none_is_not_an_error():
    model, data = make_model(), make_data()
    calls: list[int] = []

    def val_fn() -> float:
        calls.append(1)
        x, y = data
        return float(torch.nn.functional.mse_loss(model(x[:64]), y[:64]))

    opt = _sgd(model, lr=0.01)
    config = {k: v for k, v in SMALL.items() if k != "loss_source"}
    tuner = AutoLR(model, opt, val_fn=val_fn, **config)
    run(tuner, model, opt, data)
    probes = [p for s in tuner.transport.controller.stages for p in s.probes]
    assert calls and probes and all(p.source == "val" for p in probes)

    model = make_model()
    opt = _sgd(model, lr=0.01)
    tuner = AutoLR(model, opt, **config)  # no val_fn: the training loss, no error
    run(tuner, model, opt, data)
    probes = [p for s in tuner.transport.controller.stages for p in s.probes]
    assert tuner.finished and probes and all(p.source == "train" for p in probes)


def test_loss_source_val_without_val_fn_is_rejected_with_the_fix():
    model = make_model()
    with pytest.raises(ValueError, match=r"pass val_fn="):
        AutoLR(model, _sgd(model), **{**SMALL, "loss_source": "val"})


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"min_lr": 0.1, "max_lr": 0.1}, r"min_lr=0.1 must be smaller than max_lr=0.1"),
        ({"min_lr": 1.0, "max_lr": 0.01}, r"min_lr=1.0 must be smaller than max_lr=0.01"),
        ({"probe_steps": 3}, r"probe_steps: unknown field"),
    ],
)
def test_invalid_config_is_a_value_error_naming_the_fields(fields, message):
    model = make_model()
    with pytest.raises(ConfigError, match=message) as err:
        AutoLR(model, _sgd(model), **{**SMALL, **fields})
    assert isinstance(err.value, ValueError)


def test_an_optimizer_without_param_groups_is_rejected():
    model = make_model()
    opt = _sgd(model)
    opt.param_groups.clear()
    with pytest.raises(ValueError, match="no param groups"):
        AutoLR(model, opt, **SMALL)


def test_an_optimizer_without_parameters_is_rejected():
    model = make_model()
    opt = torch.optim.SGD([{"params": []}], lr=0.1)
    with pytest.raises(ValueError, match="hold no parameters"):
        AutoLR(model, opt, **SMALL)


def test_an_optimizer_of_another_model_is_rejected():
    model, other = make_model(), make_model()
    with pytest.raises(ValueError, match=r"4 of the optimizer's 4 parameters .* not parameters"):
        AutoLR(model, _sgd(other), **SMALL)


def test_wrong_types_and_conflicting_options_are_rejected():
    model = make_model()
    with pytest.raises(TypeError, match=r"torch\.nn\.Module"):
        AutoLR(object(), _sgd(model), **SMALL)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="either server= or transport="):
        AutoLR(model, _sgd(model), server="http://x", transport=object(), **SMALL)  # type: ignore[arg-type]


def test_config_object_and_keyword_fields_combine():
    model = make_model()
    tuner = AutoLR(model, _sgd(model), config=TunerConfig(**SMALL), seed=11)
    assert tuner.config.seed == 11
    assert tuner.config.total_steps == SMALL["total_steps"]


def test_one_info_line_per_stage_with_its_rule_evidence_and_choice(caplog):
    model, data = make_model(), make_data()
    opt = _sgd(model)
    with caplog.at_level(logging.INFO, logger="autolr.client"):
        tuner = AutoLR(model, opt, progress=False, **SMALL)
        run(tuner, model, opt, data)
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("autolr stage ")]
    n_stages = len({s.stage for s in tuner.schedule})
    assert len(lines) == n_stages
    for line, stage in zip(lines, tuner.transport.controller.stages, strict=True):
        first_chunk = min(stage.train_steps or 0, stage.tau)  # longer ones run in chunks
        assert (
            f"autolr stage {stage.stage}: trains lr={stage.chosen_lr:.4g} for {first_chunk} steps"
            in line
        )
        # the stage policy's rule and the LR it set, with the best probes' objectives
        assert stage.decision is not None
        assert f"rule {stage.decision.rule.value}: lr={stage.chosen_lr:.4g}" in line
        assert "→" in line or not stage.probes
        ran = [s for s in tuner.schedule if s.kind == "probe" and s.stage == stage.stage]
        assert f"{len(stage.probes)} probes, {sum(s.steps for s in ran)} steps" in line
        assert " left" in line
    assert any("autolr finished: 400 steps" in r.getMessage() for r in caplog.records)


def test_context_manager_removes_the_disk_snapshot(tmp_path):
    model, data = make_model(), make_data()
    opt = _sgd(model)
    with AutoLR(model, opt, snapshot_device="disk", snapshot_dir=tmp_path, **SMALL) as tuner:
        run(tuner, model, opt, data, stop=30)
        assert len(list(tmp_path.iterdir())) == 1
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(ClientError, match="closed"):
        tuner.step(1.0)


def test_reuse_best_probe_trains_on_from_the_chosen_probes_end_state():
    model, data = make_model(batchnorm=True), make_data()
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    tuner = AutoLR(model, opt, **{**SMALL, "reuse_best_probe": True})
    starts: dict[int, dict[str, torch.Tensor]] = {}
    ends: dict[int, dict[str, torch.Tensor]] = {}
    step = 0
    while not tuner.finished:  # record each segment's first-step and last-step states
        inst = tuner.instruction
        if tuner.segment_step == 0:
            starts[inst.segment] = params_of(model)
        loss = train_step(model, opt, data, step)
        if tuner.segment_step == inst.steps - 1:
            ends[inst.segment] = params_of(model)  # before the boundary applies the next one
        tuner.step(loss)
        step += 1

    controller = tuner.transport.controller
    segments = [s.instruction for s in controller.segments]
    reused = 0
    for stage in controller.stages:
        train = next(s for s in segments if s.kind == "train" and s.stage == stage.stage)
        if stage.reused_probe is None:
            assert train.restore and not train.restore_best
            continue
        reused += 1
        probe = next(
            s.segment
            for s in segments
            if s.kind == "probe" and s.stage == stage.stage and s.probe == stage.reused_probe
        )
        assert not train.restore
        # the best slot (restore_best) or simply the probe just run (no restore at all)
        assert train.restore_best == (probe != train.segment - 1)
        assert_same_tensors(starts[train.segment], ends[probe])
    assert reused > 0
    assert sum(s.steps for s in tuner.schedule) == SMALL["total_steps"]


def test_the_final_anneal_ramps_the_lr_down_every_step():
    model, data = make_model(), make_data()
    opt = _sgd(model)
    seen: list[float] = []
    tuner = AutoLR(model, opt, **{**SMALL, "anneal_fraction": 0.1})
    run(tuner, model, opt, data, on_step=lambda _: seen.append(opt.param_groups[0]["lr"]))
    last = tuner.schedule[-1]
    assert last.kind == "anneal" and last.steps == 40 and last.lr_end < last.lr
    assert seen == pytest.approx(_expected_lrs(tuner.schedule), rel=1e-12)
    tail = seen[-last.steps :]
    assert all(a > b for a, b in itertools.pairwise(tail))


class _OpLog(TorchDispatchMode):
    """Records every ATen operator that runs (real dispatch, nothing replaced)."""

    def __init__(self) -> None:
        super().__init__()
        self.ops: list[str] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.ops.append(str(func.overloadpacket.__name__))
        return func(*args, **(kwargs or {}))


def test_between_boundaries_step_only_detaches_the_loss_no_read_no_copy():
    model = make_model()
    tuner = AutoLR(model, _sgd(model), **SMALL)
    weight = torch.ones((), requires_grad=True)
    loss = weight * 0.5
    assert tuner.instruction.steps == 15  # the first probe's constant part
    with _OpLog() as log:
        for _ in range(14):  # the whole constant part but its last (boundary) step
            tuner.step(loss)
    assert tuner.segment_step == 14
    assert set(log.ops) == {"detach"}  # no .item(), no copy to the host, no per-step kernel


def test_a_diverging_train_segment_is_rolled_back_to_the_stage_snapshot():
    """The model blows up mid-train: the segment ends at once, the stage's snapshot comes back
    and the stage trains again at a safer LR, so the run ends with finite weights."""
    model, data = make_model(), make_data()
    opt = _sgd(model)
    tuner = AutoLR(model, opt, **SMALL)
    stage_start: dict[int, dict[str, torch.Tensor]] = {}
    blown: list[tuple[int, float]] = []  # (segment, lr) of the sabotaged train segment
    retried: list[Segment] = []
    for step in itertools.count():
        if tuner.finished:
            break
        inst = tuner.instruction
        if tuner.segment_step == 0 and inst.snapshot:  # where the stage snapshot is taken
            stage_start[inst.stage] = params_of(model)
        if tuner.segment_step == 0 and blown and inst.segment == blown[0][0] + 1:
            retried.append(inst)
            assert_same_tensors(params_of(model), stage_start[inst.stage])
        if inst.kind == "train" and not blown and tuner.segment_step == 4:
            with torch.no_grad():  # what a divergence leaves behind
                next(model.parameters()).fill_(math.inf)
            blown.append((inst.segment, inst.lr))
            tuner.step(math.nan)
            continue
        loss = train_step(model, opt, data, step)
        tuner.step(float(loss.detach()))
    segment, failed_lr = blown[0]
    bad = next(s for s in tuner.schedule if s.segment == segment)
    assert bad.steps == 5  # ended at the NaN instead of training on a broken model
    (retry,) = retried
    assert retry.kind == "train" and retry.restore and retry.lr * 3 <= failed_lr
    assert tuner.transport.controller.stages[retry.stage].diverged_lrs == [failed_lr]
    assert all(torch.isfinite(p).all() for p in model.parameters())
    assert sum(s.steps for s in tuner.schedule) == SMALL["total_steps"]
