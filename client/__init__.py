"""autolr.client: tune the learning rate of a PyTorch training loop online (AutoLRS).

Three lines in a training loop::

    from autolr.client import AutoLR

    tuner = AutoLR(model, optimizer, min_lr=1e-4, max_lr=1e-1, total_steps=20_000)
    ...                     # after optimizer.step():
    tuner.step(loss)        # float or 0-dim tensor; read from the device once per segment

By default the controller runs in this process (embedded mode, `LocalTransport`); pass
``server="http://host:8000"`` to use an autolr service (`HttpTransport`). Importing this package
loads neither the controller (BoTorch) nor any server library: both load on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from autolr.client._replay import ReplaySchedule
from autolr.client._results import StageSummary, TunerResults
from autolr.client._segment import Segment
from autolr.client._snapshot import Snapshot, StateSnapshot
from autolr.client._transport import LocalTransport, Transport
from autolr.client._tuner import AutoLR
from autolr.client.errors import (
    ClientError,
    SnapshotError,
    TransportError,
    TunerFinished,
)

if TYPE_CHECKING:
    from autolr.client._http import HttpTransport

__all__ = [
    "AutoLR",
    "ClientError",
    "HttpTransport",
    "LocalTransport",
    "ReplaySchedule",
    "Segment",
    "Snapshot",
    "SnapshotError",
    "StageSummary",
    "StateSnapshot",
    "Transport",
    "TransportError",
    "TunerFinished",
    "TunerResults",
]


def __getattr__(name: str) -> Any:
    if name == "HttpTransport":  # loads httpx only when a remote controller is wanted
        from autolr.client._http import HttpTransport

        return HttpTransport
    raise AttributeError(f"module 'autolr.client' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
