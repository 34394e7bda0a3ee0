"""`AutoLRCallback` for Lightning: AutoLRS on a ``Trainer`` without touching the training loop.

Usage::

    from autolr.client.lightning import AutoLRCallback

    trainer = L.Trainer(max_steps=20_000, callbacks=[AutoLRCallback(min_lr=1e-4, max_lr=0.1)])
    trainer.fit(module, datamodule)

The tuner is built at ``on_train_start``, once Lightning has created (and, when resuming,
restored) the optimizer. Its budget is the trainer's: ``total_steps`` defaults to
``trainer.estimated_stepping_batches`` (``max_steps``, or epochs times optimizer steps per
epoch), and a different ``total_steps`` is refused, because the run would end before or after
the tuner's final decay. Each optimizer step's loss comes from the ``training_step`` output;
steps that only accumulate gradients are skipped, so the tuner counts optimizer steps. LR
schedulers returned by ``configure_optimizers`` (``ReduceLROnPlateau`` included) are replaced by
one that keeps the LR as it is, because two schedulers writing one LR cannot both be right.
Each step logs ``autolr/lr``, ``autolr/stage`` and ``autolr/probe`` (1.0 on probe steps, which
train from a snapshot that is restored afterwards: leave them out of training-loss curves)
through ``LightningModule.log``, so every Lightning logger (TensorBoard, W&B, MLflow, CSV) gets
them. The tuner's state travels in Lightning's checkpoints (``state_dict`` /
``load_state_dict``), so ``trainer.fit(ckpt_path=...)`` resumes the job where it stopped.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import lightning.pytorch as pl
import torch

from autolr.client._budget import with_trainer_budget
from autolr.client._tuner import AutoLR

__all__ = ["AutoLRCallback"]

log = logging.getLogger("autolr.client")


class _HoldLR(torch.optim.lr_scheduler.LRScheduler):
    """A scheduler whose step leaves every group's LR as it is (the tuner sets it).

    ``step`` takes and ignores any argument (Lightning passes a metric to what was a
    ``ReduceLROnPlateau``) and skips torch's own ``step``, whose epoch argument and call-order
    checks would warn about a scheduler that does nothing.
    """

    def get_lr(self) -> list[float | torch.Tensor]:
        return [float(group["lr"]) for group in self.optimizer.param_groups]

    def step(self, *args: Any, **kwargs: Any) -> None:
        self.last_epoch += 1
        self._last_lr = self.get_lr()


class AutoLRCallback(pl.Callback):
    """Runs an `AutoLR` tuner on the (single) optimizer of a LightningModule.

    Args:
        val_fn: validation-loss function for `AutoLR` (called without gradients, eval mode).
        log_metrics: log ``autolr/lr``, ``autolr/stage`` and ``autolr/probe`` every step.
        **tuner_options: any keyword of `AutoLR` (``server=``, ``snapshot_device=``, ``strict=``)
            or field of `TunerConfig` (``min_lr=``, ``seed=``...). ``total_steps`` defaults to
            the trainer's ``estimated_stepping_batches`` and must equal it when given.

    Raises:
        ValueError: at ``on_train_start``, a ``total_steps`` (or a resumed job's) that differs
            from the trainer's budget, or more than one optimizer.
    """

    def __init__(
        self, *, val_fn: Any = None, log_metrics: bool = True, **tuner_options: Any
    ) -> None:
        self._val_fn = val_fn
        self._log_metrics = log_metrics
        self._options = tuner_options
        self._resume: Mapping[str, Any] | None = None
        self._last_global_step: int | None = None
        self.tuner: AutoLR | None = None

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if len(trainer.optimizers) != 1:
            raise ValueError(
                f"AutoLRCallback tunes one optimizer, but configure_optimizers returned "
                f"{len(trainer.optimizers)}; tune each with its own AutoLR in manual optimization"
            )
        optimizer = trainer.optimizers[0]
        for config in trainer.lr_scheduler_configs:
            if not isinstance(config.scheduler, _HoldLR):
                log.warning(
                    "AutoLRCallback replaces the LR scheduler %s: the tuner sets the LR",
                    type(config.scheduler).__name__,
                )
                config.scheduler = _HoldLR(optimizer)
                config.reduce_on_plateau, config.monitor = False, None  # no metric to pass
        budget = trainer.estimated_stepping_batches
        source = "trainer.estimated_stepping_batches"
        options = with_trainer_budget(
            self._options, budget, source=source, fix="Trainer(max_steps=N)"
        )
        if self.tuner is None:
            self.tuner = AutoLR(
                pl_module, optimizer, val_fn=self._val_fn, resume=self._resume, **options
            )
        self._resume = None
        # a resumed job brings its own budget
        with_trainer_budget(
            {"total_steps": self.tuner.config.total_steps},
            budget,
            source=source,
            fix="Trainer(max_steps=N)",
        )
        self._last_global_step = trainer.global_step

    def on_train_batch_end(
        self,
        trainer: pl.Trainer,
        pl_module: pl.LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
    ) -> None:
        tuner = self.tuner
        if tuner is None or tuner.finished:
            return
        if trainer.global_step == self._last_global_step:
            return  # gradient accumulation: no optimizer step happened
        self._last_global_step = trainer.global_step
        loss = outputs.get("loss") if isinstance(outputs, Mapping) else outputs
        if loss is None:
            raise ValueError(
                "AutoLRCallback needs the training loss: return it from training_step "
                "(a tensor, or a dict with a 'loss' key)"
            )
        inst, lr = tuner.instruction, tuner.lr  # what this step ran with
        tuner.step(loss)
        if self._log_metrics and inst is not None:
            pl_module.log_dict(
                {
                    "autolr/lr": lr,
                    "autolr/stage": float(inst.stage),
                    "autolr/probe": 1.0 if inst.kind == "probe" else 0.0,
                },
                on_step=True,
                on_epoch=False,
            )
        if tuner.finished:
            trainer.should_stop = True

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self.tuner is not None and self.tuner.finished:
            self.tuner.close()  # nothing will be restored any more: free the snapshot

    def state_dict(self) -> dict[str, Any]:
        if self.tuner is not None:
            return {"tuner": self.tuner.state_dict()}
        return {"tuner": self._resume}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self._resume = state_dict.get("tuner")
        self.tuner = None  # rebuilt at on_train_start around the restored optimizer
