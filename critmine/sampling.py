"""Pairs of documents from a corpus of any size: length-matched (`critmine pairs sample`, for people to label)
or random (`critmine judge --corpus`, for agent labels that cover the corpus as it is).

The corpus is streamed once; a reservoir keeps a uniform random pool of documents (memory bounded by the pool,
not the corpus). Inside the pool, documents are sorted by length within their group and neighbours are paired
when their length ratio is small enough, so "the longer text wins" cannot explain a label.
"""

from __future__ import annotations

import hashlib
import logging
import random
from collections import defaultdict
from collections.abc import Iterable

from critmine.io import InputError
from critmine.records import Document, Pair

log = logging.getLogger(__name__)


def reservoir(docs: Iterable[Document], k: int, rng: random.Random) -> list[Document]:
    """A uniform random sample of k documents with distinct texts, in one pass (Algorithm R)."""
    pool: list[Document] = []
    seen: set[str] = set()
    n = 0
    for doc in docs:
        digest = hashlib.sha1(doc.text.strip().encode("utf-8")).hexdigest()
        if digest in seen:
            continue
        n += 1
        if len(pool) < k:
            pool.append(doc)
            seen.add(digest)
        elif (j := rng.randrange(n)) < k:
            seen.discard(hashlib.sha1(pool[j].text.strip().encode("utf-8")).hexdigest())
            pool[j] = doc
            seen.add(digest)
    return pool


def length_matched_pairs(pool: list[Document], length_ratio: float, group_by: str | None,
                         rng: random.Random) -> list[Pair]:
    """Pair neighbours by length inside each group; no document is used twice; sides are randomised."""
    groups: dict[str, list[Document]] = defaultdict(list)
    for d in pool:
        groups[str(d.meta.get(group_by)) if group_by else ""].append(d)
    pairs = []
    for group, docs in groups.items():
        docs.sort(key=lambda d: len(d.text))
        i = 0
        while i + 1 < len(docs):
            short, long = docs[i], docs[i + 1]
            if len(long.text) <= length_ratio * len(short.text) and short.text.strip() != long.text.strip():
                a, b = (short, long) if rng.random() < 0.5 else (long, short)
                meta = {"a_id": a.id, "b_id": b.id, **({"group": group} if group_by else {})}
                pairs.append(Pair(id=f"{a.id}~{b.id}", a=a.text, b=b.text, better=None, meta=meta))
                i += 2
            else:
                i += 1
    return pairs


def random_pairs(pool: list[Document], group_by: str | None, rng: random.Random) -> list[Pair]:
    """Shuffle inside each group and pair neighbours: pairs as varied as the corpus (for agent labels)."""
    groups: dict[str, list[Document]] = defaultdict(list)
    for d in pool:
        groups[str(d.meta.get(group_by)) if group_by else ""].append(d)
    pairs = []
    for group, members in groups.items():
        rng.shuffle(members)
        for a, b in zip(members[0::2], members[1::2], strict=False):
            meta = {"a_id": a.id, "b_id": b.id, **({"group": group} if group_by else {})}
            pairs.append(Pair(id=f"{a.id}~{b.id}", a=a.text, b=b.text, better=None, meta=meta))
    return pairs


def sample_pairs(docs: Iterable[Document], n: int, *, seed: int = 0, length_ratio: float | None = 1.5,
                 group_by: str | None = None, pool_factor: int = 10) -> list[Pair]:
    """n pairs of distinct documents; length-matched within `length_ratio`, or random pairs when it is None."""
    if n < 1:
        raise InputError("--n must be at least 1")
    if length_ratio is not None and length_ratio < 1.0:
        raise InputError("--length-ratio must be >= 1")
    rng = random.Random(seed)
    pool = reservoir(docs, max(2 * n * pool_factor, 200), rng)
    if length_ratio is None:
        candidates = random_pairs(pool, group_by, rng)
        if len(candidates) < n:
            raise InputError(f"only {len(candidates)} pairs could be formed (asked for {n}); lower --n-pairs")
        return rng.sample(candidates, n)
    candidates = length_matched_pairs(pool, length_ratio, group_by, rng)
    if len(candidates) < n:
        raise InputError(f"only {len(candidates)} length-matched pairs could be formed (asked for {n}); "
                         "lower --n, raise --length-ratio or drop --group-by")
    log.info("pool of %d documents gave %d length-matched pairs; keeping %d", len(pool), len(candidates), n)
    return rng.sample(candidates, n)
