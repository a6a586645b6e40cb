"""eval/benchmarks/selection.py: choosing rules scored over random seed draws, on judgments with a known truth."""

from __future__ import annotations

import json
import math
import random
import subprocess
import sys
from pathlib import Path

import pytest

from critmine.agents.scoring import result_tables
from critmine.artifacts import CriteriaSet
from critmine.records import Criterion, Judgment, Pair
from eval.benchmarks.selection import read_tables, simulate, write_candidates

ROOT = Path(__file__).resolve().parents[1]


def _world(n: int = 60) -> tuple[list[Pair], list[Criterion], list[Judgment]]:
    """An `oracle` criterion always right, `noise` right half the time, `contrarian` always wrong."""
    rng = random.Random(1)
    pairs = [Pair(id=f"p{i}", a=f"text {i} a", b=f"text {i} b" + " longer" * (i % 2), better=rng.choice("ab"))
             for i in range(n)]
    crits = [Criterion(name=n, description=f"{n} criterion") for n in ("oracle", "noise", "contrarian")]
    js = []
    for p in pairs:
        for c in crits:
            side = {"oracle": p.better, "noise": rng.choice("ab"),
                    "contrarian": "b" if p.better == "a" else "a"}[c.name]
            p_a = 0.8 if side == "a" else 0.2
            js.append(Judgment(pair_id=p.id, criterion=c.name, version=1, order="both", p_a=p_a, p_b=1 - p_a,
                               p_none=0.0, verdict=side))
    return pairs, crits, js


def test_rules_choose_from_the_seeds_and_are_scored_on_the_other_pairs():
    pairs, crits, js = _world()
    tables = result_tables(js)
    fixed = {"always a": {p.id: "a" for p in pairs}}
    table = simulate(crits, tables, pairs, draws=4, n_seeds=20, fixed=fixed)
    # the seeds show the oracle is right and the contrarian wrong: every choosing rule keeps the oracle alone or
    # with noise, and is right on (nearly) every other pair
    assert table["top 1 by evidence"]["mean"] == 1.0
    assert table["bands"]["mean"] == 1.0 and table["bands"]["vs_bands"] == 0.0
    assert table["forward selection"]["mean"] == 1.0
    # voting every candidate lets the contrarian cancel the oracle: the noise decides
    assert table["every candidate"]["mean"] < 0.8 and table["every candidate"]["beats_bands"] == 0.0
    share_a = sum(p.better == "a" for p in pairs) / len(pairs)
    assert abs(table["always a"]["mean"] - share_a) < 0.1 and table["always a"]["criteria"] == 0


def test_the_benchmark_reads_an_evaluation_and_prints_the_table(tmp_path):
    pairs, crits, js = _world()
    (tmp_path / "pool.jsonl").write_text("".join(p.model_dump_json() + "\n" for p in pairs))
    (tmp_path / "judgments.jsonl").write_text("".join(j.model_dump_json() + "\n" for j in js))
    CriteriaSet(criteria=crits, seed_pair_ids=[]).write(tmp_path / "criteria.json")
    out = subprocess.run([sys.executable, str(ROOT / "eval" / "benchmarks" / "selection.py"), "--pairs",
                          str(tmp_path / "pool.jsonl"), "--judgments", str(tmp_path / "judgments.jsonl"),
                          "--criteria", str(tmp_path / "criteria.json"), "--draws", "3", "--json",
                          str(tmp_path / "table.json")], capture_output=True, text=True, cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "60 pairs, 3 candidates, 3 draws of 30 seeds" in out.stdout
    table = json.loads((tmp_path / "table.json").read_text())
    assert table["top 1 by evidence"]["mean"] == 1.0
    # "longer wins": b is longer on the odd pairs, the texts are equally long on the even ones (abstention: ½)
    expected = sum(0.5 if int(p.id[1:]) % 2 == 0 else float(p.better == "b") for p in pairs) / len(pairs)
    assert abs(table["longer wins (no seeds)"]["mean"] - expected) < 0.1


def test_the_candidates_are_the_knowledge_bases_core_and_computed_criteria(tmp_path):
    crits = write_candidates(tmp_path / "c.json")
    names = {c.name for c in crits}
    assert {"longer_text", "fluent_language", "writing_style", "grammatical_correctness", "overall_quality"} <= names
    assert CriteriaSet.read(tmp_path / "c.json").seed_pair_ids == []
    assert len(crits) == len(names) == 26


def test_a_pools_orders_are_combined_again_by_the_workers_current_rule(tmp_path):
    """A pool judged before the combination rule changed: its stored "both" rows are replaced by its two orders
    combined as the worker now does (log-odds), or as before with geometric=False; a computed criterion's "both"
    row, which has no orders, is read as it is."""
    def row(criterion, order, p_a, p_b, verdict):
        return Judgment(pair_id="p1", criterion=criterion, version=1, order=order, p_a=p_a, p_b=p_b,
                        p_none=round(1 - p_a - p_b, 6), verdict=verdict).model_dump()

    rows = [row("verbal", "ab", 0.98, 0.01, "a"), row("verbal", "ba", 0.10, 0.80, "b"),
            row("verbal", "both", 0.9, 0.1, "a"),  # stale: neither rule gives this
            row("longer_text", "both", 0.7, 0.3, "a")]
    path = tmp_path / "judgments.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    now, before = read_tables(path), read_tables(path, geometric=False)
    q = 1 / (1 + math.exp(-(math.log(0.98 / 0.01) + math.log(0.10 / 0.80)) / 2))  # the orders' mean log-odds
    assert now["verbal@v1"]["p1"] == pytest.approx([q * 0.945, (1 - q) * 0.945, 0.055, "a"])
    assert before["verbal@v1"]["p1"] == pytest.approx([0.54, 0.405, 0.055, "a"])
    assert now["longer_text@v1"]["p1"] == before["longer_text@v1"]["p1"] == [0.7, 0.3, 0.0, "a"]
