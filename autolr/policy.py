"""The stage policy: which LR a stage trains with, and why — one pure function, one record.

The controller does the bookkeeping (segments, budget, snapshots, searcher calls); the
judgements live here: which probed LR trains the stage (`choose_train_lr`), which probes the
search may pick (`search_candidates`), whether a probe spiked (`spiked`), whether a train
segment wrecked the model (`train_diverged`) and the LR it retrains with (`rollback_lr`), and
the shape of a probe's cooldown (`tail_steps`, `cooldown_drop`). `choose_train_lr` reads the stage's
probe outcomes and returns a `Decision` that names its `Rule` and carries the evidence (each
probe's forecast, its measured cooldown drop and the predicted loss the objective ranks).
The decision is persisted with the stage, logged, sent to the client with the train
instruction and drawn on the dashboard.

The objective (``TunerConfig.objective``):

* ``"final"`` (default) — decide for the end of the budget. A constant-LR probe sits on a
  noise floor that grows with the LR, and the run ends with a decay that removes it, so
  ranking probes by their constant-LR loss τ steps ahead favours small LRs (short-horizon
  bias; Wu et al., ICLR 2018). Each probe therefore ends with a short linear cooldown to ~0
  (its *tail*). The tail measures the floor that probe's LR leaves: ``drop = fit(end of the
  constant part) − mean(last third of the tail)``. The objective is the loss the stage would
  reach if the run cooled down at its end: ``forecast(τ) − drop`` (the exponential forecast
  of the constant part's progress, minus that LR's own floor). It is what the final decay
  realizes, so minimizing it picks the LR whose *progress* is best, not whose floor is lowest.
* ``"horizon"`` — AutoLRS as published: the constant-LR loss forecast at τ.

Every threshold is a field of `Thresholds` (unit and origin documented); `THRESHOLDS` is the
one instance the controller uses.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

Objective = Literal["final", "horizon"]


@dataclass(frozen=True)
class Thresholds:
    """Every number the stage policy and the controller's health checks use.

    Losses are compared in units of their own measured noise (standard errors) or of the
    stage's own loss differences, so no threshold depends on a loss's offset or scale.
    """

    #: (standard errors) a difference this large is significant: a forecast this far above
    #: the stage's start is a rise; a later stage's pick must beat the previous stage's LR by
    #: this much to move (two-sided 5%).
    rise_z: float = 2.0
    #: (ratio) a probe whose objective's standard error is this many times the stage's median
    #: is erratic: its LR oscillates; it counts as blown up (seen: Adam at 0.3 on a
    #: large-batch regression, 2.8 against 0.03 for its neighbours).
    erratic_factor: float = 10.0
    #: (ratio) a stage never trains within this factor of an LR whose probe blew up; a
    #: rollback retrains at least this factor lower.
    stability_margin: float = 3.0
    #: (ratio) the step down when no probed LR is a safe alternative (wrong range, rollback).
    step_down: float = 10.0
    #: (count) rollbacks of one stage's training before it trains on regardless.
    max_rollbacks: int = 2
    #: (per-step noise levels) a probe whose loss jumps this far above its start blew up.
    spike_factor: float = 20.0
    #: (loss ranges of the segment before the stage) a probe ending this far above the stage's
    #: start exploded.
    explode_factor: float = 2.0
    #: (standard errors) a train segment ending this far above its reference is rolled back.
    rollback_z: float = 4.0
    #: (share of a probe) the cooldown tail of a "final"-objective probe: long enough to
    #: average a few steps of the cooled loss, short enough to leave the constant part ≥ 15
    #: steps for the exponential fit at the minimum probe length of 20.
    tail_fraction: float = 0.25
    #: (steps) the shortest cooldown tail.
    min_tail_steps: int = 5
    #: (share of the tail) the cooled loss is the mean over this last share of the tail.
    cooled_share: float = 1.0 / 3.0
    #: (ratio) an anneal or a cooldown tail ends at this fraction of the LR it starts from.
    anneal_end_ratio: float = 1e-3


THRESHOLDS = Thresholds()


class Rule(StrEnum):
    """Why a stage trains at its LR. Values are stable: they are persisted and shown."""

    SEARCH_BEST = "search-best"  # the search's pick: lowest GP posterior mean of the objective
    # Retired: "the pick forecasts a rise over the stage's start, step a decade down". A
    # held-out ablation changed no run; on a noisy quadratic it fired on noise. Stored
    # decisions that name it still load.
    RANGE_TOO_HIGH = "range-too-high"
    NO_HEALTHY_PROBE = "no-healthy-probe"  # every probe failed: the smallest LR allowed
    HOLD_PREVIOUS = "hold-previous"  # a lower pick does not beat the previous LR significantly
    HOLD = "hold"  # no search this stage (probe budget spent): the LR in use trains on
    ROLLBACK = "rollback"  # the stage's training diverged: retrain lower from the snapshot


class Evidence(BaseModel):
    """One probe as the policy saw it (all losses in the job's units)."""

    model_config = ConfigDict(extra="forbid")

    probe: int
    lr: float
    ok: bool
    forecast: float | None = None  # constant-LR loss forecast at the stage's horizon τ
    drop: float | None = None  # loss removed by the probe's cooldown tail ("final" only)
    objective: float | None = None  # what the search minimizes (forecast − drop, or forecast)
    error: float = 0.0  # standard error of ``objective``, from the probe's loss noise
    reason: str = ""


class Decision(BaseModel):
    """The LR a stage trains with, the rule that chose it, and the evidence it read."""

    model_config = ConfigDict(extra="forbid")

    rule: Rule
    lr: float
    probe: int | None = None  # index of the probe whose LR trains (None: not a probed LR)
    objective: Objective = "final"
    pick: int | None = None  # the search's own pick, before ties and caps
    evidence: list[Evidence] = Field(default_factory=list)
    note: str = ""

    def summary(self) -> str:
        """One line for logs: rule, LR and the predicted losses of the best probes."""
        ranked = sorted(
            (e for e in self.evidence if e.objective is not None),
            key=lambda e: e.objective or 0.0,
        )[:3]
        shown = ", ".join(f"{e.lr:.3g}→{e.objective:.4g}±{e.error:.2g}" for e in ranked)
        return f"{self.rule.value}: lr={self.lr:.4g}" + (f" [{shown}]" if shown else "")


@dataclass(frozen=True)
class ProbeView:
    """What the policy reads of one probe (a read-only view of the controller's record)."""

    probe: int
    lr: float
    x_unit: float
    ok: bool
    forecast: float | None
    drop: float | None
    error: float
    blew_up: bool
    reason: str = ""

    @property
    def objective(self) -> float | None:
        if not self.ok or self.forecast is None:
            return None
        return self.forecast - (self.drop or 0.0)


def search_candidates(
    probes: Sequence[ProbeView], thresholds: Thresholds = THRESHOLDS
) -> tuple[list[ProbeView], float | None]:
    """The probes the search may pick from, and the stability cap that limits them.

    The healthy probes at most ``stability_margin`` below the smallest LR that blew up (a
    train segment is many probes long: an LR that nearly diverged in a probe is likely to
    diverge there); all healthy probes when none is that small. The cap is None when no
    probe blew up.
    """
    healthy = [p for p in probes if p.objective is not None]
    errors = sorted(p.error for p in healthy)
    typical = errors[len(errors) // 2] if errors else 0.0
    # an objective an order of magnitude noisier than the stage's typical probe: that LR
    # oscillates; its value says nothing and it is not safe to train on
    erratic = [p for p in healthy if typical > 0 and p.error > thresholds.erratic_factor * typical]
    healthy = [p for p in healthy if p not in erratic]
    failed = [p.lr for p in probes if p.blew_up] + [p.lr for p in erratic]
    if not failed:
        return healthy, None
    cap = min(failed) / thresholds.stability_margin
    return [p for p in healthy if p.lr <= cap] or healthy, cap


def choose_train_lr(
    probes: Sequence[ProbeView],
    *,
    pick: int | None,
    min_lr: float,
    objective: Objective,
    previous_lr: float | None = None,
    hold_moves: bool = True,
    thresholds: Thresholds = THRESHOLDS,
) -> Decision:
    """The LR a stage trains with, given its probes and the search's pick among them.

    Args:
        probes: every probe of the stage, failed ones included.
        pick: the ``probe`` index of the search's choice among `search_candidates` (the one
            with the lowest GP posterior mean of the objective), or None when there is none.
        min_lr: the smallest LR the job may use.
        objective: which quantity the probes were ranked by (recorded in the decision).
        previous_lr: the LR the previous stage trained with (None in stage 0).
        hold_moves: apply `Rule.HOLD_PREVIOUS` (``TunerConfig.hold_moves``).
        thresholds: the policy's numbers.

    Rules, in order: no healthy probe → ``min_lr`` (`Rule.NO_HEALTHY_PROBE`); a pick below the
    previous stage's LR that does not beat that LR's probe by ``rise_z`` standard errors of their difference → the previous LR
    (`Rule.HOLD_PREVIOUS`); else the pick (`Rule.SEARCH_BEST`). The candidates exclude LRs
    within ``stability_margin`` of one that blew up (`search_candidates`).
    """
    evidence = [_evidence(p) for p in probes]
    candidates, cap = search_candidates(probes, thresholds)
    note = f"stability cap {cap:.3g}" if cap is not None else ""
    chosen = next((p for p in candidates if p.probe == pick), None)
    if chosen is None:
        return Decision(
            rule=Rule.NO_HEALTHY_PROBE, lr=min_lr, objective=objective, evidence=evidence
        )
    rule = Rule.SEARCH_BEST
    held = _held(candidates, chosen, previous_lr, thresholds) if hold_moves else None
    if held is not None:
        chosen, rule = held, Rule.HOLD_PREVIOUS
    return Decision(
        rule=rule,
        lr=chosen.lr,
        probe=chosen.probe,
        objective=objective,
        pick=pick,
        evidence=evidence,
        note=note,
    )


def _held(
    candidates: Sequence[ProbeView],
    chosen: ProbeView,
    previous_lr: float | None,
    t: Thresholds,
) -> ProbeView | None:
    """The probe of the previous stage's LR when ``chosen`` is lower and does not beat it
    significantly.

    The previous LR has been tested by a whole stage, a pick by one short probe. A move *down*
    needs evidence, ``rise_z`` standard errors of the difference: the cooled objective still
    carries part of the larger LR's noise floor (a short tail cannot remove it all), so its
    residual bias points to smaller LRs, and on noise alone later stages drifted a decade low.
    A move up follows the search (the stability cap guards it). None when there is nothing to
    hold (stage 0, a pick above the previous LR, no healthy probe at the previous LR, or the
    pick is that probe).
    """
    if previous_lr is None or chosen.lr > previous_lr:
        return None
    same = [p for p in candidates if math.isclose(p.lr, previous_lr, rel_tol=1e-6)]
    if not same or same[0] is chosen or chosen.objective is None:
        return None
    prev = same[0]
    gap = (prev.objective or 0.0) - chosen.objective
    return None if gap >= t.rise_z * math.hypot(prev.error, chosen.error) else prev


def _evidence(p: ProbeView) -> Evidence:
    return Evidence(
        probe=p.probe,
        lr=p.lr,
        ok=p.ok,
        forecast=p.forecast,
        drop=p.drop,
        objective=p.objective,
        error=p.error,
        reason=p.reason,
    )


def hold(lr: float, objective: Objective, note: str = "") -> Decision:
    """The decision of a stage without a search: train on at the LR in use."""
    return Decision(rule=Rule.HOLD, lr=lr, objective=objective, note=note)


def rollback_lr(
    failed_lr: float,
    healthy_lrs: Sequence[float],
    *,
    min_lr: float,
    thresholds: Thresholds = THRESHOLDS,
) -> float | None:
    """The LR a diverged stage retrains with, or None when nothing safer is left.

    The largest healthy probe LR between ``stability_margin`` and ``step_down`` times below
    the failed LR, else the failed LR over ``step_down`` (never further: the smallest probe of
    a cold search can be 1000x below, and training there stalls the run).
    """
    safe = [
        lr
        for lr in healthy_lrs
        if failed_lr / thresholds.step_down <= lr <= failed_lr / thresholds.stability_margin
    ]
    lr = max(safe) if safe else max(min_lr, failed_lr / thresholds.step_down)
    return lr if lr < failed_lr else None


def tail_steps(probe_steps: int, thresholds: Thresholds = THRESHOLDS) -> int:
    """Steps of a probe's cooldown tail (the rest of ``probe_steps`` is its constant part)."""
    return max(thresholds.min_tail_steps, round(thresholds.tail_fraction * probe_steps))


def cooldown_drop(
    level_before: float, tail_losses: Sequence[float], noise: float, thresholds: Thresholds
) -> tuple[float | None, float]:
    """The loss a cooldown tail removed, and its standard error.

    ``level_before`` is the fitted loss at the end of the constant part (smoothed, so nearly
    noise-free); the cooled level is the mean over the last ``cooled_share`` of the tail.
    None when the tail has no finite values.
    """
    finite = [v for v in tail_losses if math.isfinite(v)]
    if not finite or not math.isfinite(level_before):
        return None, 0.0
    k = max(1, math.ceil(thresholds.cooled_share * len(finite)))
    cooled = sum(finite[-k:]) / k
    if not math.isfinite(cooled):  # a sum of losses near 1e308 overflows: divide first
        cooled = sum(v / k for v in finite[-k:])
    drop = level_before - cooled
    return (drop if math.isfinite(drop) else None), noise / math.sqrt(k)


def tail_mean(values: Sequence[float], fraction: float = 0.1) -> float | None:
    """Mean of the last ``fraction`` of the finite values (at least one), or None."""
    finite = [v for v in values if math.isfinite(v)]
    if not finite:
        return None
    k = max(1, int(len(finite) * fraction))
    mean = sum(finite[-k:]) / k
    return mean if math.isfinite(mean) else None


def step_noise(values: Sequence[float]) -> float:
    """Per-step loss noise: a robust SD from second differences (0 for < 4 finite values).

    ``median(|Δ²|) / (0.6745·√6)`` is the SD of i.i.d. noise around a smooth trend: a linear
    trend (a steady descent or climb) cancels exactly and a few spikes barely move the median,
    unlike the range of the values.
    """
    x = [v for v in values if math.isfinite(v)]
    second = sorted(abs(x[i + 1] - 2 * x[i] + x[i - 1]) for i in range(1, len(x) - 1))
    if len(second) < 2:
        return 0.0
    noise = second[len(second) // 2] / (0.6745 * math.sqrt(6.0))
    return noise if math.isfinite(noise) else sys.float_info.max


def window_noise(values: Sequence[float], window: int) -> float:
    """Standard deviation of a mean over ``window`` consecutive values (finite values).

    `step_noise` applied to consecutive non-overlapping window means: a linear trend cancels
    and a kink or a short burst moves few second differences. Unlike ``step_noise / √window``
    it includes slow, correlated wobble. 0 with fewer than four windows.
    """
    x = [v for v in values if math.isfinite(v)]
    if window < 1 or len(x) < 4 * window:
        return 0.0
    means = [sum(x[i : i + window]) / window for i in range(0, len(x) - window + 1, window)]
    return step_noise(means)


def spiked(
    losses: Sequence[float], noise_before: float = 0.0, thresholds: Thresholds = THRESHOLDS
) -> bool:
    """Did the loss jump far above its start (an unstable LR), even if it came back down?

    "Far" is ``spike_factor`` per-step noise levels for the highest loss, or half that for the
    mean of the last 10%, and more than the whole progress the series made. Such a probe's
    forecast means nothing (its spikes dominate the smoothing) and, left ok, its huge finite
    forecast flattened every other probe under the searcher's scaling (the stage then trained
    at the smallest LR probed); one the forecaster calls "rising" would otherwise not count as
    unstable (a stage trained 1.7x below a probe whose loss went from 2.3 to 5.7).
    """
    finite = [v for v in losses if math.isfinite(v)]
    if len(finite) < 4:
        return False
    # the noise healthy training showed before the stage, when known: an exploding series's
    # own step-to-step noise grows with it
    noise = noise_before if noise_before > 0 else step_noise(finite)
    progress = finite[0] - min(finite)
    peak = max(finite) - finite[0]
    tail = (tail_mean(finite) or finite[0]) - finite[0]
    return noise > 0 and (
        (peak > thresholds.spike_factor * noise and peak > progress)
        or (tail > 0.5 * thresholds.spike_factor * noise and tail > progress)
    )


def best_window_mean(values: Sequence[float], fraction: float = 0.1) -> float:
    """Lowest mean over consecutive windows of ``fraction`` of the values (finite values)."""
    finite = [v for v in values if math.isfinite(v)]
    k = max(1, int(len(finite) * fraction))
    means = [sum(finite[i : i + k]) / k for i in range(0, len(finite) - k + 1, k)]
    return min(means) if means else math.inf


def train_diverged(
    losses: Sequence[float],
    *,
    start: float,
    noise_before: float,
    start_error: float = 0.0,
    promise: tuple[float, float, int] | None = None,
    thresholds: Thresholds = THRESHOLDS,
) -> bool:
    """Did a train segment (or chunk) with finite ``losses`` wreck the model? Then roll back.

    Args:
        losses: the segment's training losses (finite).
        start: the loss where it started (the stage's start, or the chunk's).
        noise_before: per-step noise of the segment before it.
        start_error: standard error of ``start`` as a window mean, measured on the segment
            before (slow, correlated wobble included).
        promise: for a stage's first chunk, (the progress the chosen probe made on the
            training loss, that probe's end loss, its steps); None otherwise.
        thresholds: the policy's numbers (``rollback_z``).
    """
    last = tail_mean(losses)
    if last is None:
        return False
    # Far above where it should be: the stage's start or the chosen probe's own end loss
    # (the same LR from the same state, in fewer steps), whichever is lower. "Far" is half
    # the progress the chosen probe made or a significant rise: ``rollback_z`` standard errors
    # of a difference of tail means, and at least one per-step noise level (loss noise is
    # not i.i.d.: slow wobbles are healthy). The noise (of the segment before or this one,
    # the larger) is measured with the trend removed, so a steep but healthy descent before
    # does not widen the margin (its range did: a model back at chance level passed). Not
    # the segment's own best window: its minimum over noisy windows sits below the level by
    # chance, and a healthy descending segment was rolled back. This catches an LR that
    # looked best for τ' steps and then wrecked the model without a single non-finite loss
    # (dead units with SGD: the loss climbing back to chance level).
    noise = max(noise_before, step_noise(losses))
    window = max(1, int(0.1 * len(losses)))  # steps in the tail mean
    # Loss noise is not i.i.d.: a window mean wobbles by more than noise/√window (seen: a
    # noisy quadratic's loss drifting 30% up and down over hundreds of steps at an LR well
    # inside its stable range; rolled back a decade lower, the run ended 8x too low). The
    # wobble is measured on the healthy segment before (``start_error``), never on this one:
    # an unstable LR's own oscillation would hide it (a model back at chance level passed).

    def rise(ref_window: int) -> float:  # a significant rise over a reference mean
        iid = noise * math.sqrt(1.0 / window + 1.0 / ref_window)
        return max(noise, thresholds.rollback_z * max(iid, math.sqrt(2.0) * start_error))

    # (reference, its window, half the promised progress)
    references = [(start, window, 0.0)]
    if promise is not None:
        promised, probe_end, probe_steps = max(0.0, promise[0]), promise[1], promise[2]
        references = [
            (start, window, 0.5 * promised),
            # the probe's end is a mean of few steps (and the lowest forecast picked it:
            # lucky more often than not), so its own noise widens the margin
            (probe_end, max(1, int(0.1 * probe_steps)), 0.5 * promised),
        ]
    for reference, ref_window, half_promise in references:
        margin = max(rise(ref_window), half_promise)
        if margin > 0 and last > reference + margin:
            return True
    # ... or it gave back more than half of the progress it made, significantly: down from
    # where it started, then back up (seen: SGD at the edge of stability, 2.32 -> 1.7 ->
    # 2.33 = chance level, inside the margin above because the chosen probe ended high)
    best = best_window_mean(losses)
    return noise > 0 and last - best > max(rise(window), 0.5 * (start - best))
