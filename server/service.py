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
from autolr.errors import ConfigError, Conflict, ReportError, StaleVersion
from autolr.plan import stage_plan
from autolr.protocol import Instruction, Report, report_difference
from autolr.server import auth
from autolr.server.errors import (
    BadJobId,
    Busy,
    JobCancelled,
    OutOfRange,
    ReportDiffers,
    TooManyLosses,
    not_found,
)
from autolr.server.metrics import Metrics
from autolr.server.store import HistoryRows, JobRecord, JobStore, JobUpdate, StoredReport

log = logging.getLogger(__name__)

#: Segments are stored in a 32-bit column (PostgreSQL ``integer``).
MAX_SEGMENT = 2**31 - 1
#: Step counts: what ``TunerConfig`` allows for ``total_steps`` (exact in a float, far inside the
#: 64-bit ``steps_used`` column even summed over many reports).
MAX_STEPS = 2**53
#: A page of recorded reports stops growing past this many losses (bounded answers).
MAX_LOSSES_PER_PAGE = 1_000_000


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


def check_report_bounds(report: Report) -> None:
    """Every integer of ``report`` within what the database stores (before any database).

    Raises:
        OutOfRange: naming the field.
    """
    if report.segment > MAX_SEGMENT:
        raise OutOfRange("segment", report.segment, 0, MAX_SEGMENT)
    if report.extra_steps > MAX_STEPS:
        raise OutOfRange("extra_steps", report.extra_steps, 0, MAX_STEPS)
    if report.total_steps is not None and report.total_steps > MAX_STEPS:
        raise OutOfRange("total_steps", report.total_steps, 1, MAX_STEPS)
    for i, branch in enumerate(report.branches):
        for name in ("at", "steps"):
            value = getattr(branch, name)
            if value > MAX_STEPS:
                raise OutOfRange(f"branches.{i}.{name}", value, 0, MAX_STEPS)
    for i, (step, _value) in enumerate(report.val_losses):
        if not 0 <= step <= MAX_STEPS:
            raise OutOfRange(f"val_losses.{i}.0", step, 0, MAX_STEPS)


def _update_for(controller: Controller) -> JobUpdate:
    """The save of ``controller``'s state, with the records made since the last one."""
    current = controller.current
    made = controller.take_records()
    return JobUpdate(
        total_steps=controller.config.total_steps,
        state=controller.state_dict(),
        status="finished" if current.finished else "running",
        segment=current.segment,
        stage=current.stage,
        steps_used=controller.steps_used,
        records=HistoryRows(
            stages=[s.model_dump(mode="json") for s in made.stages],
            segments=[s.model_dump(mode="json") for s in made.segments],
            branches=[s.model_dump(mode="json") for s in made.branches],
        ),
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
    def create(self, config: TunerConfig, *, name: str | None = None) -> CreatedJob:
        """Create a job (``name``: a label for people) and compute its first instruction.

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
                name=name,
            )
        self.metrics.jobs_created.inc()
        log.info(
            "job created",
            extra={"job_id": job_id, "job_name": name, "segment": controller.current.segment},
        )
        return CreatedJob(job_id=job_id, token=token, instruction=controller.current)

    def authorize(self, job_id: str, token: str | None, *, admin: bool = False) -> JobRecord:
        """Load a job if ``token`` is its token (or ``admin``); else the one `JobNotFound`.

        The id's shape is checked before any database sees it. Only the token hash is read
        before the check, and an unknown job compares against a hash no token matches, so a
        wrong token costs the same whether the job exists or not (however big its state).

        Raises:
            BadJobId: ``job_id`` cannot be a job id.
            JobNotFound: unknown job, or a token that does not match.
        """
        if not auth.valid_job_id(job_id):
            raise BadJobId(job_id)
        token_hash = self.store.token_hash(job_id)
        granted = auth.token_matches(token, token_hash)
        if token_hash is None or not (granted or admin):
            raise not_found(job_id)
        try:
            return self.store.load(job_id)
        except LookupError:
            raise not_found(job_id) from None

    def recorded_reports(
        self, job: JobRecord, *, start: int, stop: int | None, limit: int
    ) -> tuple[list[StoredReport], int | None]:
        """A page of the job's recorded reports from segment ``start``, and where the next page
        starts (None: no more). A page holds at most ``limit`` reports and stops growing past
        `MAX_LOSSES_PER_PAGE` losses (but always holds one)."""
        rows = self.store.reports(job.job_id, start=start, stop=stop, limit=limit + 1)
        page: list[StoredReport] = []
        losses = 0
        for row in rows[:limit]:
            size = len(row.report.get("train_losses", ()))
            if page and losses + size > MAX_LOSSES_PER_PAGE:
                break
            page.append(row)
            losses += size
        more = len(page) < len(rows)
        return page, (page[-1].segment + 1 if more and page else None)

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
        check_report_bounds(report)
        self._check_sizes(report)
        with self._decisions:
            return self._report(self.authorize(job_id, token, admin=admin), report)

    def report(self, job: JobRecord, report: Report) -> Instruction:
        """Apply ``report`` to ``job`` (as loaded) and return the next instruction.

        A report for a segment already recorded is compared with the record (`_resent`): the
        same content gets the stored answer and changes nothing; the same losses with more
        ``extra_steps`` on the latest report are merged; other losses are refused with
        `ReportDiffers`, saying what differs. If a concurrent request saves first, the job is
        reloaded and the report judged again: recorded now, or a retryable `Busy`.

        Raises:
            OutOfRange: an integer beyond what the database stores.
            TooManyLosses: the report is above the server's cap.
            JobCancelled: the job was cancelled.
            ReportDiffers: a resent report with other content than the recorded one.
            Conflict, JobFinished, ReportError: from the controller (nothing is saved).
            Busy: lost a race; the same report may be sent again.
        """
        check_report_bounds(report)
        self._check_sizes(report)
        with self._decisions:
            return self._report(job, report)

    def _check_sizes(self, report: Report) -> None:
        branch_losses = [v for b in report.branches for v in b.train_losses]
        for field, values in (
            ("train_losses", report.train_losses),
            ("val_losses", report.val_losses),
            ("branches.train_losses", branch_losses),
        ):
            if len(values) > self.max_losses_per_report:
                raise TooManyLosses(field, len(values), self.max_losses_per_report)

    def _report(self, job: JobRecord, report: Report) -> Instruction:
        try:
            return self._apply(job, report)
        except StaleVersion:
            pass
        fresh = self.store.load(job.job_id)
        if fresh.status == "cancelled":
            raise JobCancelled.of(job.job_id)
        if report.segment < int(fresh.state["current"]["segment"]):
            try:
                return self._resent(fresh, report)
            except StaleVersion:
                pass
        self.metrics.reports.labels(outcome="busy").inc()
        raise Busy(job.job_id, report.segment)

    def _resent(self, job: JobRecord, report: Report) -> Instruction:
        """A report for a segment the job already recorded: compare, then answer or merge."""
        extra: dict[str, Any] = {"job_id": job.job_id, "segment": report.segment}
        stored = self.store.report_for(job.job_id, report.segment)
        current = int(job.state["current"]["segment"])
        if stored is None:  # pragma: no cover - every recorded segment has its row
            raise Conflict(expected=current, got=report.segment)
        recorded = Report.model_validate(stored.report)
        what = report_difference(recorded, report)
        if what is None and report.extra_steps == recorded.extra_steps:
            self.metrics.reports.labels(outcome="duplicate").inc()
            log.info("duplicate report", extra=extra)
            return Instruction.model_validate(stored.answer)
        if what is None and report.extra_steps > recorded.extra_steps:
            if report.segment == current - 1 and job.status == "running":
                return self._merge(job, report)
            what = (
                f"extra_steps={report.extra_steps}, recorded {recorded.extra_steps}: extra steps "
                "can only be added to the latest report of a running job"
            )
        elif what is None:
            what = (
                f"extra_steps={report.extra_steps}, recorded {recorded.extra_steps}: a resent "
                "report may add extra steps, not remove them"
            )
        self.metrics.reports.labels(outcome="differs").inc()
        log.info("resent report differs", extra={**extra, "difference": what})
        raise ReportDiffers.recorded(job.job_id, report.segment, what)

    def _merge(self, job: JobRecord, report: Report) -> Instruction:
        """Count the extra steps of a resent latest report: decide that segment's answer again.

        The state before the report is not stored, so the job's record is replayed (its
        decisions are deterministic) with the merged report last. Rare: only a client that
        trained on without an answer sends one.
        """
        started = time.perf_counter()
        controller = Controller(TunerConfig.model_validate(job.config))
        controller.start()
        for row in self.store.reports(job.job_id, stop=report.segment):
            controller.report(Report.model_validate(row.report))
        controller.take_records()  # stored already: only the merged report's are replaced
        try:
            instruction = controller.report(report)
        except ArithmeticError as exc:
            raise ReportError(f"the controller could not take this report: {exc}") from None
        self.store.amend_report(
            job.job_id,
            expected_version=job.version,
            segment=report.segment,
            report=report.model_dump(mode="python"),
            answer=instruction.model_dump(mode="json"),
            update=_update_for(controller),
        )
        self.metrics.reports.labels(outcome="merged").inc()
        log.info(
            "extra steps merged",
            extra={
                "job_id": job.job_id,
                "segment": report.segment,
                "extra_steps": report.extra_steps,
                "decision_ms": round((time.perf_counter() - started) * 1000, 3),
            },
        )
        return instruction

    def _apply(self, job: JobRecord, report: Report) -> Instruction:
        if job.status == "cancelled":
            raise JobCancelled.of(job.job_id)
        extra: dict[str, Any] = {"job_id": job.job_id, "segment": report.segment}
        started = time.perf_counter()
        controller = Controller.from_state_dict(job.state)
        if report.segment < controller.current.segment:
            return self._resent(job, report)
        try:
            instruction = controller.report(report)
        except ReportError:
            self.metrics.reports.labels(outcome="rejected").inc()
            raise
        except (ArithmeticError, ValueError) as exc:
            # Losses near the float maximum, say: numbers the controller cannot work with. The
            # report is refused (nothing is saved); sending it again cannot help, so not a 500.
            self.metrics.reports.labels(outcome="rejected").inc()
            log.warning("controller refused a report", extra={**extra, "error": str(exc)})
            raise ReportError(
                f"the controller could not take the report for segment {report.segment}: "
                f"{type(exc).__name__}: {exc}"
            ) from None
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
