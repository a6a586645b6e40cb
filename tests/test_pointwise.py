"""eval/benchmarks/pointwise.py: a text's Yes/No score, and the pair accuracy and vote built from the scores."""

from __future__ import annotations

import math

import pytest

from critmine.records import Pair
from eval.benchmarks.pointwise import accuracy, vote, yes_score


def test_yes_score_is_the_log_odds_of_yes_over_no_whatever_the_token_spelling():
    assert yes_score({"Yes": math.log(0.6), " yes": math.log(0.2), "No": math.log(0.2)}) == pytest.approx(
        math.log(0.8 / 0.2))
    assert yes_score({"No": math.log(0.9), "A": math.log(0.1)}) < -10  # Yes absent: floored, not infinite
    assert yes_score({"A": 0.0}) is None and yes_score(None) is None


def test_accuracy_counts_ties_and_missing_margins_as_half():
    pairs = [Pair(id=str(i), a="x", b="y", better=b) for i, b in enumerate("aabb")]
    assert accuracy([1.0, -1.0, -2.0, None], pairs) == pytest.approx((1 + 0 + 1 + 0.5) / 4)
    assert accuracy([0.0, 0.0, 0.0, 0.0], pairs) == 0.5


def test_vote_scales_each_criterion_so_wide_margins_do_not_outvote_narrow_ones():
    wide, narrow = [10.0, -10.0, 10.0, -10.0], [-1.0, 1.0, -1.0, 1.0]
    assert vote([wide, narrow]) == pytest.approx([0.0] * 4)  # equal and opposite once scaled (unscaled: wide wins)
    assert vote([wide, [-1.0, 1.0, -1.0, 3.0]])[3] > 0  # where the narrow one leans hardest, it decides
    assert vote([[None, 2.0]]) == [0.0, pytest.approx(1.0)]
