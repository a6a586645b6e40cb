"""Agreement statistics with honest uncertainty."""

from __future__ import annotations

import math
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
