"""Which criteria vote, and with what weight: fitted on the seed pairs, with or without greedy forward selection.

Features are each criterion's scaled soft margin on a pair (scoring.soft_margin / its scale; 0 where it
abstained). Two rules compete on the seed pairs by k-fold cross-validation: "mean" (equal weights: the soft vote
with nothing fitted) and "fitted" (non-negative weights of a logistic model without intercept, strongly
L2-regularised, the strength chosen by the same folds); "fitted" is chosen only when it beats "mean" by more than
one standard error (best_rule). `weighed` (mining's default) weighs every candidate so;
`choose` (forward selection) adds criteria one at a time, each time the one that raises the cross-validated
accuracy most, and stops when nothing raises it (after `min_n`). The cross-validated accuracy is what the choice
saw, so it is optimistic; held-out pairs (`critmine eval`) are the honest figure.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np
from scipy.optimize import minimize

from critmine.agents.scoring import DEFAULT_SCALE, Result, fold_of, soft_margin
from critmine.records import Criterion, Pair

L2_GRID = (1.0, 4.0, 16.0)  # penalty per unit of weight², relative to the number of training pairs / 30
FOLDS = 5
RULES = ("mean", "fitted")
MARGIN_SE = 1.0  # "fitted" must beat "mean" by this many standard errors (best_rule)


@dataclass
class Ensemble:
    """The chosen criteria (with `weight` set), the rule, and the cross-validated figures that chose them."""

    criteria: list[Criterion]
    rule: str = "mean"
    l2: float | None = None
    cv_accuracy: float | None = None
    cv_by_rule: dict[str, float] = field(default_factory=dict)
    steps: list[dict] = field(default_factory=list)

    def summary(self) -> dict:
        return {"rule": self.rule, "l2": self.l2, "cv_accuracy": self.cv_accuracy, "cv_by_rule": self.cv_by_rule,
                "folds": FOLDS, "forward_steps": self.steps,
                "weights": {c.name: c.weight for c in self.criteria}}


def features(tables: Sequence[Mapping[str, Result]], scales: Sequence[float | None], pairs: Sequence[Pair]
             ) -> tuple[np.ndarray, np.ndarray]:
    """(X, voted): X[i, j] = criterion j's scaled margin on pair i (0 where it abstained); voted marks the votes."""
    x = np.zeros((len(pairs), len(tables)))
    voted = np.zeros_like(x, dtype=bool)
    for j, (t, s) in enumerate(zip(tables, scales, strict=True)):
        for i, p in enumerate(pairs):
            if p.id in t and (m := soft_margin(t[p.id][0], t[p.id][1], t[p.id][3])) is not None:
                x[i, j], voted[i, j] = m / (s or DEFAULT_SCALE), True
    return x, voted


def fit_weights(x: np.ndarray, y: np.ndarray, l2: float) -> np.ndarray:
    """Non-negative weights w minimising Σ log(1 + exp(−y·xw)) + l2·(n/30)·|w|² (y = ±1, no intercept: swapping
    a and b must flip the vote)."""
    lam = l2 * len(y) / 30.0

    def loss(w: np.ndarray) -> tuple[float, np.ndarray]:
        m = y * (x @ w)
        value = float(np.logaddexp(0.0, -m).sum() + lam * w @ w)
        grad = -(x.T @ (y * _sigmoid(-m))) + 2 * lam * w
        return value, grad

    w0 = np.full(x.shape[1], 0.5)
    res = minimize(loss, w0, jac=True, method="L-BFGS-B", bounds=[(0.0, None)] * x.shape[1])
    return np.asarray(res.x)


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * z))


def _score(s: np.ndarray, y: np.ndarray) -> float:
    """Accuracy of signs s against y, a tie counting half."""
    return float(np.where(s == 0, 0.5, (np.sign(s) == y).astype(float)).mean())


def _predict(x: np.ndarray, voted: np.ndarray, w: np.ndarray) -> np.ndarray:
    """The soft vote's sign-bearing value: Σ w·x over the criteria that voted (its sign is the weighted mean's)."""
    return (x * voted) @ w


def cv_accuracy(x: np.ndarray, voted: np.ndarray, y: np.ndarray, folds: np.ndarray, rule: str,
                l2: float | None = None) -> float:
    """k-fold accuracy of a rule; "mean" has nothing to fit, so it is the plain accuracy of equal weights."""
    if rule == "mean":
        return _score(_predict(x, voted, np.ones(x.shape[1])), y)
    s = np.zeros(len(y))
    for k in np.unique(folds):
        train, test = folds != k, folds == k
        w = fit_weights(x[train], y[train], l2 or L2_GRID[-1]) if train.any() else np.ones(x.shape[1])
        s[test] = _predict(x[test], voted[test], w)
    return _score(s, y)


def best_rule(x: np.ndarray, voted: np.ndarray, y: np.ndarray, folds: np.ndarray, rules: Sequence[str] = RULES,
              margin_se: float = MARGIN_SE) -> tuple[str, float | None, float, dict[str, float]]:
    """(rule, l2, its cv accuracy, cv accuracy per rule). The simpler rule wins unless the fitted one is better by
    more than `margin_se` standard errors of the mean rule's accuracy on these pairs (the one-standard-error rule):
    on 30 seeds a pair or two going the fitted way is noise. Among the l2 strengths, ties go to the stronger."""
    options = [("mean", None)] * ("mean" in rules) + [("fitted", l2) for l2 in sorted(L2_GRID, reverse=True)
                                                       if "fitted" in rules]
    scored = [(cv_accuracy(x, voted, y, folds, r, l2), -i, r, l2) for i, (r, l2) in enumerate(options)]
    acc, _, rule, l2 = max(scored)
    by_rule = {r: max(a for a, _, rr, _ in scored if rr == r) for r in {o[0] for o in options}}
    if rule != "mean" and "mean" in by_rule:
        mean = by_rule["mean"]
        if acc - mean <= margin_se * standard_error(mean, len(y)):
            rule, l2, acc = "mean", None, mean
    return rule, l2, acc, by_rule


def standard_error(accuracy: float, n: int) -> float:
    """The binomial standard error of an accuracy measured on n pairs."""
    return math.sqrt(accuracy * (1.0 - accuracy) / n) if n else 0.0


class Weighing(NamedTuple):
    rule: str
    l2: float | None
    cv_accuracy: float
    cv_by_rule: dict[str, float]
    weights: np.ndarray  # mean 1 when fitted; all 1 for "mean"


def weigh(x: np.ndarray, voted: np.ndarray, y: np.ndarray, folds: np.ndarray,
          rules: Sequence[str] = RULES, margin_se: float = MARGIN_SE) -> Weighing:
    """The rule the folds prefer (best_rule) and the weights it gives these criteria on all the pairs."""
    rule, l2, acc, by_rule = best_rule(x, voted, y, folds, rules, margin_se)
    weights = np.ones(x.shape[1])
    if rule == "fitted":
        w = fit_weights(x, y, l2 or L2_GRID[-1])
        weights = w / w.mean() if w.sum() > 1e-12 else weights
    return Weighing(rule, l2, acc, by_rule, weights)


def targets(labelled: Sequence[Pair]) -> tuple[np.ndarray, np.ndarray]:
    """The labelled pairs' outcomes (+1: a is better, -1: b) and their cross-validation folds."""
    return (np.array([1.0 if p.better == "a" else -1.0 for p in labelled]),
            np.array([fold_of(p.id, FOLDS) for p in labelled]))


def weigh_on(criteria: Sequence[Criterion], tables: Mapping[str, Mapping[str, Result]], pairs: Sequence[Pair],
             rules: Sequence[str] = RULES, margin_se: float = MARGIN_SE) -> Weighing | None:
    """weigh() for `criteria` as judged in `tables` on the labelled `pairs`; None when there is nothing to weigh."""
    labelled = [p for p in pairs if p.better in ("a", "b")]
    if not criteria or not labelled:
        return None
    x, voted = features([tables.get(c.key, {}) for c in criteria], [c.scale for c in criteria], labelled)
    return weigh(x, voted, *targets(labelled), rules, margin_se)


def weighed(candidates: Sequence[Criterion], tables: Mapping[str, Mapping[str, Result]], pairs: Sequence[Pair],
            rules: Sequence[str] = RULES, margin_se: float = MARGIN_SE) -> Ensemble:
    """Every candidate, weighed as the seeds' k-fold prefers (weigh_on: equal weights, or non-negative fitted ones);
    a criterion fitted to weight 0 does not vote and is left out. The kept weights have mean 1."""
    weighing = weigh_on(candidates, tables, pairs, rules, margin_se)
    if weighing is None:
        return Ensemble(criteria=[c.model_copy(update={"weight": 1.0}) for c in candidates])
    kept = [(c, float(w)) for c, w in zip(candidates, weighing.weights, strict=True) if w > 1e-6]
    mean = sum(w for _, w in kept) / len(kept) if kept else 1.0
    return Ensemble(criteria=[c.model_copy(update={"weight": round(w / mean, 6)}) for c, w in kept],
                    rule=weighing.rule, l2=weighing.l2, cv_accuracy=weighing.cv_accuracy,
                    cv_by_rule=weighing.cv_by_rule)


def choose(candidates: Sequence[Criterion], tables: Mapping[str, Mapping[str, Result]], pairs: Sequence[Pair], *,
           max_n: int, min_n: int, rules: Sequence[str] = RULES) -> Ensemble:
    """Greedy forward selection of the voting criteria by cross-validated ensemble accuracy (see module doc)."""
    labelled = [p for p in pairs if p.better in ("a", "b")]
    if not candidates or not labelled:
        return Ensemble(criteria=[c.model_copy(update={"weight": 1.0}) for c in candidates[:max_n]])
    y, folds = targets(labelled)
    x_all, voted_all = features([tables.get(c.key, {}) for c in candidates], [c.scale for c in candidates], labelled)
    chosen: list[int] = []
    best = -math.inf
    steps: list[dict] = []
    while len(chosen) < min(max_n, len(candidates)):
        trials = []
        for j in (j for j in range(len(candidates)) if j not in chosen):
            cols = chosen + [j]
            rule, l2, acc, _ = best_rule(x_all[:, cols], voted_all[:, cols], y, folds, rules)
            # Ties: the criterion that is right more often on its own (the evidence ranking).
            trials.append((acc, candidates[j].ci_low or 0.0, candidates[j].seed_accuracy or 0.0, -j, j))
        acc, *_, j = max(trials)
        if acc <= best + 1e-9 and len(chosen) >= min_n:
            break
        chosen.append(j)
        best = max(best, acc)
        steps.append({"added": candidates[j].name, "cv_accuracy": round(acc, 4)})
    final = weigh(x_all[:, chosen], voted_all[:, chosen], y, folds, rules)
    picked = [candidates[j].model_copy(update={"weight": round(float(w), 6)})
              for j, w in zip(chosen, final.weights, strict=True)]
    kept = [c for c in picked if c.weight > 1e-6] or picked
    return Ensemble(criteria=kept, rule=final.rule, l2=final.l2, cv_accuracy=final.cv_accuracy,
                    cv_by_rule=final.cv_by_rule, steps=steps)
