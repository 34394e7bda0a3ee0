"""`TunerConfig`: everything that defines a tuning job, validated once.

Every default says where it comes from. A config is frozen and rejects unknown fields, so a
misspelled option is an error instead of a silently ignored value.
"""

from __future__ import annotations

from typing import Literal, Self

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from autolr.errors import ConfigError
from autolr.policy import Objective

#: The loss the probes are judged on. ``"val-if-given"`` (default): the validation loss in every
#: stage when the client has a validation function, else the training loss — the objective is
#: the validation loss at the end of the budget, and a noisy training loss hid the differences
#: between probes (README, "Schedule quality"). ``"val"``: the validation loss, required.
#: ``"train"``: the training loss. ``"auto"``: the reference code's rule (training loss while
#: τ < τ_max, then the validation loss), `TunerConfig.autolrs`'s.
LossSource = Literal["train", "val", "auto", "val-if-given"]

#: Largest step count a config accepts: 2**53 is exact in a JSON number and a float, and fits the
#: 64-bit integer columns of the server's database (a fuzzed 2.5e21 budget made SQLite overflow).
MAX_STEPS = 2**53
#: Fields of earlier versions whose rules were retired; stored configs holding them still load.
RETIRED_FIELDS = frozenset({"prefer_larger_lr", "damp_moves"})


class TunerConfig(BaseModel):
    """The configuration of one tuning job.

    Budget rule: when ``total_steps`` is set, ``tau_min`` and ``tau_max`` are scaled down by the
    same factor until ``min_stages`` whole stages (search included) fit in the budget after
    warmup and before the anneal (see `autolr.plan.stage_plan`); a budget too small for that gets
    as many stages as fit, at least one. With the defaults a 3000-step budget gives
    τ = 172, 344, 688 (3 stages, then the 1500-step anneal) instead of one and a half 1000-step
    stages.

    Example:
        >>> TunerConfig(min_lr=1e-4, max_lr=1e-1, total_steps=3000).probes_per_stage
        10
    """

    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)

    # LR range of the search. The paper leaves it to the user; the defaults span 5 decades,
    # wide enough for SGD (0.01-1) and Adam (1e-4-1e-2) alike.
    min_lr: float = Field(1e-5, gt=0, description="Smallest LR the search may try.")
    max_lr: float = Field(1.0, gt=0, description="Largest LR the search may try.")
    # Paper (Sec. 4): τ starts at 1000 steps and doubles up to τ_max = 8000.
    tau_min: int = Field(
        1000, ge=1, le=MAX_STEPS, description="Steps of the first stage's train segment."
    )
    tau_max: int = Field(
        8000, ge=1, le=MAX_STEPS, description="Largest stage length τ reaches by doubling."
    )
    # Paper and reference: k = 10 probes per stage, each τ' = τ/10 steps (search = training).
    probes_per_stage: int = Field(10, ge=1, le=100, description="Probes (k) per stage.")
    # ours: 0.05 instead of the paper's 0.1 keeps later stages' probes cheap under probe_budget
    probe_fraction: float = Field(0.05, gt=0, le=1, description="Probe length τ'/τ.")
    # AutoLRS pitfall 4: under 17 points the forecaster's outlier filter collapses.
    min_probe_steps: int = Field(20, ge=8, le=MAX_STEPS, description="Lower bound on τ' in steps.")
    # Budget scaling (ours): 3 stages (plus the anneal) leave the schedule room to adapt; more
    # stages on a small budget made every stage mostly probes.
    min_stages: int = Field(3, ge=1, le=64, description="Stages that must fit in total_steps.")
    total_steps: int | None = Field(
        None,
        ge=1,
        le=MAX_STEPS,
        description="Step budget, probe steps included; None runs stages forever.",
    )
    warmup_steps: int = Field(
        0, ge=0, le=MAX_STEPS, description="Steps of linear warmup before stage 0."
    )
    warmup_lr: float | None = Field(
        None, gt=0, description="LR at the end of warmup (ramp from min_lr); default √(min·max)."
    )
    # The user's objective is the validation loss: judged on it whenever the client can measure
    # it (see `LossSource`). The reference code used it only once τ ≥ τ_max, for its cost.
    loss_source: LossSource = Field("val-if-given", description="Loss the probes are judged on.")
    # Reference code: 16 evaluations per probe. At least 8: the forecaster fits ≥ 8 points.
    val_evals_per_probe: int = Field(16, ge=8, le=1000, description="Evaluations per val probe.")
    # LCB exploration weight (ours): κ ≈ 2 after 3 space-filling probes; the reference's κ=1e6
    # turned BO into a fixed grid (AutoLRS pitfall 1).
    kappa: float = Field(2.0, ge=0, le=100, description="LCB weight μ − κσ.")
    initial_probes: int = Field(3, ge=1, le=100, description="Space-filling probes per stage.")
    seed: int = Field(0, ge=0, lt=2**63, description="Seed of every random choice.")

    # ---- Beyond AutoLRS. Each option is off in `TunerConfig.autolrs()`; defaults per benchmark.
    # Defaults chosen by the ablation in benchmarks/quality (README, "Beyond AutoLRS").
    warm_start: bool = Field(
        True, description="Centre each later stage's search on the last chosen LR."
    )
    warm_start_decades: float = Field(
        1.0, gt=0, le=10, description="Half-width (decades) of a warm-started search region."
    )
    adaptive_probes: bool = Field(
        True, description="Stop a stage's search once the GP says more probes cannot help."
    )
    min_probes: int = Field(3, ge=1, le=100, description="Probes before an adaptive stop.")
    # The budget rule sizes stages for this many probes. With adaptive stopping, sizing for all
    # k probes made τ so short on small budgets that probes took over 40% of the steps.
    plan_probes: int | None = Field(
        None,
        ge=1,
        le=100,
        description="Probes per stage the budget rule plans for (default: k, or min_probes + 1 "
        "with adaptive_probes).",
    )
    stop_tolerance: float = Field(
        0.03, ge=0, le=1, description="Adaptive stop: relative improvement still worth a probe."
    )
    # What a probe is ranked by (autolr.policy): "final" ends each probe with a short cooldown
    # and ranks the loss the stage would reach if the run cooled down after it (its LR's noise
    # floor removed, as the final decay removes it); "horizon" is AutoLRS's constant-LR loss
    # forecast τ steps ahead, which favours small LRs (short-horizon bias, ../OBJECTIVE.md).
    objective: Objective = Field(
        "final", description="Probe ranking: 'final' (cooled forecast) or 'horizon' (AutoLRS)."
    )
    # Short probes on noisy losses give forecasts whose errors dwarf their differences; a GP
    # told nothing about that interpolates the noise (README, "Schedule quality").
    forecast_noise: bool = Field(
        True, description="Give the GP each forecast's variance (from its probe's loss noise)."
    )
    # A later stage's pick comes from a few short probes; the previous stage's LR has been
    # tested by a whole stage, and short probes drift: towards small LRs (their noise floor),
    # or with the noise. A move needs evidence (autolr.policy, Rule.HOLD_PREVIOUS; README).
    hold_moves: bool = Field(
        True,
        description="A later stage keeps the previous stage's LR unless its pick beats that "
        "LR's probe by 2 standard errors of their difference.",
    )
    reuse_best_probe: bool = Field(
        True, description="Train on from the best probe's end state instead of the snapshot."
    )
    # The paper's search takes as many steps as training (k·τ' = τ). A hard cap turns the
    # overhead into a promise a user can plan with; 0.15 kept the benchmark's quality (README).
    probe_budget: float | None = Field(
        0.15,
        gt=0,
        lt=1,
        description="Most share of total_steps that probes may take (needs total_steps); "
        "stage 0 always gets min_probes, later stages what is left (none: train on).",
    )
    anneal_fraction: float = Field(
        0.5,
        ge=0,
        lt=1,
        description="Final share of total_steps spent decaying the LR to ~0 (needs total_steps).",
    )

    @model_validator(mode="before")
    @classmethod
    def _drop_retired_fields(cls, data: object) -> object:
        """Configs stored before the stage policy (autolr.policy) still load: the rules that
        ``prefer_larger_lr`` and ``damp_moves`` switched were retired with it (README)."""
        if isinstance(data, dict) and RETIRED_FIELDS & data.keys():
            return {k: v for k, v in data.items() if k not in RETIRED_FIELDS}
        return data

    @model_validator(mode="after")
    def _check_combinations(self) -> Self:
        if self.min_lr >= self.max_lr:
            raise ValueError(
                f"min_lr={self.min_lr} must be smaller than max_lr={self.max_lr}; "
                "pass a range such as min_lr=1e-4, max_lr=1e-1"
            )
        if self.tau_min > self.tau_max:
            raise ValueError(f"tau_min={self.tau_min} must not exceed tau_max={self.tau_max}")
        if self.warmup_lr is not None and not self.min_lr <= self.warmup_lr <= self.max_lr:
            raise ValueError(
                f"warmup_lr={self.warmup_lr} must lie in [min_lr={self.min_lr}, "
                f"max_lr={self.max_lr}]"
            )
        if self.warmup_lr is not None and self.warmup_steps == 0:
            raise ValueError(
                f"warmup_lr={self.warmup_lr} has no effect with warmup_steps=0; "
                "set warmup_steps or drop warmup_lr"
            )
        if self.min_probes > self.probes_per_stage:
            raise ValueError(
                f"min_probes={self.min_probes} exceeds probes_per_stage={self.probes_per_stage}"
            )
        if self.total_steps is not None:
            from autolr.plan import minimum_budget

            if self.warmup_steps >= self.total_steps:
                raise ValueError(
                    f"warmup_steps={self.warmup_steps} leaves nothing of "
                    f"total_steps={self.total_steps}; warmup must be shorter than the budget"
                )
            need = minimum_budget(self)
            if self.total_steps < need:
                raise ValueError(
                    f"total_steps={self.total_steps} is too small for one stage of "
                    f"{self.planned_probes} probes of at least "
                    f"min_probe_steps={self.min_probe_steps} steps (plus warmup_steps="
                    f"{self.warmup_steps} and anneal_fraction={self.anneal_fraction}): need at "
                    f"least {need}; raise total_steps or lower "
                    "probes_per_stage / min_probe_steps"
                )
        return self

    @property
    def effective_warmup_lr(self) -> float:
        """LR at the end of warmup: ``warmup_lr`` or the geometric middle of the range."""
        if self.warmup_lr is not None:
            return self.warmup_lr
        return float((self.min_lr * self.max_lr) ** 0.5)

    @property
    def planned_probes(self) -> int:
        """Probes per stage that the budget rule (`autolr.plan`) plans for."""
        if self.plan_probes is not None:
            return min(self.plan_probes, self.probes_per_stage)
        if self.adaptive_probes:
            return min(self.min_probes + 1, self.probes_per_stage)
        return self.probes_per_stage

    @property
    def anneal_steps(self) -> int:
        """Steps of the final anneal segment (0 without a budget or an anneal)."""
        if self.total_steps is None or self.anneal_fraction == 0:
            return 0
        return round(self.anneal_fraction * (self.total_steps - self.warmup_steps))

    @classmethod
    def autolrs(cls, **fields: object) -> TunerConfig:
        """The paper's method as published: every option beyond AutoLRS switched off."""
        paper: dict[str, object] = {
            "warm_start": False,
            "adaptive_probes": False,
            "reuse_best_probe": False,
            "anneal_fraction": 0.0,
            "objective": "horizon",
            "loss_source": "auto",
            "forecast_noise": False,
            "hold_moves": False,
            "probe_budget": None,
            "probe_fraction": 0.1,
        }
        return cls.build(**{**paper, **fields})

    @classmethod
    def build(cls, **fields: object) -> TunerConfig:
        """Validate keyword fields, raising `ConfigError` (a ValueError) with every problem."""
        try:
            return cls.model_validate(fields)
        except ValidationError as exc:
            raise ConfigError(describe_validation_error(exc)) from None


def describe_validation_error(exc: ValidationError) -> str:
    """One readable line per problem: ``field=value: message``."""
    parts = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"]) or "config"
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            parts.append(f"{loc}: unknown field (check the spelling; see TunerConfig's fields)")
        elif "input" in err and err["loc"]:
            parts.append(f"{loc}={err['input']!r}: {msg}")
        else:
            parts.append(msg)
    return "invalid TunerConfig: " + "; ".join(parts)
