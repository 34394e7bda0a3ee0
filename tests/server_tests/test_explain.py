"""The job page's words for a stage's decision come from the recorded decision, rule by rule."""

from __future__ import annotations

import pytest

from autolr.policy import Decision, Evidence, Rule
from autolr.server.explain import OBJECTIVE_TEXT, RULE_TEXT, explain

EVIDENCE = [
    Evidence(probe=0, lr=0.1, ok=True, forecast=1.37, drop=0.4, objective=0.97, error=0.02),
    Evidence(probe=1, lr=0.039, ok=True, forecast=1.17, drop=0.1, objective=1.07, error=0.02),
    Evidence(probe=2, lr=1.0, ok=False, reason="diverged"),
]


@pytest.mark.parametrize("rule", list(Rule))
def test_every_rule_has_its_own_sentence(rule: Rule) -> None:
    assert rule.value in RULE_TEXT
    text = explain(Decision(rule=rule, lr=0.1)).text
    assert text == RULE_TEXT[rule.value]
    assert len({RULE_TEXT[r.value] for r in Rule}) == len(Rule)


def test_the_trained_probe_is_the_lowest_ranked_loss_not_the_lowest_forecast() -> None:
    """The issue's case: 0.1 forecasts 1.37 next to 0.039 at 1.17, yet 0.1 trains, because
    its cooldown drop makes its predicted final loss the lowest; the page must say so."""
    why = explain(Decision(rule=Rule.SEARCH_BEST, lr=0.1, probe=0, pick=0, evidence=EVIDENCE))
    [trained] = [r for r in why.rows if r.trained]
    assert trained.evidence.lr == 0.1 and trained.best and trained.picked
    assert not why.pick_moved
    assert why.objective == OBJECTIVE_TEXT["final"]


def test_a_rule_that_moves_off_the_pick_says_so() -> None:
    why = explain(Decision(rule=Rule.HOLD_PREVIOUS, lr=0.039, probe=1, pick=0, evidence=EVIDENCE))
    assert why.pick_moved
    assert [(r.trained, r.picked, r.best) for r in why.rows] == [
        (False, True, True),
        (True, False, False),
        (False, False, False),
    ]
