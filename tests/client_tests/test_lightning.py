"""The Lightning callback: a real Trainer run, its LR under the tuner's control, and resume."""

from __future__ import annotations

import csv
import warnings

import lightning.pytorch as pl
import pytest
import torch
from client_helpers import SMALL, assert_same_tensors, make_data, make_model
from lightning.pytorch.loggers import CSVLogger
from torch.utils.data import DataLoader, TensorDataset

from autolr.client.lightning import AutoLRCallback

# Lightning 2.6 calls a torch pytree API that torch 2.13 deprecates: third-party noise.
pytestmark = pytest.mark.filterwarnings(
    r"ignore:`isinstance\(treespec, LeafSpec\)` is deprecated:FutureWarning"
)


#: `SMALL` without its budget: the callback takes the trainer's.
TUNER = {k: v for k, v in SMALL.items() if k != "total_steps"}
BUDGET = SMALL["total_steps"]


class Regression(pl.LightningModule):
    def __init__(self, with_scheduler: str | None = None) -> None:
        super().__init__()
        self.net = make_model()
        self.with_scheduler = with_scheduler

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = torch.nn.functional.mse_loss(self.net(x), y)
        self.log("train_loss", loss)
        return {"loss": loss}

    def configure_optimizers(self):
        opt = torch.optim.SGD(self.parameters(), lr=0.1, momentum=0.9)
        if self.with_scheduler == "plateau":
            plateau = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, patience=0, factor=0.1)
            return {
                "optimizer": opt,
                "lr_scheduler": {"scheduler": plateau, "interval": "step", "monitor": "train_loss"},
            }
        if self.with_scheduler is None:
            return opt
        sched = torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.5)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}


class StopAt(pl.Callback):
    """Stops training after ``step`` optimizer steps, as a preemption would."""

    def __init__(self, step: int) -> None:
        self.step = step

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if trainer.global_step >= self.step:
            trainer.should_stop = True


class RecordLR(pl.Callback):
    """Records the LR each optimizer step runs with."""

    def __init__(self) -> None:
        self.lrs: list[float] = []

    def on_before_optimizer_step(self, trainer, pl_module, optimizer):
        self.lrs.append(optimizer.param_groups[0]["lr"])


def _loader(n=64, batch_size=64):
    x, y = make_data(n=n)
    return DataLoader(TensorDataset(x, y), batch_size=batch_size)  # full batches: order-free


def _trainer(tmp_path, callbacks, max_steps=BUDGET, logger=False, **options):
    return pl.Trainer(
        max_steps=max_steps,
        accelerator="cpu",
        devices=1,
        logger=logger,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=tmp_path,
        callbacks=callbacks,
        **options,
    )


def _expected_lrs(schedule):
    """Each segment's per-step LRs: its linear ramp from lr to lr_end (probe tails, anneal)."""
    return [
        seg.lr + (seg.lr_end - seg.lr) * (j / (seg.steps - 1) if seg.steps > 1 else 0.0)
        for seg in schedule
        for j in range(seg.steps)
    ]


def test_a_trainer_run_follows_the_tuner_and_stops_when_the_budget_is_spent(tmp_path):
    cb, rec = AutoLRCallback(**SMALL), RecordLR()
    module = Regression(with_scheduler="step")
    trainer = _trainer(tmp_path, [cb, rec])
    trainer.fit(module, _loader())
    assert cb.tuner.finished
    assert trainer.global_step == SMALL["total_steps"]
    assert sum(s.steps for s in cb.tuner.schedule) == SMALL["total_steps"]
    # the StepLR that halves the LR every step was neutralized: the tuner's LR rules
    assert rec.lrs == pytest.approx(_expected_lrs(cb.tuner.schedule), rel=1e-12)


def test_fit_resumes_the_job_from_a_lightning_checkpoint(tmp_path):
    ref_cb = AutoLRCallback(**SMALL)
    ref = Regression()
    _trainer(tmp_path / "ref", [ref_cb]).fit(ref, _loader())

    stop = 130  # inside stage 1's second probe
    cb = AutoLRCallback(**SMALL)
    first = _trainer(tmp_path / "a", [cb, StopAt(stop)])
    first.fit(Regression(), _loader())
    assert cb.tuner.instruction.kind == "probe" and not cb.tuner.finished
    ckpt = tmp_path / "mid.ckpt"
    first.save_checkpoint(ckpt)

    cb2 = AutoLRCallback(**SMALL)
    resumed = Regression()
    torch.nn.init.zeros_(resumed.net[0].weight)  # everything must come from the checkpoint
    _trainer(tmp_path / "b", [cb2]).fit(resumed, _loader(), ckpt_path=ckpt)
    assert cb2.tuner.finished
    assert cb2.tuner.schedule == ref_cb.tuner.schedule
    assert_same_tensors(resumed.state_dict(), ref.state_dict())


@pytest.mark.parametrize(
    ("trainer_options", "expected"),
    [
        ({"max_steps": BUDGET}, BUDGET),
        # epochs: 4 batches an epoch, 2 accumulated per optimizer step -> 2 steps an epoch
        ({"max_steps": -1, "max_epochs": 200, "accumulate_grad_batches": 2}, 400),
    ],
)
def test_the_budget_comes_from_the_trainer(tmp_path, trainer_options, expected):
    cb, rec = AutoLRCallback(**TUNER), RecordLR()
    trainer = _trainer(tmp_path, [cb, rec], **trainer_options)
    trainer.fit(Regression(), _loader(n=64, batch_size=16))
    assert cb.tuner.config.total_steps == expected
    assert cb.tuner.finished and trainer.global_step == expected
    assert rec.lrs == pytest.approx(_expected_lrs(cb.tuner.schedule), rel=1e-12)
    assert cb.tuner.schedule[-1].kind in ("train", "anneal")  # the decay ran to its end


@pytest.mark.parametrize(("max_steps", "total_steps"), [(800, 1200), (1200, 800)])
def test_a_budget_that_differs_from_the_trainers_is_refused(tmp_path, max_steps, total_steps):
    cb = AutoLRCallback(**{**TUNER, "total_steps": total_steps})
    trainer = _trainer(tmp_path, [cb], max_steps=max_steps)
    with pytest.raises(ValueError, match=rf"total_steps={total_steps} does not match") as err:
        trainer.fit(Regression(), _loader())
    assert f"budget of {max_steps} optimizer steps" in str(err.value)
    assert f"Trainer(max_steps={total_steps})" in str(err.value)
    assert trainer.global_step == 0  # refused before the first step


def test_a_plateau_scheduler_is_replaced_without_warnings(tmp_path):
    cb, rec = AutoLRCallback(**TUNER), RecordLR()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        _trainer(tmp_path, [cb, rec]).fit(Regression(with_scheduler="plateau"), _loader())
    # torch's deprecation of step(epoch) surfaces from Lightning's lr_scheduler_step
    ours = [w for w in caught if "scheduler" in str(w.message) or "autolr" in w.filename]
    assert not ours, [f"{w.filename}: {w.message}" for w in ours]
    assert cb.tuner.finished
    assert rec.lrs == pytest.approx(_expected_lrs(cb.tuner.schedule), rel=1e-12)


def test_probe_steps_are_marked_in_the_logged_metrics(tmp_path):
    cb = AutoLRCallback(**TUNER)
    logger = CSVLogger(tmp_path, name="run")
    _trainer(tmp_path, [cb], logger=logger, log_every_n_steps=1).fit(Regression(), _loader())
    with open(f"{logger.log_dir}/metrics.csv", newline="") as stream:
        rows = [r for r in csv.DictReader(stream) if r.get("autolr/probe")]
    assert len(rows) == BUDGET
    kinds = [seg.kind for seg in cb.tuner.schedule for _ in range(seg.steps)]
    assert [float(r["autolr/probe"]) for r in rows] == [float(k == "probe") for k in kinds]
    lrs = [float(r["autolr/lr"]) for r in rows]
    assert lrs == pytest.approx(_expected_lrs(cb.tuner.schedule), rel=1e-6)
