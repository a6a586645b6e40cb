"""The `ray` engine of `critmine judge`: pending shards as a Ray Data pipeline.

from_items(one row per shard) → map(JudgeShard: a worker agent per actor) → each actor writes its shard file
(atomic, so resuming works exactly as with the local engine). On a GPU cluster the same actors would call vLLM
(directly, or through `ray.data.llm`); here they call the embedded llama.cpp server (or any --base-url).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from pathlib import Path

from critmine.agents.annotate import CACHE, ShardStore, shard_record
from critmine.agents.worker import Worker
from critmine.llm import Endpoint, LLMClient, PhaseUsage, ResponseCache, Usage
from critmine.records import Criterion, Pair
from critmine.scorer.ray_engine import init_ray


class JudgeShard:
    """Ray Data callable class: judges one shard per call and writes its file."""

    def __init__(self, endpoint: dict, criteria: list[dict], parts_dir: str, shard_size: int, max_text_chars: int,
                 read_from: list[str]):
        self.endpoint = Endpoint(**endpoint)
        self.criteria = [Criterion(**c) for c in criteria]
        self.store = ShardStore(Path(parts_dir), shard_size)
        self.max_text_chars = max_text_chars
        self.read_from = read_from  # other runs' caches, answered from first (--reuse-cache)

    async def _judge(self, pairs: list[Pair]) -> tuple[list[dict], Usage, bool]:
        usage = Usage()
        cache = ResponseCache(self.store.dir / CACHE, self.read_from)
        client = LLMClient(self.endpoint, usage=usage, cache=cache)
        try:
            judgments = await Worker(client, max_text_chars=self.max_text_chars).judge_all(pairs, self.criteria,
                                                                                          phase="label")
        finally:
            await client.aclose()
            cache.close()
        return [shard_record(p, judgments) for p in pairs], usage, any(j.failed for j in judgments)

    def __call__(self, row: dict) -> dict:
        pairs = [Pair(**p) for p in json.loads(row["pairs"])]
        records, usage, failed = asyncio.run(self._judge(pairs))
        if not failed:  # never seal a failed vote: a rerun asks again
            self.store.write(int(row["shard"]), records)
        return {"shard": int(row["shard"]), "n": len(pairs), "usage": usage.model_dump_json(), "sealed": not failed}


def judge_with_ray(pending: list[tuple[int, list[Pair]]], criteria: list[Criterion], store: ShardStore,
                   endpoint: Endpoint, usage: Usage, *, max_text_chars: int, workers: int,
                   read_from: Sequence[Path] = ()) -> int:
    """Judge the pending shards on Ray; returns how many were left unsealed because a vote failed."""
    import ray

    init_ray(workers)
    items = [{"shard": i, "pairs": json.dumps([p.model_dump() for p in shard])} for i, shard in pending]
    ds = ray.data.from_items(items).map(
        JudgeShard, compute=ray.data.ActorPoolStrategy(size=max(1, workers)),
        fn_constructor_kwargs={"endpoint": endpoint.model_dump(), "criteria": [c.model_dump() for c in criteria],
                               "parts_dir": str(store.dir), "shard_size": store.shard_size,
                               "max_text_chars": max_text_chars, "read_from": [str(p) for p in read_from]})
    unsealed = 0
    for row in ds.iter_rows():
        unsealed += not row["sealed"]
        for name, phase in Usage.model_validate_json(row["usage"]).phases.items():
            usage.phase(name).add(PhaseUsage(**phase.model_dump()))
    return unsealed
