"""Turn endpoint settings into live LLM clients, starting the embedded server when no URL is given."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

from critmine.config import EndpointConfig
from critmine.embedded import EmbeddedServer
from critmine.llm import Budget, Endpoint, LLMClient, ResponseCache, Usage, detect_server_kind
from critmine.llm.endpoint import REMOTE_CONCURRENCY
from critmine.llm.transport import HttpTransport, Transport
from critmine.llm.vllm_offline import VllmOfflineTransport, offline_endpoint
from critmine.servers import ctrl_c_interrupts

log = logging.getLogger(__name__)


def resolve(cfg: EndpointConfig, stack: contextlib.ExitStack, started: dict[str, str]) -> Endpoint:
    """An Endpoint for `cfg`; an embedded server is started once per model and stopped when `stack` closes."""
    base_url = cfg.base_url
    kind = cfg.kind
    concurrency = cfg.concurrency or (1 if base_url is None else REMOTE_CONCURRENCY)
    if base_url is None:
        if cfg.model not in started:
            server = EmbeddedServer(cfg.model, binary=cfg.llama_server, threads=cfg.llama_threads)
            started[cfg.model] = stack.enter_context(server).base_url
        base_url, kind = started[cfg.model], "llamacpp"
    elif kind == "auto":
        kind = detect_server_kind(base_url, cfg.api_key)
    policy = cfg.model_dump(exclude={"base_url", "kind", "llama_server", "llama_threads", "concurrency"})
    return Endpoint(**policy, api_key=cfg.api_key, base_url=base_url, kind=kind, concurrency=concurrency)


@contextlib.asynccontextmanager
async def worker_client(cfg: EndpointConfig, cache_path: Path, usage: Usage, *, engine: str = "server",
                        budget: Budget | None = None, kv_cache_memory_bytes: int | None = None,
                        on_paid=None, read_from: Sequence[Path] = ()) -> AsyncIterator:
    """One worker client for a whole command: the server (embedded if no URL) or the in-process vLLM engine, then
    the response cache (answering also from the caches in `read_from`), all opened once and closed on the way out,
    whatever happens. The server starts first, so a server that cannot start leaves no file behind."""
    cache: ResponseCache | None = None
    client: LLMClient | None = None
    try:
        with contextlib.ExitStack() as stack:
            if engine == "vllm-offline":
                with ctrl_c_interrupts():  # the engine loads for minutes, blocking the event loop
                    transport: Transport = VllmOfflineTransport(cfg.model,
                                                                kv_cache_memory_bytes=kv_cache_memory_bytes)
                endpoint = offline_endpoint(cfg.model, cfg.max_retries)
            else:
                endpoint = resolve(cfg, stack, {})
                transport = HttpTransport(endpoint)
            cache = ResponseCache(cache_path, read_from)
            client = LLMClient(endpoint, usage=usage, cache=cache, budget=budget or Budget(), on_paid=on_paid,
                               transport=transport)
            yield client
    finally:
        if client is not None:
            await client.aclose()
        if cache is not None:
            cache.close()
