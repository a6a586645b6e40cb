"""Manager agent: reads labelled pairs, proposes criteria, critiques wrong cases and rewrites criteria.

Each step is a prompt template (prompts/), a JSON schema for the answer and a small parser.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence

from critmine.agents.worker import truncate_middle
from critmine.llm import LLMClient
from critmine.prompts import render_messages
from critmine.records import Criterion, Judgment, Pair

log = logging.getLogger(__name__)


def _obj(title: str, **props) -> dict:
    return {"title": title, "type": "object", "properties": props, "required": list(props),
            "additionalProperties": False}


_TEXT = {"type": "string", "minLength": 1, "maxLength": 400}
WARMUP_SCHEMA = _obj("warmup", observations={"type": "array", "items": _TEXT, "minItems": 1, "maxItems": 12})
CRITIQUE_SCHEMA = _obj("critique", critique=_TEXT)
REWRITE_SCHEMA = _obj("rewrite", description=_TEXT)


def proposal_schema(n: int) -> dict:
    item = _obj("criterion", name={"type": "string", "minLength": 2, "maxLength": 48}, description=_TEXT)
    return _obj("proposal", criteria={"type": "array", "items": item, "minItems": 1, "maxItems": max(1, n)})


def normalise_name(name: str) -> str:
    """snake_case, ASCII letters/digits only, at most 48 characters."""
    s = re.sub(r"[^0-9a-zA-Z]+", "_", name.strip()).strip("_").lower()
    return s[:48]


class Manager:
    """The manager LLM's four skills: warm-up, propose, reflect, refine."""

    def __init__(self, client: LLMClient, *, max_text_chars: int = 800, warmup_batch_chars: int = 6000,
                 retry_temperature: float = 0.8):
        self.client = client
        self.retry_temperature = retry_temperature
        self.max_text_chars = max_text_chars
        self.warmup_batch_chars = warmup_batch_chars

    def _batches(self, pairs: Sequence[Pair]) -> list[list[dict]]:
        batches: list[list[dict]] = [[]]
        size = 0
        for p in pairs:
            better, worse = (p.a, p.b) if p.better == "a" else (p.b, p.a)
            item = {"better": truncate_middle(better, self.max_text_chars),
                    "worse": truncate_middle(worse, self.max_text_chars)}
            n = len(item["better"]) + len(item["worse"])
            if batches[-1] and size + n > self.warmup_batch_chars:
                batches.append([])
                size = 0
            batches[-1].append(item)
            size += n
        return batches

    async def warmup(self, pairs: Sequence[Pair]) -> list[str]:
        """Why is the better text better? One call per batch of pairs that fits the context."""
        observations: list[str] = []
        for batch in self._batches(pairs):
            res = await self.client.chat(render_messages("manager_warmup.j2", pairs=batch), phase="warmup",
                                         max_tokens=600, json_schema=WARMUP_SCHEMA)
            if not res.failed and isinstance(res.data, dict):
                observations += [str(o).strip() for o in res.data.get("observations", []) if str(o).strip()]
        return observations

    async def propose(self, n: int, observations: Sequence[str], keep: Sequence[Criterion],
                      banned: Sequence[Criterion], origin: str = "proposed", attempts: int = 3) -> list[Criterion]:
        """Up to n new criteria, distinct from the kept and the banned ones; asks again (up to `attempts`
        calls) while a small manager returns fewer than asked. Follow-up calls sample at `retry_temperature`
        so that a model which repeats itself at temperature 0 can still come up with something new."""
        out: list[Criterion] = []
        for attempt in range(attempts):
            if len(out) >= n:
                break
            temperature = 0.0 if attempt == 0 else self.retry_temperature
            new = await self._propose_once(n - len(out), observations, [*keep, *out], banned, origin, temperature)
            if not new:
                break
            out += new
        return out

    async def _propose_once(self, n: int, observations: Sequence[str], keep: Sequence[Criterion],
                            banned: Sequence[Criterion], origin: str, temperature: float) -> list[Criterion]:
        msgs = render_messages("manager_propose.j2", n=n, observations=list(observations), keep=list(keep),
                               banned=list(banned))
        res = await self.client.chat(msgs, phase="propose", max_tokens=120 * n + 50, temperature=temperature,
                                     json_schema=proposal_schema(n))
        if res.failed or not isinstance(res.data, dict):
            return []
        taken = {c.name for c in keep} | {c.name for c in banned}
        out: list[Criterion] = []
        for item in res.data.get("criteria", []):
            if not isinstance(item, dict):
                continue
            name, desc = normalise_name(str(item.get("name", ""))), str(item.get("description", "")).strip()
            if not name or not desc or name in taken:
                log.info("manager proposed a duplicate or empty criterion %r; skipped", name)
                continue
            taken.add(name)
            out.append(Criterion(name=name, description=desc, origin=origin))
        return out[:n]

    async def reflect(self, criterion: Criterion, pair: Pair, judgment: Judgment | None) -> str | None:
        """A critique of the criterion from one pair it got wrong (both texts, human label, worker reasoning)."""
        worker = {"a": "text A", "b": "text B"}.get(judgment.verdict if judgment else "", "neither text")
        msgs = render_messages("manager_reflect.j2", a=truncate_middle(pair.a, self.max_text_chars),
                               b=truncate_middle(pair.b, self.max_text_chars), human=(pair.better or "?").upper(),
                               name=criterion.name, description=criterion.description, worker=worker,
                               reasoning=(judgment.reasoning if judgment else None))
        res = await self.client.chat(msgs, phase="reflect", max_tokens=200, json_schema=CRITIQUE_SCHEMA)
        if res.failed or not isinstance(res.data, dict):
            return None
        return str(res.data.get("critique", "")).strip() or None

    async def refine(self, criterion: Criterion, critiques: Sequence[str]) -> str | None:
        """A rewritten description from the critiques; None if the manager gave nothing usable."""
        msgs = render_messages("manager_refine.j2", name=criterion.name, description=criterion.description,
                               critiques=list(critiques))
        res = await self.client.chat(msgs, phase="refine", max_tokens=200, json_schema=REWRITE_SCHEMA)
        if res.failed or not isinstance(res.data, dict):
            return None
        desc = str(res.data.get("description", "")).strip()
        return desc if desc and desc != criterion.description else None
