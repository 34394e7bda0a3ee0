"""The tuner against a service whose record moves under it (issue 16), without a server.

`FakeService` keeps a record the way the real service does (answers a recorded report again,
refuses other losses for it, refuses a later segment naming the one it awaits, shows its
schedule and its recorded reports) and can lose answers, go down, or be restored from an older
backup. Whatever it does, the run ends at exactly the budget with the uninterrupted schedule,
and the service ends with the run's record unless its record contradicts the run.
"""

from __future__ import annotations

import logging
import math
from typing import Any

import pytest
import torch
from client_helpers import SMALL, make_data, make_model, run

from autolr import Conflict
from autolr.client import AutoLR, LocalTransport, TransportError, _link
from autolr.client._link import same_report
from autolr.client.errors import ClientError
from autolr.controller import Controller
from autolr.protocol import Instruction, Report, report_difference


class Differs(ClientError):
    reconcilable = True


class FakeService:
    """An in-memory service with the real one's record rules."""

    def __init__(self) -> None:
        self.config: Any = None
        self.ctl: Controller | None = None
        self.reports: list[Report] = []
        self.answers: list[Instruction] = []
        self.down = False
        self.lose_answer_at: int | None = None  # commit this segment's report, lose the answer
        self.calls = 0

    @property
    def job_id(self) -> str | None:
        return "fake" if self.ctl is not None else None

    def start(self, config: Any) -> Instruction:
        if self.down:
            raise TransportError("down")
        self.config, self.ctl = config, Controller(config)
        self.answers = [self.ctl.start()]
        return self.answers[0]

    def report(self, report: Report) -> Instruction:
        self.calls += 1
        if self.down:
            raise TransportError("down")
        assert self.ctl is not None
        n = len(self.reports)
        if report.segment < n:
            if same_report(self.reports[report.segment], report):
                return self.answers[report.segment + 1]
            raise Differs(f"segment {report.segment} differs")
        if report.segment > n:
            raise Conflict(expected=n, got=report.segment)
        inst = self.ctl.report(report)
        self.reports.append(report)
        self.answers.append(inst)
        if self.lose_answer_at == report.segment:
            self.lose_answer_at = None
            raise TransportError("answer lost")
        return inst

    def job(self) -> dict[str, Any]:
        if self.down:
            raise TransportError("down")
        return {
            "schedule": [a.model_dump(mode="json") for a in self.answers[:-1]],
            "current": self.answers[-1].model_dump(mode="json"),
        }

    def recorded_reports(self, start: int, stop: int | None = None) -> list[Report]:
        if self.down:
            raise TransportError("down")
        return self.reports[start:stop]

    def rewind(self, k: int, replace: dict[int, Report] | None = None) -> None:
        """Restore an older backup: the first ``k`` reports (some replaced, if given)."""
        kept = self.reports[:k]
        for i, report in (replace or {}).items():
            kept[i] = report
        self.ctl = Controller(self.config)
        self.answers = [self.ctl.start()]
        self.reports = []
        for r in kept:
            self.answers.append(self.ctl.report(r))
            self.reports.append(r)

    def state_dict(self) -> dict[str, Any]:
        return {"kind": "fake"}

    def load_state_dict(self, state: dict[str, Any]) -> Instruction:
        return self.answers[-1]

    def close(self) -> None:
        return None


def _setup(transport: Any) -> tuple[AutoLR, torch.nn.Module, torch.optim.Optimizer, Any]:
    model, data = make_model(), make_data()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    return AutoLR(model, opt, transport=transport, **SMALL), model, opt, data


@pytest.fixture(scope="module")
def reference() -> list[Any]:
    tuner, model, opt, data = _setup(LocalTransport())
    run(tuner, model, opt, data)
    return tuner.schedule


@pytest.fixture(autouse=True)
def _fast_resync(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_link, "RESYNC_FIRST_S", 0.0)
    monkeypatch.setattr(_link, "RESYNC_MAX_S", 0.0)


def _record_matches(service: FakeService, tuner: AutoLR) -> None:
    assert [(a.kind, a.lr, a.steps) for a in service.answers[:-1]] == [
        (s.kind, s.lr, s.steps) for s in tuner.schedule
    ]
    assert service.answers[-1].finished


def test_a_lost_answer_is_decided_here_and_the_resent_report_answered_again(reference):
    service = FakeService()
    service.lose_answer_at = 3
    tuner, model, opt, data = _setup(service)
    run(tuner, model, opt, data)
    assert tuner.finished and tuner.steps_run == SMALL["total_steps"]
    assert tuner.schedule == reference
    assert tuner.service_state == "online"
    _record_matches(service, tuner)


def test_a_service_restored_from_an_older_backup_gets_the_missing_reports_again(reference, caplog):
    service = FakeService()
    tuner, model, opt, data = _setup(service)
    step = run(tuner, model, opt, data, stop=200)
    assert len(service.reports) > 5
    service.rewind(2)  # the database lost its last reports
    with caplog.at_level(logging.WARNING, logger="autolr.client"):
        run(tuner, model, opt, data, start=step)
    assert tuner.schedule == reference and tuner.service_state == "online"
    assert any("sending them again" in r.getMessage() for r in caplog.records)
    _record_matches(service, tuner)


def test_a_service_whose_record_contradicts_the_run_is_left_and_the_run_ends_on_budget(
    reference, caplog
):
    service = FakeService()
    tuner, model, opt, data = _setup(service)
    step = run(tuner, model, opt, data, stop=200)
    ran = tuner._link.answers
    original = list(service.reports)
    # an older backup in which one probe had other losses, such that a decision differs
    found = False
    for k in range(2, len(original)):
        for j in range(k):
            old = original[j]
            for scale in (0.01, 100.0):
                losses = [x * scale for x in old.train_losses]
                service.reports = list(original)
                service.rewind(k, replace={j: old.model_copy(update={"train_losses": losses})})
                found = service.answers[k] != ran[k]
                if found:
                    break
            if found:
                break
        if found:
            break
    differs = [i for i, a in enumerate(service.answers) if a != ran[i]]
    assert differs, "no contradicting record found"
    with caplog.at_level(logging.ERROR, logger="autolr.client"):
        run(tuner, model, opt, data, start=step)
    assert tuner.finished and tuner.steps_run == SMALL["total_steps"]
    assert tuner.schedule == reference
    assert tuner.service_state == "detached"
    errors = [r.getMessage() for r in caplog.records if "no longer syncs" in r.getMessage()]
    assert len(errors) == 1 and "the run followed" in errors[0]


def test_a_resumed_run_behind_the_service_follows_its_record_while_it_is_down(reference):
    service = FakeService()
    tuner, model, opt, data = _setup(service)
    step = run(tuner, model, opt, data, stop=60)
    saved = tuner.state_dict()
    params = {k: v.clone() for k, v in model.state_dict().items()}
    opt_state = opt.state_dict()
    run(tuner, model, opt, data, start=step, stop=250)  # the service's job goes further
    service.down = True

    model, data = make_model(), make_data()
    model.load_state_dict(params)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    opt.load_state_dict(opt_state)
    resumed = AutoLR(model, opt, transport=service, resume=saved, **SMALL)
    at = run(resumed, model, opt, data, start=step, stop=150)  # decided here meanwhile
    assert resumed.service_state == "local"
    service.down = False
    run(resumed, model, opt, data, start=at)
    assert resumed.finished and resumed.steps_run == SMALL["total_steps"]
    assert resumed.schedule == reference
    assert resumed.service_state == "online"
    _record_matches(service, resumed)


_RECORDED = Report(
    segment=3, kind="probe", train_losses=[1.0, math.nan, 0.5], val_losses=[(2, 0.7)]
)


def test_the_link_compares_reports_as_the_wire_carries_them() -> None:
    local = _RECORDED.model_copy(update={"train_losses": [1.0, math.inf, 0.5]})
    assert report_difference(_RECORDED, local) is not None  # in this process, inf is not NaN
    assert same_report(_RECORDED, local)  # but both travel as null: the service holds the same
    assert not same_report(_RECORDED, _RECORDED.model_copy(update={"extra_steps": 5}))
    assert not same_report(_RECORDED, _RECORDED.model_copy(update={"kind": None}))
    assert not same_report(
        _RECORDED, _RECORDED.model_copy(update={"train_losses": [1.0, 2.0, 0.5]})
    )
    assert same_report(None, None) and not same_report(_RECORDED, None)
