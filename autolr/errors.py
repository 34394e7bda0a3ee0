"""Every exception autolr raises on purpose, as one tree (the only place it is drawn).

    AutoLRError                              base of everything autolr raises on purpose
    ├── ConfigError (ValueError)             an invalid TunerConfig value or combination (422)
    ├── ReportError (ValueError)             a report that cannot belong to the instruction it
    │                                        answers (422 bad_report; 413 from the client's view)
    ├── Conflict                             a report for a segment other than the one expected
    │                                        (409 wrong_segment, names the expected segment)
    ├── JobNotFound (LookupError)            an unknown job id, or a token that does not match (404)
    ├── JobFinished                          a report or a step after the job's budget is spent
    │                                        (409 finished)
    ├── SearchError (RuntimeError)           the GP could not be fitted or gave a non-finite
    │                                        posterior (the controller falls back to random)
    ├── SearchInputError (ValueError)        observations a searcher cannot accept (a bug)
    ├── Busy                                 server: lost a race with a concurrent report; retry
    │                                        (409 busy, retryable)
    ├── StaleVersion                         server store: a save lost a race (becomes Busy)
    ├── OutOfRange (ValueError)              server: an integer the database cannot store (422)
    ├── BadJobId (ValueError)                server: a job id that cannot be one (422)
    ├── TooManyLosses (ValueError)           server: more losses than AUTOLR_MAX_LOSSES_PER_REPORT
    │                                        (413)
    └── ClientError                          anything the training-side tuner raises
        ├── TransportError (ConnectionError) the controller could not be reached (retryable)
        │   └── ServerUnavailable            unreachable, timing out or failing (5xx) after the
        │                                    retries
        ├── TunerFinished (RuntimeError)     step() after the step budget is spent
        ├── SnapshotError (RuntimeError)     restore with no snapshot, or one that no longer fits
        ├── Diverged                         the service's record contradicts the run
        └── RequestRejected                  a final refusal that retrying cannot fix
            ├── JobCancelled                 409 cancelled: the job was cancelled on the server
            ├── ReportDiffers                409 report_differs: a resent report whose content
            │                                differs from the one the server recorded
            └── Unauthorized                 401: missing or wrong admin key / job token

Why one tree: a training script can catch ``AutoLRError`` for everything, ``TransportError`` to
decide about network trouble, and builtins (``ValueError``, ``RuntimeError``, ``ConnectionError``)
without importing autolr at all; and a refusal has one class at both ends of the wire (the
server raises ``JobCancelled``, `HttpTransport` decodes the answer into the same class). The
packages re-export their part: ``autolr.client.errors``, ``autolr.server.errors``,
``autolr.search``. HTTP statuses are mapped in one place, ``autolr.server.errors.STATUS_MAP``.

Each exception composes its own message: what is wrong and how to fix it.
"""

from __future__ import annotations

__all__ = [
    "AutoLRError",
    "BadJobId",
    "Busy",
    "ClientError",
    "ConfigError",
    "Conflict",
    "Diverged",
    "JobCancelled",
    "JobFinished",
    "JobNotFound",
    "OutOfRange",
    "ReportDiffers",
    "ReportError",
    "RequestRejected",
    "SearchError",
    "SearchInputError",
    "ServerUnavailable",
    "SnapshotError",
    "StaleVersion",
    "TooManyLosses",
    "TransportError",
    "TunerFinished",
    "Unauthorized",
]


class AutoLRError(Exception):
    """Base class of every error autolr raises on purpose.

    Attributes:
        http_status: the HTTP status of the answer this error was decoded from
            (`autolr.client.HttpTransport` sets it), so a tool can name the status without
            mapping classes back to statuses; None for an error raised in this process.
    """

    http_status: int | None = None


# --- the core: config, reports, jobs -------------------------------------------------------


class ConfigError(AutoLRError, ValueError):
    """An invalid configuration value or combination of values."""


class ReportError(AutoLRError, ValueError):
    """A report whose content does not fit the instruction it answers."""


class Conflict(AutoLRError):
    """A report for a segment other than the one the controller expects.

    Attributes:
        expected: the segment index the controller is waiting for.
        got: the segment index the report named.
    """

    def __init__(self, expected: int, got: int) -> None:
        self.expected = expected
        self.got = got
        super().__init__(
            f"report is for segment {got}, but the job expects segment {expected}; "
            f"resend the report for segment {expected} (reports are idempotent: "
            f"re-sending segment {expected - 1} returns the same instruction)"
        )


class JobNotFound(AutoLRError, LookupError):
    """An unknown job, or a job token that does not match (the two look the same)."""


class JobFinished(AutoLRError):
    """The job's step budget is spent; no more segments will be issued."""


# --- the searcher (autolr.search) ----------------------------------------------------------


class SearchError(AutoLRError, RuntimeError):
    """The GP surrogate could not be fitted or evaluated on these observations.

    Raised by ``GPSearcher.propose``; the message says what failed. Fall back to
    ``RandomSearcher`` for this proposal.
    """


class SearchInputError(AutoLRError, ValueError):
    """Observations or arguments that a searcher cannot accept.

    Raised for ``x_unit`` outside [0, 1] or non-finite, non-finite ``y``, lengths that
    differ, an empty observation set where one is needed, or an invalid constructor
    option. The message names the argument, the index and the value.
    """


# --- the server (autolr.server) ------------------------------------------------------------


class Busy(AutoLRError):
    """A concurrent request changed the job while this one was deciding; retrying is safe."""

    def __init__(self, job_id: str, segment: int) -> None:
        self.job_id = job_id
        super().__init__(
            f"job {job_id} changed while the report for segment {segment} was being applied "
            "(a concurrent report?); retry the same report"
        )


class StaleVersion(AutoLRError):
    """A save lost a race: the job changed since it was loaded (reload and decide again)."""

    def __init__(self, job_id: str, expected: int) -> None:
        self.job_id = job_id
        self.expected = expected
        super().__init__(
            f"job {job_id} is no longer at version {expected}: another request changed it first"
        )


class OutOfRange(AutoLRError, ValueError):
    """An integer field beyond what the database stores (or the protocol allows)."""

    def __init__(self, field: str, value: int, low: int, high: int) -> None:
        self.field = field
        shown = str(value) if len(str(value)) <= 40 else str(value)[:40] + "…"
        super().__init__(f"invalid request: {field}={shown}: must be an integer in {low}..{high}")


class BadJobId(AutoLRError, ValueError):
    """A job id that cannot be one: checked before any database sees it."""

    def __init__(self, job_id: str) -> None:
        super().__init__(
            f"invalid request: job_id={_shown(job_id)!r}: a job id is 1 to 64 characters of "
            "A-Z, a-z, 0-9, '_' and '-'"
        )


class TooManyLosses(AutoLRError, ValueError):
    """A report with more losses than this server accepts."""

    def __init__(self, field: str, count: int, limit: int) -> None:
        super().__init__(
            f"{field} has {count} values, but this server accepts at most {limit} per report "
            "(AUTOLR_MAX_LOSSES_PER_REPORT)"
        )


def _shown(text: str) -> str:
    """A bounded copy of an offending string, so an error never echoes megabytes."""
    return text if len(text) <= 200 else text[:200] + "…"


# --- the client (autolr.client) ------------------------------------------------------------


class ClientError(AutoLRError):
    """Base class of the errors raised by the training-side tuner."""


class TransportError(ClientError, ConnectionError):
    """The controller could not be reached, or answered with a transient failure.

    Transports raise it after their own bounded retries. The tuner treats it as retryable: unless
    ``strict=True`` it keeps training at the current LR and reports again later (reports are
    idempotent), so a network problem never stops a training run.
    """


class ServerUnavailable(TransportError):
    """The server could not be reached, timed out or kept failing, after every retry.

    Attributes:
        attempts: how many requests were tried.
        url: the URL of the last attempt.
    """

    def __init__(self, url: str, attempts: int, cause: str) -> None:
        self.url = url
        self.attempts = attempts
        super().__init__(f"autolr server unavailable at {url} after {attempts} attempt(s): {cause}")


class TunerFinished(ClientError, RuntimeError):
    """`AutoLR.step` was called after the job's step budget was spent.

    Attributes:
        total_steps: the job's budget (probe steps included), or None.
    """

    def __init__(self, total_steps: int | None) -> None:
        self.total_steps = total_steps
        budget = f"total_steps={total_steps}" if total_steps is not None else "its budget"
        super().__init__(
            f"the tuner finished: {budget} (probe steps included) is spent, so there is no LR "
            "left to give; stop the loop when `tuner.finished` turns true, or raise total_steps"
        )


class SnapshotError(ClientError, RuntimeError):
    """A stage snapshot is missing or no longer matches the model and optimizer.

    Raised when an instruction asks for a restore before any snapshot was taken (only possible
    with a controller that breaks the protocol), or when the model's parameters changed shape
    since the snapshot (a model edited mid-run).
    """


class Diverged(ClientError):
    """The service's record contradicts the run (another decision for a segment already run)."""


class RequestRejected(ClientError):
    """The server refused the request for good (retrying the same request cannot help).

    The server raises its subclasses itself; `HttpTransport` decodes the answer into the same
    classes, and into a plain ``RequestRejected`` for an answer it does not know.
    """


class JobCancelled(RequestRejected):
    """The job was cancelled on the server (``DELETE /v1/jobs/{id}``); it takes no more reports.

    Attributes:
        job_id: the cancelled job, when known (the server knows it; a decoded answer may not).
    """

    def __init__(self, message: str, *, job_id: str | None = None) -> None:
        self.job_id = job_id
        super().__init__(message)

    @classmethod
    def of(cls, job_id: str) -> JobCancelled:
        """The server's refusal of a report on the cancelled job ``job_id``."""
        return cls(f"job {job_id} was cancelled; it takes no more reports", job_id=job_id)


class ReportDiffers(RequestRejected):
    """A report for a segment the server already recorded, with different content.

    The server keeps what it recorded (reports are never silently replaced); the message says
    what differs. `AutoLR` reconciles with the server's record when it meets one.

    Attributes:
        segment: the segment whose recorded report differs, when known.
        job_id: the job, when known.
    """

    reconcilable = True

    def __init__(self, message: str, segment: int | None, *, job_id: str | None = None) -> None:
        self.segment = segment
        self.job_id = job_id
        super().__init__(message)

    @classmethod
    def recorded(cls, job_id: str, segment: int, what: str) -> ReportDiffers:
        """The server's refusal of a resent report for ``segment`` that differs in ``what``."""
        return cls(
            f"the report for segment {segment} differs from the one job {job_id} recorded: "
            f"{what}; the recorded report stands (read it with GET /v1/jobs/{job_id}/reports)",
            segment,
            job_id=job_id,
        )


class Unauthorized(RequestRejected):
    """The server refused the credentials (admin key or job token)."""
