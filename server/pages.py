"""The dashboard's HTML, rendered from Jinja2 templates (``server/templates``) with autoescape.

Why templates: every value a page shows (job names, probe failure reasons, config values) is
escaped by the template engine, not by hand at each call site, where one forgotten escape is
an XSS. Only the charts enter as `markupsafe.Markup`: `autolr.server.dashboard` builds them
as SVG documents from numbers and escapes each piece of text itself.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from markupsafe import Markup

from autolr.protocol import Instruction
from autolr.server import dashboard as charts
from autolr.server.explain import Explanation, explain_stage
from autolr.server.models import JobDetail
from autolr.server.views import StagePublic
from autolr.space import LogSpace

TEMPLATES = Path(__file__).with_name("templates")

_env = Environment(
    loader=FileSystemLoader(TEMPLATES),
    autoescape=select_autoescape(default=True, default_for_string=True),
    undefined=StrictUndefined,  # a misspelled variable is an error, not an empty string
    trim_blocks=True,
    lstrip_blocks=True,
)


def when(value: datetime) -> str:
    """A timestamp for people, in UTC."""
    return value.strftime("%Y-%m-%d %H:%M:%S UTC")


_env.filters["fmt"] = charts.fmt
_env.filters["when"] = when


def render(template: str, **context: Any) -> str:
    """Render ``template`` (a file in ``server/templates``) with autoescape."""
    return _env.get_template(template).render(**context)


@dataclass(frozen=True)
class StageCard:
    """One stage as its card shows it: the record, its decisions in words, its probe chart."""

    stage: StagePublic
    explanations: list[Explanation]
    chart: Markup
    no_gp: bool  # probes exist but too few healthy ones to draw the GP


def describe(inst: Instruction) -> str:
    """The awaited segment in words."""
    ramp = charts.fmt(inst.lr) + (f" → {charts.fmt(inst.lr_end)}" if inst.lr_end != inst.lr else "")
    return f"segment {inst.segment} ({inst.kind}, {inst.steps} steps at lr {ramp})"


def job_context(detail: JobDetail, root: str) -> dict[str, Any]:
    """Everything ``job_body.html`` reads: a pure function of the job (and cached GP fits)."""
    space = LogSpace(detail.config.min_lr, detail.config.max_lr)
    budget = detail.total_steps
    cards = []
    for stage in detail.stages:
        posterior = charts.stage_posterior(
            stage, space, forecast_noise=detail.config.forecast_noise
        )
        cards.append(
            StageCard(
                stage=stage,
                explanations=explain_stage(stage),
                chart=Markup(charts.probe_svg(stage, space, posterior)),
                no_gp=posterior is None and bool(stage.probes),
            )
        )
    return {
        "detail": detail,
        "root": root,
        "awaiting": "nothing (finished)" if detail.finished else describe(detail.current),
        "lr_chart": Markup(
            charts.lr_svg(detail.segments, budget_steps=budget, branches=detail.branches)
        ),
        "loss_chart": Markup(charts.loss_svg(detail.segments, budget_steps=budget)),
        "stages": cards,
        "min_probes_for_gp": charts.MIN_PROBES_FOR_GP,
        "refresh": None,
    }


def job_body(detail: JobDetail, root: str) -> str:
    """The body of a job's page (summary, charts, stages with their rule and evidence,
    config, segment log), for tests and for the page itself."""
    return render("job_body.html", **job_context(detail, root))
