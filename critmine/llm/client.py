"""The one LLM client: async, bounded, retrying, caching, accounting, budgeted."""

from __future__ import annotations

import asyncio
import json
import logging
import random
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import httpx
import openai

from critmine.errors import RunStopped
from critmine.llm.adapters import ServerKind, choice_constraint, prompt_cache_hint
from critmine.llm.cache import ResponseCache, request_key
from critmine.llm.endpoint import Endpoint
from critmine.llm.transport import HttpTransport, Transport, Unsupported
from critmine.llm.usage import Budget, BudgetExceeded, PhaseUsage, Usage

log = logging.getLogger(__name__)
T = TypeVar("T")


class BadOutput(Exception):
    """The server answered, but not with something usable (no choices, unparseable JSON, no letter, ...)."""


class NoLogprobs(BadOutput):
    """A verdict answer without top_logprobs."""


class EndpointError(RunStopped):
    """The endpoint cannot serve what critmine needs (e.g. it never returns top_logprobs): the run stops."""


@dataclass
class LLMResult:
    text: str | None = None
    data: Any = None
    top_logprobs: list[dict[str, float]] = field(default_factory=list)
    tokens: list[str] = field(default_factory=list)  # the answer's tokens, as sampled
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0
    cached: bool = False
    failed: bool = False
    error: str | None = None


def parse_json_tolerant(text: str) -> Any:
    """JSON from a model's text: plain, fenced in ```json, or the first {...} block. Raises BadOutput."""
    s = text.strip()
    fenced = re.search(r"```(?:json)?\s*(.*?)```", s, re.S)
    candidates = [s] + ([fenced.group(1)] if fenced else [])
    start, end = s.find("{"), s.rfind("}")
    if 0 <= start < end:
        candidates.append(s[start : end + 1])
    for c in candidates:
        try:
            return json.loads(c)
        except json.JSONDecodeError:
            continue
    raise BadOutput(f"unparseable JSON: {s[:80]!r}")


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {str(exc)[:200]}"


def _retryable(exc: BaseException) -> bool:
    if isinstance(exc, (openai.APITimeoutError, openai.APIConnectionError, BadOutput, json.JSONDecodeError)):
        return True
    if isinstance(exc, openai.APIStatusError):
        return exc.status_code in (408, 409, 429) or exc.status_code >= 500
    if isinstance(exc, openai.APIError):  # malformed bodies and other protocol-level trouble
        return True
    if isinstance(exc, httpx.HTTPStatusError):  # a server's native endpoints (text log-probabilities)
        return exc.response.status_code in (408, 409, 429) or exc.response.status_code >= 500
    if isinstance(exc, httpx.TransportError):
        return True
    return isinstance(exc, (asyncio.TimeoutError, ConnectionError, ValueError))


def payload_tokens(payload: dict) -> tuple[int, int, int]:
    u = payload.get("usage") or {}
    prompt, completion = u.get("prompt_tokens") or 0, u.get("completion_tokens") or 0
    cached = ((u.get("prompt_tokens_details") or {}).get("cached_tokens")) or 0
    timings = payload.get("timings") or {}  # llama.cpp: cache_n tokens reused, prompt_n computed
    if not cached and "cache_n" in timings:
        cached = timings.get("cache_n") or 0
    return int(prompt), int(completion), int(cached)


def _top_logprobs(choice: dict) -> list[dict[str, float]]:
    content = ((choice.get("logprobs") or {}).get("content")) or []
    out = []
    for pos in content:
        d = {t["token"]: t["logprob"] for t in (pos.get("top_logprobs") or [])}
        d.setdefault(pos.get("token", ""), pos.get("logprob", -1e9))
        out.append(d)
    return out


def _tokens(choice: dict) -> list[str]:
    return [pos.get("token", "") for pos in ((choice.get("logprobs") or {}).get("content")) or []]


def request_params(kind: ServerKind, max_tokens: int, temperature: float, json_schema: dict | None,
                   choices: list[str] | None, top_logprobs: int | None, slots: int = 1,
                   seed: int | None = None) -> tuple[dict, dict]:
    """(OpenAI parameters, server-specific extra_body) of one chat request; both are part of the cache key. A sampled
    request (temperature > 0) carries a seed (0 unless given), so that a fresh run samples the same answer."""
    params: dict[str, Any] = {"max_tokens": max_tokens, "temperature": temperature}
    if temperature > 0:
        params["seed"] = seed or 0
    extra: dict[str, Any] = dict(prompt_cache_hint(kind))
    if json_schema is not None:
        params["response_format"] = {"type": "json_schema", "json_schema": {
            "name": json_schema.get("title", "answer"), "schema": json_schema, "strict": True}}
    if choices:
        extra.update(choice_constraint(kind, choices, slots))
    if top_logprobs:
        params["logprobs"] = True
        params["top_logprobs"] = top_logprobs
    return params, extra


def letter_positions(res: LLMResult, choices: list[str]) -> list[dict[str, float]]:
    """The top logprobs at each position of the answer where a choice was sampled (a multi-verdict answer
    "A B N" has one per slot; separators are skipped)."""
    return [top for token, top in zip(res.tokens, res.top_logprobs, strict=False) if token.strip() in choices]


def check_letters(res: LLMResult, choices: list[str], slots: int = 1) -> None:
    """A verdict answer is usable only with a letter distribution: top_logprobs whose first position holds at
    least one of the choices; with `slots` > 1, exactly that many positions where a choice was sampled.
    Raises NoLogprobs / BadOutput (retried, counted, never cached)."""
    if not res.top_logprobs or not res.top_logprobs[0]:
        raise NoLogprobs("the answer has no top_logprobs")
    if slots > 1:
        if len(found := letter_positions(res, choices)) != slots:
            raise BadOutput(f"the answer {res.text!r} holds {len(found)} letters where {slots} were asked")
    elif not any(token.strip() in choices for token in res.top_logprobs[0]):
        raise BadOutput(f"the answer's first token distribution holds none of {', '.join(choices)}")


def result_from_payload(payload: dict, parse: Callable[[str], Any] | None, cached: bool,
                        letters: list[str] | None = None, slots: int = 1) -> LLMResult:
    """An LLMResult from an OpenAI-format chat completion (as served, or as the offline engine writes it);
    with `letters`, the answer must carry a distribution over them (check_letters)."""
    choices = payload.get("choices") or []
    if not choices:
        raise BadOutput("response has no choices")
    text = (choices[0].get("message") or {}).get("content")
    if text is None:
        raise BadOutput("response has no message content")
    data = parse(text) if parse else None
    p, c, k = payload_tokens(payload)
    res = LLMResult(text=text, data=data, top_logprobs=_top_logprobs(choices[0]), tokens=_tokens(choices[0]),
                    prompt_tokens=p, completion_tokens=c, cached_tokens=k, cached=cached)
    if letters:
        check_letters(res, letters, slots)
    return res


def verdict_letters(choices: list[str] | None, top_logprobs: int | None) -> list[str] | None:
    """The letters a verdict answer must carry a distribution over (None for other requests)."""
    return list(choices) if choices and top_logprobs else None


class LLMClient:
    """Chat completions against one endpoint, with every concern of calling an LLM kept in this class: the
    response cache, accounting, the budget, retries and answer checks, whichever transport carries the request
    (an HTTP server by default; vllm_offline.VllmOfflineTransport for an in-process engine)."""

    def __init__(self, endpoint: Endpoint, *, usage: Usage, cache: ResponseCache | None = None,
                 budget: Budget | None = None, backoff_cap_s: float = 20.0,
                 on_paid: Callable[[], None] | None = None, transport: Transport | None = None):
        """`on_paid` runs after every paid call (e.g. to persist usage, so a kill loses no count)."""
        self.endpoint = endpoint
        self.transport = transport or HttpTransport(endpoint)
        self._on_paid = on_paid or (lambda: None)
        self._in_flight = 0
        self.usage = usage
        self.cache = cache
        self.budget = budget or Budget()
        self._backoff = (endpoint.backoff_s, backoff_cap_s)
        self._sem = asyncio.Semaphore(endpoint.concurrency)
        self._logprobs_seen = False  # a verdict answer with top_logprobs came back (the server supports them)

    async def aclose(self) -> None:
        await self.transport.aclose()

    async def _attempts(self, stats: PhaseUsage, send: Callable[[], Awaitable[T]]) -> tuple[T | None, list[Exception]]:
        """`send` under the client's concurrency, budget and retries: (its answer, the errors before it), or (None,
        every attempt's error) when it failed for good. A call is counted once answered or failed, so a saved count
        never includes one in flight; BudgetExceeded and Unsupported are raised, not retried."""
        errors: list[Exception] = []
        for attempt in range(self.endpoint.max_retries + 1):
            async with self._sem:
                self.budget.check(self.usage, self._in_flight)
                try:
                    self._in_flight += 1
                    try:
                        answer = await send()
                    finally:
                        self._in_flight -= 1
                        stats.calls += 1
                except (BudgetExceeded, Unsupported):
                    raise
                except Exception as exc:  # noqa: BLE001 - classified here; non-retryable ones fail the call
                    errors.append(exc)
                    if not _retryable(exc) or attempt == self.endpoint.max_retries:
                        break
                    stats.retries += 1
                    log.debug("retrying after %s", _describe(exc))
                else:
                    return answer, errors
            base, cap = self._backoff
            await asyncio.sleep(min(cap, base * 2**attempt) * random.uniform(0.5, 1.5))
        stats.failures += 1
        self._on_paid()
        return None, errors

    async def text_logprob(self, text: str, *, phase: str, max_tokens: int, context: str = "") -> float | None:
        """The mean log-probability per token of the first `max_tokens` tokens of `text`, read after `context` (what
        the text continues; not counted), under this endpoint's model (cached, counted, budgeted and retried like a
        chat call); None when the server cannot say."""
        shown = [{"role": "context", "content": context}] if context else []
        key = request_key(self.endpoint.model, [*shown, {"role": "text", "content": text}], {"logprobs": max_tokens})
        stats = self.usage.phase(phase)
        if self.cache is not None and (hit := self.cache.get(key)) is not None:
            stats.cached_calls += 1
            return hit["mean_logprob"]
        try:
            values, errors = await self._attempts(
                stats, lambda: self.transport.text_logprobs(text, max_tokens, context))
        except Unsupported as exc:
            log.warning("no text log-probabilities from %s: %s", self.endpoint.base_url, exc)
            return None
        if values is None:
            log.warning("text log-probabilities failed for good (%s phase): %s", phase, _describe(errors[-1]))
            return None
        mean = sum(values) / len(values) if values else None
        stats.prompt_tokens += len(values)  # the text's tokens read (forced or prefilled)
        if self.cache is not None and mean is not None:
            self.cache.put(key, {"mean_logprob": mean, "tokens": len(values)})
        self._on_paid()
        return mean

    async def chat(self, messages: list[dict], *, phase: str, max_tokens: int = 256, temperature: float = 0.0,
                   json_schema: dict | None = None, choices: list[str] | None = None,
                   top_logprobs: int | None = None, parse: Callable[[str], Any] | None = None,
                   slots: int = 1, seed: int | None = None) -> LLMResult:
        """One chat completion. Never raises for server trouble: a call that keeps failing returns failed=True.

        `parse` turns the text into `data`; a parse error counts as a bad answer and is retried, and only
        answers that parse are cached. A verdict request (`choices` with `top_logprobs`) needs an answer with a
        distribution over the choices, likewise; `slots` > 1 asks for that many choices in one answer ("A B N"),
        each with its distribution. `seed` picks a sampled request's seed (two samples of one prompt differ in
        it). Raises BudgetExceeded when the budget is spent, and
        EndpointError when the server never returns top_logprobs (checked on the run's first verdicts).
        """
        if json_schema is not None and parse is None:
            parse = parse_json_tolerant
        params, extra = request_params(self.endpoint.kind, max_tokens, temperature, json_schema, choices,
                                       top_logprobs, slots, seed)
        key = request_key(self.endpoint.model, messages, {**params, **extra})
        letters = verdict_letters(choices, top_logprobs)
        stats = self.usage.phase(phase)
        if self.cache is not None and (hit := self.cache.get(key)) is not None:
            try:
                res = result_from_payload(hit, parse, cached=True, letters=letters, slots=slots)
                stats.cached_calls += 1
                stats.replayed_tokens += res.prompt_tokens + res.completion_tokens
                return res
            except BadOutput:
                log.debug("cached answer no longer parses; asking again")

        async def send() -> tuple[dict, LLMResult]:
            payload = await self.transport.send(messages, params, extra)
            return payload, result_from_payload(payload, parse, cached=False, letters=letters, slots=slots)

        answer, errors = await self._attempts(stats, send)
        if answer is not None:
            payload, res = answer
            self._logprobs_seen = self._logprobs_seen or letters is not None
            stats.prompt_tokens += res.prompt_tokens
            stats.completion_tokens += res.completion_tokens
            stats.cached_tokens += res.cached_tokens
            if self.cache is not None:
                self.cache.put(key, payload)
            self._on_paid()
            return res
        last_error = _describe(errors[-1])
        if letters and not self._logprobs_seen and all(isinstance(e, NoLogprobs) for e in errors):
            raise EndpointError(f"{self.endpoint.base_url} returned no top_logprobs for a verdict ({len(errors)} "
                                "attempts): critmine reads each verdict from the letters' log-probabilities; use a "
                                "server that returns them (vLLM: --max-logprobs 20; llama.cpp's llama-server does)")
        log.warning("LLM call failed for good (%s phase): %s", phase, last_error)
        return LLMResult(failed=True, error=last_error)
