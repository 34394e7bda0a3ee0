"""TunerConfig: defaults, the budget rule, and one test per rejection rule."""

from __future__ import annotations

import math

import pytest
from pydantic import ValidationError

from autolr import ConfigError, TunerConfig
from autolr.plan import minimum_budget, stage_plan


def test_defaults_follow_the_paper() -> None:
    cfg = TunerConfig.autolrs()
    assert cfg.loss_source == "auto"  # the reference: training loss until τ reaches τ_max
    assert TunerConfig().loss_source == "val-if-given"
    with pytest.raises(ConfigError, match="val_evals_per_probe"):
        TunerConfig.build(val_evals_per_probe=7)  # the forecaster fits at least 8 points
    assert (cfg.tau_min, cfg.tau_max, cfg.probes_per_stage, cfg.probe_fraction) == (
        1000,
        8000,
        10,
        0.1,
    )
    plan = stage_plan(cfg)
    assert [plan.tau(s) for s in range(5)] == [1000, 2000, 4000, 8000, 8000]
    assert plan.probe_steps(0) == 100
    # autolr's own default halves the probe length (probe_budget keeps the total in check)
    assert stage_plan(TunerConfig()).probe_steps(0) == 50
    # every option beyond the paper is off in the preset
    assert not (cfg.warm_start or cfg.adaptive_probes or cfg.reuse_best_probe or cfg.forecast_noise)
    assert not cfg.hold_moves and cfg.objective == "horizon"
    assert (cfg.anneal_fraction, cfg.probe_budget) == (0.0, None)


def test_small_budget_scales_tau_to_fit_at_least_three_stages() -> None:
    cfg = TunerConfig(total_steps=3000)
    plan = stage_plan(cfg)
    assert plan.steps_for(3) <= 3000
    assert plan.steps_for(cfg.min_stages) <= 3000
    # τ keeps the paper's 1:8 ratio and τ' never drops under the minimum
    assert plan.tau_max == 8 * plan.tau_min
    assert plan.probe_steps(0) >= cfg.min_probe_steps


def test_large_budget_keeps_paper_tau() -> None:
    plan = stage_plan(TunerConfig(total_steps=1_000_000))
    assert (plan.tau_min, plan.tau_max) == (1000, 8000)


def test_frozen_and_unknown_fields_rejected() -> None:
    cfg = TunerConfig()
    with pytest.raises(ValidationError):
        cfg.min_lr = 0.5  # type: ignore[misc]
    with pytest.raises(ValidationError, match="max_lrr"):
        TunerConfig(max_lrr=1.0)  # type: ignore[call-arg]


@pytest.mark.parametrize(
    ("fields", "needles"),
    [
        ({"min_lr": 0.1, "max_lr": 0.01}, ["min_lr=0.1", "max_lr=0.01"]),
        ({"min_lr": 0.1, "max_lr": 0.1}, ["min_lr=0.1", "max_lr=0.1"]),
        ({"min_lr": -1.0}, ["min_lr"]),
        ({"min_lr": math.nan}, ["min_lr"]),
        ({"max_lr": math.inf}, ["max_lr"]),
        ({"tau_min": 2000, "tau_max": 1000}, ["tau_min=2000", "tau_max=1000"]),
        ({"tau_min": 0}, ["tau_min"]),
        ({"probes_per_stage": 0}, ["probes_per_stage"]),
        ({"probe_fraction": 0.0}, ["probe_fraction"]),
        ({"probe_fraction": 1.5}, ["probe_fraction"]),
        ({"min_probe_steps": 3}, ["min_probe_steps"]),
        ({"total_steps": 0}, ["total_steps"]),
        ({"total_steps": 100}, ["total_steps=100", "need at least 200"]),
        ({"warmup_steps": -1}, ["warmup_steps"]),
        ({"warmup_steps": 5000, "total_steps": 5000}, ["warmup_steps=5000", "total_steps=5000"]),
        ({"warmup_lr": 0.01}, ["warmup_lr=0.01", "warmup_steps=0"]),
        ({"warmup_steps": 10, "warmup_lr": 5.0}, ["warmup_lr=5.0", "max_lr=1.0"]),
        ({"loss_source": "test"}, ["loss_source"]),
        ({"kappa": -1}, ["kappa"]),
        ({"seed": -3}, ["seed"]),
    ],
)
def test_invalid_values_are_named(fields: dict[str, object], needles: list[str]) -> None:
    with pytest.raises(ValueError) as info:
        TunerConfig(**fields)  # type: ignore[arg-type]
    for needle in needles:
        assert needle in str(info.value)
    with pytest.raises(ConfigError) as built:
        TunerConfig.build(**fields)
    assert str(built.value).startswith("invalid TunerConfig: ")
    first_field = needles[0].split("=")[0]
    assert first_field in str(built.value)


def test_minimum_budget_is_exactly_feasible() -> None:
    cfg = TunerConfig(probes_per_stage=4)
    need = minimum_budget(cfg)
    TunerConfig(probes_per_stage=4, total_steps=need)
    with pytest.raises(ValueError, match=f"need at least {need}"):
        TunerConfig(probes_per_stage=4, total_steps=need - 1)


def test_warmup_lr_defaults_to_geometric_middle() -> None:
    cfg = TunerConfig(min_lr=1e-4, max_lr=1e-2, warmup_steps=100)
    assert cfg.effective_warmup_lr == pytest.approx(1e-3)


@pytest.mark.parametrize("field", ["total_steps", "tau_min", "tau_max", "warmup_steps"])
def test_step_counts_beyond_2_to_the_53_are_rejected_with_the_field_named(field: str) -> None:
    # 2.5e21 steps once reached the server's database and overflowed its integer column (a 500)
    with pytest.raises(ConfigError, match=field):
        TunerConfig.build(**{field: 2_489_185_677_083_910_078_464})
