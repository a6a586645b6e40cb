"""Which rule should choose and weigh the voting criteria: measured over many random seed draws, not one.

A mining run chooses its criteria from ~30 seed pairs, and one run cannot tell a good choosing rule from a lucky
one (30 pairs: ±9 points). Here a pool of labelled pairs is judged once under a fixed set of candidate criteria
(`critmine eval --criteria CANDIDATES.json --pairs POOL`), then, `--draws` times, `--seeds` pairs of the pool are
drawn as the seed pairs: every rule chooses (and weighs) criteria from the candidates' judgments on those seeds
only, and is scored on the rest of the pool. No LLM call; the manager's own proposals are not part of it (the
candidates are fixed), so it measures selection and aggregation, not proposal.

Score per draw: (correct + ½ × abstained) / test pairs, so a rule that abstains more is not flattered. Printed per
rule: the mean over draws, the draws' standard deviation, the mean difference to the bands rule (the default until
`--ensemble above` replaced it) with the share of draws in which the rule beats it, and the mean number of voting
criteria.

    python eval/benchmarks/selection.py --write-candidates CANDIDATES.json   # the knowledge base's core criteria
    critmine eval --pairs POOL --criteria CANDIDATES.json --out RUN
    python eval/benchmarks/selection.py --pairs POOL --judgments RUN/judgments.jsonl --criteria CANDIDATES.json \
        [--vanilla VANILLA_RUN/judgments.jsonl] [--draws 100 --seeds 30]
"""

from __future__ import annotations

import argparse
import json
import math
import random
import statistics
from collections.abc import Callable, Sequence
from pathlib import Path

from critmine.agents import ensemble, knowledge, scoring
from critmine.agents.scoring import Voter, result_tables, votes
from critmine.agents.worker import Worker
from critmine.artifacts import CriteriaSet
from critmine.config import MiningOptions
from critmine.eval.baselines import heuristic_judgments
from critmine.io import iter_rows, read_pairs
from critmine.records import Criterion, Judgment, Pair

MINING = MiningOptions()  # mining's defaults: the thresholds, min_final and the knowledge-base screen
LOW, GOOD, MIN_FINAL = MINING.low_threshold, MINING.good_threshold, MINING.min_final
MAX_N = 6  # as the benchmark's --n-criteria
Tables = dict[str, dict[str, list]]
Chooser = Callable[[list[Criterion], Tables, list[Pair]], list[Criterion]]


def _ranked(scored: list[Criterion], above: float = LOW) -> list[Criterion]:
    return scoring.above_chance(scored, low=above)


def _equal(cs: list[Criterion]) -> list[Criterion]:
    return [c.model_copy(update={"weight": 1.0}) for c in cs]


def log_odds(cs: list[Criterion]) -> list[Criterion]:
    """Weights log(q / (1 − q)) of each criterion's smoothed seed accuracy q = (right + 1) / (decided + 2)."""
    out = []
    for c in cs:
        q = ((c.n_correct or 0) + 1) / ((c.n_judged or 0) + 2)
        out.append(c.model_copy(update={"weight": max(0.0, math.log(q / (1 - q)))}))
    return out


def screened(choose: Chooser, pairs: int = MINING.kb_screen_pairs, keep: int = MINING.kb_max_candidates) -> Chooser:
    """`choose` after mining's knowledge-base screen: the verbal candidates ranked on the first `pairs` seeds,
    the best `keep` of them (and every computed one) go on to all seeds."""
    def chooser(scored: list[Criterion], tables: Tables, seeds: list[Pair]) -> list[Criterion]:
        few = seeds[:pairs]
        on_few = sorted((scoring.score(c, tables.get(c.key, {}), few, low=LOW, good=GOOD) for c in scored
                         if not c.computed), key=scoring.by_evidence, reverse=True)
        kept = {c.name for c in on_few[:keep]}
        return choose([c for c in scored if c.computed or c.name in kept], tables, seeds)
    return chooser


def rules() -> dict[str, tuple[Chooser, str]]:
    """name → (chooser, vote kind). A chooser gets the candidates scored on the seeds, their seed tables and the
    seeds, and returns the voting criteria with their weights."""
    out: dict[str, tuple[Chooser, str]] = {
        "bands": (lambda s, t, p: _equal(scoring.select_final(s, low=LOW, min_final=MIN_FINAL)), "soft"),
        "forward selection": (lambda s, t, p: ensemble.choose(_ranked(s), t, p, max_n=MAX_N,
                                                              min_n=MIN_FINAL).criteria, "soft"),
    }
    out["bands after an 8-pair screen (mining's)"] = (screened(out["bands"][0]), "soft")
    for k in (1, 3, 5, 8):
        out[f"top {k} by evidence"] = (lambda s, t, p, k=k: _equal(_ranked(s)[:k]), "soft")
    for above in (0.5, 0.6):
        out[f"all above {above}"] = (lambda s, t, p, a=above: _equal(_ranked(s, a)), "soft")
        out[f"all above {above}, log-odds weights"] = (lambda s, t, p, a=above: log_odds(_ranked(s, a)), "soft")
        out[f"all above {above}, majority"] = (lambda s, t, p, a=above: _equal(_ranked(s, a)), "majority")
    out["all above 0.5, fitted weights"] = (
        lambda s, t, p: ensemble.weighed(_ranked(s), t, p, rules=("fitted",)).criteria, "soft")
    out["all above 0.5, mean or fitted by k-fold (mining's)"] = (
        lambda s, t, p: ensemble.weighed(_ranked(s), t, p).criteria, "soft")
    out["all above 0.5, mean or fitted by k-fold, no margin"] = (
        lambda s, t, p: ensemble.weighed(_ranked(s), t, p, margin_se=0.0).criteria, "soft")
    out["every candidate"] = (lambda s, t, p: _equal(s), "soft")
    return out


def _score(pred: dict[str, str], pairs: Sequence[Pair]) -> float:
    return sum(1.0 if pred[p.id] == p.better else 0.5 if pred[p.id] not in ("a", "b") else 0.0
               for p in pairs) / len(pairs)


def run_draw(candidates: list[Criterion], tables: Tables, seeds: list[Pair], test: list[Pair],
             choosers: dict[str, tuple[Chooser, str]]) -> dict[str, tuple[float, int]]:
    """rule → (score on `test`, voting criteria) for one seed draw."""
    scored = [scoring.score(c, tables.get(c.key, {}), seeds, low=LOW, good=GOOD) for c in candidates]
    seed_tables = {c.key: {p.id: tables[c.key][p.id] for p in seeds if p.id in tables.get(c.key, {})}
                   for c in candidates}
    out = {}
    for name, (choose, kind) in choosers.items():
        chosen = [c for c in choose(scored, seed_tables, seeds) if c.weight > 0]
        pred = votes([tables.get(c.key, {}) for c in chosen], [p.id for p in test], [Voter.of(c) for c in chosen])
        out[name] = (_score({pid: v[kind] for pid, v in pred.items()}, test), len(chosen))
    return out


def simulate(candidates: list[Criterion], tables: Tables, pairs: list[Pair], *, draws: int, n_seeds: int,
             seed: int = 0, fixed: dict[str, dict[str, str]] | None = None) -> dict[str, dict]:
    """Per rule (and per `fixed` method, which needs no seeds, e.g. vanilla): mean, sd, mean difference to the
    bands rule and share of draws beating it, mean voting criteria. Rules are run on every candidate and on the
    verbal ones alone ("…, verbal only")."""
    rng = random.Random(seed)
    choosers = rules()
    verbal = [c for c in candidates if not c.computed]
    per: dict[str, list[tuple[float, int]]] = {}
    for _ in range(draws):
        drawn = set(rng.sample(range(len(pairs)), n_seeds))
        seeds = [p for i, p in enumerate(pairs) if i in drawn]
        test = [p for i, p in enumerate(pairs) if i not in drawn]
        rows = run_draw(candidates, tables, seeds, test, choosers)
        if len(verbal) < len(candidates):
            rows |= {f"{k}, verbal only": v for k, v in run_draw(verbal, tables, seeds, test, choosers).items()}
        for name, pred in (fixed or {}).items():
            rows[name] = (_score(pred, test), 0)
        for name, row in rows.items():
            per.setdefault(name, []).append(row)
    base = [s for s, _ in per["bands"]]
    return {name: {"mean": statistics.fmean(s for s, _ in rows), "sd": statistics.pstdev(s for s, _ in rows),
                   "vs_bands": statistics.fmean(s - b for (s, _), b in zip(rows, base, strict=True)),
                   "beats_bands": sum(s > b + 1e-12 for (s, _), b in zip(rows, base, strict=True)) / len(base),
                   "criteria": statistics.fmean(n for _, n in rows)} for name, rows in per.items()}


def write_candidates(path: Path) -> list[Criterion]:
    """The knowledge base's computed criteria, its core verbal criteria (every domain's) and overall_quality, as a
    criteria.json that `critmine eval` judges (no seed pairs recorded: the whole pool may be judged)."""
    entries = knowledge.load_all(None)
    crits = [e.criterion() for e in entries if e.measure] + [
        e.criterion() for e in entries if not e.measure and (e.core or e.name == "overall_quality")]
    CriteriaSet(criteria=crits, seed_pair_ids=[]).write(path)
    return crits


def read_tables(judgments: Path, *, geometric: bool = True) -> Tables:
    """An evaluation's judgments.jsonl as result tables (criterion key → pair id → [p_a, p_b, p_none, verdict]), each
    verbal judgment's two orders combined again by the worker's rule (Worker.combine; `geometric=False`: the rule
    before), so a pool judged under an older rule reads as today's code would combine it."""
    rows = [Judgment.model_validate(r) for _, r in iter_rows(judgments)]
    orders: dict[tuple[str, int, str], list[Judgment]] = {}
    for j in rows:
        if j.order in ("ab", "ba"):
            orders.setdefault((j.criterion, j.version, j.pair_id), []).append(j)
    return result_tables(Worker.combine(orders[key], geometric=geometric)
                         if (key := (j.criterion, j.version, j.pair_id)) in orders else j
                         for j in rows if j.order == "both")


def fixed_predictions(judgments: Path, pairs: list[Pair], *, geometric: bool = True) -> dict[str, str]:
    """A seedless method's verdict per pair (e.g. `critmine eval --baseline vanilla`'s combined judgments)."""
    both = next(iter(read_tables(judgments, geometric=geometric).values()), {})
    return {p.id: both[p.id][3] if p.id in both else "none" for p in pairs}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--write-candidates", type=Path, help="write the knowledge base's candidates here and stop")
    ap.add_argument("--pairs", help="the labelled pool the candidates were judged on")
    ap.add_argument("--judgments", type=Path, help="critmine eval's judgments.jsonl on the pool")
    ap.add_argument("--criteria", type=Path, help="the criteria.json of candidates it judged")
    ap.add_argument("--vanilla", type=Path, help="a vanilla judge's judgments.jsonl on the same pool")
    ap.add_argument("--draws", type=int, default=100)
    ap.add_argument("--seeds", type=int, default=30, help="seed pairs per draw")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", type=Path, help="also write the table here")
    ap.add_argument("--arithmetic-orders", action="store_true",
                    help="ablation: combine each judgment's two orders by the arithmetic mean (the rule before)")
    args = ap.parse_args()
    if args.write_candidates:
        print(f"{len(write_candidates(args.write_candidates))} candidates written to {args.write_candidates}")
        return
    if not (args.pairs and args.judgments and args.criteria):
        ap.error("--pairs, --judgments and --criteria are needed (or --write-candidates)")
    pairs = read_pairs(args.pairs, labelled=True)
    candidates = CriteriaSet.read(args.criteria).criteria
    geometric = not args.arithmetic_orders
    tables = read_tables(args.judgments, geometric=geometric)
    fixed = {"longer wins (no seeds)": {j.pair_id: j.verdict for j in heuristic_judgments(pairs, "length")
                                        if j.order == "both"}}
    if args.vanilla:
        fixed["vanilla judge (no seeds)"] = fixed_predictions(args.vanilla, pairs, geometric=geometric)
    table = simulate(candidates, tables, pairs, draws=args.draws, n_seeds=args.seeds, seed=args.seed, fixed=fixed)
    print(f"{len(pairs)} pairs, {len(candidates)} candidates, {args.draws} draws of {args.seeds} seeds; score = "
          "(right + half the abstentions) / the other pairs")
    print(f"{'rule':<52} {'mean':>6} {'sd':>6} {'vs bands':>10} {'beats it':>8} {'criteria':>8}")
    for name, r in sorted(table.items(), key=lambda kv: -kv[1]["mean"]):
        print(f"{name:<52} {r['mean']:6.3f} {r['sd']:6.3f} {r['vs_bands']:+10.3f} {r['beats_bands']:8.2f} "
              f"{r['criteria']:8.1f}")
    if args.json:
        args.json.write_text(json.dumps(table, indent=1))


if __name__ == "__main__":
    main()
