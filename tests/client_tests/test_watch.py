"""A tuner you can watch: stage lines, the end-of-run table, results that export, replay and plot,
and the PyTorch scheduler conventions (`get_last_lr`, another scheduler noticed)."""

from __future__ import annotations

import contextlib
import csv
import io
import json
import warnings

import pytest
import torch
from client_helpers import SMALL, make_data, make_model, run, train_step

from autolr.cli_jobs import EXPORT_COLUMNS, Format, _write
from autolr.client import AutoLR, ReplaySchedule


def _sgd(model: torch.nn.Module) -> torch.optim.Optimizer:
    return torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)


@pytest.fixture(scope="module")
def finished_run():
    """One tuned run (default progress output), with the LR each step trained at."""
    model, data = make_model(), make_data()
    opt = _sgd(model)
    tuner = AutoLR(model, opt, **SMALL)
    lrs: list[float] = []
    out = io.StringIO()
    with contextlib.redirect_stderr(out):
        run(tuner, model, opt, data, on_step=lambda _s: lrs.append(opt.param_groups[0]["lr"]))
    return tuner, lrs, out.getvalue()


def test_by_default_one_line_per_stage_and_a_table_at_the_end(finished_run):
    tuner, _lrs, printed = finished_run
    lines = printed.splitlines()
    stages = tuner.transport.controller.stages
    stage_lines = [line for line in lines if line.startswith("autolr stage ")]
    assert len(stage_lines) == len(stages) >= 2
    total = SMALL["total_steps"]
    for line, record in zip(stage_lines, stages, strict=True):
        assert f"autolr stage {record.stage}: trains lr={record.chosen_lr:.4g}" in line
        assert f"rule {record.decision.rule.value}: lr=" in line
        first_train = next(
            i
            for i, seg in enumerate(tuner.schedule)
            if seg.stage == record.stage and seg.kind == "train"
        )
        done = sum(seg.steps for seg in tuner.schedule[:first_train])
        assert f"step {done}/{total}, {total - done} left" in line
    at = lines.index(next(line for line in lines if line.startswith("autolr finished: 400")))
    table = lines[at + 1 :]
    assert table[0].split() == ["stage", "probes", "probe", "steps", "train", "steps", "lr", "rule"]
    for row, record in zip(table[1:-1], stages, strict=True):
        cells = row.split()
        assert cells[0] == str(record.stage) and cells[1] == str(len(record.probes))
        assert cells[4] == f"{record.chosen_lr:.4g}" and cells[5] == record.decision.rule.value
    assert table[-1].startswith("400 steps, ")


def test_results_export_is_the_servers_export(finished_run, tmp_path):
    tuner, _lrs, _ = finished_run
    results = tuner.results()
    assert results.status == "finished"
    # what `autolr export` writes for the same job record
    job = {**tuner.transport.controller.state_dict(), "job_id": tuner.job_id, "status": "finished"}
    served = io.StringIO()
    _write(job, results.rows, Format.json, served)
    assert json.loads(results.to_json(tmp_path / "run.json")) == json.loads(served.getvalue())
    assert json.loads((tmp_path / "run.json").read_text()) == json.loads(served.getvalue())
    served_csv = io.StringIO()
    _write(job, results.rows, Format.csv, served_csv)
    assert results.to_csv(tmp_path / "run.csv") == served_csv.getvalue()
    with (tmp_path / "run.csv").open(newline="") as stream:
        rows = list(csv.DictReader(stream))
    assert tuple(rows[0]) == EXPORT_COLUMNS
    assert sum(int(r["steps"]) for r in rows) == SMALL["total_steps"]
    assert [r["kind"] for r in rows] == [s.kind for s in tuner.schedule]


@pytest.mark.parametrize("form", ["results", "csv", "json"])
def test_replay_schedule_accepts_the_results(finished_run, tmp_path, form):
    tuner, lrs, _ = finished_run
    results = tuner.results()
    source = {
        "results": results,
        "csv": results.to_csv(tmp_path / "r.csv") and tmp_path / "r.csv",
        "json": results.to_json(tmp_path / "r.json") and tmp_path / "r.json",
    }[form]
    opt = _sgd(make_model())
    sched = ReplaySchedule(opt, source)
    replayed = []
    for _ in range(sched.total_steps):
        replayed.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    # the replay is the tuned run without its probes, LR for LR
    kinds = [seg.kind for seg in tuner.schedule for _ in range(seg.steps)]
    trained = [lr for lr, kind in zip(lrs, kinds, strict=True) if kind != "probe"]
    assert replayed == pytest.approx(trained, rel=1e-12)


def test_the_plot_is_a_png_that_is_not_blank(finished_run, tmp_path):
    pytest.importorskip("matplotlib", reason="plot() needs matplotlib (the dev extra has it)")
    import matplotlib.image

    tuner, _lrs, _ = finished_run
    path = tuner.results().plot(tmp_path / "schedule.png")
    data = (tmp_path / "schedule.png").read_bytes()
    assert path.endswith("schedule.png") and data[:8] == b"\x89PNG\r\n\x1a\n"
    pixels = matplotlib.image.imread(tmp_path / "schedule.png")[..., :3]
    assert pixels.shape[0] > 300 and pixels.shape[1] > 500
    ink = (pixels.sum(axis=-1) < 2.9).mean()  # share of pixels that are not white
    assert 0.01 < ink < 0.5
    blue = ((pixels[..., 2] > 0.6) & (pixels[..., 0] < 0.3)).sum()  # the train segments' colour
    assert blue > 100


def test_get_last_lr_follows_every_group_as_on_a_torch_scheduler():
    model, data = make_model(), make_data()
    first, *rest = list(model.parameters())
    opt = torch.optim.SGD([{"params": [first], "lr": 0.1}, {"params": rest, "lr": 0.01}])
    tuner = AutoLR(model, opt, progress=False, **SMALL)
    seen = []

    def check(_step: int) -> None:
        last = tuner.get_last_lr()
        assert last == [g["lr"] for g in opt.param_groups]
        seen.append(last)

    run(tuner, model, opt, data, on_step=check)
    assert len({tuple(s) for s in seen}) > 3  # it moved with the schedule
    assert all(b == pytest.approx(a * 0.1, rel=1e-12) for a, b in seen)


def test_another_scheduler_writing_the_lr_is_noticed_once_by_name():
    model, data = make_model(), make_data()
    opt = _sgd(model)
    tuner = AutoLR(model, opt, progress=False, **SMALL)
    other = torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.9)
    step = 0
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        while not tuner.finished:
            loss = train_step(model, opt, data, step)
            other.step()
            tuner.step(loss)
            step += 1
    ours = [w for w in caught if issubclass(w.category, RuntimeWarning)]
    assert len(ours) == 1, [str(w.message) for w in caught]
    assert "StepLR" in str(ours[0].message) and "AutoLR set" in str(ours[0].message)
    assert ours[0].filename == __file__  # points at the training loop's tuner.step
    assert tuner.get_last_lr() == [opt.param_groups[0]["lr"]]  # taken back at the boundary


def test_no_warning_without_another_scheduler():
    model, data = make_model(), make_data()
    opt = _sgd(model)
    tuner = AutoLR(model, opt, progress=False, **SMALL)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        run(tuner, model, opt, data)
    assert not [w for w in caught if issubclass(w.category, RuntimeWarning)]


def test_the_on_segment_hook_gets_every_segments_metrics():
    model, data = make_model(), make_data()
    opt = _sgd(model)
    seen: list[dict] = []
    tuner = AutoLR(model, opt, progress=False, on_segment=seen.append, **SMALL)
    losses: list[float] = []
    step = 0
    while not tuner.finished:
        loss = train_step(model, opt, data, step)
        losses.append(loss.item())
        tuner.step(loss)
        step += 1
    assert [(m["segment"], m["kind"], m["lr"], m["steps"]) for m in seen] == [
        (s.segment, s.kind, s.lr, s.steps) for s in tuner.schedule
    ]
    assert seen[-1]["step"] == SMALL["total_steps"]
    start = 0
    for m in seen:
        window = losses[start : m["step"]]
        assert m["step"] - start == m["steps"]
        assert m["loss"] == pytest.approx(sum(window) / len(window), rel=1e-5)
        start = m["step"]
    # one statistic of a segment's losses: the hook's is the one the controller logged
    logged = tuner.transport.controller.segments
    assert [m["loss"] for m in seen] == [record.loss_mean for record in logged]


def test_a_failing_hook_does_not_stop_training(caplog):
    model, data = make_model(), make_data()
    opt = _sgd(model)

    def broken(_metrics: dict) -> None:
        raise RuntimeError("the dashboard is down")

    tuner = AutoLR(model, opt, progress=False, on_segment=broken, **SMALL)
    run(tuner, model, opt, data)
    assert tuner.finished
    assert any("on_segment hook failed" in r.getMessage() for r in caplog.records)
