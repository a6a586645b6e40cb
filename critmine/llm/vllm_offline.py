"""The worker's client interface on an in-process `vllm.LLM`: no HTTP, one fully batched call per round.

Answers are written to the same response cache, in the same OpenAI format and under the same keys as the vLLM
server's, so runs resume the same way whichever engine judged.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from critmine.llm.cache import ResponseCache, request_key
from critmine.llm.client import (
    BadOutput,
    Endpoint,
    LLMResult,
    payload_tokens,
    request_params,
    result_from_payload,
    verdict_letters,
)
from critmine.llm.usage import Usage
from critmine.vllm_backend import hf_checkpoint

log = logging.getLogger(__name__)


def _payload(out: Any) -> dict:
    """A vLLM RequestOutput as an OpenAI chat completion dict."""
    gen = out.outputs[0]
    content = []
    for token_id, pos in zip(gen.token_ids, gen.logprobs or [], strict=False):
        top = [{"token": lp.decoded_token, "logprob": lp.logprob} for lp in pos.values()]
        chosen = pos.get(token_id)
        content.append({"token": chosen.decoded_token if chosen else "", "top_logprobs": top,
                        "logprob": chosen.logprob if chosen else -1e9})
    cached = getattr(out, "num_cached_tokens", 0) or 0
    return {"choices": [{"message": {"role": "assistant", "content": gen.text},
                         "logprobs": {"content": content} if content else None}],
            "usage": {"prompt_tokens": len(out.prompt_token_ids or []), "completion_tokens": len(gen.token_ids),
                      "prompt_tokens_details": {"cached_tokens": cached}}}


class VllmOfflineClient:
    """`chat` / `chat_batch` on vllm.LLM(...).chat with SamplingParams(logprobs=k, structured_outputs=...)."""

    def __init__(self, model: str, *, usage: Usage, cache: ResponseCache | None = None, name: str | None = None,
                 max_model_len: int = 4096, tensor_parallel_size: int = 1, kv_cache_memory_bytes: int | None = None,
                 max_logprobs: int = 20):
        from vllm import LLM

        self.usage, self.cache = usage, cache
        self.endpoint = Endpoint(base_url="offline://vllm", model=name or model, kind="vllm")
        extra = {"kv_cache_memory_bytes": kv_cache_memory_bytes} if kv_cache_memory_bytes else {}
        self.llm = LLM(model=str(hf_checkpoint(model)), max_model_len=max_model_len, enable_prefix_caching=True,
                       tensor_parallel_size=tensor_parallel_size, max_logprobs=max_logprobs, **extra)

    def _sampling(self, max_tokens: int, temperature: float, json_schema: dict | None, choices: list[str] | None,
                  top_logprobs: int | None):
        from vllm import SamplingParams
        from vllm.sampling_params import StructuredOutputsParams

        structured = None
        if choices:
            structured = StructuredOutputsParams(choice=choices)
        elif json_schema is not None:
            structured = StructuredOutputsParams(json=json_schema)
        return SamplingParams(temperature=temperature, max_tokens=max_tokens, logprobs=top_logprobs,
                              structured_outputs=structured)

    async def chat_batch(self, batch: list[list[dict]], *, phase: str, max_tokens: int = 256,
                         temperature: float = 0.0, json_schema: dict | None = None, choices: list[str] | None = None,
                         top_logprobs: int | None = None,
                         parse: Callable[[str], Any] | None = None) -> list[LLMResult]:
        params, extra = request_params("vllm", max_tokens, temperature, json_schema, choices, top_logprobs)
        keys = [request_key(self.endpoint.model, m, {**params, **extra}) for m in batch]
        stats = self.usage.phase(phase)
        letters = verdict_letters(choices, top_logprobs)
        payloads: dict[int, dict] = {}
        for i, k in enumerate(keys):
            if self.cache is not None and (hit := self.cache.get(k)) is not None:
                payloads[i] = hit
                stats.cached_calls += 1
                stats.replayed_tokens += sum(payload_tokens(hit)[:2])
        todo = [i for i in range(len(batch)) if i not in payloads]
        if todo:
            outs = self.llm.chat([batch[i] for i in todo], self._sampling(max_tokens, temperature, json_schema,
                                                                          choices, top_logprobs), use_tqdm=False)
            for i, out in zip(todo, outs, strict=True):
                payloads[i] = p = _payload(out)
                stats.calls += 1
                stats.prompt_tokens += p["usage"]["prompt_tokens"]
                stats.completion_tokens += p["usage"]["completion_tokens"]
                stats.cached_tokens += p["usage"]["prompt_tokens_details"]["cached_tokens"]
        results = []
        for i in range(len(batch)):
            try:
                results.append(result_from_payload(payloads[i], parse, cached=i not in todo, letters=letters))
            except BadOutput as e:  # counted, and never cached (a rerun asks again)
                stats.failures += 1
                results.append(LLMResult(failed=True, error=str(e)))
            else:
                if self.cache is not None and i in todo:
                    self.cache.put(keys[i], payloads[i])
        return results

    async def chat(self, messages: list[dict], *, phase: str, max_tokens: int = 256, temperature: float = 0.0,
                   json_schema: dict | None = None, choices: list[str] | None = None, top_logprobs: int | None = None,
                   parse: Callable[[str], Any] | None = None) -> LLMResult:
        return (await self.chat_batch([messages], phase=phase, max_tokens=max_tokens, temperature=temperature,
                                      json_schema=json_schema, choices=choices, top_logprobs=top_logprobs,
                                      parse=parse))[0]

    async def aclose(self) -> None:
        return None
