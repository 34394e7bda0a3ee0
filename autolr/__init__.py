"""autolr: online learning-rate schedules by Bayesian optimization on the fly (AutoLRS).

The core is pure and deterministic: `TunerConfig` describes a job, `Controller` turns reports
into instructions. Heavy modules (BoTorch) load lazily, so ``import autolr`` stays light.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from autolr.config import TunerConfig
from autolr.errors import (
    AutoLRError,
    ConfigError,
    Conflict,
    JobFinished,
    JobNotFound,
    ReportError,
)
from autolr.protocol import Instruction, Report

if TYPE_CHECKING:
    from autolr.controller import Controller

__all__ = [
    "AutoLRError",
    "ConfigError",
    "Conflict",
    "Controller",
    "Instruction",
    "JobFinished",
    "JobNotFound",
    "Report",
    "ReportError",
    "TunerConfig",
]
__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    if name == "Controller":
        from autolr.controller import Controller

        return Controller
    raise AttributeError(f"module 'autolr' has no attribute {name!r}")
