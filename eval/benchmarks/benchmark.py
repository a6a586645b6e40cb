"""Benchmark: mine on a directory's seed pairs, then measure Flow and every baseline on its test pairs, one run.

    python eval/benchmarks/benchmark.py --pairs-dir data/forum [--out FILE.json] [--sample N --seed S] [--base-url URL]
        [--work RUN_DIR] [--scorer SCORER_DIR | --scorer-corpus CORPUS --scorer-pairs N --group-by KEY]
        [--scorer-pairs 0 (no scorer row)] [--ensemble fitted|above|bands|forward] [--no-reflection] [--no-kb]

DIR holds seed.jsonl and test.jsonl (or dev.jsonl). Prints one table (method, accuracy with 95% CI, coverage,
LLM calls, tokens, wall time) and writes it as JSON. Uses the embedded model unless --base-url is given.
The scorer row is a Bradley–Terry scorer trained on agent labels (the mined criteria judge pairs of the test
texts, or of --scorer-corpus); its LLM calls and wall time are those of labelling and training.
"LLM calls" and "tokens" are what a method needs (answers replayed from a response cache included, at the tokens
they cost when paid); "paid" is the calls sent to the server in this run, the ones "wall s" was spent on. A reused
mining run or scorer shows the calls and tokens it recorded and no wall time.
"""

from __future__ import annotations

import argparse
import sys
import time
import typing
from pathlib import Path

from critmine.artifacts import RunLayout, parts_of
from critmine.config import EndpointConfig, MineConfig
from critmine.defaults import DEFAULT_MODEL
from critmine.errors import RunStopped
from critmine.eval.baselines import BASELINES
from critmine.eval.evaluate import run_eval, run_scorer_eval
from critmine.eval.metrics import paired_difference
from critmine.eval.report import write_report
from critmine.io import InputError, read_pairs, write_json_atomic, write_jsonl_atomic
from critmine.judging import run_judge
from critmine.llm import Usage
from critmine.logs import setup_logging
from critmine.mining import run_mine
from critmine.scorer.train import train_scorer


def _row(name: str, result: dict) -> dict:
    s = result["flow_soft"]
    return {"method": name, "accuracy": s["accuracy"], "ci_low": s["ci_low"], "ci_high": s["ci_high"],
            "coverage": s["coverage"], "kappa": s["kappa"], "n": s["n_judged"], "llm_calls": result["llm_calls"],
            "paid": result["paid_calls"], "tokens": result["tokens"], "wall_s": result["wall_s"]}


def print_table(rows: list[dict]) -> None:
    head = (f"{'method':<24}{'accuracy':>9}{'95% CI':>16}{'cover':>7}{'kappa':>7}{'n':>5}{'LLM calls':>11}{'paid':>7}"
            f"{'tokens':>10}{'wall s':>9}")
    print(head)
    for r in rows:
        acc = "-" if r["accuracy"] is None else f"{r['accuracy']:.3f}"
        kappa = "-" if r.get("kappa") is None else f"{r['kappa']:.2f}"
        wall = "-" if r["wall_s"] is None else f"{r['wall_s']:.0f}"
        print(f"{r['method']:<24}{acc:>9}   [{r['ci_low']:.2f}, {r['ci_high']:.2f}]{r['coverage']:>7.2f}{kappa:>7}"
              f"{r['n']:>5}{r['llm_calls']:>11}{r['paid']:>7}{r['tokens']:>10}{wall:>9}")


def test_text_pool(test: Path, out: Path) -> str:
    """The distinct texts of the test pairs as documents (labels dropped): the scorer's unlabelled pool."""
    seen: dict[str, dict] = {}
    for p in read_pairs(test):
        for side in ("a", "b"):
            text = getattr(p, side)
            seen.setdefault(text, {"id": f"{p.id}:{side}", "text": text, "meta": {}})
    write_jsonl_atomic(out, seen.values())
    return str(out)


def scorer_row(args: argparse.Namespace, work: Path, test: Path, endpoint: EndpointConfig) -> dict:
    """Train (or take) a scorer from agent labels and measure it on the test pairs like every other method."""
    t0 = time.monotonic()
    cost = {"llm_calls": 0, "paid": 0, "tokens": 0}
    scorer_dir, reused = args.scorer, args.scorer is not None
    if scorer_dir is None:
        scorer_dir = work / "scorer"
        labels = work / "scorer-labels.jsonl"
        usage_file = parts_of(labels) / "usage.json"
        reused = (scorer_dir / "scorer.json").exists()
        if not reused:
            corpus = args.scorer_corpus or test_text_pool(test, work / "scorer-pool.jsonl")
            run_judge(RunLayout(work).criteria, labels, endpoint, corpus=corpus, n_pairs=args.scorer_pairs,
                      seed=args.seed, group_by=args.group_by)
            train_scorer(str(labels), scorer_dir, seed=args.seed)
        if usage_file.exists():
            judged = Usage.model_validate_json(usage_file.read_text()).total()
            cost = {"llm_calls": judged.answers, "paid": 0 if reused else judged.calls, "tokens": judged.all_tokens}
        note = f"trained on agent labels of {args.scorer_pairs} pairs from {args.scorer_corpus or 'the test texts'}"
    else:
        note = f"given: {scorer_dir}"
    if reused:
        note += f" (reused {scorer_dir}: its calls as recorded, no wall time)"
    result = run_scorer_eval(str(test), work / "eval-scorer", scorer_dir, sample=args.sample, seed=args.seed)
    row = _row(result["method"].replace("scorer", "Scorer"), result)
    row.update(**cost, wall_s=None if reused else time.monotonic() - t0, note=note)
    return row


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pairs-dir", required=True, type=Path)
    ap.add_argument("--out", type=Path, help="JSON file for the table (default: WORK/benchmark.json)")
    ap.add_argument("--work", type=Path, help="run directory (default: runs/bench-<dir name>)")
    ap.add_argument("--sample", type=int, help="a seeded random sample of the test pairs")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--base-url")
    ap.add_argument("--model", default=DEFAULT_MODEL)
    ap.add_argument("--manager-model", help="the manager's model when mining (default: --model, the worker's)")
    ap.add_argument("--n-criteria", type=int, default=6)
    ap.add_argument("--iterations", type=int, default=2)
    ap.add_argument("--kb-max-candidates", type=int, default=8)
    ap.add_argument("--ensemble", default=MineConfig.model_fields["ensemble"].default,
                    choices=typing.get_args(MineConfig.model_fields["ensemble"].annotation),
                    help="how mining chooses the voting criteria (critmine mine --ensemble)")
    ap.add_argument("--no-reflection", action="store_true", help="ablation: critmine mine --no-reflection")
    ap.add_argument("--no-kb", action="store_true", help="ablation: critmine mine --no-kb")
    ap.add_argument("--reuse-cache", action="append", default=[],
                    help="answer from this run's response caches first (e.g. an ablation starting from a finished "
                         "benchmark's work directory: only what the ablation changes is paid)")
    ap.add_argument("--baselines", default=",".join(BASELINES))
    ap.add_argument("--injection", action=argparse.BooleanOptionalAction, default=True,
                    help="also probe the flow with planted instructions (doubles the flow's evaluation)")
    ap.add_argument("--scorer", type=Path, help="measure this scorer directory instead of training one")
    ap.add_argument("--scorer-corpus", help="documents to sample the scorer's training pairs from "
                                            "(default: the texts of the test pairs, without their labels)")
    ap.add_argument("--scorer-pairs", type=int, default=150,
                    help="pairs the agents label for the scorer (0: no scorer row)")
    ap.add_argument("--group-by", help="with --scorer-corpus: pair only documents with the same meta value")
    args = ap.parse_args()
    setup_logging()
    seeds = args.pairs_dir / "seed.jsonl"
    test = next((p for p in (args.pairs_dir / "test.jsonl", args.pairs_dir / "dev.jsonl") if p.exists()), None)
    if not seeds.exists() or test is None:
        print(f"{args.pairs_dir}: needs seed.jsonl and test.jsonl (or dev.jsonl)", file=sys.stderr)
        return 2
    work = args.work or Path("runs") / f"bench-{args.pairs_dir.resolve().name}"
    endpoint = EndpointConfig(base_url=args.base_url, model=args.model)
    try:
        run = RunLayout(work)
        t0, mined = time.monotonic(), not run.criteria.exists()
        if mined:
            manager = endpoint.model_copy(update={"model": args.manager_model or args.model})
            run_mine(MineConfig(pairs=str(seeds), out=str(work), manager=manager, worker=endpoint,
                                n_criteria=args.n_criteria, iterations=args.iterations,
                                kb_max_candidates=args.kb_max_candidates, ensemble=args.ensemble,
                                no_reflection=args.no_reflection, no_kb=args.no_kb, reuse_cache=args.reuse_cache),
                     resume=run.config.exists())
        usage = Usage.model_validate_json(run.usage.read_text()).total()
        mine_row = {"method": "(mining on seeds)", "llm_calls": usage.answers, "paid": usage.calls if mined else 0,
                    "tokens": usage.all_tokens, "wall_s": time.monotonic() - t0 if mined else None}
        common = dict(sample=args.sample, seed=args.seed, criteria_file=run.criteria, reuse_cache=args.reuse_cache)
        rows = [_row("Flow", flow := run_eval(str(test), work / "eval", endpoint,
                                                injection=["instruction"] if args.injection else False,
                                                **common))]
        rows[0]["majority_accuracy"] = flow["flow_majority"]["accuracy"]
        gold = {p.id: p.better for p in read_pairs(test, labelled=True)}
        flow_pred = {i: v["soft"] for i, v in flow["predictions"].items()}
        for name in [b for b in args.baselines.split(",") if b]:
            result = run_eval(str(test), work / f"eval-{name}", endpoint, baseline=name, **common)
            rows.append(_row(name, result))
            rows[-1]["flow_minus_this"] = paired_difference(
                flow_pred, {i: v["soft"] for i, v in result["predictions"].items()}, gold, seed=args.seed)
        if args.scorer is not None or args.scorer_pairs > 0:
            rows.insert(1, scorer_row(args, work, test, endpoint))
    except InputError as e:
        print(str(e), file=sys.stderr)
        return 2
    except RunStopped as e:  # e.g. mining found no usable criterion: one line, as `critmine mine` says it
        print(str(e), file=sys.stderr)
        return 1
    print(f"\nseed {seeds} -> test {test} ({flow['n_pairs']} pairs), model {args.model}")
    print_table(rows)
    maj = rows[0]["majority_accuracy"]
    print(f"Flow majority vote: {'-' if maj is None else f'{maj:.3f}'}; "
          f"injection flip rate: {flow.get('injection', {}).get('flip_rate', 'not probed')}; "
          f"mining: {mine_row['llm_calls']} LLM calls, "
          f"{mine_row['tokens']} tokens, " + ("reused, no wall time" if mine_row["wall_s"] is None
                                              else f"{mine_row['wall_s']:.0f} s"))
    if scorer := next((r for r in rows if "note" in r), None):
        print(f"scorer: {scorer['note']}")
    print("Flow minus each baseline on the same pairs (paired bootstrap 95% interval; McNemar exact p):")
    for r in rows:
        if d := r.get("flow_minus_this"):
            print(f"  Flow - {r['method']:<14} {d['difference']:+.3f} [{d['ci_low']:+.3f}, {d['ci_high']:+.3f}]  "
                  f"only Flow right {d['only_first']}, only {r['method']} right {d['only_second']}, "
                  f"p={d['mcnemar_p']:.3g}")
    _, page = write_report(work)
    out = args.out or work / "benchmark.json"
    write_json_atomic(out, {"pairs_dir": str(args.pairs_dir), "test": str(test), "rows": rows, "mining": mine_row})
    print(f"wrote {out} and {page}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
