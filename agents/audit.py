"""Shortcut audit: what criteria add beyond simple text signals, on the seed pairs (mining) or any test set (eval)."""

from __future__ import annotations

from critmine.agents import knowledge
from critmine.agents.scoring import Voter, votes
from critmine.agents.worker import Worker
from critmine.eval.metrics import agreement_stats
from critmine.measures import MEASURES
from critmine.records import Criterion, Pair

LENGTH_MATCHED = 1.3  # longer text at most this many times the shorter one (in characters)


def shortcut_audit(pairs: list[Pair], criteria: list[Criterion], by_key: dict[str, dict[str, list]]) -> dict:
    """What the criteria add beyond simple signals: each shipped measure's accuracy on these pairs ("longer
    wins", ...), the flow and each criterion on length-matched pairs only, and the flow without its computed
    criteria."""
    gold = [p.better for p in pairs]
    signals = {c.name: agreement_stats([Worker.measured(p, c).verdict for p in pairs], gold)["accuracy"]
               for c in (e.criterion() for e in knowledge.load_all(None) if e.measure in MEASURES)}  # text-only
    matched = [p for p in pairs if max(len(p.a), len(p.b)) <= LENGTH_MATCHED * min(len(p.a), len(p.b))]
    tables = [by_key.get(c.key, {}) for c in criteria]
    voters = [Voter.of(c) for c in criteria]
    pred = votes(tables, [p.id for p in matched], voters)
    out: dict = {"simple_signals": signals, "length_matched_pairs": len(matched),
                 "flow_length_matched": agreement_stats([pred[p.id]["soft"] for p in matched],
                                                        [p.better for p in matched]),
                 "criteria_length_matched": {c.name: agreement_stats(
                     [t.get(p.id, [0, 0, 1, "none"])[3] for p in matched], [p.better for p in matched])["accuracy"]
                     for c, t in zip(criteria, tables, strict=True)}}
    verbal = [i for i, c in enumerate(criteria) if not c.computed]
    if len(verbal) < len(criteria):
        only = votes([tables[i] for i in verbal], [p.id for p in pairs], [voters[i] for i in verbal])
        out["flow_without_computed"] = agreement_stats([only[p.id]["soft"] for p in pairs], gold)
    return out
