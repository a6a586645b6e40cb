"""The criteria knowledge base: the shipped file, a user's growing file, cheap pre-selection, near-duplicates.

Retrieval in the flow does not trust the manager alone: a shortlist of verbal criteria — every domain's core
criteria (so a grammar task meets the grammar criteria whatever the manager observed), then the best TF-IDF matches
to the manager's warm-up observations — is screened on a few seed pairs; the best of the screen, with every
computed criterion (free to judge), are judged on all seed pairs and only those that agree with people are kept.
"""

from __future__ import annotations

import json
import math
import re
from collections import Counter
from datetime import date
from importlib.resources import files
from itertools import combinations
from pathlib import Path

from pydantic import BaseModel, Field, ValidationError

from critmine.artifacts import CriteriaSet, RunLayout
from critmine.config import MineConfig
from critmine.io import InputError, write_jsonl_atomic
from critmine.measures import Measure, Prefer
from critmine.records import Criterion

DOMAINS = ("general", "educational", "code", "math", "argument", "dialogue", "fluency")
_STOP = set("a an the and or of to in on for with by is are be it its as at that this than then from which when "
            "whether not no rather over under prefer text texts one each both more less does do what how".split())


class KBEntry(BaseModel):
    name: str = Field(pattern=r"^[a-z0-9_]{2,48}$")
    description: str = Field(min_length=10)
    domains: list[str] = Field(min_length=1)
    source: str = Field(min_length=3)
    measure: Measure | None = Field(None, description="a computed criterion (critmine.measures): judged without an LLM")
    prefer: Prefer = "higher"
    core: bool = Field(False, description="one of its domains' central criteria: always on the retrieval shortlist")
    accuracy: float | None = None
    n_judged: int | None = None
    provenance: dict | None = None

    def criterion(self) -> Criterion:
        return Criterion(name=self.name, description=self.description, origin="knowledge_base", source=self.source,
                         measure=self.measure, prefer=self.prefer)


def shipped_path() -> Path:
    return Path(str(files("critmine.prompts").joinpath("knowledge/criteria.jsonl")))


def load(path: str | Path) -> list[KBEntry]:
    p = Path(path)
    if not p.exists():
        raise InputError(f"{p}: no such knowledge-base file")
    out = []
    for lineno, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            out.append(KBEntry.model_validate(json.loads(line)))
        except (json.JSONDecodeError, ValidationError) as e:
            raise InputError(f"{p}:{lineno}: not a knowledge-base entry ({str(e).splitlines()[0]})") from None
    return out


def load_all(user_kb: str | Path | None) -> list[KBEntry]:
    """User entries first (they carry measured accuracy), then shipped ones not overridden by name."""
    user = load(user_kb) if user_kb else []
    taken = {e.name for e in user}
    return user + [e for e in load(shipped_path()) if e.name not in taken]


def matching(entries: list[KBEntry], *, domain: str | None = None, text: str | None = None) -> list[KBEntry]:
    """Entries of `domain` whose name or description contains `text` (each filter only when given)."""
    needle = (text or "").lower()
    return [e for e in entries if (not domain or domain in e.domains)
            and (not needle or needle in e.name or needle in e.description.lower())]


def describe(shown: list[KBEntry], *, of: int) -> str:
    """A listing: name, measured accuracy, domains and source, then the description; and how many of `of`."""
    return "".join(f"{e.name:<34}{'   -' if e.accuracy is None else f'{e.accuracy:.2f}':>6}  "
                   f"{','.join(e.domains):<28} {e.source}\n    {e.description}"
                   f"{f' [computed: {e.measure}, {e.prefer} is better]' if e.measure else ''}\n" for e in shown) + \
        f"{len(shown)} of {of} criteria"


# Signs that a text holds code or mathematics. A criterion of those domains alone (type_clarity, correct_math_steps)
# is a candidate only when the seed texts show them: judged on prose, it measures nothing its description says, and
# one that wins on a few seed pairs by chance is a criterion no reader can make sense of.
DOMAIN_SIGNS = {
    "code": re.compile(r"```|<code>|<pre>|^\s*(?:def \w+\s*\(|class \w+|import \w|from [\w.]+ import |#include|public |"
                       r"private |return\b|function\b|(?:const|let|var) \w+\s*=|for\s*\(|while\s*\(|if\s*\(|[{}]\s*$)|"
                       r";\s*$|\bprint\(|\b[a-z_]\w*\.[a-z_]\w*\([^)\n]*\)", re.M),
    "math": re.compile(r"\\(?:frac|sqrt|sum|int|cdot|times|le|ge|neq|approx|alpha|beta|theta|pi)\b|\$\$|\^\{|_\{|"
                       r"\b\d+(?:\.\d+)?\s*[-+*/×÷^]\s*\d+(?:\.\d+)?\s*=\s*-?\d|"
                       r"\b[a-z]\s*[-+*/^]\s*\d+(?:\.\d+)?\s*=\s*-?\d|\b[a-z]\^\d|\b\d+[a-z]\s*[-+]\s*\d+\s*="),
}
SIGNS_PER_TEXT = 2  # one sign is an accident of prose (a line ending in ";", "50/50 = even"); two are not


def domains_shown(texts: list[str]) -> set[str]:
    """The domains of DOMAIN_SIGNS that the texts show: at least max(2, 5%) of them carry SIGNS_PER_TEXT signs."""
    need = max(2, math.ceil(0.05 * len(texts)))
    return {d for d, rx in DOMAIN_SIGNS.items()
            if sum(len(rx.findall(t)) >= SIGNS_PER_TEXT for t in texts) >= need}


def applicable(entries: list[KBEntry], texts: list[str]) -> tuple[list[KBEntry], list[str]]:
    """The entries that can apply to these texts (every entry with a domain besides code and math, and those of
    code or math when the texts show it: `domains_shown`), and the domains left out."""
    absent = sorted(set(DOMAIN_SIGNS) - domains_shown(texts))
    return [e for e in entries if not set(e.domains) <= set(absent)], absent


def words(text: str) -> list[str]:
    return [w for w in re.findall(r"[a-z]+", text.lower()) if w not in _STOP and len(w) > 2]


def rank(entries: list[KBEntry], query: str, domains: list[str] | None = None) -> list[tuple[float, KBEntry]]:
    """TF-IDF cosine between each entry (name + description) and the query, within `domains`."""
    pool = [e for e in entries if not domains or set(e.domains) & set(domains)]
    docs = [Counter(words(e.name.replace("_", " ") + " " + e.description)) for e in pool]
    df = Counter(w for d in docs for w in d)
    idf = {w: math.log((1 + len(docs)) / (1 + n)) + 1 for w, n in df.items()}

    def vec(c: Counter) -> dict[str, float]:
        return {w: n * idf.get(w, 0.0) for w, n in c.items()}

    q = vec(Counter(words(query)))
    qn = math.sqrt(sum(v * v for v in q.values())) or 1.0
    scored = []
    for e, d in zip(pool, docs, strict=True):
        v = vec(d)
        vn = math.sqrt(sum(x * x for x in v.values())) or 1.0
        scored.append((sum(q.get(w, 0.0) * x for w, x in v.items()) / (qn * vn), e))
    return sorted(scored, key=lambda t: (-(t[1].accuracy is not None), -t[0], t[1].name))


def shortlist(ranked: list[KBEntry], size: int) -> list[KBEntry]:
    """Up to `size` verbal criteria of `ranked` (see `rank`) to screen: a user's criteria with measured accuracy,
    then the domains' core criteria, then the rest, each group in the order of the ranking."""
    verbal = [e for e in ranked if not e.measure]
    return sorted(verbal, key=lambda e: (e.accuracy is None, not e.core))[:size]


def near_duplicates(entries: list[KBEntry], threshold: float = 0.5) -> list[tuple[str, str, float]]:
    """Pairs whose content words overlap (Jaccard) at or above `threshold`, or whose names coincide."""
    sets = {e.name: set(words(e.name.replace("_", " ") + " " + e.description)) for e in entries}
    out = []
    for (a, sa), (b, sb) in combinations(sets.items(), 2):
        j = len(sa & sb) / len(sa | sb)
        if a == b or j >= threshold:
            out.append((a, b, j))
    return out


def add_run(run_dir: str | Path, kb_file: str | Path, domains: list[str]) -> list[KBEntry]:
    """Write a run's selected criteria, with measured accuracy and provenance, into a user KB file."""
    kb = Path(kb_file)
    if kb.resolve() == shipped_path().resolve():
        raise InputError(f"{kb}: refusing to write the shipped knowledge base; give a file of your own with --kb")
    run = RunLayout(run_dir)
    if not run.criteria.exists():
        raise InputError(f"{run_dir}: no criteria.json (is the run finished?)")
    found = CriteriaSet.read(run.criteria)
    seeds = MineConfig.read(run.config).pairs if run.config.exists() else None
    shipped = {e.name: e for e in load(shipped_path())}
    new = []
    for c in found.criteria:
        base = shipped.get(c.name)
        new.append(KBEntry(name=c.name, description=c.description, measure=c.measure, prefer=c.prefer,
                           domains=domains or (base.domains if base else ["general"]),
                           source=(base.source if base and c.origin == "knowledge_base" else "critmine mining run"),
                           accuracy=c.accuracy, n_judged=c.n_judged,
                           provenance={"run": str(Path(run_dir).resolve()), "seeds": seeds,
                                       "version": c.version, "origin": c.origin,
                                       "ci": [c.ci_low, c.ci_high], "added": date.today().isoformat()}))
    existing = [e for e in (load(kb) if kb.exists() else []) if e.name not in {n.name for n in new}]
    write_jsonl_atomic(kb, [e.model_dump(exclude_none=True) for e in existing + new])
    return new
