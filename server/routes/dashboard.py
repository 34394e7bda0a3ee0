"""``/dashboard``: HTML pages for people, with the SVG charts of `autolr.server.dashboard`.

Plain server-rendered HTML, no JavaScript at all (the Content-Security-Policy forbids it), so
the pages work offline and a browser's address bar is the whole client. Auth follows the API:

- ``GET /dashboard`` lists jobs; when the server has an admin key it needs that key, as
  ``?key=<key>``, ``X-Admin-Key`` or ``Authorization: Bearer``.
- ``GET /dashboard/jobs/{job_id}`` shows one job; it needs the job's token (``?token=`` or
  ``Authorization: Bearer``) or the admin key (as above). A wrong token and an unknown job
  get the same 404, as in the API.

Credentials in a query string can end up in browser history and proxy logs; that is the price
of a page that opens from a link. The answers say ``Referrer-Policy: no-referrer`` and
``Cache-Control: no-store`` so they do not travel further. The routes are left out of the
OpenAPI schema: they answer HTML, not the API's JSON.
"""

from __future__ import annotations

from datetime import datetime
from html import escape
from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import HTMLResponse

from autolr.controller import StageRecord
from autolr.errors import AutoLRError
from autolr.protocol import Instruction
from autolr.server import auth
from autolr.server import dashboard as charts
from autolr.server.deps import AdminHeaderDep, BearerDep, ServiceDep, SettingsDep
from autolr.server.errors import status_for
from autolr.server.models import JobDetail
from autolr.server.service import JobService
from autolr.server.settings import Settings
from autolr.server.store import JobSummary
from autolr.space import LogSpace

router = APIRouter(prefix="/dashboard", tags=["dashboard"], include_in_schema=False)

#: Jobs per list page (each row loads its job's state to show the current LR).
PAGE_SIZE = 50
#: A running job's page reloads itself this often (seconds): a live view with no script.
REFRESH_SECONDS = 15

_HEADERS = {
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; "
        "base-uri 'none'; frame-ancestors 'none'"
    ),
}

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 1.5rem; color: #111827; }
h1 { font-size: 1.4rem; } h2 { font-size: 1.1rem; margin-top: 1.6rem; }
table { border-collapse: collapse; font-size: 0.9rem; }
th, td { padding: 0.25rem 0.7rem; border-bottom: 1px solid #e5e7eb; text-align: left; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
.status { padding: 0.1rem 0.5rem; border-radius: 0.6rem; background: #e5e7eb; }
.status.running { background: #d1fae5; } .status.cancelled { background: #fee2e2; }
.stages { display: flex; flex-wrap: wrap; gap: 1.2rem; }
.stage { border: 1px solid #e5e7eb; padding: 0.6rem; border-radius: 0.4rem; }
.note { color: #6b7280; font-size: 0.85rem; }
dl { display: grid; grid-template-columns: max-content auto; gap: 0.2rem 1rem; }
dt { color: #6b7280; } dd { margin: 0; }
"""

KeyQuery = Annotated[
    str | None, Query(max_length=1024, description="The admin key (AUTOLR_ADMIN_KEY).")
]
TokenQuery = Annotated[str | None, Query(max_length=1024, description="The job's token.")]


def _e(value: object) -> str:
    return escape(str(value), quote=True)


def _page(title: str, body: str, *, status: int = 200, refresh: int | None = None) -> HTMLResponse:
    meta = f'<meta http-equiv="refresh" content="{refresh}">' if refresh else ""
    html = (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        f'<meta name="viewport" content="width=device-width, initial-scale=1">{meta}'
        f"<title>{_e(title)}</title><style>{_STYLE}</style></head><body>{body}</body></html>"
    )
    return HTMLResponse(html, status_code=status, headers=_HEADERS)


def _is_admin(settings: Settings, *supplied: str | None) -> bool:
    if settings.admin_key is None:
        return False
    key = settings.admin_key.get_secret_value()
    return any(auth.key_matches(value, key) for value in supplied)


def _root(request: Request) -> str:
    return str(request.scope.get("root_path", "")).rstrip("/")


def _when(value: datetime) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S UTC")


def _ask(title: str, message: str, field: str, action: str, *, status: int = 401) -> HTMLResponse:
    """A page asking for a credential, as a plain GET form (no script needed)."""
    body = (
        f"<h1>{_e(title)}</h1><p>{_e(message)}</p>"
        f'<form method="get" action="{_e(action)}"><label>{_e(field)} '
        f'<input type="password" name="{_e(field)}" autocomplete="off" size="48"></label> '
        '<button type="submit">Open</button></form>'
    )
    return _page(title, body, status=status)


# --------------------------------------------------------------------------- job list
@router.get("", response_class=HTMLResponse, summary="Dashboard: job list")
def job_list(
    request: Request,
    service: ServiceDep,
    settings: SettingsDep,
    bearer: BearerDep,
    header: AdminHeaderDep,
    key: KeyQuery = None,
    offset: Annotated[int, Query(ge=0, le=2**31 - 1)] = 0,
) -> HTMLResponse:
    """Jobs, newest first: id, status, stage, steps used / total, current LR, created."""
    root = _root(request)
    supplied = bearer.credentials if bearer is not None else None
    if settings.admin_key is not None and not _is_admin(settings, key, header, supplied):
        return _ask(
            "autolr: admin key needed",
            "This server has an admin key (AUTOLR_ADMIN_KEY); enter it to list jobs.",
            "key",
            f"{root}/dashboard",
        )
    rows = service.store.list_jobs(limit=PAGE_SIZE + 1, offset=offset)
    keep = {"key": key} if key else {}
    body = ["<h1>autolr jobs</h1>"]
    if not rows:
        body.append('<p class="note">No jobs yet.</p>')
    else:
        body.append(_job_table(service, rows[:PAGE_SIZE], root, keep))
    if len(rows) > PAGE_SIZE:
        query = urlencode({**keep, "offset": offset + PAGE_SIZE})
        body.append(f'<p><a href="{_e(f"{root}/dashboard?{query}")}">Older jobs</a></p>')
    if settings.admin_key is None:
        body.append('<p class="note">A job page needs the job\'s token (from POST /v1/jobs).</p>')
    return _page("autolr jobs", "".join(body))


def _job_table(service: JobService, rows: list[JobSummary], root: str, keep: dict[str, str]) -> str:
    head = (
        "<table><thead><tr><th>job</th><th>status</th><th class='num'>stage</th>"
        "<th class='num'>steps</th><th class='num'>lr</th><th>created</th></tr></thead><tbody>"
    )
    lines = [head]
    for row in rows:
        try:
            lr = charts.fmt(float(service.store.load(row.job_id).state["current"]["lr"]))
        except (LookupError, KeyError, TypeError, ValueError):
            lr = "-"
        total = row.total_steps if row.total_steps is not None else "∞"
        href = f"{root}/dashboard/jobs/{row.job_id}" + (f"?{urlencode(keep)}" if keep else "")
        lines.append(
            f'<tr><td><a href="{_e(href)}"><code>{_e(row.job_id)}</code></a></td>'
            f'<td><span class="status {_e(row.status)}">{_e(row.status)}</span></td>'
            f"<td class='num'>{_e(row.stage)}</td>"
            f"<td class='num'>{_e(row.steps_used)} / {_e(total)}</td>"
            f"<td class='num'>{_e(lr)}</td><td>{_e(_when(row.created_at))}</td></tr>"
        )
    lines.append("</tbody></table>")
    return "".join(lines)


# --------------------------------------------------------------------------- one job
@router.get("/jobs/{job_id}", response_class=HTMLResponse, summary="Dashboard: one job's charts")
def job_page(
    request: Request,
    job_id: Annotated[str, Path(max_length=64)],
    service: ServiceDep,
    settings: SettingsDep,
    bearer: BearerDep,
    header: AdminHeaderDep,
    token: TokenQuery = None,
    key: KeyQuery = None,
) -> HTMLResponse:
    """The LR schedule, the losses on segment-kind bands, and each stage's probes with the
    GP's posterior; the page reloads itself while the job runs."""
    supplied = bearer.credentials if bearer is not None else None
    admin = _is_admin(settings, key, header, supplied)
    job_token = token or supplied
    if job_token is None and not admin:
        return _ask(
            "autolr: token needed",
            "Enter the job's token (returned by POST /v1/jobs) to open this job.",
            "token",
            f"{_root(request)}/dashboard/jobs/{job_id}",
        )
    try:
        record = service.authorize(job_id, job_token, admin=admin)
    except AutoLRError as exc:
        status, _code = status_for(exc)
        return _page("autolr: error", f"<h1>Error</h1><p>{_e(exc)}</p>", status=status)
    detail = JobDetail.of_record(record, record.state)
    refresh = REFRESH_SECONDS if detail.status == "running" else None
    return _page(f"autolr job {detail.job_id}", job_body(detail, _root(request)), refresh=refresh)


def job_body(detail: JobDetail, root: str) -> str:
    """The body of a job's page: summary, charts, stages, config and segment log.

    A pure function of the job (no request, no I/O but the cached GP fits), so tests can
    render it from any `JobDetail`. ``root`` is the app's root path, for links.
    """
    space = LogSpace(detail.config.min_lr, detail.config.max_lr)
    total = detail.total_steps if detail.total_steps is not None else "∞"
    current = detail.current
    summary = [
        ("status", f'<span class="status {_e(detail.status)}">{_e(detail.status)}</span>'),
        ("stage", _e(detail.stage)),
        ("awaiting", _e("nothing (finished)" if detail.finished else _describe(current))),
        ("steps used", f"{_e(detail.steps_used)} / {_e(total)}"),
        ("current lr", _e(charts.fmt(current.lr))),
        ("created", _e(_when(detail.created_at))),
        ("updated", _e(_when(detail.updated_at))),
    ]
    parts = [
        f'<p><a href="{_e(root)}/dashboard">All jobs</a></p>',
        f"<h1>Job <code>{_e(detail.job_id)}</code></h1>",
        "<dl>" + "".join(f"<dt>{k}</dt><dd>{v}</dd>" for k, v in summary) + "</dl>",
        "<h2>Learning rate</h2>",
        charts.lr_svg(detail.segments),
        "<h2>Loss</h2>",
        charts.loss_svg(detail.segments),
        "<h2>Stages</h2>",
    ]
    if not detail.stages:
        parts.append('<p class="note">No stage has started yet.</p>')
    parts.append('<div class="stages">')
    for stage in detail.stages:
        parts.append(_stage_card(stage, space, forecast_noise=detail.config.forecast_noise))
    parts.append("</div>")
    parts.append("<h2>Configuration</h2>" + _config_table(detail))
    parts.append(_segment_table(detail))
    return "".join(parts)


def _describe(inst: Instruction) -> str:
    ramp = f"{charts.fmt(inst.lr)}" + (
        f" → {charts.fmt(inst.lr_end)}" if inst.lr_end != inst.lr else ""
    )
    return f"segment {inst.segment} ({inst.kind}, {inst.steps} steps at lr {ramp})"


def _stage_card(stage: StageRecord, space: LogSpace, *, forecast_noise: bool) -> str:
    posterior = charts.stage_posterior(stage, space, forecast_noise=forecast_noise)
    chosen = charts.fmt(stage.chosen_lr) if stage.chosen_lr is not None else "-"
    facts = [
        f"τ={stage.tau}",
        f"τ'={stage.probe_steps}",
        f"loss: {stage.source}",
        f"chosen lr: {chosen}",
    ]
    if stage.stopped_early:
        facts.append("search stopped early")
    if stage.reused_probe is not None:
        facts.append(f"trained on from probe {stage.reused_probe}")
    rows = []
    for p in stage.probes:
        outcome = charts.fmt(p.forecast) if p.ok and p.forecast is not None else p.reason
        drop = charts.fmt(p.drop) if p.drop is not None else "-"
        ranked = charts.fmt(p.objective) if p.objective is not None else "-"
        rows.append(
            f"<tr><td class='num'>{_e(p.probe)}</td><td class='num'>{_e(charts.fmt(p.lr))}</td>"
            f"<td>{_e(outcome or 'no forecast')}</td><td class='num'>{_e(drop)}</td>"
            f"<td class='num'>{_e(ranked)}</td></tr>"
        )
    for decision in stage.decisions:
        # the stage policy's record: the rule that set the LR and why (autolr.policy)
        facts.append(f"rule {decision.rule.value}: lr {charts.fmt(decision.lr)}")
        if decision.note:
            facts.append(decision.note)
    notes = "".join(f'<p class="note">{_e(note)}</p>' for note in stage.search_fallbacks)
    if posterior is None and stage.probes:
        notes += f'<p class="note">GP drawn from {charts.MIN_PROBES_FOR_GP} healthy probes on.</p>'
    return (
        f'<div class="stage"><h3>Stage {_e(stage.stage)}</h3>'
        f'<p class="note">{_e(", ".join(facts))}</p>'
        + charts.probe_svg(stage, space, posterior)
        + "<table><thead><tr><th class='num'>probe</th><th class='num'>lr</th>"
        "<th>forecast</th><th class='num'>cooldown drop</th><th class='num'>ranked by</th>"
        "</tr></thead><tbody>" + "".join(rows) + "</tbody></table>" + notes + "</div>"
    )


def _config_table(detail: JobDetail) -> str:
    rows = "".join(
        f"<tr><td>{_e(name)}</td><td>{_e(value)}</td></tr>"
        for name, value in detail.config.model_dump().items()
    )
    return f"<table><tbody>{rows}</tbody></table>"


def _segment_table(detail: JobDetail) -> str:
    head = (
        "<details><summary>Segment log</summary><table><thead><tr>"
        "<th class='num'>segment</th><th>kind</th><th class='num'>stage</th>"
        "<th class='num'>lr</th><th class='num'>lr_end</th><th class='num'>steps</th>"
        "<th class='num'>start step</th><th class='num'>mean loss</th></tr></thead><tbody>"
    )
    rows = []
    for seg in detail.segments:
        inst = seg.instruction
        mean = charts.fmt(seg.loss_mean) if seg.loss_mean is not None else "-"
        cells = [inst.segment, inst.kind, inst.stage, charts.fmt(inst.lr)]
        cells += [charts.fmt(inst.lr_end), seg.steps_run, seg.start_step, mean]
        rows.append(
            "<tr>"
            + "".join(
                f"<td{'' if i == 1 else ' class=num'}>{_e(cell)}</td>"
                for i, cell in enumerate(cells)
            )
            + "</tr>"
        )
    return head + "".join(rows) + "</tbody></table></details>"
