"""Forward selection and fitted weights (agents/ensemble.py) on seed pairs built so the right answer is known."""

import random

import numpy as np
import pytest

from critmine.agents import ensemble
from critmine.agents.scoring import Voter, margin_scale, votes
from critmine.records import Criterion, Pair


def _seeds(n=40):
    rng = random.Random(7)
    return [Pair(id=f"s{i}", a="x", b="y", better=rng.choice("ab")) for i in range(n)]


def _table(pairs, right, margin=0.2, rng=None):
    """A criterion right on the pairs `right(i)` says, with soft margin `margin` (random size when rng is given)."""
    out = {}
    for i, p in enumerate(pairs):
        m = margin if rng is None else rng.uniform(0.02, margin)
        says_a = (p.better == "a") == right(i)
        q = 0.5 + m if says_a else 0.5 - m
        out[p.id] = [q, 1 - q, 0.0, "a" if says_a else "b"]
    return out


def _crit(name, acc):
    return Criterion(name=name, description=f"{name} criterion for tests", seed_accuracy=acc, ci_low=acc - 0.15,
                     scale=0.2)


def test_forward_selection_keeps_what_raises_cross_validated_accuracy_and_drops_noise():
    pairs = _seeds()
    rng = random.Random(1)
    tables = {"strong@v1": _table(pairs, lambda i: i % 10 != 0),  # right on 36 of 40
              "noise@v1": _table(pairs, lambda i: rng.random() < 0.5),
              "copy@v1": _table(pairs, lambda i: i % 10 != 0)}
    cands = [_crit("noise", 0.6), _crit("copy", 0.9), _crit("strong", 0.9)]
    chosen = ensemble.choose(cands, tables, pairs, max_n=3, min_n=1)
    names = [c.name for c in chosen.criteria]
    assert len(names) == 1 and names[0] in ("strong", "copy")  # a second copy or noise adds nothing
    assert chosen.cv_accuracy == 0.9 and chosen.steps[0]["added"] == names[0]
    # min_n forces a readable set even when the additions do not help.
    assert len(ensemble.choose(cands, tables, pairs, max_n=3, min_n=3).criteria) == 3


def test_fitted_weights_trust_the_criterion_that_is_right_more_often():
    pairs = _seeds(60)
    rng = random.Random(3)
    # Both criteria's margins are on one scale (divided by their spread, as mining measures it); "weak" is right on
    # 55% of the pairs, "good" on 85%. With equal votes, every disagreement is a coin toss decided by whose margin
    # happens to be wider; fitted weights learn to trust "good".
    tables = {"weak@v1": _table(pairs, lambda i: i % 20 < 11, margin=0.4, rng=rng),
              "good@v1": _table(pairs, lambda i: i % 20 not in (0, 1, 2), margin=0.4, rng=rng)}
    cands = [Criterion(name=n, description=f"{n} criterion for tests", seed_accuracy=a, ci_low=a - 0.2,
                       scale=margin_scale(tables[f"{n}@v1"])) for n, a in (("good", 0.85), ("weak", 0.55))]
    gold = {p.id: p.better for p in pairs}

    def acc(crits):
        pred = votes([tables[c.key] for c in crits], list(gold), [Voter.of(c) for c in crits])
        return sum(pred[i]["soft"] == gold[i] for i in gold) / len(gold)

    assert acc(cands) < 0.8
    chosen = ensemble.choose(cands, tables, pairs, max_n=2, min_n=2, rules=("fitted",))
    w = {c.name: c.weight for c in chosen.criteria}
    assert chosen.rule == "fitted" and w.get("weak", 0.0) < w["good"] / 3
    assert acc(chosen.criteria) >= 0.85
    # With both rules on offer, the cross-validated choice is the fitted one here.
    both = ensemble.choose(cands, tables, pairs, max_n=2, min_n=2)
    assert both.rule == "fitted" and both.cv_by_rule["fitted"] > both.cv_by_rule["mean"]


def test_weights_are_non_negative_and_regularised():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(30, 3))
    y = np.sign(x[:, 0] - x[:, 1] + 0.1)  # the second feature is anti-correlated: its weight stays at 0
    w_weak, w_strong = ensemble.fit_weights(x, y, 0.01), ensemble.fit_weights(x, y, 100.0)
    assert (w_weak >= 0).all() and w_weak[1] == 0.0 and w_weak[0] > w_weak[2]
    assert np.linalg.norm(w_strong) < np.linalg.norm(w_weak) / 10


def test_weighed_lets_a_dominant_criterion_carry_the_vote_that_equal_weights_dilute():
    # As on learner sentences: a fluency measure right on 95% of the pairs, two verbal criteria near chance whose
    # margins are as wide. Equal weights let the weak pair outvote it; the seeds' weights do not, and a criterion
    # fitted to weight 0 is left out of the vote.
    seeds, test = _seeds(30), [Pair(id=f"t{i}", a="x", b="y", better=random.Random(i).choice("ab")) for i in range(200)]
    rng = random.Random(5)
    rules = {"fluency": lambda i: i % 20 != 0, "weak1": lambda i: rng.random() < 0.55,
             "weak2": lambda i: rng.random() < 0.55}
    seed_tables = {f"{n}@v1": _table(seeds, r, margin=0.4, rng=rng) for n, r in rules.items()}
    test_tables = {f"{n}@v1": _table(test, r, margin=0.4, rng=rng) for n, r in rules.items()}
    cands = [Criterion(name=n, description=f"{n} criterion for tests", seed_accuracy=0.6, ci_low=0.45,
                       scale=margin_scale(seed_tables[f"{n}@v1"])) for n in rules]
    gold = {p.id: p.better for p in test}

    def acc(crits):
        pred = votes([test_tables[c.key] for c in crits], list(gold), [Voter.of(c) for c in crits])
        return sum(pred[i]["soft"] == gold[i] for i in gold) / len(gold)

    chosen = ensemble.weighed(cands, seed_tables, seeds)
    w = {c.name: c.weight for c in chosen.criteria}
    assert chosen.rule == "fitted" and chosen.cv_by_rule["fitted"] > chosen.cv_by_rule["mean"]
    assert w["fluency"] > 2 * max(w.get("weak1", 0.0), w.get("weak2", 0.0))
    assert abs(sum(w.values()) / len(w) - 1.0) < 1e-6  # the kept weights have mean 1
    assert acc(chosen.criteria) >= 0.9 > acc(cands) + 0.1
    summary = chosen.summary()
    assert summary["forward_steps"] == [] and summary["weights"] == w


def test_weighed_keeps_equal_weights_when_fitting_does_not_cross_validate_better():
    # Three criteria right on the same 90% of the pairs: nothing to learn, so the simpler rule stays.
    pairs = _seeds(30)
    tables = {f"c{k}@v1": _table(pairs, lambda i: i % 10 != 0) for k in range(3)}
    cands = [_crit(f"c{k}", 0.9) for k in range(3)]
    chosen = ensemble.weighed(cands, tables, pairs)
    assert chosen.rule == "mean" and [c.weight for c in chosen.criteria] == [1.0, 1.0, 1.0]
    assert ensemble.weighed(cands, tables, []).criteria == [c.model_copy(update={"weight": 1.0}) for c in cands]


@pytest.mark.parametrize(("mean", "fitted", "expected"), [
    (0.700, 0.767, "mean"),  # argument's seeds: 2 pairs of 30, under one standard error (0.084)
    (0.767, 0.800, "mean"),  # forum's: 1 pair
    (0.800, 0.967, "fitted"),  # learner's: 5 pairs, twice the standard error (0.073)
])
def test_fitted_weights_must_beat_equal_ones_by_one_standard_error(monkeypatch, mean, fitted, expected):
    monkeypatch.setattr(ensemble, "cv_accuracy", lambda x, v, y, f, rule, l2=None: mean if rule == "mean" else fitted)
    seeds = (np.zeros((30, 2)), np.ones((30, 2), bool), np.ones(30), np.arange(30) % 5)  # x, voted, y, folds
    rule, l2, acc, by_rule = ensemble.best_rule(*seeds)
    assert rule == expected and by_rule == {"mean": mean, "fitted": fitted}
    assert acc == (mean if expected == "mean" else fitted) and (l2 is None) == (expected == "mean")
    assert ensemble.best_rule(*seeds, ("fitted",))[0] == "fitted"  # nothing simpler on offer: no margin applies
    assert ensemble.best_rule(*seeds, margin_se=0.0)[0] == "fitted"  # the rule before the margin
