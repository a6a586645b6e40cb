"""`critmine judge`: set up the pairs and the shard store, judge pending shards on an engine, write labels."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from pathlib import Path

from tqdm.auto import tqdm

from critmine.agents.annotate import CACHE, USAGE, ShardStore, labelled_pairs, load_criteria, shard_record
from critmine.agents.annotate_ray import judge_with_ray
from critmine.agents.scoring import Voter
from critmine.agents.worker import Worker
from critmine.artifacts import JudgeSummary, parts_of
from critmine.columns import Columns
from critmine.config import EndpointConfig
from critmine.defaults import MAX_TEXT_CHARS
from critmine.endpoints import resolve, worker_client
from critmine.errors import RunStopped
from critmine.io import (
    InputError,
    check_output_file,
    iter_documents,
    read_pairs,
    response_caches,
    write_json_atomic,
    write_jsonl_atomic,
)
from critmine.llm import Usage
from critmine.records import Criterion, Pair
from critmine.sampling import sample_pairs

log = logging.getLogger(__name__)


class JudgeIncomplete(RunStopped):
    """Some shards had LLM calls that failed for good: they were not sealed, a rerun judges them again."""


def pairs_to_judge(store: ShardStore, pairs_path: str | None, corpus: str | None, n_pairs: int | None, *,
                   seed: int, group_by: str | None, length_ratio: float | None,
                   columns: Columns | None = None) -> list[Pair]:
    if (pairs_path is None) == (corpus is None):
        raise InputError("judge: give exactly one of --pairs and --corpus")
    if pairs_path is not None:
        return read_pairs(pairs_path, columns=columns)
    saved = store.saved_pairs()  # a resumed run judges exactly the pairs it sampled first
    if saved is not None:
        return saved
    if not n_pairs:
        raise InputError("judge: --corpus needs --n-pairs")
    return sample_pairs(iter_documents(corpus, columns), n_pairs, seed=seed, length_ratio=length_ratio,
                        group_by=group_by)


async def _judge_local(pairs: list[Pair], pending, criteria: list[Criterion], store: ShardStore,
                       worker_cfg: EndpointConfig, usage: Usage, engine: str, max_text_chars: int,
                       kv_cache_memory_bytes: int | None, reuse: list[Path]) -> int:
    """Judge the pending shards; returns how many shards were left unsealed because a vote failed."""
    save_usage = lambda: write_json_atomic(store.dir / USAGE, usage.model_dump())  # noqa: E731
    total = len(pairs)
    async with worker_client(worker_cfg, store.dir / CACHE, usage, engine=engine, read_from=reuse,
                             kv_cache_memory_bytes=kv_cache_memory_bytes, on_paid=save_usage) as client:
        store.prepare(pairs, criteria)
        worker = Worker(client, max_text_chars=max_text_chars)
        unsealed = 0
        with tqdm(total=total, initial=total - sum(len(s) for _, s in pending), desc="judge", unit="pair") as bar:
            for index, shard in pending:
                judgments = await worker.judge_all(shard, criteria, phase="label", progress=bar)
                if any(j.failed for j in judgments):  # never seal a failed vote: a rerun asks again
                    unsealed += 1
                    continue
                store.write(index, [shard_record(p, judgments) for p in shard])
    save_usage()
    return unsealed


def run_judge(criteria_file: Path, out: Path, worker_cfg: EndpointConfig, *, pairs_path: str | None = None,
              corpus: str | None = None, n_pairs: int | None = None, seed: int = 0, group_by: str | None = None,
              length_ratio: float | None = None, engine: str = "server", shard_size: int = 16,
              min_confidence: float = 0.0,
              max_text_chars: int = MAX_TEXT_CHARS, kv_cache_memory_bytes: int | None = None,
              workers: int = 2, columns: Columns | None = None, reuse_cache: list[str] | None = None) -> JudgeSummary:
    """Label pairs (given, or sampled from a corpus) under the criteria; `reuse_cache`: caches or run directories
    whose answers are reused (an evaluation or an earlier judge run already asked for these verdicts)."""
    criteria = load_criteria(criteria_file)
    reuse = response_caches(reuse_cache or [])
    if not 0.0 <= min_confidence < 1.0:
        raise InputError("--min-confidence must be in [0, 1)")
    store = ShardStore(parts_of(out), shard_size)
    check_output_file(out, store.shards_dir.manifest, "critmine judge")
    pairs = pairs_to_judge(store, pairs_path, corpus, n_pairs, seed=seed, group_by=group_by,
                           length_ratio=length_ratio, columns=columns)
    store.check(pairs, criteria)  # read-only: the parts directory is created once the server is up
    pending = store.pending(pairs)
    log.info("judging %d pairs under %d criteria (%s): %d of %d shards to do", len(pairs), len(criteria),
             ", ".join(c.name for c in criteria), len(pending), len(store.shards(pairs)))
    t0 = time.monotonic()
    usage_file = store.dir / USAGE
    usage = Usage.model_validate_json(usage_file.read_text()) if usage_file.exists() else Usage()
    before = usage.total()
    unsealed = 0
    if pending and engine == "ray":
        with contextlib.ExitStack() as stack:
            endpoint = resolve(worker_cfg, stack, {})
            store.prepare(pairs, criteria)
            unsealed = judge_with_ray(pending, criteria, store, endpoint, usage, max_text_chars=max_text_chars,
                                      workers=workers, read_from=reuse)
        write_json_atomic(usage_file, usage.model_dump())
    elif pending:
        unsealed = asyncio.run(_judge_local(pairs, pending, criteria, store, worker_cfg, usage, engine,
                                            max_text_chars, kv_cache_memory_bytes, reuse))
    store.prepare(pairs, criteria)
    now = usage.total()
    failed_now = now.failures - before.failures
    if unsealed:
        raise JudgeIncomplete(f"judge: {unsealed} of {len(store.shards(pairs))} shards had LLM calls that failed "
                              f"for good ({failed_now} calls this run); they were not sealed and {out} was not "
                              "written: rerun the same command to judge them again (every answered call is cached)")
    labelled, counts = labelled_pairs(store.records(pairs), min_confidence, {c.name: Voter.of(c) for c in criteria})
    write_jsonl_atomic(out, labelled)
    summary = JudgeSummary(**counts, criteria=[c.name for c in criteria], engine=engine, min_confidence=min_confidence,
                           wall_s=round(time.monotonic() - t0, 2), llm_calls=now.calls, cached_calls=now.cached_calls,
                           prompt_tokens=now.prompt_tokens, calls_this_run=now.calls - before.calls,
                           failed_calls_this_run=failed_now, retries_this_run=now.retries - before.retries,
                           out=str(out))
    summary.write(store.shards_dir.done)
    return summary


def describe(s: JudgeSummary) -> str:
    return (f"judged {s.judged} pairs under {len(s.criteria)} criteria ({', '.join(s.criteria)}); labelled "
            f"{s.labelled}, dropped {s.dropped_no_vote} with no vote and {s.dropped_low_confidence} below confidence "
            f"{s.min_confidence}; {s.llm_calls} paid LLM calls, {s.cached_calls} from the cache; "
            f"{s.failed_calls_this_run} calls failed this run; wrote {s.out}")
