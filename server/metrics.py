"""Prometheus metrics, one registry per app (so several apps in one process never collide).

autolr_jobs{status}                  gauge, read from the store at scrape time (so it is
                                     right across replicas and restarts); status: job state
autolr_jobs_created_total            counter
autolr_reports_total{outcome}        counter: applied, duplicate, merged, differs, rejected, busy
autolr_decision_seconds              histogram: time to rebuild the controller and decide
autolr_errors_total{code,error}      counter: error answers by HTTP status code and error code
autolr_http_requests_total{method,route,code}   counter: every answer (`HttpMetrics`)
autolr_http_request_duration_seconds{method,route}  histogram: time to answer
autolr_build_info{version,python}    gauge, always 1: what is running
process_*                            CPU, memory, file descriptors, start time (Linux)

Conventions (prometheus.io "metric and label naming"): each label keeps one meaning across
metrics (``status`` is a job's state, ``code`` an HTTP status code, ``route`` the route's
template, never the raw path, so ids do not multiply series); counters end in ``_total``
and no ``*_created`` series are exported (`prometheus_client.disable_created_metrics`).

With ``--workers N`` each worker process counts its own requests (a scrape reaches one of
them); the jobs gauge comes from the database and is the same everywhere. Scrape replicas
one by one (or run one worker per container) for exact counters.
"""

from __future__ import annotations

import logging
import platform
import time
from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Histogram,
    Info,
    ProcessCollector,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from starlette.types import ASGIApp, Message, Receive, Scope, Send

import autolr

if TYPE_CHECKING:
    from autolr.server.store import JobStatus

log = logging.getLogger(__name__)

#: Decision latency buckets, in seconds: a train/anneal decision takes milliseconds, a GP fit
#: tens of milliseconds to seconds.
DECISION_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
#: Request latency buckets, in seconds: health checks take well under a millisecond, reports
#: that fit a GP up to seconds.
REQUEST_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
#: The ``route`` label of a request that matched no route (a 404 on an unknown path).
UNMATCHED_ROUTE = "unmatched"

# ``*_created`` series double every counter and histogram and nobody reads them; the switch is
# process-wide in prometheus_client, and every registry of this process is ours.
disable_created_metrics()  # type: ignore[no-untyped-call]  # prometheus_client: unannotated


class _JobsCollector(Collector):
    def __init__(self, counts: Callable[[], Mapping[JobStatus, int]]) -> None:
        self._counts = counts

    def collect(self) -> Iterator[Metric]:
        gauge = GaugeMetricFamily("autolr_jobs", "Jobs by status.", labels=["status"])
        try:
            counts = self._counts()
        except Exception:  # a scrape must not fail because the database hiccuped
            log.warning("could not count jobs for /metrics", exc_info=True)
            return
        for status, count in sorted(counts.items()):
            gauge.add_metric([status], count)
        yield gauge

    def describe(self) -> Iterator[Metric]:
        # Describing would call the store at registration time; say nothing instead.
        return iter(())


class Metrics:
    """The app's metrics. ``job_counts`` is called on every scrape."""

    def __init__(self, job_counts: Callable[[], Mapping[JobStatus, int]]) -> None:
        self.registry = CollectorRegistry()
        self.jobs_created = Counter("autolr_jobs_created", "Jobs created.", registry=self.registry)
        self.reports = Counter(
            "autolr_reports", "Reports received, by outcome.", ["outcome"], registry=self.registry
        )
        self.decision_seconds = Histogram(
            "autolr_decision_seconds",
            "Time to rebuild a job's controller and decide the next segment.",
            buckets=DECISION_BUCKETS,
            registry=self.registry,
        )
        self.errors = Counter(
            "autolr_errors",
            "Error answers, by HTTP status code and error code.",
            ["code", "error"],
            registry=self.registry,
        )
        self.requests = Counter(
            "autolr_http_requests",
            "HTTP answers, by method, route template and status code.",
            ["method", "route", "code"],
            registry=self.registry,
        )
        self.request_seconds = Histogram(
            "autolr_http_request_duration_seconds",
            "Time from a request's arrival to its answer's start, by method and route.",
            ["method", "route"],
            buckets=REQUEST_BUCKETS,
            registry=self.registry,
        )
        Info("autolr_build", "The running autolr.", registry=self.registry).info(
            {"version": autolr.__version__, "python": platform.python_version()}
        )
        ProcessCollector(registry=self.registry)
        self.registry.register(_JobsCollector(job_counts))

    def render(self) -> bytes:
        """The text exposition format of every metric."""
        return generate_latest(self.registry)


class HttpMetrics:
    """Counts every answer and times it, as a pure-ASGI middleware (no per-request thread).

    The route label is the matched route's template (``/v1/jobs/{job_id}``), read after the
    app ran, so job ids never become label values.
    """

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        code = 500  # an app that raises before answering

        async def send_and_count(message: Message) -> None:
            nonlocal code
            if message["type"] == "http.response.start":
                code = int(message["status"])
                self.metrics.request_seconds.labels(scope["method"], _route(scope)).observe(
                    time.perf_counter() - started
                )
            await send(message)

        try:
            await self.app(scope, receive, send_and_count)
        finally:
            self.metrics.requests.labels(scope["method"], _route(scope), str(code)).inc()


def _route(scope: Scope) -> str:
    route = scope.get("route")
    path = getattr(route, "path", None)
    return path if isinstance(path, str) else UNMATCHED_ROUTE
