"""How a chat request reaches a model: over HTTP to an OpenAI-compatible server, or (vllm_offline) to an
in-process engine. A transport only sends; caching, accounting, budget and retries are the client's (client.py)."""

from __future__ import annotations

import json
from typing import Any, Protocol, cast

import openai

from critmine.llm.endpoint import Endpoint


class Transport(Protocol):
    """Sends one chat request and returns the answer as an OpenAI chat-completion dict; raises on trouble."""

    async def send(self, messages: list[dict], params: dict[str, Any], extra: dict[str, Any]) -> dict: ...

    async def aclose(self) -> None: ...


class HttpTransport:
    """An OpenAI-compatible server (llama.cpp, vLLM, OpenAI), through the openai client (its retries off)."""

    def __init__(self, endpoint: Endpoint):
        self.model = endpoint.model
        self._client = openai.AsyncOpenAI(base_url=endpoint.base_url, api_key=endpoint.api_key,
                                          timeout=endpoint.timeout_s, max_retries=0)

    async def send(self, messages: list[dict], params: dict[str, Any], extra: dict[str, Any]) -> dict:
        resp = await self._client.chat.completions.create(model=self.model, messages=cast(Any, messages),
                                                          extra_body=extra or None, **params)
        return resp.model_dump() if hasattr(resp, "model_dump") else json.loads(str(resp))

    async def aclose(self) -> None:
        await self._client.close()
