"""CLI commands for distilling criteria into a corpus filter: judge, train, score, select, run."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from critmine.artifacts import RunLayout
from critmine.cli_args import add_endpoint_args, add_mining_args, endpoints, mine_config
from critmine.defaults import MAX_TEXT_CHARS
from critmine.io import InputError


def _add_pair_source(p: argparse.ArgumentParser) -> None:
    p.add_argument("--n-pairs", type=int, help="with --corpus: sample this many length-matched pairs")
    p.add_argument("--group-by", help="with --corpus: pair only documents with the same value of this meta key")
    p.add_argument("--length-ratio", type=float,
                   help="with --corpus: length-matched pairs within this ratio "
                        "(default: random pairs, as the corpus is)")
    p.add_argument("--min-confidence", type=float, default=0.0,
                   help="drop pairs whose soft vote |2·p(a)−1| is below this (disagreeing or abstaining criteria)")
    p.add_argument("--seed", type=int, default=0)


def _add_select_args(p: argparse.ArgumentParser, default_fraction: float | None) -> None:
    g = p.add_mutually_exclusive_group(required=default_fraction is None)
    g.add_argument("--fraction", type=float, default=default_fraction, help="share of documents to keep")
    g.add_argument("--budget-tokens", type=int, help="keep documents until this many tokens")
    p.add_argument("--tau", type=float, default=1.0, help="0: top-k; > 0: Gumbel sampling on z/τ")


def add_parsers(sub) -> None:
    j = sub.add_parser("judge", help="label many pairs with mined criteria (agent annotation at scale)")
    j.add_argument("--criteria", required=True, type=Path, help="criteria.json of a mining run")
    src = j.add_mutually_exclusive_group(required=True)
    src.add_argument("--pairs", help="unlabelled pairs to judge")
    src.add_argument("--corpus", help="documents to sample pairs from (see --n-pairs)")
    j.add_argument("--out", required=True, type=Path, help="labelled pairs (JSONL); shards go to OUT.parts/")
    _add_pair_source(j)
    j.add_argument("--engine", choices=["server", "vllm-offline", "ray"], default="server")
    j.add_argument("--workers", type=int, default=2, help="ray: judging actors")
    j.add_argument("--shard-size", type=int, default=16, help="pairs per shard (the unit of resumption)")
    j.add_argument("--max-text-chars", type=int, default=MAX_TEXT_CHARS, help="texts are cut to this")
    j.add_argument("--kv-cache-memory-bytes", type=int, help="vllm-offline: KV cache size (needed on CPU)")
    add_endpoint_args(j)

    t = sub.add_parser("train", help="train a Bradley–Terry scorer on labelled pairs")
    t.add_argument("--pairs", required=True, help="labelled pairs (from `critmine judge`, or human labels)")
    t.add_argument("--out", required=True, type=Path, help="scorer directory")
    t.add_argument("--features", default="hashing", help="hashing (default), minilm, or hf:LOCAL_MODEL_DIR")
    t.add_argument("--holdout", type=float, default=0.1, help="share of pairs held out for the reported accuracy")
    t.add_argument("--human-pairs", help="also report accuracy on these human-labelled pairs")
    t.add_argument("--seed", type=int, default=0)

    s = sub.add_parser("score", help="score every document of a corpus (streamed, sharded, resumable)")
    s.add_argument("--scorer", required=True, type=Path)
    s.add_argument("--input", required=True, help="documents: JSONL, Parquet, CSV or a saved dataset")
    s.add_argument("--out", required=True, type=Path, help="output directory of Parquet shards")
    s.add_argument("--engine", choices=["local", "ray"], default="local")
    s.add_argument("--batch-size", type=int, default=1024)
    s.add_argument("--shard-size", type=int, default=20_000, help="rows per output shard (local engine)")
    s.add_argument("--workers", type=int, help="processes / Ray actors (default: cores for hashing, else 1)")

    se = sub.add_parser("select", help="select the best documents by score (top-k or Gumbel sampling)")
    se.add_argument("--scored", required=True, type=Path)
    se.add_argument("--out", required=True, type=Path)
    _add_select_args(se, None)
    se.add_argument("--seed", type=int, default=0)

    r = sub.add_parser("run", help="the whole chain: mine → judge → train → score → select, resumable")
    r.add_argument("--pairs", required=True, help="labelled seed pairs")
    r.add_argument("--corpus", required=True, help="documents to filter (pairs to judge are sampled from it)")
    r.add_argument("--out", required=True, type=Path, help="run directory")
    r.add_argument("--n-pairs", type=int, default=200, help="corpus pairs the agents label for the scorer")
    r.add_argument("--group-by", help="pair only documents with the same value of this meta key")
    r.add_argument("--min-confidence", type=float, default=0.0)
    r.add_argument("--features", default="hashing")
    r.add_argument("--human-pairs", help="human-labelled pairs to report the scorer's accuracy on")
    r.add_argument("--judge-engine", choices=["server", "ray"], default="server")
    r.add_argument("--score-engine", choices=["local", "ray"], default="local")
    _add_select_args(r, 0.3)
    r.add_argument("--seed", type=int, default=0)
    add_mining_args(r)
    add_endpoint_args(r)


def _cmd_judge(args: argparse.Namespace) -> int:
    from critmine.judging import describe, run_judge

    _, worker = endpoints(args)
    summary = run_judge(args.criteria, args.out, worker, pairs_path=args.pairs, corpus=args.corpus,
                        n_pairs=args.n_pairs, seed=args.seed, group_by=args.group_by, length_ratio=args.length_ratio,
                        engine=args.engine, shard_size=args.shard_size, min_confidence=args.min_confidence,
                        max_text_chars=args.max_text_chars, kv_cache_memory_bytes=args.kv_cache_memory_bytes,
                        workers=args.workers)
    sys.stdout.write(describe(summary) + "\n")
    return 0


def _cmd_train(args: argparse.Namespace) -> int:
    from critmine.scorer.train import describe, train_scorer

    meta = train_scorer(args.pairs, args.out, features=args.features, holdout=args.holdout,
                        human_pairs=args.human_pairs, seed=args.seed)
    sys.stdout.write(describe(meta) + f"\nwrote {args.out}\n")
    return 0


def _cmd_score(args: argparse.Namespace) -> int:
    from critmine.scorer.bulk import score_corpus

    s = score_corpus(args.scorer, args.input, args.out, engine=args.engine, batch_size=args.batch_size,
                     shard_size=args.shard_size, workers=args.workers)
    sys.stdout.write(f"scored {s['rows']:,} documents into {s['shards']} shards in {s['wall_s']} s "
                     f"({s['docs_per_s']} docs/s, {s['engine']}); wrote {args.out}\n")
    return 0


def _cmd_select(args: argparse.Namespace) -> int:
    from critmine.scorer.select import describe, select

    s = select(args.scored, args.out, fraction=args.fraction, budget_tokens=args.budget_tokens, tau=args.tau,
               seed=args.seed)
    sys.stdout.write(describe(s) + "\n")
    return 0


def _cmd_run(args: argparse.Namespace) -> int:
    from critmine.pipeline import RunSettings, run_all

    if args.budget_tokens is not None:
        args.fraction = None
    if args.out.exists() and not RunLayout(args.out).config.exists() and any(args.out.iterdir()):
        raise InputError(f"{args.out}: exists and is not a critmine run directory")
    manager, worker = endpoints(args)
    args.resume = False
    cfg = mine_config(args, manager, worker)
    out = run_all(cfg, RunSettings(corpus=args.corpus, n_pairs=args.n_pairs, group_by=args.group_by,
                                   min_confidence=args.min_confidence, features=args.features,
                                   human_pairs=args.human_pairs, score_engine=args.score_engine,
                                   judge_engine=args.judge_engine, fraction=args.fraction,
                                   budget_tokens=args.budget_tokens, tau=args.tau, seed=args.seed))
    import json

    from critmine.mine import summary_table
    from critmine.scorer.select import describe as describe_selection
    from critmine.scorer.train import describe as describe_scorer

    run = RunLayout(args.out)
    sys.stdout.write(summary_table(run.criteria) + "\n\n"
                     + describe_scorer(json.loads(run.scorer_meta.read_text())) + "\n\n"
                     + describe_selection(json.loads(run.selected_summary.read_text())) + "\n\n"
                     + "".join(f"{k:<10}{v}\n" for k, v in out.items()))
    return 0


HANDLERS = {"judge": _cmd_judge, "train": _cmd_train, "score": _cmd_score, "select": _cmd_select, "run": _cmd_run}
