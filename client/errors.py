"""The exceptions the client raises, as one small tree below `autolr.AutoLRError`.

    AutoLRError                              autolr.errors: base of everything raised on purpose
    ├── ConfigError (ValueError)             autolr.errors: an invalid TunerConfig
    └── ClientError                          anything the training-side tuner raises
        ├── TransportError (ConnectionError) the controller could not be reached (retryable)
        ├── TunerFinished (RuntimeError)     step() after the step budget is spent
        └── SnapshotError (RuntimeError)     restore with no snapshot, or one that no longer fits

Why a tree: a training script can catch ``AutoLRError`` for everything, ``TransportError`` to
decide about network trouble, and builtins (``ValueError``, ``RuntimeError``, ``ConnectionError``)
without importing autolr at all. Each exception composes its own message: what happened and what
to do about it.
"""

from __future__ import annotations

from autolr.errors import AutoLRError, ConfigError

__all__ = [
    "AutoLRError",
    "ClientError",
    "ConfigError",
    "SnapshotError",
    "TransportError",
    "TunerFinished",
]


class ClientError(AutoLRError):
    """Base class of the errors raised by the training-side tuner."""


class TransportError(ClientError, ConnectionError):
    """The controller could not be reached, or answered with a transient failure.

    Transports raise it after their own bounded retries. The tuner treats it as retryable: unless
    ``strict=True`` it keeps training at the current LR and reports again later (reports are
    idempotent), so a network problem never stops a training run.
    """


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
