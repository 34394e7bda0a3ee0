"""The controller state holds what decisions read, so its size does not grow with the job.

Issue 19: format 1 held every segment and stage record, so the state (parsed and rewritten on
every report by the server) grew ~1.8 KB per segment. Now the history lives beside the state
(`Controller.history`, `take_records`) and decisions read only the state.
"""

from __future__ import annotations

import json

from autolr import Controller, TunerConfig
from autolr.controller import History
from autolr.protocol import Branch, Instruction, Report
from autolr.search import RandomSearcher
from autolr.simulate import NoisyQuadratic

OPEN = TunerConfig(
    min_lr=1e-3,
    max_lr=1.0,
    tau_min=20,
    tau_max=40,
    probes_per_stage=3,
    initial_probes=3,
    seed=2,
)


def _report(model: NoisyQuadratic, inst: Instruction) -> Report:
    """The model's report; every fifth train segment with a cooldown branch inside."""
    report = model.follow(inst)
    if inst.kind == "train" and inst.segment % 5 == 0:
        branch = Branch(at=1, steps=4, lr=inst.lr, lr_end=inst.lr * 1e-3, train_losses=[0.3] * 4)
        report = report.model_copy(update={"branches": [branch]})
    return report


def test_the_state_stays_bounded_over_an_open_ended_job() -> None:
    ctl, model = Controller(OPEN, searcher=RandomSearcher()), NoisyQuadratic(seed=1)
    inst = ctl.start()
    sizes: list[int] = []
    while inst.segment < 600:
        inst = ctl.report(_report(model, inst))
        sizes.append(len(json.dumps(ctl.state_dict())))
    early, late = max(sizes[20:200]), max(sizes[400:600])
    # format 1 grew ~3x between these windows; what is left varies with the latest stage
    assert late <= 1.25 * early, (early, late)
    assert len(ctl.segments) == 600 and len(ctl.stages) > 50  # the history is all there


def test_decisions_read_only_the_state() -> None:
    """Rebuilt from the state alone (no history) at any point, the job decides identically."""
    ctl, model = Controller(OPEN, searcher=RandomSearcher()), NoisyQuadratic(seed=3)
    inst = ctl.start()
    reports = []
    while inst.segment < 160:
        reports.append(_report(model, inst))
        inst = ctl.report(reports[-1])
    for stop in (0, 7, 40, 111):
        again = Controller(OPEN, searcher=RandomSearcher())
        again.start()
        for report in reports[:stop]:
            again.report(report)
        again = Controller.from_state_dict(
            json.loads(json.dumps(again.state_dict())), searcher=RandomSearcher()
        )
        answers = [again.report(report) for report in reports[stop:]]
        assert answers[-1] == inst
        assert [a.segment for a in answers] == list(range(stop + 1, 161))
        made = again.take_records()
        assert made.segments == ctl.history.segments[stop:]
        assert again.stages[-1] == ctl.stages[-1]


def test_records_are_handed_out_once_and_add_up_to_the_history() -> None:
    ctl, model = Controller(OPEN, searcher=RandomSearcher()), NoisyQuadratic(seed=4)
    inst = ctl.start()
    taken = History()
    while inst.segment < 120:
        inst = ctl.report(_report(model, inst))
        made = ctl.take_records()
        assert len(made.segments) == 1 and len(made.stages) <= 1
        taken.stages += made.stages
        taken.segments += made.segments
        taken.branches += made.branches
    assert ctl.take_records() == History()
    assert taken == ctl.history and taken.branches
    # the finished stages, then the running one in the state
    assert [s.stage for s in ctl.stages] == list(range(len(taken.stages) + 1))
