"""The one place where exceptions become HTTP answers.

The exceptions are defined once, in ``autolr.errors`` (the tree is drawn there); the ones the
server raises are re-exported here. `STATUS_MAP` below gives each its status and ``code``:
404 ``not_found``, 409 ``wrong_segment`` / ``finished`` / ``cancelled`` / ``busy`` /
``report_differs``, 413 ``too_many_losses``, 422 ``out_of_range`` / ``bad_job_id`` /
``bad_report`` / ``bad_config``, 401 ``unauthorized``.

A body over AUTOLR_MAX_BODY_BYTES gets 413 ``body_too_large`` from `limits.BodyLimit` (built by
`body_too_large_response` below) before any route runs.

Every error answer is JSON with ``message`` (one readable line), ``code`` (above) and
``detail`` (FastAPI's: the message, or for request validation the list of problems with
``loc``). ``Busy`` answers also carry ``retryable: true`` and ``Retry-After``; ``Conflict``
carries ``expected_segment``.
"""

from __future__ import annotations

import logging
import math
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import Scope

from autolr.errors import (
    AutoLRError,
    BadJobId,
    Busy,
    ConfigError,
    Conflict,
    JobCancelled,
    JobFinished,
    JobNotFound,
    OutOfRange,
    ReportDiffers,
    ReportError,
    TooManyLosses,
    Unauthorized,
)

log = logging.getLogger(__name__)


def not_found(job_id: str) -> JobNotFound:
    """The one 404 for both an unknown job and a wrong token (so ids leak nothing)."""
    return JobNotFound(
        f"job {job_id} not found, or the token does not grant access to it; send the job's "
        "token as 'Authorization: Bearer <token>'"
    )


#: Exception → (status, code). The only status mapping in the server; first match wins.
STATUS_MAP: tuple[tuple[type[Exception], int, str], ...] = (
    (JobNotFound, 404, "not_found"),
    (Conflict, 409, "wrong_segment"),
    (JobFinished, 409, "finished"),
    (JobCancelled, 409, "cancelled"),
    (Busy, 409, "busy"),
    (ReportDiffers, 409, "report_differs"),
    (TooManyLosses, 413, "too_many_losses"),
    (OutOfRange, 422, "out_of_range"),
    (BadJobId, 422, "bad_job_id"),
    (ReportError, 422, "bad_report"),
    (ConfigError, 422, "bad_config"),
    (Unauthorized, 401, "unauthorized"),
)

_HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    413: "body_too_large",
    415: "unsupported_media_type",
}


def status_for(exc: Exception) -> tuple[int, str]:
    """HTTP status and error code for an exception (500 ``internal`` if unmapped)."""
    for cls, status, code in STATUS_MAP:
        if isinstance(exc, cls):
            return status, code
    return 500, "internal"


def _count(request: Request, status: int, code: str) -> None:
    metrics = getattr(request.app.state, "metrics", None)
    if metrics is not None:
        metrics.errors.labels(code=str(status), error=code).inc()


def _safe(value: Any, depth: int = 0) -> Any:
    """A JSON-safe, bounded copy of an offending input (no NaN tokens, no megabyte echoes)."""
    if isinstance(value, float) and not math.isfinite(value):
        return repr(value)
    if isinstance(value, str | int | float | bool) or value is None:
        return value if not isinstance(value, str) or len(value) <= 200 else value[:200] + "…"
    if depth < 2 and isinstance(value, dict) and len(value) <= 50:
        return {str(k): _safe(v, depth + 1) for k, v in value.items()}
    if depth < 2 and isinstance(value, list | tuple) and len(value) <= 20:
        return [_safe(v, depth + 1) for v in value]
    text = repr(value)
    return text if len(text) <= 200 else text[:200] + "…"


def describe_request_errors(errors: list[dict[str, Any]]) -> str:
    """One line per problem, ``field=value: message`` (like `describe_validation_error`)."""
    parts = []
    for err in errors:
        loc = [str(p) for p in err.get("loc", ())]
        where = ".".join(loc[1:] if loc[:1] in (["body"], ["query"], ["path"]) else loc)
        msg = str(err.get("msg", "invalid")).removeprefix("Value error, ")
        if err.get("type") == "extra_forbidden":
            parts.append(f"{where}: unknown field (check the spelling)")
        elif err.get("type") == "json_invalid":
            parts.append(
                f"malformed JSON at character {loc[-1]}: {err.get('ctx', {}).get('error')}"
            )
        elif where and "input" in err and err.get("type") != "missing":
            parts.append(f"{where}={_safe(err['input'])!r}: {msg}")
        elif where:
            parts.append(f"{where}: {msg}")
        else:
            parts.append(msg)
    return "invalid request: " + "; ".join(parts)


def _error(status: int, code: str, message: str, **extra: Any) -> JSONResponse:
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    if extra.get("retryable"):
        headers = {"Retry-After": "0"}
    body = {"message": message, "code": code, "detail": extra.pop("detail", message), **extra}
    return JSONResponse(body, status_code=status, headers=headers)


async def _autolr_error(request: Request, exc: Exception) -> JSONResponse:
    status, code = status_for(exc)
    _count(request, status, code)
    extra: dict[str, Any] = {}
    if isinstance(exc, Conflict):
        extra["expected_segment"] = exc.expected
    if isinstance(exc, Busy):
        extra["retryable"] = True
    if isinstance(exc, ReportDiffers):
        extra["segment"] = exc.segment
    log.info("%s: %s", code, exc, extra={"status": status})
    return _error(status, code, str(exc), **extra)


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = list(exc.errors())
    _count(request, 422, "validation_error")
    detail = [
        {
            "loc": list(err.get("loc", ())),
            "msg": str(err.get("msg", "")),
            "type": str(err.get("type", "")),
            **({"input": _safe(err["input"])} if "input" in err else {}),
        }
        for err in errors[:50]
    ]
    return _error(422, "validation_error", describe_request_errors(errors[:10]), detail=detail)


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    code = _HTTP_CODES.get(exc.status_code, "http_error")
    _count(request, exc.status_code, code)
    response = _error(exc.status_code, code, str(exc.detail))
    for key, value in (exc.headers or {}).items():
        response.headers[key] = value
    return response


def body_too_large_response(scope: Scope, limit: int) -> JSONResponse:
    """The 413 for a request body over ``AUTOLR_MAX_BODY_BYTES`` (sent by the body limiter)."""
    app = scope.get("app")
    metrics = getattr(getattr(app, "state", None), "metrics", None)
    if metrics is not None:
        metrics.errors.labels(code="413", error="body_too_large").inc()
    return _error(
        413,
        "body_too_large",
        f"request body larger than this server's limit of {limit} bytes "
        "(AUTOLR_MAX_BODY_BYTES); report fewer losses per request",
    )


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    _count(request, 500, "internal")
    log.exception("unhandled error on %s %s", request.method, request.url.path)
    return _error(
        500, "internal", "internal server error; retrying is safe (reports are idempotent)"
    )


def install_error_handlers(app: FastAPI) -> None:
    """Register the handlers that turn every exception into the JSON error answer."""
    app.add_exception_handler(AutoLRError, _autolr_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(Exception, _unexpected)


__all__ = [
    "STATUS_MAP",
    "BadJobId",
    "Busy",
    "ConfigError",
    "JobCancelled",
    "OutOfRange",
    "ReportDiffers",
    "TooManyLosses",
    "Unauthorized",
    "install_error_handlers",
    "not_found",
    "status_for",
]
