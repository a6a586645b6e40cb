"""eval/benchmarks/revote.py: re-voting a run's own judgments, here the bands rule's subset of a wider vote."""

from __future__ import annotations

from critmine.agents.scoring import result_tables
from critmine.records import Criterion, Judgment, Pair
from eval.benchmarks.revote import variants


def _j(pid: str, name: str, side: str) -> Judgment:
    p_a = 0.9 if side == "a" else 0.1
    return Judgment(pair_id=pid, criterion=name, version=1, order="both", p_a=p_a, p_b=1 - p_a, p_none=0.0,
                    verdict=side)


def test_the_bands_rows_votes_only_the_criteria_the_bands_rule_chose():
    pairs = [Pair(id=f"p{i}", a="x", b="y", better="a") for i in range(4)]
    crits = [Criterion(name=n, description=f"{n} criterion") for n in ("right", "wrong1", "wrong2")]
    tables = result_tables([_j(p.id, c.name, "a" if c.name == "right" else "b") for p in pairs for c in crits])
    out = variants(crits, tables, pairs, tables, pairs, bands=["right"])
    assert out["bands rule (1 of 3)"] == dict.fromkeys((p.id for p in pairs), "a")  # the two wrong ones left out
    assert out["as mined"] == dict.fromkeys((p.id for p in pairs), "b")  # all three: outvoted
    assert not any(k.startswith("bands") for k in variants(crits, tables, pairs, tables, pairs, bands=None))
    assert not any(k.startswith("bands") for k in variants(crits, tables, pairs, tables, pairs,
                                                           bands=["right", "wrong1", "wrong2"]))


def test_as_mined_applies_the_stored_weights_and_the_equal_weights_row_drops_them():
    pairs = [Pair(id=f"p{i}", a="x", b="y", better="a") for i in range(4)]
    crits = [Criterion(name=n, description=f"{n} criterion", weight=w) for n, w in
             (("right", 2.2), ("wrong1", 0.4), ("wrong2", 0.4))]
    tables = result_tables([_j(p.id, c.name, "a" if c.name == "right" else "b") for p in pairs for c in crits])
    out = variants(crits, tables, pairs, tables, pairs)
    assert out["as mined"] == dict.fromkeys((p.id for p in pairs), "a")  # the weighed vote follows "right"
    assert out["equal weights (--ensemble above)"] == dict.fromkeys((p.id for p in pairs), "b")
