"""Prometheus metrics, one registry per app (so several apps in one process never collide).

autolr_jobs{status}                  gauge, read from the store at scrape time (so it is
                                     right across replicas and restarts)
autolr_jobs_created_total            counter
autolr_reports_total{outcome}        counter: applied, duplicate, merged, differs, rejected, busy
autolr_decision_seconds              histogram: time to rebuild the controller and decide
autolr_errors_total{status,code}     counter: error answers by HTTP status and error code

With ``--workers N`` each worker process counts its own requests (a scrape reaches one of
them); the jobs gauge comes from the database and is the same everywhere. Scrape replicas
one by one (or run one worker per container) for exact counters.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Mapping

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

log = logging.getLogger(__name__)

#: Decision latency buckets, in seconds: a train/anneal decision takes milliseconds, a GP fit
#: tens of milliseconds to seconds.
DECISION_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)


class _JobsCollector(Collector):
    def __init__(self, counts: Callable[[], Mapping[str, int]]) -> None:
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

    def __init__(self, job_counts: Callable[[], Mapping[str, int]]) -> None:
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
            "Error answers, by HTTP status and error code.",
            ["status", "code"],
            registry=self.registry,
        )
        self.registry.register(_JobsCollector(job_counts))

    def render(self) -> bytes:
        """The text exposition format of every metric."""
        return generate_latest(self.registry)
