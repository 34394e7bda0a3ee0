"""``/dashboard``: HTML pages for people, rendered from templates (`autolr.server.pages`).

Plain server-rendered HTML, no JavaScript at all (the Content-Security-Policy forbids it), so
the pages work offline and a browser's address bar is the whole client.

Auth follows the API, but credentials never travel in a link: a login form (``POST``) puts
the admin key or the job's token in an HttpOnly, SameSite=Strict cookie scoped to the
dashboard (a job's token only to that job's pages). Scripts and API clients may send the
headers instead (``Authorization: Bearer``, ``X-Admin-Key``). Old links with ``?token=`` or
``?key=`` still open: the server sets the cookie and redirects to the same page without the
credential (and the access log redacts it, `autolr.server.logs`).

- ``GET /dashboard`` lists jobs (refreshing itself); with an admin key set it needs the key.
- ``GET /dashboard/jobs/{job_id}`` shows one job: its token or the admin key. A wrong token
  and an unknown job get the same 404, as in the API.

The routes are left out of the OpenAPI schema: they answer HTML, not the API's JSON.
"""

from __future__ import annotations

from typing import Annotated
from urllib.parse import parse_qs, urlencode

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from autolr.errors import AutoLRError, JobNotFound
from autolr.server import auth, pages
from autolr.server import dashboard as charts
from autolr.server.deps import AdminHeaderDep, BearerDep, ServiceDep, SettingsDep
from autolr.server.errors import status_for
from autolr.server.models import JobDetail
from autolr.server.service import JobService
from autolr.server.settings import Settings
from autolr.server.store import JobSummary

router = APIRouter(prefix="/dashboard", tags=["dashboard"], include_in_schema=False)

#: Jobs per list page (each row loads its job's state to show the current LR).
PAGE_SIZE = 50
#: A running job's page and the job list reload themselves this often (seconds): a live view
#: with no script.
REFRESH_SECONDS = 15
#: Cookie holding the admin key (path: the whole dashboard).
ADMIN_COOKIE = "autolr_admin"
#: Cookie holding a job's token (path: that job's pages only).
TOKEN_COOKIE = "autolr_token"
#: How long a login lasts (seconds): a working day.
COOKIE_MAX_AGE_S = 12 * 3600
#: Longest login form accepted (bytes): a key or token and its field name.
MAX_FORM_BYTES = 4096

_HEADERS = {
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; "
        "base-uri 'none'; frame-ancestors 'none'"
    ),
}

KeyQuery = Annotated[
    str | None, Query(max_length=1024, description="Deprecated: log in instead (redirects).")
]
TokenQuery = Annotated[
    str | None, Query(max_length=1024, description="Deprecated: log in instead (redirects).")
]
JobIdPath = Annotated[str, Path(max_length=64)]


def _page(
    template: str,
    *,
    status: int = 200,
    refresh: int | None = None,
    logout: str | None = None,
    root: str = "",
    **context: object,
) -> HTMLResponse:
    html = pages.render(template, refresh=refresh, logout=logout, root=root, **context)
    return HTMLResponse(html, status_code=status, headers=_HEADERS)


def _root(request: Request) -> str:
    return str(request.scope.get("root_path", "")).rstrip("/")


def _admin_key(settings: Settings) -> str | None:
    return settings.admin_key.get_secret_value() if settings.admin_key is not None else None


def _is_admin(settings: Settings, *supplied: str | None) -> bool:
    key = _admin_key(settings)
    return key is not None and any(auth.key_matches(value, key) for value in supplied)


def _set_cookie(response: Response, request: Request, name: str, value: str, path: str) -> None:
    response.set_cookie(
        name,
        value,
        max_age=COOKIE_MAX_AGE_S,
        path=path,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )


def _redirect(location: str) -> RedirectResponse:
    response = RedirectResponse(location, status_code=303)
    response.headers.update(_HEADERS)
    return response


def _error(exc: AutoLRError, root: str) -> HTMLResponse:
    status, _code = status_for(exc)
    return _page("error.html", status=status, title="autolr: error", message=str(exc), root=root)


async def _form_field(request: Request, field: str) -> str | None:
    """One field of a urlencoded form body (the login forms have one), or None."""
    body = await request.body()
    if len(body) > MAX_FORM_BYTES:
        return None
    values = parse_qs(body.decode("utf-8", errors="replace")).get(field)
    return values[0] if values else None


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
) -> Response:
    """Jobs, newest first: name, id, status, stage, steps used / total, current LR, created."""
    root = _root(request)
    cookie = request.cookies.get(ADMIN_COOKIE)
    supplied = bearer.credentials if bearer is not None else None
    if key is not None and _is_admin(settings, key):
        response = _redirect(f"{root}/dashboard" + (f"?offset={offset}" if offset else ""))
        _set_cookie(response, request, ADMIN_COOKIE, key, f"{root}/dashboard")
        return response
    keyed = settings.admin_key is not None
    if keyed and not _is_admin(settings, cookie, header, supplied):
        return _login_page(root, "key", status=401, message=_ADMIN_MESSAGE)
    rows = service.store.list_jobs(limit=PAGE_SIZE + 1, offset=offset)
    shown = [_row(service, row) for row in rows[:PAGE_SIZE]]
    older = None
    if len(rows) > PAGE_SIZE:
        older = f"{root}/dashboard?{urlencode({'offset': offset + PAGE_SIZE})}"
    logged_in = keyed and _is_admin(settings, cookie)
    return _page(
        "jobs.html",
        title="autolr jobs",
        refresh=REFRESH_SECONDS,
        rows=shown,
        older=older,
        keyed=keyed,
        root=root,
        logout=f"{root}/dashboard/logout" if logged_in else None,
    )


def _row(service: JobService, row: JobSummary) -> dict[str, object]:
    """A list row: the summary and the current LR (from the job's state)."""
    try:
        lr = charts.fmt(float(service.store.load(row.job_id).state["current"]["lr"]))
    except (LookupError, KeyError, TypeError, ValueError):
        lr = "-"
    return {**vars(row), "lr": lr}


_ADMIN_MESSAGE = "This server has an admin key (AUTOLR_ADMIN_KEY); enter it to list jobs."
_TOKEN_MESSAGE = (
    "Enter the job's token (returned by POST /v1/jobs), or the admin key, to open this job."
)


def _login_page(root: str, field: str, *, status: int, message: str, job_id: str = "") -> Response:
    action = f"{root}/dashboard/jobs/{job_id}/login" if job_id else f"{root}/dashboard/login"
    return _page(
        "login.html",
        status=status,
        root=root,
        title="autolr: log in",
        heading="autolr: admin key needed" if field == "key" else "autolr: token needed",
        message=message,
        action=action,
        field=field,
        label="admin key" if field == "key" else "token",
    )


@router.post("/login", response_class=HTMLResponse, summary="Dashboard: log in with the key")
async def login(request: Request, settings: SettingsDep) -> Response:
    """Check the admin key from the form; set it as an HttpOnly cookie and go to the list."""
    root = _root(request)
    key = await _form_field(request, "key")
    if not _is_admin(settings, key) or key is None:
        return _login_page(root, "key", status=401, message="Wrong key. " + _ADMIN_MESSAGE)
    response = _redirect(f"{root}/dashboard")
    _set_cookie(response, request, ADMIN_COOKIE, key, f"{root}/dashboard")
    return response


@router.post("/logout", summary="Dashboard: log out")
def logout(request: Request) -> Response:
    """Forget the admin cookie."""
    root = _root(request)
    response = _redirect(f"{root}/dashboard")
    response.delete_cookie(ADMIN_COOKIE, path=f"{root}/dashboard")
    return response


# --------------------------------------------------------------------------- one job
@router.get("/jobs/{job_id}", response_class=HTMLResponse, summary="Dashboard: one job")
def job_page(
    request: Request,
    job_id: JobIdPath,
    service: ServiceDep,
    settings: SettingsDep,
    bearer: BearerDep,
    header: AdminHeaderDep,
    token: TokenQuery = None,
    key: KeyQuery = None,
) -> Response:
    """The LR schedule and losses over the budget, each stage's rule and evidence, its probes
    with the GP's posterior; the page reloads itself while the job runs."""
    root = _root(request)
    here = f"{root}/dashboard/jobs/{job_id}"
    if token is not None or key is not None:  # an old link: move the credential to a cookie
        return _login_redirect(request, service, settings, job_id, token or key or "")
    supplied = bearer.credentials if bearer is not None else None
    admin_cookie = request.cookies.get(ADMIN_COOKIE)
    admin = _is_admin(settings, admin_cookie, header, supplied)
    job_token = request.cookies.get(TOKEN_COOKIE) or supplied
    if job_token is None and not admin:
        return _login_page(root, "token", status=401, message=_TOKEN_MESSAGE, job_id=job_id)
    try:
        record = service.authorize(job_id, job_token, admin=admin)
    except AutoLRError as exc:
        return _error(exc, root)
    detail = JobDetail.of_record(record, record.state, service.store.history(job_id))
    refresh = REFRESH_SECONDS if detail.status == "running" else None
    context = pages.job_context(detail, root)
    context["refresh"] = refresh
    logged_in = request.cookies.get(TOKEN_COOKIE) is not None or _is_admin(settings, admin_cookie)
    return _page(
        "job.html",
        title=f"autolr job {detail.name or detail.job_id}",
        logout=f"{here}/logout" if logged_in else None,
        **context,
    )


def _login_redirect(
    request: Request, service: ServiceDep, settings: Settings, job_id: str, credential: str
) -> Response:
    """Check a job token (or the admin key); on success set its cookie and redirect to the
    job's page, else the API's 404 (a wrong token and an unknown job look the same)."""
    root = _root(request)
    here = f"{root}/dashboard/jobs/{job_id}"
    admin = _is_admin(settings, credential)
    try:
        service.authorize(job_id, None if admin else credential, admin=admin)
    except AutoLRError as exc:
        return _error(exc, root)
    response = _redirect(here)
    if admin:
        _set_cookie(response, request, ADMIN_COOKIE, credential, f"{root}/dashboard")
    else:
        _set_cookie(response, request, TOKEN_COOKIE, credential, here)
    return response


@router.post("/jobs/{job_id}/login", response_class=HTMLResponse, summary="Dashboard: log in")
async def job_login(
    request: Request, job_id: JobIdPath, service: ServiceDep, settings: SettingsDep
) -> Response:
    """Check the token (or admin key) from the form and keep it in an HttpOnly cookie."""
    credential = await _form_field(request, "token")
    if not credential:
        return _error(JobNotFound(job_id), _root(request))
    # authorize reads the database: run it in the thread pool like the sync routes
    return await run_in_threadpool(_login_redirect, request, service, settings, job_id, credential)


@router.post("/jobs/{job_id}/logout", summary="Dashboard: log out of a job")
def job_logout(request: Request, job_id: JobIdPath) -> Response:
    """Forget this job's token cookie and the admin cookie."""
    root = _root(request)
    response = _redirect(f"{root}/dashboard/jobs/{job_id}")
    response.delete_cookie(TOKEN_COOKIE, path=f"{root}/dashboard/jobs/{job_id}")
    response.delete_cookie(ADMIN_COOKIE, path=f"{root}/dashboard")
    return response
