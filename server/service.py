"""The service layer: ``load → advance the controller → save(expected_version)``.

The controller decides; the store makes decisions durable; this module only wires the two and
settles races. Everything here is synchronous and may take seconds (a GP fit), so routes call
it from the thread pool, never from the event loop.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from typing import Any

from autolr.config import TunerConfig
from autolr.controller import Controller
from autolr.errors import ConfigError
from autolr.plan import stage_plan
from autolr.protocol import Instruction, Report
from autolr.server import auth
from autolr.server.errors import Busy, JobCancelled, TooManyLosses, not_found
from autolr.server.metrics import Metrics
from autolr.server.store import JobRecord, JobStore, JobUpdate, StaleVersion

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CreatedJob:
    """A new job: its id, its token (shown only now) and its first instruction."""

    job_id: str
    token: str
    instruction: Instruction


def longest_segment(config: TunerConfig) -> int:
    """An upper bound on the steps (so losses) of any one segment of a job with ``config``.

    Warmup is one segment; a probe is at most τ'(τ_max); a train segment is τ, plus at most
    one stage's worth when the last stage absorbs a remainder no further stage could use.
    """
    plan = stage_plan(config)
    longest_probe = plan.probe_steps(64)
    if config.total_steps is None:
        return max(config.warmup_steps, plan.tau_max, longest_probe)
    train = plan.tau_max + plan.stage_steps(64)
    return min(config.total_steps, max(config.warmup_steps, longest_probe, train))


def _update_for(controller: Controller) -> JobUpdate:
    current = controller.current
    return JobUpdate(
        state=controller.state_dict(),
        status="finished" if current.finished else "running",
        segment=current.segment,
        stage=current.stage,
        steps_used=controller.steps_used,
    )


class JobService:
    """Creates jobs and applies reports, durably and safely under concurrency.

    Args:
        store: where jobs live.
        metrics: counters and the decision-latency histogram.
        max_losses_per_report: reports with more train (or val) losses are refused (413).
        decision_threads: creates and reports handled at once (load, decide, save); further
            requests wait on a semaphore, holding no GIL, so the event loop stays responsive
            however many arrive together.
    """

    def __init__(
        self,
        store: JobStore,
        metrics: Metrics,
        *,
        max_losses_per_report: int,
        decision_threads: int,
    ) -> None:
        self.store = store
        self.metrics = metrics
        self.max_losses_per_report = max_losses_per_report
        self._decisions = threading.BoundedSemaphore(decision_threads)

    # ------------------------------------------------------------------ jobs
    def create(self, config: TunerConfig) -> CreatedJob:
        """Create a job and compute its first instruction.

        Raises:
            ConfigError: a segment of this job could exceed the server's losses-per-report cap.
        """
        longest = longest_segment(config)
        if longest > self.max_losses_per_report:
            raise ConfigError(
                f"invalid TunerConfig: segments of this job can reach {longest} steps "
                f"(tau_max={config.tau_max}, warmup_steps={config.warmup_steps}, "
                f"total_steps={config.total_steps}), but this server accepts at most "
                f"{self.max_losses_per_report} losses per report; lower tau_max / warmup_steps"
            )
        job_id, token = auth.new_job_id(), auth.new_token()
        with self._decisions:
            controller = Controller(config)
            controller.start()
            self.store.create(
                job_id,
                token_hash=auth.hash_token(token),
                config=config.model_dump(mode="json"),
                update=_update_for(controller),
                total_steps=config.total_steps,
            )
        self.metrics.jobs_created.inc()
        log.info("job created", extra={"job_id": job_id, "segment": controller.current.segment})
        return CreatedJob(job_id=job_id, token=token, instruction=controller.current)

    def authorize(self, job_id: str, token: str | None, *, admin: bool = False) -> JobRecord:
        """Load a job if ``token`` is its token (or ``admin``); else the one `JobNotFound`."""
        try:
            job: JobRecord | None = self.store.load(job_id)
        except LookupError:
            job = None
        granted = auth.token_matches(token, job.token_hash if job is not None else None)
        if job is None or not (granted or admin):
            raise not_found(job_id)
        return job

    def cancel(self, job: JobRecord) -> JobRecord:
        """Cancel a running job (finished and cancelled jobs stay as they are)."""
        record = self.store.cancel(job.job_id)
        log.info("job %s", record.status, extra={"job_id": job.job_id})
        return record

    # ------------------------------------------------------------------ reports
    def report_as(
        self, job_id: str, token: str | None, report: Report, *, admin: bool = False
    ) -> Instruction:
        """Authorize, then apply ``report``: the whole request under the decision semaphore.

        Threads waiting for a slot hold no GIL, so however many reports arrive at once, only
        ``decision_threads`` threads compete with the event loop for it.
        """
        self._check_sizes(report)
        with self._decisions:
            return self._report(self.authorize(job_id, token, admin=admin), report)

    def report(self, job: JobRecord, report: Report) -> Instruction:
        """Apply ``report`` to ``job`` (as loaded) and return the next instruction.

        A report for the segment before the awaited one is a duplicate: it gets the stored
        answer and changes nothing. If a concurrent request saves first, the job is reloaded:
        a report that is now a duplicate gets the stored answer, anything else a retryable
        `Busy`.

        Raises:
            TooManyLosses: the report is above the server's cap.
            JobCancelled: the job was cancelled.
            Conflict, JobFinished, ReportError: from the controller (nothing is saved).
            Busy: lost a race; the same report may be sent again.
        """
        self._check_sizes(report)
        with self._decisions:
            return self._report(job, report)

    def _check_sizes(self, report: Report) -> None:
        for field, values in (
            ("train_losses", report.train_losses),
            ("val_losses", report.val_losses),
        ):
            if len(values) > self.max_losses_per_report:
                raise TooManyLosses(field, len(values), self.max_losses_per_report)

    def _report(self, job: JobRecord, report: Report) -> Instruction:
        try:
            return self._apply(job, report)
        except StaleVersion:
            pass
        answer = self.store.answer_for(job.job_id, report.segment)
        if answer is not None:
            self.metrics.reports.labels(outcome="duplicate").inc()
            return Instruction.model_validate(answer)
        if self.store.load(job.job_id).status == "cancelled":
            raise JobCancelled(job.job_id)
        self.metrics.reports.labels(outcome="busy").inc()
        raise Busy(job.job_id, report.segment)

    def _apply(self, job: JobRecord, report: Report) -> Instruction:
        if job.status == "cancelled":
            raise JobCancelled(job.job_id)
        extra: dict[str, Any] = {"job_id": job.job_id, "segment": report.segment}
        started = time.perf_counter()
        controller = Controller.from_state_dict(job.state)
        if report.segment == controller.current.segment - 1:
            self.metrics.reports.labels(outcome="duplicate").inc()
            log.info("duplicate report", extra=extra)
            return controller.current
        try:
            instruction = controller.report(report)
        except Exception:
            self.metrics.reports.labels(outcome="rejected").inc()
            raise
        elapsed = time.perf_counter() - started
        self.metrics.decision_seconds.observe(elapsed)
        self.store.save_report(
            job.job_id,
            expected_version=job.version,
            segment=report.segment,
            report=report.model_dump(mode="python"),
            answer=instruction.model_dump(mode="json"),
            update=_update_for(controller),
        )
        self.metrics.reports.labels(outcome="applied").inc()
        log.info(
            "report applied",
            extra={
                **extra,
                "kind": report.kind,
                "next_segment": instruction.segment,
                "next_kind": instruction.kind,
                "lr": instruction.lr,
                "finished": instruction.finished,
                "decision_ms": round(elapsed * 1000, 3),
            },
        )
        return instruction
