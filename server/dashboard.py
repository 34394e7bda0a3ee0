"""The dashboard's charts: standalone SVG documents rendered on the server, as pure functions.

Why SVG from Python rather than a JavaScript chart library: the server must work with no
internet at run time and ship no front-end build, and an SVG string is easy to test (parse it
with ``xml.etree`` and count points). Every chart is a complete ``<svg xmlns=...>`` document
that is also valid inline in HTML. Geometry is computed here; the markup comes from element
trees rendered by an autoescaping template (`autolr.server.svg`), so every text and attribute
value is escaped by construction.

Three charts, all drawn from the job's public records (`autolr.server.views.SegmentPublic`,
`StagePublic`, what ``GET /v1/jobs/{id}`` answers), so the dashboard shows exactly what the
job decided, and nothing the API does not publish:

- `lr_svg`: the LR of every segment over the steps used (log-scale y);
- `loss_svg`: training loss (the segment log's bucket means) and validation loss over the
  steps used, on bands coloured by segment kind;
- `probe_svg`: one stage's probes, LR (log x) against forecast loss, with the GP's posterior
  mean and a ±2σ band from `stage_posterior`.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache

from autolr.controller import objective_error
from autolr.server.svg import Element, el, render, titled
from autolr.server.views import SegmentPublic, StagePublic
from autolr.space import LogSpace

#: Fill colours of the segment kinds (colour-blind-safe Okabe-Ito hues).
KIND_COLOURS: dict[str, str] = {
    "warmup": "#E69F00",
    "probe": "#D55E00",
    "train": "#009E73",
    "anneal": "#56B4E9",
    "branch": "#CC79A7",  # a cooldown branch (AutoLR.cooldown): the main run never saw it
}
TRAIN_COLOUR = "#1f2937"
VAL_COLOUR = "#CC79A7"
LR_COLOUR = "#0072B2"
GP_COLOUR = "#0072B2"

#: The GP is drawn from this many healthy probes on: with fewer, its hyperparameters are
#: guesswork (the same threshold as ``GPSearcher.choose``'s use of the posterior mean).
MIN_PROBES_FOR_GP = 3
#: Points of the posterior curve across [min_lr, max_lr] (smooth at the chart's width).
POSTERIOR_POINTS = 97
#: Losses above this quantile are drawn clamped to the top edge, so a diverging probe
#: (losses of 1e30) does not flatten every other curve into the bottom pixel row.
LOSS_TOP_QUANTILE = 0.98


@dataclass(frozen=True)
class Frame:
    """A chart's size and the margins around its plot area, in pixels."""

    width: int = 1000
    height: int = 260
    left: int = 64
    right: int = 16
    top: int = 30
    bottom: int = 40

    @property
    def x0(self) -> float:
        return float(self.left)

    @property
    def x1(self) -> float:
        return float(self.width - self.right)

    @property
    def y0(self) -> float:
        """Top of the plot area (SVG y grows downwards)."""
        return float(self.top)

    @property
    def y1(self) -> float:
        """Bottom of the plot area."""
        return float(self.height - self.bottom)


@dataclass(frozen=True)
class Scale:
    """Maps data values in ``[lo, hi]`` to pixels ``[start, end]``, linearly or in log10.

    Values outside the domain are clamped to its edge: a chart never draws outside its frame.
    """

    lo: float
    hi: float
    start: float
    end: float
    log: bool = False

    def _t(self, value: float) -> float:
        if self.log:
            value = max(value, self.lo)
            return (math.log10(value) - math.log10(self.lo)) / (
                math.log10(self.hi) - math.log10(self.lo)
            )
        return (value - self.lo) / (self.hi - self.lo)

    def __call__(self, value: float) -> float:
        t = min(1.0, max(0.0, self._t(value)))
        return self.start + t * (self.end - self.start)

    def ticks(self) -> list[float]:
        """Tick values: decades (with 2× and 5× when fewer than 3 fit) or a 1-2-5 step."""
        if self.log:
            first, last = math.floor(math.log10(self.lo)), math.ceil(math.log10(self.hi))
            decades = [10.0**k for k in range(first, last + 1)]
            inside = [v for v in decades if self.lo <= v * (1 + 1e-9) and v <= self.hi * (1 + 1e-9)]
            if len(inside) >= 3:
                return inside
            fine = [m * d for d in decades for m in (1.0, 2.0, 5.0)]
            return [v for v in fine if self.lo <= v <= self.hi] or [self.lo, self.hi]
        step = _nice_step((self.hi - self.lo) / 5)
        first_tick = math.ceil(self.lo / step) * step
        count = int((self.hi - first_tick) / step + 1e-9) + 1
        return [first_tick + i * step for i in range(max(count, 0))]


@dataclass(frozen=True)
class Posterior:
    """A GP posterior on a grid of LRs: mean and standard deviation of the forecast loss."""

    lrs: tuple[float, ...]
    mean: tuple[float, ...]
    std: tuple[float, ...]


def _nice_step(raw: float) -> float:
    if raw <= 0 or not math.isfinite(raw):
        return 1.0
    magnitude = 10.0 ** math.floor(math.log10(raw))
    for factor in (1.0, 2.0, 5.0, 10.0):
        if raw <= factor * magnitude:
            return factor * magnitude
    return 10.0 * magnitude


def fmt(value: float) -> str:
    """A number for labels and tables: 4 significant digits."""
    return f"{value:.4g}"


def _xy(x: float, y: float) -> str:
    return f"{x:.1f},{y:.1f}"


def _path(runs: Iterable[Sequence[tuple[float, float]]]) -> str:
    """SVG path data: one ``M`` per run, ``L`` to each further point (gaps between runs)."""
    parts = []
    for run in runs:
        if run:
            parts.append("M" + " L".join(_xy(x, y) for x, y in run))
    return " ".join(parts)


def _svg(frame: Frame, label: str, body: list[Element], css_class: str) -> str:
    root = el(
        "svg",
        None,
        el("title", label),
        *body,
        xmlns="http://www.w3.org/2000/svg",
        class_=css_class,
        viewBox=f"0 0 {frame.width} {frame.height}",
        width=frame.width,
        height=frame.height,
        role="img",
        aria_label=label,
        style="max-width:100%;height:auto",
        font_family="sans-serif",
        font_size=11,
    )
    return render(root)


def _axes(frame: Frame, x: Scale, y: Scale, x_label: str, y_label: str) -> list[Element]:
    """Frame, grid lines, tick labels and axis titles."""
    out = [
        el(
            "rect",
            x=frame.x0,
            y=frame.y0,
            width=frame.x1 - frame.x0,
            height=frame.y1 - frame.y0,
            fill="none",
            stroke="#9ca3af",
        )
    ]
    for value in x.ticks():
        px = f"{x(value):.1f}"
        out.append(el("line", x1=px, y1=frame.y0, x2=px, y2=frame.y1, stroke="#e5e7eb"))
        out.append(el("text", fmt(value), x=px, y=frame.y1 + 14, text_anchor="middle"))
    for value in y.ticks():
        py = y(value)
        out.append(
            el("line", x1=frame.x0, y1=f"{py:.1f}", x2=frame.x1, y2=f"{py:.1f}", stroke="#e5e7eb")
        )
        out.append(el("text", fmt(value), x=frame.x0 - 4, y=f"{py + 4:.1f}", text_anchor="end"))
    middle = f"{(frame.y0 + frame.y1) / 2:.1f}"
    out.append(
        el(
            "text",
            x_label,
            x=f"{(frame.x0 + frame.x1) / 2:.1f}",
            y=frame.height - 6,
            text_anchor="middle",
        )
    )
    out.append(
        el(
            "text",
            y_label,
            x=12,
            y=middle,
            text_anchor="middle",
            transform=f"rotate(-90 12 {middle})",
        )
    )
    return out


def _legend(frame: Frame, entries: Sequence[tuple[str, str, str]]) -> list[Element]:
    """A row of legend entries above the plot: (label, colour, "band" | "line" | "dot")."""
    items = []
    px = frame.x0
    for label, colour, shape in entries:
        if shape == "band":
            items.append(
                el(
                    "rect",
                    x=f"{px:.1f}",
                    y=8,
                    width=14,
                    height=10,
                    fill=colour,
                    fill_opacity="0.35",
                )
            )
        elif shape == "dot":
            items.append(el("circle", cx=f"{px + 7:.1f}", cy=13, r="3.5", fill=colour))
        else:
            items.append(
                el(
                    "line",
                    x1=f"{px:.1f}",
                    y1=13,
                    x2=f"{px + 14:.1f}",
                    y2=13,
                    stroke=colour,
                    stroke_width=2,
                )
            )
        items.append(el("text", label, x=f"{px + 18:.1f}", y=17))
        px += 26 + 7 * len(label)
    return [el("g", None, *items, class_="legend")]


def _kind_legend() -> list[tuple[str, str, str]]:
    return [(kind, colour, "band") for kind, colour in KIND_COLOURS.items()]


def _empty(frame: Frame, label: str, css_class: str, message: str) -> str:
    body = [
        el(
            "text",
            message,
            x=f"{frame.width / 2:.1f}",
            y=f"{frame.height / 2:.1f}",
            text_anchor="middle",
            fill="#6b7280",
        )
    ]
    return _svg(frame, label, body, css_class)


def _step_span(segments: Sequence[SegmentPublic], budget_steps: int | None = None) -> float:
    """The x axis's extent: the job's step budget when it has one (so a running job's charts
    show how much is left), else the steps used so far."""
    used = float(max((s.start_step + s.steps_run for s in segments), default=0))
    return max(used, float(budget_steps or 0)) or 1.0


def _bands(frame: Frame, x: Scale, segments: Sequence[SegmentPublic]) -> list[Element]:
    """One translucent rectangle per segment, coloured by its kind, with a tooltip."""
    rects = []
    for seg in segments:
        if seg.steps_run <= 0:
            continue
        inst = seg.instruction
        left, right = x(seg.start_step), x(seg.start_step + seg.steps_run)
        tip = f"segment {inst.segment}: {inst.kind}, stage {inst.stage}, lr {fmt(inst.lr)}"
        if inst.lr_end != inst.lr:
            tip += f" → {fmt(inst.lr_end)}"
        tip += f", {seg.steps_run} steps from step {seg.start_step}"
        rects.append(
            titled(
                "rect",
                tip,
                class_=f"band {inst.kind}",
                x=f"{left:.1f}",
                y=frame.y0,
                width=f"{max(right - left, 0.5):.1f}",
                height=frame.y1 - frame.y0,
                fill=KIND_COLOURS.get(inst.kind, "#9ca3af"),
                fill_opacity="0.18",
            )
        )
    return [el("g", None, *rects, class_="bands")]


def lr_svg(
    segments: Sequence[SegmentPublic],
    *,
    frame: Frame | None = None,
    budget_steps: int | None = None,
    branches: Sequence[SegmentPublic] = (),
) -> str:
    """The LR schedule over the step budget, log-scale y, on bands of segment kinds.

    Each segment with steps adds two points to the ``<polyline class="lr">``: its first LR at
    its first step and its last LR at its end (a warmup or anneal ramp is a straight segment
    between them; on a log axis the ramp's curvature is not drawn).

    Args:
        segments: the job's segment log, in order.
        frame: size and margins (default 1000 x 260).
        budget_steps: the job's ``total_steps``: the x axis runs to it (None: to the steps
            used).
        branches: the job's cooldown branches, drawn as bands (the LR line is the main run's).
    """
    frame = frame or Frame()
    label = "Learning rate by step"
    ran = [s for s in segments if s.steps_run > 0]
    if not ran:
        return _empty(frame, label, "chart lr-chart", "no segment finished yet")
    lrs = [v for s in ran for v in (s.instruction.lr, s.instruction.lr_end)]
    lo, hi = min(lrs), max(lrs)
    lo, hi = (lo / 2, hi * 2) if hi <= lo * 1.01 else (lo / 1.2, hi * 1.2)
    x = Scale(0.0, _step_span([*ran, *branches], budget_steps), frame.x0, frame.x1)
    y = Scale(lo, hi, frame.y1, frame.y0, log=True)
    points: list[tuple[float, float]] = []
    for seg in ran:
        start, end = seg.start_step, seg.start_step + seg.steps_run
        points += [(x(start), y(seg.instruction.lr)), (x(end), y(seg.instruction.lr_end))]
    body = _legend(frame, [*_kind_legend(), ("lr", LR_COLOUR, "line")])
    body += _bands(frame, x, [*ran, *branches])
    body += _axes(frame, x, y, "step", "learning rate")
    body.append(
        el(
            "polyline",
            class_="lr",
            fill="none",
            stroke=LR_COLOUR,
            stroke_width=2,
            points=" ".join(_xy(px, py) for px, py in points),
        )
    )
    return _svg(frame, label, body, "chart lr-chart")


def _loss_range(values: Sequence[float]) -> tuple[float, float, bool]:
    """Domain of the loss axis: log when every loss is positive, top at a high quantile."""
    ordered = sorted(values)
    log = ordered[0] > 0
    lo, top = ordered[0], ordered[-1]
    cap = ordered[int(LOSS_TOP_QUANTILE * (len(ordered) - 1))]
    if log:
        top = min(top, cap * 1.5)
        return (lo / 1.1, top * 1.1, True) if top > lo * 1.01 else (lo / 2, lo * 2, True)
    top = min(top, cap + 0.25 * (cap - lo))
    pad = 0.05 * (top - lo) if top > lo else max(abs(lo) * 0.1, 1.0)
    return lo - pad, top + pad, False


def _loss_runs(
    segments: Sequence[SegmentPublic],
) -> tuple[list[list[tuple[float, float]]], list[list[tuple[float, float]]]]:
    """Training and validation loss as (step, loss) runs, split where a value is non-finite.

    A training point is the mean of its bucket, placed at the bucket's middle step.
    """
    train: list[list[tuple[float, float]]] = []
    val: list[list[tuple[float, float]]] = []
    for seg in segments:
        n = len(seg.losses)
        run: list[tuple[float, float]] = []
        for i, value in enumerate(seg.losses):
            if value is None or not math.isfinite(value):
                train.append(run)
                run = []
                continue
            run.append((seg.start_step + (i + 0.5) * seg.steps_run / n, value))
        train.append(run)
        vrun: list[tuple[float, float]] = []
        for step, value in seg.val_losses:
            if value is None or not math.isfinite(value):
                val.append(vrun)
                vrun = []
                continue
            vrun.append((float(seg.start_step + step), value))
        val.append(vrun)
    return [r for r in train if r], [r for r in val if r]


def loss_svg(
    segments: Sequence[SegmentPublic],
    *,
    frame: Frame | None = None,
    budget_steps: int | None = None,
) -> str:
    """Training and validation loss over the step budget, on bands of segment kinds.

    The training loss is one ``<path class="train-loss">`` with a point per bucket of the
    segment log (at most `autolr.controller.LOG_POINTS_PER_SEGMENT` per segment); gaps mark
    non-finite buckets (divergence). Validation losses are ``<path class="val-loss">`` with
    a ``<circle>`` per evaluation. Probes restart from the stage snapshot, so the curve jumps
    back at each probe's start: that is the search, drawn as it happened.

    Args:
        segments: the job's segment log, in order.
        frame: size and margins (default 1000 x 260).
        budget_steps: the job's ``total_steps``: the x axis runs to it (None: to the steps
            used).
    """
    frame = frame or Frame()
    label = "Loss by step"
    train, val = _loss_runs(segments)
    values = [v for run in (*train, *val) for _, v in run]
    if not values:
        return _empty(frame, label, "chart loss-chart", "no loss reported yet")
    lo, hi, log = _loss_range(values)
    x = Scale(0.0, _step_span(segments, budget_steps), frame.x0, frame.x1)
    y = Scale(lo, hi, frame.y1, frame.y0, log=log)
    entries = [*_kind_legend(), ("train loss", TRAIN_COLOUR, "line")]
    if val:
        entries.append(("val loss", VAL_COLOUR, "line"))
    body = _legend(frame, entries)
    body += _bands(frame, x, segments)
    body += _axes(frame, x, y, "step", "loss (log)" if log else "loss")
    pixel_train = [[(x(s), y(v)) for s, v in run] for run in train]
    body.append(
        el(
            "path",
            class_="train-loss",
            fill="none",
            stroke=TRAIN_COLOUR,
            stroke_width="1.2",
            d=_path(pixel_train),
        )
    )
    if val:
        pixel_val = [[(x(s), y(v)) for s, v in run] for run in val]
        body.append(
            el(
                "path",
                class_="val-loss",
                fill="none",
                stroke=VAL_COLOUR,
                stroke_width="1.5",
                d=_path(pixel_val),
            )
        )
        body += [
            el(
                "circle",
                class_="val-point",
                cx=f"{px:.1f}",
                cy=f"{py:.1f}",
                r="2.2",
                fill=VAL_COLOUR,
            )
            for run in pixel_val
            for px, py in run
        ]
    return _svg(frame, label, body, "chart loss-chart")


def stage_posterior(
    stage: StagePublic, space: LogSpace, *, forecast_noise: bool = True
) -> Posterior | None:
    """The GP posterior of the ranked objective over the LR range, fitted to a stage's probes.

    The GP is `autolr.search.GPSearcher`'s model, fitted to the healthy probes only (those with
    an objective: the cooled forecast, or the forecast under the "horizon" objective): the
    model the search's pick comes from. The LR trained is the stage policy's decision, whose
    rule the stage card states (a tie or a cap can move it off the curve's minimum). Returns None with fewer than `MIN_PROBES_FOR_GP` healthy
    probes or when the fit fails: the dashboard then shows the probes alone. Results are cached
    (a finished stage never changes), so reloading a page costs no fit. With ``forecast_noise``
    (the job's `TunerConfig` option) the GP is given each forecast's variance, as in the search.
    """
    healthy = [p for p in stage.probes if p.objective is not None]
    if len(healthy) < MIN_PROBES_FOR_GP:
        return None
    return _fit_posterior(
        tuple(p.x_unit for p in healthy),
        tuple(float(p.objective) for p in healthy if p.objective is not None),
        tuple(objective_error(p) ** 2 for p in healthy) if forecast_noise else None,
        space.min_lr,
        space.max_lr,
    )


@lru_cache(maxsize=1024)
def _fit_posterior(
    x_unit: tuple[float, ...],
    y: tuple[float, ...],
    noise: tuple[float, ...] | None,
    min_lr: float,
    max_lr: float,
) -> Posterior | None:
    from autolr.search import GPSearcher, SearchError, SearchInputError

    grid = [i / (POSTERIOR_POINTS - 1) for i in range(POSTERIOR_POINTS)]
    try:
        mean, std = GPSearcher().posterior(x_unit, y, grid, noise=noise)
    except (SearchError, SearchInputError):
        return None
    space = LogSpace(min_lr, max_lr)
    return Posterior(tuple(space.to_lr(x) for x in grid), tuple(mean), tuple(std))


def probe_svg(
    stage: StagePublic,
    space: LogSpace,
    posterior: Posterior | None = None,
    *,
    frame: Frame | None = None,
) -> str:
    """One stage's probes: LR (log x) against forecast loss, with the GP's mean and ±2σ band.

    Healthy probes are ``<circle class="probe">``; failed ones (divergence, rejected series)
    are red crosses at the top edge, their reason in the tooltip. The chosen LR is a dashed
    vertical line. The band is clamped to the plot area: far from the probes the GP's σ is
    wide, and following it would squeeze the probes into a few pixels.

    Args:
        stage: the stage record.
        space: the job's LR range (``min_lr``, ``max_lr``): the x axis.
        posterior: from `stage_posterior`, or None to draw the probes alone.
        frame: size and margins (default 380 x 240).
    """
    frame = frame or Frame(width=380, height=240, left=56, top=30)
    label = f"Stage {stage.stage}: probes (tau={stage.tau}, probe steps={stage.probe_steps})"
    healthy = [p for p in stage.probes if p.objective is not None]
    failed = [p for p in stage.probes if p.objective is None]
    if not stage.probes:
        return _empty(frame, label, "chart probe-chart", "no probe finished yet")
    ys = [p.objective for p in healthy if p.objective is not None]
    if posterior is not None:
        ys += list(posterior.mean)
    if ys:
        lo, hi = min(ys), max(ys)
        pad = 0.15 * (hi - lo) if hi > lo else max(abs(lo) * 0.1, 1e-3)
        lo, hi = lo - pad, hi + pad
    else:
        lo, hi = 0.0, 1.0
    x = Scale(space.min_lr, space.max_lr, frame.x0, frame.x1, log=True)
    y = Scale(lo, hi, frame.y1, frame.y0)
    entries = [("forecast", TRAIN_COLOUR, "dot")]
    if posterior is not None:
        entries += [("GP mean", GP_COLOUR, "line"), ("±2σ", GP_COLOUR, "band")]
    body = _legend(frame, entries)
    body += _axes(frame, x, y, "learning rate (log)", "predicted loss (ranked)")
    if posterior is not None:
        upper = [(x(lr), y(m + 2 * s)) for lr, m, s in zip(*_cols(posterior), strict=True)]
        lower = [(x(lr), y(m - 2 * s)) for lr, m, s in zip(*_cols(posterior), strict=True)]
        band = _path([upper + lower[::-1]]) + " Z"
        mean = [(x(lr), y(m)) for lr, m in zip(posterior.lrs, posterior.mean, strict=True)]
        body.append(
            el("path", class_="gp-band", d=band, fill=GP_COLOUR, fill_opacity="0.15", stroke="none")
        )
        body.append(
            el(
                "path",
                class_="gp-mean",
                d=_path([mean]),
                fill="none",
                stroke=GP_COLOUR,
                stroke_width="1.5",
            )
        )
    if stage.chosen_lr is not None:
        px = f"{x(stage.chosen_lr):.1f}"
        body.append(
            titled(
                "line",
                f"chosen lr {fmt(stage.chosen_lr)}",
                class_="chosen",
                x1=px,
                y1=frame.y0,
                x2=px,
                y2=frame.y1,
                stroke=KIND_COLOURS["train"],
                stroke_dasharray="4 3",
                stroke_width="1.5",
            )
        )
    for p in healthy:
        tip = f"probe {p.probe}: lr {fmt(p.lr)}, ranked by {fmt(p.objective or 0.0)}"
        body.append(
            titled(
                "circle",
                tip,
                class_="probe",
                cx=f"{x(p.lr):.1f}",
                cy=f"{y(p.objective or 0.0):.1f}",
                r="3.5",
                fill=TRAIN_COLOUR,
            )
        )
    for p in failed:
        cx, cy = x(p.lr), frame.y0 + 6
        tip = f"probe {p.probe}: lr {fmt(p.lr)} failed: {p.reason or 'no forecast'}"
        cross = (
            f"M{cx - 4:.1f},{cy - 4:.1f} L{cx + 4:.1f},{cy + 4:.1f} "
            f"M{cx - 4:.1f},{cy + 4:.1f} L{cx + 4:.1f},{cy - 4:.1f}"
        )
        body.append(
            titled("path", tip, class_="probe-failed", d=cross, stroke="#dc2626", stroke_width=2)
        )
    return _svg(frame, label, body, "chart probe-chart")


def _cols(posterior: Posterior) -> tuple[tuple[float, ...], ...]:
    return posterior.lrs, posterior.mean, posterior.std
