"""The exceptions autolr raises, as one small tree.

    AutoLRError                      base of everything autolr raises on purpose
    ├── ConfigError (ValueError)     an invalid TunerConfig value or combination
    ├── ReportError (ValueError)     a report that cannot belong to the instruction it answers
    ├── Conflict                     a report for a segment other than the one expected
    ├── JobNotFound (LookupError)    an unknown job id, or a token that does not match
    └── JobFinished                  a report or a step after the job's budget is spent

Each exception composes its own message: what is wrong and how to fix it.
"""

from __future__ import annotations


class AutoLRError(Exception):
    """Base class of every error autolr raises on purpose."""


class ConfigError(AutoLRError, ValueError):
    """An invalid configuration value or combination of values."""


class ReportError(AutoLRError, ValueError):
    """A report whose content does not fit the instruction it answers."""


class Conflict(AutoLRError):
    """A report for a segment other than the one the controller expects.

    Attributes:
        expected: the segment index the controller is waiting for.
        got: the segment index the report named.
    """

    def __init__(self, expected: int, got: int) -> None:
        self.expected = expected
        self.got = got
        super().__init__(
            f"report is for segment {got}, but the job expects segment {expected}; "
            f"resend the report for segment {expected} (reports are idempotent: "
            f"re-sending segment {expected - 1} returns the same instruction)"
        )


class JobNotFound(AutoLRError, LookupError):
    """An unknown job, or a job token that does not match (the two look the same)."""


class JobFinished(AutoLRError):
    """The job's step budget is spent; no more segments will be issued."""
