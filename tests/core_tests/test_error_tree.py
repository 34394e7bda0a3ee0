"""One exception tree: every exception class defined once, in ``autolr.errors``, as drawn there."""

from __future__ import annotations

import importlib
import pkgutil
import re
from types import ModuleType

import autolr.errors
from autolr.errors import AutoLRError

#: Modules that do something on import (run a server, run migrations): never imported here.
_SKIP = re.compile(r"\.__main__$|\.migrations(\.|$)")


def _modules() -> list[ModuleType]:
    """Every importable module of the three packages (core, client, server)."""
    found = []
    for name in ("autolr", "autolr.client", "autolr.server"):
        package = importlib.import_module(name)
        found.append(package)
        for info in pkgutil.walk_packages(package.__path__, prefix=name + "."):
            if not _SKIP.search(info.name):
                found.append(importlib.import_module(info.name))
    return found


def _defined_exceptions() -> list[type[BaseException]]:
    """The exception classes the package modules define (re-exports counted once)."""
    seen: dict[int, type[BaseException]] = {}
    for module in _modules():
        for obj in vars(module).values():
            if (
                isinstance(obj, type)
                and issubclass(obj, BaseException)
                and obj.__module__.startswith("autolr")
            ):
                seen[id(obj)] = obj
    return list(seen.values())


def _drawn_tree() -> dict[str, str | None]:
    """Each class named in the docstring's diagram, with its parent there."""
    parents: dict[str, str | None] = {}
    stack: list[str] = []
    for line in (autolr.errors.__doc__ or "").splitlines():
        match = re.match(r"^ {4}((?:│   |    )*)(?:[├└]── )?([A-Z]\w+)\b", line)
        if match is None or ("──" in line) != bool(stack):  # the root, then branches only
            continue
        depth = len(match.group(1)) // 4 + (1 if stack else 0)
        del stack[depth:]
        parents[match.group(2)] = stack[-1] if stack else None
        stack.append(match.group(2))
    return parents


def _tree_lines(cls: type[BaseException], depth: int = 0) -> list[str]:
    lines = ["    " * depth + cls.__name__]
    for sub in cls.__subclasses__():
        if sub.__module__ == "autolr.errors":
            lines += _tree_lines(sub, depth + 1)
    return lines


def test_no_exception_class_is_defined_twice() -> None:
    names = sorted(cls.__name__ for cls in _defined_exceptions())
    duplicates = sorted({name for name in names if names.count(name) > 1})
    assert duplicates == [], f"defined more than once: {duplicates}"


def test_every_public_exception_lives_in_the_one_tree() -> None:
    elsewhere = sorted(
        f"{cls.__module__}.{cls.__name__}"
        for cls in _defined_exceptions()
        if not cls.__name__.startswith("_") and cls.__module__ != "autolr.errors"
    )
    assert elsewhere == [], f"define these in autolr.errors: {elsewhere}"


def test_the_docstring_draws_the_tree_as_it_is() -> None:
    actual: dict[str, str | None] = {}
    for cls in vars(autolr.errors).values():
        if isinstance(cls, type) and issubclass(cls, AutoLRError):
            bases = [b.__name__ for b in cls.__bases__ if issubclass(b, AutoLRError)]
            actual[cls.__name__] = bases[0] if bases else None
    print("\n".join(_tree_lines(AutoLRError)))  # the tree, listed (pytest -s shows it)
    assert _drawn_tree() == actual
    assert sorted(autolr.errors.__all__) == sorted(actual)


def test_each_package_re_exports_its_part_of_the_same_classes() -> None:
    import autolr.client._http as http
    import autolr.client.errors as client_errors
    import autolr.search as search
    import autolr.server.errors as server_errors
    import autolr.server.store as store

    for module in (client_errors, server_errors, http, search, store, autolr):
        for name in getattr(module, "__all__", ()):
            if hasattr(autolr.errors, name):
                assert getattr(module, name) is getattr(autolr.errors, name), (module, name)
    assert store.StaleVersion is autolr.errors.StaleVersion
    assert server_errors.JobCancelled is http.JobCancelled is client_errors.JobCancelled
