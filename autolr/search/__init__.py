"""Searchers: where to probe the learning rate next, and which probe to train with.

A searcher works on ``x_unit`` in [0, 1], the normalized log-LR of ``autolr.space.LogSpace``,
and on outcomes ``y`` where lower is better (the forecast loss of a probe). It is stateless
(the Vizier/Optuna pattern): every call rebuilds whatever model it needs from the
observations it is given, so a controller can be restarted, replayed or run by any replica
without the searcher carrying memory between calls.

Two implementations:

- ``RandomSearcher``: log-uniform proposals, argmin choice; pure Python, always available.
- ``GPSearcher``: BoTorch GP with an LCB acquisition (AutoLRS's BO, with a sane κ).

Importing this package does not import torch, botorch or gpytorch: ``GPSearcher`` is loaded
on first access, because importing botorch changes global GPyTorch settings and costs
seconds that a client process that never searches should not pay.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from autolr.errors import SearchError, SearchInputError
from autolr.search._common import SearcherBase as SearcherBase
from autolr.search._common import accepts_noise as accepts_noise
from autolr.search._random import RandomSearcher

if TYPE_CHECKING:
    from autolr.search._gp import GPSearcher

# `SearcherBase`, `accepts_noise` and `SEARCH_FAILURES` are importable from here too (the
# optional capabilities, the failure contract), outside ``__all__``, whose five names are the
# searching surface.
__all__ = ["GPSearcher", "RandomSearcher", "SearchError", "SearchInputError", "Searcher"]

#: What a `Searcher` raises when it cannot decide on the observations it is given (the
#: contract below): ``SearchError`` (the model failed) and ``SearchInputError`` (observations
#: it cannot take, e.g. a variance beyond the float range). A caller that must go on (the
#: controller) catches exactly these and falls back to ``RandomSearcher``; anything else a
#: searcher raises is a bug and propagates.
SEARCH_FAILURES: tuple[type[Exception], ...] = (SearchError, SearchInputError)


@runtime_checkable
class Searcher(Protocol):
    """The contract every searcher keeps.

    - **Stateless.** Outputs are a pure function of the arguments and the constructor
      options: the same observations and seed give bit-identical results, in any process.
    - **Pass-by-value.** The sequences are copied on entry and never kept or mutated.
    - **Thread safety.** Calls may come from several threads at once (the server's
      thread pool); implementations serialize whatever process-wide state they touch.
    - **Validation.** ``x_unit`` must be finite and inside [0, 1], ``y`` finite and of the
      same length; anything else raises ``SearchInputError`` (a ``ValueError``) naming the
      offending index and value. Divergent probes must be turned into a finite penalty by
      the caller first (AutoLRS pitfall 2).
    - **Failure.** ``SearchError`` (a ``RuntimeError``) means this searcher cannot decide
      on these observations (e.g. the GP fit failed); the caller falls back to
      ``RandomSearcher``, as it does on ``SearchInputError`` (`SEARCH_FAILURES`). No other
      exception is raised on purpose, and the controller lets any other one propagate.
    """

    def propose(
        self,
        x_unit: Sequence[float],
        y: Sequence[float],
        *,
        seed: int,
        bounds: tuple[float, float] = (0.0, 1.0),
        noise: Sequence[float] | None = None,
    ) -> float:
        """The next point to probe.

        Args:
            x_unit: observed points in [0, 1], length n (may be empty).
            y: finite outcomes of those points, lower is better, length n.
            seed: all randomness of the proposal derives from it.
            bounds: the sub-interval of [0, 1] to propose from.
            noise: known variances of ``y`` (length n, each finite and ≥ 0) or None; a
                searcher may ignore them but must validate them. Declared by
                ``accepts_noise`` (`SearcherBase`: True); a searcher that declares False, or
                an undeclared one whose method lacks the keyword, gets the outcomes alone.

        Returns:
            A point in [0, 1], at least the searcher's ``min_distance`` from every observed
            point whenever such a point exists.

        Raises:
            SearchInputError: invalid observations.
            SearchError: the searcher cannot decide on these observations.
        """
        ...

    def choose(
        self, x_unit: Sequence[float], y: Sequence[float], *, noise: Sequence[float] | None = None
    ) -> int:
        """Index (into ``x_unit``) of the observation to train with.

        Args:
            x_unit: observed points in [0, 1], length n ≥ 1.
            y: finite outcomes of those points, lower is better, length n.
            noise: known variances of ``y``, as for ``propose``.

        Returns:
            An index in ``range(n)``.

        Raises:
            SearchInputError: invalid or empty observations.
        """
        ...


def __getattr__(name: str) -> Any:
    # Lazy import: only autolr.search._gp imports torch/botorch (see the module docstring).
    if name == "GPSearcher":
        from autolr.search._gp import GPSearcher

        return GPSearcher
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
