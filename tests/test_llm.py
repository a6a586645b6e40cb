"""The LLM client on its own: cache, non-retryable errors, tolerant parsing, budget."""

from __future__ import annotations

import asyncio
import contextlib
import os
import sqlite3
import subprocess
from pathlib import Path

import pytest

from critmine.llm import Budget, BudgetExceeded, Endpoint, LLMClient, ResponseCache, Usage, parse_json_tolerant
from critmine.llm.client import BadOutput
from tests.conftest import make_script
from tests.fake_server import FakeLLMServer

SCHEMA = {"title": "critique", "type": "object", "properties": {"critique": {"type": "string"}}}
MSGS = [{"role": "user", "content": "why?"}]


def _client(url: str, tmp_path, **kw) -> tuple[LLMClient, Usage]:
    usage = Usage()
    ep = Endpoint(base_url=url, model="fake", kind="vllm", backoff_s=0.01, timeout_s=2, max_retries=2)
    return LLMClient(ep, usage=usage, cache=ResponseCache(tmp_path / "c.sqlite"), **kw), usage


def test_cache_makes_a_repeat_free_and_survives_reopening(tmp_path):
    with FakeLLMServer(make_script()) as fake:
        async def go():
            client, usage = _client(fake.base_url, tmp_path)
            first = await client.chat(MSGS, phase="x", json_schema=SCHEMA)
            second = await client.chat(MSGS, phase="x", json_schema=SCHEMA)
            await client.aclose()
            client2, usage2 = _client(fake.base_url, tmp_path)
            third = await client2.chat(MSGS, phase="x", json_schema=SCHEMA)
            await client2.aclose()
            return first, second, third, usage, usage2

        first, second, third, usage, usage2 = asyncio.run(go())
        assert fake.answered == 1
    assert first.data == second.data == third.data == {"critique": make_script().critique}
    assert (first.cached, second.cached, third.cached) == (False, True, True)
    assert usage.phase("x").calls == 1 and usage.phase("x").cached_calls == 1 and usage2.phase("x").calls == 0
    paid = usage.phase("x").prompt_tokens + usage.phase("x").completion_tokens
    assert paid > 0 and usage.phase("x").replayed_tokens == usage2.phase("x").replayed_tokens == paid


@contextlib.contextmanager
def _read_only(directory: Path):
    """`directory` made read-only for this process: its mode for a user, a read-only bind mount for root (which
    ignores modes); skips where neither is possible."""
    if os.geteuid() != 0:
        directory.chmod(0o555)
        try:
            yield directory
        finally:
            directory.chmod(0o755)
        return
    view = directory.with_name(directory.name + "-ro")
    view.mkdir()
    mounted = subprocess.run(["mount", "--bind", str(directory), str(view)], capture_output=True).returncode == 0
    if not mounted or subprocess.run(["mount", "-o", "remount,bind,ro", str(view)], capture_output=True).returncode:
        if mounted:
            subprocess.run(["umount", str(view)], check=True)
        pytest.skip("root without the right to mount: no read-only directory to test with")
    try:
        yield view
    finally:
        subprocess.run(["umount", "--lazy", str(view)], check=True)  # lazy: even while a failed test holds it open


def test_a_cache_on_read_only_storage_is_reused(tmp_path):
    own = ResponseCache(tmp_path / "shared" / "llm_cache.sqlite")  # WAL mode, as every run's cache
    own.put("k", {"answer": 1})
    own.close()
    with _read_only(tmp_path / "shared") as shared:
        plain = sqlite3.connect(f"{(shared / 'llm_cache.sqlite').as_uri()}?mode=ro", uri=True)
        with pytest.raises(sqlite3.OperationalError, match="unable to open"):  # no WAL index can be made there
            plain.execute("SELECT * FROM responses").fetchall()
        plain.close()
        cache = ResponseCache(tmp_path / "run" / "llm_cache.sqlite", [shared / "llm_cache.sqlite"])
        assert cache.get("k") == {"answer": 1} and cache.get("other") is None and len(cache) == 1
        cache.close()


def test_unreachable_server_fails_the_call_without_raising(tmp_path):
    async def go():
        client, usage = _client("http://127.0.0.1:9/v1", tmp_path)
        res = await client.chat(MSGS, phase="x")
        await client.aclose()
        return res, usage

    res, usage = asyncio.run(go())
    assert res.failed and "Connection" in res.error
    assert usage.phase("x").calls == 3 and usage.phase("x").retries == 2 and usage.phase("x").failures == 1


def test_client_error_is_not_retried(tmp_path):
    with FakeLLMServer(make_script()) as fake:
        async def go():
            client, usage = _client(fake.base_url, tmp_path)
            res = await client.chat(MSGS, phase="x", json_schema={**SCHEMA, "title": "nonsense"})
            await client.aclose()
            return res, usage

        res, usage = asyncio.run(go())
    assert res.failed and "400" in res.error and usage.phase("x").calls == 1


def test_budget_raises_before_paying(tmp_path):
    with FakeLLMServer(make_script()) as fake:
        async def go():
            client, _ = _client(fake.base_url, tmp_path, budget=Budget(max_calls=1))
            await client.chat(MSGS, phase="x", json_schema=SCHEMA)
            try:
                await client.chat([{"role": "user", "content": "again"}], phase="x", json_schema=SCHEMA)
            finally:
                await client.aclose()

        with pytest.raises(BudgetExceeded):
            asyncio.run(go())
        assert fake.answered == 1


@pytest.mark.parametrize("text", ['{"a": 1}', '```json\n{"a": 1}\n```', 'Sure! Here it is: {"a": 1} Hope it helps.'])
def test_tolerant_json(text):
    assert parse_json_tolerant(text) == {"a": 1}


def test_tolerant_json_refuses_garbage():
    with pytest.raises(BadOutput):
        parse_json_tolerant("no json here {")


class _Logprob:
    def __init__(self, token: str, logprob: float):
        self.decoded_token, self.logprob = token, logprob


class _Engine:
    """Stands in for vllm.LLM: answers A with a letter distribution; records each batch it was given."""

    def __init__(self, no_logprobs_for: str = ""):
        self.batches: list[int] = []
        self.no_logprobs_for = no_logprobs_for

    def chat(self, batch, sampling, use_tqdm=False):
        from types import SimpleNamespace as NS

        self.batches.append(len(batch))
        outs = []
        for messages in batch:
            bare = self.no_logprobs_for and self.no_logprobs_for in messages[-1]["content"]
            lps = None if bare else [{1: _Logprob("A", -0.2), 2: _Logprob("B", -1.8), 3: _Logprob("N", -3.0)}]
            outs.append(NS(outputs=[NS(text="A", token_ids=[1], logprobs=lps)], prompt_token_ids=[0] * 20,
                           num_cached_tokens=8))
        return outs


def _offline(tmp_path, engine: _Engine, **kw) -> tuple[LLMClient, Usage]:
    from critmine.llm.vllm_offline import VllmOfflineTransport, offline_endpoint

    transport = VllmOfflineTransport.__new__(VllmOfflineTransport)  # no vllm here: the engine is a stand-in
    transport.llm, transport._pending, transport.sampling = engine, [], lambda params, extra: (params, extra)
    usage = Usage()
    tmp_path.mkdir(exist_ok=True)
    client = LLMClient(offline_endpoint("m"), usage=usage, cache=ResponseCache(tmp_path / "c.sqlite"),
                       transport=transport, **kw)
    return client, usage


def _verdicts(client: LLMClient, n: int, prefix: str = "q") -> list:
    async def go():
        return await asyncio.gather(*(client.chat([{"role": "user", "content": f"{prefix}{i}"}], phase="judge",
                                                  max_tokens=1, choices=["A", "B", "N"], top_logprobs=3)
                                      for i in range(n)))
    return asyncio.run(go())


def test_the_offline_engine_gets_one_batch_and_the_same_cache_accounting_and_budget(tmp_path):
    engine = _Engine()
    client, usage = _offline(tmp_path, engine)
    results = _verdicts(client, 12)
    assert engine.batches == [12]  # every request in flight went to the engine at once
    assert all(r.top_logprobs[0]["A"] == -0.2 and not r.failed for r in results)
    stats = usage.phase("judge")
    assert (stats.calls, stats.prompt_tokens, stats.cached_tokens) == (12, 240, 96)
    again = _verdicts(client, 12)  # the response cache answers a repeat
    assert engine.batches == [12] and all(r.cached for r in again) and usage.phase("judge").cached_calls == 12
    limited, _ = _offline(tmp_path / "b", _Engine(), budget=Budget(max_calls=3))
    with pytest.raises(BudgetExceeded):
        _verdicts(limited, 5, prefix="new")


def test_an_offline_answer_without_letters_is_retried_counted_and_never_cached(tmp_path):
    engine = _Engine(no_logprobs_for="bad")
    client, usage = _offline(tmp_path, engine)
    ok, bad = _verdicts(client, 1, prefix="fine") + _verdicts(client, 1, prefix="bad")
    assert not ok.failed and bad.failed
    stats = usage.phase("judge")
    assert stats.failures == 1 and stats.retries == 1 and stats.calls == 3  # bad: asked twice (max_retries 1)
    _verdicts(client, 1, prefix="bad")
    assert usage.phase("judge").calls == 5  # not cached: a rerun asks again


class _MultiTransport:
    """A vLLM-like server for multi-verdict answers: "A B N" with each letter's distribution at its position."""

    def __init__(self, answer: list[tuple[str, dict[str, float]]]):
        self.answer, self.extras = answer, []

    async def send(self, messages, params, extra):
        self.extras.append(extra)
        content = [{"token": t, "logprob": top[t.strip()], "top_logprobs": [
            {"token": (" " if i else "") + k, "logprob": v} for k, v in top.items()]}
            for i, (t, top) in enumerate(self.answer)]
        text = "".join(t for t, _ in self.answer)
        return {"choices": [{"message": {"content": text}, "logprobs": {"content": content}}],
                "usage": {"prompt_tokens": 100, "completion_tokens": len(content)}}

    async def aclose(self):
        pass


def test_multi_verdict_reads_each_criterion_letter_at_its_own_position():
    from critmine.agents.worker import Worker
    from critmine.records import Criterion, Pair

    first, second, third = {"A": -0.1, "B": -2.5, "N": -4}, {"A": -3, "B": -0.2, "N": -2}, {"A": -3, "B": -3, "N": -0.1}
    transport = _MultiTransport([("A", first), (" B", second), (" N", third)])
    usage = Usage()
    client = LLMClient(Endpoint(base_url="http://x/v1", model="m", kind="vllm"), usage=usage, transport=transport)
    crits = [Criterion(name=f"c{i}", description=f"Prefer the text with more {w}.") for i, w in
             enumerate(["facts", "examples", "jokes"])]
    js = asyncio.run(Worker(client, multi=True).judge_pair(Pair(id="p", a="x", b="y"), crits))
    both = {j.criterion: j for j in js if j.order == "both"}
    # The same answer in both orders: c0 says "first text" both times (position bias) → no preference after the swap.
    assert both["c0"].p_a == pytest.approx(both["c0"].p_b) and both["c2"].verdict == "none"
    ab = {j.criterion: j for j in js if j.order == "ab"}
    assert ab["c0"].verdict == "a" and ab["c1"].verdict == "b" and ab["c2"].verdict == "none"
    assert usage.phase("judge").calls == 2  # one request per order for all three criteria
    assert transport.extras[0]["structured_outputs"] == {"regex": "(A|B|N)( (A|B|N)){2}"}
    short = _MultiTransport([("A", first), (" B", second)])  # 2 letters where 3 were asked: a bad answer
    client = LLMClient(Endpoint(base_url="http://x/v1", model="m", kind="vllm", max_retries=1, backoff_s=0.01),
                       usage=Usage(), transport=short)
    js = asyncio.run(Worker(client, multi=True).judge_pair(Pair(id="p", a="x", b="y"), crits))
    assert all(j.failed for j in js) and len(short.extras) == 4  # asked twice per order, then failed
    from critmine.llm.adapters import choice_constraint

    assert choice_constraint("llamacpp", ["A", "B", "N"], 3) == {
        "grammar": 'root ::= c " " c " " c\nc ::= "A" | "B" | "N"'}


def test_a_sampled_request_carries_a_seed_and_a_greedy_one_does_not():
    from critmine.llm.client import request_params

    greedy, _ = request_params("llamacpp", 100, 0.0, None, None, None)
    assert "seed" not in greedy  # verdicts and first proposals: the cache keys of earlier runs still match
    first, _ = request_params("vllm", 100, 0.8, None, None, None)
    second, _ = request_params("vllm", 100, 0.8, None, None, None, seed=2)
    assert first["seed"] == 0 and second["seed"] == 2  # a fresh run samples what the last one did; retries differ
