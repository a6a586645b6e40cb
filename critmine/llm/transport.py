"""How a request reaches a model: over HTTP to an OpenAI-compatible server, or (vllm_offline) to an in-process
engine. A transport only sends; caching, accounting, budget and retries are the client's (client.py).

Besides chat, a transport may read the log-probability of each token of a given text (the fluency measure):
vLLM returns them for an echoed prompt; llama.cpp's server has no prompt log-probabilities, so the text's own
tokens are forced one by one with a token-level grammar and each token's log-probability is read from the
distribution before the grammar (the cost of decoding the text, not of prefilling it)."""

from __future__ import annotations

import json
from typing import Any, Protocol, cast

import httpx
import openai

from critmine.llm.endpoint import Endpoint


class Transport(Protocol):
    """Sends one chat request and returns the answer as an OpenAI chat-completion dict; raises on trouble."""

    async def send(self, messages: list[dict], params: dict[str, Any], extra: dict[str, Any]) -> dict: ...

    async def text_logprobs(self, text: str, max_tokens: int, context: str = "") -> list[float]: ...

    async def aclose(self) -> None: ...


class Unsupported(Exception):
    """The server cannot do what was asked (not retried)."""


CONTEXT = "Text:\n"  # what every text is conditioned on when its log-probabilities are read


class HttpTransport:
    """An OpenAI-compatible server (llama.cpp, vLLM, OpenAI), through the openai client (its retries off)."""

    def __init__(self, endpoint: Endpoint):
        self.model, self.kind = endpoint.model, endpoint.kind
        self._client = openai.AsyncOpenAI(base_url=endpoint.base_url, api_key=endpoint.api_key,
                                          timeout=endpoint.timeout_s, max_retries=0)
        self._root = endpoint.base_url.rstrip("/").removesuffix("/v1")
        self._http = httpx.AsyncClient(timeout=endpoint.timeout_s)  # llama.cpp's native endpoints

    async def send(self, messages: list[dict], params: dict[str, Any], extra: dict[str, Any]) -> dict:
        resp = await self._client.chat.completions.create(model=self.model, messages=cast(Any, messages),
                                                          extra_body=extra or None, **params)
        return resp.model_dump() if hasattr(resp, "model_dump") else json.loads(str(resp))

    async def text_logprobs(self, text: str, max_tokens: int, context: str = "") -> list[float]:
        """Log-probabilities of the first `max_tokens` tokens of `text`, after CONTEXT and `context`."""
        before = CONTEXT + context
        if self.kind == "vllm":
            resp = await self._client.completions.create(model=self.model, prompt=before + text, max_tokens=1,
                                                         echo=True, logprobs=0)
            lp = resp.choices[0].logprobs
            if lp is None or lp.token_logprobs is None or lp.text_offset is None or lp.tokens is None:
                raise ValueError("the server echoed no prompt log-probabilities")
            own = [v for v, tok, at in zip(lp.token_logprobs, lp.tokens, lp.text_offset, strict=False)
                   if at + len(tok) > len(before) and v is not None]  # tokens that reach into the text
            return own[:-1][:max_tokens]  # the last one is the generated token's
        if self.kind != "llamacpp":
            raise Unsupported(f"{self.kind} servers return no log-probabilities of a given text")
        r = await self._http.post(f"{self._root}/tokenize", json={"content": text})
        r.raise_for_status()
        ids = r.json()["tokens"][:max_tokens]
        if not ids:
            return []
        r = await self._http.post(f"{self._root}/completion", json={
            "prompt": before, "grammar": "root ::= " + " ".join(f"<[{i}]>" for i in ids), "n_predict": len(ids),
            "n_probs": 1, "temperature": 0.0, "cache_prompt": True})
        r.raise_for_status()
        probs = r.json().get("completion_probabilities") or []
        if len(probs) != len(ids):
            raise ValueError(f"the server forced {len(probs)} of the text's {len(ids)} tokens")
        return [float(p["logprob"]) for p in probs]

    async def aclose(self) -> None:
        await self._client.close()
        await self._http.aclose()
