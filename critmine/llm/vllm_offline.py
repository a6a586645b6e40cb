"""An in-process `vllm.LLM` as a transport: no HTTP, and every request in flight in one event-loop turn goes to
the engine as one batch.

The client around it (LLMClient) is the same as for a server: the same response cache, in the same OpenAI format
and under the same keys as the vLLM server's (runs resume the same way whichever engine judged), the same
accounting, budget, retries and answer checks.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

from critmine.llm.cache import ResponseCache
from critmine.llm.client import LLMClient
from critmine.llm.endpoint import Endpoint
from critmine.llm.transport import Unsupported
from critmine.llm.usage import Budget, Usage
from critmine.vllm_backend import hf_checkpoint

log = logging.getLogger(__name__)
OFFLINE_CONCURRENCY = 4096  # requests the client lets in flight: the engine batches them


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


def sampling_params(params: dict[str, Any], extra: dict[str, Any]):
    """vllm.SamplingParams for the OpenAI parameters and vLLM extra_body the client built (request_params)."""
    from vllm import SamplingParams
    from vllm.sampling_params import StructuredOutputsParams

    structured = None
    wanted = extra.get("structured_outputs") or {}
    if choice := wanted.get("choice"):
        structured = StructuredOutputsParams(choice=choice)
    elif regex := wanted.get("regex"):
        structured = StructuredOutputsParams(regex=regex)
    elif fmt := params.get("response_format"):
        structured = StructuredOutputsParams(json=fmt["json_schema"]["schema"])
    return SamplingParams(temperature=params.get("temperature", 0.0), max_tokens=params.get("max_tokens", 256),
                          logprobs=params.get("top_logprobs"), structured_outputs=structured, seed=params.get("seed"))


class VllmOfflineTransport:
    """Collects the requests sent in one event-loop turn and runs them as batched `llm.chat` calls (one per
    distinct set of sampling parameters)."""

    def __init__(self, model: str, *, max_model_len: int = 4096, tensor_parallel_size: int = 1,
                 kv_cache_memory_bytes: int | None = None, max_logprobs: int = 20):
        from vllm import LLM

        extra = {"kv_cache_memory_bytes": kv_cache_memory_bytes} if kv_cache_memory_bytes else {}
        self.llm = LLM(model=str(hf_checkpoint(model)), max_model_len=max_model_len, enable_prefix_caching=True,
                       tensor_parallel_size=tensor_parallel_size, max_logprobs=max_logprobs, **extra)
        self._pending: list[tuple[list[dict], dict, dict, asyncio.Future]] = []
        self.sampling = sampling_params

    async def send(self, messages: list[dict], params: dict[str, Any], extra: dict[str, Any]) -> dict:
        future = asyncio.get_running_loop().create_future()
        if not self._pending:
            asyncio.get_running_loop().call_soon(self._flush)
        self._pending.append((messages, params, extra, future))
        return await future

    def _flush(self) -> None:
        pending, self._pending = self._pending, []
        groups: dict[str, list[tuple[list[dict], dict, dict, asyncio.Future]]] = {}
        for item in pending:
            groups.setdefault(json.dumps([item[1], item[2]], sort_keys=True), []).append(item)
        for items in groups.values():
            try:
                outs = self.llm.chat([m for m, _, _, _ in items], self.sampling(items[0][1], items[0][2]),
                                     use_tqdm=False)
            except Exception as exc:  # noqa: BLE001 - the client classifies and retries
                for *_, future in items:
                    future.set_exception(exc)
                continue
            for (*_, future), out in zip(items, outs, strict=True):
                future.set_result(_payload(out))

    async def text_logprobs(self, text: str, max_tokens: int, context: str = "") -> list[float]:
        raise Unsupported("the offline engine does not read text log-probabilities yet (serve vLLM instead)")

    async def aclose(self) -> None:
        return None


def offline_endpoint(model: str, max_retries: int = 1) -> Endpoint:
    """The endpoint an in-process engine stands for: vLLM's dialect (so cache keys match the vLLM server's), and
    enough requests in flight for the engine to batch them."""
    return Endpoint(base_url="offline://vllm", model=model, kind="vllm", concurrency=OFFLINE_CONCURRENCY,
                    max_retries=max_retries, backoff_s=0.0)


def offline_client(model: str, *, usage: Usage, cache: ResponseCache | None = None, budget: Budget | None = None,
                   max_retries: int = 1, **engine: Any) -> LLMClient:
    """The one LLM client, on an in-process vLLM engine (`engine`: VllmOfflineTransport's arguments)."""
    return LLMClient(offline_endpoint(model, max_retries), usage=usage, cache=cache, budget=budget,
                     transport=VllmOfflineTransport(model, **engine))
