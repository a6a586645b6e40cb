from __future__ import annotations

import math

import pytest

from critmine.agents.annotate import label
from critmine.agents.scoring import Voter, band_of, soft_vote, votes
from critmine.agents.worker import Worker, letter_probs, truncate_middle
from critmine.eval.metrics import agreement, cohen_kappa, paired_difference, wilson_interval
from critmine.records import Judgment


def test_wilson_interval_matches_the_textbook_value():
    lo, hi = wilson_interval(8, 10)  # p = 0.8, n = 10 → [0.490, 0.943]
    assert lo == pytest.approx(0.4902, abs=1e-4) and hi == pytest.approx(0.9433, abs=1e-4)
    assert wilson_interval(0, 0) == (0.0, 1.0)
    for n in range(1, 200):  # the interval always contains the observed proportion, at 0 and 1 too
        for k in (0, n // 3, n):
            lo, hi = wilson_interval(k, n)
            assert lo <= k / n <= hi


def test_agreement_skips_abstentions_and_kappa():
    assert agreement(["a", "none", "b", "b"], ["a", "a", "a", "b"]) == (2, 3, 4)
    assert cohen_kappa(["a", "b", "a", "b"], ["a", "b", "a", "b"]) == 1.0
    assert cohen_kappa(["a", "a", "b", "b"], ["a", "b", "a", "b"]) == 0.0


def test_bands():
    assert [band_of(x, 0.5, 0.75) for x in (None, 0.5, 0.6, 0.75, 0.9)] == ["low", "low", "mid", "good", "good"]


def test_letter_probs_merge_token_variants_and_normalise():
    import math
    pa, pb, pn = letter_probs({"A": math.log(0.3), " A": math.log(0.1), "B": math.log(0.4), "The": math.log(0.2)})
    assert (pa, pb, pn) == pytest.approx((0.5, 0.5, 0.0))
    assert letter_probs({"The": -0.1}) is None


def test_combining_orders_cancels_position_bias():
    # A model that always prefers the first position: p(A)=0.7 in both orders → no preference for either side.
    ab = Judgment(pair_id="p", criterion="c", version=1, order="ab", p_a=0.7, p_b=0.3, p_none=0.0, verdict="a")
    ba = Judgment(pair_id="p", criterion="c", version=1, order="ba", p_a=0.3, p_b=0.7, p_none=0.0, verdict="b")
    both = Worker.combine([ab, ba])
    assert (both.p_a, both.p_b, both.verdict) == (0.5, 0.5, "none")
    failed = ab.model_copy(update={"failed": True})
    assert Worker.combine([failed, ba]).verdict == "b"


def test_a_pairs_margin_does_not_depend_on_how_hard_the_worker_leans_to_the_first_letter():
    """A worker whose odds of a over b are e^s, times e^lean for whichever text it reads first: the geometric
    combination gives p_a = σ(s) whatever the lean; the arithmetic mean of the orders pins it near ½ as the lean
    grows (a small model sure of "A" in both orders), so the pair's margin would say more about the lean than the
    texts."""
    def orders(s, lean):
        sig = lambda x: 1 / (1 + math.exp(-x))  # noqa: E731
        ab = Judgment(pair_id="p", criterion="c", version=1, order="ab", p_a=sig(s + lean), p_b=1 - sig(s + lean),
                      p_none=0.0)
        ba = Judgment(pair_id="p", criterion="c", version=1, order="ba", p_a=sig(s - lean), p_b=1 - sig(s - lean),
                      p_none=0.0)
        return [ab, ba]

    for lean in (0.0, 2.0, 4.0):
        assert Worker.combine(orders(1.0, lean)).p_a == pytest.approx(1 / (1 + math.exp(-1.0)))
    old = [Worker.combine(orders(1.0, lean), geometric=False).p_a for lean in (0.0, 2.0, 4.0)]
    assert old[0] == pytest.approx(0.731, abs=1e-3) and old[2] < 0.53  # the rule before: the lean ate the margin
    with_none = orders(1.0, 3.0)
    for j in with_none:
        j.p_a, j.p_b, j.p_none = 0.5 * j.p_a, 0.5 * j.p_b, 0.5
    both = Worker.combine(with_none)
    assert (both.p_a + both.p_b + both.p_none, both.p_none) == pytest.approx((1.0, 0.5)) and both.verdict == "none"


def test_votes_soft_and_majority_can_differ():
    t1 = {"p": [0.9, 0.1, 0.0, "a"]}
    t2 = {"p": [0.45, 0.55, 0.0, "b"]}
    t3 = {"p": [0.4, 0.6, 0.0, "b"]}
    v = votes([t1, t2, t3], ["p"])["p"]
    # No scales measured: each margin q − ½ counts in units of 0.25, and the logistic turns their mean into p(a).
    z = ((0.9 - 0.5) + (0.45 - 0.5) + (0.4 - 0.5)) / 0.25 / 3
    assert v["soft"] == "a" and v["majority"] == "b" and v["margin"] == pytest.approx(1 / (1 + math.exp(-z)) - 0.5)
    # With scales, a criterion whose margins are always small weighs as much as one whose margins are wide.
    w = votes([t1, t2, t3], ["p"], [Voter(0.4), Voter(0.05), Voter(0.1)])["p"]
    assert w["soft"] == "b"  # (0.4/0.4 − 0.05/0.05 − 0.1/0.1) / 3 < 0
    # Weights from criteria.json tip it back: (3·1 − 1 − 1) / 5 > 0; a weight of 0 is no vote at all.
    fitted = votes([t1, t2, t3], ["p"], [Voter(0.4, 3.0), Voter(0.05), Voter(0.1)])["p"]
    assert fitted["soft"] == "a" and fitted["margin"] == pytest.approx(1 / (1 + math.exp(-1 / 5)) - 0.5)
    assert votes([t1, t2, t3], ["p"], [Voter(0.4, 0.0), Voter(0.05), Voter(0.1)])["p"]["margin"] == \
        pytest.approx(1 / (1 + math.exp(2 / 2)) - 0.5)


def test_truncate_keeps_head_and_tail():
    t = truncate_middle("H" * 100 + "T" * 100, 60)
    assert t.startswith("H" * 40) and t.endswith("T" * 20) and "140 characters omitted" in t


def test_mining_eval_and_judge_aggregate_with_one_rule():
    # Criterion x abstains with a wide raw margin (p_a − p_b = 0.3); y and z vote. The old mining rule, the sum of
    # p_a − p_b over all criteria, said "a" here (0.3 − 0.1 − 0.1 > 0); the shared rule leaves x out and says "b".
    tables = {"x": {"p": [0.35, 0.05, 0.6, "none"]}, "y": {"p": [0.3, 0.4, 0.3, "b"]},
              "z": {"p": [0.4, 0.5, 0.1, "b"]}}
    scales = {"x": 0.3, "y": 0.02, "z": 0.05}
    pred = votes(tables.values(), ["p"], [Voter(s) for s in scales.values()])["p"]
    z = ((0.3 / 0.7 - 0.5) / 0.02 + (0.4 / 0.9 - 0.5) / 0.05) / 2
    expected = 1 / (1 + math.exp(-z))
    assert pred["soft"] == "b" and abs(pred["margin"] - (expected - 0.5)) < 1e-12
    record = {"votes": {k: {"p_a": t["p"][0], "p_b": t["p"][1], "p_none": t["p"][2], "verdict": t["p"][3],
                            "failed": False} for k, t in tables.items()}}
    lab = label(record, {k: Voter(s) for k, s in scales.items()})
    assert lab["p_a"] == round(expected, 6) and lab["n_voting"] == 2
    assert soft_vote([(0.2, 0.1, "none", Voter())]) is None


def test_paired_difference_counts_disagreements_and_brackets_the_difference():
    labels = {f"p{i}": "a" for i in range(40)}
    first = {f"p{i}": "a" if i < 30 else "b" for i in range(40)}  # 30 right
    second = {f"p{i}": "a" if i < 20 else "none" for i in range(40)}  # 20 right, 20 abstentions (not right)
    d = paired_difference(first, second, labels)
    assert d["n"] == 40 and d["difference"] == 0.25 and (d["only_first"], d["only_second"]) == (10, 0)
    assert 0 < d["ci_low"] < 0.25 < d["ci_high"] < 0.5
    assert d["mcnemar_p"] == 2 / 2**10
    same = paired_difference(first, first, labels)
    assert same["difference"] == same["ci_low"] == same["ci_high"] == 0 and same["mcnemar_p"] == 1.0
