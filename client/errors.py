"""The exceptions the client raises: its part of the one tree drawn in ``autolr.errors``.

Re-exported here so a training script imports them from the package it uses; the classes are
defined once, in ``autolr.errors`` (the HTTP refusals too, so the server raises the same ones).
"""

from __future__ import annotations

from autolr.errors import (
    AutoLRError,
    ClientError,
    ConfigError,
    Conflict,
    Diverged,
    JobCancelled,
    JobFinished,
    JobNotFound,
    ReportDiffers,
    ReportError,
    RequestRejected,
    ServerUnavailable,
    SnapshotError,
    TransportError,
    TunerFinished,
    Unauthorized,
)

__all__ = [
    "AutoLRError",
    "ClientError",
    "ConfigError",
    "Conflict",
    "Diverged",
    "JobCancelled",
    "JobFinished",
    "JobNotFound",
    "ReportDiffers",
    "ReportError",
    "RequestRejected",
    "ServerUnavailable",
    "SnapshotError",
    "TransportError",
    "TunerFinished",
    "Unauthorized",
]
