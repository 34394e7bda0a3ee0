"""Moved: the job commands live in `autolr.cli.jobs` (``cli/jobs.py``), outside the pure core,
and the export format in `autolr.export`.

This name stays so that old imports keep working; it is the one module of the ``autolr/``
folder that is not core (the import contracts leave it out), and it loads the CLI only when
imported.
"""

from __future__ import annotations

from autolr.cli.jobs import (
    DEFAULT_SERVER,
    TIMEOUT_S,
    Format,
    Status,
    _write,
    export,
    fmt_lr,
    jobs_app,
    register,
)
from autolr.export import EXPORT_COLUMNS, schedule_rows, write_csv

__all__ = [
    "DEFAULT_SERVER",
    "EXPORT_COLUMNS",
    "TIMEOUT_S",
    "Format",
    "Status",
    "_write",
    "export",
    "fmt_lr",
    "jobs_app",
    "register",
    "schedule_rows",
    "write_csv",
]
