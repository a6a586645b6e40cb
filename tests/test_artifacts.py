"""Each JSON file a command writes has one typed reader: it validates, and names the file in one line when not."""

from __future__ import annotations

import json

import pytest

from critmine.artifacts import EvalResult, JudgeSummary, RunRecord, ScorerMeta, ScoreSummary, SelectSummary
from critmine.config import MineConfig
from critmine.io import InputError


@pytest.mark.parametrize("model", [ScorerMeta, JudgeSummary, ScoreSummary, SelectSummary, EvalResult, MineConfig,
                                   RunRecord])
def test_a_missing_or_broken_artifact_is_one_line_naming_the_file(tmp_path, model):
    f = tmp_path / "x.json"
    with pytest.raises(InputError, match=f"^{f}: no such"):
        model.read(f)
    for text in ("{not json", '{"rows": "many", "settings": 3, "phases": 3}', "[]"):
        f.write_text(text)
        with pytest.raises(InputError) as e:
            model.read(f)
        assert str(e.value).startswith(f"{f}: not a ") and "\n" not in str(e.value)


def test_a_summary_round_trips_and_keeps_what_a_newer_critmine_added(tmp_path):
    s = SelectSummary(documents=10, kept=3, tokens=100, kept_tokens=40, tau=1.0, seed=0, fraction=0.3,
                      scored="s", out="o")
    s.write(tmp_path / "s.json")
    written = json.loads((tmp_path / "s.json").read_text())
    assert "budget_tokens" not in written and written["kept"] == 3  # unset fields are absent, not null
    written["new_metric"] = 0.5
    (tmp_path / "s.json").write_text(json.dumps(written))
    again = SelectSummary.read(tmp_path / "s.json")
    assert again.kept == 3 and again.model_dump()["new_metric"] == 0.5


def test_eval_result_says_n_a_for_metrics_that_do_not_apply(tmp_path):
    r = EvalResult(method="scorer (hashing)", n_pairs=2, flow_soft={"accuracy": 0.5, "n_judged": 2},
                   flow_majority=None, swap_consistency=None, pairs="p")
    r.write(tmp_path / "eval.json")
    back = EvalResult.read(tmp_path / "eval.json")
    assert back.flow_majority is None and back.swap_consistency is None and back.flow_soft.accuracy == 0.5


def test_a_scorer_json_without_its_format_is_not_a_scorer(tmp_path):
    f = tmp_path / "scorer.json"
    f.write_text(json.dumps({"features": "hashing", "trained_on": "p.jsonl", "n_train": 3}))
    with pytest.raises(InputError, match="not a scorer.json of a scorer"):
        ScorerMeta.read(f)
