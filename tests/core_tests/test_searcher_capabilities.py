"""Optional searcher capabilities are declared (`SearcherBase`), not guessed from signatures;
the controller falls back on exactly the failures the search contract declares."""

from __future__ import annotations

from typing import Any

import pytest

from autolr import Controller, TunerConfig
from autolr.search import (
    SEARCH_FAILURES,
    GPSearcher,
    RandomSearcher,
    SearcherBase,
    SearchError,
    SearchInputError,
    accepts_noise,
)
from autolr.simulate import NoisyQuadratic, run_job


class _Declines(RandomSearcher):
    """Takes ``noise=`` in its signature but declares it does not want it."""

    accepts_noise = False


class _Undeclared:
    """A searcher written before the declaration: its signature is read instead."""

    def propose(self, x_unit: list[float], y: list[float], **_: Any) -> float:
        return 0.5

    def choose(self, x_unit: list[float], y: list[float]) -> int:
        return 0


def test_the_library_searchers_declare_that_they_take_noise() -> None:
    for searcher in (RandomSearcher(), GPSearcher()):
        assert isinstance(searcher, SearcherBase)
        assert accepts_noise(searcher, searcher.choose)


def test_a_declaration_wins_over_the_signature() -> None:
    searcher = _Declines()
    assert not accepts_noise(searcher, searcher.choose)


def test_an_undeclared_searcher_is_read_from_its_signature() -> None:
    searcher = _Undeclared()
    assert accepts_noise(searcher, searcher.propose)  # **kwargs takes it
    assert not accepts_noise(searcher, searcher.choose)


class _Fails(RandomSearcher):
    """Raises ``error`` from every call, as a searcher that cannot decide (or has a bug)."""

    def __init__(self, error: Exception) -> None:
        super().__init__()
        self.error = error

    def propose(self, *args: Any, **kwargs: Any) -> float:
        raise self.error

    def choose(self, *args: Any, **kwargs: Any) -> int:
        raise self.error


def _run(searcher: RandomSearcher) -> Controller:
    ctl = Controller(
        TunerConfig(min_lr=1e-3, max_lr=3.0, total_steps=3000, seed=7), searcher=searcher
    )
    run_job(ctl, NoisyQuadratic(seed=1))
    return ctl


@pytest.mark.parametrize(
    "error", [SearchError("the GP fit failed"), SearchInputError("noise[0]=inf")]
)
def test_a_search_that_cannot_decide_falls_back_and_says_so(error: Exception) -> None:
    ctl = _run(_Fails(error))
    assert ctl.finished and ctl.steps_used == 3000
    fallbacks = [f for stage in ctl.stages for f in stage.search_fallbacks]
    assert any(f.startswith("probe ") and type(error).__name__ in f for f in fallbacks)
    assert any(f.startswith("choose: ") for f in fallbacks)


def test_a_searcher_bug_is_not_hidden_by_the_fallback() -> None:
    with pytest.raises(ZeroDivisionError):
        _run(_Fails(ZeroDivisionError("a bug in the searcher")))


def test_the_failure_contract_names_the_search_errors() -> None:
    assert set(SEARCH_FAILURES) == {SearchError, SearchInputError}
