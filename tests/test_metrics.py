from __future__ import annotations

import pytest

from critmine.agents.scoring import band_of, votes
from critmine.agents.worker import Worker, letter_probs, truncate_middle
from critmine.eval.metrics import agreement, cohen_kappa, wilson_interval
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


def test_votes_soft_and_majority_can_differ():
    t1 = {"p": [0.9, 0.1, 0.0, "a"]}
    t2 = {"p": [0.45, 0.55, 0.0, "b"]}
    t3 = {"p": [0.4, 0.6, 0.0, "b"]}
    v = votes([t1, t2, t3], ["p"])["p"]
    assert v["soft"] == "a" and v["majority"] == "b" and v["margin"] == pytest.approx(0.8 - 0.1 - 0.2)


def test_truncate_keeps_head_and_tail():
    t = truncate_middle("H" * 100 + "T" * 100, 60)
    assert t.startswith("H" * 40) and t.endswith("T" * 20) and "140 characters omitted" in t
