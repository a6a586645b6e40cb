"""`critmine judge`: agent annotation at scale — every pair under every final criterion, resumably.

Pairs are judged in shards; a shard file appears (atomic rename) only when all its pairs are judged, so a
killed run loses at most one shard's work, and even that is free on rerun (the LLM response cache). The
label of a pair is the soft vote (scoring.soft_vote, the rule mining and eval use too), with the majority vote and
each criterion's verdict beside it; criteria that abstain do not vote.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path

from critmine.agents.scoring import Voter, soft_margin, soft_vote
from critmine.artifacts import CriteriaSet
from critmine.io import read_pairs, write_jsonl_atomic
from critmine.llm.cache import CACHE_FILE
from critmine.records import Criterion, Judgment, Pair
from critmine.shards import ShardDir

log = logging.getLogger(__name__)
MANIFEST, PAIRS, CACHE = "manifest.json", "pairs.jsonl", CACHE_FILE
SUMMARY, USAGE = "summary.json", "usage.json"


def load_criteria(criteria_file: Path) -> list[Criterion]:
    """The selected criteria of a mining run (InputError when there are none)."""
    return CriteriaSet.read(criteria_file).criteria


def shard_record(pair: Pair, judgments: Sequence[Judgment]) -> dict:
    """What a shard stores per pair: the pair and each criterion's combined judgment."""
    votes = {j.criterion: {"p_a": j.p_a, "p_b": j.p_b, "p_none": j.p_none, "verdict": j.verdict, "failed": j.failed}
             for j in judgments if j.order == "both" and j.pair_id == pair.id}
    return {**pair.model_dump(), "votes": votes}


def label(record: dict, voters: Mapping[str, Voter] | None = None) -> dict | None:
    """Soft vote (with the criteria's scales and weights from criteria.json), majority vote and confidence of one
    judged pair; None when no criterion voted (a criterion of weight 0 does not vote)."""
    verdicts = {name: v["verdict"] for name, v in record["votes"].items()}
    voting = [(v["p_a"], v["p_b"], v["verdict"], (voters or {}).get(name, Voter()))
              for name, v in record["votes"].items() if not v["failed"]]
    p_a = soft_vote(voting)
    if p_a is None:
        return None
    n_voting = sum(soft_margin(a, b, v) is not None and w.weight > 0 for a, b, v, w in voting)
    n_a = sum(v == "a" for v in verdicts.values())
    n_b = sum(v == "b" for v in verdicts.values())
    return {"p_a": round(p_a, 6), "majority": "a" if n_a > n_b else "b" if n_b > n_a else "none",
            "confidence": round(abs(2 * p_a - 1), 6), "agreement": max(n_a, n_b) / n_voting,
            "n_voting": n_voting, "votes": verdicts}


def labelled_pairs(records: Sequence[dict], min_confidence: float,
                   voters: Mapping[str, Voter] | None = None) -> tuple[list[Pair], dict]:
    """Pairs with agent labels (`better` from the soft vote, the rest in meta), and what was dropped."""
    out, no_vote, unsure = [], 0, 0
    for r in records:
        lab = label(r, voters)
        if lab is None:
            no_vote += 1
            continue
        if lab["confidence"] < min_confidence or lab["p_a"] == 0.5:
            unsure += 1
            continue
        out.append(Pair(id=r["id"], a=r["a"], b=r["b"], better="a" if lab["p_a"] > 0.5 else "b",
                        meta={**r.get("meta", {}), **lab}))
    return out, {"judged": len(records), "labelled": len(out), "dropped_no_vote": no_vote,
                 "dropped_low_confidence": unsure}


def digest(items: Sequence[str]) -> str:
    return hashlib.sha256("\n".join(items).encode("utf-8")).hexdigest()


def judge_parts(parts_dir: Path) -> ShardDir:
    """The parts directory of `critmine judge`, under the one resume rule for sharded outputs."""
    return ShardDir(parts_dir, "the parts directory of a critmine judge run", manifest=MANIFEST, done=SUMMARY,
                    shard_glob="shard-*.jsonl", also=(PAIRS, USAGE), keep=(CACHE,))


class ShardStore:
    """The parts directory beside the output: the pairs to judge, the manifest, one file per shard and the summary
    once complete, under the one resume rule for sharded outputs (critmine.shards)."""

    def __init__(self, parts_dir: Path, shard_size: int):
        self.dir, self.shard_size = parts_dir, shard_size
        self.shards_dir = judge_parts(parts_dir)

    @staticmethod
    def _manifest(pairs: list[Pair], criteria: list[Criterion], shard_size: int) -> dict:
        return {"pairs": digest([p.id for p in pairs]), "shard_size": shard_size,
                "criteria": digest([f"{c.name}@v{c.version}:{c.description}" for c in criteria])}

    def check(self, pairs: list[Pair], criteria: list[Criterion]) -> None:
        """Refuse (InputError) a parts directory that is not a judging run's, or holds one with other inputs;
        writes nothing."""
        self.shards_dir.check(self._manifest(pairs, criteria, self.shard_size))

    def prepare(self, pairs: list[Pair], criteria: list[Criterion]) -> None:
        """Check, then create the parts directory (the pairs and the manifest) if it is new."""
        self.check(pairs, criteria)
        if not self.shards_dir.manifest.exists():  # new: the pairs first, then the manifest that seals them
            self.dir.mkdir(parents=True, exist_ok=True)
            write_jsonl_atomic(self.dir / PAIRS, pairs)
        self.shards_dir.open(self._manifest(pairs, criteria, self.shard_size))

    def shards(self, pairs: list[Pair]) -> list[list[Pair]]:
        return [pairs[i:i + self.shard_size] for i in range(0, len(pairs), self.shard_size)]

    def path(self, index: int) -> Path:
        return self.dir / f"shard-{index:05d}.jsonl"

    def pending(self, pairs: list[Pair]) -> list[tuple[int, list[Pair]]]:
        return [(i, s) for i, s in enumerate(self.shards(pairs)) if not self.path(i).exists()]

    def write(self, index: int, records: list[dict]) -> None:
        write_jsonl_atomic(self.path(index), records)

    def records(self, pairs: list[Pair]) -> list[dict]:
        out = []
        for i, _ in enumerate(self.shards(pairs)):
            out += [json.loads(x) for x in self.path(i).read_text().splitlines() if x.strip()]
        return out

    def saved_pairs(self) -> list[Pair] | None:
        f = self.dir / PAIRS
        return read_pairs(f) if f.exists() else None
