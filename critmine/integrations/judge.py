"""A pairwise judge built from a mining run's criteria.json, for use in other pipelines (DSPy-style).

    from critmine.integrations.judge import CriteriaJudge
    judge = CriteriaJudge("runs/mine/criteria.json", base_url="http://127.0.0.1:8000/v1", model="Qwen/Qwen2.5-7B")
    v = judge(text_a="…", text_b="…")            # v.better ("a" | "b" | None), v.p_a, v.votes (criterion → verdict)
    vs = judge.batch([(a1, b1), (a2, b2)])       # the same for many pairs, `concurrency` pairs in flight

Like a DSPy module it is called with named inputs and returns a prediction with named fields (usable as a DSPy
metric: `lambda ex, pred, trace=None: judge(text_a=pred.answer, text_b=ex.answer).better == "a"`); it judges exactly
as `critmine judge` does (every criterion, both orders, the soft vote with the scales and weights in criteria.json).
Without `base_url` the embedded model is started for each call. Safe inside a running event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Sequence
from dataclasses import dataclass, field

from critmine.agents.scoring import Voter, result_tables, votes
from critmine.agents.worker import Worker
from critmine.api import blocking
from critmine.artifacts import CriteriaSet
from critmine.config import EndpointConfig
from critmine.defaults import DEFAULT_MODEL, MAX_TEXT_CHARS
from critmine.endpoints import resolve
from critmine.llm import LLMClient, Usage
from critmine.records import Pair


@dataclass
class JudgePrediction:
    """One pair's verdict: `better` is None when every criterion abstained or the vote is a tie."""

    better: str | None
    p_a: float
    votes: dict[str, str] = field(default_factory=dict)


class CriteriaJudge:
    """Judges pairs of texts with the criteria of a mining run (see the module doc)."""

    def __init__(self, criteria: str | os.PathLike, *, base_url: str | None = None, model: str = DEFAULT_MODEL,
                 api_key: str = "none", concurrency: int | None = None, max_text_chars: int = MAX_TEXT_CHARS):
        self.criteria = CriteriaSet.read(criteria).criteria
        self.endpoint = EndpointConfig(base_url=base_url, model=model, api_key=api_key, concurrency=concurrency,
                                       kind="auto")
        self.max_text_chars = max_text_chars
        self.usage = Usage()

    def __call__(self, text_a: str, text_b: str) -> JudgePrediction:
        return self.batch([(text_a, text_b)])[0]

    def batch(self, pairs: Sequence[tuple[str, str]]) -> list[JudgePrediction]:
        return blocking(self._run, [Pair(id=f"q{i}", a=a, b=b) for i, (a, b) in enumerate(pairs)])

    def _run(self, pairs: list[Pair]) -> list[JudgePrediction]:
        with contextlib.ExitStack() as stack:
            endpoint = resolve(self.endpoint, stack, {})
            return asyncio.run(self._judge(endpoint, pairs))

    async def _judge(self, endpoint, pairs: list[Pair]) -> list[JudgePrediction]:
        client = LLMClient(endpoint, usage=self.usage)
        try:
            js = await Worker(client, max_text_chars=self.max_text_chars).judge_all(pairs, self.criteria)
        finally:
            await client.aclose()
        tables = result_tables(js)
        pred = votes([tables.get(c.key, {}) for c in self.criteria], [p.id for p in pairs],
                     [Voter.of(c) for c in self.criteria])
        out = []
        for p in pairs:
            v = pred[p.id]
            better = v["soft"] if v["soft"] != "none" else None
            out.append(JudgePrediction(better=better, p_a=0.5 + v["margin"],
                                       votes={c.name: tables.get(c.key, {}).get(p.id, [0, 0, 1, "none"])[3]
                                              for c in self.criteria}))
        return out
