"""The training run comes first: an unreachable or refusing controller never stops it, never
changes its schedule, and never lets it run past its budget.

(Until issue 16 the tuner trained on at the last LR while the controller was away, counted
"extra steps" and retried after a doubling number of steps; a refusal detached it for good and
it never finished. Three tests here asserted that; they now assert the contract instead: the
run decides locally with the same controller and is step for step the uninterrupted one.)
"""

from __future__ import annotations

import logging
import math

import pytest
import torch
from client_helpers import SMALL, make_data, make_model, params_of, run

from autolr import Conflict
from autolr.client import AutoLR, LocalTransport, TransportError, _link
from autolr.controller import Controller


class FlakyTransport(LocalTransport):
    """The embedded controller behind a link that drops chosen calls (1-based counts).

    Being a subclass, it is treated like a remote service: the tuner keeps the run's record and
    decides locally when it fails.
    """

    def __init__(self, fail_reports=(), fail_starts=0, refuse_at=None):
        super().__init__()
        self.fail_reports = set(fail_reports)
        self.fail_starts = fail_starts
        self.refuse_at = refuse_at
        self.reports = 0
        self.starts = 0

    def start(self, config):
        self.starts += 1
        if self.starts <= self.fail_starts:
            raise TransportError("connection refused")
        return super().start(config)

    def report(self, report):
        self.reports += 1
        if self.reports in self.fail_reports:
            raise TransportError("read timeout")
        if self.reports == self.refuse_at:
            raise Conflict(expected=report.segment + 1, got=report.segment)
        return super().report(report)


def _setup(transport, **kw):
    model, data = make_model(), make_data()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    return AutoLR(model, opt, transport=transport, **{**SMALL, **kw}), model, opt, data


def _lrs_of(tuner, model, opt, data):
    lrs: list[float] = []
    run(tuner, model, opt, data, on_step=lambda _: lrs.append(opt.param_groups[0]["lr"]))
    return lrs


@pytest.fixture(scope="module")
def reference():
    """The uninterrupted run (embedded): its schedule, per-step LRs, weights and record."""
    tuner, model, opt, data = _setup(LocalTransport())
    lrs = _lrs_of(tuner, model, opt, data)
    return tuner.schedule, lrs, params_of(model), tuner.transport.controller.segments


@pytest.fixture
def fast_resync(monkeypatch):
    """Sync at every chance instead of 1 s later: the whole run takes well under a second."""
    monkeypatch.setattr(_link, "RESYNC_FIRST_S", 0.0)
    monkeypatch.setattr(_link, "RESYNC_MAX_S", 0.0)


def test_an_outage_changes_nothing_and_the_service_catches_up(reference, fast_resync, caplog):
    transport = FlakyTransport(fail_reports={2, 3, 4})
    tuner, model, opt, data = _setup(transport)
    with caplog.at_level(logging.INFO, logger="autolr.client"):
        lrs = _lrs_of(tuner, model, opt, data)
    schedule, ref_lrs, ref_params, ref_record = reference
    assert tuner.finished and tuner.steps_run == SMALL["total_steps"] == len(lrs)
    assert tuner.schedule == schedule and lrs == ref_lrs
    assert all(s.extra_steps == 0 for s in tuner.schedule)
    for name, value in params_of(model).items():
        assert torch.equal(value, ref_params[name]), name
    # the service holds the same record as the uninterrupted run's
    assert tuner.service_state == "online"
    assert transport.controller.segments == ref_record
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert sum("did not answer in time" in r.getMessage() for r in warnings) == 1
    assert sum("caught up" in r.getMessage() for r in caplog.records) == 1


def test_a_service_back_late_gets_the_record_when_the_run_ends(reference):
    transport = FlakyTransport(fail_reports={2})  # the next sync is 1 s away: after the run
    tuner, model, opt, data = _setup(transport)
    lrs = _lrs_of(tuner, model, opt, data)
    schedule, ref_lrs, _, ref_record = reference
    assert tuner.schedule == schedule and lrs == ref_lrs
    assert tuner.service_state == "online"  # the finishing step synced
    assert transport.controller.segments == ref_record


def test_an_unreachable_controller_at_start_changes_nothing(reference, fast_resync):
    transport = FlakyTransport(fail_starts=2)
    tuner, model, opt, data = _setup(transport)
    # the first instruction was decided here: its LR is already set
    assert tuner.instruction.segment == 0 and opt.param_groups[0]["lr"] == tuner.lr != 0.1
    assert tuner.service_state == "local"
    lrs = _lrs_of(tuner, model, opt, data)
    schedule, ref_lrs, _, ref_record = reference
    assert tuner.schedule == schedule and lrs == ref_lrs
    assert tuner.job_id == "local" and transport.starts == 3
    assert transport.controller.segments == ref_record


def test_a_refusal_leaves_the_run_deciding_here_to_the_budget(reference, caplog):
    tuner, model, opt, data = _setup(FlakyTransport(refuse_at=2))
    with caplog.at_level(logging.ERROR, logger="autolr.client"):
        lrs = _lrs_of(tuner, model, opt, data)
    schedule, ref_lrs, _, _ = reference
    assert tuner.finished and tuner.steps_run == SMALL["total_steps"]
    assert tuner.schedule == schedule and lrs == ref_lrs
    assert tuner.service_state == "detached"
    assert any("no longer syncs" in r.getMessage() for r in caplog.records)


def test_strict_mode_raises_the_transport_error():
    tuner, model, opt, data = _setup(FlakyTransport(fail_reports={1}), strict=True)
    with pytest.raises(TransportError, match="read timeout"):
        run(tuner, model, opt, data)


def test_strict_mode_raises_a_refusal():
    tuner, model, opt, data = _setup(FlakyTransport(refuse_at=1), strict=True)
    with pytest.raises(Conflict):
        run(tuner, model, opt, data)


# ------------------------------------------------------------------ no instruction at all
def _failing_at(monkeypatch, segment: int) -> None:
    """The controller raises on the report of ``segment`` (and every later one)."""
    real = Controller.report

    def report(self, rep):
        if rep.segment >= segment:
            raise RuntimeError("controller bug")
        return real(self, rep)

    monkeypatch.setattr(Controller, "report", report)


@pytest.mark.parametrize("probe_segment", [1, 5])  # stage 0's second probe; stage 1's first
def test_no_instruction_restores_the_stage_snapshot_and_runs_the_final_decay(
    monkeypatch, probe_segment, caplog
):
    total = SMALL["total_steps"]
    config = {"anneal_fraction": 0.25, "total_steps": total}
    _failing_at(monkeypatch, probe_segment)
    tuner, model, opt, data = _setup(LocalTransport(), **config)
    stage_start: dict[int, dict[str, torch.Tensor]] = {}
    first_planned: dict[str, torch.Tensor] = {}
    lrs: list[float] = []

    def at_step(_: int) -> None:
        inst = tuner.instruction
        lrs.append(opt.param_groups[0]["lr"])
        if tuner.segment_step == 0 and inst.snapshot:
            stage_start[inst.stage] = params_of(model)
        if tuner.segment_step == 0 and inst.segment == probe_segment + 1:
            first_planned.update(params_of(model))

    with caplog.at_level(logging.ERROR, logger="autolr.client"):
        run(tuner, model, opt, data, on_step=at_step)
    assert tuner.finished and tuner.steps_run == total == len(lrs)
    ran = tuner.schedule
    assert ran[probe_segment].kind == "probe"
    planned = ran[probe_segment + 1 :]
    assert [s.kind for s in planned] == ["train", "anneal"]
    assert planned[-1].steps == round(0.25 * total)
    # back to the stage snapshot: the probe's state is gone
    stage = ran[probe_segment].stage
    for name, value in first_planned.items():
        assert torch.equal(value, stage_start[stage][name]), name
    trained = [s for s in ran[: probe_segment + 1] if s.kind != "probe"]
    expected_lr = trained[-1].lr_end if trained else None
    if expected_lr is not None:
        assert planned[0].lr == expected_lr
    assert planned[-1].lr_end == pytest.approx(planned[0].lr * 1e-3)
    assert lrs[-1] == pytest.approx(planned[-1].lr_end)
    assert all(torch.isfinite(v).all() for v in params_of(model).values())
    assert any("on its own plan" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize("as_tensor", [False, True])
def test_huge_and_non_finite_losses_never_raise_out_of_step(as_tensor):
    # A whole probe of 1e308 losses: their mean overflows (this raised OverflowError before).
    tuner, model, opt, data = _setup(LocalTransport())
    odd = [1e308, -1e308, math.inf, math.nan, 1e308, 1e308, 1e308]
    step = 0
    while not tuner.finished:
        loss = torch.nn.functional.mse_loss(model(data[0][:32]), data[1][:32])
        loss.backward()
        opt.step()
        opt.zero_grad()
        value = loss.item()
        if 20 <= step < 60:
            value = 1e308
        elif 60 <= step < 200:
            value = odd[step % len(odd)]
        tuner.step(torch.tensor(value) if as_tensor else value)
        step += 1
        assert step <= SMALL["total_steps"]
    assert step == SMALL["total_steps"] == tuner.steps_run


def test_a_job_created_on_the_service_while_syncing_is_in_the_checkpoint(reference):
    transport = FlakyTransport(fail_starts=1)  # created by the finishing step's sync
    tuner, model, opt, data = _setup(transport)
    assert tuner.job_id is None
    _lrs_of(tuner, model, opt, data)
    assert tuner.service_state == "online" and tuner.job_id == "local"
    state = tuner.state_dict()
    assert state["job_id"] == "local" and state["transport"]["kind"] == "local"
