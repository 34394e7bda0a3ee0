"""Structured logging: one JSON object per line, with the job id and segment when known.

Call sites pass context through ``extra=`` (``log.info("report applied", extra={"job_id": ...,
"segment": ...})``); the formatter copies every such field into the line, so log tools can
filter by job without parsing messages.

Secrets never reach a line: `RedactSecrets` replaces the value of any credential-named query
parameter (``?token=``, ``?key=``...) and any ``Bearer`` credential in a message and its
arguments, so the access log stays clean even when a client puts a token in a URL.
"""

from __future__ import annotations

import json
import logging
import re
from datetime import UTC, datetime
from typing import Any

#: Attributes every LogRecord has; anything else on a record came from ``extra=``.
_STANDARD = frozenset(vars(logging.makeLogRecord({})).keys()) | {
    "message",
    "asctime",
    "color_message",  # uvicorn's ANSI-coloured copy of the message
}


#: What stands in for a redacted secret.
REDACTED = "[redacted]"
#: Query parameters whose values are credentials (case-insensitive).
SECRET_PARAMS = ("token", "key", "admin_key", "access_token", "password", "secret")
_SECRET_QUERY = re.compile(
    r"([?&;](?:%s)=)[^&;#\s\"']*" % "|".join(SECRET_PARAMS),  # noqa: UP031
    re.IGNORECASE,
)
_BEARER = re.compile(r"(bearer\s+)[^\s\"',;]+", re.IGNORECASE)
#: Any query value that looks like a job token (32+ URL-safe characters; tokens have 43),
#: whatever the parameter is called.
_TOKEN_LIKE = re.compile(r"([?&;][^=&;#\s]*=)[A-Za-z0-9_-]{32,}(?=[&;#\s\"']|$)")


def redact(text: str) -> str:
    """``text`` with credential values in query strings and Bearer headers replaced."""
    text = _SECRET_QUERY.sub(r"\1" + REDACTED, text)
    text = _TOKEN_LIKE.sub(r"\1" + REDACTED, text)
    return _BEARER.sub(r"\1" + REDACTED, text)


class RedactSecrets(logging.Filter):
    """Rewrites a record's message and string arguments with `redact` (never drops it).

    Arguments are redacted one by one, so formatters that read them (uvicorn's access log
    formatter unpacks its five) keep working.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str):
            record.msg = redact(record.msg)
        if isinstance(record.args, tuple):
            record.args = tuple(redact(a) if isinstance(a, str) else a for a in record.args)
        elif isinstance(record.args, dict):
            record.args = {
                k: redact(v) if isinstance(v, str) else v for k, v in record.args.items()
            }
        return True


_REDACT = RedactSecrets()


def install_redaction() -> None:
    """Put `RedactSecrets` on uvicorn's loggers (idempotent), whoever configured logging:
    its access log prints each request's path with the query string."""
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logger = logging.getLogger(name)
        if _REDACT not in logger.filters:
            logger.addFilter(_REDACT)


class JsonFormatter(logging.Formatter):
    """Formats a record as one JSON line: time, level, logger, message, then extras."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_"):
                line[key] = value
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str)


def configure_logging(level: str = "info") -> None:
    """Send every logger (ours, uvicorn's, SQLAlchemy's) to stderr as JSON lines."""
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter())
    handler.addFilter(_REDACT)  # every record that reaches the output, whatever its logger
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logger = logging.getLogger(name)
        logger.handlers[:] = []
        logger.propagate = True
    install_redaction()
