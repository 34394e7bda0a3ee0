"""The Hugging Face callback: a real Trainer run whose optimizer LR is the tuner's at every step."""

from __future__ import annotations

import math

import pytest
import torch
import transformers
from client_helpers import SMALL, make_data, make_model

from autolr.client.transformers import STATE_FILE, AutoLRCallback

#: `SMALL` without its budget: the callback takes the Trainer's.
TUNER = {k: v for k, v in SMALL.items() if k != "total_steps"}
BUDGET = SMALL["total_steps"]


class TinyRegressor(torch.nn.Module):
    """The smallest model the Trainer accepts: returns {"loss": ...} when given labels."""

    def __init__(self) -> None:
        super().__init__()
        self.net = make_model()

    def forward(self, x, labels=None):
        pred = self.net(x)
        out = {"logits": pred}
        if labels is not None:
            out["loss"] = torch.nn.functional.mse_loss(pred, labels)
        return out


class Pairs(torch.utils.data.Dataset):
    def __init__(self) -> None:
        self.x, self.y = make_data(n=256)

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i):
        return {"x": self.x[i], "labels": self.y[i]}


class RecordLR(transformers.TrainerCallback):
    """The LR each optimizer step actually uses (read right before the step)."""

    def __init__(self) -> None:
        self.lrs: list[float] = []

    def on_pre_optimizer_step(self, args, state, control, optimizer=None, **kwargs):
        self.lrs.append(optimizer.param_groups[0]["lr"])


def _expected_lrs(schedule):
    """Each segment's per-step LRs: its linear ramp from lr to lr_end (probe tails, anneal)."""
    return [
        seg.lr + (seg.lr_end - seg.lr) * (j / (seg.steps - 1) if seg.steps > 1 else 0.0)
        for seg in schedule
        for j in range(seg.steps)
    ]


class StopAt(transformers.TrainerCallback):
    """Stops training at ``step`` (after the Trainer saved its checkpoint), as a preemption."""

    def __init__(self, step: int) -> None:
        self.step = step

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step >= self.step:
            control.should_training_stop = True


def _args(tmp_path, **overrides):
    options = {
        "output_dir": str(tmp_path),
        "max_steps": BUDGET,
        "per_device_train_batch_size": 32,
        "learning_rate": 5e-2,
        "save_strategy": "no",
        "report_to": "none",
        "use_cpu": True,
        "disable_tqdm": True,
        "dataloader_num_workers": 0,
        "seed": 0,
        **overrides,
    }
    return transformers.TrainingArguments(**options)


def _mse(outputs, labels, num_items_in_batch=None):
    """A compute_loss_func: the model returns only logits when the Trainer keeps the labels."""
    return torch.nn.functional.mse_loss(outputs["logits"], labels)


@pytest.mark.parametrize("accumulation", [1, 2])
def test_trainer_runs_at_the_tuners_lr_despite_its_own_scheduler(tmp_path, accumulation):
    cb, rec = AutoLRCallback(**SMALL), RecordLR()
    args = transformers.TrainingArguments(
        output_dir=str(tmp_path),
        max_steps=BUDGET,
        per_device_train_batch_size=32 // accumulation,
        gradient_accumulation_steps=accumulation,
        learning_rate=5e-2,
        lr_scheduler_type="linear",  # would decay the LR every step if left alone
        warmup_steps=50,
        weight_decay=0.01,
        logging_steps=7,
        save_strategy="steps",
        save_steps=150,
        report_to="none",
        use_cpu=True,
        disable_tqdm=True,
        dataloader_num_workers=0,
        seed=0,
    )
    trainer = transformers.Trainer(
        model=TinyRegressor(), args=args, train_dataset=Pairs(), callbacks=[cb, rec]
    )
    trainer.train()
    tuner = cb.tuner
    assert tuner.finished
    assert trainer.state.global_step == SMALL["total_steps"]
    expected = _expected_lrs(tuner.schedule)
    assert rec.lrs == pytest.approx(expected, rel=1e-12)
    # the Trainer decay/no-decay groups share the LR: both follow the tuner
    assert len(trainer.optimizer.param_groups) == 2
    logged = [
        (h["step"], h["learning_rate"]) for h in trainer.state.log_history if "learning_rate" in h
    ]
    assert logged and all(lr == pytest.approx(expected[step - 1], rel=1e-6) for step, lr in logged)
    saved = torch.load(tmp_path / "checkpoint-150" / STATE_FILE)
    assert saved["tuner"]["instruction"] is not None


def test_the_budget_comes_from_the_trainers_epochs(tmp_path):
    cb, rec = AutoLRCallback(**TUNER), RecordLR()
    # 256 examples, 32 a step: 8 optimizer steps an epoch
    args = _args(tmp_path, max_steps=-1, num_train_epochs=BUDGET // 8)
    trainer = transformers.Trainer(
        model=TinyRegressor(), args=args, train_dataset=Pairs(), callbacks=[cb, rec]
    )
    trainer.train()
    assert cb.tuner.config.total_steps == BUDGET
    assert cb.tuner.finished and trainer.state.global_step == BUDGET
    assert rec.lrs == pytest.approx(_expected_lrs(cb.tuner.schedule), rel=1e-12)


@pytest.mark.parametrize(("max_steps", "total_steps"), [(800, 1200), (1200, 800)])
def test_a_budget_that_differs_from_the_trainers_is_refused(tmp_path, max_steps, total_steps):
    cb = AutoLRCallback(**{**TUNER, "total_steps": total_steps})
    trainer = transformers.Trainer(
        model=TinyRegressor(),
        args=_args(tmp_path, max_steps=max_steps),
        train_dataset=Pairs(),
        callbacks=[cb],
    )
    with pytest.raises(ValueError, match=rf"total_steps={total_steps} does not match") as err:
        trainer.train()
    assert f"budget of {max_steps} optimizer steps" in str(err.value)
    assert f"TrainingArguments(max_steps={total_steps})" in str(err.value)
    assert trainer.state.global_step == 0


def test_resume_from_checkpoint_continues_the_job(tmp_path):
    ref_cb = AutoLRCallback(**TUNER)
    ref = transformers.Trainer(
        model=TinyRegressor(),
        args=_args(tmp_path / "ref"),
        train_dataset=Pairs(),
        callbacks=[ref_cb],
    )
    ref.train()

    stop = 130  # inside stage 1's second probe
    args = _args(tmp_path / "run", save_strategy="steps", save_steps=stop)
    cb = AutoLRCallback(**TUNER)
    first = transformers.Trainer(
        model=TinyRegressor(), args=args, train_dataset=Pairs(), callbacks=[cb, StopAt(stop)]
    )
    first.train()
    assert cb.tuner.instruction.kind == "probe" and cb.tuner.steps_run == stop

    cb2 = AutoLRCallback(**TUNER)  # a fresh process: nothing loaded by hand
    resumed = transformers.Trainer(
        model=TinyRegressor(), args=args, train_dataset=Pairs(), callbacks=[cb2]
    )
    resumed.train(resume_from_checkpoint=str(tmp_path / "run" / f"checkpoint-{stop}"))
    assert cb2.tuner.finished and resumed.state.global_step == BUDGET
    assert cb2.tuner.schedule == ref_cb.tuner.schedule
    for a, b in zip(resumed.model.parameters(), ref.model.parameters(), strict=True):
        torch.testing.assert_close(a, b)


def test_a_resume_without_the_tuners_state_is_refused(tmp_path):
    stop = 130
    args = _args(tmp_path, save_strategy="steps", save_steps=stop)
    first = transformers.Trainer(
        model=TinyRegressor(),
        args=args,
        train_dataset=Pairs(),
        callbacks=[AutoLRCallback(**TUNER), StopAt(stop)],
    )
    first.train()
    folder = tmp_path / f"checkpoint-{stop}"
    (folder / STATE_FILE).unlink()
    resumed = transformers.Trainer(
        model=TinyRegressor(), args=args, train_dataset=Pairs(), callbacks=[AutoLRCallback(**TUNER)]
    )
    with pytest.raises(ValueError, match=rf"resumes at step {stop}, but no autolr.pt was found"):
        resumed.train(resume_from_checkpoint=str(folder))


@pytest.mark.parametrize("accumulation", [1, 2])
def test_compute_loss_func_with_gradient_accumulation(tmp_path, accumulation):
    cb = AutoLRCallback(**TUNER)
    args = _args(
        tmp_path,
        per_device_train_batch_size=32 // accumulation,
        gradient_accumulation_steps=accumulation,
        logging_steps=1,
    )
    trainer = transformers.Trainer(
        model=TinyRegressor(),
        args=args,
        train_dataset=Pairs(),
        compute_loss_func=cb.track_loss(_mse),
        callbacks=[cb],
    )
    trainer.train()
    assert cb.tuner.finished and trainer.state.global_step == BUDGET
    # the tuner's losses are the ones the Trainer logs, step for step
    logged = {h["step"]: h["loss"] for h in trainer.state.log_history if "loss" in h}
    assert len(logged) == BUDGET
    for record in cb.tuner.transport.controller.segments:
        steps = range(record.start_step + 1, record.start_step + record.steps_run + 1)
        mean = math.fsum(logged[s] for s in steps) / record.steps_run
        assert record.loss_mean == pytest.approx(mean, rel=1e-4)


class SeeLogs(transformers.TrainerCallback):
    """Stands for a ``report_to`` integration: it runs before user callbacks."""

    def __init__(self) -> None:
        self.logs: list[dict] = []

    def on_log(self, args, state, control, logs=None, **kwargs):
        self.logs.append(dict(logs))


def test_logs_mark_the_probe_steps(tmp_path):
    cb, integration = AutoLRCallback(**TUNER), SeeLogs()
    trainer = transformers.Trainer(
        model=TinyRegressor(),
        args=_args(tmp_path, logging_steps=10),
        train_dataset=Pairs(),
        callbacks=[integration, cb],
    )
    trainer.remove_callback(cb)  # as the README says: first, so integrations see the marks
    trainer.callback_handler.callbacks.insert(0, cb)
    trainer.train()
    seen = [h for h in integration.logs if "loss" in h]
    assert len(seen) == BUDGET // 10 and all("autolr/probe_steps" in h for h in seen)
    kinds = [seg.kind for seg in cb.tuner.schedule for _ in range(seg.steps)]
    logs = [h for h in trainer.state.log_history if "loss" in h]
    assert len(logs) == BUDGET // 10
    for h in logs:
        window = kinds[h["step"] - 10 : h["step"]]
        assert h["autolr/probe_steps"] == window.count("probe")
    assert any(h["autolr/probe_steps"] == 10 for h in logs)
    assert any(h["autolr/probe_steps"] == 0 for h in logs)
