"""Benchmark: the lightweight scorers (hashing, minilm) — training time, scoring throughput, peak memory at two
corpus sizes, and the cost of one scorer call against one LLM verdict on the embedded server, in one run.

The corpus is scaled up by repeating the bundled documents under new ids. Each scoring run is a separate
`critmine score` process; its peak RSS is sampled over the whole process tree (the command and its workers).

    python eval/benchmarks/bench_scorer.py [--corpus data/corpus/documents.jsonl] [--pairs LABELLED.jsonl]
        [--sizes 10000,100000] [--features hashing,minilm] [--llm-calls 12] [--out FILE.json]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import random
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from critmine.agents.worker import Worker
from critmine.artifacts import ScorerMeta, ScoreSummary
from critmine.config import EndpointConfig
from critmine.endpoints import resolve
from critmine.io import iter_documents, write_json_atomic, write_jsonl_atomic
from critmine.llm import LLMClient, Usage
from critmine.logs import setup_logging
from critmine.records import Criterion
from critmine.sampling import sample_pairs

log = logging.getLogger("bench_scorer")


def tree_rss_kib(root: int) -> int:
    """Resident memory of a process and all its descendants (KiB), from /proc."""
    children: dict[int, list[int]] = {}
    rss: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as fh:
                ppid = int(fh.read().rsplit(")", 1)[1].split()[1])
            with open(f"/proc/{entry}/status") as fh:
                rss[int(entry)] = next((int(x.split()[1]) for x in fh if x.startswith("VmRSS:")), 0)
            children.setdefault(ppid, []).append(int(entry))
        except (OSError, IndexError, ValueError):
            continue
    total, stack = 0, [root]
    while stack:
        pid = stack.pop()
        total += rss.get(pid, 0)
        stack += children.get(pid, [])
    return total


def run_measured(cmd: list[str]) -> tuple[float, int]:
    """Wall time (s) and peak tree RSS (MiB) of a command."""
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    peak = 0
    stop = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not stop.is_set():
            peak = max(peak, tree_rss_kib(proc.pid))
            time.sleep(0.05)

    t = threading.Thread(target=sample, daemon=True)
    t0 = time.monotonic()
    t.start()
    _, err = proc.communicate()
    wall = time.monotonic() - t0
    stop.set()
    t.join()
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed: {err[-2000:]}")
    return wall, peak // 1024


def scaled_corpus(src: str, n: int, path: Path) -> None:
    docs = [d.model_dump() for d in iter_documents(src)]
    with open(path, "w", encoding="utf-8") as fh:
        for i in range(n):
            d = docs[i % len(docs)]
            fh.write(json.dumps({"id": f"{d['id']}#{i}", "text": d["text"], "meta": d["meta"]}) + "\n")


def training_pairs(corpus: str, given: str | None, work: Path) -> str:
    """Given agent-labelled pairs, or length-matched corpus pairs with seeded random labels (timing only)."""
    if given:
        return given

    rng = random.Random(0)
    pairs = sample_pairs(iter_documents(corpus), 400, seed=0, length_ratio=2.0)
    for p in pairs:
        p.better = rng.choice("ab")
    write_jsonl_atomic(work / "pairs.jsonl", pairs)
    return str(work / "pairs.jsonl")


async def llm_seconds_per_call(corpus: str, n_calls: int) -> float:
    """Mean wall time of one verdict call (one pair, one criterion, one order) on the embedded server."""
    pairs = sample_pairs(iter_documents(corpus), n_calls, seed=1, length_ratio=2.0)
    crit = Criterion(name="clarity", description="Prefer the text whose point is stated clearly.")
    with contextlib.ExitStack() as stack:
        client = LLMClient(resolve(EndpointConfig(), stack, {}), usage=Usage())  # no cache: every call is paid
        worker = Worker(client)
        await worker.judge_order(pairs[0], crit, "ab")  # warm the server
        t0 = time.monotonic()
        for p in pairs:
            await worker.judge_order(p, crit, "ba")
        wall = time.monotonic() - t0
        await client.aclose()
    return wall / len(pairs)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--corpus", default="data/corpus/documents.jsonl")
    ap.add_argument("--pairs", help="labelled pairs to train on (default: corpus pairs with random labels)")
    ap.add_argument("--sizes", default="10000,100000")
    ap.add_argument("--features", default="hashing,minilm")
    ap.add_argument("--llm-calls", type=int, default=12)
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()

    setup_logging()
    sizes = [int(x) for x in args.sizes.split(",")]
    work = Path(tempfile.mkdtemp(prefix="bench-scorer-"))
    pairs = training_pairs(args.corpus, args.pairs, work)
    for n in sizes:
        scaled_corpus(args.corpus, n, work / f"corpus-{n}.jsonl")
    cli = [sys.executable, "-m", "critmine.cli"]
    rows = []
    for feat in args.features.split(","):
        train_s, _ = run_measured(cli + ["train", "--pairs", pairs, "--out", str(work / f"scorer-{feat}"),
                                         "--features", feat])
        row = {"features": feat, "train_wall_s": round(train_s, 1),
               "train_fit_s": ScorerMeta.read(work / f"scorer-{feat}" / "scorer.json").train_s}
        for n in sizes:
            wall, rss = run_measured(cli + ["score", "--scorer", str(work / f"scorer-{feat}"), "--input",
                                            str(work / f"corpus-{n}.jsonl"), "--out", str(work / f"scored-{feat}-{n}")])
            done = ScoreSummary.read(work / f"scored-{feat}-{n}" / "_SUCCESS")
            row[f"docs_per_s_{n}"] = done.docs_per_s
            row[f"wall_s_{n}"] = round(wall, 1)
            row[f"peak_rss_mib_{n}"] = rss
            log.info("%s: %d docs, %.0f docs/s, peak RSS %d MiB", feat, n, done.docs_per_s or 0, rss)
        if len(sizes) >= 2:
            row["rss_ratio"] = round(row[f"peak_rss_mib_{sizes[-1]}"] / row[f"peak_rss_mib_{sizes[0]}"], 3)
        rows.append(row)
    llm_s = asyncio.run(llm_seconds_per_call(args.corpus, args.llm_calls))
    for row in rows:
        row["llm_s_per_call"] = round(llm_s, 3)
        row["cost_ratio"] = round(llm_s * row[f"docs_per_s_{sizes[-1]}"])
    head = f"{'features':<10}{'train s':>9}" + "".join(f"{'docs/s@' + str(n):>16}{'RSS MiB@' + str(n):>16}"
                                                       for n in sizes) + f"{'RSS ratio':>11}{'LLM/scorer':>12}"
    lines = [head] + [f"{r['features']:<10}{r['train_wall_s']:>9}" + "".join(
        f"{r[f'docs_per_s_{n}']:>16}{r[f'peak_rss_mib_{n}']:>16}" for n in sizes)
        + f"{r.get('rss_ratio', '-'):>11}{r['cost_ratio']:>11,}×" for r in rows]
    lines.append(f"one LLM verdict call on the embedded server: {llm_s:.3f} s; goals: hashing >= 5,000 docs/s, "
                 "minilm >= 100 docs/s, RSS ratio <= 1.2, cost ratio >= 1,000×")
    sys.stdout.write("\n".join(lines) + "\n")
    if args.out:
        write_json_atomic(args.out, {"rows": rows, "llm_s_per_call": llm_s, "sizes": sizes})
    return 0


if __name__ == "__main__":
    sys.exit(main())
