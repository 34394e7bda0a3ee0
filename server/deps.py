"""Dependencies shared by the routes, as ``Annotated`` aliases.

The app's objects live on ``app.state`` (set by `create_app`), so nothing here is global and
several apps can run in one process. Dependencies that touch the database are sync functions:
FastAPI runs them in the thread pool, off the event loop. The trivial ones are ``async`` so
they cost no thread hop.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Path, Request
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer

from autolr.server import auth
from autolr.server.errors import Unauthorized
from autolr.server.metrics import Metrics
from autolr.server.service import JobService
from autolr.server.settings import Settings
from autolr.server.store import JobRecord

_bearer = HTTPBearer(
    auto_error=False,
    scheme_name="token",
    description="The job's token (from POST /v1/jobs), or the admin key.",
)
_admin_header = APIKeyHeader(
    name="X-Admin-Key",
    auto_error=False,
    scheme_name="adminKey",
    description="The admin key (AUTOLR_ADMIN_KEY), as an alternative to the Bearer header.",
)


async def get_settings(request: Request) -> Settings:
    """The settings the app was created with."""
    settings: Settings = request.app.state.settings
    return settings


async def get_service(request: Request) -> JobService:
    """The app's job service."""
    service: JobService = request.app.state.service
    return service


async def get_metrics(request: Request) -> Metrics:
    """The app's metrics registry."""
    metrics: Metrics = request.app.state.metrics
    return metrics


SettingsDep = Annotated[Settings, Depends(get_settings)]
ServiceDep = Annotated[JobService, Depends(get_service)]
MetricsDep = Annotated[Metrics, Depends(get_metrics)]
BearerDep = Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
AdminHeaderDep = Annotated[str | None, Depends(_admin_header)]


def _is_admin(
    settings: Settings, bearer: HTTPAuthorizationCredentials | None, header: str | None
) -> bool:
    if settings.admin_key is None:
        return False
    key = settings.admin_key.get_secret_value()
    supplied = bearer.credentials if bearer is not None else None
    return auth.key_matches(supplied, key) or auth.key_matches(header, key)


async def require_admin(settings: SettingsDep, bearer: BearerDep, header: AdminHeaderDep) -> None:
    """Let the request through when no admin key is set, or when it carries the key."""
    if settings.admin_key is None or _is_admin(settings, bearer, header):
        return
    raise Unauthorized(
        "this server requires the admin key to create and list jobs: send "
        "'Authorization: Bearer <key>' or 'X-Admin-Key: <key>' (AUTOLR_ADMIN_KEY)"
    )


@dataclass(frozen=True)
class JobCredentials:
    """What a request to a job route carries: the bearer token and whether it is the admin."""

    job_id: str
    token: str | None
    admin: bool


async def job_credentials(
    job_id: Annotated[
        str,
        Path(
            min_length=1,
            max_length=64,
            pattern=auth.JOB_ID_PATTERN,
            description="The job id from POST /v1/jobs.",
        ),
    ],
    settings: SettingsDep,
    bearer: BearerDep,
    header: AdminHeaderDep,
) -> JobCredentials:
    """The credentials for the job in the path; none at all is a 401 (checked in the loop,
    without touching the database: whether they match is the service's business)."""
    admin = _is_admin(settings, bearer, header)
    if bearer is None and not admin:
        raise Unauthorized(
            "this route needs the job's token: send 'Authorization: Bearer <token>' "
            "(the token came with POST /v1/jobs)"
        )
    return JobCredentials(job_id, bearer.credentials if bearer is not None else None, admin)


JobCredentialsDep = Annotated[JobCredentials, Depends(job_credentials)]


def authorized_job(credentials: JobCredentialsDep, service: ServiceDep) -> JobRecord:
    """The job named in the path, if the request carries its token (or the admin key).

    A wrong token and an unknown job are the same 404.
    """
    return service.authorize(credentials.job_id, credentials.token, admin=credentials.admin)


AdminDep = Annotated[None, Depends(require_admin)]
JobDep = Annotated[JobRecord, Depends(authorized_job)]
