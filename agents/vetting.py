"""Vetting the manager's criteria before any judgment is paid for.

A criterion must tell an annotator what makes a text better in general: a small manager also proposes topic words
("economic_growth"), sentences copied from a seed text, descriptions about one seed pair ("people judged text A
better because …"), three-word stubs ("The criterion"), descriptions that stop mid-sentence ("…, such as"), a
computed criterion's measurement restated as words ("equal within 2%") and near-copies of criteria it already has.
Each rule below names the fault, so the manager can be asked again with the reason and the log says why.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

from critmine.records import Criterion

MIN_WORDS, MAX_WORDS = 4, 90
COPY_RUN = 7  # this many consecutive words shared with a seed text is a copy
DESCRIPTION_COPY_RUN = 10  # … and with another criterion's description (which shares "prefer the text that …")
DUPLICATE_OVERLAP = 0.6  # content-word Jaccard at or above which two descriptions say the same thing
_STOP = set("a an the and or of to in on for with by is are be it its as at that this than then from which when "
            "whether not no rather over under into their there they them these those has have was were will would "
            "can could should may might must any all some other such only also very most more less".split())
_PAIR_TALK = re.compile(r"\b[Tt]ext [AB]\b|\b(?i:(people|annotators?|humans?) (judged|chose|preferred|picked))\b|"
                        r"\b(?i:this pair|the (first|second) text|better data because)\b")
MAX_NAME_WORDS = 5
_EMPTY_NAME = {"prefer", "preferred", "text", "texts", "better", "best", "worse", "good", "quality", "criterion",
               "criteria", "data", "one", "thing"}
_SELF_TALK = re.compile(r"^\s*(the|this) criterion\b", re.I)
# A measurement's words: a worker that reads two texts cannot apply a tie threshold or a model's log-probabilities
# (the manager restating a computed criterion's "Measured: …; equal within 2%").
_MEASUREMENT = re.compile(r"\b(equal within|log[- ]?probabilit\w*|per token|measured\s*:)", re.I)
# Words no description ends on without a full stop, and marks none ends on: the manager stopped mid-sentence
# ("…, such as ").
_DANGLING = set("a an the and or but nor of to in on for with by as at from into about such like than that which "
                "whose including e g i is are".split())


def tokens(text: str) -> list[str]:
    return re.findall(r"[a-z0-9]+", text.lower())


def content_words(text: str) -> set[str]:
    return {w for w in tokens(text) if w not in _STOP and len(w) > 2 and not w.isdigit()}


_SUFFIXES = sorted(("ability ibility ation ative ness ency ence ity ing ent ant ive ous ful able ible "
                    "ual al ly ed es s y").split(), key=len, reverse=True)


def stem(word: str) -> str:
    """The word without its longest common English suffix, so that fluency ~ fluent and coherence ~ coherent."""
    for suffix in _SUFFIXES:
        if word.endswith(suffix) and len(word) - len(suffix) >= 3 and not (suffix == "s" and word.endswith("ss")):
            return word[: -len(suffix)]
    return word


_POLARITY = {"more", "less", "most", "no", "not"}  # stop words that turn a name around (more_code, no_shouting)


def name_stems(name: str) -> frozenset[str]:
    """What a criterion's name says it measures: its content and polarity words, stemmed, without words any name
    could have."""
    spaced = name.replace("_", " ")
    words = content_words(spaced) | (set(tokens(spaced)) & _POLARITY)
    return frozenset(stem(w) for w in words - _EMPTY_NAME)


def copy_runs(text: str, length: int = COPY_RUN) -> list[tuple[str, ...]]:
    """Every `length` consecutive words of `text`, in order: one shared with another text is a copy."""
    ws = tokens(text)
    return [tuple(ws[i : i + length]) for i in range(len(ws) - length + 1)]


def first_shared(runs: list[tuple[str, ...]], others: set[tuple[str, ...]]) -> str | None:
    """The first of `runs` that `others` has too, as words."""
    return next((" ".join(r) for r in runs if r in others), None)


class Vetter:
    """Refuses criteria that are not criteria, given the seed texts and the vocabulary of known criteria."""

    def __init__(self, seed_texts: Iterable[str], quality_texts: Iterable[str]):
        """`quality_texts`: names and descriptions of real criteria (the knowledge base): words that talk about
        quality rather than about a topic."""
        texts = list(seed_texts)
        self.seed_runs = {run for t in texts for run in copy_runs(t)}
        self.seed_words = {w for t in texts for w in tokens(t)}
        self.quality_words = {w for t in quality_texts for w in tokens(t.replace("_", " "))}

    def topic_words(self, text: str) -> list[str]:
        """Words of `text` that the seed texts use (whole, or cut short: "econom") and no known criterion does:
        the seeds' topics."""
        return sorted(w for w in content_words(text) if w not in self.quality_words and (
            w in self.seed_words or (len(w) >= 5 and any(s.startswith(w) for s in self.seed_words))))

    def refuse_description(self, description: str, *, measured: bool = False) -> str | None:
        """Why this description cannot be a criterion's, or None (`measured`: a computed criterion's, which may
        state its measure)."""
        ws = tokens(description)
        if len(ws) < MIN_WORDS:
            return f"too short to tell an annotator what to prefer ({len(ws)} words; at least {MIN_WORDS})"
        if len(ws) > MAX_WORDS:
            return f"too long for one criterion ({len(ws)} words; at most {MAX_WORDS})"
        end = description.rstrip()[-1:]
        if end in {",", ";", ":", "-", "(", "\u2013", "\u2014"} or (end.isalnum() and ws[-1] in _DANGLING):
            return f"stops mid-sentence ('… {' '.join(description.split()[-2:])}')"
        if not measured and (m := _MEASUREMENT.search(description)):
            return f"describes a measurement ({m.group(0)!r}) that only a computed criterion makes, not what to prefer"
        if _SELF_TALK.search(description):
            return "talks about the criterion instead of saying which text to prefer"
        if m := _PAIR_TALK.search(description):
            return f"talks about one seed pair ({m.group(0)!r}), not about texts in general"
        if copied := first_shared(copy_runs(description), self.seed_runs):
            return f"copies a seed text ({copied!r})"
        names = self._seed_names(description)
        if names:
            return f"names what the seed texts are about ({', '.join(names)}), not a quality"
        return None

    def _seed_names(self, description: str) -> list[str]:
        """Capitalised words inside sentences (names) that come from the seed texts and no known criterion."""
        found = re.findall(r"(?<=[a-z,;] )([A-Z][a-z]+)\b", description)
        return sorted({w for w in found if w.lower() in self.seed_words and w.lower() not in self.quality_words})

    def refuse(self, criterion: Criterion, others: Sequence[Criterion]) -> str | None:
        """Why this proposal cannot join `others` (the kept, banned and already accepted criteria), or None."""
        name = criterion.name.replace("_", " ")
        name_words, topical = content_words(name), self.topic_words(name)
        if len(tokens(name)) > MAX_NAME_WORDS:
            return f"its name is a sentence, not a name (more than {MAX_NAME_WORDS} words)"
        if not name_words - _EMPTY_NAME:
            return "its name has no word that says what it measures"
        if len(topical) * 2 >= len(name_words):
            return f"its name is a topic of the seed texts ({', '.join(topical)}), not a quality"
        if why := self.refuse_description(criterion.description, measured=criterion.computed):
            return why
        mine, stems = content_words(criterion.description), name_stems(criterion.name)
        runs = copy_runs(criterion.description, DESCRIPTION_COPY_RUN)
        for o in others:
            theirs_stems = name_stems(o.name)
            if o.name == criterion.name or (theirs_stems and (stems <= theirs_stems or theirs_stems <= stems)):
                return f"repeats {o.name}"
            if copied := first_shared(runs, set(copy_runs(o.description, DESCRIPTION_COPY_RUN))):
                return f"copies {o.name}'s description ({copied!r})"
            theirs = content_words(o.description)
            if mine and theirs and len(mine & theirs) / len(mine | theirs) >= DUPLICATE_OVERLAP:
                return f"says what {o.name} says"
        return None
