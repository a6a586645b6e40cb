"""Agreement statistics with honest uncertainty."""

from __future__ import annotations

import math
import random
from collections.abc import Iterable


def wilson_interval(correct: int, n: int, z: float = 1.959964) -> tuple[float, float]:
    """Wilson score 95% interval for a proportion; (0, 1) when n == 0."""
    if n == 0:
        return 0.0, 1.0
    p = correct / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    # The interval always contains p (floating point can put centre + half a hair below 1 when p == 1).
    return max(0.0, min(p, centre - half)), min(1.0, max(p, centre + half))


def agreement(predictions: Iterable[str], labels: Iterable[str]) -> tuple[int, int, int]:
    """(correct, judged, total): predictions of "none" are abstentions and are not judged."""
    correct = judged = total = 0
    for pred, gold in zip(predictions, labels, strict=True):
        total += 1
        if pred in ("a", "b"):
            judged += 1
            correct += pred == gold
    return correct, judged, total


def agreement_stats(predictions: list[str], labels: list[str]) -> dict:
    """Accuracy over non-abstained predictions, Wilson 95% CI, coverage and Cohen's kappa on the judged ones."""
    correct, judged, total = agreement(predictions, labels)
    lo, hi = wilson_interval(correct, judged)
    kept = [(p, g) for p, g in zip(predictions, labels, strict=True) if p in ("a", "b")]
    kappa = cohen_kappa([p for p, _ in kept], [g for _, g in kept]) if kept else None
    return {"accuracy": correct / judged if judged else None, "n_correct": correct, "n_judged": judged,
            "coverage": judged / total if total else 0.0, "ci_low": lo, "ci_high": hi, "kappa": kappa}


def cohen_kappa(x: list[str], y: list[str]) -> float:
    """Cohen's kappa between two label sequences of equal length."""
    n = len(x)
    if n == 0:
        return 0.0
    cats = sorted(set(x) | set(y))
    po = sum(a == b for a, b in zip(x, y, strict=True)) / n
    pe = sum((x.count(c) / n) * (y.count(c) / n) for c in cats)
    return 1.0 if pe == 1 else (po - pe) / (1 - pe)


def paired_difference(first: dict[str, str], second: dict[str, str], labels: dict[str, str], *,
                      resamples: int = 4000, seed: int = 0) -> dict:
    """Accuracy of `first` minus accuracy of `second` on the same pairs (pair id → "a" | "b" | "none"; an
    abstention counts as not correct), with a paired bootstrap 95% interval (pairs resampled together), and the
    exact McNemar (sign) test on the pairs where exactly one of the two is right."""
    ids = [i for i in labels if i in first and i in second]
    a = [first[i] == labels[i] for i in ids]
    b = [second[i] == labels[i] for i in ids]
    n = len(ids)
    if not n:
        return {"n": 0, "difference": None, "ci_low": None, "ci_high": None, "only_first": 0, "only_second": 0,
                "mcnemar_p": None}
    d = [int(x) - int(y) for x, y in zip(a, b, strict=True)]
    rng = random.Random(seed)
    boots = sorted(sum(d[rng.randrange(n)] for _ in range(n)) / n for _ in range(resamples))
    only_a, only_b = d.count(1), d.count(-1)
    k, m = min(only_a, only_b), only_a + only_b
    p = min(1.0, 2 * sum(math.comb(m, i) for i in range(k + 1)) / 2**m) if m else 1.0
    return {"n": n, "difference": sum(d) / n, "ci_low": boots[int(0.025 * resamples)],
            "ci_high": boots[int(0.975 * resamples) - 1], "only_first": only_a, "only_second": only_b,
            "mcnemar_p": p}
