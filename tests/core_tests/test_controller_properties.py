"""Invariants under random reports (Hypothesis stateful test), and determinism."""

from __future__ import annotations

import json
import math

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from autolr import Conflict, Controller, JobFinished, TunerConfig
from autolr.protocol import Instruction, Report
from autolr.search import RandomSearcher
from autolr.simulate import NoisyQuadratic

CONFIG = TunerConfig(
    reuse_best_probe=True,
    warm_start=True,
    adaptive_probes=True,
    anneal_fraction=0.1,
    min_lr=1e-4,
    max_lr=1.0,
    total_steps=1500,
    probes_per_stage=3,
    min_probe_steps=8,
    min_stages=2,
    warmup_steps=10,
    seed=3,
)

loss_values = st.one_of(
    st.floats(min_value=1e-3, max_value=10.0),
    st.just(math.nan),
    st.just(math.inf),
    st.floats(min_value=1e3, max_value=1e6),
)


class ControllerMachine(RuleBasedStateMachine):
    """Drives a controller with random reports; the invariants must hold after every step."""

    def __init__(self) -> None:
        super().__init__()
        self.ctl = Controller(CONFIG, searcher=RandomSearcher())
        self.issued: list[Instruction] = [self.ctl.start()]
        self.last_report: Report | None = None
        self.snapshot_stage: int | None = None
        self.best_stage: int | None = None
        self.check_instruction(self.issued[0])

    def check_instruction(self, ins: Instruction) -> None:
        if ins.finished:  # carries the last LR applied, e.g. the end of the anneal
            assert ins.steps == 0 and ins.lr > 0
            return
        assert CONFIG.min_lr <= ins.lr <= CONFIG.max_lr
        if ins.kind == "anneal" or (ins.kind == "probe" and ins.lr_end != ins.lr):
            # the final decay and a probe's cooldown tail go below min_lr, towards ~0
            assert 0 < ins.lr_end < ins.lr
        else:
            assert CONFIG.min_lr <= ins.lr_end <= CONFIG.max_lr
        if ins.save_best:
            assert ins.kind in ("probe", "train") and self.snapshot_stage == ins.stage
            self.best_stage = ins.stage
        if ins.snapshot:
            self.snapshot_stage = ins.stage
        if ins.restore:
            assert self.snapshot_stage == ins.stage, "restore without a snapshot in this stage"
        if ins.restore_best:
            assert not ins.restore
            assert self.best_stage == ins.stage, "restore_best without a saved best probe"
        assert CONFIG.total_steps is not None
        assert self.ctl.steps_used + ins.steps <= CONFIG.total_steps

    @precondition(lambda self: not self.ctl.finished)
    @rule(data=st.data(), extra=st.integers(0, 5))
    def report_current(self, data: st.DataObject, extra: int) -> None:
        ins = self.ctl.current
        n = ins.steps
        if ins.kind == "probe":
            n = data.draw(st.integers(1, ins.steps), label="probe steps run")
        head = data.draw(st.lists(loss_values, min_size=0, max_size=min(n, 6)), label="losses")
        losses = head + [1.0 / (1 + i) for i in range(n - len(head))]
        assert CONFIG.total_steps is not None
        room = CONFIG.total_steps - self.ctl.steps_used - n - 1
        report = Report(
            segment=ins.segment, train_losses=losses, extra_steps=max(0, min(extra, room))
        )
        nxt = self.ctl.report(report)
        assert nxt.segment == ins.segment + 1
        self.check_instruction(nxt)
        self.issued.append(nxt)
        self.last_report = report

    @precondition(lambda self: self.last_report is not None)
    @rule()
    def duplicate(self) -> None:
        assert self.last_report is not None
        before = json.dumps(self.ctl.state_dict(), sort_keys=True)
        assert self.ctl.report(self.last_report) == self.issued[-1]
        assert json.dumps(self.ctl.state_dict(), sort_keys=True) == before

    @rule(offset=st.integers(2, 50))
    def gap(self, offset: int) -> None:
        before = json.dumps(self.ctl.state_dict(), sort_keys=True)
        segment = self.ctl.current.segment + offset
        try:
            self.ctl.report(Report(segment=segment, train_losses=[1.0]))
        except (Conflict, JobFinished):
            pass
        else:
            raise AssertionError("a report for a future segment was accepted")
        assert json.dumps(self.ctl.state_dict(), sort_keys=True) == before

    @rule()
    def round_trip(self) -> None:
        state = json.loads(json.dumps(self.ctl.state_dict(), allow_nan=False))
        self.ctl = Controller.from_state_dict(state, searcher=RandomSearcher())
        assert self.ctl.current == self.issued[-1]

    @invariant()
    def finished_is_absorbing_and_budget_holds(self) -> None:
        assert CONFIG.total_steps is not None
        assert self.ctl.steps_used <= CONFIG.total_steps
        done = [i for i, ins in enumerate(self.issued) if ins.finished]
        if done:
            assert done[0] == len(self.issued) - 1
            assert self.ctl.finished


ControllerMachine.TestCase.settings = settings(
    max_examples=30, stateful_step_count=40, deadline=None
)
TestControllerInvariants = ControllerMachine.TestCase


def _run(config: TunerConfig, stop_at: int | None = None) -> tuple[list[Instruction], str]:
    """Run a job on the NQM; optionally round-trip the state through JSON at ``stop_at``."""
    ctl = Controller(config)
    model = NoisyQuadratic(seed=11)
    ins = ctl.start()
    while not ins.finished:
        if ins.segment == stop_at:
            history = ctl.history  # the record lives beside the state (decisions never read it)
            ctl = Controller.from_state_dict(
                json.loads(json.dumps(ctl.state_dict())), history=history
            )
        ins = ctl.report(model.follow(ins))
    stages = json.dumps([s.model_dump(mode="json") for s in ctl.stages], sort_keys=True)
    return ctl.schedule, stages


def test_same_config_and_reports_give_identical_decisions() -> None:
    cfg = TunerConfig(min_lr=1e-3, max_lr=3.0, total_steps=3000, seed=5)
    assert _run(cfg) == _run(cfg)


def test_state_dict_round_trip_mid_run_gives_the_identical_future() -> None:
    cfg = TunerConfig(min_lr=1e-3, max_lr=3.0, total_steps=3000, seed=5)
    uninterrupted = _run(cfg)
    for stop in (3, 11, 17):  # mid-search, at a train segment, in a later stage
        assert _run(cfg, stop_at=stop) == uninterrupted


def test_different_seeds_probe_differently() -> None:
    a = _run(TunerConfig(min_lr=1e-3, max_lr=3.0, total_steps=3000, seed=1))[0]
    b = _run(TunerConfig(min_lr=1e-3, max_lr=3.0, total_steps=3000, seed=2))[0]
    assert [s.lr for s in a[:3]] != [s.lr for s in b[:3]]


def _scaled_run(
    factor: float, offset: float = 0.0
) -> tuple[list[Instruction], list[tuple[str, float]]]:
    """The schedule, its decision texts removed (they quote losses, in the job's units)."""
    ctl = Controller(TunerConfig(min_lr=1e-3, max_lr=10.0, total_steps=4000, seed=1))
    model = NoisyQuadratic(seed=2)
    ins = ctl.start()
    while not ins.finished:
        rep = model.follow(ins)
        ins = ctl.report(
            rep.model_copy(
                update={
                    "train_losses": [factor * v + offset for v in rep.train_losses],
                    "val_losses": [(s, factor * v + offset) for s, v in rep.val_losses],
                }
            )
        )
    rules = [(d.rule.value, d.lr) for st in ctl.stages for d in st.decisions]
    assert rules
    return [i.model_copy(update={"decision": None}) for i in ctl.schedule], rules


def test_decisions_do_not_depend_on_the_loss_scale() -> None:
    # Powers of two scale floats exactly, so any difference would be a scale-dependent rule
    # (the forecaster, the divergence checks, the stop rule and the GP all see loss ratios).
    base = _scaled_run(1.0)
    assert _scaled_run(2.0**-20) == base
    assert _scaled_run(2.0**20) == base
