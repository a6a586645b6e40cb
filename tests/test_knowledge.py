"""The shipped knowledge base, retrieval in the flow, and growing a user knowledge base from runs."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from critmine.agents.knowledge import (
    DOMAIN_SIGNS,
    DOMAINS,
    add_run,
    applicable,
    domains_shown,
    load,
    near_duplicates,
    rank,
    shipped_path,
    shortlist,
)
from critmine.cli import main
from critmine.io import InputError
from critmine.measures import MEASURES
from tests.conftest import make_pairs, make_script
from tests.fake_server import FakeLLMServer


def test_shipped_knowledge_base_is_large_valid_and_free_of_near_duplicates():
    entries = load(shipped_path())  # validates every line against the schema
    assert len(entries) >= 120
    assert len({e.name for e in entries}) == len(entries)
    assert all(len(e.description) >= 80 for e in entries)  # what it is, how to judge, when it does not apply
    for domain in DOMAINS:
        assert sum(domain in e.domains for e in entries) >= 8, domain
    assert all(set(e.domains) <= set(DOMAINS) for e in entries)
    assert near_duplicates(entries, threshold=0.4) == []
    sources = " ".join(e.source for e in entries)
    for origin in ("QuRating", "DataMan", "FineWeb-Edu", "Meta-rater", "Gopher", "C4", "RefinedWeb"):
        assert origin in sources


def test_near_duplicate_check_catches_a_lightly_edited_copy():
    e = load(shipped_path())[0]
    twin = e.model_copy(update={"name": "polished_prose", "description": e.description.replace("engaging", "lively")})
    (found,) = near_duplicates([e, twin])
    assert found[:2] == (e.name, "polished_prose") and found[2] >= 0.8


def test_ranking_prefers_matching_criteria_within_domains():
    entries = load(shipped_path())
    top = [e.name for _, e in rank(entries, "the better answer is more thorough and covers the topic in depth")[:5]]
    assert "depth_of_coverage" in top
    assert all("code" in e.domains for _, e in rank(entries, "readable code", ["code"]))


def _mine(fake, seeds, out, *extra):
    return main(["mine", "--pairs", str(seeds), "--out", str(out), "--base-url", fake.base_url, "--model", "fake",
                 "--n-criteria", "4", "--retry-backoff", "0.01", *extra])


def test_retrieval_judges_candidates_on_the_seeds_and_keeps_the_good_ones(fake, seeds, tmp_path, caplog):
    caplog.set_level(logging.INFO)
    assert _mine(fake, seeds, tmp_path / "run", "--kb-max-candidates", "5", "--iterations", "0",
                 "--no-measures", "--kb-screen", "0") == 0
    data = json.loads((tmp_path / "run" / "criteria.json").read_text())
    cands = {c["name"]: c for c in data["knowledge_base_candidates"]}
    assert len(cands) == 5 and "depth_of_coverage" in cands  # the observation mentions "thorough"
    assert cands["depth_of_coverage"]["seed_accuracy"] == 10 / 12  # its description says "thorough"
    final = {c["name"]: c for c in data["criteria"]}
    assert final["depth_of_coverage"]["origin"] == "knowledge_base" and final["depth_of_coverage"]["source"]
    usage = json.loads((tmp_path / "run" / "usage.json").read_text())["phases"]
    assert usage["retrieve"]["calls"] == 12 * 5 * 2  # the cost of retrieval, shown on its own
    assert usage["judge"]["cached_calls"] >= 12 * 2  # kept candidates are re-scored from the cache
    assert any("seed accuracy of 5 retrieved candidates" in r.getMessage() for r in caplog.records)


def test_the_shortlist_holds_every_domains_core_criteria_whatever_the_manager_observed():
    ranked = [e for _, e in rank(load(shipped_path()), "economic growth developing nations faster pace")]
    short = [e.name for e in shortlist(ranked, 24)]
    assert len(short) == 24 and not any(e.measure for e in ranked if e.name in short)
    # A grammar task meets the grammar criteria even when the manager only saw topic words.
    assert {"grammatical_correctness", "spelling", "natural_phrasing"} <= set(short)
    cores = [e for e in load(shipped_path()) if e.core]
    assert {d for e in cores for d in e.domains} == set(DOMAINS) and set(short[: len(cores)]) == {e.name for e in cores}
    # Within the chosen domains only; a user's criterion with measured accuracy comes first.
    assert all("fluency" in e.domains for e in shortlist([e for _, e in rank(ranked, "", ["fluency"])], 10))
    measured = ranked[-1].model_copy(update={"accuracy": 0.8})
    assert shortlist(ranked[:-1] + [measured], 3)[0] is measured


PROSE = "I think the hotel was fine;\nthe staff were kind. We paid 50/50 for the room and left on time."  # one sign
CODE = "Try this:\n```python\nimport os\nprint(os.getcwd())\n```"
MATH = "Solve 2x + 3 = 7: subtract 3, so 2x = 4 and x = 2. Check: 2*2 + 3 = 7."


def test_code_and_math_criteria_apply_only_to_texts_that_show_code_or_math():
    data = Path(__file__).resolve().parents[1] / "data"
    bundled = [t for name in ("forum", "argument") for line in (data / name / "seed.jsonl").read_text().splitlines()
               for t in (json.loads(line)["a"], json.loads(line)["b"])]
    assert domains_shown(bundled) == set()  # people's prose: an emoticon, a URL or a "50/50" is no sign
    assert sum(len(rx.findall(PROSE)) for rx in DOMAIN_SIGNS.values()) == 1
    assert domains_shown([PROSE] * 20) == set()  # one accidental sign per text is not enough
    assert domains_shown([PROSE] * 18 + [CODE] * 2) == {"code"}
    assert domains_shown([PROSE] * 18 + [MATH] * 2) == {"math"}
    assert domains_shown([PROSE] * 39 + [CODE]) == set()  # one text of forty is an accident too
    entries = load(shipped_path())
    kept, absent = applicable(entries, [PROSE] * 10)
    names = {e.name for e in kept}
    assert absent == ["code", "math"] and "type_clarity" not in names and "correct_math_steps" not in names
    assert {"step_by_step_derivation", "grammatical_correctness"} <= names  # math and educational: kept
    assert len(applicable(entries, [CODE, MATH] * 5)[0]) == len(entries)


@pytest.mark.parametrize("tail, shown", [("", False), ("\n" + CODE, True)])
def test_the_screen_leaves_code_criteria_out_for_prose_seeds(fake, tmp_path, tail, shown):
    seeds = tmp_path / "seeds.jsonl"
    seeds.write_text("".join(json.dumps({**p, "a": p["a"] + tail, "b": p["b"] + tail}) + "\n" for p in make_pairs()))
    assert _mine(fake, seeds, tmp_path / "run", "--kb-screen", "200", "--kb-screen-pairs", "2", "--kb-max-candidates",
                 "3", "--iterations", "0", "--no-measures") == 0
    data = json.loads((tmp_path / "run" / "criteria.json").read_text())
    judged = {c["name"] for c in data["knowledge_base_candidates"] + data["knowledge_base_screened_out"]}
    code_only = {e.name for e in load(shipped_path()) if e.domains == ["code"] and not e.measure}
    assert (code_only <= judged) if shown else not (code_only & judged)
    assert "step_by_step_derivation" in judged and "correct_math_steps" not in judged  # no math either way


def test_the_screen_sends_only_the_best_of_the_shortlist_to_all_seed_pairs(fake, seeds, tmp_path):
    assert _mine(fake, seeds, tmp_path / "run", "--kb-screen", "20", "--kb-screen-pairs", "6", "--kb-max-candidates",
                 "3", "--iterations", "0", "--no-measures") == 0
    data = json.loads((tmp_path / "run" / "criteria.json").read_text())
    cands = {c["name"]: c for c in data["knowledge_base_candidates"]}
    screened_out = data["knowledge_base_screened_out"]
    assert len(cands) == 3 and len(screened_out) == 17 and all(c["screen_pairs"] == 6 for c in screened_out)
    # The one criterion whose description follows the people's rule wins the screen and goes on to all seeds.
    best = cands["depth_of_coverage"]
    assert best["seed_accuracy"] == 10 / 12
    assert all(c["screen_accuracy"] <= 0.5 for c in screened_out)
    usage = json.loads((tmp_path / "run" / "usage.json").read_text())["phases"]
    # 20 criteria × 6 pairs × 2 orders, then the 3 best on the 6 other seed pairs (the screened ones are cached).
    assert usage["retrieve"]["calls"] == 20 * 6 * 2 + 3 * 6 * 2
    assert usage["retrieve"]["cached_calls"] == 3 * 6 * 2


def test_computed_criteria_are_judged_without_the_llm_and_vote_with_the_others(fake, seeds, tmp_path):
    assert _mine(fake, seeds, tmp_path / "run", "--kb-max-candidates", "2", "--iterations", "0",
                 "--kb-max-initial", "1", "--kb-screen", "0") == 0
    data = json.loads((tmp_path / "run" / "criteria.json").read_text())
    cands = {c["name"]: c for c in data["knowledge_base_candidates"]}
    computed = {e.name for e in load(shipped_path()) if e.measure and e.domains != ["code"]}  # the seeds are prose
    assert computed <= set(cands) and len(cands) == len(computed) + 2  # every measure, plus 2 verbal candidates
    assert "more_code" not in cands
    assert cands["longer_text"]["seed_accuracy"] == 10 / 12  # the fake's people prefer the longer text, but twice
    usage = json.loads((tmp_path / "run" / "usage.json").read_text())["phases"]
    # The text measures cost no call; fluency reads each of the 24 seed texts once (its log-probabilities).
    assert usage["retrieve"]["calls"] == 12 * 2 * 2 + 12 * 2
    final = {c["name"]: c for c in data["criteria"]}
    (kept,) = [c for c in final.values() if c["origin"] == "knowledge_base"]
    assert kept["measure"] in MEASURES and kept["seed_accuracy"] == 10 / 12 and kept["scale"] > 0
    judged = [json.loads(x) for x in (tmp_path / "run" / "judgments.jsonl").read_text().splitlines()]
    assert {j["order"] for j in judged if j["criterion"] == kept["name"]} == {"both"}
    # The vote divides each criterion's margin by its spread on the seeds, so no criterion drowns the others.
    assert all(c["scale"] for c in final.values() if c["coverage"])


def test_kb_add_then_mine_with_kb_reuses_an_accepted_criterion(fake, seeds, tmp_path):
    assert _mine(fake, seeds, tmp_path / "first", "--no-kb") == 0
    user_kb = tmp_path / "my_kb.jsonl"
    assert main(["kb", "add", str(tmp_path / "first"), "--kb", str(user_kb), "--domain", "dialogue"]) == 0
    added = {e.name: e for e in load(user_kb)}
    assert added["thoroughness"].accuracy == 10 / 12 and added["thoroughness"].provenance["run"]
    assert added["thoroughness"].domains == ["dialogue"]
    assert _mine(fake, seeds, tmp_path / "second", "--kb", str(user_kb), "--kb-max-candidates", "3",
                 "--iterations", "0", "--no-measures") == 0
    final = json.loads((tmp_path / "second" / "criteria.json").read_text())["criteria"]
    reused = [c for c in final if c["origin"] == "knowledge_base" and c["source"] == "critmine mining run"]
    assert reused and {c["name"] for c in reused} <= set(added)
    assert all(c["description"] == added[c["name"]].description for c in reused)


def test_kb_add_refuses_the_shipped_file(tmp_path):
    with pytest.raises(InputError, match="refusing to write the shipped"):
        add_run(tmp_path, shipped_path(), [])


def test_a_short_proposal_is_filled_from_the_knowledge_base_ranked_by_evidence(seeds, tmp_path, caplog):
    caplog.set_level(logging.INFO)
    script = make_script()
    script.initial = script.replacements = [{"name": "edu_basic_relevance", "description": "The criterion"}]
    script.repeats_refused = True  # a small manager that proposes the refused stub again when asked again
    with FakeLLMServer(script) as fake:
        assert _mine(fake, seeds, tmp_path / "run", "--kb-max-candidates", "4", "--kb-max-initial", "1",
                     "--iterations", "0") == 0
        asked = fake.requests_for("proposal")
    data = json.loads((tmp_path / "run" / "criteria.json").read_text())
    judged = data["criteria"] + data["not_selected"]
    assert len(judged) == 4 and all(c["origin"] == "knowledge_base" for c in judged)
    # The retry repeated the refused stub: the manager was not asked a third time, and the stub is listed once.
    assert len(asked) == 2
    assert [r["name"] for r in data["refused"]] == ["edu_basic_relevance"]
    assert any("filled with" in r.getMessage() for r in caplog.records)
    # Candidates are ranked by the lower end of their interval: one that decided few seed pairs ranks below one
    # that decided them all, at the same accuracy.
    cands = data["knowledge_base_candidates"]
    keys = [(c["ci_low"], c["seed_accuracy"]) for c in cands]
    assert keys == sorted(keys, reverse=True)


def test_a_knowledge_base_entry_with_an_unknown_measure_is_refused_with_its_line(tmp_path):
    kb = tmp_path / "kb.jsonl"
    kb.write_text(json.dumps({"name": "longest", "description": "Prefer the longest text of all.",
                              "domains": ["general"], "source": "mine", "measure": "characters"}) + "\n")
    with pytest.raises(InputError, match=r"kb.jsonl:1: not a knowledge-base entry"):
        load(kb)
