"""The controller as a whole: a job from start to finished, idempotence, conflicts, budget."""

from __future__ import annotations

import itertools
import json
import math
import random

import pytest

from autolr import Conflict, Controller, JobFinished, ReportError, TunerConfig
from autolr.protocol import Instruction, Report
from autolr.search import RandomSearcher
from autolr.simulate import NoisyQuadratic, run_job
from autolr.space import LogSpace

SMALL = {"min_lr": 1e-3, "max_lr": 3.0, "total_steps": 3000, "seed": 7}


def small_config(**overrides: object) -> TunerConfig:
    """The paper's method (every extension off): these tests check AutoLRS's stage structure."""
    return TunerConfig.autolrs(**{**SMALL, **overrides})


def fast(config: TunerConfig) -> Controller:
    """A controller with the random searcher: these tests check structure, not search quality
    (the GP searcher is exercised by test_simulation and the determinism tests)."""
    return Controller(config, searcher=RandomSearcher())


def test_a_whole_job_runs_to_finished_within_budget() -> None:
    ctl = Controller(small_config())
    run_job(ctl, NoisyQuadratic(seed=1))
    assert ctl.finished
    assert ctl.steps_used == 3000
    kinds = [s.kind for s in ctl.schedule]
    assert kinds[-1] == "train"
    assert len(ctl.stages) >= 3
    for stage in ctl.stages:
        assert len(stage.probes) == 10
        assert stage.chosen_lr is not None
        assert 1e-3 <= stage.chosen_lr <= 3.0
    # the chosen LR is one of the probed LRs
    for stage in ctl.stages:
        assert stage.chosen_lr in [p.lr for p in stage.probes]


def test_stage_structure_snapshot_probes_restore_train() -> None:
    ctl = fast(small_config())
    run_job(ctl, NoisyQuadratic(seed=1))
    sched = ctl.schedule
    i = 0
    while i < len(sched):
        stage = [s for s in sched if s.stage == sched[i].stage]
        probes = [s for s in stage if s.kind == "probe"]
        assert probes[0].snapshot and not probes[0].restore
        assert all(p.restore and not p.snapshot for p in probes[1:])
        train = [s for s in stage if s.kind == "train"]
        assert train and train[0].restore and not train[0].snapshot
        # a train segment longer than τ runs in chunks; each later one snapshots where it starts
        assert all(t.snapshot and not t.restore for t in train[1:])
        tau = ctl.stages[sched[i].stage].tau
        assert all(t.steps <= tau for t in train)
        i += len(stage)
    assert [s.segment for s in sched] == list(range(len(sched)))


def test_tau_doubles_across_stages() -> None:
    ctl = fast(small_config(total_steps=20_000, min_stages=4))
    run_job(ctl, NoisyQuadratic(seed=2))
    taus = [s.tau for s in ctl.stages]
    assert taus[:4] == [taus[0], 2 * taus[0], 4 * taus[0], 8 * taus[0]]


def test_duplicate_report_returns_the_same_instruction_and_changes_nothing() -> None:
    ctl = fast(small_config())
    first = ctl.start()
    rep = Report(segment=0, train_losses=[1.0 - 0.01 * i for i in range(first.steps)])
    second = ctl.report(rep)
    before = json.dumps(ctl.state_dict(), sort_keys=True)
    again = ctl.report(rep)
    assert again == second
    assert json.dumps(ctl.state_dict(), sort_keys=True) == before


def test_wrong_segment_is_a_conflict_naming_the_expected_one() -> None:
    ctl = fast(small_config())
    ctl.start()
    with pytest.raises(Conflict, match="expects segment 0") as info:
        ctl.report(Report(segment=3, train_losses=[1.0]))
    assert info.value.expected == 0 and info.value.got == 3


def test_report_must_fit_its_instruction() -> None:
    ctl = fast(small_config())
    first = ctl.start()
    with pytest.raises(ReportError, match="kind='train'"):
        ctl.report(Report(segment=0, train_losses=[1.0], kind="train"))
    with pytest.raises(ReportError, match=f"only steps={first.steps}"):
        ctl.report(Report(segment=0, train_losses=[1.0] * (first.steps + 1)))
    with pytest.raises(ReportError, match="no train_losses"):
        ctl.report(Report(segment=0, train_losses=[]))
    # nothing was applied: the right report still works
    ok = ctl.report(Report(segment=0, train_losses=[1.0] * first.steps))
    assert ok.segment == 1


def test_finished_is_absorbing() -> None:
    ctl = fast(small_config())
    run_job(ctl, NoisyQuadratic(seed=3))
    last = ctl.current
    assert last.finished and last.steps == 0
    with pytest.raises(JobFinished):
        ctl.report(Report(segment=last.segment, train_losses=[1.0]))
    dup = ctl.report(Report(segment=last.segment - 1, train_losses=[1.0]))
    assert dup == last


def test_divergent_probes_get_a_bounded_penalty_and_are_never_chosen() -> None:
    ctl = fast(small_config())
    ins = ctl.start()
    probes: list[Instruction] = []
    while ins.kind == "probe":
        probes.append(ins)
        if ins.lr > 0.3:  # large LRs diverge
            losses = [1.0 + i for i in range(ins.steps // 2)] + [math.nan]
        else:
            losses = [0.2 + 0.8 * math.exp(-0.05 * i * ins.lr * 10) for i in range(ins.steps)]
        ins = ctl.report(Report(segment=ins.segment, train_losses=losses))
    stage = ctl.stages[0]
    bad = [p for p in stage.probes if not p.ok]
    assert bad, "expected some divergent probes in the range"
    assert all(p.reason for p in bad)
    assert stage.chosen_lr is not None and stage.chosen_lr <= 0.3
    objectives = Controller._objectives(stage)
    finite = [p.forecast for p in stage.probes if p.ok and p.forecast is not None]
    assert max(objectives) <= max(finite) + 2 * (max(finite) - min(finite)) + 1e-9


def test_all_probes_diverging_falls_back_to_min_lr() -> None:
    ctl = fast(small_config())
    ins = ctl.start()
    while ins.kind == "probe":
        ins = ctl.report(Report(segment=ins.segment, train_losses=[math.inf] * 3))
    assert ins.kind == "train" and ins.lr == 1e-3


def test_warmup_comes_first_and_ramps() -> None:
    ctl = fast(small_config(warmup_steps=100, warmup_lr=0.1))
    first = ctl.start()
    assert (first.kind, first.lr, first.lr_end, first.steps) == ("warmup", 1e-3, 0.1, 100)
    assert first.lr_at(0) == 1e-3 and first.lr_at(99) == pytest.approx(0.1)
    nxt = ctl.report(Report(segment=0, train_losses=[1.0] * 100))
    assert nxt.kind == "probe" and nxt.snapshot


def test_extra_steps_count_against_the_budget() -> None:
    ctl = fast(small_config())
    model = NoisyQuadratic(seed=4)
    ins = ctl.start()
    ins = ctl.report(model.follow(ins).model_copy(update={"extra_steps": 37}))
    run_steps = 0
    while not ins.finished:
        rep = model.follow(ins)
        run_steps += len(rep.train_losses)
        ins = ctl.report(rep)
    assert ctl.steps_used == 3000
    assert run_steps == 3000 - 37 - ctl.schedule[0].steps


def test_state_dict_is_json_and_rejects_garbage() -> None:
    ctl = fast(small_config())
    ctl.start()
    text = json.dumps(ctl.state_dict(), allow_nan=False)
    assert Controller.from_state_dict(json.loads(text)).current == ctl.current
    with pytest.raises(ReportError, match="not a valid controller state"):
        Controller.from_state_dict({"format": 1})


def test_val_loss_source_asks_for_evaluations() -> None:
    ctl = fast(small_config(loss_source="val"))
    first = ctl.start()
    assert first.eval_every == max(1, first.steps // 16)


def test_by_default_probes_are_judged_on_the_validation_loss_when_one_is_reported() -> None:
    """The objective is the validation loss: every stage asks for it, and a probe reported
    without it (a client without ``val_fn``) is judged on its training loss instead."""
    ctl = Controller(TunerConfig(**SMALL), searcher=RandomSearcher())
    run_job(ctl, NoisyQuadratic(seed=1))
    assert ctl.finished and ctl.stages
    assert all(s.source == "val" for s in ctl.stages)
    probes = [p for s in ctl.stages for p in s.probes]
    assert probes and all(p.source == "val" for p in probes)
    asked = [s for s in ctl.schedule if s.kind in ("probe", "anneal")]
    assert asked and all(s.eval_every is not None for s in asked)

    blind = Controller(TunerConfig(**SMALL), searcher=RandomSearcher())
    inst = blind.start()
    while inst.kind == "probe" and not blind.stages[0].probes:
        inst = blind.report(
            Report(segment=inst.segment, train_losses=[1.0 - 0.01 * i for i in range(inst.steps)])
        )
    assert blind.stages[0].probes[0].source == "train"


def test_auto_uses_val_only_once_probes_are_long() -> None:
    ctl = fast(small_config(total_steps=20_000, loss_source="auto", min_stages=4))
    run_job(ctl, NoisyQuadratic(seed=5))
    sources = [(s.tau, s.source) for s in ctl.stages]
    tau_max = ctl.plan.tau_max
    assert all(src == ("val" if tau == tau_max else "train") for tau, src in sources)
    val_probes = [p for s in ctl.stages if s.source == "val" for p in s.probes]
    assert val_probes and all(p.source == "val" for p in val_probes)


def test_anneal_ends_the_budget_with_a_linear_decay() -> None:
    ctl = fast(small_config(anneal_fraction=0.2))
    run_job(ctl, NoisyQuadratic(seed=6))
    last = ctl.schedule[-1]
    assert last.kind == "anneal" and not last.restore
    assert last.steps == round(0.2 * 3000)
    assert last.lr == ctl.stages[-1].chosen_lr
    assert last.lr_end == pytest.approx(last.lr * 1e-3)
    assert last.lr_at(last.steps - 1) == pytest.approx(last.lr_end)
    assert ctl.steps_used == 3000
    assert sum(s.steps for s in ctl.schedule if s.kind == "anneal") == 600


def test_without_a_budget_there_is_no_anneal() -> None:
    cfg = TunerConfig(anneal_fraction=0.2)
    assert cfg.anneal_steps == 0
    assert TunerConfig(anneal_fraction=0.2, total_steps=10_000).anneal_steps == 2000


def test_reuse_best_probe_keeps_its_state_and_saves_its_steps() -> None:
    ctl = fast(small_config(reuse_best_probe=True))
    run_job(ctl, NoisyQuadratic(seed=1))
    for stage in ctl.stages:
        train = next(s for s in ctl.schedule if s.stage == stage.stage and s.kind == "train")
        probes = [s for s in ctl.schedule if s.stage == stage.stage and s.kind == "probe"]
        if stage.reused_probe is None:
            assert train.restore and not train.restore_best
            continue
        assert stage.chosen_probe == stage.reused_probe
        if stage.reused_probe == len(stage.probes) - 1:  # trains on from the last probe
            assert not train.restore and not train.restore_best
        else:  # the best probe's state was saved right after it ran
            assert train.restore_best and not train.restore
            assert probes[stage.reused_probe + 1].save_best
        if train.steps == stage.tau - stage.probe_steps:
            assert train.steps < stage.tau
    assert any(s.reused_probe is not None for s in ctl.stages)


def test_paper_preset_switches_every_extension_off() -> None:
    cfg = TunerConfig.autolrs(total_steps=3000)
    assert not (cfg.warm_start or cfg.adaptive_probes or cfg.reuse_best_probe)
    assert cfg.anneal_fraction == 0 and cfg.objective == "horizon" and not cfg.hold_moves


def test_warm_start_searches_around_the_last_chosen_lr() -> None:
    cfg = TunerConfig(
        min_lr=1e-4, max_lr=10.0, total_steps=6000, seed=3, warm_start=True, probe_budget=None
    )
    ctl = fast(cfg)
    run_job(ctl, NoisyQuadratic(seed=3))
    assert ctl.stages[0].bounds == (0.0, 1.0)
    for prev, stage in itertools.pairwise(ctl.stages):
        assert prev.chosen_lr is not None
        lo, hi = stage.bounds
        # ±1 decade of a 5-decade range around the previous choice
        centre = ctl.space.to_unit(prev.chosen_lr)
        assert lo == pytest.approx(max(0.0, centre - 0.2)) and hi == pytest.approx(
            min(1.0, centre + 0.2)
        )
        assert stage.probes[0].lr == pytest.approx(prev.chosen_lr)
        assert all(lo - 1e-9 <= p.x_unit <= hi + 1e-9 for p in stage.probes)


class _NoGainSearcher(RandomSearcher):
    """A searcher whose model says no further probe can help (a Searcher test double)."""

    def decide(
        self,
        x_unit: list[float],
        y: list[float],
        *,
        seed: int,
        bounds: tuple[float, float],
        noise: list[float] | None = None,
    ) -> tuple[float, float]:
        return self.propose(x_unit, y, seed=seed, bounds=bounds, noise=noise), 0.0


def test_adaptive_probes_stop_once_the_searcher_sees_no_gain() -> None:
    cfg = small_config(adaptive_probes=True, min_probes=3)
    ctl = Controller(cfg, searcher=_NoGainSearcher())
    run_job(ctl, NoisyQuadratic(seed=2))
    assert all(len(s.probes) == 3 and s.stopped_early for s in ctl.stages)
    # without the option the same searcher runs every probe
    ctl = Controller(small_config(), searcher=_NoGainSearcher())
    run_job(ctl, NoisyQuadratic(seed=2))
    assert all(len(s.probes) == 10 and not s.stopped_early for s in ctl.stages)


def _probe_share(ctl: Controller) -> float:
    probes = sum(seg.steps_run for seg in ctl.segments if seg.instruction.kind == "probe")
    return probes / ctl.config.total_steps  # type: ignore[operator]


@pytest.mark.parametrize("budget", [0.05, 0.1, 0.15, 0.3])
@pytest.mark.parametrize("total", [1500, 4000, 20_000])
def test_probe_budget_caps_the_share_of_steps_spent_probing(budget: float, total: int) -> None:
    cfg = TunerConfig(
        min_lr=1e-4,
        max_lr=10.0,
        total_steps=total,
        seed=1,
        probe_budget=budget,
        adaptive_probes=False,
    )
    ctl = fast(cfg)
    run_job(ctl, NoisyQuadratic(seed=1))
    assert ctl.steps_used == total
    stage0 = ctl.stages[0]
    # stage 0's guaranteed minimum is the only thing allowed past the cap
    floor = cfg.min_probes * stage0.probe_steps / total
    assert _probe_share(ctl) <= max(budget, floor) + 1e-9
    # the budget is spent, not left idle: without adaptive stopping it is nearly used up
    # (within one probe per stage of what the plan reserves)
    slack = sum(s.probe_steps for s in ctl.stages) / total
    assert _probe_share(ctl) >= min(budget, floor) - slack
    assert len(stage0.probes) >= cfg.min_probes


def test_a_stage_without_probe_budget_trains_on_at_the_last_lr() -> None:
    cfg = TunerConfig(
        min_lr=1e-4,
        max_lr=10.0,
        total_steps=20_000,
        seed=2,
        probe_budget=0.02,
        adaptive_probes=False,
    )
    ctl = fast(cfg)
    run_job(ctl, NoisyQuadratic(seed=2))
    bare = [s for s in ctl.stages if not s.probes]
    assert bare, "a 2% budget must leave some stages without a search"
    for stage in bare:
        prev = ctl.stages[stage.stage - 1]
        assert stage.chosen_lr == prev.chosen_lr
        train = [s for s in ctl.schedule if s.stage == stage.stage and s.kind == "train"]
        assert train and not any(s.restore or s.restore_best for s in train)
    # the paper preset has no cap: every stage searches
    ctl = fast(TunerConfig.autolrs(min_lr=1e-4, max_lr=10.0, total_steps=20_000, seed=2))
    run_job(ctl, NoisyQuadratic(seed=2))
    assert all(s.probes for s in ctl.stages)
    assert _probe_share(ctl) > 0.3


def test_a_diverged_train_segment_is_retrained_from_the_snapshot_at_a_safer_lr() -> None:
    ctl = fast(small_config())
    model = NoisyQuadratic(seed=3)
    inst = ctl.start()
    while inst.kind != "train":
        inst = ctl.report(model.follow(inst))
    stage = ctl.stages[-1]
    failed, planned = inst.lr, inst.steps
    used = ctl.steps_used
    # the segment blows up at its 5th step
    retry = ctl.report(Report(segment=inst.segment, train_losses=[1.0, 1.0, 1.0, 1.0, math.nan]))
    assert retry.kind == "train" and retry.restore and retry.stage == stage.stage
    healthy_below = [
        p
        for p in stage.probes
        if p.ok and p.forecast is not None and failed / 10 <= p.lr <= failed / 3
    ]
    if healthy_below:  # the smallest step down a probe showed to be healthy
        assert retry.lr == max(p.lr for p in healthy_below)
    else:  # never more than a decade down
        assert retry.lr == pytest.approx(max(ctl.config.min_lr, failed / 10))
    assert retry.steps == planned and ctl.steps_used == used + 5
    assert ctl.stages[-1].diverged_lrs == [failed] and ctl.stages[-1].chosen_lr == retry.lr
    # a second and a third failure: one more rollback, then the job moves on
    again = ctl.report(Report(segment=retry.segment, train_losses=[math.inf]))
    assert again.kind == "train" and again.restore and again.lr < retry.lr
    moved_on = ctl.report(Report(segment=again.segment, train_losses=[math.nan]))
    assert moved_on.kind != "train" or not moved_on.restore
    assert len(ctl.stages[-1 if moved_on.stage == stage.stage else -2].diverged_lrs) == 2
    # and the job still ends exactly on budget
    inst = moved_on
    while not inst.finished:
        inst = ctl.report(model.follow(inst))
    assert ctl.steps_used == ctl.config.total_steps


def test_a_loss_far_above_the_stages_start_counts_as_divergence_too() -> None:
    ctl = fast(small_config())
    model = NoisyQuadratic(seed=4)
    inst = ctl.start()
    while not (inst.kind == "train" and inst.stage == 1):  # stage 1 knows its loss spread
        inst = ctl.report(model.follow(inst))
    stage = ctl.stages[-1]
    assert stage.baseline is not None and stage.baseline_spread > 0
    high = stage.baseline + 3 * stage.baseline_spread
    retry = ctl.report(Report(segment=inst.segment, train_losses=[high] * 10))
    assert retry.restore and ctl.stages[-1].diverged_lrs == [inst.lr]
    # a healthy segment is not rolled back
    fine = ctl.report(model.follow(retry))
    assert not (fine.kind == "train" and fine.restore and fine.stage == stage.stage)


def test_a_stage_never_trains_within_3x_of_an_lr_whose_probe_diverged() -> None:
    """Larger LRs look better until they diverge: the edge of stability is not trained at."""
    threshold = 0.5
    ctl = fast(small_config())
    inst = ctl.start()
    while not inst.finished:
        n = max(inst.steps, 1)
        if inst.kind == "probe" and inst.lr >= threshold:
            losses = [1.0, 2.0, math.nan]
        else:  # faster progress the larger the LR
            losses = [1.0 - 0.5 * min(inst.lr, 1.0) * (1 - math.exp(-i / 5)) for i in range(n)]
        inst = ctl.report(Report(segment=inst.segment, train_losses=losses[: inst.steps]))
    constrained = 0
    for stage in ctl.stages:
        failed = [p.lr for p in stage.probes if not p.ok]
        safe = [p.lr for p in stage.probes if p.ok and 3 * p.lr <= min(failed, default=math.inf)]
        if failed and safe:
            assert stage.chosen_lr is not None and 3 * stage.chosen_lr <= min(failed)
            healthy = [p.lr for p in stage.probes if p.ok]
            constrained += max(healthy) > max(safe)
    assert constrained, "no stage had a healthy probe near a diverged one; the test proves nothing"


def test_a_train_segment_whose_loss_climbs_back_up_is_rolled_back() -> None:
    """No NaN anywhere: the loss falls, then climbs back to the stage's start (dead units)."""
    ctl = fast(small_config())
    model = NoisyQuadratic(seed=5)
    inst = ctl.start()
    while inst.kind != "train":  # stage 0: no earlier segment, so no loss-noise reference
        inst = ctl.report(model.follow(inst))
    stage = ctl.stages[-1]
    assert stage.baseline is not None and stage.baseline_spread == 0
    n = inst.steps
    start = stage.baseline
    low = start - 0.5 * abs(start) - 1.0
    losses = [low] * (n // 2) + [start] * (n - n // 2)  # wrecked half-way
    retry = ctl.report(Report(segment=inst.segment, train_losses=losses))
    assert retry.kind == "train" and retry.restore and ctl.stages[-1].diverged_lrs == [inst.lr]
    # the same segment falling and staying down is healthy
    ctl2, model2 = fast(small_config()), NoisyQuadratic(seed=5)
    inst2 = ctl2.start()
    while inst2.kind != "train":
        inst2 = ctl2.report(model2.follow(inst2))
    assert ctl2.stages[-1].baseline == start
    nxt = ctl2.report(Report(segment=inst2.segment, train_losses=[start] * 5 + [low] * (n - 5)))
    assert nxt.kind == "probe" and ctl2.stages[-2].diverged_lrs == []


@pytest.mark.parametrize(
    ("ok", "reason", "blew_up"),
    [
        (True, "", False),
        (False, "rising loss", False),  # a flat, noisy series: no sign of instability
        (False, "too few points (5 < 8)", False),
        (False, "non-finite loss", True),
        (False, "non-finite training loss", True),
        (False, "exploding loss (12.5 > 3.1)", True),
    ],
)
def test_only_probes_that_blew_up_set_the_stability_margin(
    ok: bool, reason: str, blew_up: bool
) -> None:
    from autolr.controller import ProbeRecord, _blew_up

    probe = ProbeRecord(probe=0, lr=0.1, x_unit=0.5, steps=20, source="train", ok=ok, reason=reason)
    assert _blew_up(probe) is blew_up


def _to_stage_1_train(seed: int) -> tuple[Controller, Instruction]:
    """A controller whose stage 0 trained down a steep, low-noise descent; at stage 1's train."""
    ctl = fast(small_config())
    inst = ctl.start()
    rng = iter(itertools.cycle([0.01, -0.01, 0.005, -0.005]))
    while not (inst.kind == "train" and inst.stage == 1):
        n = max(inst.steps, 1)
        # steep descent (range 1.0 per segment) with tiny step-to-step noise
        losses = [3.0 - i / n + next(rng) for i in range(n)]
        inst = ctl.report(Report(segment=inst.segment, train_losses=losses[: inst.steps]))
    return ctl, inst


def test_the_rollback_margin_is_step_noise_not_the_range_of_a_steep_descent() -> None:
    """A model that goes back to where the stage started is rolled back, however steep the
    descent before it was (its range used to set the margin: a dead model passed)."""
    ctl, inst = _to_stage_1_train(seed=0)
    stage = ctl.stages[-1]
    assert stage.baseline_spread > 0.9 and stage.baseline_noise < 0.05
    n = inst.steps
    start = stage.baseline
    assert start is not None
    # falls by 0.3, then climbs back 0.2 above where the stage started: within twice the range
    # of the segment before (the old margin), many step-noise levels above the stage's best
    low, high = start - 0.3, start + 0.2
    losses = [low] * (n // 2) + [high] * (n - n // 2)
    chosen = stage.probes[stage.chosen_probe or 0]
    promised = start - (chosen.forecast or start)
    assert high - min(low, chosen.last_loss or low) > 0.5 * promised, "the test proves nothing"
    retry = ctl.report(Report(segment=inst.segment, train_losses=losses))
    assert retry.kind == "train" and retry.restore and ctl.stages[-1].diverged_lrs == [inst.lr]


def test_a_noisy_flat_train_segment_is_not_rolled_back() -> None:
    """Noise of the size the segment before showed, around a flat loss, is not divergence."""
    ctl, inst = _to_stage_1_train(seed=0)
    stage = ctl.stages[-1]
    start, noise = stage.baseline, stage.baseline_noise
    assert start is not None and noise > 0
    chosen = stage.probes[stage.chosen_probe or 0]
    level = min(start, chosen.last_loss or start)
    wobble = [2.0, -2.0, 1.0, -1.0, 0.5, -0.5]  # in noise SDs: up to 2 SDs either side
    losses = [level + noise * wobble[i % len(wobble)] for i in range(inst.steps)]
    nxt = ctl.report(Report(segment=inst.segment, train_losses=losses))
    assert not (nxt.kind == "train" and nxt.restore and nxt.stage == 1)
    assert ctl.stages[1].diverged_lrs == []


def test_step_noise_ignores_the_trend_and_a_spike() -> None:
    import random

    from autolr.policy import step_noise as _step_noise

    assert _step_noise([10.0 - 0.1 * i for i in range(100)]) == pytest.approx(0.0, abs=1e-12)
    rng = random.Random(0)
    noisy = [10.0 - 0.01 * i + rng.gauss(0.0, 0.2) for i in range(2000)]
    noisy[500] = 1e6  # a spike
    assert _step_noise(noisy) == pytest.approx(0.2, rel=0.1)
    assert _step_noise([1.0, 2.0, math.nan]) == 0.0


def test_a_rollback_steps_down_at_most_a_decade() -> None:
    """The only healthy probe below the failed LR is 1000x smaller: the retry takes a tenth of
    the failed LR, not that probe (training there stalled a whole run)."""

    class Scripted:
        """Probes the given LRs in order and trains with the middle one."""

        def __init__(self, space: LogSpace, lrs: list[float]) -> None:
            self.units = [space.to_unit(lr) for lr in lrs]

        def propose(self, x_seen: list[float], y: list[float], **_: object) -> float:
            return self.units[len(x_seen)]

        def choose(self, x_unit: list[float], y: list[float], **_: object) -> int:
            return sorted(range(len(x_unit)), key=lambda i: x_unit[i])[1]

    cfg = small_config(min_lr=1e-6, max_lr=10.0, probes_per_stage=3)
    ctl = Controller(cfg, searcher=Scripted(LogSpace(1e-6, 10.0), [1e-5, 1e-2, 3.0]))
    inst = ctl.start()
    while inst.kind == "probe":
        losses = [1.0 - 0.01 * i for i in range(inst.steps)]
        inst = ctl.report(Report(segment=inst.segment, train_losses=losses))
    assert inst.kind == "train" and inst.lr == pytest.approx(1e-2)
    retry = ctl.report(Report(segment=inst.segment, train_losses=[1.0, math.nan]))
    assert retry.restore and retry.lr == pytest.approx(1e-3)


def test_a_late_divergence_rolls_back_one_chunk_not_the_stage() -> None:
    """The last stage trains far longer than τ, in chunks that snapshot where they start: a
    divergence in a later chunk retrains that chunk at a safer LR; the chunks before stay."""
    ctl = fast(TunerConfig(**{**SMALL, "total_steps": 6000}))  # defaults: the anneal and all
    model = NoisyQuadratic(seed=6)
    inst = ctl.start()
    chunks: list[Instruction] = []
    while not inst.finished:
        stage = ctl.stages[-1] if ctl.stages else None
        if inst.kind == "train" and stage is not None and inst.snapshot and stage.probes:
            chunks.append(inst)
            # a later chunk is judged against the chunk before: its tail mean and that mean's
            # standard error, slow wobble included (never the running chunk's own)
            before = ctl.segments[-1]
            assert stage.chunk_baseline == before.loss_last
            assert stage.chunk_error == before.loss_last_error and stage.chunk_error > 0
            if len(chunks) == 1:  # the first later chunk blows up half-way
                failed, used = inst, ctl.steps_used
                losses = [*model.follow(inst).train_losses[: inst.steps // 2], math.nan]
                inst = ctl.report(Report(segment=inst.segment, train_losses=losses))
                assert inst.kind == "train" and inst.restore and not inst.snapshot
                assert inst.lr < failed.lr and inst.stage == failed.stage
                assert inst.steps == failed.steps  # the chunk again, not the whole stage
                assert ctl.steps_used == used + len(losses)
                assert ctl.stages[-1].diverged_lrs == [failed.lr]
                continue
        inst = ctl.report(model.follow(inst))
    assert chunks, "no stage ran in chunks; the test proves nothing"
    assert all(c.steps <= ctl.stages[c.stage].tau for c in chunks)
    assert ctl.steps_used == 6000


def _stage_with_probes(
    stage: int,
    baseline: float,
    probes: list[tuple[float, float, float]],
    searcher: RandomSearcher | None = None,
):
    """A controller holding one stage whose probes are (lr, forecast, per-step noise)."""
    from autolr.controller import ProbeRecord, StageRecord

    ctl = Controller(TunerConfig(**SMALL), searcher=searcher or RandomSearcher())
    record = StageRecord(
        stage=stage, tau=200, probe_steps=20, start_step=0, source="train", baseline=baseline
    )
    for i, (lr, forecast, noise) in enumerate(probes):
        record.probes.append(
            ProbeRecord(
                probe=i,
                lr=lr,
                x_unit=ctl.space.to_unit(lr),
                steps=20,
                source="train",
                ok=True,
                forecast=forecast,
                noise=noise,
            )
        )
    return ctl, record


class _FirstChoiceSearcher(RandomSearcher):
    """A searcher whose model prefers the first observation (a Searcher test double: a GP that
    interpolates noisy forecasts can put its minimum at any probe)."""

    def choose(self, x_unit: list[float], y: list[float], **_: object) -> int:
        return 0


def test_a_probe_whose_loss_spikes_counts_as_blown_up() -> None:
    from autolr.controller import _blew_up
    from autolr.policy import spiked as _spiked

    calm = [2.3 - 0.01 * i + (0.02 if i % 2 else -0.02) for i in range(40)]
    assert not _spiked(calm)
    spiky = list(calm)
    spiky[5], spiky[11] = 207.9, 1864.8  # seen: SGD at LR 1.0 on the digits CNN
    assert _spiked(spiky)
    ctl = fast(small_config())
    inst = ctl.start()
    inst = ctl.report(Report(segment=inst.segment, train_losses=spiky[: inst.steps]))
    probe = ctl.stages[0].probes[0]
    assert not probe.ok and "exploding" in probe.reason and _blew_up(probe)


def _stage_0_train(probe_end: float) -> tuple[Controller, Instruction]:
    """Stage 0 of a controller whose probes all fall from 2.32 to ``probe_end``; at its train."""
    ctl = fast(small_config())
    inst = ctl.start()
    while inst.kind == "probe":
        n = inst.steps
        losses = [2.32 - (2.32 - probe_end) * i / (n - 1) for i in range(n)]
        inst = ctl.report(Report(segment=inst.segment, train_losses=losses))
    return ctl, inst


def _wobble(values: list[float], size: float = 0.1) -> list[float]:
    return [v + (size if i % 2 else -size) for i, v in enumerate(values)]


def test_a_segment_that_gives_back_more_than_half_its_progress_is_rolled_back() -> None:
    """Down from 2.32 to 1.7, then back at chance level: within the margin above where the
    chosen probe ended (2.11), but it gave back all it made."""
    ctl, inst = _stage_0_train(probe_end=2.11)
    n = inst.steps
    half = n // 2
    down = [2.32 - 0.62 * i / (half - 1) for i in range(half)]
    losses = _wobble(down + [2.33] * (n - half))
    retry = ctl.report(Report(segment=inst.segment, train_losses=losses))
    assert retry.kind == "train" and retry.restore and ctl.stages[0].diverged_lrs == [inst.lr]


def test_a_noisy_descent_that_keeps_its_progress_is_not_rolled_back() -> None:
    ctl, inst = _stage_0_train(probe_end=2.11)
    n = inst.steps
    half = n // 2
    down = [2.32 - 0.62 * i / (half - 1) for i in range(half)]
    losses = _wobble(down + [1.8] * (n - half))  # gave back 0.1 of 0.62
    nxt = ctl.report(Report(segment=inst.segment, train_losses=losses))
    assert not (nxt.kind == "train" and nxt.restore) and ctl.stages[0].diverged_lrs == []


def test_no_rollback_at_min_lr_there_is_nothing_safer() -> None:
    ctl, inst = _stage_0_train(probe_end=2.11)
    failed = inst.model_copy(update={"lr": ctl.config.min_lr, "lr_end": ctl.config.min_lr})
    ctl._state.current = failed  # type: ignore[union-attr]  # trained at the range's bottom
    nxt = ctl.report(Report(segment=inst.segment, train_losses=[2.3, math.nan]))
    assert not (nxt.kind == "train" and nxt.restore) and ctl.stages[0].diverged_lrs == []


class _RecordingSearcher(RandomSearcher):
    """Remembers the noise variances ``choose`` was given (a Searcher test double)."""

    def __init__(self) -> None:
        super().__init__()
        self.noise: list[float] | None = None

    def choose(
        self, x_unit: list[float], y: list[float], *, noise: list[float] | None = None
    ) -> int:
        self.noise = noise
        return super().choose(x_unit, y, noise=noise)


@pytest.mark.parametrize("forecast_noise", [True, False])
def test_the_searcher_is_told_each_forecasts_variance(forecast_noise: bool) -> None:
    """Variances in the searcher's normalized units: (standard error / forecast range)²,
    the standard error being the probe's per-step noise over sqrt(steps / 4)."""
    probes = [(0.001, 0.50, 0.1), (0.01, 0.40, 0.2), (0.1, 0.90, 0.0)]
    searcher = _RecordingSearcher()
    ctl, stage = _stage_with_probes(0, 1.0, probes, searcher=searcher)
    ctl.config = ctl.config.model_copy(update={"forecast_noise": forecast_noise})
    ctl._decide(stage)
    if not forecast_noise:
        assert searcher.noise is None
        return
    se = [noise / math.sqrt(20 / 4) for _, _, noise in probes]
    assert searcher.noise == pytest.approx([(e / 0.5) ** 2 for e in se])


class _LegacySearcher:
    """A third-party searcher written before ``noise=`` joined the Searcher protocol."""

    def __init__(self) -> None:
        self.calls = 0

    def propose(
        self, x_unit: list[float], y: list[float], *, seed: int, bounds: tuple[float, float]
    ) -> float:
        self.calls += 1
        lo, hi = bounds
        return lo + (hi - lo) * ((seed % 997) / 997)

    def choose(self, x_unit: list[float], y: list[float]) -> int:
        self.calls += 1
        return min(range(len(y)), key=lambda i: y[i])


def test_a_searcher_without_the_noise_keyword_still_decides() -> None:
    """It gets the forecasts alone: no decision falls back to random search for a TypeError."""
    searcher = _LegacySearcher()
    ctl = Controller(TunerConfig(**SMALL), searcher=searcher)  # type: ignore[arg-type]
    run_job(ctl, NoisyQuadratic(seed=3))
    assert ctl.finished and searcher.calls > 0
    assert all(not s.search_fallbacks for s in ctl.stages)


def test_a_final_objective_probe_is_a_constant_part_then_a_cooldown_tail() -> None:
    """Each probe ends with a linear cooldown to ~0: its drop is the floor that LR leaves,
    which the final decay removes, so the search ranks the forecast less that drop."""
    ctl = Controller(TunerConfig(**SMALL))
    run_job(ctl, NoisyQuadratic(seed=1))
    assert ctl.finished and ctl.steps_used == 3000
    for stage in ctl.stages:
        segments = [s for s in ctl.schedule if s.stage == stage.stage and s.kind == "probe"]
        for i, p in enumerate(stage.probes):
            parts = [s for s in segments if s.probe == i]
            if not p.ok and len(parts) == 1:
                continue  # a probe that failed in its constant part gets no tail
            constant, tail = parts
            assert constant.lr == constant.lr_end == tail.lr
            assert tail.lr_end == pytest.approx(tail.lr * 1e-3)
            assert not (tail.restore or tail.snapshot)
            assert constant.steps + tail.steps == stage.probe_steps
            if p.ok:
                assert p.drop is not None and p.level is not None
                assert p.objective == pytest.approx(p.forecast - p.drop)
        # every stage that searched records the rule that set its LR, with the evidence
        decision = stage.decision
        assert decision is not None and decision.lr == stage.chosen_lr
        if stage.probes:
            assert len(decision.evidence) == len(stage.probes)
    first_train = [s for s in ctl.schedule if s.kind == "train" and s.decision]
    assert first_train and all(": lr=" in s.decision for s in first_train if s.decision)


def test_a_validation_loss_stage_cools_its_probes_on_the_validation_loss() -> None:
    """With ``loss_source="val"`` the tail asks for one evaluation at its end; the drop is
    the fitted validation level less that cooled validation loss."""
    ctl = Controller(TunerConfig(**{**SMALL, "loss_source": "val", "min_probe_steps": 40}))
    run_job(ctl, NoisyQuadratic(seed=1))
    assert ctl.finished
    tails = [s for s in ctl.schedule if s.kind == "probe" and s.lr_end < s.lr]
    assert tails and all(s.eval_every == s.steps for s in tails)
    probes = [p for st in ctl.stages for p in st.probes if p.ok]
    assert probes and all(p.source == "val" and p.drop is not None for p in probes)


def test_the_paper_preset_probes_at_a_constant_lr_without_tails() -> None:
    ctl = fast(small_config())
    run_job(ctl, NoisyQuadratic(seed=1))
    probes = [s for s in ctl.schedule if s.kind == "probe"]
    assert all(s.lr == s.lr_end and s.steps == ctl.stages[s.stage].probe_steps for s in probes)
    assert all(p.drop is None for st in ctl.stages for p in st.probes)


def test_a_later_stage_holds_the_previous_lr_unless_its_pick_beats_it() -> None:
    """Seen on the teacher task: without holding, later stages' short probes walked the LR
    down 10x (5 seeds 0.083 -> 0.160). A move down needs 2 standard errors of evidence; a
    move up follows the search."""
    cases = [
        (0.03, 0.1, 0.03, "hold-previous"),
        (0.03, 0.001, 0.01, "search-best"),
        (0.003, 0.1, 0.01, "search-best"),  # up from 0.003: no evidence needed
    ]
    for previous, noise, expected, rule in cases:
        probes = [(0.03, 0.50, noise), (0.01, 0.48, noise), (0.3, 0.90, noise)]
        if previous not in (0.03, 0.01):
            probes.append((previous, 0.50, noise))
        ctl, stage = _stage_with_probes(1, 0.52, probes, searcher=_FirstBestSearcher())
        ctl.start()
        state = ctl._require_started()
        state.previous_lr = previous  # stage 0 chose it; ``stage`` is the latest one
        state.stage = stage
        instruction = ctl._train_instruction(0, stage)
        assert stage.chosen_lr == pytest.approx(expected) == instruction.lr
        assert stage.decision is not None and stage.decision.rule.value == rule
        assert instruction.decision is not None and instruction.decision.startswith(rule)


class _FirstBestSearcher(RandomSearcher):
    """Chooses the raw argmin (the GP's mean would too, on three well-separated probes)."""

    def choose(
        self, x_unit: list[float], y: list[float], *, noise: list[float] | None = None
    ) -> int:
        return min(range(len(y)), key=lambda i: y[i])


def test_a_state_stored_with_retired_options_still_loads() -> None:
    ctl = Controller(TunerConfig(**SMALL))
    ctl.start()
    state = ctl.state_dict()
    state["config"] = {**state["config"], "prefer_larger_lr": 0.3, "damp_moves": True}
    restored = Controller.from_state_dict(state)
    assert restored.current == ctl.current


def test_losses_near_the_float_limit_never_break_the_search() -> None:
    """A probe of 1e308 losses (finite, but their range overflows) once made every normalized
    outcome NaN and the search raise out of ``report``; the job must go on deciding."""
    ctl = Controller(TunerConfig(**SMALL))
    ins = ctl.start()
    for i in range(60):
        if ins.finished:
            break
        losses = [1e308 if i % 2 == 0 else 1.0 - 0.01 * k for k in range(ins.steps)]
        ins = ctl.report(Report(segment=ins.segment, train_losses=losses))
    assert ins.segment >= 40 or ins.finished
    assert all(not s.search_fallbacks for s in ctl.stages)


def test_the_forecast_horizon_is_the_rest_of_the_budget_or_grows_with_the_run() -> None:
    """ "final": the steps left before the final decay (the stage's LR is the peak of the rest);
    without a budget, as many steps as have run so far (at least τ); "horizon": τ."""
    from autolr.controller import StageRecord

    def horizon(config: TunerConfig, start: int, tau: int = 200) -> int:
        stage = StageRecord(stage=1, tau=tau, probe_steps=20, start_step=start, source="train")
        return Controller(config)._horizon(stage)

    budget = TunerConfig(**SMALL)  # 3000 steps, the last 1500 decaying
    assert horizon(budget, 500) == 3000 - 500 - budget.anneal_steps
    assert horizon(budget, 1400) == 200  # never shorter than the stage itself
    open_ended = TunerConfig(**{**SMALL, "total_steps": None})
    assert horizon(open_ended, 100) == 200 and horizon(open_ended, 5000) == 5000
    assert horizon(TunerConfig(**SMALL, objective="horizon"), 500) == 200


def test_stage_0_starts_from_the_mean_of_its_probes_first_losses() -> None:
    """Without a segment before it, stage 0's start is estimated from every probe's first loss
    (each measured at the snapshot's weights before an update), with its standard error; a
    single step's loss was as noisy as the task and made every probe look like a rise."""
    ctl = fast(small_config())
    model = NoisyQuadratic(seed=3)
    inst = ctl.start()
    firsts: list[float] = []
    while inst.kind != "train":
        report = model.follow(inst)
        if inst.kind == "probe" and not ctl.stages[-1].pending:
            firsts.append(report.train_losses[0])
        inst = ctl.report(report)
    stage = ctl.stages[0]
    assert len(firsts) == len(stage.probes) >= 2
    assert stage.baseline == pytest.approx(sum(firsts) / len(firsts))
    noises = sorted(p.noise or 0.0 for p in stage.probes)
    assert stage.baseline_error == pytest.approx(noises[len(noises) // 2] / math.sqrt(len(firsts)))
    # a later stage's start is the previous segment's tail mean, its error from that window
    while inst.kind == "train" or ctl.stages[-1].stage == 0:
        inst = ctl.report(model.follow(inst))
    later, before = ctl.stages[-1], ctl.segments[-1]
    assert later.baseline == before.loss_last and not later.starts_cold
    window = max(1, int(0.1 * before.steps_run))
    assert before.loss_last_error is not None
    assert later.baseline_error == before.loss_last_error
    assert later.baseline_error >= (before.loss_noise or 0.0) / math.sqrt(window)


def test_a_stage_judged_on_validation_losses_still_rolls_back_on_its_training_loss() -> None:
    """The rollback compares a train segment's training losses with what the chosen probe made
    on the training loss, not with its validation forecast (other units: a noisy regression's
    training loss is ~8, its validation loss ~0.01; read as a promised progress of 8, the old
    check let the loss jump by 4 and stay there)."""
    rng = random.Random(5)
    ctl = fast(TunerConfig(**SMALL))
    inst = ctl.start()
    while inst.kind == "probe":
        n, every = inst.steps, inst.eval_every
        train = [8.0 - 0.1 * i / n + rng.gauss(0.0, 0.05) for i in range(n)]
        val = [(s, 0.02 - 0.01 * s / n) for s in range(every or n, n + 1, every or n)]
        inst = ctl.report(Report(segment=inst.segment, train_losses=train, val_losses=val))
    assert inst.kind == "train" and ctl.stages[0].source == "val"
    n = inst.steps
    wrecked = [10.0 + rng.gauss(0.0, 0.05) for _ in range(n)]  # up at once, then flat
    retry = ctl.report(Report(segment=inst.segment, train_losses=wrecked))
    assert retry.restore and ctl.stages[0].diverged_lrs == [inst.lr]
