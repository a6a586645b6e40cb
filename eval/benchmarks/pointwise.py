"""Benchmark: pairwise verdicts against pointwise Yes/No scores, same server, model, pairs and criteria, one run.

Pairwise (critmine's default): both texts in one prompt, one letter (A / B / N), both orders, their log-odds
averaged. Pointwise (as Ask-LLM, Sachdeva et al. 2024): one text per prompt, "does it meet the criterion?",
answer constrained to Yes / No; a text's score is log p(Yes) − log p(No), and a pair goes to the text with the
higher score. A pointwise score belongs to a text, not a pair: no position bias to cancel, each text is read once
per criterion (not twice per pair), and a corpus document can be scored directly.

Printed per criterion and for the vote of all of them (each criterion's margins divided by their RMS over the
pairs, then averaged): accuracy against the human labels (a tie counts half) for both ways, a paired sign test of
the two ways on the same pair × criterion, and each way's wall time and prompt tokens.

    python eval/benchmarks/pointwise.py [--pairs data/argument/dev.jsonl,data/forum/dev.jsonl] [--n-pairs 50]
        [--criteria overall_quality,informativeness,...] [--out FILE]
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import math
import random
import time
from collections.abc import Sequence

from critmine.agents import knowledge
from critmine.agents.worker import Worker, truncate_middle
from critmine.defaults import DEFAULT_MODEL, MAX_TEXT_CHARS
from critmine.embedded import EmbeddedServer
from critmine.eval.benchmarks.bench_backend import paired
from critmine.io import read_pairs, write_json_atomic
from critmine.llm import Endpoint, LLMClient, Usage
from critmine.prompts import render_messages
from critmine.records import Criterion, Pair

ANSWERS = ["Yes", "No"]
DEFAULT_CRITERIA = ("overall_quality,informativeness,coherence,argument_development,evidence_support,"
                    "answers_the_question,answer_helpfulness,grammatical_correctness")
FLOOR = 1e-6


def yes_score(top: dict[str, float] | None) -> float | None:
    """log p(Yes) − log p(No) from one position's top logprobs (None if neither is among them)."""
    if not top:
        return None
    mass = dict.fromkeys(ANSWERS, 0.0)
    for token, lp in top.items():
        if (t := token.strip().capitalize()) in mass:
            mass[t] += math.exp(lp)
    if mass["Yes"] + mass["No"] <= 1e-9:
        return None
    return math.log(max(mass["Yes"], FLOOR)) - math.log(max(mass["No"], FLOOR))


async def pointwise_scores(client: LLMClient, texts: Sequence[str], criteria: Sequence[Criterion],
                           max_chars: int) -> dict[tuple[str, str], float | None]:
    """(text, criterion name) → score; text-major, so each text's prefix is computed once for all criteria."""
    out: dict[tuple[str, str], float | None] = {}
    for text in dict.fromkeys(texts):
        for c in criteria:
            msgs = render_messages("worker_pointwise.j2", text=truncate_middle(text, max_chars), name=c.name,
                                   description=c.description)
            res = await client.chat(msgs, phase="pointwise", max_tokens=1, choices=ANSWERS, top_logprobs=10)
            out[(text, c.name)] = None if res.failed else yes_score(res.top_logprobs[0] if res.top_logprobs else None)
    return out


def accuracy(margins: Sequence[float | None], pairs: Sequence[Pair]) -> float:
    """Right = the margin's sign (+ for a) matches the label; a zero or missing margin counts half."""
    return sum(0.5 if not m else float((m > 0) == (p.better == "a")) for m, p in zip(margins, pairs, strict=True)
               ) / len(pairs)


def vote(columns: Sequence[Sequence[float | None]]) -> list[float]:
    """Each column divided by its RMS over the pairs, then the mean per pair (missing values left out)."""
    scaled = []
    for col in columns:
        vals = [v for v in col if v is not None]
        rms = math.sqrt(sum(v * v for v in vals) / len(vals)) if vals else 0.0
        scaled.append([v / rms if v is not None and rms > 0 else None for v in col])
    out = []
    for row in zip(*scaled, strict=True):
        vals = [v for v in row if v is not None]
        out.append(sum(vals) / len(vals) if vals else 0.0)
    return out


def strictly_right(margins: Sequence[float | None], pairs: Sequence[Pair]) -> list[bool]:
    return [m is not None and m != 0 and (m > 0) == (p.better == "a") for m, p in zip(margins, pairs, strict=True)]


async def run(base_url: str, model: str, pairs: list[Pair], criteria: list[Criterion], max_chars: int) -> dict:
    usage = Usage()  # no response cache: every answer is paid for
    client = LLMClient(Endpoint(base_url=base_url, model=model, kind="llamacpp", timeout_s=600), usage=usage)
    try:
        t0 = time.monotonic()
        js = await Worker(client, max_text_chars=max_chars).judge_all(pairs, criteria, phase="pairwise")
        t_pair = time.monotonic() - t0
        both = {(j.pair_id, j.criterion): j for j in js if j.order == "both"}
        t0 = time.monotonic()
        scores = await pointwise_scores(client, [t for p in pairs for t in (p.a, p.b)], criteria, max_chars)
        t_point = time.monotonic() - t0
    finally:
        await client.aclose()
    pair_cols, point_cols, rows = [], [], []
    for c in criteria:
        pw = []
        for p in pairs:
            j = both.get((p.id, c.name))
            pw.append(None if j is None or j.failed or j.p_a + j.p_b <= 0 else j.p_a / (j.p_a + j.p_b) - 0.5)
        pt = [None if (sa := scores[(p.a, c.name)]) is None or (sb := scores[(p.b, c.name)]) is None else sa - sb
              for p in pairs]
        pair_cols.append(pw)
        point_cols.append(pt)
        rows.append({"criterion": c.name, "pairwise": accuracy(pw, pairs), "pointwise": accuracy(pt, pairs),
                     **paired(strictly_right(pw, pairs), strictly_right(pt, pairs))})
    pv, tv = vote(pair_cols), vote(point_cols)
    rows.append({"criterion": "vote of all", "pairwise": accuracy(pv, pairs), "pointwise": accuracy(tv, pairs),
                 **paired(strictly_right(pv, pairs), strictly_right(tv, pairs))})
    ph, pt_ = usage.phase("pairwise"), usage.phase("pointwise")
    return {"rows": rows, "pairs": len(pairs),
            "pairwise": {"wall_s": round(t_pair, 1), "prompt_tokens": ph.prompt_tokens,
                         "computed_tokens": ph.prompt_tokens - ph.cached_tokens},
            "pointwise": {"wall_s": round(t_point, 1), "prompt_tokens": pt_.prompt_tokens,
                          "computed_tokens": pt_.prompt_tokens - pt_.cached_tokens}}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pairs", default="data/argument/dev.jsonl,data/forum/dev.jsonl",
                    help="comma-separated pairs files; --n-pairs are drawn from each and reported apart")
    ap.add_argument("--n-pairs", type=int, default=50)
    ap.add_argument("--criteria", default=DEFAULT_CRITERIA, help="knowledge-base criteria, comma-separated")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--model", default=DEFAULT_MODEL)
    ap.add_argument("--max-text-chars", type=int, default=MAX_TEXT_CHARS)
    ap.add_argument("--out")
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    kb = {e.name: e for e in knowledge.load_all(None)}
    criteria = [kb[n].criterion() for n in args.criteria.split(",")]
    report = {}
    with EmbeddedServer(args.model) as server:
        for f in args.pairs.split(","):
            pairs = random.Random(args.seed).sample(read_pairs(f, labelled=True), args.n_pairs)
            r = asyncio.run(run(server.base_url, args.model, pairs, criteria, args.max_text_chars))
            report[f] = r
            print(f"\n{f}: {r['pairs']} pairs; pairwise {r['pairwise']}; pointwise {r['pointwise']}")
            print(f"{'criterion':<26}{'pairwise':>10}{'pointwise':>10}{'pt right, pw wrong':>20}"
                  f"{'pw right, pt wrong':>20}{'sign p':>8}")
            for row in r["rows"]:
                print(f"{row['criterion']:<26}{row['pairwise']:>10.3f}{row['pointwise']:>10.3f}"
                      f"{row['right_where_b_wrong']:>20}"
                  f"{row['wrong_where_b_right']:>20}{row['sign_test_p']:>8.3f}")
    if args.out:
        write_json_atomic(args.out, report)


if __name__ == "__main__":
    main()
