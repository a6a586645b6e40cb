"""Vetting the manager's proposals: the failures seen on held-out sets are refused, real criteria pass."""

from __future__ import annotations

import asyncio
import logging
from types import SimpleNamespace

import pytest

from critmine.agents import knowledge
from critmine.agents.manager import Manager
from critmine.agents.vetting import Vetter
from critmine.records import Criterion

SEEDS = [
    "The faster pace economic growth, which can also be observed in a large number of developing nations, "
    "depends on investment.",
    "Economic growth in India and China has lifted millions out of poverty, says the report.",
    "Chinese markings on the products show where they were made.",
    "i think school uniform is good because everybody look same and nobody is bullied",
]
KB = [f"{e.name} {e.description}" for e in knowledge.load_all(None)]


@pytest.fixture(scope="module")
def vetter() -> Vetter:
    return Vetter(SEEDS, KB)


@pytest.mark.parametrize(("name", "description", "why"), [
    ("econom_growth", "The faster pace economic growth, which can also be observed in a large number of developing "
     "nations", "topic of the seed texts (econom, growth)"),
    ("economic_growth", "Prefer the text that discusses the economy of developing countries in depth.", "topic"),
    ("examples_of_chinese_markings", "Prefer the text that gives examples of markings found on products.", "topic"),
    ("clarity", "The faster pace economic growth, which can also be observed in a large number of developing nations",
     "copies a seed text"),
    ("edu_basic_relevance", "The criterion", "too short"),
    ("source_attribution", "The criterion 'source_attribution' is designed to evaluate the quality of claims made.",
     "talks about the criterion"),
    ("depth", "Prefer depth. People judged text A to be the better data because it covers more.", "one seed pair"),
    ("coverage", "Prefer the text that gives an overview of a country, like India, with its strengths and trade.",
     "names what the seed texts are about (India)"),
    ("logical_connective_strength", "Prefer the text that uses logical connectives in a stronger way, such as ",
     "stops mid-sentence ('… such as')"),
    ("completeness", "Prefer the text that covers every part of the question, including:", "stops mid-sentence"),
    ("word_count", "Word count is important for training data. The longer the text, the more words it contains. "
     "Equal within 2%.", "describes a measurement ('Equal within')"),
    ("mean_log_probability", "Mean log-probability per token under the worker model of each text.",
     "describes a measurement"),
])
def test_what_is_not_a_criterion_is_refused_with_the_reason(vetter, name, description, why):
    reason = vetter.refuse(Criterion(name=name, description=description), [])
    assert reason is not None and why in reason


def test_every_shipped_criterion_and_plain_proposals_pass(vetter):
    for e in knowledge.load_all(None):
        assert vetter.refuse(e.criterion(), []) is None, e.name  # a computed one may state its measure
    for name, desc in [("brevity", "Prefer the shorter text."),
                       ("logical_flow", "Prefer the text whose ideas follow each other in a logical order."),
                       ("counter_arguments", "Prefer the text that answers the opposing side's strongest objection.")]:
        assert vetter.refuse(Criterion(name=name, description=desc), []) is None, name


def test_near_duplicates_of_existing_criteria_are_refused(vetter):
    have = Criterion(name="evidence", description="Prefer the text that supports its claims with facts and examples.")
    twin = Criterion(name="support", description="Prefer the text that supports its claims with examples and facts.")
    other = Criterion(name="grammar", description="Prefer the text with fewer grammar and spelling mistakes.")
    assert vetter.refuse(twin, [have]) == "says what evidence says"
    assert vetter.refuse(have.model_copy(), [have]) == "repeats evidence"
    assert vetter.refuse(other, [have]) is None
    fluent = next(e.criterion() for e in knowledge.load_all(None) if e.name == "fluent_language")
    copied = Criterion(name="naturalness", description=fluent.description.split(":")[1].split(".")[0] + ".")
    assert vetter.refuse(copied, [fluent]).startswith("copies fluent_language's description ('")
    echo = "The better text is better data than the worse one because it provides more context and information"
    context = Criterion(name="context_quality", description=f"{echo} about the question being asked.")
    assert vetter.refuse(Criterion(name="lack_of_information", description=f"{echo} about the situation."),
                         [context]).startswith("copies context_quality's description")


def test_a_rewrite_is_held_to_the_same_rules(vetter):
    assert "too short" in vetter.refuse_description("The criterion")
    assert vetter.refuse_description("Prefer the text whose sentences are grammatical and complete.") is None


def test_a_name_must_name_a_quality(vetter):
    desc = "Prefer the text that explains its point with reasons and examples."
    assert "sentence" in vetter.refuse(Criterion(name="prefer_the_text_that_the_better_text_is_better",
                                                 description=desc), [])
    assert "no word" in vetter.refuse(Criterion(name="better_quality", description=desc), [])
    assert vetter.refuse(Criterion(name="explained_reasoning", description=desc), []) is None


def test_the_same_name_words_in_another_order_are_a_repeat(vetter):
    have = Criterion(name="more_information_and_context", description="Prefer the text that gives more context.")
    again = Criterion(name="more_context_and_information", description="Prefer the text with background and facts.")
    assert vetter.refuse(again, [have]) == "repeats more_information_and_context"


@pytest.mark.parametrize(("proposal", "kept", "repeat"), [
    ("fluency", "fluent_language", True),  # seen in a run: fluency beside the knowledge base's fluent_language
    ("coherent_structure", "coherence", True),
    ("detailed_context", "contextual_details", True),
    ("readable_text", "readability", True),
    ("content_depth", "context", False),
    ("lexical_variety", "richer_vocabulary", False),
    ("spelling", "grammatical_correctness", False),
    ("shorter_sentences", "more_sentences", False),  # the same noun, the other way round
    ("less_shouting", "no_shouting", False),
])
def test_a_name_that_says_what_a_kept_name_says_in_other_word_forms_is_a_repeat(vetter, proposal, kept, repeat):
    desc = "Prefer the text whose sentences read naturally and make their point plainly."
    have = Criterion(name=kept, description="Prefer the text that an attentive reader follows without effort.")
    reason = vetter.refuse(Criterion(name=proposal, description=desc), [have])
    assert (reason == f"repeats {kept}") is repeat, reason


class _RepeatingManagerLLM:
    """A manager LLM that answers every proposal request with the same refused stub, twice per answer."""

    def __init__(self):
        self.prompts: list[str] = []

    async def chat(self, messages, **_):
        self.prompts.append(messages[-1]["content"])
        stub = {"name": "econom_growth", "description": ""}
        return SimpleNamespace(failed=False, data={"criteria": [stub, stub]})


def test_a_refused_proposal_is_logged_and_recorded_once_across_answers_and_rounds(caplog):
    caplog.set_level(logging.INFO)
    llm = _RepeatingManagerLLM()
    manager = Manager(llm)
    for _ in range(2):  # two rounds of proposals, as two mining iterations ask
        assert asyncio.run(manager.propose(2, ["longer is better"], [], [])) == []
    # Round one: the first answer brings the stub twice, the retry only repeats it, so asking stops there.
    # Round two: the manager is told of the earlier refusal, repeats it, and is not asked again.
    assert len(llm.prompts) == 3
    assert "Proposals refused" not in llm.prompts[0] and "- econom_growth: empty" in llm.prompts[2]
    lines = [r.getMessage() for r in caplog.records if "refused" in r.getMessage()]
    assert lines == ["manager's proposal 'econom_growth' refused: empty"]
    assert [(r["name"], r["kind"]) for r in manager.take_refused()] == [("econom_growth", "proposal")]


def test_a_resumed_manager_remembers_the_proposals_refused_before_the_resume(caplog):
    caplog.set_level(logging.INFO)
    first = Manager(_RepeatingManagerLLM())
    asyncio.run(first.propose(2, ["longer is better"], [], []))
    records = first.take_refused() + [{"name": "clarity", "description": "x", "why": "too short", "kind": "rewrite"}]
    caplog.clear()
    llm = _RepeatingManagerLLM()
    resumed = Manager(llm)  # a new process: what it knows of earlier refusals comes from the run's records
    resumed.remember_refused(records)
    assert asyncio.run(resumed.propose(2, ["longer is better"], [], [])) == []
    # It is told of the refusal at once, stops when the answer only repeats it, and neither logs nor records it again;
    # a refused rewrite is not a proposal to remember.
    assert len(llm.prompts) == 1 and "- econom_growth: empty" in llm.prompts[0] and "clarity" not in llm.prompts[0]
    assert not [r for r in caplog.records if "refused" in r.getMessage()]
    assert resumed.take_refused() == []


class _ScriptedManagerLLM:
    """A manager LLM that gives the scripted proposal answers in turn."""

    def __init__(self, answers: list[list[dict]]):
        self.answers = answers

    async def chat(self, messages, **_):
        return SimpleNamespace(failed=False, data={"criteria": self.answers.pop(0)})


def test_a_proposal_that_repeats_a_criterion_the_manager_has_is_ignored_not_refused():
    details = {"name": "more_details", "description": "Prefer the text that gives more details and examples."}
    clarity = {"name": "clear_structure", "description": "Prefer the text whose ideas follow in a clear order."}
    llm = _ScriptedManagerLLM([[details, details], [details, clarity], [details], [clarity]])
    manager = Manager(llm)
    got = asyncio.run(manager.propose(3, ["the better text explains more"], [], []))
    # The first answer says one criterion twice, the second repeats it and adds one, the third brings nothing new:
    # the asking ends there (the fourth answer is never asked for).
    assert [c.name for c in got] == ["more_details", "clear_structure"] and len(llm.answers) == 1
    assert manager.take_refused() == []  # a criterion it kept is not listed as refused
