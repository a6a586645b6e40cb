"""Manager agent: reads labelled pairs, proposes criteria, critiques wrong cases and rewrites criteria.

Each step is a prompt template (prompts/), a JSON schema for the answer and a small parser.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence

from critmine.agents.vetting import Vetter
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
                 retry_temperature: float = 0.8, vetter: Vetter | None = None):
        """`vetter` refuses proposals and rewrites that are not criteria (agents/vetting.py)."""
        self.client = client
        self.vetter = vetter
        self.refused: list[tuple[Criterion, str, str]] = []  # refused (criterion, why, kind), until take_refused()
        self.refused_proposals: list[tuple[Criterion, str]] = []  # every refused proposal of the run, kept
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

    def take_refused(self) -> list[dict]:
        """The proposals and rewrites refused since the last call, as records (name, description, why, kind:
        "proposal" or "rewrite")."""
        out = [{"name": c.name, "description": c.description, "why": why, "kind": kind}
               for c, why, kind in self.refused]
        self.refused = []
        return out

    def remember_refused(self, records: Sequence[dict]) -> None:
        """Take back the refused proposals among a run's records (take_refused's), as a resumed run must: a name
        refused before the resume is shown to the manager again and not listed twice."""
        self.refused_proposals = [(Criterion(name=r["name"], description=r["description"]), r["why"])
                                  for r in records if r.get("kind") == "proposal"]

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
        calls) while a small manager returns fewer than asked. Follow-up calls sample at `retry_temperature`,
        each with its own seed (a fresh run gets the same answers), so that a model which repeats itself at
        temperature 0 can still come up with something new; a call that brings nothing new (only repeats of refused
        proposals) ends the asking. Proposals refused in earlier rounds are shown again and not recorded twice."""
        out: list[Criterion] = []
        refused = list(self.refused_proposals)
        earlier = len(refused)
        for attempt in range(attempts):
            if len(out) >= n:
                break
            temperature = 0.0 if attempt == 0 else self.retry_temperature
            new, bad = await self._propose_once(n - len(out), observations, [*keep, *out], banned, refused, origin,
                                                temperature, seed=attempt)
            seen = {c.name for c, _ in refused}
            repeats_only = all(c.name in seen for c, _ in bad)
            for c, why in bad:  # each refused name once, with its first reason, logged when first refused
                if c.name not in seen:
                    log.info("manager's proposal %r refused: %s", c.name, why)
                    refused.append((c, why))
                    seen.add(c.name)
            if not new and repeats_only:
                break  # nothing, or only what was refused already: asking again would cost a call for the same
            out += new
        self.refused += [(c, why, "proposal") for c, why in refused[earlier:]]
        self.refused_proposals = refused
        return out

    async def _propose_once(self, n: int, observations: Sequence[str], keep: Sequence[Criterion],
                            banned: Sequence[Criterion], refused: Sequence[tuple[Criterion, str]], origin: str,
                            temperature: float, seed: int) -> tuple[list[Criterion], list[tuple[Criterion, str]]]:
        """(accepted proposals, refused ones with the reason); earlier refusals are shown to the manager."""
        msgs = render_messages("manager_propose.j2", n=n, observations=list(observations), keep=list(keep),
                               banned=list(banned), refused=[{"name": c.name, "why": why} for c, why in refused])
        res = await self.client.chat(msgs, phase="propose", max_tokens=120 * n + 50, temperature=temperature, seed=seed,
                                     json_schema=proposal_schema(n))
        if res.failed or not isinstance(res.data, dict):
            return [], []
        out: list[Criterion] = []
        bad: list[tuple[Criterion, str]] = []
        have = {c.name for c in keep}  # criteria it already has: saying one again is no proposal, nor a refusal
        for item in res.data.get("criteria", []):
            if not isinstance(item, dict):
                continue
            c = Criterion(name=normalise_name(str(item.get("name", ""))),
                          description=str(item.get("description", "")).strip(), origin=origin)
            if c.name in have:
                log.debug("manager's proposal %r repeats a criterion it has; ignored", c.name)
                continue
            why = "empty" if not c.name or not c.description else self._refuse(c, [*keep, *banned, *out])
            if why:
                bad.append((c, why))
                continue
            out.append(c)
            have.add(c.name)
        return out[:n], bad

    def _refuse(self, c: Criterion, others: Sequence[Criterion]) -> str | None:
        if self.vetter is not None:
            return self.vetter.refuse(c, others)
        return f"repeats {c.name}" if any(o.name == c.name for o in others) else None

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
        if not desc or desc == criterion.description:
            return None
        if self.vetter is not None and (why := self.vetter.refuse_description(desc)):
            log.info("manager's rewrite of %s refused: %s", criterion.name, why)
            self.refused.append((criterion.model_copy(update={"description": desc}), why, "rewrite"))
            return None
        return desc
