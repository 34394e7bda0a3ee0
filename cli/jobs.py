"""``autolr jobs list|show|cancel`` and ``autolr export``: a server's jobs, for people.

    autolr jobs list   [--status S] [--limit N]               (admin key when the server has one)
    autolr jobs show   JOB --token T                          (or --admin-key)
    autolr jobs cancel JOB --token T
    autolr export      JOB --token T --format json|csv [--out FILE]

Every command talks to a running server through the client's `HttpTransport`, the one HTTP
client of autolr (URL joining, credentials, error answers): ``--server`` (env
``AUTOLR_SERVER``, default ``http://127.0.0.1:8000``), the job's token as ``--token`` (env
``AUTOLR_TOKEN``) and the admin key as ``--admin-key`` (env ``AUTOLR_ADMIN_KEY``, the variable
the server reads too). The client and rich load only when a command runs, so ``autolr --help``
stays fast.

The export is the job's schedule in the format of `autolr.export` (one row per finished
segment), which `autolr.client.ReplaySchedule` reads back: replaying a tuned schedule later,
without the service, is its purpose.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from enum import StrEnum
from pathlib import Path
from typing import IO, TYPE_CHECKING, Annotated, Any

import typer

from autolr.errors import AutoLRError, TransportError
from autolr.export import schedule_rows, write_csv

if TYPE_CHECKING:
    from rich.table import Table

    from autolr.client import HttpTransport

DEFAULT_SERVER = "http://127.0.0.1:8000"
#: Seconds to wait for the server: reads are quick, but a server busy fitting GPs may queue.
TIMEOUT_S = 30.0

jobs_app = typer.Typer(
    help="List, inspect and cancel the jobs of an autolr server.", no_args_is_help=True
)


class Format(StrEnum):
    """Export formats."""

    json = "json"
    csv = "csv"


class Status(StrEnum):
    """Job statuses, for ``jobs list --status``."""

    running = "running"
    finished = "finished"
    cancelled = "cancelled"


ServerOption = Annotated[
    str, typer.Option("--server", envvar="AUTOLR_SERVER", help="Base URL of the autolr server.")
]
TokenOption = Annotated[
    str | None,
    typer.Option(
        "--token", envvar="AUTOLR_TOKEN", help="The job's token (returned by POST /v1/jobs)."
    ),
]
AdminKeyOption = Annotated[
    str | None,
    typer.Option(
        "--admin-key",
        envvar="AUTOLR_ADMIN_KEY",
        help="The server's admin key: lists jobs and opens every job.",
    ),
]
JobArgument = Annotated[str, typer.Argument(help="The job id.", show_default=False)]


# --------------------------------------------------------------------------- HTTP
def _fail(message: str) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(1)


@contextmanager
def _server(
    server: str,
    what: str,
    *,
    job_id: str | None = None,
    token: str | None = None,
    admin_key: str | None = None,
) -> Iterator[HttpTransport]:
    """The client's `HttpTransport` for one command (``what``: the request, for messages).

    URL joining, credentials and reading the server's error answers are the transport's; this
    only turns its errors into one line and exit status 1. One attempt, as a person retries.
    """
    from autolr.client import HttpTransport

    transport = HttpTransport(
        server,
        job_id=job_id,
        token=token or None,
        admin_key=admin_key or None,
        timeout=TIMEOUT_S,
        retries=0,
    )
    try:
        yield transport
    except TransportError as exc:
        raise _fail(
            f"cannot reach the autolr server at {server} ({exc}); "
            "check --server (env AUTOLR_SERVER)"
        ) from None
    except AutoLRError as exc:
        raise _fail(f"{what} answered {exc.http_status}: {exc}") from None
    finally:
        transport.close()


def _need_credentials(token: str | None, admin_key: str | None) -> None:
    if not token and not admin_key:
        raise _fail("this command needs the job's token: pass --token (env AUTOLR_TOKEN)")


def _job(server: str, job_id: str, token: str | None, admin_key: str | None) -> dict[str, Any]:
    _need_credentials(token, admin_key)
    with _server(
        server, f"GET /v1/jobs/{job_id}", job_id=job_id, token=token, admin_key=admin_key
    ) as transport:
        return transport.job()


# --------------------------------------------------------------------------- tables
def fmt_lr(value: float | None) -> str:
    """An LR (or loss) for a table: 4 significant digits, ``-`` for none."""
    return "-" if value is None else f"{value:.4g}"


def _table(*columns: str, numeric: Sequence[str] = ()) -> Table:
    from rich import box
    from rich.table import Table

    table = Table(box=box.SIMPLE_HEAD, pad_edge=False, show_edge=False)
    for name in columns:
        table.add_column(name, justify="right" if name in numeric else "left", no_wrap=True)
    return table


def _pairs(rows: Sequence[tuple[str, str]]) -> Table:
    """Name/value lines, aligned, without a header (a job's summary, its config)."""
    from rich.table import Table

    grid = Table.grid(padding=(0, 3))
    grid.add_column(style="bold", no_wrap=True)
    grid.add_column(no_wrap=True)
    for name, value in rows:
        grid.add_row(name, value)
    return grid


def _print(*renderables: Any) -> None:
    from rich.console import Console

    # Wide enough for a 32-character job id and six columns, whatever the terminal says (a
    # pipe has no width): a table that wraps its ids is not readable.
    console = Console(width=160, highlight=False, soft_wrap=True)
    for item in renderables:
        console.print(item)


def _steps(job: Mapping[str, Any]) -> str:
    total = job.get("total_steps")
    return f"{job['steps_used']}/{total if total is not None else '∞'}"


# --------------------------------------------------------------------------- commands
@jobs_app.command("list")
def list_jobs(
    server: ServerOption = DEFAULT_SERVER,
    admin_key: AdminKeyOption = None,
    status: Annotated[Status | None, typer.Option(help="Only jobs with this status.")] = None,
    limit: Annotated[int, typer.Option(min=1, max=1000, help="Jobs to show, newest first.")] = 50,
) -> None:
    """Jobs, newest first: id, status, stage, steps used / budget and current LR.

    The current LR needs the admin key (the listing carries no LR, and each job's detail is
    readable only with its token or the key); without it the column shows ``-``.
    """
    with _server(server, "GET /v1/jobs", admin_key=admin_key) as transport:
        page = transport.list_jobs(status=None if status is None else status.value, limit=limit)
    table = _table(
        "job", "status", "stage", "steps", "lr", "created", "name", numeric=("stage", "lr")
    )
    for job in page["jobs"]:
        lr = "-"
        if admin_key:
            detail = _job(server, job["job_id"], None, admin_key)
            lr = fmt_lr(detail["current"]["lr"])
        created = str(job["created_at"]).replace("T", " ")[:19]
        name = job.get("name") or ""
        table.add_row(
            job["job_id"], job["status"], str(job["stage"]), _steps(job), lr, created, name
        )
    if not page["jobs"]:
        typer.echo("no jobs")
        return
    _print(table)
    if page.get("next_offset") is not None:
        typer.echo(f"(more jobs: raise --limit above {limit})")


@jobs_app.command("show")
def show_job(
    job_id: JobArgument,
    server: ServerOption = DEFAULT_SERVER,
    token: TokenOption = None,
    admin_key: AdminKeyOption = None,
) -> None:
    """A job's state, its configuration and one row per stage (τ, probes, chosen LR)."""
    job = _job(server, job_id, token, admin_key)
    current = job["current"]
    awaiting = (
        "nothing (finished)"
        if job["finished"]
        else f"segment {current['segment']} ({current['kind']}, {current['steps']} steps)"
    )
    summary = _pairs(
        [
            ("job", job["job_id"]),
            ("name", job.get("name") or "-"),
            ("status", job["status"]),
            ("stage", str(job["stage"])),
            ("steps", _steps(job)),
            ("current lr", fmt_lr(current["lr"])),
            ("awaiting", awaiting),
            ("created", str(job["created_at"]).replace("T", " ")[:19]),
        ]
    )
    config = _pairs([(name, str(value)) for name, value in job["config"].items()])
    stages = _table(
        "stage",
        "τ",
        "τ'",
        "probes",
        "failed",
        "chosen lr",
        "train steps",
        "notes",
        numeric=("stage", "τ", "τ'", "probes", "failed", "chosen lr", "train steps"),
    )
    for stage in job["stages"]:
        failed = sum(1 for p in stage["probes"] if not p["ok"])
        notes = []
        if stage.get("stopped_early"):
            notes.append("stopped early")
        if stage.get("reused_probe") is not None:
            notes.append(f"continued from probe {stage['reused_probe']}")
        train = stage.get("train_steps")
        stages.add_row(
            str(stage["stage"]),
            str(stage["tau"]),
            str(stage["probe_steps"]),
            str(len(stage["probes"])),
            str(failed),
            fmt_lr(stage.get("chosen_lr")),
            "-" if train is None else str(train),
            ", ".join(notes),
        )
    _print(summary, "", "[bold]config[/bold]", config, "")
    _print(stages if job["stages"] else "no stage yet")


@jobs_app.command("cancel")
def cancel_job(
    job_id: JobArgument,
    server: ServerOption = DEFAULT_SERVER,
    token: TokenOption = None,
    admin_key: AdminKeyOption = None,
) -> None:
    """Cancel a running job: its training client gets a refusal at its next report."""
    _need_credentials(token, admin_key)
    with _server(
        server, f"DELETE /v1/jobs/{job_id}", job_id=job_id, token=token, admin_key=admin_key
    ) as transport:
        job = transport.cancel()
    if job["status"] == "cancelled":
        typer.echo(f"job {job_id}: cancelled")
    else:
        typer.echo(f"job {job_id}: {job['status']} (nothing to cancel)")


def export(
    job_id: JobArgument,
    server: ServerOption = DEFAULT_SERVER,
    token: TokenOption = None,
    admin_key: AdminKeyOption = None,
    output_format: Annotated[
        Format, typer.Option("--format", "-f", help="json or csv.")
    ] = Format.json,
    out: Annotated[
        Path | None, typer.Option("--out", "-o", help="File to write (default: stdout).")
    ] = None,
) -> None:
    """Export a job's schedule, one row per segment, for autolr.client.ReplaySchedule.

    JSON holds the job id, name, status, config and the rows under ``schedule``; CSV holds the
    rows.
    """
    job = _job(server, job_id, token, admin_key)
    rows = schedule_rows(job)
    if out is None:
        _write(job, rows, output_format, sys.stdout)
        return
    with out.open("w", encoding="utf-8", newline="") as stream:
        _write(job, rows, output_format, stream)
    typer.echo(f"wrote {len(rows)} segments of job {job_id} to {out}", err=True)


def _write(
    job: Mapping[str, Any], rows: list[dict[str, Any]], format: Format, out: IO[str]
) -> None:
    if format is Format.csv:
        write_csv(rows, out)
        return
    document = {
        "job_id": job.get("job_id"),
        "name": job.get("name"),
        "status": job.get("status"),
        "config": job["config"],
        "schedule": rows,
    }
    json.dump(document, out, indent=2)
    out.write("\n")


# --------------------------------------------------------------------------- the export format
def register(app: typer.Typer) -> None:
    """Add ``jobs`` and ``export`` to the ``autolr`` command line."""
    app.add_typer(jobs_app, name="jobs")
    app.command("export")(export)
