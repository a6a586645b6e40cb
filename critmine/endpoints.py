"""Turn endpoint settings into live LLM clients, starting the embedded server when no URL is given."""

from __future__ import annotations

import contextlib
import logging

from critmine.config import EndpointConfig
from critmine.llm import Endpoint, detect_server_kind

log = logging.getLogger(__name__)


def resolve(cfg: EndpointConfig, stack: contextlib.ExitStack, started: dict[str, str]) -> Endpoint:
    """An Endpoint for `cfg`; an embedded server is started once per model and stopped when `stack` closes."""
    base_url = cfg.base_url
    kind = cfg.kind
    if base_url is None:
        if cfg.model not in started:
            from critmine.embedded import EmbeddedServer

            started[cfg.model] = stack.enter_context(EmbeddedServer(cfg.model)).base_url
        base_url, kind = started[cfg.model], "llamacpp"
    elif kind == "auto":
        kind = detect_server_kind(base_url, cfg.api_key)
    return Endpoint(**cfg.model_dump(exclude={"base_url", "kind"}), api_key=cfg.api_key, base_url=base_url, kind=kind)

