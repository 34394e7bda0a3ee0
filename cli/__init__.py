"""The ``autolr`` command line: a shell package (``cli/``, installed as ``autolr.cli``).

    autolr serve [--host H] [--port P] [--db URL] [--workers N] [--log-level L]
    autolr db upgrade [--db URL]
    autolr jobs list|show|cancel, autolr export      (`autolr.cli.jobs`)

It lives outside the pure core (``autolr/``), like the client and the server it drives: typer,
httpx and rich are shell libraries, and the core never imports them (an import-linter contract).

Options left out fall back to the ``AUTOLR_*`` environment (``AUTOLR_DATABASE_URL``, ...), then
to the defaults in `autolr.server.settings.Settings`. The server's modules are imported only
when a server command runs, so the command works (``--help``) without the server extras.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import typer

from autolr.cli.jobs import register as register_job_commands

if TYPE_CHECKING:
    from autolr.server.settings import Settings

app = typer.Typer(
    name="autolr",
    help="Online learning-rate tuning (AutoLRS): the service and its tools.",
    no_args_is_help=True,
    add_completion=False,
)
db_app = typer.Typer(help="Database maintenance.", no_args_is_help=True)
app.add_typer(db_app, name="db")
register_job_commands(app)  # jobs list|show|cancel, export (cli/jobs.py)

DbOption = Annotated[
    str | None,
    typer.Option(
        "--db",
        help="Database URL, e.g. sqlite:///autolr.db or postgresql+psycopg://user@host/db "
        "(env AUTOLR_DATABASE_URL)",
        show_default=False,
    ),
]


def _settings(**overrides: Any) -> Settings:
    try:
        from autolr.server.settings import Settings
    except ImportError as exc:  # pragma: no cover - depends on the installed extras
        raise typer.BadParameter(
            f"the server needs its extras ({exc.name} is missing): pip install 'autolr[server]'"
        ) from None
    from pydantic import ValidationError

    try:
        return Settings(**{k: v for k, v in overrides.items() if v is not None})
    except ValidationError as exc:
        raise typer.BadParameter(str(exc)) from None


@app.command()
def serve(
    host: Annotated[
        str | None, typer.Option(help="Interface (env AUTOLR_HOST, default 127.0.0.1)")
    ] = None,
    port: Annotated[int | None, typer.Option(help="Port (env AUTOLR_PORT, default 8000)")] = None,
    db: DbOption = None,
    workers: Annotated[
        int | None, typer.Option(min=1, help="Worker processes (env AUTOLR_WORKERS, default 1)")
    ] = None,
    log_level: Annotated[
        str | None,
        typer.Option(help="critical, error, warning, info or debug (env AUTOLR_LOG_LEVEL)"),
    ] = None,
) -> None:
    """Serve the HTTP API (migrating the database first)."""
    settings = _settings(
        host=host,
        port=port,
        database_url=db,
        workers=workers,
        log_level=log_level.lower() if log_level else None,
    )
    from autolr.server.run import serve as run_server

    run_server(settings)


@db_app.command("upgrade")
def db_upgrade(db: DbOption = None) -> None:
    """Create or migrate the database schema to the latest revision."""
    settings = _settings(database_url=db)
    from autolr.server import db as server_db

    engine = server_db.make_engine(settings.engine_url)
    try:
        server_db.upgrade(engine)
    finally:
        engine.dispose()
    typer.echo(f"database at the latest revision: {engine.url.render_as_string()}")


def serve_main() -> None:
    """Entry point of ``python -m autolr.server``: the ``serve`` command on its own."""
    typer.run(serve)


def main() -> None:
    """Entry point of the ``autolr`` script."""
    app()


if __name__ == "__main__":
    main()
