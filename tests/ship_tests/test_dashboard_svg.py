"""The dashboard's charts as pure functions: valid SVG, the right number of points, escaping."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

import pytest

from autolr.config import TunerConfig
from autolr.controller import Controller, ProbeRecord, SegmentRecord, StageRecord
from autolr.protocol import Instruction
from autolr.server import dashboard
from autolr.server.dashboard import Posterior, Scale
from autolr.simulate import NoisyQuadratic, run_job
from autolr.space import LogSpace

SVG = "{http://www.w3.org/2000/svg}"
SPACE = LogSpace(1e-3, 1.0)


def parse(svg: str) -> ET.Element:
    root = ET.fromstring(svg)  # raises on anything that is not well-formed XML
    assert root.tag == f"{SVG}svg"
    return root


def by_class(root: ET.Element, tag: str, css_class: str) -> list[ET.Element]:
    return [el for el in root.iter(f"{SVG}{tag}") if css_class in (el.get("class") or "").split()]


def path_points(d: str) -> list[tuple[float, float]]:
    pairs = re.findall(r"(-?[\d.]+),(-?[\d.]+)", d)
    return [(float(x), float(y)) for x, y in pairs]


def segment(
    index: int,
    kind: str,
    start: int,
    steps: int,
    lr: float,
    lr_end: float | None = None,
    losses: list[float | None] | None = None,
    val: list[tuple[int, float | None]] | None = None,
) -> SegmentRecord:
    inst = Instruction(segment=index, kind=kind, lr=lr, lr_end=lr_end or lr, steps=steps, stage=0)
    return SegmentRecord(
        instruction=inst,
        start_step=start,
        steps_run=steps,
        losses=losses if losses is not None else [1.0 / (1 + i) for i in range(min(steps, 8))],
        val_losses=val or [],
    )


def probe(
    i: int, lr: float, forecast: float | None, reason: str = "", noise: float = 0.0
) -> ProbeRecord:
    return ProbeRecord(
        noise=noise,
        probe=i,
        lr=lr,
        x_unit=SPACE.to_unit(lr),
        steps=20,
        source="train",
        ok=forecast is not None,
        reason=reason,
        forecast=forecast,
    )


SCHEDULE = [
    segment(0, "warmup", 0, 50, 1e-3, 0.03),
    segment(1, "probe", 50, 20, 0.1),
    segment(2, "probe", 70, 20, 0.01),
    segment(3, "train", 90, 100, 0.1),
    segment(4, "anneal", 190, 60, 0.1, 1e-4),
]


@pytest.fixture(scope="module")
def controller_run() -> Controller:
    """A real job's records: the controller driven to the end by a noisy quadratic."""
    controller = Controller(
        TunerConfig(
            min_lr=1e-3,
            max_lr=1.0,
            total_steps=900,
            warmup_steps=30,
            probes_per_stage=4,
            initial_probes=2,
            seed=3,
        )
    )
    run_job(controller, NoisyQuadratic(seed=2))
    return controller


def test_lr_chart_has_two_points_per_segment_and_a_band_per_kind() -> None:
    root = parse(dashboard.lr_svg([*SCHEDULE, segment(5, "train", 250, 0, 0.1)]))
    [line] = by_class(root, "polyline", "lr")
    points = path_points(line.get("points", ""))
    assert len(points) == 2 * len(SCHEDULE)  # the zero-step segment draws nothing
    xs = [x for x, _ in points]
    assert xs == sorted(xs)  # steps only go forward
    for kind in ("warmup", "probe", "train", "anneal"):
        bands = by_class(root, "rect", kind)
        assert len(bands) == sum(1 for s in SCHEDULE if s.instruction.kind == kind)
        assert bands[0].get("fill") == dashboard.KIND_COLOURS[kind]
    legend = " ".join(t.text or "" for t in root.iter(f"{SVG}text"))
    assert all(kind in legend for kind in dashboard.KIND_COLOURS)


@pytest.mark.parametrize("chart", [dashboard.lr_svg, dashboard.loss_svg])
def test_the_x_axis_runs_to_the_budget(chart: object) -> None:
    """A job halfway through its budget fills half the plot: the rest is what is left."""
    used = max(s.start_step + s.steps_run for s in SCHEDULE)
    frame = dashboard.Frame()
    whole = parse(chart(SCHEDULE))  # type: ignore[operator]
    half = parse(chart(SCHEDULE, budget_steps=2 * used))  # type: ignore[operator]

    def right_edge(root: ET.Element) -> float:
        bands = [el for el in root.iter(f"{SVG}rect") if "band" in (el.get("class") or "")]
        return max(float(b.get("x", 0)) + float(b.get("width", 0)) for b in bands)

    plot = frame.x1 - frame.x0
    assert right_edge(whole) == pytest.approx(frame.x1, abs=1)
    assert right_edge(half) == pytest.approx(frame.x0 + plot / 2, abs=1)
    ticks = [float(t.text or "nan") for t in half.iter(f"{SVG}text") if (t.text or "").isdigit()]
    assert max(ticks) >= 1.5 * used  # the axis is labelled past the steps used


def test_lr_chart_is_log_scaled() -> None:
    root = parse(dashboard.lr_svg(SCHEDULE))
    [line] = by_class(root, "polyline", "lr")
    y_of = {}
    for seg, (start, end) in zip(
        SCHEDULE, zip(*[iter(path_points(line.get("points", "")))] * 2, strict=True), strict=True
    ):
        y_of[seg.instruction.lr] = start[1]
        y_of[seg.instruction.lr_end] = end[1]
    # equal ratios are equal distances: 1e-3 → 0.01 → 0.1 are two equal steps up
    assert y_of[1e-3] - y_of[0.01] == pytest.approx(y_of[0.01] - y_of[0.1], abs=0.2)
    assert y_of[0.1] < y_of[0.01] < y_of[1e-3]  # larger LR is higher on the page


def test_loss_chart_has_a_point_per_bucket_and_breaks_at_divergence() -> None:
    segments = [
        segment(0, "probe", 0, 20, 0.1, losses=[2.0, 1.5, 1.2, 1.0]),
        segment(1, "probe", 20, 20, 1.0, losses=[2.0, None, 5.0]),
        segment(2, "train", 40, 40, 0.1, losses=[1.0, 0.9, 0.8], val=[(20, 0.95), (40, 0.85)]),
    ]
    root = parse(dashboard.loss_svg(segments))
    [train] = by_class(root, "path", "train-loss")
    d = train.get("d", "")
    assert len(path_points(d)) == 4 + 2 + 3  # None is a gap, not a point
    assert d.count("M") == 4  # one run per segment, the diverged one split in two
    [val] = by_class(root, "path", "val-loss")
    assert len(path_points(val.get("d", ""))) == 2
    assert len(by_class(root, "circle", "val-point")) == 2


def test_loss_chart_keeps_normal_losses_readable_next_to_a_blow_up() -> None:
    losses: list[float | None] = [1.0 - 0.01 * i for i in range(60)]
    segments = [
        segment(0, "train", 0, 60, 0.1, losses=losses),
        segment(1, "probe", 60, 1, 1.0, losses=[1e30]),
    ]
    root = parse(dashboard.loss_svg(segments))
    ys = [y for _, y in path_points(by_class(root, "path", "train-loss")[0].get("d", ""))]
    normal = ys[:60]
    assert max(normal) - min(normal) > 50  # pixels: not squashed into the bottom row


def test_charts_without_data_say_so_and_stay_valid_svg() -> None:
    for svg in (dashboard.lr_svg([]), dashboard.loss_svg([])):
        root = parse(svg)
        assert "yet" in " ".join(t.text or "" for t in root.iter(f"{SVG}text"))
    stage = StageRecord(stage=0, tau=100, probe_steps=20, start_step=0, source="train")
    parse(dashboard.probe_svg(stage, SPACE))


def test_probe_chart_draws_probes_failures_the_choice_and_the_gp_band() -> None:
    stage = StageRecord(
        stage=2,
        tau=200,
        probe_steps=20,
        start_step=0,
        source="train",
        probes=[
            probe(0, 0.01, 0.5),
            probe(1, 0.1, 0.3),
            probe(2, 0.9, None, reason="exploding loss"),
            probe(3, 0.03, 0.35),
        ],
        chosen_lr=0.1,
    )
    n = 11
    posterior = Posterior(
        lrs=tuple(SPACE.to_lr(i / (n - 1)) for i in range(n)),
        mean=tuple(0.3 + 0.1 * (i / (n - 1) - 0.6) ** 2 for i in range(n)),
        std=tuple(0.05 for _ in range(n)),
    )
    root = parse(dashboard.probe_svg(stage, SPACE, posterior))
    assert len(by_class(root, "circle", "probe")) == 3
    [failed] = by_class(root, "path", "probe-failed")
    assert "exploding loss" in (failed.findtext(f"{SVG}title") or "")
    assert len(by_class(root, "line", "chosen")) == 1
    [mean] = by_class(root, "path", "gp-mean")
    assert len(path_points(mean.get("d", ""))) == n
    [band] = by_class(root, "path", "gp-band")
    band_points = path_points(band.get("d", ""))
    assert len(band_points) == 2 * n and band.get("d", "").endswith("Z")
    # the band encloses the mean: upper edge above (smaller y), lower edge below
    mean_y = [y for _, y in path_points(mean.get("d", ""))]
    upper, lower = band_points[:n], band_points[n:][::-1]
    assert all(u <= m <= lo for (_, u), m, (_, lo) in zip(upper, mean_y, lower, strict=True))


def test_every_text_is_escaped() -> None:
    evil = '<script>alert("x")</script>&'
    stage = StageRecord(
        stage=0,
        tau=100,
        probe_steps=20,
        start_step=0,
        source="train",
        probes=[probe(0, 0.01, None, reason=evil)],
    )
    svg = dashboard.probe_svg(stage, SPACE)
    root = parse(svg)
    assert not list(root.iter(f"{SVG}script")) and "<script>" not in svg
    [failed] = by_class(root, "path", "probe-failed")
    assert evil in (failed.findtext(f"{SVG}title") or "")  # shown as text, intact


def test_stage_posterior_fits_the_searchers_gp_to_healthy_probes() -> None:
    lrs = [0.002, 0.01, 0.05, 0.2, 0.8]
    x_best = SPACE.to_unit(0.05)
    probes = [probe(i, lr, (SPACE.to_unit(lr) - x_best) ** 2) for i, lr in enumerate(lrs)]
    probes.append(probe(5, 1.0, None, reason="non-finite training loss"))
    stage = StageRecord(
        stage=0, tau=100, probe_steps=20, start_step=0, source="train", probes=probes
    )
    posterior = dashboard.stage_posterior(stage, SPACE)
    assert posterior is not None
    assert len(posterior.lrs) == len(posterior.mean) == dashboard.POSTERIOR_POINTS
    assert posterior.lrs[0] == SPACE.min_lr and posterior.lrs[-1] == SPACE.max_lr
    best = posterior.lrs[min(range(len(posterior.mean)), key=posterior.mean.__getitem__)]
    assert 0.02 < best < 0.12  # the valley is at 0.05
    assert all(s >= 0 for s in posterior.std)
    assert dashboard.stage_posterior(stage, SPACE) is posterior  # cached: reloads cost no fit


def test_stage_posterior_is_given_the_forecasts_variances_like_the_search() -> None:
    # noisy probes (per-step noise 0.5 over 20 steps: standard error 0.22, a third of the
    # forecasts' range): told the variances, the curve smooths them and is less sure
    lrs = [0.002, 0.01, 0.05, 0.2, 0.8]
    forecasts = [0.9, 0.3, 0.6, 0.2, 0.8]
    probes = [
        probe(i, lr, f, noise=0.5) for i, (lr, f) in enumerate(zip(lrs, forecasts, strict=True))
    ]
    stage = StageRecord(
        stage=0, tau=100, probe_steps=20, start_step=0, source="train", probes=probes
    )
    told = dashboard.stage_posterior(stage, SPACE)
    untold = dashboard.stage_posterior(stage, SPACE, forecast_noise=False)
    assert told is not None and untold is not None
    assert max(told.mean) - min(told.mean) < 0.8 * (max(untold.mean) - min(untold.mean))
    assert min(told.std) > min(untold.std)


def test_stage_posterior_needs_three_healthy_probes() -> None:
    stage = StageRecord(
        stage=0,
        tau=100,
        probe_steps=20,
        start_step=0,
        source="train",
        probes=[probe(0, 0.01, 0.5), probe(1, 0.1, 0.3), probe(2, 0.5, None, "diverged")],
    )
    assert dashboard.stage_posterior(stage, SPACE) is None


def test_charts_of_a_real_job(controller_run: Controller) -> None:
    segments = controller_run.segments
    root = parse(dashboard.lr_svg(segments))
    assert len(path_points(by_class(root, "polyline", "lr")[0].get("points", ""))) == 2 * len(
        [s for s in segments if s.steps_run > 0]
    )
    root = parse(dashboard.loss_svg(segments))
    expected = sum(1 for s in segments for v in s.losses if v is not None)
    assert len(path_points(by_class(root, "path", "train-loss")[0].get("d", ""))) == expected
    drawn = 0
    for stage in controller_run.stages:
        posterior = dashboard.stage_posterior(stage, SPACE)
        root = parse(dashboard.probe_svg(stage, SPACE, posterior))
        healthy = [p for p in stage.probes if p.ok]
        assert len(by_class(root, "circle", "probe")) == len(healthy)
        drawn += posterior is not None
    assert drawn >= 1


@pytest.mark.parametrize(
    ("scale", "expected"),
    [
        (Scale(1e-4, 1.0, 0, 100, log=True), [1e-4, 1e-3, 1e-2, 1e-1, 1.0]),
        (Scale(0.0, 1000.0, 0, 100), [0.0, 200.0, 400.0, 600.0, 800.0, 1000.0]),
    ],
)
def test_scale_ticks(scale: Scale, expected: list[float]) -> None:
    assert scale.ticks() == pytest.approx(expected)


def test_scale_clamps_to_its_frame() -> None:
    scale = Scale(1e-3, 1.0, 10.0, 110.0, log=True)
    assert scale(1e-9) == 10.0 and scale(1e9) == 110.0 and scale(0.0) == 10.0
    assert scale(10**-1.5) == pytest.approx(60.0)
