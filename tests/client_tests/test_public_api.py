"""The public surface: an explicit __all__, and an import that stays light."""

from __future__ import annotations

import subprocess
import sys
import types

import autolr.client
from autolr.client import errors


def test_all_lists_exactly_the_public_names_and_each_resolves():
    ours = {
        name
        for name, obj in vars(autolr.client).items()
        if not name.startswith("_")
        and not isinstance(obj, types.ModuleType)
        and getattr(obj, "__module__", "").startswith("autolr.")
    }
    assert set(autolr.client.__all__) == ours | {"HttpTransport"}  # HttpTransport loads lazily
    assert len(autolr.client.__all__) == len(set(autolr.client.__all__))
    for name in autolr.client.__all__:
        assert getattr(autolr.client, name) is not None


def test_errors_module_exports_the_tree():
    for name in errors.__all__:
        assert issubclass(getattr(errors, name), errors.AutoLRError)
    assert issubclass(errors.TunerFinished, RuntimeError)
    assert issubclass(errors.TransportError, ConnectionError)


def test_importing_the_client_loads_no_server_or_bo_library():
    code = (
        "import sys, autolr.client\n"
        "heavy = ['fastapi', 'sqlalchemy', 'botorch', 'gpytorch', 'uvicorn', 'autolr.server',"
        " 'autolr.controller', 'httpx']\n"
        "print(','.join(m for m in heavy if m in sys.modules))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    assert out.stdout.strip() == ""
