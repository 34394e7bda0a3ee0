"""The installed layout: a pure core, and the shells (client, server, CLI) around it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import autolr

#: Libraries only a shell may import: the CLI's, the client's HTTP, the server's.
SHELL_LIBRARIES = ("typer", "httpx", "rich", "uvicorn", "fastapi", "sqlalchemy")
#: The one module of the autolr/ folder that is not core: an alias kept for old imports.
NOT_CORE = {"autolr.cli_jobs"}


def _core_modules() -> list[str]:
    """Every module of the ``autolr/`` folder (new ones included, without a list to update)."""
    root = Path(autolr.__file__).parent
    names = []
    for path in sorted(root.rglob("*.py")):
        parts = path.relative_to(root.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        if name not in NOT_CORE:
            names.append(name)
    return names


def test_importing_every_core_module_loads_no_shell_library() -> None:
    modules = _core_modules()
    assert "autolr.controller" in modules and "autolr.search._gp" in modules
    code = (
        "import importlib, sys\n"
        f"for name in {modules!r}:\n"
        "    importlib.import_module(name)\n"
        f"print(','.join(m for m in {SHELL_LIBRARIES!r} if m in sys.modules))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=300
    )
    assert out.stdout.strip() == ""


def test_the_cli_is_a_shell_package_and_the_old_paths_still_import() -> None:
    import autolr.cli
    import autolr.cli.jobs
    import autolr.cli_jobs

    assert Path(autolr.cli.__file__).parent.name == "cli"  # the cli/ folder, not autolr/
    assert autolr.cli_jobs.schedule_rows is autolr.cli.jobs.schedule_rows
    assert autolr.cli.app is not None and callable(autolr.cli.serve_main)


def test_python_m_autolr_cli_runs_the_command_line() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "autolr.cli", "--help"],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    assert "serve" in out.stdout and "jobs" in out.stdout and "export" in out.stdout
