"""What the job page says about each stage: the rule that set its LR, in words, and the
evidence the rule read, as plain values for the templates.

Everything here reads the stage policy's recorded `autolr.policy.Decision` (never re-derives
one): the page shows what the job decided, and why, from the same record the client logs.
"""

from __future__ import annotations

from dataclasses import dataclass

from autolr.policy import Decision, Evidence
from autolr.server.views import StagePublic

#: One sentence per rule: what made the stage train at its LR. Keys are `Rule` values (stable:
#: they are persisted); a rule without a sentence here is shown by its name.
RULE_TEXT: dict[str, str] = {
    "search-best": (
        "The search's pick: the probe with the lowest GP posterior mean of the ranked loss."
    ),
    "range-too-high": (  # retired rule: shown for jobs recorded before it was retired
        "Even the search's pick forecasted a significant rise over the stage's starting loss, "
        "so the LR stepped down below it (a rule since retired)."
    ),
    "no-healthy-probe": (
        "Every probe failed (diverged or could not be forecast): the smallest LR allowed."
    ),
    "hold-previous": (
        "The search's pick does not beat the previous stage's LR by two standard errors, so "
        "the previous LR trains on."
    ),
    "hold": "No search this stage (the probe budget is spent): the LR in use trains on.",
    "rollback": (
        "The stage's training diverged: it restarts from the stage snapshot at a lower LR."
    ),
}

#: What the probes were ranked by, per `Decision.objective`.
OBJECTIVE_TEXT: dict[str, str] = {
    "final": "predicted loss at the end of the budget (forecast at τ minus the cooldown drop)",
    "horizon": "forecast loss τ steps ahead (AutoLRS as published)",
}


@dataclass(frozen=True)
class EvidenceRow:
    """One probe as the decision saw it, with the marks the table shows."""

    evidence: Evidence
    trained: bool  # this probe's LR trains the stage
    picked: bool  # the search's own pick (before ties and caps)
    best: bool  # the lowest ranked loss among the stage's probes


@dataclass(frozen=True)
class Explanation:
    """A decision in words: rule, sentence, what was ranked, and the evidence rows."""

    decision: Decision
    rule: str
    text: str
    objective: str
    rows: list[EvidenceRow]
    pick_moved: bool  # the rule moved the LR off the search's pick


def explain(decision: Decision) -> Explanation:
    """The page's view of one recorded decision."""
    ranked = [e.objective for e in decision.evidence if e.objective is not None]
    best = min(ranked) if ranked else None
    rows = [
        EvidenceRow(
            evidence=e,
            trained=decision.probe is not None and e.probe == decision.probe,
            picked=decision.pick is not None and e.probe == decision.pick,
            best=best is not None and e.objective == best,
        )
        for e in decision.evidence
    ]
    rule = decision.rule.value
    return Explanation(
        decision=decision,
        rule=rule,
        text=RULE_TEXT.get(rule, rule),
        objective=OBJECTIVE_TEXT.get(decision.objective, decision.objective),
        rows=rows,
        pick_moved=decision.pick is not None and decision.pick != decision.probe,
    )


def explain_stage(stage: StagePublic) -> list[Explanation]:
    """Every decision of a stage, in order; the last one is what the stage trains with."""
    return [explain(d) for d in stage.decisions]
