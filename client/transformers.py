"""`AutoLRCallback` for the Hugging Face ``Trainer``: AutoLRS without a custom training loop.

Usage::

    from autolr.client.transformers import AutoLRCallback

    trainer = Trainer(model=model, args=args, train_dataset=ds,
                      callbacks=[AutoLRCallback(min_lr=1e-5, max_lr=1e-3)])
    trainer.train()

Mechanics, and why:

- **Budget.** ``total_steps`` defaults to the Trainer's ``state.max_steps`` (``max_steps``, or
  epochs times optimizer steps per epoch); a different ``total_steps`` is refused, because the
  run would end before or after the tuner's final decay.
- **Loss.** Trainer callbacks never see the per-step loss, so the callback registers a forward
  hook on the model and keeps the ``loss`` of each training-mode forward (a detached tensor,
  no device sync). The model must return its loss (``outputs.loss``, ``outputs["loss"]`` or
  ``outputs[0]``), as Hugging Face models do when given labels. A ``compute_loss_func``
  computes the loss outside the model: pass it through `AutoLRCallback.track_loss`
  (``Trainer(compute_loss_func=cb.track_loss(fn))``). With gradient accumulation the step's
  loss is the one the Trainer logs: the micro-batch losses summed when they are normalized over
  the whole accumulated batch (``num_items_in_batch``, and every ``compute_loss_func``),
  averaged otherwise.
- **The Trainer's own scheduler.** It writes the LR after every optimizer step. At
  ``on_step_end``, which runs right after that write, the callback puts the tuner's LR back
  and sets the scheduler's last LR to it, so the next step runs at the tuner's LR and the
  logged ``learning_rate`` is the one actually used.
- **Checkpoints.** ``on_save`` writes the tuner's state as ``autolr.pt`` into the Trainer's
  checkpoint folder, and ``trainer.train(resume_from_checkpoint=...)`` loads it back: from
  ``args.resume_from_checkpoint`` when that is a folder, else from
  ``output_dir/checkpoint-<step>`` of the step the Trainer resumes at. A resume without it is
  refused (a new search from the middle of the run would waste it); load a state yourself with
  ``cb.load_state_dict(torch.load(path))`` before ``train()``.
- **Logs.** Each training log gets ``autolr/lr``, ``autolr/stage`` and ``autolr/probe_steps``
  (probe steps in the logging window: their losses come from a trial restored afterwards, so
  curves can leave those windows out), in ``state.log_history`` and for the callbacks after
  this one.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from typing import Any

import torch
import transformers

from autolr.client._budget import with_trainer_budget
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
            or field of `TunerConfig` (``min_lr=``, ``seed=``...). ``total_steps`` defaults to
            the Trainer's ``state.max_steps`` and must equal it when given.

    Raises:
        ValueError: at ``on_train_begin``, a ``total_steps`` (or a resumed job's) that differs
            from the Trainer's budget, or a resume whose checkpoint holds no ``autolr.pt``;
            at the first step, a model that returned no loss.
    """

    def __init__(self, *, val_fn: Any = None, **tuner_options: Any) -> None:
        self._val_fn = val_fn
        self._options = tuner_options
        self._resume: Mapping[str, Any] | None = None
        self._micro: list[torch.Tensor] = []
        self._summed = False  # the micro losses are fractions of the step's loss: sum them
        self._tracked: list[torch.Tensor] = []
        self._hook: Any = None
        self._optimizer: Any = None
        self._scheduler: Any = None
        self._probe_steps = 0  # since the last training log
        self.tuner: AutoLR | None = None

    def track_loss(self, loss_func: Callable[..., torch.Tensor]) -> Callable[..., torch.Tensor]:
        """Wrap a ``compute_loss_func`` so the tuner sees the loss it computes.

        ``Trainer(compute_loss_func=cb.track_loss(fn), callbacks=[cb])``: the loss is computed
        outside the model there, where the callback's forward hook cannot see it.
        """

        def tracked(outputs: Any, labels: Any, **kwargs: Any) -> torch.Tensor:
            loss = loss_func(outputs, labels, **kwargs)
            if isinstance(loss, torch.Tensor) and loss.numel() == 1 and torch.is_grad_enabled():
                self._tracked.append(loss.detach().reshape(()))
            return loss

        return tracked

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
        source = "the Trainer's state.max_steps: max_steps, or epochs x steps per epoch"
        fix = "TrainingArguments(max_steps=N)"
        options = with_trainer_budget(self._options, state.max_steps, source=source, fix=fix)
        resume = self._resume
        if resume is None and state.global_step > 0:
            resume = _saved_state(args, state)
        self.tuner = AutoLR(model, inner, val_fn=self._val_fn, resume=resume, **options)
        self._resume = None
        with_trainer_budget(  # a resumed job brings its own budget
            {"total_steps": self.tuner.config.total_steps}, state.max_steps, source=source, fix=fix
        )
        if self.tuner.steps_run != state.global_step:
            raise ValueError(
                f"the autolr state has run {self.tuner.steps_run} steps, but the Trainer "
                f"starts at step {state.global_step}: load the autolr.pt of the checkpoint the "
                "Trainer resumes from"
            )
        self._micro, self._tracked, self._probe_steps = [], [], 0
        self._hook = model.register_forward_hook(self._capture, with_kwargs=True)
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
        tracked, micro, self._tracked, self._micro = self._tracked, self._micro, [], []
        summed = bool(tracked) or self._summed
        micro = tracked or micro
        if not micro:
            raise ValueError(
                "AutoLRCallback saw no training loss: the model must return its loss "
                "(outputs.loss, outputs['loss'] or outputs[0]) when given labels; with a "
                "compute_loss_func, pass it as compute_loss_func=callback.track_loss(fn)"
            )
        if len(micro) == 1:
            loss = micro[0]
        else:
            stacked = torch.stack(micro).float()
            loss = stacked.sum() if summed else stacked.mean()
        if tuner.instruction is not None and tuner.instruction.kind == "probe":
            self._probe_steps += 1
        tuner.reapply_lr()  # undo the Trainer scheduler's write of this step
        tuner.step(loss)
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

    def on_log(
        self,
        args: transformers.TrainingArguments,
        state: transformers.TrainerState,
        control: transformers.TrainerControl,
        logs: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        tuner = self.tuner
        if tuner is None or logs is None or "loss" not in logs:
            return  # only training logs carry the window's loss
        marks = {
            "autolr/lr": tuner.lr,
            "autolr/stage": tuner.stage,
            "autolr/probe_steps": self._probe_steps,
        }
        self._probe_steps = 0
        logs.update(marks)
        if state.log_history and state.log_history[-1].get("step") == state.global_step:
            state.log_history[-1].update(marks)

    # ----------------------------------------------------------------- state
    def state_dict(self) -> dict[str, Any]:
        """The tuner's state (or the state waiting to be loaded at ``on_train_begin``)."""
        return {"tuner": self.tuner.state_dict() if self.tuner is not None else self._resume}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Resume the job in ``state`` at the next ``trainer.train()``."""
        self._resume = state.get("tuner")
        self.tuner = None

    # ----------------------------------------------------------------- internals
    def _capture(
        self, module: torch.nn.Module, inputs: Any, kwargs: Mapping[str, Any], output: Any
    ) -> None:
        if module.training and torch.is_grad_enabled():
            loss = _loss_of(output)
            if loss is not None:
                self._micro.append(loss.detach().reshape(()))
                # normalized over the whole accumulated batch by the model (as the Trainer sees)
                self._summed = kwargs.get("num_items_in_batch") is not None

    def _hold_scheduler(self) -> None:
        """Make the Trainer's scheduler report the LR actually in use (for its logs)."""
        if self._scheduler is not None and hasattr(self._scheduler, "_last_lr"):
            self._scheduler._last_lr = [g["lr"] for g in self._optimizer.param_groups]


def _saved_state(args: transformers.TrainingArguments, state: transformers.TrainerState) -> Any:
    """The ``autolr.pt`` of the checkpoint the Trainer resumes from (at ``state.global_step``)."""
    folders = []
    named = getattr(args, "resume_from_checkpoint", None)
    if isinstance(named, str | os.PathLike) and os.path.isdir(named):
        folders.append(str(named))
    folders.append(os.path.join(str(args.output_dir), f"checkpoint-{state.global_step}"))
    for folder in folders:
        path = os.path.join(folder, STATE_FILE)
        if os.path.isfile(path):  # what `on_save` wrote: the callback's state_dict
            return torch.load(path, map_location="cpu", weights_only=True).get("tuner")
    raise ValueError(
        f"the Trainer resumes at step {state.global_step}, but no {STATE_FILE} was found in "
        f"{' or '.join(folders)}: the tuner cannot continue its job. Load it yourself "
        f"(callback.load_state_dict(torch.load('<checkpoint>/{STATE_FILE}'))) before train(), "
        "or start training from step 0"
    )
