"""vLLM for real on CPU (`make test-vllm`): the worker's verdict/logprob path through vLLM's OpenAI server, and the
offline batch engine giving the same probabilities."""

from __future__ import annotations

import asyncio
import math

import pytest

from critmine.agents.worker import LETTERS, Worker
from critmine.llm import Endpoint, LLMClient, Usage, detect_server_kind
from critmine.records import Criterion, Pair

pytestmark = pytest.mark.vllm
MODEL = "qwen2.5-coder-0.5b"
KV = 1 << 30  # on CPU, reserve 1 GiB for the KV cache instead of 92% of the machine

GOOD = ["Photosynthesis converts light energy into chemical energy stored in glucose.",
        "Water boils at 100 degrees Celsius at sea level because its vapour pressure equals the air pressure.",
        "The French Revolution began in 1789 and ended the absolute monarchy of Louis XVI."]
BAD = ["light plant sugar the the energy energy makes it green green",
       "boil water hot hot 100 it is is because air",
       "france king 1789 revolution people the the angry yes"]
PAIRS = [Pair(id=str(i), a=g if i % 2 else b, b=b if i % 2 else g, better="a" if i % 2 else "b")
         for i, (g, b) in enumerate(zip(GOOD, BAD, strict=True))]
FLUENT = Criterion(name="fluent_language", description="fluency", measure="mean_logprob")
FLUENCY: list = []  # the fluency judgments the server fixture made
CRITERIA = [Criterion(name="well_written", description="Prefer the text that is fluent, grammatical and informative."),
            Criterion(name="factual", description="Prefer the text that states a correct fact clearly.")]


def _check(judgments) -> dict:
    by_order = {(j.pair_id, j.criterion, j.order): j for j in judgments}
    assert len(by_order) == len(PAIRS) * len(CRITERIA) * 3
    for j in judgments:
        assert not j.failed
        assert math.isclose(j.p_a + j.p_b + j.p_none, 1.0, abs_tol=1e-6)
    return {k: (j.p_a, j.p_b, j.p_none) for k, j in by_order.items() if k[2] != "both"}


@pytest.fixture(scope="module")
def server_probs():
    from critmine.vllm_backend import VllmServer

    async def judge(url: str, usage: Usage):
        kind = detect_server_kind(url)
        assert kind == "vllm"
        client = LLMClient(Endpoint(base_url=url, model=MODEL, kind=kind, timeout_s=300), usage=usage)
        try:
            worker = Worker(client)
            FLUENCY.extend(await worker.judge_all(PAIRS, [FLUENT], phase="fluency"))  # echoed prompt logprobs
            return await worker.judge_all(PAIRS, CRITERIA)
        finally:
            await client.aclose()

    usage = Usage()
    with VllmServer(MODEL, kv_cache_memory_bytes=KV) as server:
        judgments = asyncio.run(judge(server.base_url, usage))
    assert usage.phase("judge").calls == len(PAIRS) * len(CRITERIA) * 2 and usage.phase("judge").failures == 0
    assert usage.phase("fluency").calls == 2 * len(PAIRS)  # one request per text
    return _check(judgments)


def test_fluency_reads_prompt_logprobs_from_the_vllm_server_and_prefers_the_fluent_text(server_probs):
    assert len(FLUENCY) == len(PAIRS) and not any(j.failed for j in FLUENCY)
    assert sum(j.verdict == p.better for j, p in zip(FLUENCY, PAIRS, strict=True)) >= 2, FLUENCY


def test_server_verdicts_prefer_the_well_written_text_in_both_orders(server_probs):
    """Each order's letters are a distribution over A/B/N (checked in _check); combined over both orders, the
    well-written criterion prefers the fluent text of each pair, as the same model does on llama.cpp."""
    right = 0
    for p in PAIRS:
        (a1, b1, _), (a2, b2, _) = (server_probs[(p.id, "well_written", order)] for order in ("ab", "ba"))
        p_a, p_b = (a1 + a2) / 2, (b1 + b2) / 2  # probabilities are stored per side already (order undone)
        right += ("a" if p_a > p_b else "b") == p.better
    assert right >= 2, server_probs
    assert set(LETTERS) == {"A", "B", "N"}


def test_offline_batch_gives_the_same_probabilities_as_the_server(server_probs):
    from critmine.llm.vllm_offline import offline_client

    usage = Usage()
    client = offline_client(MODEL, usage=usage, kv_cache_memory_bytes=KV)
    judgments = asyncio.run(Worker(client).judge_all(PAIRS, CRITERIA))
    offline = _check(judgments)
    assert usage.phase("judge").calls == len(PAIRS) * len(CRITERIA) * 2
    for key, probs in server_probs.items():
        assert offline[key] == pytest.approx(probs, abs=0.03), key
    # Multi-verdict decoding through the same engine: one request per pair and order, constrained by a regex,
    # every criterion's letter read at its own position.
    multi = asyncio.run(Worker(client, multi=True).judge_all(PAIRS, CRITERIA))
    assert usage.phase("judge").calls == len(PAIRS) * len(CRITERIA) * 2 + len(PAIRS) * 2
    _check(multi)
