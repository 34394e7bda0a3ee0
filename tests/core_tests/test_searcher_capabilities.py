"""Optional searcher capabilities are declared (`SearcherBase`), not guessed from signatures."""

from __future__ import annotations

from typing import Any

from autolr.search import GPSearcher, RandomSearcher, SearcherBase, accepts_noise


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
