"""Worker agent: judges one pair under one criterion.

`verdict` mode constrains the answer to one token (A / B / N), reads the probabilities of the letters from
top_logprobs and judges both orders, so that a model's position bias cancels out: the two orders' odds of a over b
are averaged in log space (a geometric mean), where a lean towards the first letter adds to one order's log-odds
what it takes from the other's, so the pair's margin does not depend on how hard the model leans. (The arithmetic
mean of the two orders' probabilities, the rule before, shrinks the margin towards ½ as the lean grows: a small
model nearly sure of "A" in both orders.)
With `multi=True` one request per pair and order asks for every criterion's letter at once ("A B N ..."),
constrained to that format, and reads each letter's probabilities at its own position.
`reasoned` mode asks for a short JSON analysis and a verdict; the flow uses it only for wrong cases.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Sequence

from critmine.defaults import MAX_TEXT_CHARS
from critmine.llm import LLMClient, LLMResult, letter_positions
from critmine.measures import LOGPROB_TOKENS, MODEL_MEASURES, compare, compare_logprobs, shared_context
from critmine.prompts import render_messages
from critmine.records import Criterion, Judgment, Pair

LETTERS = ("A", "B", "N")
PROB_FLOOR = 1e-6  # a letter missing from the top logprobs: rare, not impossible (keeps its log-odds finite)
REASONED_SCHEMA = {
    "title": "reasoned_verdict",
    "type": "object",
    "properties": {"analysis": {"type": "string", "maxLength": 500},
                   "verdict": {"type": "string", "enum": list(LETTERS)}},
    "required": ["analysis", "verdict"],
    "additionalProperties": False,
}


def truncate_middle(text: str, budget: int) -> str:
    """Keep the head and tail of a long text within `budget` characters, with a marker where text was cut."""
    if len(text) <= budget:
        return text
    head = budget * 2 // 3
    tail = budget - head
    return f"{text[:head]}\n[... {len(text) - budget} characters omitted ...]\n{text[-tail:]}"


def letter_probs(top: dict[str, float]) -> tuple[float, float, float] | None:
    """Normalised (p_A, p_B, p_N) from one position's top logprobs; None if no letter is among them."""
    mass = dict.fromkeys(LETTERS, 0.0)
    for token, logprob in top.items():
        t = token.strip()
        if t in mass:
            mass[t] += math.exp(logprob)
    total = sum(mass.values())
    if total <= 1e-9:
        return None
    return mass["A"] / total, mass["B"] / total, mass["N"] / total


def verdict_of(p_a: float, p_b: float, p_none: float) -> str:
    if p_none >= max(p_a, p_b) or p_a == p_b:
        return "none"
    return "a" if p_a > p_b else "b"


class Worker:
    """Judges pairs under criteria through one LLM client."""

    def __init__(self, client: LLMClient, *, max_text_chars: int = MAX_TEXT_CHARS, top_logprobs: int = 10,
                 template: str = "worker_verdict.j2", multi: bool = False):
        """`template` is the verdict prompt: one criterion (default), or a baseline's (no criterion, all at once);
        `multi` judges all criteria of a pair and order in one request (worker_verdicts.j2)."""
        self.client = client
        self.template = "worker_verdicts.j2" if multi else template
        self.multi = multi
        self.max_text_chars = max_text_chars
        self.top_logprobs = top_logprobs

    def build_messages(self, template: str, pair: Pair, criterion: Criterion, order: str) -> list[dict]:
        first, second = (pair.a, pair.b) if order == "ab" else (pair.b, pair.a)
        return render_messages(template, a=truncate_middle(first, self.max_text_chars),
                               b=truncate_middle(second, self.max_text_chars),
                               name=criterion.name, description=criterion.description)

    def _order_judgment(self, pair: Pair, criterion: Criterion, order: str, res: LLMResult,
                        top: dict[str, float] | None) -> Judgment:
        j = Judgment(pair_id=pair.id, criterion=criterion.name, version=criterion.version, order=order,
                     prompt_tokens=res.prompt_tokens, completion_tokens=res.completion_tokens,
                     cached=res.cached, failed=res.failed)
        probs = letter_probs(top) if top else None
        if probs is None:
            j.failed = True
            return j
        p_first, p_second, j.p_none = probs
        # Map letters back to the pair's sides: in order "ba", letter A is text b.
        j.p_a, j.p_b = (p_first, p_second) if order == "ab" else (p_second, p_first)
        j.verdict = verdict_of(j.p_a, j.p_b, j.p_none)
        return j

    async def judge_order(self, pair: Pair, criterion: Criterion, order: str, phase: str = "judge") -> Judgment:
        res = await self.client.chat(self.build_messages(self.template, pair, criterion, order), phase=phase,
                                     max_tokens=1, choices=list(LETTERS), top_logprobs=self.top_logprobs)
        return self._order_judgment(pair, criterion, order, res, res.top_logprobs[0] if res.top_logprobs else None)

    async def judge_order_multi(self, pair: Pair, criteria: Sequence[Criterion], order: str,
                                phase: str = "judge") -> list[Judgment]:
        """Every criterion in one request; the request's tokens are counted on the first criterion's judgment."""
        first, second = (pair.a, pair.b) if order == "ab" else (pair.b, pair.a)
        messages = render_messages(self.template, a=truncate_middle(first, self.max_text_chars),
                                   b=truncate_middle(second, self.max_text_chars), criteria=list(criteria))
        res = await self.client.chat(messages, phase=phase, max_tokens=2 * len(criteria) + 2, choices=list(LETTERS),
                                     top_logprobs=self.top_logprobs, slots=len(criteria))
        tops = letter_positions(res, list(LETTERS)) if not res.failed else []
        out = []
        for i, c in enumerate(criteria):
            j = self._order_judgment(pair, c, order, res, tops[i] if i < len(tops) else None)
            if i:
                j.prompt_tokens = j.completion_tokens = 0
            out.append(j)
        return out

    @staticmethod
    def combine(parts: Sequence[Judgment], *, geometric: bool = True) -> Judgment:
        """The orders that succeeded as one judgment with order "both": p_none their mean, and the rest split
        between a and b by the geometric mean of their odds (`geometric=False`: the arithmetic mean of p_a and of
        p_b, the rule before; kept for the benchmarks' ablation)."""
        ok = [p for p in parts if not p.failed]
        first = parts[0]
        j = Judgment(pair_id=first.pair_id, criterion=first.criterion, version=first.version, order="both",
                     prompt_tokens=sum(p.prompt_tokens for p in parts),
                     completion_tokens=sum(p.completion_tokens for p in parts),
                     cached=all(p.cached for p in parts), failed=not ok)
        if ok:
            j.p_none = sum(p.p_none for p in ok) / len(ok)
            if geometric:
                log_odds = sum(math.log(max(p.p_a, PROB_FLOOR) / max(p.p_b, PROB_FLOOR)) for p in ok) / len(ok)
                q = 1.0 / (1.0 + math.exp(-log_odds))
                j.p_a, j.p_b = q * (1.0 - j.p_none), (1.0 - q) * (1.0 - j.p_none)
            else:
                j.p_a = sum(p.p_a for p in ok) / len(ok)
                j.p_b = sum(p.p_b for p in ok) / len(ok)
            j.verdict = verdict_of(j.p_a, j.p_b, j.p_none)
        return j

    @staticmethod
    def measured(pair: Pair, criterion: Criterion) -> Judgment:
        """A computed criterion's judgment ("both": a measure has no position bias), without an LLM call."""
        assert criterion.measure is not None
        return Worker._judgment(pair, criterion, compare(criterion.measure, criterion.prefer, pair.a, pair.b))

    async def measured_by_model(self, pair: Pair, criterion: Criterion, phase: str = "judge") -> Judgment:
        """A model measure's judgment (mean_logprob: each text's mean token log-probability, cached per text and
        context); failed when the server cannot return them. Only what follows the texts' shared beginning is read,
        conditioned on it: two answers to one question differ in their answers, not in the question."""
        n = shared_context(pair.a, pair.b)
        context = pair.a[:n][-self.max_text_chars:]
        va, vb = [await self.client.text_logprob(truncate_middle(t[n:], self.max_text_chars), context=context,
                                                 phase=phase, max_tokens=LOGPROB_TOKENS) for t in (pair.a, pair.b)]
        if va is None or vb is None:
            return Judgment(pair_id=pair.id, criterion=criterion.name, version=criterion.version, order="both",
                            failed=True)
        return self._judgment(pair, criterion, compare_logprobs(va, vb, criterion.prefer))

    @staticmethod
    def _judgment(pair: Pair, criterion: Criterion, probs: tuple[float, float, float]) -> Judgment:
        p_a, p_b, p_none = probs
        return Judgment(pair_id=pair.id, criterion=criterion.name, version=criterion.version, order="both",
                        p_a=p_a, p_b=p_b, p_none=p_none, verdict=verdict_of(p_a, p_b, p_none))

    async def judge_pair(self, pair: Pair, criteria: Sequence[Criterion], phase: str = "judge") -> list[Judgment]:
        """All criteria for one pair, back to back per order, so the server computes each text prefix once.

        Returns, per verbal criterion, the "ab", "ba" and combined "both" judgments; per computed one, "both".
        """
        verbal = [c for c in criteria if not c.computed]
        by_order: dict[str, list[Judgment]] = {"ab": [], "ba": []}
        for order in ("ab", "ba") if verbal else ():
            if self.multi:
                by_order[order] = await self.judge_order_multi(pair, verbal, order, phase)
            else:
                by_order[order] = [await self.judge_order(pair, c, order, phase) for c in verbal]
        out: list[Judgment] = []
        for ab, ba in zip(by_order["ab"], by_order["ba"], strict=True):
            out += [ab, ba, self.combine([ab, ba])]
        return out + [await self.measured_by_model(pair, c, phase) if c.measure in MODEL_MEASURES
                      else self.measured(pair, c) for c in criteria if c.computed]

    async def judge_all(self, pairs: Sequence[Pair], criteria: Sequence[Criterion], phase: str = "judge",
                        progress=None) -> list[Judgment]:
        """Every pair under every criterion, pair-major: at most `concurrency` pairs in flight, each pair's
        requests back to back, so each server slot keeps one pair's prefix cached."""
        slots = asyncio.Semaphore(self.client.endpoint.concurrency)

        async def one(pair: Pair) -> list[Judgment]:
            async with slots:
                js = await self.judge_pair(pair, criteria, phase)
            if progress is not None:
                progress.update(1)
            return js

        results = await asyncio.gather(*(one(p) for p in pairs))
        return [j for js in results for j in js]

    async def reason(self, pair: Pair, criterion: Criterion, phase: str = "reflect") -> Judgment:
        """Reasoned mode, order ab: the worker's analysis for one pair (used only for wrong cases)."""
        res = await self.client.chat(self.build_messages("worker_reasoned.j2", pair, criterion, "ab"), phase=phase,
                                     max_tokens=200, json_schema=REASONED_SCHEMA)
        j = Judgment(pair_id=pair.id, criterion=criterion.name, version=criterion.version, order="ab",
                     prompt_tokens=res.prompt_tokens, completion_tokens=res.completion_tokens,
                     cached=res.cached, failed=res.failed)
        if not res.failed and isinstance(res.data, dict):
            j.reasoning = str(res.data.get("analysis", ""))[:1000]
            letter = str(res.data.get("verdict", "N")).strip().upper()[:1]
            j.verdict = {"A": "a", "B": "b"}.get(letter, "none")
            j.p_a, j.p_b, j.p_none = float(j.verdict == "a"), float(j.verdict == "b"), float(j.verdict == "none")
        return j
