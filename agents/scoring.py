"""Scoring criteria against human labels: accuracy, coverage, Wilson CI, bands, folds and votes."""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable, Mapping, Sequence
from typing import NamedTuple

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


def band_of(accuracy: float | None, low: float, good: float, interval_low: float = 1.0) -> str:
    """low / mid / good by seed accuracy; "good" also needs the accuracy's 95% interval above `low`, so a criterion
    that decided one or two seed pairs is not good by luck."""
    if accuracy is None or accuracy <= low:
        return "low"
    return "good" if accuracy >= good and interval_low > low else "mid"


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
    out.band = band_of(out.seed_accuracy, low, good, wilson_interval(c_all, j_all)[0])
    out.scale = margin_scale({pid: results[pid] for pid in labels if pid in results})
    return out


def wrong_pairs(results: Mapping[str, Result], pairs: Sequence[Pair]) -> list[Pair]:
    """Seed pairs on which a criterion chose the other text than people did (abstentions are not wrong)."""
    return [p for p in pairs if p.id in results and results[p.id][3] in ("a", "b") and results[p.id][3] != p.better]


DEFAULT_SCALE = 0.25  # a criterion with no measured spread: σ(mean (q − ½)/0.25) ≈ the mean q near ½


def soft_margin(p_a: float, p_b: float, verdict: str) -> float | None:
    """A criterion's vote on one pair: q − ½ with q = p_a / (p_a + p_b); None when it abstained."""
    return p_a / (p_a + p_b) - 0.5 if verdict != "none" and p_a + p_b > 1e-9 else None


def margin_scale(results: Mapping[str, Result]) -> float | None:
    """The spread of a criterion's soft margins (soft_margin) over the pairs it voted on (RMS), so that a
    criterion whose probabilities barely move and a measure with wide margins weigh the same."""
    ms = [m for r in results.values() if (m := soft_margin(r[0], r[1], r[3])) is not None]
    rms = math.sqrt(sum(m * m for m in ms) / len(ms)) if ms else 0.0
    return rms if rms > 1e-6 else None


class Voter(NamedTuple):
    """How one criterion's margin enters the vote: divided by its `scale`, weighted by its `weight` (both in
    criteria.json, measured and fitted on the seed pairs)."""

    scale: float | None = None
    weight: float = 1.0

    @classmethod
    def of(cls, c: Criterion) -> Voter:
        return cls(c.scale, c.weight)


def soft_vote(votes: Iterable[tuple[float, float, str, Voter]]) -> float | None:
    """The one aggregation rule (mining, eval and judge): each criterion that did not abstain gives its margin
    q − ½ (q = p_a / (p_a + p_b)) divided by its scale (its spread on the seed pairs); p(a better) is the logistic
    of their mean weighted by the criteria's weights. None when every criterion abstained."""
    zs = [(voter.weight, m / (voter.scale or DEFAULT_SCALE)) for p_a, p_b, verdict, voter in votes
          if (m := soft_margin(p_a, p_b, verdict)) is not None and voter.weight > 0]
    total = sum(w for w, _ in zs)
    return 1.0 / (1.0 + math.exp(-sum(w * z for w, z in zs) / total)) if zs else None


def votes(per_criterion: Iterable[Mapping[str, Result]], pair_ids: Sequence[str],
          voters: Sequence[Voter] | None = None) -> dict[str, dict]:
    """Flow prediction per pair: the soft vote (soft_vote, with each criterion's Voter; margin = p(a better) − ½)
    and the majority vote over the criteria's verdicts."""
    tables = list(per_criterion)
    voters = list(voters) if voters is not None else [Voter()] * len(tables)
    out = {}
    for pid in pair_ids:
        rows = [(t[pid], v) for t, v in zip(tables, voters, strict=True) if pid in t]
        p_a = soft_vote((r[0], r[1], r[3], v) for r, v in rows)
        margin = 0.0 if p_a is None else p_a - 0.5
        n_a, n_b = sum(r[3] == "a" for r, _ in rows), sum(r[3] == "b" for r, _ in rows)
        soft = "a" if margin > 0 else "b" if margin < 0 else "none"
        major = "a" if n_a > n_b else "b" if n_b > n_a else "none"
        out[pid] = {"margin": margin, "votes_a": n_a, "votes_b": n_b, "soft": soft, "majority": major}
    return out


def by_evidence(c: Criterion) -> tuple[float, float]:
    """Sort key: the lower end of the 95% interval of its accuracy, then the accuracy."""
    return c.ci_low or 0.0, c.seed_accuracy or 0.0


def select_final(criteria: Sequence[Criterion], *, low: float, min_final: int) -> list[Criterion]:
    """Good criteria; if fewer than `min_final`, topped up with the best remaining ones above the low band (ranked
    by the lower end of their 95% interval: many agreeing seed pairs beat a perfect score on two)."""
    ranked = sorted(criteria, key=by_evidence, reverse=True)
    chosen = [c for c in ranked if c.band == "good"]
    for c in ranked:
        if len(chosen) >= min_final:
            break
        if c not in chosen and (c.seed_accuracy or 0.0) > low:
            chosen.append(c)
    return chosen


def above_chance(criteria: Sequence[Criterion], *, low: float) -> list[Criterion]:
    """Every criterion above the low band on the seeds, by evidence: a wide vote with nothing chosen among them."""
    return sorted((c for c in criteria if (c.seed_accuracy or 0.0) > low), key=by_evidence, reverse=True)


def no_signal_advice(final: Sequence[Criterion], tried: Sequence[Criterion], n_seeds: int,
                     worker_model: str) -> str | None:
    """None when a selected criterion beats chance on the seeds (its 95% interval's lower end above 0.5);
    otherwise, in plain words, what was tried, the best seed accuracies and what to try next."""
    if any((c.ci_low or 0.0) > 0.5 for c in final):
        return None
    best = sorted(tried, key=lambda c: (c.accuracy or 0.0, c.ci_low or 0.0), reverse=True)[:3]
    shown = ", ".join(f"{c.name} {c.accuracy:.2f} [{c.ci_low or 0:.2f}, {c.ci_high or 1:.2f}]" for c in best
                      if c.accuracy is not None) or "none judged"
    return (f"no criterion agrees with people better than chance on the {n_seeds} seed pairs with a margin its 95% "
            f"interval supports ({len(tried)} criteria tried; best: {shown}). The worker model ({worker_model}) may "
            "be too weak to judge this task: try a 7B+ model on a vLLM server (--base-url URL --worker-model MODEL; "
            "the embedded qwen2.5-coder-1.5b was no better than the 0.5B on argument pairs), or label more seed "
            "pairs so the interval can narrow. The criteria written are not evidence of anything yet.")
