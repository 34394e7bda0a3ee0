"""The training run comes first: an unreachable or refusing controller never stops it."""

from __future__ import annotations

import logging

import pytest
import torch
from client_helpers import SMALL, make_data, make_model, run

from autolr import Conflict
from autolr.client import AutoLR, LocalTransport, TransportError


class FlakyTransport(LocalTransport):
    """The embedded controller behind a link that drops chosen calls (1-based counts)."""

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
    return AutoLR(model, opt, transport=transport, **SMALL, **kw), model, opt, data


def test_lost_reports_are_retried_with_backoff_and_extra_steps_are_counted(caplog):
    transport = FlakyTransport(fail_reports={2, 3})
    tuner, model, opt, data = _setup(transport)
    lrs = []
    with caplog.at_level(logging.INFO, logger="autolr.client"):
        run(tuner, model, opt, data, on_step=lambda _: lrs.append(opt.param_groups[0]["lr"]))
    assert tuner.finished
    seg = tuner.schedule[1]
    # failed at the boundary, retried after 1 step (failed), then after 2 more (succeeded)
    assert seg.extra_steps == 3
    assert transport.reports == len(tuner.schedule) + 2
    assert lrs[seg.steps * 2 : seg.steps * 2 + 3] == [seg.lr_end] * 3  # the LR is kept meanwhile
    assert sum(s.steps + s.extra_steps for s in tuner.schedule) == SMALL["total_steps"]
    assert tuner.steps_run == SMALL["total_steps"]
    # one outage (two failed attempts): warned once, and once more when it is over
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert sum("controller unreachable" in r.getMessage() for r in warnings) == 1
    assert sum("reachable again after 3 extra steps" in r.getMessage() for r in caplog.records) == 1


def test_strict_mode_raises_the_transport_error():
    tuner, model, opt, data = _setup(FlakyTransport(fail_reports={1}), strict=True)
    with pytest.raises(TransportError, match="read timeout"):
        run(tuner, model, opt, data)


def test_an_unreachable_controller_at_start_leaves_the_users_lr_until_it_answers():
    tuner, model, opt, data = _setup(FlakyTransport(fail_starts=2))
    assert tuner.job_id is None and tuner.instruction is None
    assert opt.param_groups[0]["lr"] == 0.1
    run(tuner, model, opt, data, stop=3)  # retries after 1 step (fails), then 2 more
    assert tuner.job_id == "local"
    assert tuner.instruction.segment == 0 and tuner.lr == opt.param_groups[0]["lr"]
    run(tuner, model, opt, data, start=3)
    assert sum(s.steps for s in tuner.schedule) == SMALL["total_steps"]


def test_a_refusal_detaches_the_tuner_and_training_goes_on(caplog):
    tuner, model, opt, data = _setup(FlakyTransport(refuse_at=2))
    with caplog.at_level(logging.ERROR, logger="autolr.client"):
        run(tuner, model, opt, data, stop=600)
    assert not tuner.finished
    assert len(tuner.schedule) == 2
    assert tuner.steps_run == 600
    assert any("detaches" in r.getMessage() for r in caplog.records)


def test_strict_mode_raises_a_refusal():
    tuner, model, opt, data = _setup(FlakyTransport(refuse_at=1), strict=True)
    with pytest.raises(Conflict):
        run(tuner, model, opt, data)
