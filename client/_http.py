"""`HttpTransport`: the controller conversation over HTTP, with timeouts and bounded retries.

Errors it raises are the client's part of the one tree in ``autolr.errors`` (re-exported by
``autolr.client.errors``): ``Conflict`` (409 wrong_segment), ``JobFinished`` (409 finished),
``JobNotFound`` (404), ``ConfigError`` / ``ReportError`` (422/413 on create / report),
``ServerUnavailable`` (a ``TransportError``: no answer after the retries) and the final refusals
under ``RequestRejected``: ``JobCancelled``, ``ReportDiffers``, ``Unauthorized``. They are
re-exported here too, where they were first defined.

Retrying is safe because reports are idempotent: re-sending the report for segment n returns
the same instruction n+1. Connection failures, timeouts, 5xx, 429 and 409 ``busy`` (a
concurrent report won a race) are retried with exponential backoff and full jitter; every other
answer is final.

A call may be given a ``budget`` (seconds): all its attempts together then take at most about
that long. A budgeted call does not wait out a dead server: a refused connection or a timeout
ends it at once (the caller reconnects on its own clock); only 5xx, 429 and ``busy`` answers
are retried, within the budget. `AutoLR` budgets every call it makes from a training step.
"""

from __future__ import annotations

import logging
import math
import random
import sys
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import httpx

from autolr.errors import (
    AutoLRError,
    ConfigError,
    Conflict,
    JobCancelled,
    JobFinished,
    JobNotFound,
    ReportDiffers,
    ReportError,
    RequestRejected,
    ServerUnavailable,
    TransportError,
    Unauthorized,
)
from autolr.protocol import Instruction, Report

if TYPE_CHECKING:
    from autolr.config import TunerConfig

__all__ = [
    "DEFAULT_TIMEOUT",
    "HttpTransport",
    "JobCancelled",
    "ReportDiffers",
    "RequestRejected",
    "ServerUnavailable",
    "TransportError",
    "Unauthorized",
]

log = logging.getLogger(__name__)

#: Connecting should be quick on a LAN; a report's answer may include a GP fit (seconds).
DEFAULT_TIMEOUT = httpx.Timeout(connect=5.0, read=60.0, write=30.0, pool=5.0)
_RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
#: A budgeted call makes no further attempt with less than this many seconds left.
_MIN_ATTEMPT_S = 0.02
#: Report fields newer than the first protocol: sent only when used.
_NEW_REPORT_FIELDS = ("total_steps", "branches")


def _network_errors(
    client: Any,
) -> tuple[tuple[type[Exception], ...], tuple[type[Exception], ...]]:
    """The connect-error and transport-error classes of ``client``'s HTTP library.

    httpx's, plus those of an httpx-compatible library the client is built on (Starlette's
    ``TestClient`` is built on ``httpx2``), so an injected client's network failures are
    retried like httpx's.
    """
    connect: list[type[Exception]] = [httpx.ConnectError]
    network: list[type[Exception]] = [httpx.TransportError]
    for cls in type(client).__mro__:
        module = sys.modules.get(cls.__module__.split(".")[0])
        extra_connect = getattr(module, "ConnectError", None)
        extra_network = getattr(module, "TransportError", None)
        if (
            isinstance(extra_connect, type)
            and isinstance(extra_network, type)
            and issubclass(extra_connect, Exception)
            and issubclass(extra_network, Exception)
            and extra_network not in network
        ):
            connect.append(extra_connect)
            network.append(extra_network)
    return tuple(connect), tuple(network)


def _in_process(client: Any) -> bool:
    """Whether ``client`` serves requests in this process (Starlette's ``TestClient``)."""
    return any(cls.__module__.startswith("starlette.") for cls in type(client).__mro__)


def _message(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text[:500] or response.reason_phrase
    if isinstance(body, dict):
        for key in ("message", "detail"):
            if isinstance(body.get(key), str):
                return str(body[key])
    return str(body)[:500]


def _code(response: httpx.Response) -> str | None:
    try:
        body = response.json()
    except ValueError:
        return None
    return body.get("code") if isinstance(body, dict) else None


class HttpTransport:
    """Talks to an autolr server. Implements ``autolr.client._transport.Transport``.

    Args:
        base_url: the server, e.g. ``"http://tuner:8000"``.
        token: the job token, when attaching to an existing job (else `start` sets it).
        job_id: the job, when attaching to an existing job.
        admin_key: sent on job creation and job listing (servers with ``AUTOLR_ADMIN_KEY``
            require it), and on a job's routes when there is no token (the key opens every job).
        name: the job's name on the server (lists, dashboard, export); None: unnamed.
        timeout: timeouts of the client the transport creates; explicit by default
            (`DEFAULT_TIMEOUT`), or one number of seconds for every phase. An injected
            ``client`` keeps its own.
        retries: retries after the first attempt, for retryable failures.
        backoff: base delay in seconds; attempt n waits ``uniform(0, min(backoff_max,
            backoff·2ⁿ))`` (full jitter), or the server's ``Retry-After`` when longer.
        backoff_max: cap of one delay, in seconds.
        strict: when False (the default), once a call has failed with `ServerUnavailable`
            the next calls make a single attempt each until one succeeds, so a server that is
            down costs the training loop one connection attempt per segment boundary instead
            of a full backoff sequence. When True every call retries fully.
        client: an `httpx.Client` (or compatible: FastAPI's ``TestClient``) to send requests
            with; by default the transport creates one and closes it in `close`.

    Example:
        >>> transport = HttpTransport("http://127.0.0.1:8000", retries=2, backoff=0.1)
        >>> transport.job_id is None
        True
        >>> transport.close()
    """

    #: `start`, `report`, `job` and `recorded_reports` take ``budget=`` (seconds, all attempts).
    accepts_budget = True

    def __init__(
        self,
        base_url: str,
        *,
        token: str | None = None,
        job_id: str | None = None,
        admin_key: str | None = None,
        name: str | None = None,
        timeout: httpx.Timeout | float = DEFAULT_TIMEOUT,
        retries: int = 4,
        backoff: float = 0.5,
        backoff_max: float = 8.0,
        strict: bool = False,
        client: httpx.Client | Any | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if retries < 0 or backoff < 0 or backoff_max < 0:
            raise ValueError(
                f"retries={retries}, backoff={backoff} and backoff_max={backoff_max} must be >= 0"
            )
        self.base_url = base_url.rstrip("/")
        self._token = token
        self._job_id = job_id
        self._admin_key = admin_key
        self._name = name
        self.retries = retries
        self.backoff = backoff
        self.backoff_max = backoff_max
        self.strict = strict
        self._owns_client = client is None
        self._client = client if client is not None else httpx.Client(timeout=timeout)
        self._sleep = sleep
        self._unavailable = False
        self._connect_errors, self._network_errors = _network_errors(self._client)
        # Per-request timeouts bound a budgeted call; an in-process client (FastAPI's
        # TestClient) has no network to wait for and warns about them.
        self._timeouts = not _in_process(self._client)

    # ------------------------------------------------------------------ Transport
    @property
    def job_id(self) -> str | None:
        """The job's id, once `start` or `load_state_dict` ran."""
        return self._job_id

    def start(self, config: TunerConfig, *, budget: float | None = None) -> Instruction:
        """Create a job on the server and return its first instruction.

        ``budget``: the most seconds the call may take, all attempts together (None: the
        transport's own timeouts and retries).

        Raises:
            ConfigError: the server refused the config (422).
            Unauthorized: the server needs an admin key (pass ``admin_key=``).
            ServerUnavailable: no answer after the retries.
        """
        headers = {"Authorization": f"Bearer {self._admin_key}"} if self._admin_key else {}
        # Only failures where the server surely created nothing are retried: a retried timeout
        # could leave an orphan job behind.
        body = self._request(
            "POST",
            "/v1/jobs",
            json=config.model_dump(mode="json") | ({"name": self._name} if self._name else {}),
            headers=headers,
            create=True,
            budget=budget,
        )
        self._job_id = str(body["job_id"])
        self._token = str(body["token"])
        # the page's URL, never the token (log in on the page, or send it as a header)
        log.info(
            "autolr: job %s created; dashboard: %s/dashboard/jobs/%s",
            self._job_id,
            self.base_url,
            self._job_id,
        )
        return Instruction.model_validate(body["instruction"])

    def report(self, report: Report, *, budget: float | None = None) -> Instruction:
        """Send a segment's report and return the next instruction (NaN/inf travel as null).

        ``budget``: the most seconds the call may take, all attempts together.

        Raises:
            Conflict: the server awaits another segment (``expected`` says which).
            ReportDiffers: the server recorded this segment with other losses.
            JobFinished: the job's budget is spent.
            JobCancelled: the job was cancelled.
            ReportError: the server refused the report (422 or 413).
            JobNotFound: the job is unknown or the token does not match.
            ServerUnavailable: no answer after the retries.
        """
        job_id = self._require_job()
        body = self._request(
            "POST",
            f"/v1/jobs/{job_id}/reports",
            # the optional fields only when used: a server from before them refuses them
            content=_report_body(report),
            headers={**self._auth(), "Content-Type": "application/json"},
            segment=report.segment,
            budget=budget,
        )
        return Instruction.model_validate(body)

    def state_dict(self) -> dict[str, Any]:
        """What reattaching needs: server, job id and token (a secret: keep checkpoints safe)."""
        return {
            "kind": "http",
            "base_url": self.base_url,
            "job_id": self._require_job(),
            "token": self._token,
        }

    def load_state_dict(self, state: dict[str, Any]) -> Instruction:
        """Reattach to the job in ``state`` and return the instruction the server awaits.

        This asks the server (``GET /v1/jobs/{id}``), so it raises `ServerUnavailable` when the
        server is down; `attach` reattaches without a request. The transport's own
        ``base_url`` is used, not the one in ``state`` (the server may have moved).
        """
        self.attach(state)
        return Instruction.model_validate(self.job()["current"])

    def attach(self, state: dict[str, Any]) -> None:
        """Reattach to the job in ``state`` without talking to the server.

        Raises:
            ValueError: ``state`` is not from an `HttpTransport` (e.g. embedded mode).
        """
        if state.get("kind") != "http":
            raise ValueError(
                f"not an HttpTransport state (kind={state.get('kind')!r}); a run checkpointed "
                "in embedded mode cannot resume against a server"
            )
        self._job_id = str(state["job_id"])
        self._token = state.get("token")

    def close(self) -> None:
        """Close the HTTP client if this transport created it. Never raises."""
        if self._owns_client:
            try:
                self._client.close()
            except Exception:  # close must never raise into the training loop
                log.debug("closing the HTTP client failed", exc_info=True)

    # ------------------------------------------------------------------ extras
    def job(self, *, budget: float | None = None) -> dict[str, Any]:
        """The job as the server shows it (``GET /v1/jobs/{id}``): status, schedule, stages."""
        job_id = self._require_job()
        return self._request("GET", f"/v1/jobs/{job_id}", headers=self._auth(), budget=budget)

    def recorded_reports(
        self, start: int = 0, stop: int | None = None, *, budget: float | None = None
    ) -> list[Report]:
        """The reports the server recorded for segments ``start`` up to ``stop`` (exclusive).

        Pages through ``GET /v1/jobs/{id}/reports``; with a ``budget``, all pages together.
        """
        job_id = self._require_job()
        deadline = None if budget is None else time.monotonic() + budget
        found: list[Report] = []
        cursor = start
        while stop is None or cursor < stop:
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                raise ServerUnavailable(self.base_url, 0, "no time left in the call's budget")
            params: dict[str, int] = {"start": cursor}
            if stop is not None:
                params["stop"] = stop
            page = self._request(
                "GET",
                f"/v1/jobs/{job_id}/reports",
                params=params,
                headers=self._auth(),
                budget=remaining,
            )
            found += [Report.model_validate(r["report"]) for r in page["reports"]]
            nxt = page.get("next_start")
            if nxt is None:
                break
            cursor = int(nxt)
        return found

    def cancel(self) -> dict[str, Any]:
        """Cancel the job on the server; the job as the server shows it then (``JobInfo``)."""
        job_id = self._require_job()
        return self._request("DELETE", f"/v1/jobs/{job_id}", headers=self._auth())

    def list_jobs(
        self, *, status: str | None = None, limit: int = 100, offset: int = 0
    ) -> dict[str, Any]:
        """A page of the server's jobs, newest first (``GET /v1/jobs``): ``jobs`` and
        ``next_offset`` (None on the last page). Sends the admin key when one was given.

        Raises:
            Unauthorized: the server needs the admin key (pass ``admin_key=``).
            ServerUnavailable: no answer after the retries.
        """
        params: dict[str, Any] = {"limit": limit, "offset": offset}
        if status is not None:
            params["status"] = status
        headers = {"X-Admin-Key": self._admin_key} if self._admin_key else {}
        return self._request("GET", "/v1/jobs", params=params, headers=headers)

    def __enter__(self) -> HttpTransport:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ internals
    def _require_job(self) -> str:
        if self._job_id is None:
            raise RuntimeError("HttpTransport has no job yet: call start() or load_state_dict()")
        return self._job_id

    def _auth(self) -> dict[str, str]:
        """A job route's credentials: the job's token, else the admin key (it opens every job)."""
        if self._token:
            return {"Authorization": f"Bearer {self._token}"}
        return {"X-Admin-Key": self._admin_key} if self._admin_key else {}

    def _delay(self, attempt: int, response: httpx.Response | None) -> float:
        delay = random.uniform(0.0, min(self.backoff_max, self.backoff * 2**attempt))
        if response is not None:
            try:
                retry_after = float(response.headers.get("Retry-After", "nan"))
            except ValueError:
                retry_after = math.nan
            if math.isfinite(retry_after):
                delay = max(delay, min(retry_after, self.backoff_max))
        return delay

    def _request(
        self,
        method: str,
        path: str,
        *,
        create: bool = False,
        segment: int | None = None,
        budget: float | None = None,
        **kwargs: Any,
    ) -> dict[str, Any]:
        url = self.base_url + path
        deadline = None if budget is None else time.monotonic() + max(budget, 0.0)
        if deadline is not None:
            attempts = self.retries + 1
        else:
            attempts = 1 if (self._unavailable and not self.strict) else self.retries + 1
        cause = "no attempt made"
        response: httpx.Response | None = None
        attempt = 0
        for attempt in range(attempts):
            if attempt:
                delay = self._delay(attempt - 1, response)
                if deadline is not None:
                    left = deadline - time.monotonic()
                    if left <= _MIN_ATTEMPT_S:
                        break
                    delay = min(delay, left / 2)
                self._sleep(delay)
            if deadline is not None:
                left = deadline - time.monotonic()
                if left <= 0:
                    cause = "no time left in the call's budget"
                    break
                if self._timeouts:
                    kwargs["timeout"] = left
            response = None
            try:
                response = self._client.request(method, url, **kwargs)
            except self._connect_errors as exc:
                cause = f"cannot connect ({exc})"
                if deadline is not None:
                    break  # the caller reconnects on its own clock
                continue
            except self._network_errors as exc:  # timeouts, resets: the request may have run
                cause = f"{type(exc).__name__} ({exc})"
                if create or deadline is not None:
                    break
                continue
            if response.is_success:
                self._unavailable = False
                body = response.json()
                if not isinstance(body, dict):
                    raise RequestRejected(f"unexpected answer from {url}: {str(body)[:200]}")
                return body
            code = _code(response)
            retryable = response.status_code in _RETRY_STATUSES or (
                response.status_code == 409 and code == "busy"
            )
            if create and response.status_code not in (429, 503):
                retryable = False
            if not retryable:
                self._unavailable = False
                raise self._error(response, code, create=create, segment=segment)
            cause = f"HTTP {response.status_code}: {_message(response)}"
        self._unavailable = True
        raise ServerUnavailable(url, attempt + 1, cause)

    @classmethod
    def _error(
        cls, response: httpx.Response, code: str | None, *, create: bool, segment: int | None
    ) -> AutoLRError:
        """The tree's error for a final refusal, carrying the answer's status."""
        error = cls._decode(response, code, create=create, segment=segment)
        error.http_status = response.status_code
        return error

    @staticmethod
    def _decode(
        response: httpx.Response, code: str | None, *, create: bool, segment: int | None
    ) -> AutoLRError:
        status, message = response.status_code, _message(response)
        if status == 409 and code == "wrong_segment":
            try:
                expected = int(response.json()["expected_segment"])
            except (ValueError, KeyError, TypeError):
                expected = -1
            return Conflict(expected=expected, got=segment if segment is not None else -1)
        if status == 409 and code == "finished":
            return JobFinished(message)
        if status == 409 and code == "cancelled":
            return JobCancelled(message)
        if status == 409 and code == "report_differs":
            return ReportDiffers(message, segment)
        if status == 404:
            return JobNotFound(message)
        if status == 401:
            return Unauthorized(message)
        if status in (413, 422):
            return ConfigError(message) if create else ReportError(message)
        return RequestRejected(f"HTTP {status} from {response.request.url}: {message}")


def _report_body(report: Report) -> bytes:
    """The report as JSON, without the newer optional fields it leaves unused: a server from
    before them (``extra="forbid"``) then takes the reports of runs that do not use them."""
    unused = {name for name in _NEW_REPORT_FIELDS if not getattr(report, name)}
    return report.model_dump_json(exclude=unused).encode()
