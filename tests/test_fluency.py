"""The fluency measure (mean_logprob): each text's mean token log-probability under the worker model, read from
vLLM's echoed prompt log-probabilities or llama.cpp's token-forced decoding, compared like any computed criterion."""

from __future__ import annotations

import asyncio

import pytest

from critmine.agents import knowledge
from critmine.agents.worker import Worker
from critmine.llm import Endpoint, LLMClient, ResponseCache, Usage
from critmine.llm.transport import HttpTransport, Unsupported
from critmine.measures import LOGPROB_TOKENS, shared_context
from critmine.records import Pair
from tests.fake_server import FakeLLMServer, Script

FLUENT = "The committee met on Monday and agreed on a clear plan for the year."
GARBLED = "The zxcommittee met zxon Monday and zxagreed on a plan for the zxyear."


@pytest.fixture()
def server():
    with FakeLLMServer(Script()) as s:
        yield s


def fluency():
    [entry] = [e for e in knowledge.load_all(None) if e.measure == "mean_logprob"]
    return entry.criterion()


@pytest.mark.parametrize("kind", ["vllm", "llamacpp"])
def test_each_dialect_reads_the_logprobs_of_the_texts_own_tokens(server, kind):
    transport = HttpTransport(Endpoint(base_url=server.base_url, model="fake", kind=kind))

    async def read():
        return (await transport.text_logprobs("one zxtwo three four", 3),
                await transport.text_logprobs(" zxone two", 5, context="Question: zxwhy zxso?"))

    values, after = asyncio.run(read())
    assert values == [-1.0, -8.0, -1.0]  # the context before the text is not counted; at most 3 tokens
    first, second = server.text_requests[-2:]
    assert (first["echo"] and first["prompt"].endswith("one zxtwo three four")) if kind == "vllm" else \
        (first["n_probs"] == 1 and first["grammar"].count("<[") == 3)
    assert after == [-8.0, -1.0]  # a given context is read before the text and not counted either
    assert second["prompt"].endswith("Question: zxwhy zxso?" + (" zxone two" if kind == "vllm" else ""))


def test_fluency_prefers_the_fluent_text_reads_each_text_once_and_fails_without_logprobs(server, tmp_path):
    usage = Usage()
    client = LLMClient(Endpoint(base_url=server.base_url, model="fake", kind="vllm"), usage=usage,
                       cache=ResponseCache(tmp_path / "cache.sqlite"))
    worker = Worker(client)
    crit = fluency()
    pairs = [Pair(id="p1", a=GARBLED, b=FLUENT), Pair(id="p2", a=FLUENT, b=GARBLED)]
    js = asyncio.run(worker.judge_all(pairs, [crit]))
    assert [j.verdict for j in js] == ["b", "a"] and all(j.order == "both" and not j.failed for j in js)
    assert len(server.text_requests) == 2  # two distinct texts, each read once (the second pair is cached)
    assert js[0].p_b > 0.99  # 7 nats per garbled word over 14 words: 2 nats per token apart
    same = asyncio.run(worker.judge_all([Pair(id="p3", a=FLUENT, b=FLUENT)], [crit]))
    assert same[0].verdict == "none" and same[0].p_none == 1.0
    plain = LLMClient(Endpoint(base_url=server.base_url, model="fake", kind="openai"), usage=Usage())
    failed = asyncio.run(Worker(plain).judge_all(pairs, [crit]))
    assert all(j.failed for j in failed)  # a plain OpenAI server cannot say: no verdict, never a guess
    with pytest.raises(Unsupported):
        asyncio.run(HttpTransport(Endpoint(base_url=server.base_url, model="fake", kind="openai"))
                    .text_logprobs(FLUENT, 8))


def test_shared_context_stops_at_the_word_where_two_texts_part():
    question = "Question: is there an art college here?\n\nAnswer:"
    n = shared_context(question + " Sorry, no idea.", question + " Yes, try the university.")
    assert n == len(question)
    assert shared_context("The cat sat.", "The cat sat on the mat.") == len("The cat")  # cut back to a whole word
    assert shared_context("abc def", "abc") == 0  # one text would have nothing of its own left
    assert shared_context("same words", "other words") == 0


def test_answers_to_one_question_are_read_after_the_question_not_in_place_of_their_own_words(server):
    """A question longer than the measure's window used to fill both texts' windows: a tie, whatever the answers.
    The answers are now read after the question they share, and the better-formed answer wins."""
    question = "Question: " + " ".join(f"word{i}" for i in range(LOGPROB_TOKENS + 10)) + "\n\nAnswer:"
    pair = Pair(id="q1", a=question + " " + GARBLED, b=question + " " + FLUENT)
    client = LLMClient(Endpoint(base_url=server.base_url, model="fake", kind="llamacpp"), usage=Usage())
    [j] = asyncio.run(Worker(client).judge_all([pair], [fluency()]))
    assert j.verdict == "b" and j.p_b > 0.99
    forced = server.text_requests[-2:]
    # conditioned on the shared words (the question, and the answers' common first word "The"), which are not counted
    assert all(r["prompt"].endswith(question + " The") for r in forced)
    assert [r["grammar"].count("<[") for r in forced] == [len(GARBLED.split()) - 1, len(FLUENT.split()) - 1]
