"""The LLM client on its own: cache, non-retryable errors, tolerant parsing, budget."""

from __future__ import annotations

import asyncio

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
