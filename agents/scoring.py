"""Scoring criteria against human labels: accuracy, coverage, Wilson CI, bands, folds and votes."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence

from critmine.eval.metrics import agreement, wilson_interval
from critmine.records import Criterion, Judgment, Pair

# Compact per-pair result kept in the flow state: [p_a, p_b, p_none, verdict]
Result = list


def result_tables(judgments: Iterable[Judgment]) -> dict[str, dict[str, Result]]:
    """Combined ("both") judgments as compact tables: "name@vN" → pair id → [p_a, p_b, p_none, verdict]."""
    tables: dict[str, dict[str, Result]] = {}
    for j in judgments:
        if j.order == "both":
            tables.setdefault(f"{j.criterion}@v{j.version}", {})[j.pair_id] = [j.p_a, j.p_b, j.p_none, j.verdict]
    return tables


def fold_of(pair_id: str, folds: int) -> int:
    """Deterministic fold assignment of a seed pair."""
    return int(hashlib.sha1(pair_id.encode("utf-8")).hexdigest(), 16) % max(1, folds)


def band_of(accuracy: float | None, low: float, good: float) -> str:
    if accuracy is None or accuracy <= low:
        return "low"
    return "good" if accuracy >= good else "mid"


def driving_pairs(criterion: Criterion) -> set[str]:
    """Seed pairs whose critiques drove an accepted rewrite of this criterion."""
    return {pid for rw in criterion.history if rw.accepted for pid in rw.driven_by}


def score(criterion: Criterion, results: Mapping[str, Result], pairs: Sequence[Pair], *, low: float,
          good: float) -> Criterion:
    """A copy of `criterion` with its agreement statistics filled in from `results` (pair id → result).

    `seed_accuracy` uses every seed pair and decides the band; `accuracy`, its CI and n_judged use only the
    pairs that did not drive the criterion's rewrites (the overfit guard).
    """
    labels = {p.id: p.better for p in pairs}
    verdict = {pid: results[pid][3] if pid in results else "none" for pid in labels}
    ids = list(labels)
    c_all, j_all, n_all = agreement([verdict[i] for i in ids], [labels[i] for i in ids])
    held = [i for i in ids if i not in driving_pairs(criterion)]
    c_h, j_h, _ = agreement([verdict[i] for i in held], [labels[i] for i in held])
    lo, hi = wilson_interval(c_h, j_h)
    out = criterion.model_copy(deep=True)
    out.seed_accuracy = c_all / j_all if j_all else None
    out.accuracy = c_h / j_h if j_h else None
    out.n_correct, out.n_judged = c_h, j_h
    out.ci_low, out.ci_high = lo, hi
    out.coverage = j_all / n_all if n_all else 0.0
    out.band = band_of(out.seed_accuracy, low, good)
    return out


def wrong_pairs(results: Mapping[str, Result], pairs: Sequence[Pair]) -> list[Pair]:
    """Seed pairs on which a criterion chose the other text than people did (abstentions are not wrong)."""
    return [p for p in pairs if p.id in results and results[p.id][3] in ("a", "b") and results[p.id][3] != p.better]


def votes(per_criterion: Iterable[Mapping[str, Result]], pair_ids: Sequence[str]) -> dict[str, dict]:
    """Flow prediction per pair: soft vote (sum of p_a − p_b) and majority vote over criteria verdicts."""
    tables = list(per_criterion)
    out = {}
    for pid in pair_ids:
        margin, n_a, n_b = 0.0, 0, 0
        for t in tables:
            if pid not in t:
                continue
            p_a, p_b, _, v = t[pid]
            margin += p_a - p_b
            n_a += v == "a"
            n_b += v == "b"
        soft = "a" if margin > 0 else "b" if margin < 0 else "none"
        major = "a" if n_a > n_b else "b" if n_b > n_a else "none"
        out[pid] = {"margin": margin, "votes_a": n_a, "votes_b": n_b, "soft": soft, "majority": major}
    return out


def select_final(criteria: Sequence[Criterion], *, low: float, min_final: int) -> list[Criterion]:
    """Good criteria; if fewer than `min_final`, topped up with the best remaining ones above the low band."""
    ranked = sorted(criteria, key=lambda c: (c.seed_accuracy or 0.0, c.coverage or 0.0), reverse=True)
    chosen = [c for c in ranked if c.band == "good"]
    for c in ranked:
        if len(chosen) >= min_final:
            break
        if c not in chosen and (c.seed_accuracy or 0.0) > low:
            chosen.append(c)
    return chosen
