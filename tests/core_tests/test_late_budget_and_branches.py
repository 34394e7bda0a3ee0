"""The controller side of open-ended runs: a budget in a report, and recorded branches."""

from __future__ import annotations

from typing import Any

import pytest

from autolr import Controller, TunerConfig
from autolr.budget import segment_stop, with_total_steps
from autolr.errors import ReportError
from autolr.policy import THRESHOLDS
from autolr.protocol import Branch, Instruction, Report
from autolr.simulate import NoisyQuadratic

OPEN: dict[str, Any] = {"min_lr": 1e-3, "max_lr": 1.0, "tau_min": 100, "tau_max": 800}


def _follow(model: NoisyQuadratic, inst: Instruction, steps: int | None = None) -> Report:
    return model.follow(inst if steps is None else inst.model_copy(update={"steps": steps}))


def _budget_late(set_at: int, total: int, **fields: Any) -> Controller:
    """An open-ended job told ``total`` at step ``set_at``, as `AutoLR.set_total_steps`
    tells it: the running segment stops where `segment_stop` says, its report carries it."""
    ctl, model = Controller(TunerConfig(**OPEN, **fields)), NoisyQuadratic(seed=0)
    inst, told = ctl.start(), False
    while not inst.finished:
        start = ctl.steps_used
        if not told and start + inst.steps > set_at:
            told = True
            config = with_total_steps(ctl.config, total, steps_used=set_at)
            stop = segment_stop(config, inst, start=start, ran=set_at - start)
            report = _follow(model, inst, stop).model_copy(update={"total_steps": total})
        else:
            report = _follow(model, inst)
        inst = ctl.report(report)
    return ctl


@pytest.mark.parametrize(
    "set_at, total",
    [(150, 3000), (500, 700), (1000, 1001), (1234, 5000), (2000, 2600), (3333, 4000)],
)
def test_a_budget_in_a_report_ends_the_job_at_exactly_that_step_decayed(
    set_at: int, total: int
) -> None:
    ctl = _budget_late(set_at, total)
    assert ctl.finished and ctl.steps_used == total
    assert ctl.config.total_steps == total
    last = ctl.schedule[-1]
    assert last.kind == "anneal"
    assert last.lr_end <= last.lr * 1.01 * THRESHOLDS.anneal_end_ratio
    # the decay runs the new budget's share, or all that was left when it came too late
    decay = sum(s.steps for s in ctl.schedule if s.kind == "anneal")
    assert decay == min(ctl.config.anneal_steps, total - set_at) or decay == total - set_at


def test_a_decay_that_must_start_during_a_probe_starts_from_the_stage_snapshot() -> None:
    # a step inside a later stage's probe, found on the same job run without a budget
    ctl, model = Controller(TunerConfig(**OPEN)), NoisyQuadratic(seed=0)
    inst = ctl.start()
    while not (inst.kind == "probe" and inst.stage >= 1 and inst.steps >= 4):
        inst = ctl.report(_follow(model, inst))
    set_at = ctl.steps_used + inst.steps // 2
    ctl = _budget_late(set_at, set_at + 200)
    cut = ctl.segments[-2]
    assert cut.instruction.kind == "probe" and cut.steps_run < cut.instruction.steps
    decay = ctl.schedule[-1]
    assert decay.kind == "anneal" and decay.restore
    assert ctl.stages[-1].decision is not None and decay.decision is not None


def test_a_budget_told_at_the_first_report_gives_the_budgeted_job() -> None:
    for total in (3000, 5000):
        plain = Controller(TunerConfig(**OPEN, total_steps=total))
        late = Controller(TunerConfig(**OPEN))
        for ctl, tell in ((plain, None), (late, total)):
            model, inst = NoisyQuadratic(seed=0), ctl.start()
            while not inst.finished:
                report = _follow(model, inst).model_copy(update={"total_steps": tell})
                tell = None
                inst = ctl.report(report)
        assert late.schedule == plain.schedule
        assert late.state_dict()["config"] == plain.state_dict()["config"]


def test_a_budget_below_the_steps_used_is_refused_and_changes_nothing() -> None:
    ctl, model = Controller(TunerConfig(**OPEN)), NoisyQuadratic(seed=0)
    inst = ctl.start()
    inst = ctl.report(_follow(model, inst))
    before = ctl.state_dict()
    report = _follow(model, inst).model_copy(update={"total_steps": ctl.steps_used + 1})
    with pytest.raises(ReportError, match=r"total_steps=\d+ is below the \d+ steps already used"):
        ctl.report(report)
    assert ctl.state_dict() == before
    empty = Report(segment=inst.segment, train_losses=[])
    with pytest.raises(ReportError, match="no train_losses"):
        ctl.report(empty)  # only a budget change may end a segment before its first step


def test_branches_count_as_steps_are_logged_and_leave_decisions_alone() -> None:
    runs = []
    for branch_steps in (0, 30):
        ctl, model = Controller(TunerConfig(**OPEN)), NoisyQuadratic(seed=0)
        inst = ctl.start()
        while ctl.steps_used < 2500:
            report = _follow(model, inst)
            if branch_steps and inst.kind == "train":
                branch = Branch(
                    at=5,
                    steps=branch_steps,
                    lr=inst.lr,
                    lr_end=inst.lr * 1e-3,
                    train_losses=[0.1] * branch_steps,
                )
                report = report.model_copy(update={"branches": [branch]})
            inst = ctl.report(report)
        runs.append(ctl)
    plain, branched = runs
    n = len(branched.record()["branches"])
    assert n >= 2
    main = [s.instruction for s in branched.segments]
    assert main == [s.instruction for s in plain.segments[: len(main)]]
    # forecasts look as far ahead as the main run has trained, branches left out
    forecasts = [p.forecast for st in branched.stages for p in st.probes]
    assert forecasts == [p.forecast for st in plain.stages for p in st.probes][: len(forecasts)]
    record = branched.record()["branches"][0]
    assert record["instruction"]["kind"] == "branch" and record["steps_run"] == 30
    first = next(s for s in branched.segments if s.instruction.kind == "train")
    assert record["start_step"] == first.start_step + 5
    assert branched.steps_used == sum(s.steps_run for s in branched.segments) + 30 * n


def test_states_stored_before_branches_still_load() -> None:
    ctl, model = Controller(TunerConfig(**OPEN)), NoisyQuadratic(seed=0)
    inst = ctl.start()
    inst = ctl.report(_follow(model, inst))
    # format 1 (the history inside the state), from before branches existed
    record = ctl.record()
    old = {**record, "format": 1}
    del old["branches"]
    again = Controller.from_state_dict(old)
    assert again.report(_follow(NoisyQuadratic(seed=1), inst)).segment == inst.segment + 1
