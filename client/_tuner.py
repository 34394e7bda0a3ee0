"""`AutoLR`: the training-loop side of an AutoLRS job.

The tuner is an imperative shell around the controller's pure state machine: it runs the
segment it was told to run, buffers one loss per step, and at the segment boundary reports the
losses and applies the next instruction (restore, snapshot, LR). Between boundaries
`AutoLR.step` is a counter, an append and a comparison; nothing is read from the device and
nothing goes over the network.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Mapping
from typing import Any, cast

import torch

from autolr.client._distributed import Group, current_group
from autolr.client._eval import ValFn, evaluate
from autolr.client._losses import Loss, read_losses, stack_losses
from autolr.client._lr import GroupLR
from autolr.client._segment import Segment
from autolr.client._snapshot import SnapshotDevice, StateSnapshot
from autolr.client._transport import LocalTransport, Transport
from autolr.client.errors import ClientError, TransportError, TunerFinished
from autolr.config import TunerConfig
from autolr.errors import ConfigError
from autolr.protocol import Instruction, Report

log = logging.getLogger("autolr.client")

STATE_FORMAT = 1
#: While the controller is unreachable, the first retry comes after this many steps and the
#: gap doubles up to the cap: a transport call may block for its own timeout, so retrying every
#: step would slow training, and the cap bounds how long a recovered controller waits.
RETRY_FIRST_STEPS = 1
RETRY_MAX_STEPS = 512
#: Buffered loss tensors are stacked into one tensor every this many steps (no sync): a long
#: segment would otherwise hold thousands of tensor objects that the garbage collector keeps
#: traversing, which tripled the per-step cost in `benchmarks/client_overhead.py`.
CHUNK_STEPS = 64

# Modes. Anything but _RUN is falsy-tested once per step to leave the hot path.
_RUN, _WAIT, _DETACHED, _FINISHED, _CLOSED = 0, 1, 2, 3, 4
_START = "start"  # the pending request when the job itself could not be created yet


class AutoLR:
    """Tunes the learning rate of ``optimizer`` online with AutoLRS while ``model`` trains.

    Call `step` once per optimizer step with that step's loss::

        tuner = AutoLR(model, optimizer, min_lr=1e-4, max_lr=1e-1, total_steps=20_000)
        for batch in loader:
            loss = compute_loss(model, batch)
            loss.backward(); optimizer.step(); optimizer.zero_grad()
            tuner.step(loss)
            if tuner.finished:
                break

    The tuner owns the optimizer's LR: it sets the LR of every param group at each segment
    boundary (and every step of a warmup or anneal ramp). The tuned value is the LR of the first
    group; every other group keeps the ratio to the first group it had when the tuner was
    created, so no-decay groups and layer-wise LRs survive (AutoLRS pitfall 7). Do not run
    another LR scheduler on the same optimizer.

    Probes train from the stage snapshot, so the model is in a probe state while a probe runs;
    the job always ends on a train (or anneal) segment, never on a probe. The snapshot holds
    one copy of the model and optimizer state (in host memory by default; two copies with
    ``reuse_best_probe=True``, which also keeps the best probe's end state).

    Failure policy: the training run comes first. When the controller cannot be reached the
    tuner keeps the current LR, counts the steps trained meanwhile, and reports again after a
    doubling number of steps (``strict=True`` raises `TransportError` instead). Non-finite
    losses are reported to the controller (they mean divergence), never raised; a probe whose
    float loss turns NaN or infinite ends at that step (tensor losses are only read at the
    boundary, so their probes run to the end).

    Args:
        model: the module being trained (its parameters and buffers are snapshotted).
        optimizer: an optimizer over parameters of ``model``.
        config: a `TunerConfig` (or a mapping of its fields); keyword fields override it.
        val_fn: returns the validation loss (float or 0-dim tensor); called in eval mode
            without gradients at the steps an instruction asks for. Required when
            ``loss_source="val"``; with ``"auto"`` and no ``val_fn`` the training loss is used.
        server: URL of an autolr service (``"http://host:8000"``); None runs the controller
            in this process (embedded mode).
        transport: a ready `Transport`, instead of ``server``.
        scaler: an AMP ``GradScaler`` to snapshot and restore along with the model.
        snapshot_device: ``"cpu"`` (host memory, default), ``"same"`` (each tensor's own device,
            fastest) or ``"disk"`` (one temporary file, removed by `close`).
        snapshot_dir: folder for ``"disk"`` snapshots (default: a private temporary folder).
        strict: raise transport and controller errors instead of training on.
        resume: a `state_dict` from a checkpoint: reattach to that job instead of starting a
            new one (same as `load_state_dict` after construction, without creating a job).
        **config_fields: any `TunerConfig` field (``min_lr=``, ``total_steps=``, ``seed=``...).

    Raises:
        ConfigError: invalid config fields (a ValueError; e.g. ``min_lr >= max_lr``).
        ValueError: an optimizer without parameters, parameters the model does not own,
            ``loss_source="val"`` without ``val_fn``, or both ``server`` and ``transport``.
    """

    def __init__(
        self,
        model: torch.nn.Module,
        optimizer: torch.optim.Optimizer,
        *,
        config: TunerConfig | Mapping[str, Any] | None = None,
        val_fn: ValFn | None = None,
        server: str | None = None,
        transport: Transport | None = None,
        scaler: Any | None = None,
        snapshot_device: SnapshotDevice = "cpu",
        snapshot_dir: str | os.PathLike[str] | None = None,
        strict: bool = False,
        resume: Mapping[str, Any] | None = None,
        **config_fields: Any,
    ) -> None:
        _check_model_and_optimizer(model, optimizer)
        self._config = _build_config(config, config_fields)
        if self._config.loss_source == "val" and val_fn is None:
            raise ConfigError(
                "loss_source='val' forecasts validation losses, but no validation function was "
                "given: pass val_fn=<callable returning the validation loss>, or use "
                "loss_source='train' or 'auto'"
            )
        if server is not None and transport is not None:
            raise ValueError("pass either server= or transport=, not both")
        self._model = model
        self._optimizer = optimizer
        self._val_fn = val_fn
        self._strict = strict
        self._group: Group | None = current_group()
        leader = self._group is None or self._group.leader
        self._transport: Transport | None = (
            _make_transport(server, transport, strict=strict) if leader else None
        )
        self._snapshot = StateSnapshot(
            model, optimizer, scaler=scaler, device=snapshot_device, directory=snapshot_dir
        )
        # The best-probe slot (``reuse_best_probe``): the end state of the best probe so far,
        # so the train segment can continue from it instead of repeating its steps.
        self._best = StateSnapshot(
            model, optimizer, scaler=scaler, device=snapshot_device, directory=snapshot_dir
        )
        self._lrs = GroupLR(optimizer)
        self._lr = float(optimizer.param_groups[0]["lr"])
        self._job_id: str | None = None
        self._schedule: list[Segment] = []
        self._stage_probes: list[tuple[float, float | None]] = []
        # the current segment
        self._inst: Instruction | None = None
        self._mode = _RUN
        self._mode_at_close = _RUN
        self._pos = 0
        self._losses: list[Loss] = []
        self._chunks: list[torch.Tensor] = []
        self._val: list[tuple[int, Loss]] = []
        self._next_event = 1
        self._ramp = False
        self._eval_every: int | None = None
        self._abort_nonfinite = False
        # waiting for an unreachable controller
        self._pending: Report | str | None = None
        self._extra = 0
        self._retry_gap = RETRY_FIRST_STEPS
        self._retry_at = RETRY_FIRST_STEPS
        if self._config.loss_source == "auto" and val_fn is None and leader:
            log.info("no val_fn given: forecasts use the training loss in every stage")
        if resume is not None:
            self.load_state_dict(resume)
        else:
            self._start()

    # ----------------------------------------------------------------- properties
    @property
    def lr(self) -> float:
        """The LR the tuner last set on the first param group."""
        return self._lr

    @property
    def schedule(self) -> list[Segment]:
        """The segments run so far, in order (a copy)."""
        return list(self._schedule)

    @property
    def job_id(self) -> str | None:
        """The controller's id for this job (None until the job exists)."""
        return self._job_id

    @property
    def finished(self) -> bool:
        """True once the step budget (search included) is spent: stop training."""
        return self._mode == _FINISHED or (
            self._mode == _CLOSED and self._mode_at_close == _FINISHED
        )

    @property
    def instruction(self) -> Instruction | None:
        """The segment being run (None until the controller answered)."""
        return self._inst

    @property
    def segment_step(self) -> int:
        """Steps run so far in the current segment (0 right after a boundary)."""
        return self._pos

    @property
    def stage(self) -> int:
        """Index of the current stage (-1 during warmup or before the job started)."""
        return self._inst.stage if self._inst is not None else -1

    @property
    def config(self) -> TunerConfig:
        """The job's configuration."""
        return self._config

    @property
    def transport(self) -> Transport | None:
        """The transport (None on ranks other than 0 under data parallelism)."""
        return self._transport

    @property
    def steps_run(self) -> int:
        """Optimizer steps seen so far: segments, the current one, and steps without a job."""
        done: int = sum(s.steps + s.extra_steps for s in self._schedule)
        return done + self._pos + self._extra

    # ----------------------------------------------------------------- the hot path
    def step(self, loss: float | torch.Tensor) -> None:
        """Record one optimizer step's loss; at a segment boundary, talk to the controller.

        Call it after ``optimizer.step()``. A tensor stays on its device until the boundary.

        Raises:
            TunerFinished: the budget is spent (check `finished` and stop the loop).
        """
        if self._mode:
            self._held_step()
            return
        if isinstance(loss, torch.Tensor):
            loss = loss.detach()
        else:
            loss = float(loss)
            if loss - loss != 0.0 and self._abort_nonfinite:  # NaN or ±inf: the probe diverged
                self._losses.append(loss)
                self._pos += 1
                self._end_segment()
                return
        self._losses.append(loss)
        self._pos += 1
        if self._pos >= self._next_event:
            self._event()

    def _event(self) -> None:
        """Something due at this step: a validation, the end of the segment, a ramp step."""
        inst = self._inst
        assert inst is not None
        pos = self._pos
        every = self._eval_every
        if every is not None and pos % every == 0 and self._val_fn is not None:
            self._val.append((pos, evaluate(self._model, self._val_fn)))
        if pos >= inst.steps:
            self._end_segment()
            return
        if pos % CHUNK_STEPS == 0:
            self._chunks.append(stack_losses(self._losses))
            self._losses = []
        if self._ramp:
            self._set_lr(inst.lr_at(pos))
        self._next_event = self._next_event_after(pos)

    def _next_event_after(self, pos: int) -> int:
        inst = self._inst
        assert inst is not None
        nxt = min(inst.steps, (pos // CHUNK_STEPS + 1) * CHUNK_STEPS)
        if self._ramp:
            nxt = min(nxt, pos + 1)
        if self._eval_every is not None:
            nxt = min(nxt, (pos // self._eval_every + 1) * self._eval_every)
        return nxt

    def _held_step(self) -> None:
        if self._mode == _FINISHED:
            raise TunerFinished(self._config.total_steps)
        if self._mode == _CLOSED:
            raise ClientError("the tuner is closed; create a new AutoLR to tune again")
        self._extra += 1  # trained without a segment: waiting or detached
        if self._mode == _WAIT and self._extra >= self._retry_at:
            self._retry()

    # ----------------------------------------------------------------- boundaries
    def _end_segment(self) -> None:
        inst = self._inst
        assert inst is not None
        train, val = read_losses(self._losses, [v for _, v in self._val], self._group, self._chunks)
        report = Report(
            segment=inst.segment,
            train_losses=train,
            val_losses=[(j, v) for (j, _), v in zip(self._val, val, strict=True)],
            kind=inst.kind,
        )
        self._schedule.append(Segment.ran(inst, len(train)))
        if inst.kind == "probe":
            self._stage_probes.append((inst.lr, _tail_mean(train)))
        self._losses, self._chunks, self._val, self._pos = [], [], [], 0
        self._submit(report)

    def _submit(self, request: Report | str) -> None:
        """Send a report (or the start request) and apply the answer, or wait for one."""
        inst = self._exchange(request)
        if inst is not None:
            self._apply(inst)

    def _start(self) -> None:
        self._submit(_START)

    def _retry(self) -> None:
        request = self._pending
        assert request is not None
        if isinstance(request, Report):
            request = request.model_copy(update={"extra_steps": self._extra})
        inst = self._exchange(request)
        if inst is None:
            return
        if isinstance(request, Report) and self._schedule:
            last = self._schedule[-1]
            self._schedule[-1] = Segment(**{**last.to_dict(), "extra_steps": self._extra})
        self._apply(inst)

    def _exchange(self, request: Report | str) -> Instruction | None:
        """Rank 0 asks the controller and every rank gets the same outcome.

        Returns the instruction, or None after switching to waiting (transport trouble) or
        detached (the controller refused; retrying cannot help) mode.
        """
        error: BaseException | None = None
        outcome: tuple[str, Any, str | None]
        if self._transport is not None:
            try:
                if isinstance(request, Report):
                    inst = self._transport.report(request)
                else:
                    inst = self._transport.start(self._config)
                outcome = ("ok", inst, self._transport.job_id)
            except TransportError as exc:
                error, outcome = exc, ("retry", str(exc), None)
            except Exception as exc:  # a refusal: conflict, unknown job, finished job...
                error, outcome = exc, ("fail", f"{type(exc).__name__}: {exc}", None)
        else:
            outcome = ("ok", None, None)  # placeholder: only the broadcast value counts
        if self._group is not None:
            outcome = self._group.broadcast(outcome)
        status, value, job_id = outcome
        if status == "ok":
            if self._mode == _WAIT and (self._group is None or self._group.leader):
                log.info("autolr controller reachable again after %d extra steps", self._extra)
            if job_id is not None:
                self._job_id = job_id
            self._pending = None
            return cast(Instruction, value)
        if self._strict:
            if error is not None:
                raise error
            raise ClientError(f"rank 0 could not reach the controller: {value}")
        if status == "retry":
            first_failure = self._mode != _WAIT
            if first_failure:
                self._extra = 0
                self._retry_gap = RETRY_FIRST_STEPS
            else:
                self._retry_gap = min(2 * self._retry_gap, RETRY_MAX_STEPS)
            self._retry_at = self._extra + self._retry_gap
            self._pending = (
                request
                if isinstance(request, str)
                else request.model_copy(update={"extra_steps": 0})
            )
            self._mode = _WAIT
            if self._group is None or self._group.leader:
                # Warn once per outage; the retries that follow are only worth a debug line.
                (log.warning if first_failure else log.debug)(
                    "autolr controller unreachable (%s); training on at lr=%.4g, "
                    "retrying in %d steps",
                    value,
                    self._lr,
                    self._retry_gap,
                )
            return None
        self._mode = _DETACHED
        self._pending = None
        if self._group is None or self._group.leader:
            log.error(
                "autolr controller refused the %s (%s); the tuner detaches and training "
                "goes on at lr=%.4g (pass strict=True to raise instead)",
                "report" if isinstance(request, Report) else "job",
                value,
                self._lr,
            )
        return None

    def _apply(self, inst: Instruction) -> None:
        """Run ``inst``: keep the best probe, restore, snapshot, then set the LR.

        The order is the protocol's: the probe just run must be saved before a restore
        overwrites it, and the LR is set last because a restore brings back the snapshot's.
        """
        self._inst = inst
        self._mode = _RUN
        self._extra = 0
        if inst.finished:
            self._mode = _FINISHED
            self._log_finish()
            return
        if inst.save_best:
            self._best.save()
        if inst.restore:
            self._snapshot.restore()
        elif inst.restore_best:
            self._best.restore()
        if inst.snapshot:
            self._snapshot.save()
            self._stage_probes = []
        # AutoLRS pitfall 6: a restore brings back the snapshot's LR; always set it afterwards.
        self._set_lr(inst.lr_at(0))
        self._pos = 0
        self._configure_segment(inst)
        self._log_stage(inst)
        if inst.steps == 0:
            self._end_segment()
            return
        self._next_event = self._next_event_after(0)

    def _configure_segment(self, inst: Instruction) -> None:
        self._ramp = inst.steps > 1 and inst.lr != inst.lr_end
        self._eval_every = inst.eval_every if self._val_fn is not None else None
        # Ending a probe early needs every rank to see the same loss; under DDP the losses
        # are only averaged at the boundary, so probes run to their end there.
        # A diverging train segment ends early too: the controller rolls it back.
        self._abort_nonfinite = inst.kind in ("probe", "train") and self._group is None

    def reapply_lr(self) -> None:
        """Write the tuner's current LR into the optimizer again.

        For integrations whose own LR scheduler writes the optimizer's LR every step (the
        Hugging Face Trainer): calling this after that scheduler keeps the tuner in charge.
        """
        self._lrs.set(self._lr)

    def _set_lr(self, lr: float) -> None:
        self._lrs.set(lr)
        self._lr = lr

    # ----------------------------------------------------------------- logging
    def _log_stage(self, inst: Instruction) -> None:
        """One INFO line per stage, when its search is over and its train segment begins."""
        if inst.kind != "train" or not self._schedule or self._schedule[-1].kind != "probe":
            return
        if self._group is not None and not self._group.leader:
            return
        forecasts = self._forecasts(inst.stage)
        probes = []
        for i, (lr, last) in enumerate(self._stage_probes):
            fc = forecasts[i] if i < len(forecasts) else None
            shown = f"forecast {fc:.4g}" if fc is not None else f"last loss {_fmt(last)}"
            probes.append(f"{lr:.3g} ({shown})")
        tau = inst.steps
        log.info(
            "stage %d: tau=%d, probed lr %s; chosen lr=%.4g",
            inst.stage,
            tau,
            ", ".join(probes) or "-",
            inst.lr,
        )

    def _forecasts(self, stage: int) -> list[float | None]:
        """Probe forecasts of ``stage`` when the controller runs in this process."""
        if not isinstance(self._transport, LocalTransport):
            return []
        for record in self._transport.controller.stages:
            if record.stage == stage:
                return [p.forecast for p in record.probes]
        return []

    def _log_finish(self) -> None:
        if self._group is not None and not self._group.leader:
            return
        total = sum(s.steps + s.extra_steps for s in self._schedule)
        probing = sum(s.steps for s in self._schedule if s.kind == "probe")
        log.info(
            "autolr finished: %d steps, %d of them probing (%.0f%%); final lr=%.4g",
            total,
            probing,
            100.0 * probing / max(total, 1),
            self._lr,
        )

    # ----------------------------------------------------------------- checkpoints
    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue this job after a restart, for the user's checkpoint.

        Holds the controller conversation (the whole controller in embedded mode), the position
        inside the current segment with its buffered losses, the schedule so far and the stage
        snapshot itself (CPU tensors), so a probe interrupted by preemption resumes exactly. Reads
        the buffered losses from the device (one sync). Under data parallelism each rank's
        buffered losses are its own; loading rank 0's state on every rank is fine (the part of
        the segment before the checkpoint then counts rank 0's losses).
        """
        train, val = read_losses(self._losses, [v for _, v in self._val], None, self._chunks)
        self._losses, self._chunks = list(train), []
        self._val = [(j, v) for (j, _), v in zip(self._val, val, strict=True)]
        pending: Any = self._pending
        if isinstance(pending, Report):
            pending = pending.model_dump()
        transport_state = None
        if self._transport is not None and self._job_id is not None:
            transport_state = self._transport.state_dict()
        return {
            "format": STATE_FORMAT,
            "config": self._config.model_dump(),
            "job_id": self._job_id,
            "instruction": self._inst.model_dump() if self._inst is not None else None,
            "mode": self._mode if self._mode != _CLOSED else self._mode_at_close,
            "pos": self._pos,
            "losses": list(train),
            "val_losses": [list(p) for p in self._val],
            "schedule": [s.to_dict() for s in self._schedule],
            "stage_probes": [list(p) for p in self._stage_probes],
            "lr": self._lr,
            "lr_ratios": list(self._lrs.ratios),
            "pending": pending,
            "extra": self._extra,
            "retry_gap": self._retry_gap,
            "retry_at": self._retry_at,
            "transport": transport_state,
            "snapshot": self._snapshot.state_dict(),
            "best_snapshot": self._best.state_dict(),
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Continue the job saved by `state_dict` (call after loading model and optimizer).

        Raises:
            ValueError: ``state`` is not a tuner state of a supported format.
        """
        if not isinstance(state, Mapping) or state.get("format") != STATE_FORMAT:
            found = state.get("format") if isinstance(state, Mapping) else type(state).__name__
            raise ValueError(
                f"not an AutoLR state_dict of format {STATE_FORMAT} (got format {found!r}); "
                "pass the value tuner.state_dict() returned"
            )
        self._config = TunerConfig.model_validate(state["config"])
        if self._transport is not None and state["transport"] is not None:
            self._transport.load_state_dict(state["transport"])
        self._job_id = state["job_id"]
        inst = state["instruction"]
        self._inst = Instruction.model_validate(inst) if inst is not None else None
        self._mode = int(state["mode"])
        self._pos = int(state["pos"])
        self._losses = [float(v) for v in state["losses"]]
        self._chunks = []
        self._val = [(int(j), float(v)) for j, v in state["val_losses"]]
        self._schedule = [Segment(**s) for s in state["schedule"]]
        self._stage_probes = [(float(a), b) for a, b in state["stage_probes"]]
        pending = state["pending"]
        self._pending = Report.model_validate(pending) if isinstance(pending, Mapping) else pending
        self._extra = int(state["extra"])
        self._retry_gap = int(state["retry_gap"])
        self._retry_at = int(state["retry_at"])
        self._lrs = GroupLR(self._optimizer, state["lr_ratios"])
        self._snapshot.load_state_dict(state["snapshot"])
        self._best.load_state_dict(state["best_snapshot"])
        if self._mode == _RUN and self._inst is not None:
            self._configure_segment(self._inst)
            self._set_lr(self._inst.lr_at(self._pos))
            self._next_event = self._next_event_after(self._pos)
        else:
            self._set_lr(float(state["lr"]))

    # ----------------------------------------------------------------- lifecycle
    def close(self) -> None:
        """Release the snapshot (memory or file) and the transport. Never raises."""
        if self._mode == _CLOSED:
            return
        self._mode_at_close, self._mode = self._mode, _CLOSED
        try:
            self._snapshot.close()
            self._best.close()
        finally:
            if self._transport is not None:
                try:
                    self._transport.close()
                except Exception:  # close() must not raise, whatever the transport does
                    log.debug("transport close failed", exc_info=True)

    def __enter__(self) -> AutoLR:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        inst = self._inst
        where = (
            f"{inst.kind} segment {inst.segment}, step {self._pos}/{inst.steps}" if inst else "-"
        )
        return (
            f"AutoLR(job_id={self._job_id!r}, lr={self._lr:.4g}, {where}, finished={self.finished})"
        )


# --------------------------------------------------------------------------- helpers
def _check_model_and_optimizer(model: torch.nn.Module, optimizer: torch.optim.Optimizer) -> None:
    """Reject inputs that would make the tuner silently tune nothing."""
    if not isinstance(model, torch.nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    groups = getattr(optimizer, "param_groups", None)
    if groups is None or not hasattr(optimizer, "state"):
        raise TypeError(
            f"optimizer must be a torch.optim.Optimizer, got {type(optimizer).__name__}"
        )
    if len(groups) == 0:
        raise ValueError(
            "the optimizer has no param groups, so there is no LR to tune; build it from "
            "model.parameters()"
        )
    params = [p for g in groups for p in g["params"]]
    if not params:
        raise ValueError(
            f"the optimizer's {len(groups)} param group(s) hold no parameters, so there is "
            "nothing to train; build it from model.parameters()"
        )
    owned = {id(p) for p in model.parameters()}
    foreign = [p for p in params if id(p) not in owned]
    if foreign:
        shapes = ", ".join(str(tuple(p.shape)) for p in foreign[:3])
        raise ValueError(
            f"{len(foreign)} of the optimizer's {len(params)} parameters (shapes {shapes}"
            f"{', ...' if len(foreign) > 3 else ''}) are not parameters of the model: the "
            "snapshot would restore the wrong tensors. Build the optimizer from "
            "model.parameters() of the same model instance you pass to AutoLR"
        )


def _build_config(
    config: TunerConfig | Mapping[str, Any] | None, fields: Mapping[str, Any]
) -> TunerConfig:
    if isinstance(config, TunerConfig):
        if not fields:
            return config
        return TunerConfig.build(**{**config.model_dump(exclude_unset=True), **fields})
    if config is not None and not isinstance(config, Mapping):
        raise TypeError(f"config must be a TunerConfig or a mapping, got {type(config).__name__}")
    return TunerConfig.build(**{**(config or {}), **fields})


def _make_transport(server: str | None, transport: Transport | None, *, strict: bool) -> Transport:
    if transport is not None:
        return transport
    if server is None:
        return LocalTransport()
    if not isinstance(server, str):
        raise TypeError(f"server must be a URL string, got {type(server).__name__}")
    from autolr.client._http import HttpTransport  # only loaded for a remote controller

    http: Transport = HttpTransport(server, strict=strict)
    return http


def _tail_mean(values: list[float], fraction: float = 0.1) -> float | None:
    finite = [v for v in values if math.isfinite(v)]
    if not finite:
        return None
    k = max(1, int(len(finite) * fraction))
    return math.fsum(finite[-k:]) / k


def _fmt(value: float | None) -> str:
    return "diverged" if value is None else f"{value:.4g}"
