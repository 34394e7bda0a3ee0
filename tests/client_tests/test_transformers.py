"""The Hugging Face callback: a real Trainer run whose optimizer LR is the tuner's at every step."""

from __future__ import annotations

import pytest
import torch
import transformers
from client_helpers import SMALL, make_data, make_model

from autolr.client.transformers import STATE_FILE, AutoLRCallback


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


@pytest.mark.parametrize("accumulation", [1, 2])
def test_trainer_runs_at_the_tuners_lr_despite_its_own_scheduler(tmp_path, accumulation):
    cb, rec = AutoLRCallback(**SMALL), RecordLR()
    args = transformers.TrainingArguments(
        output_dir=str(tmp_path),
        max_steps=10_000,  # the tuner's budget ends training first
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
