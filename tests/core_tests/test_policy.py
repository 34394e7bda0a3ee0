"""The stage policy, from one table: every rule, the evidence it records, and its helpers."""

from __future__ import annotations

import math

import pytest

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
    tail_steps,
    train_diverged,
    window_noise,
)


def probe(
    i: int,
    lr: float,
    forecast: float | None,
    *,
    drop: float | None = None,
    error: float = 0.01,
    blew_up: bool = False,
) -> ProbeView:
    ok = forecast is not None
    return ProbeView(
        probe=i,
        lr=lr,
        x_unit=0.0,
        ok=ok,
        forecast=forecast,
        drop=drop,
        error=error,
        blew_up=blew_up,
        reason="" if ok else "exploding loss",
    )


# (name, probes, search pick, previous LR, hold_moves, rule, LR trained)
TABLE = [
    (
        "the search's pick trains",
        [probe(0, 0.01, 1.0), probe(1, 0.03, 0.9), probe(2, 0.1, 1.2)],
        1,
        None,
        True,
        Rule.SEARCH_BEST,
        0.03,
    ),
    (
        "no healthy probe: the smallest LR allowed",
        [probe(0, 0.01, None, blew_up=True), probe(1, 0.1, None, blew_up=True)],
        None,
        None,
        True,
        Rule.NO_HEALTHY_PROBE,
        1e-4,
    ),
    (
        "a later stage's higher pick moves on noise: the bias points the other way",
        [probe(0, 0.01, 1.00, error=0.05), probe(1, 0.03, 0.98, error=0.05)],
        1,
        0.01,
        True,
        Rule.SEARCH_BEST,
        0.03,
    ),
    (
        "a later stage's lower pick within noise of the previous LR: hold",
        [probe(0, 0.03, 1.00, error=0.05), probe(1, 0.01, 0.98, error=0.05)],
        1,
        0.03,
        True,
        Rule.HOLD_PREVIOUS,
        0.03,
    ),
    (
        "a later stage's lower pick beats the previous LR by 2 SE: move",
        [probe(0, 0.03, 1.00, error=0.005), probe(1, 0.01, 0.98, error=0.005)],
        1,
        0.03,
        True,
        Rule.SEARCH_BEST,
        0.01,
    ),
    (
        "hold_moves off: a lower pick moves on noise",
        [probe(0, 0.03, 1.00, error=0.05), probe(1, 0.01, 0.98, error=0.05)],
        1,
        0.03,
        False,
        Rule.SEARCH_BEST,
        0.01,
    ),
    (
        "the previous LR's probe failed: nothing to hold",
        [probe(0, 0.03, None, blew_up=False), probe(1, 0.01, 0.98, error=0.05)],
        1,
        0.03,
        True,
        Rule.SEARCH_BEST,
        0.01,
    ),
    (
        "the objective is the forecast less the cooldown's drop",
        [probe(0, 0.01, 1.0, drop=0.0), probe(1, 0.1, 1.1, drop=0.3)],
        1,
        None,
        True,
        Rule.SEARCH_BEST,
        0.1,
    ),
]


@pytest.mark.parametrize(
    ("probes", "pick", "previous", "hold_moves", "rule", "lr"),
    [row[1:] for row in TABLE],
    ids=[row[0] for row in TABLE],
)
def test_every_rule_from_the_table(
    probes: list[ProbeView],
    pick: int | None,
    previous: float | None,
    hold_moves: bool,
    rule: Rule,
    lr: float,
) -> None:
    decision = choose_train_lr(
        probes,
        pick=pick,
        min_lr=1e-4,
        objective="final",
        previous_lr=previous,
        hold_moves=hold_moves,
    )
    assert decision.rule is rule
    assert decision.lr == pytest.approx(lr)
    # the record names its evidence: every probe, with what the objective ranked
    assert [e.probe for e in decision.evidence] == [p.probe for p in probes]
    for e, p in zip(decision.evidence, probes, strict=True):
        assert e.objective == p.objective
    assert decision.summary().startswith(f"{rule.value}: lr=")
    # the record survives JSON, as it is persisted with the stage
    assert Decision.model_validate_json(decision.model_dump_json()) == decision


def test_every_rule_is_covered_by_the_table_or_a_test_below() -> None:
    from_table = {row[5] for row in TABLE}
    elsewhere = {Rule.HOLD, Rule.ROLLBACK}  # decided by the controller's bookkeeping, below
    retired = {Rule.RANGE_TOO_HIGH}  # never decided now; stored decisions still load
    assert from_table | elsewhere | retired == set(Rule)
    stored = Decision(rule=Rule.RANGE_TOO_HIGH, lr=0.01).model_dump_json()
    assert Decision.model_validate_json(stored).rule is Rule.RANGE_TOO_HIGH


def test_an_erratic_probe_counts_as_blown_up() -> None:
    """Seen on a large-batch regression: Adam at 0.3 gave an objective of 1.42 ± 2.8 beside
    neighbours at ± 0.03; the GP extrapolated its mean below theirs and the stage trained there
    (final loss 300x the cosine's). Ten times the stage's typical error: that LR oscillates."""
    probes = [
        probe(0, 0.001, 0.73, error=0.03),
        probe(1, 0.04, 0.25, error=0.04),
        probe(2, 0.3, 1.42, error=2.8),
    ]
    candidates, cap = search_candidates(probes)
    assert [p.probe for p in candidates] == [0, 1]
    assert cap == pytest.approx(0.3 / THRESHOLDS.stability_margin)


def test_hold_records_the_lr_in_use_without_evidence() -> None:
    decision = hold(0.02, "final", "probe budget spent")
    assert (decision.rule, decision.lr, decision.evidence) == (Rule.HOLD, 0.02, [])


def test_the_stability_cap_keeps_the_search_off_lrs_near_one_that_blew_up() -> None:
    probes = [probe(0, 0.01, 1.0), probe(1, 0.1, 0.8), probe(2, 0.2, None, blew_up=True)]
    candidates, cap = search_candidates(probes)
    assert cap == pytest.approx(0.2 / THRESHOLDS.stability_margin)
    assert [p.probe for p in candidates] == [0]
    # no probe blew up: every healthy one is a candidate, no cap
    candidates, cap = search_candidates(probes[:2])
    assert cap is None and len(candidates) == 2
    # a pick outside the candidates is no pick: the record says so rather than train near 0.2
    decision = choose_train_lr(probes, pick=1, min_lr=1e-4, objective="final")
    assert decision.rule is Rule.NO_HEALTHY_PROBE


@pytest.mark.parametrize(
    ("healthy", "expected"),
    [
        ([0.02, 0.05], 0.02),  # the largest healthy probe LR 3x-10x below the failed 0.1
        ([0.05], 0.01),  # none that far below: a decade down
        ([], 0.01),
    ],
)
def test_a_rollback_retrains_at_a_safer_lr(healthy: list[float], expected: float) -> None:
    assert rollback_lr(0.1, healthy, min_lr=1e-4) == pytest.approx(expected)


def test_no_rollback_below_min_lr() -> None:
    assert rollback_lr(1e-4, [], min_lr=1e-4) is None


def test_a_cooldown_drop_is_the_fitted_level_less_the_cooled_mean() -> None:
    drop, error = cooldown_drop(2.0, [1.9, 1.8, 1.7, 1.6, 1.5, 1.4], 0.1, THRESHOLDS)
    assert drop == pytest.approx(2.0 - 1.45)  # the last third: 1.5 and 1.4
    assert error == pytest.approx(0.1 / math.sqrt(2))
    assert cooldown_drop(2.0, [math.nan], 0.1, THRESHOLDS) == (None, 0.0)


def test_tails_leave_the_forecaster_enough_points() -> None:
    assert tail_steps(20) == 5 and 20 - tail_steps(20) >= 15
    assert tail_steps(200) == 50


def test_a_slow_wobble_is_not_a_divergence_but_a_climb_is() -> None:
    """A stationary loss that drifts up and down over hundreds of steps (a noisy quadratic at
    a stable LR: 0.016 -> 0.010 -> 0.021) was rolled back a decade lower: its window means
    wobble far more than its per-step noise over √window says. Measured on the segment before
    (``start_error``), the wobble widens the margin; the same segment climbing to five times
    its start is still a divergence, and the segment's own wobble never widens it."""
    n = 300
    wobble = [0.016 + 0.005 * math.sin(2 * math.pi * i / 90) + 0.001 * (-1) ** i for i in range(n)]
    before = window_noise(wobble, 30)  # the wobble of the healthy segment before, same LR
    assert before > 10 * 0.001 / math.sqrt(30)
    assert train_diverged(wobble, start=0.0125, noise_before=0.001)  # i.i.d. noise alone
    assert not train_diverged(wobble, start=0.0125, noise_before=0.001, start_error=before)
    climb = wobble[: n // 2] + [v + 0.06 for v in wobble[n // 2 :]]
    assert train_diverged(climb, start=0.0125, noise_before=0.001, start_error=before)
    # an unstable LR oscillates: its own wobble is the symptom, not a reason for a margin
    wild = [0.0125 + 0.1 * (i % 40 > 20) + 0.02 * math.sin(i) for i in range(n)]
    assert train_diverged(wild, start=0.0125, noise_before=0.001, start_error=0.0005)


def test_window_noise_ignores_a_steady_trend() -> None:
    descent = [2.0 - 0.01 * i for i in range(200)]
    assert window_noise(descent, 20) == pytest.approx(0.0, abs=1e-12)
    assert window_noise(descent[:50], 20) == 0.0  # fewer than four windows
