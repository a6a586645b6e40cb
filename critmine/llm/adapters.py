"""Per-server request dialects: how each OpenAI-compatible server constrains an answer to a set of choices."""

from __future__ import annotations

import json
import logging
import re
from typing import Literal

import httpx

ServerKind = Literal["llamacpp", "vllm", "openai"]
log = logging.getLogger(__name__)


def choice_constraint(kind: ServerKind, choices: list[str], slots: int = 1) -> dict:
    """extra_body fields that restrict the answer to one of `choices`, or with `slots` > 1 to that many choices
    separated by single spaces ("A B N")."""
    if kind == "llamacpp":
        rule = " | ".join(json.dumps(c) for c in choices)
        if slots == 1:
            return {"grammar": f"root ::= {rule}"}
        return {"grammar": "root ::= " + ' " " '.join(["c"] * slots) + f"\nc ::= {rule}"}
    if kind == "vllm":
        if slots == 1:
            return {"structured_outputs": {"choice": choices}}
        one = "(" + "|".join(re.escape(c) for c in choices) + ")"
        return {"structured_outputs": {"regex": one + f"( {one}){{{slots - 1}}}"}}
    return {}  # plain OpenAI: max_tokens and logprobs do the work


def prompt_cache_hint(kind: ServerKind) -> dict:
    """Ask the server to keep and reuse the prompt prefix."""
    return {"cache_prompt": True} if kind == "llamacpp" else {}


def detect_server_kind(base_url: str, api_key: str | None = None, timeout: float = 5.0) -> ServerKind:
    """Probe the endpoint: llama.cpp serves /props, vLLM serves /version; anything else is treated as OpenAI."""
    root = base_url.rstrip("/").removesuffix("/v1")
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    for path, kind in (("/props", "llamacpp"), ("/version", "vllm")):
        try:
            r = httpx.get(root + path, headers=headers, timeout=timeout)
            if r.status_code == 200 and (kind != "vllm" or "version" in r.json()):
                log.info("server at %s looks like %s", base_url, kind)
                return kind  # type: ignore[return-value]
        except (httpx.HTTPError, ValueError):
            continue
    return "openai"
