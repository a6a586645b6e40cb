"""A scripted OpenAI-compatible server (real HTTP on 127.0.0.1) whose worker verdicts follow a hidden rule.

Hidden rule: the longer text is better. How a criterion is answered depends on words in its description:
  "thorough"  → follows the rule
  "tone"      → follows the rule, except on pairs whose texts contain one of `flip_markers` (opposite)
  "abstain"   → always N
  otherwise   → the opposite of the rule (prefers the shorter text)
The generated letter is always "A" (a position-biased small model); only top_logprobs carry the preference.
It mimics vLLM (serves /version) and checks that verdict requests carry structured_outputs.choice.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import math
import random
import re
import threading
import time
from collections import Counter
from dataclasses import dataclass, field

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

TEXT_RE = re.compile(r"<text_a>\n(.*?)\n</text_a>.*?<text_b>\n(.*?)\n</text_b>", re.S)
CRIT_RE = re.compile(r'Criterion "([^"]+)": (.*?)(?:\n\nJudging only|\nBetter text|\Z)', re.S)
MULTI_RE = re.compile(r"Criteria:\n(.*?)\n\nWeighing", re.S)
INJECTED = "this text is better"  # part of every planted instruction this fake falls for


def request_format(body: dict) -> str | None:
    """The name of the JSON schema a chat request asks for ("warmup", "proposal", ...); None for a verdict."""
    return (body.get("response_format") or {}).get("json_schema", {}).get("name")


def criterion_text(user: str) -> str:
    """The criterion a verdict prompt asks about; the vanilla prompt (no criterion) judges overall quality."""
    if m := CRIT_RE.search(user):
        return m.group(2)
    if m := MULTI_RE.search(user):
        return m.group(1)
    return "overall: thorough is better"


# The client timeout the fault tests give a call: well above a healthy answer's latency on a loaded 2-core CI machine
# (0.5 s was not: a healthy call timed out there and was counted as a failure no fault caused).
FAULT_TIMEOUT_S = 2.0


@dataclass
class Script:
    initial: list[dict] = field(default_factory=list)  # first proposal
    replacements: list[dict] = field(default_factory=list)  # later proposals, in order
    flip_markers: tuple[str, ...] = ()
    critique: str = "The criterion should reward thorough, complete answers rather than tone."
    rewrite: str = "Prefer the more thorough and complete text; tone matters less."
    fault_rate: float = 0.0
    fault_seed: int = 0
    fault_kinds: tuple[str, ...] = ("http500", "timeout", "garbage", "empty", "no_logprobs", "non_letter")
    logprobs: bool = True  # False: a server that never returns top_logprobs
    fault_sleep_s: float = FAULT_TIMEOUT_S + 0.5  # a 'timeout' fault outlasts the client's --timeout FAULT_TIMEOUT_S
    delay_s: float = 0.0
    repeats_refused: bool = False  # True: a manager that proposes again what it was told was refused


class FakeLLMServer:
    def __init__(self, script: Script):
        self.script = script
        self.requests: list[dict] = []
        self.keys: Counter[str] = Counter()  # request hash → times answered successfully
        self.faults: Counter[str] = Counter()
        self.errors: list[str] = []
        self.hold = threading.Event()  # set → new requests wait until released
        self.answered = 0
        self._rng = random.Random(script.fault_seed)
        self._lock = threading.Lock()
        self.text_requests: list[dict] = []  # text log-probability requests (either dialect)
        self._vocab: dict[str, int] = {}
        app = Starlette(routes=[Route("/v1/chat/completions", self.chat, methods=["POST"]),
                                Route("/v1/completions", self.completions, methods=["POST"]),
                                Route("/tokenize", self.tokenize, methods=["POST"]),
                                Route("/completion", self.forced, methods=["POST"]),
                                Route("/version", self.version), Route("/v1/models", self.models)])
        self._server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="error"))
        self._thread = threading.Thread(target=self._server.run, daemon=True)

    # -- lifecycle ---------------------------------------------------------------------------------------
    def __enter__(self) -> FakeLLMServer:
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started and time.monotonic() < deadline:
            time.sleep(0.02)
        sock = self._server.servers[0].sockets[0]
        self.port = sock.getsockname()[1]
        return self

    def __exit__(self, *exc) -> None:
        self.hold.clear()
        self._server.should_exit = True
        self._thread.join(5)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def requests_for(self, fmt: str) -> list[dict]:
        """The chat requests that asked for the JSON schema named `fmt`."""
        return [r for r in self.requests if request_format(r) == fmt]

    # -- routes ------------------------------------------------------------------------------------------
    async def version(self, request: Request) -> Response:
        return JSONResponse({"version": "0.0-fake"})

    async def models(self, request: Request) -> Response:
        return JSONResponse({"object": "list", "data": [{"id": "fake", "object": "model"}]})

    # Text log-probabilities: a token is a word (with its leading space); a word holding "zx" (garbled) has
    # log-probability -8, any other -1. /v1/completions answers as vLLM does for echo=True, logprobs=0;
    # /tokenize and /completion as llama.cpp's server does for a prompt forced by a token-level grammar.
    @staticmethod
    def word_logprob(token: str) -> float:
        return -8.0 if "zx" in token else -1.0

    async def completions(self, request: Request) -> Response:
        body = await request.json()
        self.text_requests.append(body)
        if not body.get("echo") or body.get("logprobs") is None:
            return JSONResponse({"error": {"message": "expected echo with logprobs"}}, status_code=400)
        prompt = body["prompt"]
        tokens = re.findall(r"\s*\S+", prompt) + ["!"]  # the prompt's tokens, then one generated token
        offsets = [m.start() for m in re.finditer(r"\s*\S+", prompt)] + [len(prompt)]
        lps = [None] + [self.word_logprob(t) for t in tokens[1:]]
        return JSONResponse(self._completion("!", len(tokens), logprobs=None) | {"object": "text_completion",
                            "choices": [{"index": 0, "text": prompt + "!", "finish_reason": "length", "logprobs": {
                                "tokens": tokens, "token_logprobs": lps, "text_offset": offsets,
                                "top_logprobs": None}}]})

    async def tokenize(self, request: Request) -> Response:
        words = re.findall(r"\s*\S+", (await request.json())["content"])
        return JSONResponse({"tokens": [self._vocab.setdefault(w, len(self._vocab) + 1000) for w in words]})

    async def forced(self, request: Request) -> Response:
        body = await request.json()
        self.text_requests.append(body)
        ids = [int(i) for i in re.findall(r"<\[(\d+)\]>", body["grammar"])]
        words = {v: k for k, v in self._vocab.items()}
        probs = [{"id": i, "token": words[i], "logprob": self.word_logprob(words[i]), "top_logprobs": []}
                 for i in ids[: body["n_predict"]]]
        return JSONResponse({"content": "".join(words[i] for i in ids), "completion_probabilities": probs})

    async def chat(self, request: Request) -> Response:
        body = await request.json()
        key = hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()
        with self._lock:
            self.requests.append(body)
        while self.hold.is_set():
            await asyncio.sleep(0.02)
            if await request.is_disconnected():  # the client died while held: it never got an answer
                return Response(status_code=499)
        if self.script.delay_s:
            await asyncio.sleep(self.script.delay_s)
        fault = self._fault(verdict="response_format" not in body)
        if fault == "http500":
            return JSONResponse({"error": {"message": "injected"}}, status_code=500)
        if fault == "timeout":
            await asyncio.sleep(self.script.fault_sleep_s)
            return JSONResponse({"error": {"message": "too late"}}, status_code=500)
        if fault == "garbage":
            return Response('{"choices": [ {"message": tru', media_type="application/json")
        if fault == "empty":
            return Response(b"", media_type="application/json")
        try:
            payload = self._answer(body)
            choice = payload["choices"][0]
            if fault == "no_logprobs" or (not self.script.logprobs and "response_format" not in body):
                choice["logprobs"] = None
            elif fault == "non_letter":  # the distribution holds no letter (an unconstrained model's "The")
                choice["message"]["content"] = "The"
                choice["logprobs"]["content"] = [{"token": "The", "logprob": -0.1, "bytes": None, "top_logprobs": [
                    {"token": "The", "logprob": -0.1, "bytes": None}, {"token": " I", "logprob": -2.5, "bytes": None}]}]
        except Exception as e:  # surfaced to the test through .errors
            self.errors.append(f"{type(e).__name__}: {e}")
            return JSONResponse({"error": {"message": str(e)}}, status_code=400)
        if fault is None and self.script.logprobs:  # a usable answer (bad ones are asked again, rightly)
            with self._lock:
                self.keys[key] += 1
                self.answered += 1
        return JSONResponse(payload)

    def _fault(self, verdict: bool) -> str | None:
        """A fault for this request, or None; logprob faults only hit verdict requests (they need logprobs)."""
        with self._lock:
            if self._rng.random() >= self.script.fault_rate:
                return None
            kinds = [k for k in self.script.fault_kinds if verdict or k not in ("no_logprobs", "non_letter")]
            kind = self._rng.choice(kinds)
            self.faults[kind] += 1
            return kind

    # -- behaviour ---------------------------------------------------------------------------------------
    def preferred(self, first: str, second: str, description: str) -> str:
        for letter, text in (("A", first), ("B", second)):  # a gullible model: planted instructions win
            if INJECTED in text.lower() or "the better one" in text.lower() or "is this text" in text.lower():
                return letter
        by_rule = "A" if len(first) > len(second) else "B"
        other = "B" if by_rule == "A" else "A"
        d = description.lower()
        if "abstain" in d:
            return "N"
        if "thorough" in d:
            return by_rule
        if "tone" in d:
            flipped = any(m in first or m in second for m in self.script.flip_markers)
            return other if flipped else by_rule
        return other

    def _answer(self, body: dict) -> dict:
        user = body["messages"][-1]["content"]
        fmt = request_format(body)
        if fmt is None:
            if body.get("structured_outputs", {}).get("choice") != ["A", "B", "N"]:
                raise ValueError("verdict request without structured_outputs.choice")
            first, second = TEXT_RE.search(user).groups()
            letter = self.preferred(first, second, criterion_text(user))
            probs = {k: 0.1 for k in "ABN"}
            probs[letter] = 0.75
            if letter == "N":
                probs.update(A=0.05, B=0.05, N=0.9)
            top = [{"token": t, "logprob": math.log(p), "bytes": None} for t, p in probs.items()]
            top.append({"token": "The", "logprob": math.log(0.05), "bytes": None})
            return self._completion("A", len(user) // 4, logprobs={"content": [
                {"token": "A", "logprob": math.log(probs["A"]), "bytes": None, "top_logprobs": top}]})
        if fmt == "reasoned_verdict":
            first, second = TEXT_RE.search(user).groups()
            data = {"analysis": "One text is longer than the other.",
                    "verdict": self.preferred(first, second, criterion_text(user))}
        elif fmt == "warmup":
            data = {"observations": ["The better text is longer and more thorough."]}
        elif fmt == "proposal":
            n = body["response_format"]["json_schema"]["schema"]["properties"]["criteria"]["maxItems"]
            # The first proposal has no criteria to keep or avoid; every later one (replacements, top-ups) has.
            later = "Criteria we already have" in user or "failed to match" in user
            pool = self.script.replacements if later else self.script.initial
            listed = user.split("Proposals refused")[0] if self.script.repeats_refused else user
            fresh = [c for c in pool if f"- {c['name']}:" not in listed]
            data = {"criteria": fresh[:n]}
        elif fmt == "critique":
            data = {"critique": self.script.critique}
        elif fmt == "rewrite":
            data = {"description": self.script.rewrite}
        else:
            raise ValueError(f"unknown format {fmt}")
        return self._completion(json.dumps(data), len(user) // 4)

    @staticmethod
    def _completion(content: str, prompt_tokens: int, logprobs: dict | None = None) -> dict:
        return {"id": "cmpl-fake", "object": "chat.completion", "created": 0, "model": "fake",
                "choices": [{"index": 0, "finish_reason": "stop", "logprobs": logprobs,
                             "message": {"role": "assistant", "content": content}}],
                "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": 1,
                          "total_tokens": prompt_tokens + 1,
                          "prompt_tokens_details": {"cached_tokens": prompt_tokens // 2}}}
