"""`ReplaySchedule` replays a tuned schedule step for step, without the service."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest
import torch

from autolr.cli_jobs import schedule_rows, write_csv
from autolr.client import AutoLR, LocalTransport, ReplaySchedule

#: Per-group LRs of the optimizer: the second group runs at a tenth of the first.
GROUP_LRS = (0.05, 0.005)


def make_optimizer(seed: int = 0) -> tuple[torch.nn.Module, torch.optim.Optimizer]:
    torch.manual_seed(seed)
    model = torch.nn.Linear(4, 1)
    optimizer = torch.optim.SGD(
        [
            {"params": [model.weight], "lr": GROUP_LRS[0]},
            {"params": [model.bias], "lr": GROUP_LRS[1]},
        ],
        momentum=0.9,
    )
    return model, optimizer


def tuned_run(**config: Any) -> tuple[AutoLR, list[tuple[int, str, list[float]]]]:
    """An embedded-mode tuner on a tiny regression; per step: (segment, kind, group LRs)."""
    model, optimizer = make_optimizer()
    tuner = AutoLR(
        model,
        optimizer,
        min_lr=1e-3,
        max_lr=0.5,
        total_steps=400,
        warmup_steps=20,
        min_stages=2,
        probes_per_stage=3,
        initial_probes=2,
        seed=5,
        probe_budget=None,  # every stage searches: the reuse cases need probes to reuse
        **config,
    )
    generator = torch.Generator().manual_seed(1)
    target = torch.randn(4, 1, generator=generator)
    steps: list[tuple[int, str, list[float]]] = []
    while not tuner.finished:
        x = torch.randn(16, 4, generator=generator)
        loss = torch.nn.functional.mse_loss(model(x), x @ target)
        optimizer.zero_grad()
        loss.backward()
        inst = tuner.instruction
        assert inst is not None
        steps.append((inst.segment, inst.kind, [float(g["lr"]) for g in optimizer.param_groups]))
        optimizer.step()
        tuner.step(loss)
    return tuner, steps


def replayed(schedule: Any, steps: int, **kwargs: Any) -> list[list[float]]:
    """The group LRs a fresh optimizer gets from `ReplaySchedule` for ``steps`` steps."""
    _model, optimizer = make_optimizer(seed=1)
    scheduler = ReplaySchedule(optimizer, schedule, **kwargs)
    lrs = []
    for _ in range(steps):
        lrs.append([float(g["lr"]) for g in optimizer.param_groups])
        optimizer.step()
        scheduler.step()
    return lrs


@pytest.fixture(scope="module")
def plain_run() -> tuple[AutoLR, list[tuple[int, str, list[float]]]]:
    """Without probe reuse, the final model's history is exactly the non-probe segments."""
    return tuned_run(reuse_best_probe=False)


@pytest.fixture(scope="module")
def reuse_run() -> tuple[AutoLR, list[tuple[int, str, list[float]]]]:
    """With probe reuse (the default), training continues from a probe's end state."""
    return tuned_run(reuse_best_probe=True)


def export_of(tuner: AutoLR) -> list[dict[str, Any]]:
    """The export rows, built from the embedded controller's record (the server's shape)."""
    transport = tuner.transport
    assert isinstance(transport, LocalTransport)
    return schedule_rows(transport.controller.record())


def test_replay_of_tuner_schedule_reproduces_every_non_probe_lr(plain_run: Any) -> None:
    tuner, steps = plain_run
    expected = [lrs for _seg, kind, lrs in steps if kind != "probe"]
    assert {kind for _s, kind, _l in steps} == {"warmup", "probe", "train", "anneal"}
    assert len(expected) < len(steps)
    got = replayed(tuner.schedule, len(expected))
    assert got == expected  # exact: the same float arithmetic as the tuner
    assert all(lrs[1] == lrs[0] * (GROUP_LRS[1] / GROUP_LRS[0]) for lrs in got)


def test_replay_of_the_export_includes_the_probes_training_continued_from(
    reuse_run: Any,
) -> None:
    tuner, steps = reuse_run
    rows = export_of(tuner)
    kept = {row["segment"] for row in rows if row["kept"]}
    assert kept, "the run reused no probe; the test would prove nothing"
    # only a probe's constant part is kept: its cooldown tail never reached the trained model
    assert all(row["lr"] == row["lr_end"] for row in rows if row["kept"])
    expected = [lrs for seg, kind, lrs in steps if kind != "probe" or seg in kept]
    assert replayed(rows, len(expected)) == expected
    scheduler = ReplaySchedule(make_optimizer()[1], rows)
    assert scheduler.total_steps == len(expected)


def test_csv_and_json_round_trips_replay_the_same_lrs(plain_run: Any, tmp_path: Path) -> None:
    tuner, steps = plain_run
    rows = export_of(tuner)
    csv_path, json_path = tmp_path / "schedule.csv", tmp_path / "schedule.json"
    with csv_path.open("w", newline="") as stream:
        write_csv(rows, stream)
    json_path.write_text(json.dumps({"config": {}, "schedule": rows}))
    expected = [lrs for _seg, kind, lrs in steps if kind != "probe"]
    assert replayed(rows, len(expected)) == expected
    assert replayed(csv_path, len(expected)) == expected
    assert replayed(str(json_path), len(expected)) == expected
    assert replayed(json.loads(json_path.read_text()), len(expected)) == expected


def test_include_probes_replays_every_segment_in_order(plain_run: Any) -> None:
    tuner, steps = plain_run
    assert replayed(tuner.schedule, len(steps), include_probes=True) == [s[2] for s in steps]


def test_the_last_lr_holds_after_the_schedule() -> None:
    rows = [{"kind": "anneal", "lr": 0.1, "lr_end": 0.001, "steps": 5}]
    lrs = replayed(rows, 8)
    assert [g[0] for g in lrs[4:]] == [lrs[4][0]] * 4
    assert lrs[4][0] == pytest.approx(0.001)


def test_extra_steps_keep_the_segments_last_lr() -> None:
    rows = [
        {"kind": "train", "lr": 0.1, "lr_end": 0.1, "steps": 2, "extra_steps": 3},
        {"kind": "train", "lr": 0.02, "lr_end": 0.02, "steps": 1},
    ]
    assert [g[0] for g in replayed(rows, 6)] == [0.1] * 5 + [0.02]


def test_a_resumed_scheduler_continues_where_it_stopped(plain_run: Any) -> None:
    tuner, _steps = plain_run
    _model, optimizer = make_optimizer()
    scheduler = ReplaySchedule(optimizer, tuner.schedule)
    for _ in range(37):
        optimizer.step()
        scheduler.step()
    buffer = io.BytesIO()
    torch.save(scheduler.state_dict(), buffer)
    buffer.seek(0)
    state = torch.load(buffer, weights_only=True)  # plain numbers: safe to load
    _model, fresh_optimizer = make_optimizer()
    resumed = ReplaySchedule(fresh_optimizer, tuner.schedule)
    resumed.load_state_dict(state)
    for _ in range(20):
        optimizer.step()
        scheduler.step()
        fresh_optimizer.step()
        resumed.step()
        assert resumed.get_last_lr() == scheduler.get_last_lr()


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        ([{"kind": "cosine", "lr": 0.1, "lr_end": 0.1, "steps": 5}], "kind='cosine'"),
        ([{"kind": "train", "lr": -1.0, "lr_end": 0.1, "steps": 5}], "lr > 0"),
        ([{"kind": "train", "lr": 0.1, "lr_end": 0.1, "steps": -2}], "steps >= 0"),
        ([{"kind": "probe", "lr": 0.1, "lr_end": 0.1, "steps": 5}], "include_probes=True"),
        ({"segments": []}, "under 'schedule'"),
    ],
)
def test_bad_schedules_are_refused_with_a_reason(rows: Any, message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("(", r"\(")):
        ReplaySchedule(make_optimizer()[1], rows)
