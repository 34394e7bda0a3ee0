"""`Link`: the tuner's side of the controller conversation, kept whole through outages.

The controller is deterministic: its decisions depend only on the job's config and the reports
it received. So the tuner keeps the config, every report it sent (the *journal*) and every
instruction it ran (the *answers*), and when the service does not answer within the step
budget it runs the same `autolr.Controller` in this process, replays the journal into it and
takes the next decision itself. The run goes on step for step as it would have with the service
up. On a clock (1 s after the failure, doubling up to 30 s) and at segment boundaries the link
sends the service the reports it missed, checking that each answer is the instruction the run
followed; once the service holds the whole journal it decides again.

Modes (`Link.mode`):

- ``embedded``: the transport is the in-process `LocalTransport`; there is no service.
- ``online``: the service holds every report; the next one goes straight to it.
- ``local``: the service missed reports; this process decides and syncs on a clock.
- ``detached``: the service refused the job for good (unknown job, cancelled, wrong token,
  a record that contradicts the run); this process decides to the end and no longer syncs.

When no instruction can be had at all (the local controller raised, or the run's record cannot
be replayed), the link answers None and the tuner runs its own safe ending (see `AutoLR`).
"""

from __future__ import annotations

import contextlib
import logging
import math
import time
from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Any, TypeVar

import torch

from autolr.client._transport import LocalTransport, Transport
from autolr.config import TunerConfig
from autolr.errors import Conflict, Diverged, JobFinished, TransportError
from autolr.protocol import Instruction, Report, report_difference

if TYPE_CHECKING:
    from autolr.controller import Controller

log = logging.getLogger("autolr.client")

EMBEDDED, ONLINE, LOCAL, DETACHED = "embedded", "online", "local", "detached"
MODES = (EMBEDDED, ONLINE, LOCAL, DETACHED)
#: After the service first fails, the next sync attempt comes this many seconds later; the gap
#: doubles while it keeps failing, up to the cap (a dead service costs one budgeted attempt per
#: gap at most).
RESYNC_FIRST_S = 1.0
RESYNC_MAX_S = 30.0
#: Reconciliations with the service's record one sync may run (each is a read of the record).
MAX_RECONCILES = 3

T = TypeVar("T")


class _BudgetSpent(TransportError):
    """The call's time budget ran out before it could be made (not a failure of the service)."""


@contextlib.contextmanager
def keep_rng() -> Iterator[None]:
    """Leave the training's random state as it was (the GP fit seeds torch's global RNG).

    A run that decides locally during an outage must draw the same dropout masks and batches
    as the run whose service decided, so local decisions are invisible to the RNG.
    """
    devices: list[int] = []
    if torch.cuda.is_available() and torch.cuda.is_initialized():  # type: ignore[no-untyped-call]  # torch: unannotated
        devices = list(range(torch.cuda.device_count()))
    with torch.random.fork_rng(devices=devices):
        yield


def same_report(a: Report | None, b: Report | None) -> bool:
    """The same report as the service would hold it: `autolr.protocol.report_difference` (the
    one rule for a resent report) on both as the wire carries them (±inf travel as null and
    come back as NaN), with equal ``kind`` and ``extra_steps`` (the run's record is exact)."""
    if a is None or b is None:
        return a is b
    a, b = _as_sent(a), _as_sent(b)
    return a.kind == b.kind and a.extra_steps == b.extra_steps and report_difference(a, b) is None


def _as_sent(report: Report) -> Report:
    return Report.model_validate_json(report.model_dump_json())


class Link:
    """Obtains the next instruction for the tuner: from the service, or decided locally.

    Args:
        transport: the service (or the embedded `LocalTransport`).
        config: the job's configuration.
        strict: raise every transport failure and refusal instead of deciding locally.
        budget: the most seconds one call to the service may take (None: the transport's own
            timeouts). Only transports with ``accepts_budget`` honour it (`HttpTransport`).
    """

    def __init__(
        self,
        transport: Transport,
        config: TunerConfig,
        *,
        strict: bool = False,
        budget: float | None = 1.0,
    ) -> None:
        self.transport = transport
        self.config = config
        self.strict = strict
        self.budget = budget
        self.mode = EMBEDDED if type(transport) is LocalTransport else ONLINE
        self.journal: list[Report | None] = []  # None: a report this process never saw
        self.answers: list[Instruction] = []
        self.synced = 0  # journal reports the service holds (and agrees with)
        self.created = False  # the service has the job
        self.recorded: dict[int, Report] = {}  # the service's reports of segments not run yet
        self.sync_at: float | None = None  # monotonic time of the next sync attempt
        self._gap = RESYNC_FIRST_S
        self._local: Controller | None = None
        self._local_pos = 0
        self._local_broken: str | None = None
        self._budgeted = bool(getattr(transport, "accepts_budget", False))

    # ------------------------------------------------------------------ properties
    @property
    def job_id(self) -> str | None:
        return self.transport.job_id

    @property
    def pending(self) -> int:
        """Reports the service has not recorded yet (0 when embedded or in sync)."""
        if self.mode == EMBEDDED:
            return 0
        return len(self.journal) - min(self.synced, len(self.journal)) + (not self.created)

    def controller(self) -> Controller | None:
        """The controller deciding in this process, when there is one and it is current."""
        if isinstance(self.transport, LocalTransport) and self.mode == EMBEDDED:
            try:
                return self.transport.controller
            except RuntimeError:
                return None
        if self._local is not None and self._local_pos == len(self.journal):
            return self._local
        return None

    # ------------------------------------------------------------------ the conversation
    def start(self) -> Instruction | None:
        """The job's first instruction (None: none can be had; the tuner plans its own)."""
        if self.mode == EMBEDDED or self.strict:
            return self._direct(lambda: self.transport.start(self.config))
        self._sync(self._deadline())
        if self.answers:
            return self.answers[0]
        return self._local_next()

    def report(self, report: Report) -> Instruction | None:
        """Record ``report`` and return the next instruction (None: none can be had)."""
        if self.mode == EMBEDDED or self.strict:
            return self._direct(lambda: self.transport.report(report))
        n = len(self.journal)
        if report.segment != n:
            log.error(
                "autolr: report for segment %d, but the run's record has %d segments; the "
                "tuner stops asking for instructions",
                report.segment,
                n,
            )
            return None
        recorded = self.recorded.pop(n, None)
        if recorded is not None and not same_report(recorded, report):
            # The service recorded this segment before (a run resumed from an older checkpoint):
            # its decisions follow its report, so the record keeps it.
            log.info(
                "autolr: segment %d was recorded by the service with other losses (an earlier "
                "run of it); the service's record is kept",
                n,
            )
        self.journal.append(recorded if recorded is not None else report)
        deadline = self._deadline()  # one budget for everything this step asks the service
        if len(self.answers) <= n + 1 and (self.mode == ONLINE or self._due()):
            self._sync(deadline)
        if len(self.answers) > n + 1:
            return self.answers[n + 1]
        inst = self._local_next()
        if inst is not None and inst.finished and self.mode == LOCAL:
            self._sync(deadline)  # the last chance during training to catch up, if time is left
        return inst

    def poll(self) -> None:
        """Sync with the service if its clock says so (called mid-segment, rank 0 only)."""
        if self.sync_at is not None and time.monotonic() >= self.sync_at:
            self._sync(self._deadline())

    def sync(self, timeout: float | None = None) -> bool:
        """Send the service what it missed, within ``timeout`` seconds (default: the budget).

        Returns whether the service now holds the whole run (always True when embedded).
        """
        if self.mode == EMBEDDED:
            return True
        if self.mode != DETACHED and self.pending:
            limit = timeout if timeout is not None else self.budget
            self._sync(time.monotonic() + limit if limit is not None else None)
        return self.mode == ONLINE and self.pending == 0

    # ------------------------------------------------------------------ direct calls
    def _direct(self, call: Callable[[], Instruction]) -> Instruction | None:
        """Embedded or strict: the transport's answer; failures raise (strict) or give None."""
        try:
            inst = call()
        except Exception as exc:
            if self.strict:
                raise
            log.error(
                "autolr controller failed (%s: %s); the tuner ends the run on its own plan "
                "(pass strict=True to raise instead)",
                type(exc).__name__,
                exc,
            )
            return None
        self.created = True
        return inst

    # ------------------------------------------------------------------ syncing
    def _deadline(self) -> float | None:
        return None if self.budget is None else time.monotonic() + self.budget

    def _due(self) -> bool:
        return self.sync_at is not None and time.monotonic() >= self.sync_at

    def _call(self, fn: Callable[..., T], *args: Any, deadline: float | None) -> T:
        if not self._budgeted or deadline is None:
            return fn(*args)
        left = deadline - time.monotonic()
        if left <= 0.0:
            raise _BudgetSpent("no time left in this step's budget")
        return fn(*args, budget=left)

    def _sync(self, deadline: float | None) -> None:
        """Send the service every report it lacks (creating the job first if need be)."""
        if self.mode in (EMBEDDED, DETACHED):
            return
        was = self.mode
        try:
            self._push(deadline)
        except _BudgetSpent:
            self.mode = LOCAL
            self.sync_at = time.monotonic()  # progress was made: go on at the next chance
            return
        except TransportError as exc:
            self._lost(str(exc), first=was == ONLINE)
            return
        except Diverged as exc:
            self._detach(str(exc))
            return
        except Exception as exc:  # a refusal retrying cannot fix
            self._detach(f"{type(exc).__name__}: {exc}")
            return
        if was == LOCAL:
            log.info(
                "autolr service has caught up with the run (%d reports); it decides again",
                len(self.journal),
            )
        self.mode, self.sync_at, self._gap = ONLINE, None, RESYNC_FIRST_S

    def _push(self, deadline: float | None) -> None:
        if not self.created:
            first = self._call(self.transport.start, self.config, deadline=deadline)
            self.created = True
            self._accept(0, first)
            self.synced = 0
        reconciles = 0
        while self.synced < len(self.journal):
            report = self.journal[self.synced]
            if report is None:
                raise Diverged(
                    f"the service lacks segment {self.synced}, whose report this process "
                    "never saw (a checkpoint of an older autolr); it cannot be sent again"
                )
            try:
                inst = self._call(self.transport.report, report, deadline=deadline)
            except Exception as exc:
                if not _out_of_place(exc):
                    raise
                reconciles += 1
                self._reconcile(deadline, exc, reconciles)
                continue
            self._accept(self.synced + 1, inst)
            self.synced += 1

    def _accept(self, segment: int, inst: Instruction) -> None:
        """Take the service's instruction for ``segment``: new, or checked against the run's."""
        if segment < len(self.answers):
            if inst != self.answers[segment]:
                raise Diverged(
                    f"the service's instruction for segment {segment} is not the one the run "
                    f"followed ({_difference(inst, self.answers[segment])}); is the service "
                    "running another autolr version, or was its database replaced?"
                )
        elif segment == len(self.answers):
            self.answers.append(inst)
        else:  # pragma: no cover - the journal and the answers grow together
            raise Diverged(f"an answer for segment {segment} came out of order")

    def _reconcile(self, deadline: float | None, cause: Exception, attempt: int) -> None:
        """The service refused a report as out of place: read its record and take it in.

        The service may be ahead (a run resumed from a checkpoint older than the service's
        job), behind (its database was restored from a backup) or hold other losses for a
        segment. Its decisions must be the ones this run followed where both exist; then its
        reports replace this process's for the segments it recorded, its instructions for
        segments not run yet are followed, and syncing goes on from where it stands.
        """
        job = getattr(self.transport, "job", None)
        fetch = getattr(self.transport, "recorded_reports", None)
        if attempt > MAX_RECONCILES or job is None or fetch is None:
            raise Diverged(f"the service refused the run's report: {cause}")
        detail = self._call(job, deadline=deadline)
        service = [Instruction.model_validate(i) for i in detail["schedule"]]
        service.append(Instruction.model_validate(detail["current"]))
        for i in range(min(len(service), len(self.answers))):
            if service[i] != self.answers[i]:
                raise Diverged(
                    f"the service's record has another instruction for segment {i} than the "
                    f"run followed ({_difference(service[i], self.answers[i])})"
                )
        awaited = len(service) - 1  # the service awaits (or finished at) this segment
        if awaited > self.synced:
            reports = self._call(fetch, self.synced, awaited, deadline=deadline)
            for i, theirs in enumerate(reports, start=self.synced):
                if i < len(self.journal):
                    if not same_report(self.journal[i], theirs):
                        self.journal[i] = theirs
                        if i < self._local_pos:
                            self._local, self._local_pos = None, 0  # replay the record anew
                else:
                    self.recorded[i] = theirs
            self.answers.extend(service[len(self.answers) :])
            log.info(
                "autolr: the service's record reaches segment %d (this run had sent %d); the "
                "run follows the record",
                awaited,
                self.synced,
            )
            self.synced = awaited
        elif awaited < self.synced:
            log.warning(
                "autolr: the service's record stops at segment %d, %d segments behind what it "
                "had acknowledged (a restored database?); sending them again",
                awaited,
                self.synced - awaited,
            )
            self.synced = awaited
        else:
            raise Diverged(f"the service refused the report it awaits: {cause}")

    def _lost(self, cause: str, *, first: bool) -> None:
        self.mode = LOCAL
        self._gap = RESYNC_FIRST_S if first else min(2 * self._gap, RESYNC_MAX_S)
        self.sync_at = time.monotonic() + self._gap
        (log.warning if first else log.debug)(
            "autolr service did not answer in time (%s); the run goes on with the same "
            "decisions taken in this process, and syncs in %.0f s",
            cause,
            self._gap,
        )

    def _detach(self, reason: str) -> None:
        self.mode, self.sync_at = DETACHED, None
        log.error(
            "autolr: the service cannot keep this run's record (%s); the run goes on with "
            "decisions taken in this process and no longer syncs",
            reason,
        )

    # ------------------------------------------------------------------ local decisions
    def _local_next(self) -> Instruction | None:
        """The next instruction from a controller in this process (the journal replayed)."""
        if self._local_broken is not None:
            return None
        n = len(self.journal)
        try:
            with keep_rng():
                if self._local is None:
                    self._local = self._new_controller()
                    self._local_pos = 0
                    first = self._local.start()
                    if self.answers and first != self.answers[0]:
                        raise Diverged("the local controller's first instruction differs")
                while self._local_pos < n:
                    report = self.journal[self._local_pos]
                    if report is None:
                        raise Diverged(
                            f"the report of segment {self._local_pos} is unknown here (a "
                            "checkpoint of an older autolr), so the run cannot be replayed"
                        )
                    inst = self._local.report(report)
                    self._local_pos += 1
                    if (
                        self._local_pos < len(self.answers)
                        and inst != self.answers[self._local_pos]
                    ):
                        raise Diverged(
                            f"replaying the run gives another instruction for segment "
                            f"{self._local_pos} than the one followed "
                            f"({_difference(inst, self.answers[self._local_pos])})"
                        )
                inst = self._local.current
        except Exception as exc:
            self._local_broken = f"{type(exc).__name__}: {exc}"
            self._local = None
            log.error("autolr cannot decide in this process (%s)", self._local_broken)
            return None
        if len(self.answers) == n:
            self.answers.append(inst)
        return inst

    def _new_controller(self) -> Controller:
        if isinstance(self.transport, LocalTransport):
            return self.transport.new_controller(self.config)
        from autolr.controller import Controller  # only when this process decides

        return Controller(self.config)

    # ------------------------------------------------------------------ checkpoints
    def state_dict(self) -> dict[str, Any]:
        """The journal, the answers and the sync position (tensors and plain data)."""
        if self.mode == EMBEDDED:
            return {"mode": EMBEDDED}
        return {
            "mode": self.mode,
            "journal": [_report_state(r) for r in self.journal],
            "answers": [a.model_dump(mode="json") for a in self.answers],
            "synced": self.synced,
            "created": self.created,
            "recorded": {int(k): _report_state(v) for k, v in self.recorded.items()},
        }

    @staticmethod
    def parse_state(state: Any) -> dict[str, Any]:
        """Validate a `state_dict` value; returns the parsed parts (changes nothing).

        Raises:
            ValueError: anything malformed, named.
        """
        if not isinstance(state, Mapping) or state.get("mode") not in MODES:
            found = state.get("mode") if isinstance(state, Mapping) else type(state).__name__
            raise ValueError(f"link.mode={found!r} is not one of {', '.join(MODES)}")
        if state["mode"] == EMBEDDED:
            return {"mode": EMBEDDED}
        journal = [_report_from(r, f"link.journal[{i}]") for i, r in enumerate(state["journal"])]
        for i, r in enumerate(journal):
            if r is not None and r.segment != i:
                raise ValueError(f"link.journal[{i}] is the report of segment {r.segment}")
        answers = []
        for i, a in enumerate(state["answers"]):
            try:
                inst = Instruction.model_validate(a)
            except Exception as exc:
                raise ValueError(f"link.answers[{i}] is not an instruction: {exc}") from None
            if inst.segment != i:
                raise ValueError(f"link.answers[{i}] is the instruction of segment {inst.segment}")
            answers.append(inst)
        if len(answers) != len(journal) + 1:
            raise ValueError(
                f"link: {len(journal)} reports need {len(journal) + 1} instructions, got "
                f"{len(answers)}"
            )
        synced = state["synced"]
        if not isinstance(synced, int) or isinstance(synced, bool) or synced < 0:
            raise ValueError(f"link.synced={synced!r} must be an integer >= 0")
        recorded = {
            int(k): _report_from(v, f"link.recorded[{k}]") for k, v in state["recorded"].items()
        }
        if any(v is None for v in recorded.values()):
            raise ValueError("link.recorded holds an empty report")
        return {
            "mode": state["mode"],
            "journal": journal,
            "answers": answers,
            "synced": synced,
            "created": bool(state["created"]),
            "recorded": recorded,
        }

    def load(self, parsed: Mapping[str, Any]) -> None:
        """Take the state returned by `parse_state`."""
        if parsed["mode"] == EMBEDDED or self.mode == EMBEDDED:
            return
        self.journal = list(parsed["journal"])
        self.answers = list(parsed["answers"])
        self.synced = parsed["synced"]
        self.created = parsed["created"]
        self.recorded = dict(parsed["recorded"])
        self._local, self._local_pos, self._local_broken = None, 0, None
        self.mode = parsed["mode"]
        if self.mode == LOCAL or (self.mode == ONLINE and self.pending):
            self.mode = LOCAL
            self.sync_at = time.monotonic()  # try at the next chance
            self._gap = RESYNC_FIRST_S


def _out_of_place(exc: Exception) -> bool:
    """A refusal that reading the service's record can settle (409 wrong segment, finished,
    a resent report with other content)."""
    return isinstance(exc, Conflict | JobFinished) or bool(getattr(exc, "reconcilable", False))


def _difference(theirs: Instruction, ours: Instruction) -> str:
    """The fields in which two instructions differ, as ``field: theirs vs ours``."""
    a, b = theirs.model_dump(), ours.model_dump()
    parts = []
    for key in a:
        if a[key] != b.get(key):
            x, y = repr(a[key]), repr(b.get(key))
            parts.append(f"{key}: {x[:80]} vs {y[:80]}")
    return "; ".join(parts) or "equal"


def _report_state(report: Report | None) -> dict[str, Any] | None:
    if report is None:
        return None
    return {
        "segment": report.segment,
        "kind": report.kind,
        "extra_steps": report.extra_steps,
        "train_losses": torch.tensor(report.train_losses, dtype=torch.float64),
        "val_losses": [[int(s), float(v)] for s, v in report.val_losses],
    }


def _report_from(value: Any, where: str) -> Report | None:
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise ValueError(f"{where} is not a report")
    losses = value.get("train_losses")
    if isinstance(losses, torch.Tensor):
        losses = losses.reshape(-1).tolist()
    try:
        return Report(
            segment=value["segment"],
            kind=value.get("kind"),
            extra_steps=value.get("extra_steps", 0),
            train_losses=losses,
            val_losses=[tuple(p) for p in value.get("val_losses", [])],
        )
    except Exception as exc:
        raise ValueError(f"{where} is not a valid report: {exc}") from None


def finite_positive(value: Any) -> bool:
    """Whether ``value`` is a real number > 0 and finite."""
    return (
        isinstance(value, int | float)
        and not isinstance(value, bool)
        and math.isfinite(value)
        and value > 0
    )
