"""`AutoLRCallback` for the Hugging Face ``Trainer``: AutoLRS without a custom training loop.

Usage::

    from autolr.client.transformers import AutoLRCallback

    trainer = Trainer(model=model, args=args, train_dataset=ds,
                      callbacks=[AutoLRCallback(min_lr=1e-5, max_lr=1e-3, total_steps=20_000)])
    trainer.train()

Mechanics, and why:

- **Loss.** Trainer callbacks never see the per-step loss, so the callback registers a forward
  hook on the model and keeps the ``loss`` of each training-mode forward (a detached tensor,
  no device sync); with gradient accumulation the micro-batch losses are averaged at the
  optimizer step. The model must return its loss (``outputs.loss``, ``outputs["loss"]`` or
  ``outputs[0]``), as Hugging Face models do when given labels.
- **The Trainer's own scheduler.** It writes the LR after every optimizer step. At
  ``on_step_end``, which runs right after that write, the callback puts the tuner's LR back
  and sets the scheduler's last LR to it, so the next step runs at the tuner's LR and the
  logged ``learning_rate`` is the one actually used.
- **Checkpoints.** ``on_save`` writes the tuner's state as ``autolr.pt`` into the Trainer's
  checkpoint folder. To resume, load it before training:
  ``cb.load_state_dict(torch.load(ckpt / "autolr.pt"))``, then
  ``trainer.train(resume_from_checkpoint=ckpt)``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import torch
import transformers

from autolr.client._tuner import AutoLR

__all__ = ["AutoLRCallback"]

#: File written into each Trainer checkpoint folder.
STATE_FILE = "autolr.pt"


def _loss_of(output: Any) -> torch.Tensor | None:
    """The loss inside a model's output: ``.loss``, ``["loss"]`` or the first element."""
    loss = getattr(output, "loss", None)
    if loss is None and isinstance(output, Mapping):
        loss = output.get("loss")
    if loss is None and isinstance(output, tuple | list) and output:
        loss = output[0]
    return loss if isinstance(loss, torch.Tensor) and loss.numel() == 1 else None


class AutoLRCallback(transformers.TrainerCallback):
    """Runs an `AutoLR` tuner on a ``Trainer``'s optimizer.

    Args:
        val_fn: validation-loss function for `AutoLR` (called without gradients, eval mode).
        **tuner_options: any keyword of `AutoLR` (``server=``, ``snapshot_device=``, ``strict=``)
            or field of `TunerConfig` (``min_lr=``, ``total_steps=``, ``seed=``...).
    """

    def __init__(self, *, val_fn: Any = None, **tuner_options: Any) -> None:
        self._val_fn = val_fn
        self._options = tuner_options
        self._resume: Mapping[str, Any] | None = None
        self._micro: list[torch.Tensor] = []
        self._hook: Any = None
        self._optimizer: Any = None
        self._scheduler: Any = None
        self.tuner: AutoLR | None = None

    # ----------------------------------------------------------------- Trainer events
    def on_train_begin(
        self,
        args: transformers.TrainingArguments,
        state: transformers.TrainerState,
        control: transformers.TrainerControl,
        model: torch.nn.Module | None = None,
        optimizer: Any = None,
        lr_scheduler: Any = None,
        **kwargs: Any,
    ) -> None:
        if model is None or optimizer is None:
            raise ValueError("AutoLRCallback needs the Trainer's model and optimizer")
        # accelerate wraps the optimizer; the tuner drives (and snapshots) the real one
        inner = getattr(optimizer, "optimizer", optimizer)
        self._optimizer = inner
        self._scheduler = getattr(lr_scheduler, "scheduler", lr_scheduler)  # same for the LR
        self.tuner = AutoLR(model, inner, val_fn=self._val_fn, resume=self._resume, **self._options)
        self._resume = None
        self._hook = model.register_forward_hook(self._capture)
        self._hold_scheduler()

    def on_step_end(
        self,
        args: transformers.TrainingArguments,
        state: transformers.TrainerState,
        control: transformers.TrainerControl,
        **kwargs: Any,
    ) -> None:
        tuner = self.tuner
        if tuner is None or tuner.finished:
            return
        micro, self._micro = self._micro, []
        if not micro:
            raise ValueError(
                "AutoLRCallback saw no training loss: the model must return its loss "
                "(outputs.loss, outputs['loss'] or outputs[0]) when given labels"
            )
        loss = micro[0] if len(micro) == 1 else torch.stack(micro).float().mean()
        tuner.step(loss)
        tuner.reapply_lr()  # undo the Trainer scheduler's write of this step
        self._hold_scheduler()
        if tuner.finished:
            control.should_training_stop = True

    def on_train_end(
        self,
        args: transformers.TrainingArguments,
        state: transformers.TrainerState,
        control: transformers.TrainerControl,
        **kwargs: Any,
    ) -> None:
        if self._hook is not None:
            self._hook.remove()
            self._hook = None
        if self.tuner is not None and self.tuner.finished:
            self.tuner.close()

    def on_save(
        self,
        args: transformers.TrainingArguments,
        state: transformers.TrainerState,
        control: transformers.TrainerControl,
        **kwargs: Any,
    ) -> None:
        folder = os.path.join(str(args.output_dir), f"checkpoint-{state.global_step}")
        if self.tuner is not None and state.is_world_process_zero and os.path.isdir(folder):
            torch.save(self.state_dict(), os.path.join(folder, STATE_FILE))

    # ----------------------------------------------------------------- state
    def state_dict(self) -> dict[str, Any]:
        """The tuner's state (or the state waiting to be loaded at ``on_train_begin``)."""
        return {"tuner": self.tuner.state_dict() if self.tuner is not None else self._resume}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Resume the job in ``state`` at the next ``trainer.train()``."""
        self._resume = state.get("tuner")
        self.tuner = None

    # ----------------------------------------------------------------- internals
    def _capture(self, module: torch.nn.Module, inputs: Any, output: Any) -> None:
        if module.training:
            loss = _loss_of(output)
            if loss is not None:
                self._micro.append(loss.detach().reshape(()))

    def _hold_scheduler(self) -> None:
        """Make the Trainer's scheduler report the LR actually in use (for its logs)."""
        if self._scheduler is not None and hasattr(self._scheduler, "_last_lr"):
            self._scheduler._last_lr = [g["lr"] for g in self._optimizer.param_groups]
