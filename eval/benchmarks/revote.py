"""Ablations without a new LLM call: the flow's accuracy on a benchmark's test pairs under other aggregation rules.

Reads a benchmark's (or `mine` + `eval`'s) own files: the mined criteria (criteria.json), their judgments on the
seed pairs (judgments.jsonl, for the rules fitted on the seeds) and on the test pairs (eval/judgments.jsonl), and
prints, for the same test pairs and the same judgments:
  as mined           the one aggregation rule with the scales and weights stored in criteria.json
  equal weights      the same criteria and scales, every weight 1 (the `above` rule; the voting criteria are those
                     the run chose: a criterion its fitted weights left out is not among them)
  unscaled mean      the same rule with every scale and weight 1 (no calibration)
  raw sum            the first version's vote: the sign of Σ(p_a − p_b) over the criteria
  fitted weights     non-negative weights fitted on the seed pairs (the L2 strength chosen by k-fold, ensemble.py)
  majority           the criteria's verdicts counted
  without computed   the verbal criteria alone
  bands rule         the criteria the bands rule (--ensemble bands) would vote, when the run voted more
                     (e.g. with the default --ensemble fitted, or above)
  each criterion     alone

    python eval/benchmarks/revote.py --work runs/bench20-forum --pairs data/forum/dev.jsonl [--sample 200 --seed 0]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from critmine.agents.ensemble import features, weigh_on
from critmine.agents.scoring import Voter, result_tables, select_final, votes
from critmine.artifacts import CriteriaSet, RunLayout
from critmine.config import MineConfig
from critmine.eval.evaluate import load_test_pairs
from critmine.eval.metrics import agreement_stats
from critmine.io import iter_rows, read_pairs
from critmine.records import Criterion, Judgment, Pair


def _sign(v: float) -> str:
    return "a" if v > 0 else "b" if v < 0 else "none"


def fitted_predictions(criteria: list[Criterion], seed_tables: dict, seeds: list[Pair], test_tables: dict,
                       test: list[Pair]) -> dict[str, str]:
    """Weights fitted on the seed pairs (the L2 strength mining's forward selection would choose), applied to the
    test pairs."""
    weighing = weigh_on(criteria, seed_tables, seeds, rules=("fitted",))
    w = weighing.weights if weighing else np.ones(len(criteria))
    xt, _ = features([test_tables.get(c.key, {}) for c in criteria], [c.scale for c in criteria], test)
    return {p.id: _sign(float(v)) for p, v in zip(test, xt @ w, strict=True)}


def variants(criteria: list[Criterion], seed_tables: dict, seeds: list[Pair], test_tables: dict,
             test: list[Pair], bands: list[str] | None = None) -> dict[str, dict[str, str]]:
    """Each variant's prediction ("a", "b" or "none") per test pair; `bands` names the criteria the bands rule
    chooses from these (a row of its own when that is fewer than all)."""
    ids = [p.id for p in test]
    tables = [test_tables.get(c.key, {}) for c in criteria]

    def vote(idx: list[int], voters: list[Voter] | None = None, key: str = "soft") -> dict[str, str]:
        pred = votes([tables[i] for i in idx], ids, [voters[i] for i in idx] if voters else None)
        return {pid: pred[pid][key] for pid in ids}

    every = list(range(len(criteria)))
    out = {"as mined": vote(every, [Voter.of(c) for c in criteria]),
           "equal weights (--ensemble above)": vote(every, [Voter(c.scale, 1.0) for c in criteria]),
           "unscaled mean": vote(every),
           "raw sum of p_a - p_b": {pid: _sign(sum(t[pid][0] - t[pid][1] for t in tables if pid in t)) for pid in ids},
           "fitted weights (seeds)": fitted_predictions(criteria, seed_tables, seeds, test_tables, test),
           "majority": vote(every, key="majority")}
    verbal = [i for i, c in enumerate(criteria) if not c.computed]
    if 0 < len(verbal) < len(criteria):
        out["without computed"] = vote(verbal, [Voter.of(c) for c in criteria])
    if bands is not None and 0 < len(chosen := [i for i, c in enumerate(criteria) if c.name in bands]) < len(criteria):
        out[f"bands rule ({len(chosen)} of {len(criteria)})"] = vote(chosen, [Voter.of(c) for c in criteria])
    for i, c in enumerate(criteria):
        out[f"{c.name} alone"] = vote([i])
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--work", type=Path, required=True, help="a benchmark's (or mine's) run directory")
    ap.add_argument("--eval", type=Path, help="the evaluation of its criteria (default: WORK/eval)")
    ap.add_argument("--pairs", required=True, help="the test pairs the evaluation judged")
    ap.add_argument("--sample", type=int)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    run = RunLayout(args.work)
    crit = CriteriaSet.read(run.criteria)
    criteria = crit.criteria
    test = load_test_pairs(args.pairs, run.criteria, args.sample, args.seed)
    judged = [Judgment.model_validate(r) for _, r in iter_rows(args.eval or args.work / "eval" / "judgments.jsonl")]
    seed_judged = [Judgment.model_validate(r) for _, r in iter_rows(run.judgments)]
    mined = MineConfig.read(run.config)
    seeds = [p for p in read_pairs(mined.pairs, labelled=True, columns=mined.columns)
             if p.id in {j.pair_id for j in seed_judged}]
    gold = [p.better for p in test]
    bands = [c.name for c in select_final(criteria, low=mined.low_threshold, min_final=mined.min_final)]
    print(f"{len(test)} test pairs, {len(seeds)} seed pairs; criteria: {', '.join(c.key for c in criteria)}; the bands "
          f"rule's: {', '.join(bands)}")
    for name, pred in variants(criteria, result_tables(seed_judged), seeds, result_tables(judged), test,
                               bands).items():
        s = agreement_stats([pred[p.id] for p in test], gold)
        print(f"{name:<40} {s['accuracy']:.3f} [{s['ci_low']:.2f}, {s['ci_high']:.2f}]  n={s['n_judged']}")


if __name__ == "__main__":
    main()
