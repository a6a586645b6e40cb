"""eval/benchmarks/selection.py: choosing rules scored over random seed draws, on judgments with a known truth."""

from __future__ import annotations

import json
import random
import subprocess
import sys
from pathlib import Path

from critmine.agents.scoring import result_tables
from critmine.artifacts import CriteriaSet
from critmine.records import Criterion, Judgment, Pair
from eval.benchmarks.selection import simulate, write_candidates

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
    assert table["bands (default)"]["mean"] == 1.0 and table["bands (default)"]["vs_default"] == 0.0
    assert table["forward selection"]["mean"] == 1.0
    # voting every candidate lets the contrarian cancel the oracle: the noise decides
    assert table["every candidate"]["mean"] < 0.8 and table["every candidate"]["beats_default"] == 0.0
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
