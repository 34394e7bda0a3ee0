"""`AutoLR`: the training-loop side of an AutoLRS job.

The tuner is an imperative shell around the controller's pure state machine: it runs the
segment it was told to run, buffers one loss per step, and at the segment boundary reports the
losses and applies the next instruction (restore, snapshot, LR). Between boundaries
`AutoLR.step` is a counter, an append and a comparison; nothing is read from the device and
nothing goes over the network.

Where the instruction comes from is the `Link`'s business (``client/_link.py``): the service, or,
when the service does not answer within ``step_timeout``, the same controller run in this
process on the run's own record. When no instruction can be had at all, the tuner ends the run
on its own safe plan (`AutoLR._hold_plan`): back to the stage snapshot if a probe was running,
the last trained LR, and the planned final decay, so the budget ends exactly at total_steps.
"""

from __future__ import annotations

import gc
import logging
import math
import os
import time
import warnings
from collections.abc import Callable, Mapping
from typing import Any, cast

import torch

from autolr.budget import segment_stop, with_total_steps
from autolr.client._branch import CooldownBranch, OnDone
from autolr.client._distributed import Group, current_group
from autolr.client._eval import ValFn, evaluate
from autolr.client._link import EMBEDDED, Link
from autolr.client._losses import Loss, read_losses, stack_losses
from autolr.client._lr import GroupLR
from autolr.client._progress import Progress
from autolr.client._results import TunerResults, results_from_controller, results_from_schedule
from autolr.client._segment import Segment
from autolr.client._snapshot import SnapshotDevice, StateSnapshot
from autolr.client._transport import LocalTransport, Transport
from autolr.client.errors import ClientError, TunerFinished
from autolr.config import TunerConfig
from autolr.errors import ConfigError
from autolr.policy import tail_mean
from autolr.protocol import Branch, Instruction, Report

log = logging.getLogger("autolr.client")

#: Format 2 adds the run's record (reports and instructions) and the tuner's own plan.
STATE_FORMAT = 2
STATE_FORMATS = (1, 2)
#: The default bound on how long a step waits for the service, all attempts together (seconds).
DEFAULT_STEP_TIMEOUT = 1.0
#: Buffered loss tensors are stacked into one tensor every this many steps (no sync): a long
#: segment would otherwise hold thousands of tensor objects that the garbage collector keeps
#: traversing, which tripled the per-step cost in `benchmarks/client_overhead.py`.
CHUNK_STEPS = 64
#: The tuner's own plan (no instruction to be had) ends its decay at this fraction of the LR.
PLAN_DECAY_END = 1e-3
#: Without a budget, the tuner's own plan trains in segments of this many steps.
PLAN_CHUNK_STEPS = 10_000

# Modes. Anything but _RUN is falsy-tested once per step to leave the hot path.
_RUN, _FINISHED, _CLOSED, _BRANCH = 0, 3, 4, 5
_MODES = (_RUN, _FINISHED)
_START = "start"  # the request for the job's first instruction


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

    Failure policy: the training run comes first, and ``total_steps`` is a hard contract:
    `finished` turns true at exactly ``total_steps`` steps whatever the service does. When the
    service does not answer within ``step_timeout`` seconds the tuner takes the decision itself
    with the same controller (decisions are deterministic, so the run goes on step for step as
    with the service up) and sends the service what it missed once it answers again (on a
    clock: 1 s, doubling up to 30 s). A service that refuses the job for good (unknown job,
    cancelled, wrong token) leaves the run deciding in this process to the end. Should no
    instruction be had at all, the tuner restores the stage snapshot if a probe was running,
    trains on at the last trained LR and runs the planned final decay itself. ``strict=True``
    raises `TransportError` and refusals instead. Non-finite losses are reported to the
    controller (they mean divergence), never raised; a probe whose float loss turns NaN or
    infinite ends at that step (tensor losses are only read at the boundary, so their probes run
    to the end).

    Args:
        model: the module being trained (its parameters and buffers are snapshotted).
        optimizer: an optimizer over parameters of ``model``.
        config: a `TunerConfig` (or a mapping of its fields); keyword fields override it.
        val_fn: returns the validation loss (float or 0-dim tensor); called in eval mode
            without gradients at the steps an instruction asks for. Required when
            ``loss_source="val"``. With the default ``"val-if-given"`` every probe is judged
            on it (about ``val_evals_per_probe`` calls per probe: budget for its cost); without
            it, on the training loss.
        server: URL of an autolr service (``"http://host:8000"``); None runs the controller
            in this process (embedded mode).
        admin_key: the service's admin key, sent when creating the job (default: the
            ``AUTOLR_ADMIN_KEY`` environment variable); only with ``server``.
        name: the job's name on the service (its job list, dashboard and export).
        transport: a ready `Transport`, instead of ``server``.
        scaler: an AMP ``GradScaler`` to snapshot and restore along with the model.
        snapshot_device: ``"cpu"`` (host memory, default), ``"same"`` (each tensor's own device,
            fastest) or ``"disk"`` (one temporary file, removed by `close`).
        snapshot_dir: folder for ``"disk"`` snapshots (default: a private temporary folder).
        strict: raise transport and controller errors instead of training on (calls then wait
            out the transport's own timeouts and retries).
        step_timeout: the most seconds one step waits for the service, all attempts together
            (default 1.0; None: the transport's own timeouts); past it the step decides locally.
            Honoured by `HttpTransport`; embedded mode never waits.
        resume: a `state_dict` from a checkpoint: reattach to that job instead of starting a
            new one (same as `load_state_dict` after construction, without creating a job).
        progress: print one line per stage (its LR, the rule that chose it, the probes spent,
            the steps left) and a summary table at the end, to stderr; False sends them to the
            ``autolr.client`` logger at INFO instead.
        on_segment: called with a dict of metrics at the end of every segment (``step``,
            ``segment``, ``kind``, ``stage``, ``probe``, ``lr``, ``lr_end``, ``steps``, ``loss``:
            the mean finite training loss), on rank 0 only: the hook for TensorBoard, W&B or
            MLflow. Its exceptions are logged, never raised into training.
        **config_fields: any `TunerConfig` field (``min_lr=``, ``total_steps=``, ``seed=``...).

    Raises:
        ConfigError: invalid config fields (a ValueError; e.g. ``min_lr >= max_lr``).
        ValueError: an optimizer without parameters, parameters the model does not own,
            ``loss_source="val"`` without ``val_fn``, both ``server`` and ``transport``, or a
            ``step_timeout`` that is not a positive number.
    """

    def __init__(
        self,
        model: torch.nn.Module,
        optimizer: torch.optim.Optimizer,
        *,
        config: TunerConfig | Mapping[str, Any] | None = None,
        val_fn: ValFn | None = None,
        server: str | None = None,
        admin_key: str | None = None,
        name: str | None = None,
        transport: Transport | None = None,
        scaler: Any | None = None,
        snapshot_device: SnapshotDevice = "cpu",
        snapshot_dir: str | os.PathLike[str] | None = None,
        strict: bool = False,
        step_timeout: float | None = DEFAULT_STEP_TIMEOUT,
        resume: Mapping[str, Any] | None = None,
        progress: bool = True,
        on_segment: Callable[[dict[str, Any]], None] | None = None,
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
        if step_timeout is not None and not (
            isinstance(step_timeout, int | float)
            and not isinstance(step_timeout, bool)
            and math.isfinite(step_timeout)
            and step_timeout > 0
        ):
            raise ValueError(
                f"step_timeout={step_timeout!r} must be a positive number of seconds (or None)"
            )
        self._model = model
        self._optimizer = optimizer
        self._val_fn = val_fn
        self._strict = strict
        self._group: Group | None = current_group()
        leader = self._group is None or self._group.leader
        self._transport: Transport | None = (
            _make_transport(server, transport, strict=strict, admin_key=admin_key, name=name)
            if leader
            else None
        )
        self._link: Link | None = (
            Link(self._transport, self._config, strict=strict, budget=step_timeout)
            if self._transport is not None
            else None
        )
        self._snapshot = StateSnapshot(
            model, optimizer, scaler=scaler, device=snapshot_device, directory=snapshot_dir
        )
        # The best-probe slot (``reuse_best_probe``): the end state of the best probe so far,
        # so the train segment can continue from it instead of repeating its steps.
        self._best = StateSnapshot(
            model, optimizer, scaler=scaler, device=snapshot_device, directory=snapshot_dir
        )
        # The main run's state while a cooldown branch trains (`cooldown`).
        self._branch_snapshot = StateSnapshot(
            model, optimizer, scaler=scaler, device=snapshot_device, directory=snapshot_dir
        )
        self._lrs = GroupLR(optimizer)
        self._lr = float(optimizer.param_groups[0]["lr"])
        self._progress = Progress(progress)
        self._on_segment = on_segment if leader else None
        self._overridden = False  # warned once that something else wrote the LR
        self._job_id: str | None = None
        self._schedule: list[Segment] = []
        self._stage_probes: list[tuple[float, float | None]] = []
        # the current segment
        self._inst: Instruction | None = None
        self._mode = _RUN
        self._mode_at_close = _RUN
        self._pos = 0
        self._stop = 0  # steps of the current segment to run (fewer after set_total_steps)
        self._losses: list[Loss] = []
        self._chunks: list[torch.Tensor] = []
        # For the current segment's report: a budget set mid-run, the branches run inside it.
        self._new_total: int | None = None
        self._branches: list[Branch] = []
        self._branch: CooldownBranch | None = None
        # The job's config as created (the record's replays start from it); `_config` carries
        # the budget in force.
        self._job_config = self._config
        self._val: list[tuple[int, Loss]] = []
        self._next_event = 1
        self._ramp = False
        self._eval_every: int | None = None
        self._abort_nonfinite = False
        # The tuner's own plan, when no instruction can be had: None while instructions come.
        self._plan: list[Instruction] | None = None
        if self._config.loss_source in ("auto", "val-if-given") and val_fn is None and leader:
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
        """The controller's id for this job (None until the job exists on the service)."""
        if self._link is not None and self._link.job_id is not None:
            return self._link.job_id  # the service may have created it while syncing
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
    def service_state(self) -> str | None:
        """Where instructions come from: ``"embedded"`` (no service), ``"online"`` (the service
        holds the whole run), ``"local"`` (the service missed reports: this process decides and
        syncs on a clock), ``"detached"`` (the service refused the job: this process decides to
        the end). None on ranks other than 0 under data parallelism."""
        return self._link.mode if self._link is not None else None

    @property
    def in_cooldown(self) -> bool:
        """True while a cooldown branch (`cooldown`) trains: steps now go to the branch."""
        return self._mode == _BRANCH

    @property
    def steps_run(self) -> int:
        """Optimizer steps seen so far: segments, the current one, and steps without a job."""
        done: int = sum(s.steps + s.extra_steps for s in self._schedule)
        return done + self._pos

    # ----------------------------------------------------------------- the hot path
    def step(self, loss: float | torch.Tensor) -> None:
        """Record one optimizer step's loss; at a segment boundary, talk to the controller.

        Call it after ``optimizer.step()``. A tensor stays on its device until the boundary.

        Raises:
            TunerFinished: the budget is spent (check `finished` and stop the loop).
        """
        if self._mode:
            if self._mode == _BRANCH:
                self._branch_step(loss)
                return
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
        self._check_lr()
        pos = self._pos
        every = self._eval_every
        if every is not None and pos % every == 0 and self._val_fn is not None:
            self._val.append((pos, evaluate(self._model, self._val_fn)))
        if pos >= self._stop:
            self._end_segment()
            return
        if pos % CHUNK_STEPS == 0:
            self._chunks.append(stack_losses(self._losses))
            self._losses = []
            link = self._link
            if link is not None and link.sync_at is not None and time.monotonic() >= link.sync_at:
                link.poll()  # the service missed reports and its clock is due
        if self._ramp:
            self._set_lr(inst.lr_at(pos))
        self._next_event = self._next_event_after(pos)

    def _next_event_after(self, pos: int) -> int:
        inst = self._inst
        assert inst is not None
        nxt = min(self._stop, (pos // CHUNK_STEPS + 1) * CHUNK_STEPS)
        if self._ramp:
            nxt = min(nxt, pos + 1)
        if self._eval_every is not None:
            nxt = min(nxt, (pos // self._eval_every + 1) * self._eval_every)
        return nxt

    # ----------------------------------------------------------------- budget and branches
    def set_total_steps(self, total_steps: int) -> None:
        """Set (or change) the step budget now: the run ends at exactly ``total_steps``.

        For runs started without a budget (``total_steps=None``), or whose budget changed.
        The plan adapts as if the budget had been known: the stages that still fit, then the
        final decay over the budget's ``anneal_fraction`` (or what is left of it when that is
        less). The segment running now goes on unless it would reach into the decay: then it
        ends where the decay must start (at once if that point has passed; a running decay
        decays on to the new end). The controller learns the budget with that segment's
        report, so a server job and its replays follow it too. Under data parallelism call it
        on every rank at the same step.

        Raises:
            ConfigError: ``total_steps`` (a ValueError) is below the steps already run
                (`steps_run`, cooldown branches included) or too small for the config.
            ClientError: the run has finished or the tuner is closed, or a cooldown branch
                is running (set it after the branch).
        """
        self._check_running("set_total_steps")
        inst = self._inst
        assert inst is not None
        config = with_total_steps(self._config, total_steps, steps_used=self.steps_run)
        stop = segment_stop(config, inst, start=self.steps_run - self._pos, ran=self._pos)
        self._config, self._new_total = config, total_steps
        self._stop = min(self._stop, stop)
        if self._pos >= self._stop:
            self._end_segment()
        else:
            self._next_event = self._next_event_after(self._pos)

    def cooldown(self, steps: int, on_done: OnDone) -> None:
        """Branch off a cooled model: the next ``steps`` steps decay the LR to ~0 from a copy.

        The tuner snapshots model, optimizer (and scaler) now; the next ``steps`` calls of
        `step` train a branch whose LR goes linearly from the LR in use to
        ``autolr.policy.THRESHOLDS.anneal_end_ratio`` of it. After its last step the tuner
        calls ``on_done(model)`` with the cooled model (evaluate it, save it), restores the
        snapshot and sets the LR back: the main run continues exactly as it was. The branch's
        steps count toward the budget, and the controller records the branch (kind
        ``"branch"``: logs, dashboard, export; replays skip it, as the main run never saw it).
        Under data parallelism call it on every rank at the same step.

        Raises:
            ValueError: ``steps`` is not a positive integer, or (with a budget) the branch
                would not leave the run room to end at ``total_steps``.
            ClientError: the run has finished, the tuner is closed, or a branch is running.
        """
        if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
            raise ValueError(f"steps={steps!r} must be a positive integer number of steps")
        if not callable(on_done):
            raise TypeError(f"on_done must be callable with the model, got {on_done!r}")
        self._check_running("cooldown")
        inst = self._inst
        assert inst is not None
        total = self._config.total_steps
        if total is not None:
            room = total - self.steps_run - (self._stop - self._pos)
            if steps > room:
                raise ValueError(
                    f"steps={steps}: a cooldown branch counts toward total_steps={total}, and "
                    f"only {max(room, 0)} steps fit beside the {self._stop - self._pos} left in "
                    f"the running {inst.kind} segment"
                    + (" (the run's own final decay is running)" if inst.kind == "anneal" else "")
                )
        self._branch = CooldownBranch.begin(
            inst,
            at=self._pos,
            lr=self._lr,
            steps=steps,
            on_done=on_done,
            snapshot=self._branch_snapshot,
        )
        self._mode = _BRANCH
        self._set_lr(self._branch.ramp.lr_at(0))

    def _check_running(self, what: str) -> None:
        if self._mode == _BRANCH:
            raise ClientError(f"{what}: a cooldown branch is running; call it after the branch")
        if self._mode != _RUN or self._inst is None:
            state = "finished" if self.finished else "closed"
            raise ClientError(f"{what}: the tuner is {state}")

    def _branch_step(self, loss: float | torch.Tensor) -> None:
        branch = self._branch
        assert branch is not None
        branch.losses.append(loss.detach() if isinstance(loss, torch.Tensor) else float(loss))
        if not branch.done:
            self._set_lr(branch.ramp.lr_at(len(branch.losses)))
            return
        train, _ = read_losses(branch.losses, [], self._group, [])
        self._branch, self._mode = None, _RUN
        self._branches.append(branch.record(train))
        self._schedule.append(Segment.ran(branch.ramp, len(train)))
        try:
            branch.finish(self._model)
        finally:
            self._set_lr(branch.lr_before)

    def _held_step(self) -> None:
        if self._mode == _FINISHED:
            raise TunerFinished(self._config.total_steps)
        raise ClientError("the tuner is closed; create a new AutoLR to tune again")

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
            total_steps=self._new_total,
            branches=self._branches,
        )
        self._new_total, self._branches = None, []
        if self._plan is not None and (report.total_steps is not None or report.branches):
            self._plan = None  # no controller: the tuner's own ending, for the new step count
            self._schedule.append(Segment.ran(inst, len(train)))
            self._plan = self._hold_plan()
            self._schedule.pop()
        self._schedule.append(Segment.ran(inst, len(train)))
        if inst.kind == "probe":
            # the statistic the controller records as a segment's ``loss_last``
            self._stage_probes.append((inst.lr, tail_mean(train)))
        self._losses, self._chunks, self._val, self._pos = [], [], [], 0
        if self._on_segment is not None:
            self._report_metrics(inst, train)
        self._submit(report)

    def _report_metrics(self, inst: Instruction, train: list[float]) -> None:
        """Hand the segment's metrics to the user's ``on_segment`` hook (never raises)."""
        mean = tail_mean(train, fraction=1.0)  # all finite losses; None when their mean overflows
        metrics: dict[str, Any] = {
            "step": self.steps_run,
            "segment": inst.segment,
            "kind": inst.kind,
            "stage": inst.stage,
            "probe": inst.probe,
            "lr": inst.lr,
            "lr_end": inst.lr_end,
            "steps": len(train),
            "loss": math.nan if mean is None else mean,
        }
        try:
            assert self._on_segment is not None
            self._on_segment(metrics)
        except Exception:
            log.exception("autolr: the on_segment hook failed; training goes on")

    def _submit(self, request: Report | str) -> None:
        """Send a report (or the start request) and run the instruction that comes back."""
        self._apply(self._next_instruction(request))

    def _start(self) -> None:
        self._submit(_START)

    def _next_instruction(self, request: Report | str) -> Instruction:
        """Rank 0 gets the next instruction and every rank gets the same one.

        From the link (the service, or the controller run here); when it has none to give, from
        the tuner's own plan (`_hold_plan`). Raises only with ``strict=True``.
        """
        if self._plan is not None:
            return self._planned()
        error: BaseException | None = None
        outcome: tuple[str, Any, str | None] = ("plan", None, None)
        link = self._link
        if link is not None:
            try:
                inst = link.start() if isinstance(request, str) else link.report(request)
                if inst is not None:
                    outcome = ("ok", inst, link.job_id)
            except Exception as exc:
                if not self._strict:  # the link raises only when strict; never into training
                    log.exception("autolr: unexpected failure while asking for an instruction")
                else:
                    error, outcome = exc, ("raise", f"{type(exc).__name__}: {exc}", None)
        if self._group is not None:
            outcome = self._group.broadcast(outcome)
        status, value, job_id = outcome
        if status == "raise":
            if error is not None:
                raise error
            raise ClientError(f"rank 0 could not get an instruction: {value}")
        if status == "ok":
            if job_id is not None:
                self._job_id = job_id
            return cast(Instruction, value)
        self._plan = self._hold_plan()
        return self._planned()

    def _planned(self) -> Instruction:
        plan = self._plan
        assert plan is not None
        if not plan:  # no budget: one more segment at the same LR
            last = self._inst
            assert last is not None
            plan.append(
                last.model_copy(
                    update={"segment": last.segment + 1, "restore": False, "snapshot": False}
                )
            )
        return plan.pop(0)

    def _hold_plan(self) -> list[Instruction]:
        """The tuner's own ending, when no controller can give an instruction.

        A run never ends in a probe state: if the segment just run was a probe, the first
        planned segment restores the stage snapshot. It trains at the LR last trained with
        (else the stage's best probe so far, else the current LR) and decays linearly to
        `PLAN_DECAY_END` of it over the budget's planned anneal (``anneal_fraction``), so the
        run ends at exactly ``total_steps``.
        """
        last = self._inst
        segment = last.segment + 1 if last is not None else 0
        stage = last.stage if last is not None else -1
        restore = last is not None and last.kind == "probe" and self._snapshot.taken
        lr = self._hold_lr()
        total = self._config.total_steps
        plain = {"stage": stage, "eval_every": None}
        if total is None:
            plan = [
                Instruction(
                    segment=segment,
                    kind="train",
                    lr=lr,
                    lr_end=lr,
                    steps=PLAN_CHUNK_STEPS,
                    restore=restore,
                    **plain,
                )
            ]
            left = "no step budget"
        else:
            done = sum(s.steps + s.extra_steps for s in self._schedule)
            remaining = max(0, total - done)
            decay = min(remaining, self._config.anneal_steps)
            if last is not None and last.kind == "anneal":
                decay = remaining
            plan = []
            if remaining - decay > 0:
                plan.append(
                    Instruction(
                        segment=segment,
                        kind="train",
                        lr=lr,
                        lr_end=lr,
                        steps=remaining - decay,
                        restore=restore,
                        **plain,
                    )
                )
                segment, restore = segment + 1, False
            if decay > 0:
                plan.append(
                    Instruction(
                        segment=segment,
                        kind="anneal",
                        lr=lr,
                        lr_end=lr * PLAN_DECAY_END,
                        steps=decay,
                        restore=restore,
                        **plain,
                    )
                )
                segment = segment + 1
            plan.append(
                Instruction(
                    segment=segment, kind="train", lr=lr, lr_end=lr, steps=0, finished=True, **plain
                )
            )
            left = f"{remaining} steps left, the last {decay} decaying"
        if self._group is None or self._group.leader:
            log.error(
                "autolr has no controller to ask; the tuner ends the run on its own plan: %s"
                "lr=%.4g, %s",
                "back to the stage snapshot, "
                if (last is not None and last.kind == "probe")
                else "",
                lr,
                left,
            )
        return plan

    def _hold_lr(self) -> float:
        for seg in reversed(self._schedule):
            if seg.kind not in ("probe", "branch"):
                return seg.lr_end
        probes = [(tail, lr) for lr, tail in self._stage_probes if tail is not None]
        if probes:
            return min(probes)[1]
        return self._lr if math.isfinite(self._lr) and self._lr > 0 else self._config.min_lr

    def _apply(self, inst: Instruction) -> None:
        """Run ``inst``: keep the best probe, restore, snapshot, then set the LR.

        The order is the protocol's: the probe just run must be saved before a restore
        overwrites it, and the LR is set last because a restore brings back the snapshot's.
        """
        self._inst = inst
        self._mode = _RUN
        if inst.finished:
            if inst.restore and self._snapshot.taken:
                # a budget that ended in a probe (set_total_steps(steps_run)): the stage's
                # state, never a probe's, is the run's last
                self._snapshot.restore()
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
        self._stop = inst.steps
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
        # The tuner's own plan (no controller) runs every segment to its end.
        self._abort_nonfinite = (
            inst.kind in ("probe", "train") and self._group is None and self._plan is None
        )

    def reapply_lr(self) -> None:
        """Write the tuner's current LR into the optimizer again.

        For integrations whose own LR scheduler writes the optimizer's LR every step (the
        Hugging Face Trainer): calling this after that scheduler keeps the tuner in charge.
        """
        self._lrs.set(self._lr)

    def _set_lr(self, lr: float) -> None:
        self._lrs.set(lr)
        self._lr = lr

    def get_last_lr(self) -> list[float]:
        """The LR of every param group as the tuner last set it (as on a torch ``LRScheduler``)."""
        return [self._lr * ratio for ratio in self._lrs.ratios]

    def _check_lr(self) -> None:
        """Notice another writer of the LR (a second scheduler): warn once, take the LR back.

        Runs at the tuner's events (at most every `CHUNK_STEPS` steps), never per step.
        """
        current = self._optimizer.param_groups[0]["lr"]
        if isinstance(current, torch.Tensor):  # reading it would sync the device
            return
        if current == self._lr * self._lrs.ratios[0]:
            return
        if not self._overridden:
            self._overridden = True
            warnings.warn(
                f"the optimizer's LR is {current:.6g}, but AutoLR set {self._lr:.6g}: "
                f"{_lr_writers(self._optimizer)} wrote it. AutoLR owns the LR and sets it back; "
                "remove the other scheduler (every step it runs trains at an LR the search "
                "did not choose)",
                RuntimeWarning,
                stacklevel=4,
            )
        self._lrs.set(self._lr)

    # ----------------------------------------------------------------- logging
    def _log_stage(self, inst: Instruction) -> None:
        """One line per stage, when its search is over and its train segment begins."""
        ran = [s for s in self._schedule if s.kind != "branch"]
        if inst.kind != "train" or not ran or ran[-1].kind != "probe":
            return
        if self._group is not None and not self._group.leader:
            return
        probes = [s for s in self._schedule if s.kind == "probe" and s.stage == inst.stage]
        if inst.decision is None:  # a controller without a stage policy record
            forecasts = self._forecasts(inst.stage)
            shown = []
            for i, (lr, last) in enumerate(self._stage_probes):
                fc = forecasts[i] if i < len(forecasts) else None
                what = f"forecast {fc:.4g}" if fc is not None else f"last loss {_fmt(last)}"
                shown.append(f"{lr:.3g} ({what})")
            inst = inst.model_copy(
                update={"decision": f"lowest forecast: lr={inst.lr:.4g} [{', '.join(shown)}]"}
            )
        self._progress.stage(
            inst,
            probes=len({s.probe for s in probes}),  # a probe's cooldown tail is a segment too
            probe_steps=sum(s.steps for s in probes),
            steps_run=self.steps_run,
            total_steps=self._config.total_steps,
        )

    def _forecasts(self, stage: int) -> list[float | None]:
        """Probe forecasts of ``stage`` when the controller runs in this process."""
        controller = self._link.controller() if self._link is not None else None
        if controller is None:
            return []
        for record in controller.stages:
            if record.stage == stage:
                return [p.forecast for p in record.probes]
        return []

    def _log_finish(self) -> None:
        if self._group is not None and not self._group.leader:
            return
        total = sum(s.steps + s.extra_steps for s in self._schedule)
        probing = sum(s.steps for s in self._schedule if s.kind == "probe")
        self._progress.emit(
            f"autolr finished: {total} steps, {probing} of them probing "
            f"({100.0 * probing / max(total, 1):.0f}%); final lr={self._lr:.4g}\n"
            + self.results().summary()
        )

    def results(self) -> TunerResults:
        """The run so far as a `TunerResults`: the server's export format, a stage table, a plot.

        In embedded mode it holds the controller's whole record (the ``kept`` marks of reused
        probes and the training losses to draw); against a server, the segments this process
        ran (export the job with ``autolr export`` for the service's record).
        """
        controller = self._link.controller() if self._link is not None else None
        if controller is not None:
            record = controller.record()
            record.setdefault("job_id", self.job_id)
            return results_from_controller(record, finished=self.finished)
        return results_from_schedule(
            self._schedule,
            self._config.model_dump(mode="json"),
            job_id=self.job_id,
            finished=self.finished,
            decisions=self._progress.decisions,
        )

    # ----------------------------------------------------------------- checkpoints
    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue this job after a restart, for the user's checkpoint.

        Holds the controller conversation (the whole controller in embedded mode; in server mode
        the job id and token, and the run's record: every report and instruction, so the run can
        go on without the service and the service can catch up later), the position inside the
        current segment with its buffered losses, the schedule so far and the stage snapshot
        itself (CPU tensors), so a probe interrupted by preemption resumes exactly.

        Size: one copy of the model and optimizer state (the stage snapshot), plus a second
        while a stage's probes run with ``reuse_best_probe`` (the best probe's end state), and
        none once the run has finished; the rest is small (losses of the current segment, the
        controller's record). Reads the
        buffered losses from the device (one sync). Under data parallelism each rank's buffered
        losses are its own; loading rank 0's state on every rank is fine (the part of the
        segment before the checkpoint then counts rank 0's losses).
        """
        if self._branch is not None:
            raise ClientError(
                "state_dict: a cooldown branch is running (the model is the branch's, not the "
                "run's); take the checkpoint after the branch"
            )
        train, val = read_losses(self._losses, [v for _, v in self._val], None, self._chunks)
        self._losses, self._chunks = list(train), []
        self._val = [(j, v) for (j, _), v in zip(self._val, val, strict=True)]
        transport_state = None
        if self._transport is not None and self._transport.job_id is not None:
            try:
                transport_state = self._transport.state_dict()
            except Exception:  # a transport with nothing to save yet (no job on the service)
                log.debug("transport state unavailable", exc_info=True)
        return {
            "format": STATE_FORMAT,
            "config": self._job_config.model_dump(),
            # a budget set mid-run (None: the config's), the steps of the running segment
            # still to run under it, and what its report will carry
            "total_steps": self._config.total_steps,
            "stop": self._stop,
            "report_total_steps": self._new_total,
            "branches": [b.model_dump(mode="json") for b in self._branches],
            "job_id": self.job_id,
            "instruction": self._inst.model_dump() if self._inst is not None else None,
            "mode": self._mode if self._mode != _CLOSED else self._mode_at_close,
            "pos": self._pos,
            "losses": list(train),
            "val_losses": [list(p) for p in self._val],
            "schedule": [s.to_dict() for s in self._schedule],
            "stage_probes": [list(p) for p in self._stage_probes],
            "lr": self._lr,
            "lr_ratios": list(self._lrs.ratios),
            "plan": None if self._plan is None else [i.model_dump() for i in self._plan],
            "link": self._link.state_dict() if self._link is not None else None,
            "transport": transport_state,
            # Only what can still be restored: the stage snapshot until the run ends, the
            # best-probe slot while the stage's probes run (its one reader is the train
            # segment's start, applied before any checkpoint of that segment).
            "snapshot": self._snapshot.state_dict() if not self.finished else None,
            "best_snapshot": (
                self._best.state_dict()
                if self._inst is not None and self._inst.kind == "probe"
                else None
            ),
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Continue the job saved by `state_dict` (call after loading model and optimizer).

        Everything is checked before anything changes (all or nothing): the format, the config,
        a finite positive LR, a known mode, the position inside the segment, the schedule, the
        run's record, and snapshots that match this model's parameters and this optimizer's
        state. In server mode nothing is asked of the service here: a service that is down, or
        whose job went further than the checkpoint, is reconciled with at the next boundaries.

        Raises:
            ValueError: ``state`` is not a tuner state of a supported format, or any part of it
                is malformed or does not fit this model and optimizer (the message names it).
        """
        parsed = self._parse_state(state)
        self._job_config = self._config = parsed["config"]
        if parsed["total_steps"] != self._config.total_steps:
            self._config = with_total_steps(self._config, parsed["total_steps"], steps_used=0)
        self._new_total, self._branches = parsed["report_total_steps"], parsed["branches"]
        if self._link is not None:
            self._link.config = self._job_config
            self._link.load(parsed["link"])
        if self._transport is not None and parsed["transport"] is not None:
            _reattach(self._transport, parsed["transport"])
        self._job_id = parsed["job_id"]
        self._inst = parsed["instruction"]
        self._mode = parsed["mode"]
        self._pos = parsed["pos"]
        self._losses = list(parsed["losses"])
        self._chunks = []
        self._val = list(parsed["val_losses"])
        self._schedule = list(parsed["schedule"])
        self._stage_probes = list(parsed["stage_probes"])
        self._plan = parsed["plan"]
        self._lrs = GroupLR(self._optimizer, parsed["lr_ratios"])
        self._snapshot.load_state_dict(state["snapshot"])
        self._best.load_state_dict(state["best_snapshot"])
        self._stop = parsed["stop"]
        if self._mode == _RUN and self._inst is not None:
            self._configure_segment(self._inst)
            self._set_lr(self._inst.lr_at(self._pos))
            self._next_event = self._next_event_after(self._pos)
        else:
            self._set_lr(parsed["lr"])

    def _parse_state(self, state: Any) -> dict[str, Any]:
        """Validate a `state_dict` value against this tuner; returns its parsed parts."""
        if not isinstance(state, Mapping) or state.get("format") not in STATE_FORMATS:
            found = state.get("format") if isinstance(state, Mapping) else type(state).__name__
            raise ValueError(
                f"not an AutoLR state_dict of format {STATE_FORMAT} (got format {found!r}); "
                "pass the value tuner.state_dict() returned"
            )
        keys = {"config", "job_id", "instruction", "mode", "pos", "losses", "val_losses"}
        keys |= {"schedule", "stage_probes", "lr", "lr_ratios", "transport", "snapshot"}
        keys.add("best_snapshot")
        missing = sorted(keys - state.keys())
        if missing:
            raise ValueError(f"AutoLR state_dict lacks {', '.join(missing)}")
        fmt = state["format"]
        out: dict[str, Any] = {}
        try:
            out["config"] = TunerConfig.model_validate(state["config"])
        except Exception as exc:
            raise ValueError(f"state_dict config: {exc}") from None
        mode = state["mode"]
        if fmt == 1 and mode in (1, 2):
            raise ValueError(
                "this checkpoint (format 1) was saved while the controller was unreachable; "
                "this autolr cannot continue it exactly: start a new job"
            )
        if not _is_int(mode) or mode not in _MODES:
            raise ValueError(f"state_dict mode={mode!r} is not a known tuner mode")
        out["mode"] = mode
        inst = state["instruction"]
        if inst is None:
            raise ValueError("state_dict instruction is missing: the job never started")
        out["instruction"] = _instruction(inst, "instruction")
        pos = state["pos"]
        if not _is_int(pos) or not 0 <= pos <= out["instruction"].steps:
            raise ValueError(
                f"state_dict pos={pos!r} must be an integer in 0..{out['instruction'].steps} "
                "(the steps of its segment)"
            )
        out["pos"] = pos
        out.update(self._parse_budget_state(state, out))
        out["losses"] = _floats(state["losses"], "losses")
        if len(out["losses"]) != pos:
            raise ValueError(f"state_dict has {len(out['losses'])} losses for pos={pos}")
        try:
            out["val_losses"] = [(int(j), float(v)) for j, v in state["val_losses"]]
        except (TypeError, ValueError):
            raise ValueError("state_dict val_losses must be [step, loss] pairs") from None
        out["schedule"] = [
            _segment(s, i) for i, s in enumerate(_list(state["schedule"], "schedule"))
        ]
        try:
            out["stage_probes"] = [
                (float(a), None if b is None else float(b)) for a, b in state["stage_probes"]
            ]
        except (TypeError, ValueError):
            raise ValueError("state_dict stage_probes must be [lr, loss or None] pairs") from None
        lr = state["lr"]
        if not _number(lr) or not math.isfinite(lr) or lr < 0:
            raise ValueError(f"state_dict lr={lr!r} must be a finite number >= 0")
        out["lr"] = float(lr)
        ratios = _floats(state["lr_ratios"], "lr_ratios")
        if len(ratios) != len(self._optimizer.param_groups) or not all(
            math.isfinite(r) and r >= 0 for r in ratios
        ):
            raise ValueError(
                f"state_dict lr_ratios={ratios!r} must be {len(self._optimizer.param_groups)} "
                "finite ratios >= 0 (one per param group of the optimizer)"
            )
        out["lr_ratios"] = ratios
        job_id = state["job_id"]
        if job_id is not None and not isinstance(job_id, str):
            raise ValueError(f"state_dict job_id={job_id!r} must be a string or None")
        out["job_id"] = job_id
        plan = state.get("plan")
        out["plan"] = (
            None
            if plan is None
            else [_instruction(p, f"plan[{i}]") for i, p in enumerate(_list(plan, "plan"))]
        )
        out["transport"] = self._check_transport_state(state["transport"])
        out["link"] = self._check_link_state(state, fmt, out)
        for key in ("snapshot", "best_snapshot"):
            try:
                self._snapshot.check_state_dict(state[key])
            except ValueError as exc:
                raise ValueError(f"state_dict {key}: {exc}") from None
        return out

    def _parse_budget_state(
        self, state: Mapping[str, Any], out: Mapping[str, Any]
    ) -> dict[str, Any]:
        """The budget set mid-run and the pending branches (absent from older checkpoints)."""
        config: TunerConfig = out["config"]
        inst: Instruction = out["instruction"]
        total = state.get("total_steps", config.total_steps)
        if total != config.total_steps:
            try:
                with_total_steps(config, total, steps_used=0)
            except ConfigError as exc:
                raise ValueError(f"state_dict total_steps: {exc}") from None
        stop = state.get("stop", inst.steps)
        if not _is_int(stop) or not out["pos"] <= stop <= inst.steps:
            raise ValueError(
                f"state_dict stop={stop!r} must be an integer in {out['pos']}..{inst.steps}"
            )
        pending = state.get("report_total_steps")
        if pending is not None and pending != total:
            raise ValueError(
                f"state_dict report_total_steps={pending!r} differs from total_steps={total!r}"
            )
        try:
            branches = [Branch.model_validate(b) for b in state.get("branches") or []]
        except Exception as exc:
            raise ValueError(f"state_dict branches: {exc}") from None
        return {
            "total_steps": total,
            "stop": stop,
            "report_total_steps": pending,
            "branches": branches,
        }

    def _check_transport_state(self, value: Any) -> dict[str, Any] | None:
        if value is None:
            return None
        if not isinstance(value, Mapping):
            raise ValueError("state_dict transport must be a mapping or None")
        kind = value.get("kind")
        transport = self._transport
        if isinstance(transport, LocalTransport) and kind != "local":
            raise ValueError(
                f"state_dict transport kind={kind!r}: a checkpoint of a server run cannot resume "
                "in embedded mode (pass server= or transport=)"
            )
        if transport is not None and not isinstance(transport, LocalTransport) and kind == "local":
            raise ValueError(
                "state_dict transport kind='local': a checkpoint of an embedded run cannot "
                "resume against a server"
            )
        if kind == "local":
            from autolr.controller import Controller

            try:
                Controller.from_state_dict(dict(value["controller"]), history=value.get("history"))
            except Exception as exc:
                raise ValueError(f"state_dict transport.controller: {exc}") from None
        if kind == "http" and not (
            isinstance(value.get("job_id"), str)
            and isinstance(value.get("token"), str | type(None))
        ):
            raise ValueError("state_dict transport: job_id and token must be strings")
        return dict(value)

    def _check_link_state(
        self, state: Mapping[str, Any], fmt: int, out: Mapping[str, Any]
    ) -> dict[str, Any]:
        inst: Instruction = out["instruction"]
        if fmt == 1 or state.get("link") is None:
            if self._link is None or self._link.mode == EMBEDDED:
                return {"mode": EMBEDDED}
            # A checkpoint of an older autolr: the service holds the run's record; this process
            # never saw it, so it cannot decide alone.
            return {
                "mode": "online",
                "journal": [None] * inst.segment,
                "answers": [*(_placeholder(i) for i in range(inst.segment)), inst],
                "synced": inst.segment,
                "created": out["transport"] is not None,
                "recorded": {},
            }
        parsed = Link.parse_state(state["link"])
        if parsed["mode"] != EMBEDDED:
            answers = parsed["answers"]
            if answers[-1] != inst and out["plan"] is None:
                raise ValueError(
                    "state_dict link: the run's record does not end with the segment being run"
                )
        return parsed

    def sync(self, timeout: float | None = None) -> bool:
        """Send the service the reports it missed while it was away; True once it has them all.

        Call it at the end of training when `service_state` is ``"local"`` and the service may
        be back: the run's record then reaches the service. Waits at most ``timeout`` seconds
        (default: ``step_timeout``). Always True in embedded mode and on ranks other than 0.
        """
        if self._link is None:
            return True
        try:
            return self._link.sync(timeout)
        except Exception:  # never raises into the training script
            log.exception("autolr: sync failed")
            return False

    # ----------------------------------------------------------------- lifecycle
    def close(self) -> None:
        """Release the snapshot (memory or file) and the transport. Never raises."""
        if self._mode == _CLOSED:
            return
        if self._link is not None and self._link.mode == "local":
            self.sync()  # one bounded attempt to leave the service the whole record
        self._mode_at_close, self._mode = self._mode, _CLOSED
        try:
            self._snapshot.close()
            self._best.close()
            self._branch_snapshot.close()
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


def _make_transport(
    server: str | None,
    transport: Transport | None,
    *,
    strict: bool,
    admin_key: str | None = None,
    name: str | None = None,
) -> Transport:
    if transport is not None:
        return transport
    if server is None:
        return LocalTransport()
    if not isinstance(server, str):
        raise TypeError(f"server must be a URL string, got {type(server).__name__}")
    from autolr.client._http import HttpTransport  # only loaded for a remote controller

    key = admin_key if admin_key is not None else os.environ.get("AUTOLR_ADMIN_KEY") or None
    http: Transport = HttpTransport(server, strict=strict, admin_key=key, name=name)
    return http


def _reattach(transport: Transport, state: dict[str, Any]) -> None:
    """Point ``transport`` at the saved job, without waiting for a service."""
    attach = getattr(transport, "attach", None)
    if attach is not None:
        attach(state)
        return
    try:
        transport.load_state_dict(state)
    except ClientError as exc:  # a service that is down: the link syncs later
        log.warning("autolr: could not reattach to the job now (%s); syncing later", exc)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _list(value: Any, where: str) -> list[Any]:
    if not isinstance(value, list | tuple):
        raise ValueError(f"state_dict {where} must be a list, got {type(value).__name__}")
    return list(value)


def _floats(value: Any, where: str) -> list[float]:
    if isinstance(value, torch.Tensor):
        value = value.reshape(-1).tolist()
    items = _list(value, where)
    if not all(_number(v) for v in items):
        raise ValueError(f"state_dict {where} must hold numbers only")
    return [float(v) for v in items]


def _instruction(value: Any, where: str) -> Instruction:
    try:
        inst = Instruction.model_validate(value)
    except Exception as exc:
        raise ValueError(f"state_dict {where} is not a valid instruction: {exc}") from None
    if not (math.isfinite(inst.lr) and math.isfinite(inst.lr_end)):
        raise ValueError(
            f"state_dict {where} has lr={inst.lr!r}, lr_end={inst.lr_end!r}: LRs must be finite"
        )
    return inst


def _segment(value: Any, index: int) -> Segment:
    try:
        seg = Segment(**value)
    except TypeError as exc:
        raise ValueError(f"state_dict schedule[{index}] is not a segment: {exc}") from None
    ok = (
        _is_int(seg.segment)
        and seg.kind in ("warmup", "probe", "train", "anneal", "branch")
        and _number(seg.lr)
        and _number(seg.lr_end)
        and math.isfinite(seg.lr)
        and math.isfinite(seg.lr_end)
        and _is_int(seg.steps)
        and seg.steps >= 0
        and _is_int(seg.extra_steps)
        and seg.extra_steps >= 0
    )
    if not ok:
        raise ValueError(f"state_dict schedule[{index}]={value!r} is malformed")
    return seg


def _placeholder(segment: int) -> Instruction:
    """Stands for an instruction of an older checkpoint's record that this process never saw."""
    return Instruction(segment=segment, kind="train", lr=1.0, lr_end=1.0, steps=0)


def _lr_writers(optimizer: torch.optim.Optimizer) -> str:
    """Names of the LR schedulers driving ``optimizer`` (looked up once, when one wrote)."""
    names = sorted(
        {
            type(ref).__name__
            for ref in gc.get_referrers(optimizer)
            if isinstance(ref, torch.optim.lr_scheduler.LRScheduler)
            and getattr(ref, "optimizer", None) is optimizer
        }
    )
    if not names:
        return "something other than AutoLR (no LR scheduler of this optimizer was found)"
    return "the LR scheduler " + " and ".join(names)


def _fmt(value: float | None) -> str:
    return "diverged" if value is None else f"{value:.4g}"
