"""How the tuner talks to a controller: in-process or over HTTP.

A `Transport` carries a job's conversation. Reports are idempotent (re-sending the report for
segment n returns the same instruction n+1), so every transport may retry freely.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from autolr.protocol import Instruction, Report

if TYPE_CHECKING:
    from autolr.config import TunerConfig
    from autolr.controller import Controller
    from autolr.forecast import Forecaster
    from autolr.search import Searcher


@runtime_checkable
class Transport(Protocol):
    """The client's side of the controller conversation.

    Contract:
        - ``start(config)`` creates the job and returns its first instruction; ``job_id`` is set
          afterwards.
        - ``report(report)`` returns the next instruction. It raises `autolr.Conflict` for a
          report of the wrong segment and `TransportError` (client/errors) when the controller
          cannot be reached; it never corrupts the job, so the caller may simply retry.
          On a `TransportError` `AutoLR` takes the decision itself with the same controller
          and sends the missed reports later; any other exception is a refusal that retrying
          cannot fix, so the tuner decides in its own process to the end (or raises, when
          strict). A transport whose ``start``/``report`` accept ``budget=`` (seconds) and that
          says so with ``accepts_budget = True`` is told how long a step may wait; one with
          ``job()`` and ``recorded_reports()`` (like `HttpTransport`) also lets the tuner
          reconcile with a record that moved (a checkpoint older than the job).
        - ``state_dict()`` / ``load_state_dict()`` capture what is needed to reattach to the same
          job after a restart (for embedded mode, the whole controller state).
        - ``close()`` releases resources; it never raises.
    """

    @property
    def job_id(self) -> str | None: ...

    def start(self, config: TunerConfig) -> Instruction: ...

    def report(self, report: Report) -> Instruction: ...

    def state_dict(self) -> dict[str, Any]: ...

    def load_state_dict(self, state: dict[str, Any]) -> Instruction: ...

    def close(self) -> None: ...


class LocalTransport:
    """Runs the controller in the training process (embedded mode, the default).

    The controller (and BoTorch) is imported on first use, so ``import autolr.client`` stays
    free of heavy modules. Calls never fail for network reasons, so `AutoLR` never waits.

    Args:
        forecaster: a `autolr.forecast.Forecaster` for the controller (default: exponential).
        searcher: a `autolr.search.Searcher` (default: the GP; ``RandomSearcher()`` runs
            without BoTorch).
    """

    def __init__(self, *, forecaster: Forecaster | None = None, searcher: Searcher | None = None):
        self._controller: Controller | None = None
        self._forecaster = forecaster
        self._searcher = searcher

    @property
    def job_id(self) -> str | None:
        return "local" if self._controller is not None else None

    @property
    def controller(self) -> Controller:
        """The embedded controller (after `start` or `load_state_dict`): stages, segments."""
        if self._controller is None:
            raise RuntimeError("LocalTransport has no job yet: call start() first")
        return self._controller

    def new_controller(self, config: TunerConfig) -> Controller:
        """A fresh controller for ``config`` with this transport's forecaster and searcher."""
        from autolr.controller import Controller

        return Controller(config, forecaster=self._forecaster, searcher=self._searcher)

    def start(self, config: TunerConfig) -> Instruction:
        self._controller = self.new_controller(config)
        return self._controller.start()

    def report(self, report: Report) -> Instruction:
        return self.controller.report(report)

    def state_dict(self) -> dict[str, Any]:
        """The controller's state, and its history beside it: embedded mode keeps the job's
        whole record in this process (the state holds only what decisions read)."""
        controller = self.controller
        return {
            "kind": "local",
            "controller": controller.state_dict(),
            "history": controller.history.model_dump(mode="json"),
        }

    def load_state_dict(self, state: dict[str, Any]) -> Instruction:
        from autolr.controller import Controller

        self._controller = Controller.from_state_dict(
            state["controller"],
            forecaster=self._forecaster,
            searcher=self._searcher,
            history=state.get("history"),
        )
        return self._controller.current

    def close(self) -> None:
        return None
