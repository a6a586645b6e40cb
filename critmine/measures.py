"""Computed criteria: text properties that decide some human preferences, measured at no LLM cost.

A computed criterion is a knowledge-base entry (or a Criterion) with a `measure` from this registry and which end
of it to prefer; it is judged like a verbal criterion (p_a, p_b, a verdict), scored on the seeds, voted with the
others and handed to the scorer, but by arithmetic instead of an LLM.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Callable
from typing import Annotated, Literal

from pydantic import AfterValidator

_WORD = re.compile(r"\w+", re.UNICODE)
_SENTENCE_END = re.compile(r"[.!?]+(?:\s|$)")
_CODE_LINE = re.compile(r"^\s*(?:[{}()\[\];]|def |class |import |from \S+ import|#include|return\b|if \(|for \(|"
                        r"\w+\s*=\s*\S|//|/\*|\$ )")


def words(text: str) -> float:
    return float(len(_WORD.findall(text)))


def sentences(text: str) -> float:
    return float(max(1, len(_SENTENCE_END.findall(text.strip() + " "))))


def mean_sentence_words(text: str) -> float:
    return words(text) / sentences(text)


def lines(text: str) -> float:
    return float(sum(1 for line in text.splitlines() if line.strip()))


def distinct_words(text: str) -> float:
    """Vocabulary size (distinct lower-cased words): grows with both length and variety."""
    return float(len({w.lower() for w in _WORD.findall(text)}))


def type_token_ratio(text: str) -> float:
    """Distinct words per word over the first 100 words (a fixed window, so length does not drive it)."""
    ws = [w.lower() for w in _WORD.findall(text)][:100]
    return len(set(ws)) / len(ws) if ws else 0.0


def code_line_share(text: str) -> float:
    ls = [line for line in text.splitlines() if line.strip()]
    return sum(bool(_CODE_LINE.match(line)) for line in ls) / len(ls) if ls else 0.0


def uppercase_share(text: str) -> float:
    letters = [c for c in text if c.isalpha()]
    return sum(c.isupper() for c in letters) / len(letters) if letters else 0.0


MEASURES: dict[str, Callable[[str], float]] = {
    "words": words, "sentences": sentences, "mean_sentence_words": mean_sentence_words, "lines": lines,
    "distinct_words": distinct_words, "type_token_ratio": type_token_ratio, "code_line_share": code_line_share,
    "uppercase_share": uppercase_share,
}
# Measures read from the worker model (critmine.llm's LLMClient.text_logprob), not computed from the text alone:
# the mean log-probability per token of a text's first LOGPROB_TOKENS tokens (fluency, as perplexity filters use);
# of a pair's texts, only what follows their shared beginning (shared_context) is read, conditioned on it.
MODEL_MEASURES = {"mean_logprob": "mean log-probability per token under the worker model"}
LOGPROB_TOKENS = 32  # a third less time than 64 at the same accuracy (README, "Reading 32 tokens")
TIE = 0.02  # relative difference below which two texts count as equal under a measure
LOGPROB_TIE = 0.02  # nats per token below which two texts count as equally likely
Prefer = Literal["higher", "lower"]


def _known(name: str) -> str:
    if name not in MEASURES and name not in MODEL_MEASURES:
        raise ValueError(f"unknown measure {name!r} (known: {', '.join([*MEASURES, *MODEL_MEASURES])})")
    return name


Measure = Annotated[str, AfterValidator(_known)]  # a field holding a measure's name, checked against MEASURES


def compare(measure: str, prefer: Prefer, a: str, b: str) -> tuple[float, float, float]:
    """(p_a, p_b, p_none) of one pair under a text measure: the preferred text by how far apart the two values are
    (log ratio through a logistic), or a tie (p_none = 1) when they are within TIE of each other."""
    fn = MEASURES[measure]
    va, vb = fn(a), fn(b)
    if abs(va - vb) <= TIE * max(abs(va), abs(vb), 1e-9):
        return 0.0, 0.0, 1.0
    return _preferred(math.log((va + 1e-3) / (vb + 1e-3)), prefer, 2.0)


def shared_context(a: str, b: str) -> int:
    """Where two texts stop sharing their beginning (a question both answer, a common prompt), cut back to a word
    boundary: `a[:n] == b[:n]` is context both continue, and each remainder starts with the space before a word. 0
    when they share no word, or when one text would have nothing left (a fluency measure must read each text's own
    words)."""
    n = len(os.path.commonprefix([a, b]))
    while n and not (a[n:n + 1].isspace() and b[n:n + 1].isspace()):
        n -= 1
    return n if a[n:].strip() and b[n:].strip() else 0


def compare_logprobs(va: float, vb: float, prefer: Prefer) -> tuple[float, float, float]:
    """(p_a, p_b, p_none) under mean_logprob: the difference in nats per token through a logistic, or a tie."""
    if abs(va - vb) <= LOGPROB_TIE:
        return 0.0, 0.0, 1.0
    return _preferred(va - vb, prefer, 4.0)


def _preferred(gap: float, prefer: Prefer, steepness: float) -> tuple[float, float, float]:
    if prefer == "lower":
        gap = -gap
    p_a = 1.0 / (1.0 + math.exp(-steepness * gap))
    return p_a, 1.0 - p_a, 0.0
