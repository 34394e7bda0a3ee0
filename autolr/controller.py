"""The AutoLRS controller: a pure state machine ``(state, report) -> (state, instruction)``.

No I/O, no clock, no global randomness: a job's decisions depend only on its config (seed
included) and the reports it receives, so the server can persist `Controller.state_dict()` after
every report and any replica can continue the job, and the client can embed the same object.

A stage is: snapshot, k probes of τ' steps (restore before every probe but the first), then a
train segment of τ steps at the chosen LR (restore first). τ doubles up to τ_max. When a step
budget is set it is never exceeded, and the last stage absorbs whatever is left so the run ends
on a train segment, never on a probe.
"""

from __future__ import annotations

import logging
import math
import sys
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from autolr.budget import with_total_steps
from autolr.config import TunerConfig
from autolr.errors import ConfigError, Conflict, JobFinished, ReportError
from autolr.forecast import ExponentialForecaster, Forecaster
from autolr.plan import StagePlan, stage_plan
from autolr.policy import (
    THRESHOLDS,
    Decision,
    ProbeView,
    Rule,
    choose_train_lr,
    cooldown_drop,
    hold,
    rollback_lr,
    search_candidates,
    spiked,
    step_noise,
    tail_mean,
    tail_steps,
    train_diverged,
    window_noise,
)
from autolr.protocol import Branch, Instruction, Report
from autolr.search import SEARCH_FAILURES, accepts_noise
from autolr.space import LogSpace

if TYPE_CHECKING:
    from autolr.search import Searcher

log = logging.getLogger(__name__)

#: 2: the history moved out of the state (`History`); format 1 still loads.
STATE_FORMAT = 2
#: Points kept per segment in the segment log (bucket means), enough to draw loss curves.
LOG_POINTS_PER_SEGMENT = 64
#: Every threshold of the health checks and the stage policy (documented in autolr.policy).
T = THRESHOLDS
#: A loss beyond this magnitude cannot be differenced or averaged without overflowing: a probe
#: that reports one failed, whatever the forecaster makes of it (1e308 is finite).
LOSS_LIMIT = 1e300


class ProbeOutcome(Protocol):
    """What a probe's objective and its error are computed from: a `ProbeRecord`, or the HTTP
    API's public view of one (``autolr.server.views``), so both use these formulas."""

    @property
    def ok(self) -> bool: ...
    @property
    def forecast(self) -> float | None: ...
    @property
    def drop(self) -> float | None: ...
    @property
    def noise(self) -> float | None: ...
    @property
    def steps(self) -> int: ...
    @property
    def drop_error(self) -> float: ...


def probe_objective(probe: ProbeOutcome) -> float | None:
    """What the search minimizes (see `autolr.policy`): the forecast less the cooldown's drop
    (``forecast − drop``), in the units of the series judged (train or validation loss); the
    forecast alone under the "horizon" objective; None for a failed probe."""
    if not probe.ok or probe.forecast is None:
        return None
    return probe.forecast - (probe.drop or 0.0)


class ProbeRecord(BaseModel):
    """One probe's outcome. ``forecast`` is None when the forecaster rejected the series."""

    model_config = ConfigDict(extra="forbid")

    probe: int
    lr: float
    x_unit: float
    steps: int
    source: Literal["train", "val"]
    ok: bool
    reason: str = ""
    forecast: float | None = None
    first_loss: float | None = None
    last_loss: float | None = None
    noise: float | None = None  # per-step noise of the fitted series (robust SD, trend removed)
    drop: float | None = None  # loss removed by the cooldown tail (objective "final")
    drop_error: float = 0.0  # standard error of ``drop``
    level: float | None = None  # the fitted loss at the end of the constant part ("final")

    @property
    def objective(self) -> float | None:
        """What the search minimizes: `probe_objective`."""
        return probe_objective(self)


class StageRecord(BaseModel):
    """One stage: its length, its probes and the LR it chose."""

    model_config = ConfigDict(extra="forbid")

    stage: int
    tau: int
    probe_steps: int
    start_step: int
    source: Literal["train", "val"]
    baseline: float | None = None
    baseline_spread: float = 0.0
    baseline_noise: float = 0.0  # per-step loss noise of the segment before the stage
    baseline_error: float = 0.0  # standard error of ``baseline`` (a mean of noisy losses)
    probes: list[ProbeRecord] = Field(default_factory=list)
    chosen_lr: float | None = None
    chosen_probe: int | None = None
    train_steps: int | None = None
    # A train segment longer than τ runs in chunks of at most τ steps; each later chunk
    # snapshots at its start, so a late divergence rolls back one chunk, not the whole stage.
    train_left: int = 0  # train steps of this stage not yet issued
    chunk_baseline: float | None = None  # loss where the running chunk started (chunks 2+)
    chunk_noise: float = 0.0  # per-step noise of the chunk before the running one
    chunk_error: float = 0.0  # standard error of ``chunk_baseline`` (wobble included)
    best_saved: int | None = None
    bounds: tuple[float, float] = (0.0, 1.0)
    stopped_early: bool = False
    reused_probe: int | None = None
    decisions: list[Decision] = Field(default_factory=list)  # the policy's; last one trains
    pending: list[float] | None = None  # a "final" probe's constant part, awaiting its tail
    pending_val: list[tuple[int, float]] = Field(default_factory=list)

    @property
    def starts_cold(self) -> bool:
        """No segment ran before the stage (stage 0 without warmup): its ``baseline`` is the
        mean of its probes' first losses, each measured at the snapshot's weights."""
        return self.start_step == 0

    @property
    def decision(self) -> Decision | None:
        """The decision the stage trains with (after any rollback), None before one."""
        return self.decisions[-1] if self.decisions else None

    search_fallbacks: list[str] = Field(default_factory=list)
    diverged_lrs: list[float] = Field(default_factory=list)


class SegmentRecord(BaseModel):
    """A finished segment: the instruction and a compact summary of what was reported."""

    model_config = ConfigDict(extra="forbid")

    instruction: Instruction
    start_step: int
    steps_run: int
    extra_steps: int = 0
    loss_mean: float | None = None
    loss_last: float | None = None
    loss_noise: float | None = None  # per-step noise (robust SD, trend removed)
    # standard error of ``loss_last`` (the mean of the last 10%), slow wobble included
    loss_last_error: float | None = None
    losses: list[float | None] = Field(default_factory=list)
    val_losses: list[tuple[int, float | None]] = Field(default_factory=list)


class History(BaseModel):
    """A job's finished records, oldest first: what the dashboard, export and replay read.

    Decisions never read it (they read `ControllerState`), so it lives outside the state: the
    server appends each report's new records to their own rows, embedded mode keeps them in
    memory (`Controller.history`). Stages here are finished; the running one is in the state.
    """

    model_config = ConfigDict(extra="forbid")

    stages: list[StageRecord] = Field(default_factory=list)
    segments: list[SegmentRecord] = Field(default_factory=list)
    # Cooldown branches (kind "branch"), apart from ``segments``: decisions read the segment
    # before a stage, and a branch's cooled loss must not become a stage's start.
    branches: list[SegmentRecord] = Field(default_factory=list)


class ControllerState(BaseModel):
    """What the controller's decisions read; JSON-serializable and exact on round trip.

    Its size is bounded (it does not grow with the job's length): the latest stage with its
    probes, the latest segment, and running totals stand in for the history (`History`), which
    decisions never read. Format 1 held the whole history; `Controller.from_state_dict` still
    reads it (`upgrade_state`).
    """

    model_config = ConfigDict(extra="forbid")

    format: int = STATE_FORMAT
    config: TunerConfig
    steps_used: int = 0
    current: Instruction
    #: The latest stage (running, or the last one when the job ends), probes included.
    stage: StageRecord | None = None
    #: Stages begun so far (the latest is ``stage_count - 1``).
    stage_count: int = 0
    #: The LR the last stage before the latest one chose (warm start, hold-previous).
    previous_lr: float | None = None
    #: The latest finished segment: a stage or a train chunk starts from its loss summary.
    last_segment: SegmentRecord | None = None
    #: Steps run by probe segments so far (``probe_budget``).
    probe_steps_used: int = 0
    #: Steps run by cooldown branches so far, and before the latest stage began: an open-ended
    #: job's forecast horizon counts the main run's steps only.
    branch_steps: int = 0
    stage_branch_steps: int = 0


class _StateV1(BaseModel):
    """Format 1 (before the history moved out of the state), read only to upgrade it."""

    model_config = ConfigDict(extra="forbid")

    format: Literal[1] = 1
    config: TunerConfig
    steps_used: int = 0
    current: Instruction
    stages: list[StageRecord] = Field(default_factory=list)
    segments: list[SegmentRecord] = Field(default_factory=list)
    branches: list[SegmentRecord] = Field(default_factory=list)


def upgrade_state(state: dict[str, Any]) -> tuple[dict[str, Any], History]:
    """A format-1 state as a format-2 state and the history it held (other formats as given).

    The totals are the ones format 1's lists summed on every decision, so the job's future
    decisions are the same.

    Raises:
        pydantic.ValidationError: ``state`` says format 1 but is not a valid one.
    """
    if state.get("format") != 1:
        return state, History()
    old = _StateV1.model_validate(state)
    latest = old.stages[-1] if old.stages else None
    earlier = [s.chosen_lr for s in old.stages[:-1] if s.chosen_lr is not None]
    new = ControllerState(
        config=old.config,
        steps_used=old.steps_used,
        current=old.current,
        stage=latest,
        stage_count=len(old.stages),
        previous_lr=earlier[-1] if earlier else None,
        last_segment=old.segments[-1] if old.segments else None,
        probe_steps_used=sum(s.steps_run for s in old.segments if s.instruction.kind == "probe"),
        branch_steps=sum(b.steps_run for b in old.branches),
        stage_branch_steps=sum(
            b.steps_run
            for b in old.branches
            if latest is not None and b.start_step < latest.start_step
        ),
    )
    history = History(stages=old.stages[:-1], segments=old.segments, branches=old.branches)
    return new.model_dump(mode="json"), history


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None


def _bucket_means(values: Sequence[float], points: int) -> list[float | None]:
    """Downsample to at most ``points`` bucket means (None where a bucket is non-finite)."""
    n = len(values)
    if n <= points:
        return [_finite(v) for v in values]
    out: list[float | None] = []
    for i in range(points):
        chunk = values[i * n // points : (i + 1) * n // points]
        out.append(_finite(sum(chunk) / len(chunk)) if chunk else None)
    return out


def _normalized(values: list[float]) -> tuple[list[float], float]:
    """Outcomes mapped to [0, 1] (min → 0, max → 1), and the scale to map differences back.

    The GP standardizes its outcomes anyway; doing it here first means the searcher sees the
    same numbers for any loss offset and scale, so decisions do not depend on the loss's units.
    """
    if not values:
        return [], 1.0
    lo, hi = min(values), max(values)
    scale = hi - lo if hi > lo else 1.0
    if math.isfinite(scale):
        return [(v - lo) / scale for v in values], scale
    # a range beyond the float limit (losses near 1e308): divide by the magnitude first
    mag = max(abs(lo), abs(hi))
    unit = hi / mag - lo / mag
    return [(v / mag - lo / mag) / unit for v in values], sys.float_info.max


def _spread(values: Sequence[float | None]) -> float:
    """Range of the finite values (0 when there are none)."""
    finite = [v for v in values if v is not None and math.isfinite(v)]
    return max(finite) - min(finite) if finite else 0.0


def _progress_scale(baseline: float | None, forecasts: Sequence[float]) -> float:
    """The stage's forecast progress: best forecast below the stage's starting loss.

    At least the spread of the forecasts (a stage whose start is unknown, or whose every probe
    forecasts a rise, still has a scale). Tolerances are shares of this, so they mean the same
    for any loss offset and scale.
    """
    best = min(forecasts)
    start = baseline if baseline is not None else max(forecasts)
    return max(abs(start - best), max(forecasts) - best)


def _tail_error(losses: Sequence[float]) -> float:
    """Standard error of ``tail_mean(losses)`` (the mean of the last 10%): the per-step noise
    over √window, or the measured wobble of window means when larger (losses are correlated)."""
    finite = [v for v in losses if math.isfinite(v)]
    window = max(1, int(0.1 * len(finite)))
    return max(step_noise(finite) / math.sqrt(window), window_noise(finite, window))


def _baseline_error(segment: SegmentRecord) -> float:
    """Standard error of a segment's ``loss_last`` (states before the field: i.i.d. noise)."""
    if segment.loss_last_error is not None:
        return segment.loss_last_error
    return (segment.loss_noise or 0.0) / math.sqrt(max(1, int(0.1 * segment.steps_run)))


def _add_start_sample(stage: StageRecord, first_loss: float, noise: float) -> None:
    """Fold one probe's first loss into the stage's start (a running mean and its error).

    Every probe starts from the same snapshot and reports its first loss before its first
    update, so the first losses are independent samples of the start; one alone is as noisy
    as a single step (on a noise-dominated task every probe "rose" above a lucky one).
    """
    n = sum(1 for p in stage.probes if p.first_loss is not None)  # samples so far
    mean = stage.baseline if stage.baseline is not None and n > 0 else 0.0
    stage.baseline = (mean * n + first_loss) / (n + 1)
    noises = sorted(
        [p.noise for p in stage.probes if p.first_loss is not None and p.noise] + [noise]
    )
    stage.baseline_error = noises[len(noises) // 2] / math.sqrt(n + 1)


def forecast_error(probe: ProbeOutcome) -> float:
    """A probe forecast's standard error from its loss noise: the SE of its last quarter.

    Public because the server's dashboard draws the GP the search fitted, variances included.
    """
    if not probe.noise or probe.steps <= 0:
        return 0.0
    return probe.noise / math.sqrt(max(1.0, probe.steps / 4))


def objective_error(probe: ProbeOutcome) -> float:
    """Standard error of a probe's objective: its forecast's and its cooldown drop's."""
    return math.hypot(forecast_error(probe), probe.drop_error)


def _blew_up(probe: ProbeRecord) -> bool:
    """A probe that diverged (non-finite or exploding loss), not one rejected on noise.

    The forecaster also rejects a flat, noisy series as "rising loss"; that says nothing about
    stability, so it must not put an LR ceiling on the stage.
    """
    return not probe.ok and ("non-finite" in probe.reason or "exploding" in probe.reason)


def _noise_kwargs(
    searcher: Searcher, method: Callable[..., Any], noise: list[float] | None
) -> dict[str, Any]:
    """``noise=`` for a searcher that declares it takes it (`autolr.search.SearcherBase`)."""
    return {"noise": noise} if noise is not None and accepts_noise(searcher, method) else {}


def _derive_seed(seed: int, stage: int, probe: int) -> int:
    return (seed * 1_000_003 + stage * 10_007 + probe) % (2**63)


class Controller:
    """Runs one AutoLRS job.

    Example:
        >>> from autolr import Controller, TunerConfig
        >>> from autolr.protocol import Report
        >>> ctl = Controller(TunerConfig(total_steps=3000, seed=1))
        >>> first = ctl.start()
        >>> (first.kind, first.snapshot, first.steps)
        ('probe', True, 20)
        >>> nxt = ctl.report(Report(segment=0, train_losses=[2.0 - 0.01 * i for i in range(20)]))
        >>> (nxt.segment, nxt.kind, nxt.restore)
        (1, 'probe', True)
    """

    def __init__(
        self,
        config: TunerConfig,
        *,
        forecaster: Forecaster | None = None,
        searcher: Searcher | None = None,
        _state: ControllerState | None = None,
        _history: History | None = None,
    ) -> None:
        self.config = config
        self.plan: StagePlan = stage_plan(config)
        self.space = LogSpace(config.min_lr, config.max_lr)
        self.forecaster: Forecaster = forecaster or ExponentialForecaster()
        self._searcher = searcher
        self._state = _state
        # The finished records this object has seen (given, then made); never read by decisions.
        self._history = _history if _history is not None else History()
        # Where the records not yet handed out by `take_records` begin (stages, segments,
        # branches): what the records given at construction are not.
        self._taken = self._history_lengths()

    # ----------------------------------------------------------------- public surface
    def start(self) -> Instruction:
        """The first instruction. Calling it again returns the instruction still awaited."""
        if self._state is None:
            placeholder = Instruction(
                segment=0, kind="train", lr=self.config.min_lr, lr_end=self.config.min_lr, steps=0
            )
            self._state = ControllerState(config=self.config, current=placeholder)
            self._state.current = self._first_instruction()
        return self._state.current

    def report(self, report: Report) -> Instruction:
        """Take the report for the awaited segment and return the next instruction.

        Raises:
            Conflict: the report names a segment other than the awaited one (or the one before,
                which is answered idempotently with the current instruction).
            JobFinished: the job is finished and the report is for a segment never issued.
            ReportError: the report does not fit its instruction (kind, too many losses).
        """
        state = self._require_started()
        current = state.current
        if report.segment == current.segment - 1:
            return current  # duplicate of the last report: idempotent, changes nothing
        if current.finished and report.segment >= current.segment:
            raise JobFinished(
                f"the job finished after segment {current.segment - 1}; "
                f"there is no segment {report.segment} to report"
            )
        if report.segment != current.segment:
            raise Conflict(expected=current.segment, got=report.segment)
        self._check(report, current)
        budget = self._new_budget(report)
        self._record_segment(report, current)
        if budget is not None:
            self._set_config(budget)
        state.current = self._advance(report, current)
        return state.current

    def _new_budget(self, report: Report) -> TunerConfig | None:
        """The config with the report's new ``total_steps`` (None: the report sets none)."""
        if report.total_steps is None:
            return None
        used = self.steps_used + len(report.train_losses) + report.extra_steps
        used += sum(b.steps for b in report.branches)
        try:
            return with_total_steps(self.config, report.total_steps, steps_used=used)
        except ConfigError as exc:
            raise ReportError(f"report for segment {report.segment}: {exc}") from None

    def _set_config(self, config: TunerConfig) -> None:
        """Run on with ``config`` (a new budget): the plan is the one it would have had."""
        self.config = config
        self.plan = stage_plan(config)
        self._require_started().config = config

    @property
    def finished(self) -> bool:
        """True once the step budget is spent."""
        return self._state is not None and self._state.current.finished

    @property
    def current(self) -> Instruction:
        """The instruction whose report is awaited."""
        return self._require_started().current

    @property
    def steps_used(self) -> int:
        """Steps reported so far (probes, training and extra steps)."""
        return self._state.steps_used if self._state else 0

    @property
    def stages(self) -> list[StageRecord]:
        """Records of the stages this object knows (copies): the finished ones of its
        `history`, then the latest (running) one."""
        latest = self._state.stage if self._state is not None else None
        stages = self._history.stages + ([latest] if latest is not None else [])
        return [s.model_copy(deep=True) for s in stages]

    @property
    def segments(self) -> list[SegmentRecord]:
        """The segment log this object knows (its `history`): finished segments with their
        loss summaries (copies)."""
        return [s.model_copy(deep=True) for s in self._history.segments]

    @property
    def branches(self) -> list[SegmentRecord]:
        """The cooldown branches this object knows (its `history`), in order (copies)."""
        return [s.model_copy(deep=True) for s in self._history.branches]

    @property
    def schedule(self) -> list[Instruction]:
        """The segments run so far (kind, lr, lr_end, steps), in order (from `history`)."""
        return [s.instruction for s in self._history.segments]

    @property
    def history(self) -> History:
        """The finished records this object knows (a copy): all of them for a controller that
        ran the job from its start, or was given them (``from_state_dict(history=...)``); a
        controller rebuilt from the state alone knows only those made since."""
        return self._history.model_copy(deep=True)

    def take_records(self) -> History:
        """The finished records made since the last call (or construction), handed out once.

        The server appends them to the job's own rows after each report, so a report writes a
        bounded amount whatever the job's length.
        """
        stages, segments, branches = self._taken
        made = History(
            stages=self._history.stages[stages:],
            segments=self._history.segments[segments:],
            branches=self._history.branches[branches:],
        )
        self._taken = self._history_lengths()
        return made.model_copy(deep=True)

    def record(self) -> dict[str, Any]:
        """The job's whole record as JSON data: the state's ``config``, ``current`` and
        ``steps_used`` with ``stages``, ``segments`` and ``branches`` from `history` (the shape
        of ``GET /v1/jobs/{id}`` that `autolr.export` and the client's results read)."""
        state = self._require_started()
        return {
            "config": state.config.model_dump(mode="json"),
            "current": state.current.model_dump(mode="json"),
            "steps_used": state.steps_used,
            "stages": [s.model_dump(mode="json") for s in self.stages],
            "segments": [s.model_dump(mode="json") for s in self._history.segments],
            "branches": [s.model_dump(mode="json") for s in self._history.branches],
        }

    def state_dict(self) -> dict[str, Any]:
        """A JSON-serializable snapshot of the controller state: what decisions read, of
        bounded size (the history is not in it: `history`, `take_records`)."""
        state = self._require_started()
        return state.model_dump(mode="json")

    @classmethod
    def from_state_dict(
        cls,
        state: dict[str, Any],
        *,
        forecaster: Forecaster | None = None,
        searcher: Searcher | None = None,
        history: History | dict[str, Any] | None = None,
    ) -> Controller:
        """Rebuild a controller whose future decisions equal the original's.

        ``history``: the job's finished records, for `stages`, `segments` and `record` (not for
        decisions). A format-1 state (which held them) brings its own, listed before these.
        """
        try:
            upgraded, held = upgrade_state(state)
            parsed = ControllerState.model_validate(upgraded)
            given = History.model_validate(history) if isinstance(history, dict) else history
        except ValidationError as exc:
            raise ReportError(f"not a valid controller state: {exc}") from None
        if parsed.format != STATE_FORMAT:
            raise ReportError(
                f"controller state format {parsed.format} is not supported "
                f"(this autolr reads formats 1 and {STATE_FORMAT})"
            )
        if given is not None:
            held = History(
                stages=held.stages + given.stages,
                segments=held.segments + given.segments,
                branches=held.branches + given.branches,
            )
        return cls(
            parsed.config, forecaster=forecaster, searcher=searcher, _state=parsed, _history=held
        )

    # ----------------------------------------------------------------- internals
    def _require_started(self) -> ControllerState:
        if self._state is None:
            raise RuntimeError("call Controller.start() before report() or state_dict()")
        return self._state

    def _history_lengths(self) -> tuple[int, int, int]:
        h = self._history
        return len(h.stages), len(h.segments), len(h.branches)

    def _latest_stage(self) -> StageRecord:
        """The latest stage (callers know one has begun)."""
        stage = self._require_started().stage
        if stage is None:  # pragma: no cover - every caller follows a stage's segment
            raise RuntimeError("no stage has begun")
        return stage

    def _stage_of(self, current: Instruction) -> StageRecord | None:
        """The latest stage when ``current`` belongs to it (None: warmup, or a train segment
        outside a stage)."""
        stage = self._require_started().stage
        return stage if stage is not None and current.stage == stage.stage else None

    @property
    def searcher(self) -> Searcher:
        if self._searcher is None:
            from autolr.search import GPSearcher

            self._searcher = GPSearcher(kappa=self.config.kappa, n_init=self.config.initial_probes)
        return self._searcher

    def _remaining(self) -> int | None:
        total = self.config.total_steps
        return None if total is None else max(0, total - self._require_started().steps_used)

    def _stage_room(self) -> int | None:
        """Steps left for stages: the budget minus what the final anneal keeps for itself."""
        remaining = self._remaining()
        return None if remaining is None else max(0, remaining - self.config.anneal_steps)

    def _check(self, report: Report, current: Instruction) -> None:
        if report.kind is not None and report.kind != current.kind:
            raise ReportError(
                f"report for segment {report.segment} says kind={report.kind!r}, but segment "
                f"{current.segment} is a {current.kind!r} segment"
            )
        n = len(report.train_losses)
        if n > current.steps:
            raise ReportError(
                f"report for segment {report.segment} has {n} train_losses, but the segment has "
                f"only steps={current.steps}; send one loss per step run"
            )
        for i, branch in enumerate(report.branches):
            if branch.at > n or len(branch.train_losses) > branch.steps:
                raise ReportError(
                    f"report for segment {report.segment}: branches[{i}] starts at step "
                    f"at={branch.at} with {len(branch.train_losses)} train_losses for "
                    f"steps={branch.steps}; a branch starts within the {n} steps reported and "
                    "has at most one loss per step"
                )
        if n == 0 and current.steps > 0 and report.total_steps is None:
            raise ReportError(
                f"report for segment {report.segment} has no train_losses; send one loss per "
                f"step run (the segment asked for {current.steps})"
            )

    def _record_segment(self, report: Report, current: Instruction) -> None:
        state = self._require_started()
        losses = report.train_losses
        finite = [v for v in losses if math.isfinite(v)]
        val = sorted((int(s), v) for s, v in report.val_losses if 0 < s <= current.steps)
        record = SegmentRecord(
            instruction=current,
            start_step=state.steps_used,
            steps_run=len(losses),
            extra_steps=report.extra_steps,
            loss_mean=_finite(sum(finite) / len(finite)) if finite else None,
            loss_last=tail_mean(losses),
            loss_noise=step_noise(losses),
            loss_last_error=_tail_error(losses),
            losses=_bucket_means(losses, LOG_POINTS_PER_SEGMENT),
            val_losses=[(s, _finite(v)) for s, v in val],
        )
        self._history.segments.append(record)
        state.last_segment = record
        if current.kind == "probe":
            state.probe_steps_used += record.steps_run
        earlier = 0  # steps of the segment's branches before this one
        for branch in report.branches:
            self._record_branch(branch, current, state.steps_used + branch.at + earlier)
            earlier += branch.steps
        state.steps_used += len(losses) + report.extra_steps + earlier

    def _record_branch(self, branch: Branch, current: Instruction, start: int) -> None:
        """Log a cooldown branch that began at step ``start`` (branches count as used)."""
        state = self._require_started()
        losses = branch.train_losses
        inst = Instruction(
            segment=current.segment,
            kind="branch",
            lr=branch.lr,
            lr_end=branch.lr_end,
            steps=branch.steps,
            stage=current.stage,
        )
        self._history.branches.append(
            SegmentRecord(
                instruction=inst,
                start_step=start,
                steps_run=branch.steps,
                loss_mean=tail_mean(losses, 1.0) if losses else None,
                loss_last=tail_mean(losses),
                losses=_bucket_means(losses, LOG_POINTS_PER_SEGMENT),
            )
        )
        state.branch_steps += branch.steps

    def _advance(self, report: Report, current: Instruction) -> Instruction:
        state = self._require_started()
        nxt = current.segment + 1
        if report.total_steps is not None:
            ending = self._budget_ending(nxt, report, current)
            if ending is not None:
                return ending
        if current.kind == "probe":
            stage = self._latest_stage()
            if self.config.objective == "final" and stage.pending is None:
                tail = self._tail_instruction(nxt, stage, current, report)
                if tail is not None:
                    return tail
            self._record_probe(stage, report, current)
            if (
                len(stage.probes) < self.config.probes_per_stage
                and self._fits_probe(stage)
                and self._budget_allows_probe(stage)
            ):
                x_next, gain = self._next_point(stage)
                if not self._search_is_done(stage, gain):
                    return self._probe_instruction(nxt, stage, x_next)
            return self._train_instruction(nxt, stage)
        if current.kind == "anneal":
            return self._finish(nxt, current.lr_end)
        if current.kind == "train" and self._diverged(report, current):
            retry = self._rollback(nxt, current)
            if retry is not None:
                return retry
        if current.kind == "train":
            chunk = self._next_chunk(nxt, current)
            if chunk is not None:
                return chunk
        # warmup or train finished: start the next stage (or finish)
        return self._begin_stage(nxt, state.stage_count, last_lr=current.lr_end)

    def _budget_ending(
        self, segment: int, report: Report, current: Instruction
    ) -> Instruction | None:
        """After a new budget: the final decay, when it must start now (None: plan as usual).

        The client stops the running segment where the new budget's decay must start
        (`autolr.budget.segment_stop`), so the steps left are the decay's. A train segment
        needs nothing special (its usual path, rollback included, anneals when no room is
        left). A running anneal decays on to the same end over the new remaining steps; a
        probe's stage decides from its whole probes (or holds the previous stage's LR) and
        the decay starts from the stage snapshot, never from a probe's state.
        """
        ran = len(report.train_losses)
        if current.kind == "anneal":
            remaining = self._remaining() or 0
            if remaining <= 0:
                return self._finish(segment, current.lr_at(ran))
            return Instruction(
                segment=segment,
                kind="anneal",
                lr=current.lr_at(ran),
                lr_end=current.lr_end,
                steps=remaining,
                eval_every=remaining if self.config.loss_source != "train" else None,
                stage=current.stage,
            )
        if (self._stage_room() or 0) > 0 or current.kind == "train":
            return None
        if current.kind == "warmup":
            return self._anneal(segment, current.lr_at(ran))
        stage = self._latest_stage()
        whole = ran == current.steps and (
            self.config.objective == "horizon" or stage.pending is not None
        )
        if whole:
            self._record_probe(stage, report, current)
        stage.pending, stage.pending_val = None, []
        previous = self._previous_lr()
        if previous is None or any(p.objective is not None for p in stage.probes):
            decision = self._decide(stage)
        else:
            decision = hold(previous, self.config.objective, "a new budget starts the decay")
        stage.decisions.append(decision)
        stage.chosen_lr, stage.chosen_probe, stage.reused_probe = decision.lr, decision.probe, None
        stage.train_steps, stage.train_left = 0, 0
        log.info("stage %d: %s", stage.stage, decision.summary())
        decay = self._anneal(segment, decision.lr)
        return decay.model_copy(update={"restore": True, "decision": decision.summary()})

    def _next_chunk(self, segment: int, current: Instruction) -> Instruction | None:
        """The stage's next train chunk (None when its train steps are done).

        It snapshots at its start (the stage snapshot moves forward: what came before was
        healthy) and is checked against where it starts, with the noise of the chunk before.
        """
        state = self._require_started()
        stage = self._stage_of(current)
        if stage is None:
            return None
        if stage.train_left <= 0:
            return None
        total = self._fit_train_steps(stage, stage.train_left)
        if total <= 0:
            stage.train_left = 0
            return None
        previous = state.last_segment
        assert previous is not None  # the train segment just recorded
        stage.chunk_baseline = previous.loss_last
        stage.chunk_noise = previous.loss_noise or 0.0
        stage.chunk_error = _baseline_error(previous)
        lr = stage.chosen_lr if stage.chosen_lr is not None else current.lr_end
        return self._train_chunk(segment, stage, lr, total, snapshot=True)

    def _train_chunk(
        self,
        segment: int,
        stage: StageRecord,
        lr: float,
        total: int,
        *,
        restore: bool = False,
        snapshot: bool = False,
        restore_best: bool = False,
    ) -> Instruction:
        """The next train chunk of ``stage`` at ``lr``: at most τ of the ``total`` steps left."""
        steps = min(total, stage.tau)
        stage.train_left = total - steps
        return Instruction(
            segment=segment,
            kind="train",
            lr=lr,
            lr_end=lr,
            steps=steps,
            restore=restore,
            snapshot=snapshot,
            restore_best=restore_best,
            eval_every=steps if self.config.loss_source != "train" else None,
            stage=stage.stage,
        )

    def _fits_probe(self, stage: StageRecord) -> bool:
        """A further probe must leave room for training; only extra_steps can make it not."""
        room = self._stage_room()
        return room is None or room >= stage.probe_steps + stage.tau

    def _fit_train_steps(self, stage: StageRecord, steps: int) -> int:
        """``steps`` cut to the budget; the last stage absorbs what no further stage could use."""
        room = self._stage_room()
        if room is None:
            return steps
        steps = min(steps, room)
        return room if room - steps < self.plan.stage_steps(stage.stage + 1) else steps

    def _probe_steps_used(self) -> int:
        return self._require_started().probe_steps_used

    def _stages_fitting(self, first: int, room: int) -> int:
        """How many stages from ``first`` on the plan fits in ``room`` steps."""
        n = 0
        while room >= self.plan.stage_steps(first + n) and n < 64:
            room -= self.plan.stage_steps(first + n)
            n += 1
        return n

    def _budget_allows_probe(self, stage: StageRecord) -> bool:
        """``probe_budget``: may stage ``stage`` run one more probe of τ' steps?

        Every later stage that still fits the budget is reserved ``min_probes`` probes, so an
        early stage cannot starve the rest; stage 0 always gets ``min_probes`` (a cold search
        over the whole range needs them). Probe steps are counted as run, so the share of the
        budget spent probing stays within ``probe_budget`` (stage 0's minimum aside).
        """
        cfg = self.config
        if cfg.probe_budget is None or cfg.total_steps is None:
            return True
        minimum = min(cfg.min_probes, cfg.probes_per_stage)
        if stage.stage == 0 and len(stage.probes) < minimum:
            return True
        room = self._stage_room()
        later_room = max(0, (room or 0) - stage.probe_steps - stage.tau)
        later = self._stages_fitting(stage.stage + 1, later_room)
        reserve = sum(minimum * self.plan.probe_steps(stage.stage + 1 + i) for i in range(later))
        allowance = cfg.probe_budget * cfg.total_steps - self._probe_steps_used() - reserve
        return allowance >= stage.probe_steps

    def _diverged(self, report: Report, current: Instruction) -> bool:
        """Did this train segment blow up (non-finite loss, or far above the stage's start)?"""
        stage = self._stage_of(current)
        if stage is None:
            return False  # a train segment outside a stage (extra_steps): nothing to roll back to
        losses = report.train_losses
        if not all(math.isfinite(v) for v in losses):
            return True
        if stage.baseline is None or tail_mean(losses) is None:
            return False
        start, noise_before = stage.baseline, stage.baseline_noise
        start_error = stage.baseline_error
        chosen = stage.probes[stage.chosen_probe] if stage.chosen_probe is not None else None
        if stage.chunk_baseline is not None:  # a later chunk: measured from where it started
            start, noise_before, chosen = stage.chunk_baseline, stage.chunk_noise, None
            start_error = stage.chunk_error
        promise = None
        if chosen is not None and chosen.ok and chosen.last_loss is not None:
            # measured on the training loss, like the segment it is compared with: the chosen
            # probe's forecast may be of the validation loss, in other units (a noisy
            # regression's training loss is ~8, its validation loss ~0.01: a "promise" of 8
            # licensed any rise), and at a long horizon it is an extrapolation
            promise = (stage.baseline - chosen.last_loss, chosen.last_loss, chosen.steps)
        return train_diverged(
            losses,
            start=start,
            noise_before=noise_before,
            start_error=start_error,
            promise=promise,
        )

    def _rollback(self, segment: int, current: Instruction) -> Instruction | None:
        """Retrain a diverged stage from its snapshot with a safer LR (None: give up).

        Short probes can favour an LR that only diverges over the longer train segment (seen
        with SGD early in training). The stage's snapshot is still held, so the damage is
        undone; the LR comes from `autolr.policy.rollback_lr`. The diverged steps stay spent
        (the budget counts them).
        """
        stage = self._latest_stage()
        if len(stage.diverged_lrs) >= T.max_rollbacks:
            return None
        failed = current.lr
        healthy = [p.lr for p in stage.probes if p.ok and p.forecast is not None]
        lr = rollback_lr(failed, healthy, min_lr=self.config.min_lr)
        if lr is None:  # already at min_lr: nothing safer to retrain with
            return None
        stage.diverged_lrs.append(failed)
        log.warning(
            "stage %d diverged at lr=%.4g; rolling back to lr=%.4g", stage.stage, failed, lr
        )
        stage.decisions.append(
            Decision(
                rule=Rule.ROLLBACK,
                lr=lr,
                objective=self.config.objective,
                note=f"training at {failed:.3g} diverged",
            )
        )
        stage.chosen_lr, stage.chosen_probe, stage.reused_probe = lr, None, None
        total = self._fit_train_steps(stage, current.steps + stage.train_left)
        if total <= 0:
            return self._anneal(segment, lr).model_copy(update={"restore": True})
        stage.train_steps = total
        retry = self._train_chunk(segment, stage, lr, total, restore=True)
        return retry.model_copy(update={"decision": stage.decisions[-1].summary()})

    # -- instruction builders
    def _first_instruction(self) -> Instruction:
        cfg = self.config
        if cfg.warmup_steps > 0:
            return Instruction(
                segment=0,
                kind="warmup",
                lr=cfg.min_lr,
                lr_end=cfg.effective_warmup_lr,
                steps=cfg.warmup_steps,
                stage=-1,
            )
        return self._begin_stage(0, 0, last_lr=cfg.min_lr)

    def _finish(self, segment: int, lr: float) -> Instruction:
        return Instruction(
            segment=segment,
            kind="train",
            lr=lr,
            lr_end=lr,
            steps=0,
            finished=True,
            stage=self._require_started().stage_count - 1,
        )

    def _stage_source(self, stage: int) -> Literal["train", "val"]:
        """The loss a stage's probes are judged on; "val" falls back to the training loss for a
        probe reported without validation losses (a client without ``val_fn``)."""
        source = self.config.loss_source
        if source == "auto":
            return "val" if self.plan.tau(stage) >= self.plan.tau_max else "train"
        return "train" if source == "train" else "val"

    def _anneal(self, segment: int, lr: float) -> Instruction:
        """The budget-aware ending: the LR decays linearly to ~0 over the rest of the budget."""
        remaining = self._remaining() or 0
        if remaining <= 0:
            return self._finish(segment, lr)
        return Instruction(
            segment=segment,
            kind="anneal",
            lr=lr,
            lr_end=lr * T.anneal_end_ratio,
            steps=remaining,
            eval_every=remaining if self.config.loss_source != "train" else None,
            stage=self._require_started().stage_count - 1,
        )

    def _begin_stage(self, segment: int, index: int, *, last_lr: float) -> Instruction:
        state = self._require_started()
        room = self._stage_room()
        if room is not None and room <= 0:
            return self._anneal(segment, last_lr)
        if room is not None and room < self.plan.stage_steps(index):
            # Only steps trained outside the plan (extra_steps) lead here: no room for a search,
            # so spend the rest training at the LR in use.
            return Instruction(
                segment=segment,
                kind="train",
                lr=last_lr,
                lr_end=last_lr,
                steps=room,
                stage=max(0, index - 1),
            )
        previous = state.last_segment
        finished = state.stage
        if finished is not None:  # decisions read only its chosen LR from now on
            self._history.stages.append(finished)
            if finished.chosen_lr is not None:
                state.previous_lr = finished.chosen_lr
        state.stage_branch_steps = state.branch_steps
        state.stage_count += 1
        stage = StageRecord(
            stage=index,
            tau=self.plan.tau(index),
            probe_steps=self.plan.probe_steps(index),
            start_step=state.steps_used,
            source=self._stage_source(index),
            baseline=previous.loss_last if previous is not None else None,
            baseline_spread=_spread(previous.losses) if previous is not None else 0.0,
            baseline_noise=(previous.loss_noise or 0.0) if previous is not None else 0.0,
            baseline_error=_baseline_error(previous) if previous is not None else 0.0,
        )
        state.stage = stage
        stage.bounds = self._bounds(stage)
        if not self._budget_allows_probe(stage):
            # probe_budget spent: this stage trains on at the LR in use, without a search
            return self._train_instruction(segment, stage, fixed_lr=last_lr)
        return self._probe_instruction(segment, stage, self._next_point(stage)[0])

    def _previous_lr(self) -> float | None:
        """The LR the last earlier stage chose (None in stage 0, or before ``start``)."""
        return self._state.previous_lr if self._state is not None else None

    def _warm_centre(self) -> float | None:
        """With ``warm_start``: the last earlier stage's chosen LR in unit space, else None."""
        previous = self._previous_lr()
        if not self.config.warm_start or previous is None:
            return None
        return self.space.to_unit(previous)

    def _bounds(self, stage: StageRecord) -> tuple[float, float]:
        """The stage's search region: all of [0, 1], or around the last chosen LR (warm start)."""
        centre = self._warm_centre()
        if centre is None:
            return (0.0, 1.0)
        half = self.config.warm_start_decades * math.log(10.0) / self.space.log_width
        lo, hi = max(0.0, centre - half), min(1.0, centre + half)
        return (lo, hi) if hi > lo else (0.0, 1.0)

    def _warm_design(self, stage: StageRecord) -> float | None:
        """Warm start's first probes: the last chosen LR, then half-way to each edge."""
        centre = self._warm_centre()
        if centre is None:
            return None
        lo, hi = stage.bounds
        design = [centre, (lo + centre) / 2, (centre + hi) / 2]
        i = len(stage.probes)
        if i >= len(design):
            return None
        x = design[i]
        if any(abs(x - p.x_unit) < 0.02 for p in stage.probes):
            return None
        return x

    def _next_point(self, stage: StageRecord) -> tuple[float, float]:
        """Where to probe next, and the searcher's estimate of what it could still gain."""
        i = len(stage.probes)
        warm = self._warm_design(stage)
        if warm is not None:
            return warm, math.inf
        x_seen = [p.x_unit for p in stage.probes]
        y, y_scale = _normalized(self._objectives(stage))
        noise = self._variances(stage.probes, y_scale)
        seed = _derive_seed(self.config.seed, stage.stage, i)
        try:
            decide = getattr(self.searcher, "decide", None)
            if decide is not None:
                extra = _noise_kwargs(self.searcher, decide, noise)
                x_next, gain = decide(x_seen, y, seed=seed, bounds=stage.bounds, **extra)
                return float(x_next), float(gain) * y_scale
            propose = self.searcher.propose
            extra = _noise_kwargs(self.searcher, propose, noise)
            x_next = propose(x_seen, y, seed=seed, bounds=stage.bounds, **extra)
            return x_next, math.inf
        except SEARCH_FAILURES as exc:  # the search contract's "cannot decide": go on at random
            stage.search_fallbacks.append(f"probe {i}: {type(exc).__name__}: {exc}"[:300])
            log.warning("GP search failed (%s); probing a random LR instead", exc)
            from autolr.search import RandomSearcher

            return RandomSearcher().propose(x_seen, y, seed=seed, bounds=stage.bounds), math.inf

    def _search_is_done(self, stage: StageRecord, gain: float) -> bool:
        """Adaptive probe count: stop once the GP's optimistic gain is a negligible share.

        After ``min_probes`` probes, the search ends when the LCB's best point is expected to
        beat the best probe's posterior mean by less than ``stop_tolerance`` times the
        improvement the best probe forecasts over the stage's starting loss (3% by default):
        another probe would cost τ' steps for a negligible share of the stage's progress. The
        rule depends on loss differences only, so it is the same for any loss offset and scale.
        """
        if not self.config.adaptive_probes or len(stage.probes) < self.config.min_probes:
            return False
        healthy = [p.objective for p in stage.probes if p.objective is not None]
        if not healthy:
            return False
        scale = _progress_scale(stage.baseline, healthy)
        if scale <= 0:
            return True  # every healthy probe forecasts the same loss: nothing to refine
        done = gain < self.config.stop_tolerance * scale
        if done:
            stage.stopped_early = True
        return done

    def _probe_instruction(self, segment: int, stage: StageRecord, x_next: float) -> Instruction:
        """A probe at ``x_next``; with the "final" objective its constant part (a cooldown
        tail of `autolr.policy.tail_steps` follows, the two together ``probe_steps`` long)."""
        i = len(stage.probes)
        final = self.config.objective == "final"
        save_best = not final and self._save_best(stage)
        lr = self.space.to_lr(x_next)
        steps = stage.probe_steps - (tail_steps(stage.probe_steps) if final else 0)
        eval_every = None
        if stage.source == "val":
            eval_every = max(1, steps // self.config.val_evals_per_probe)
        return Instruction(
            segment=segment,
            kind="probe",
            lr=lr,
            lr_end=lr,
            steps=steps,
            snapshot=i == 0,
            restore=i > 0,
            save_best=save_best,
            eval_every=eval_every,
            stage=stage.stage,
            probe=i,
        )

    def _save_best(self, stage: StageRecord) -> bool:
        """With ``reuse_best_probe``: is the probe just run the best so far? Then keep its state."""
        if not self.config.reuse_best_probe or not stage.probes:
            return False
        last = stage.probes[-1]
        healthy = [p.forecast for p in stage.probes if p.ok and p.forecast is not None]
        if not last.ok or last.forecast is None or last.forecast > min(healthy):
            return False
        stage.best_saved = last.probe
        return True

    def _train_instruction(
        self, segment: int, stage: StageRecord, *, fixed_lr: float | None = None
    ) -> Instruction:
        if fixed_lr is not None:
            decision = hold(fixed_lr, self.config.objective, "probe budget spent")
        else:
            decision = self._decide(stage)
        stage.decisions.append(decision)
        lr, idx = decision.lr, decision.probe
        stage.chosen_lr, stage.chosen_probe = lr, idx
        log.info("stage %d: %s", stage.stage, decision.summary())
        # Reuse the chosen probe's steps when its end state is at hand: it is the probe just
        # run (train on from here), or the one kept in the best-probe slot. A "final" probe's
        # end is cooled, so only its constant part, kept in the best-probe slot, is reused.
        reuse = self.config.reuse_best_probe and idx is not None
        cooled = self.config.objective == "final"
        continue_last = reuse and not cooled and idx == len(stage.probes) - 1
        from_best = reuse and not continue_last and idx == stage.best_saved
        reused = 0
        if idx is not None and (continue_last or from_best):
            reused = stage.probes[idx].steps
        stage.reused_probe = idx if reused else None
        total = self._fit_train_steps(stage, max(1, stage.tau - reused))
        stage.train_steps = total
        if total <= 0:
            return self._anneal(segment, lr)
        stage.chunk_baseline = None
        return self._train_chunk(
            segment,
            stage,
            lr,
            total,
            # a stage without probes (probe_budget spent) has nothing to restore; it snapshots
            # here instead, so a diverging train segment can still be rolled back
            restore=bool(stage.probes) and not (continue_last or from_best),
            snapshot=not stage.probes,
            restore_best=from_best,
        ).model_copy(update={"decision": decision.summary()})

    # -- decisions
    def _horizon(self, stage: StageRecord) -> int:
        """Steps ahead (from the stage's start) at which a probe's forecast is evaluated.

        "horizon" (AutoLRS): τ. "final": the steps left before the final decay, as if the LR
        were held until then (the plan the stage's LR is the peak of); at least τ. Without a
        budget the horizon grows with the run: as many steps as have run so far.
        """
        if self.config.objective == "horizon":
            return stage.tau
        if self.config.total_steps is None:
            # training so far: cooldown branches ran steps the main run never saw (those
            # before the stage: ``stage`` is the latest one)
            branched = self._state.stage_branch_steps if self._state is not None else 0
            return max(stage.tau, stage.start_step - branched)
        left = self.config.total_steps - stage.start_step - self.config.anneal_steps
        return max(stage.tau, left)

    @staticmethod
    def _probe_series(
        stage: StageRecord, losses: Sequence[float], val: Sequence[tuple[int, float]]
    ) -> tuple[Literal["train", "val"], list[float], list[float]]:
        """The series a probe is judged on: its validation losses when the stage fits them
        and there are enough, else its training losses; as (source, steps, values)."""
        if stage.source == "val" and len(val) >= 8:
            ordered = sorted(val)
            return "val", [float(s) for s, _ in ordered], [v for _, v in ordered]
        return "train", [float(i + 1) for i in range(len(losses))], list(losses)

    def _tail_instruction(
        self, segment: int, stage: StageRecord, current: Instruction, report: Report
    ) -> Instruction | None:
        """The cooldown tail of a "final"-objective probe whose constant part just ran.

        None when the constant part already failed (a non-finite loss or stopped early): there
        is no floor to measure. The tail keeps the constant part's end state in the best-probe
        slot first when its forecast is the best so far (``reuse_best_probe``).
        """
        losses = report.train_losses
        if len(losses) < current.steps or not all(math.isfinite(v) for v in losses):
            return None
        val = [(s, v) for s, v in report.val_losses if 0 < s <= current.steps]
        stage.pending, stage.pending_val = list(losses), val
        steps = stage.probe_steps - current.steps
        save_best = False
        if self.config.reuse_best_probe:
            _, t, y = self._probe_series(stage, losses, val)
            fc = self.forecaster.forecast(t, y, float(self._horizon(stage)))
            best = [p.forecast for p in stage.probes if p.ok and p.forecast is not None]
            save_best = fc.ok and math.isfinite(fc.value) and all(fc.value <= b for b in best)
            if save_best:
                stage.best_saved = current.probe
        return Instruction(
            segment=segment,
            kind="probe",
            lr=current.lr,
            lr_end=current.lr * T.anneal_end_ratio,
            steps=steps,
            save_best=save_best,
            # a stage that judges validation losses evaluates once at the tail's end: the
            # cooled validation loss (a client without val_fn reports none: train loss then)
            eval_every=steps if stage.source == "val" else None,
            stage=stage.stage,
            probe=current.probe,
        )

    def _record_probe(self, stage: StageRecord, report: Report, current: Instruction) -> None:
        """Judge a finished probe: its forecast, its cooldown drop ("final") and its health."""
        tail: list[float] = []
        tail_val: list[tuple[int, float]] = []
        if stage.pending is not None:  # the report is a cooldown tail
            losses, val = stage.pending, stage.pending_val
            tail = list(report.train_losses)
            tail_val = [(s, v) for s, v in report.val_losses if 0 < s <= current.steps]
            stage.pending, stage.pending_val = None, []
        else:
            losses = list(report.train_losses)
            val = [(s, v) for s, v in report.val_losses if 0 < s <= current.steps]
        source, steps, series = self._probe_series(stage, losses, val)
        if stage.starts_cold and losses and math.isfinite(losses[0]):
            _add_start_sample(stage, losses[0], step_noise(losses))
        fc = self.forecaster.forecast(steps, series, float(self._horizon(stage)))
        ok, reason = fc.ok, fc.reason
        last = tail_mean(losses)
        noise = step_noise(series)
        if ok and not all(math.isfinite(v) for v in [*losses, *tail]):
            ok, reason = False, "non-finite training loss"
        if ok and any(abs(v) > LOSS_LIMIT for v in [*losses, *tail, *series]):
            ok, reason = False, "exploding loss (beyond the float range)"
        if ok and stage.baseline is not None and last is not None and stage.baseline_spread > 0:
            limit = stage.baseline + T.explode_factor * stage.baseline_spread
            if last > limit:
                ok, reason = False, f"exploding loss ({last:.4g} > {limit:.4g})"
        if (ok or reason == "rising loss") and spiked(losses, stage.baseline_noise):
            ok, reason = False, f"exploding loss (up to {max(losses):.4g})"
        if ok and not math.isfinite(fc.value):
            ok, reason = False, "non-finite forecast"
        drop, drop_error, level_value = None, 0.0, None
        if ok and tail:
            # the cooled loss in the units of the series judged: the tail's last training
            # losses, or its one validation loss at the end (validation-loss stages)
            cooled = [v for s, v in sorted(tail_val) if s == len(tail)] if source == "val" else tail
            level = self.forecaster.forecast(steps, series, steps[-1])
            if level.ok:
                level_value = level.value
                drop, drop_error = cooldown_drop(level.value, cooled, noise, T)
            if drop is None or not math.isfinite(fc.value - drop):
                ok, reason, drop = False, "no cooled loss (non-finite tail)", None
        stage.probes.append(
            ProbeRecord(
                probe=len(stage.probes),
                lr=current.lr,
                x_unit=self.space.to_unit(current.lr),
                steps=len(losses),
                source=source,
                ok=ok,
                reason=reason,
                forecast=fc.value if ok else None,
                first_loss=_finite(losses[0]) if losses else None,
                last_loss=last,
                noise=noise,
                drop=drop,
                drop_error=drop_error,
                level=level_value,
            )
        )

    @staticmethod
    def _objectives(stage: StageRecord) -> list[float]:
        """The searcher's outcomes: forecasts, with a bounded penalty for failed probes.

        A failed (divergent) probe scores the worst finite forecast plus a margin of the
        forecasts' spread (at least 10% of the worst's magnitude): bad enough to steer the
        search away, small enough not to wreck the GP's standardized outcome scale (a 1e6
        penalty, as in the reference, does).
        """
        finite = [p.objective for p in stage.probes if p.objective is not None]
        if finite:
            worst, best = max(finite), min(finite)
            penalty = worst + max(worst - best, 0.1 * abs(worst), 1e-12)
            if not math.isfinite(penalty):  # near the float limit: the worst is bad enough
                penalty = worst
        else:
            penalty = 1.0
        return [p.objective if p.objective is not None else penalty for p in stage.probes]

    def _variances(self, probes: Sequence[ProbeRecord], scale: float) -> list[float] | None:
        """Each probe's forecast variance in the searcher's normalized units (None: option off).

        A failed probe's penalty is exact (0): the GP's learned noise still applies to it.
        """
        if not self.config.forecast_noise:
            return None
        return [
            (objective_error(p) / scale) ** 2 if p.objective is not None else 0.0 for p in probes
        ]

    def _views(self, stage: StageRecord) -> list[ProbeView]:
        return [
            ProbeView(
                probe=p.probe,
                lr=p.lr,
                x_unit=p.x_unit,
                ok=p.ok,
                forecast=p.forecast if p.ok else None,
                drop=p.drop,
                error=objective_error(p),
                blew_up=_blew_up(p),
                reason=p.reason,
            )
            for p in stage.probes
        ]

    def _decide(self, stage: StageRecord) -> Decision:
        """The stage policy's decision; the search picks among its candidates first.

        The search's pick is the candidate with the lowest GP posterior mean of the objective
        (AutoLRS pitfall 12: the raw argmin of noisy forecasts is noise); the policy then
        applies its rules (`autolr.policy.choose_train_lr`).
        """
        views = self._views(stage)
        candidates, _ = search_candidates(views)
        pick: int | None = None
        if candidates:
            x = [p.x_unit for p in candidates]
            y = [p.objective or 0.0 for p in candidates]
            y_unit, y_scale = _normalized(y)
            noise = self._variances([stage.probes[p.probe] for p in candidates], y_scale)
            try:
                extra = _noise_kwargs(self.searcher, self.searcher.choose, noise)
                j = self.searcher.choose(x, y_unit, **extra)
            except SEARCH_FAILURES as exc:  # the search contract's "cannot decide"
                stage.search_fallbacks.append(f"choose: {type(exc).__name__}: {exc}"[:300])
                j = min(range(len(y)), key=lambda k: (y[k], k))
            pick = candidates[j].probe
        return choose_train_lr(
            views,
            pick=pick,
            min_lr=self.config.min_lr,
            objective=self.config.objective,
            previous_lr=self._previous_lr(),
            hold_moves=self.config.hold_moves,
        )
