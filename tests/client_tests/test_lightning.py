"""The Lightning callback: a real Trainer run, its LR under the tuner's control, and resume."""

from __future__ import annotations

import lightning.pytorch as pl
import pytest
import torch
from client_helpers import SMALL, assert_same_tensors, make_data, make_model
from torch.utils.data import DataLoader, TensorDataset

from autolr.client.lightning import AutoLRCallback

# Lightning 2.6 calls a torch pytree API that torch 2.13 deprecates: third-party noise.
pytestmark = pytest.mark.filterwarnings(
    r"ignore:`isinstance\(treespec, LeafSpec\)` is deprecated:FutureWarning"
)


class Regression(pl.LightningModule):
    def __init__(self, with_scheduler: bool = False) -> None:
        super().__init__()
        self.net = make_model()
        self.with_scheduler = with_scheduler

    def training_step(self, batch, batch_idx):
        x, y = batch
        return {"loss": torch.nn.functional.mse_loss(self.net(x), y)}

    def configure_optimizers(self):
        opt = torch.optim.SGD(self.parameters(), lr=0.1, momentum=0.9)
        if not self.with_scheduler:
            return opt
        sched = torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.5)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}


class RecordLR(pl.Callback):
    """Records the LR each optimizer step runs with."""

    def __init__(self) -> None:
        self.lrs: list[float] = []

    def on_before_optimizer_step(self, trainer, pl_module, optimizer):
        self.lrs.append(optimizer.param_groups[0]["lr"])


def _loader():
    x, y = make_data(n=64)
    return DataLoader(TensorDataset(x, y), batch_size=64)  # one full batch: order-free data


def _trainer(tmp_path, callbacks, max_steps=10_000):
    return pl.Trainer(
        max_steps=max_steps,
        accelerator="cpu",
        devices=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=tmp_path,
        callbacks=callbacks,
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
    module = Regression(with_scheduler=True)
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
    first = _trainer(tmp_path / "a", [cb], max_steps=stop)
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
