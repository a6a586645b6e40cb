"""Shared fixtures: synthetic seed pairs with a known hidden rule, and the scripted fake server."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from tests.fake_server import FakeLLMServer, Script

NOISY = {"p10", "p11"}  # people chose the shorter text here
FLIPPED = ("[p03]", "[p05]")  # the "tone" criterion answers against the rule on these

INITIAL = [
    {"name": "thoroughness", "description": "Prefer the more thorough text that covers the question fully."},
    {"name": "polite_tone", "description": "Prefer the text with a polite, friendly tone."},
    {"name": "formatting", "description": "Prefer the text with tidier formatting."},
    {"name": "code_style", "description": "Judge code style; abstain when there is no code."},
]
REPLACEMENTS = [
    {"name": "completeness", "description": "Prefer the text that answers completely and thorough."},
    {"name": "detail_level", "description": "Prefer the thorough, detailed text."},
    {"name": "brevity", "description": "Prefer the shorter text."},
]


LONG_WORDS = "because for example the source shows the reason in detail".split()
SHORT_WORDS = "ok yes no maybe fine sure".split()


def make_corpus(path: Path, n: int = 120, seed: int = 0) -> list[dict]:
    """Documents of distinct lengths; longer ones use 'thorough' words (the fake's hidden rule: longer wins)."""
    rng = random.Random(seed)
    docs = []
    for i in range(n):
        length = 40 + 3 * i  # distinct lengths, so the hidden rule always decides
        vocab = LONG_WORDS if length > 200 else SHORT_WORDS
        text = f"doc{i:04d}" + (f" {FLIPPED[0]}" if i % 25 == 3 else "")  # "tone" answers against the rule here
        while len(text) < length:
            text += " " + rng.choice(vocab)
        text = text[:length]
        docs.append({"id": f"d{i:04d}", "text": text, "meta": {"source": "s" + str(i % 2)}})
    path.write_text("".join(json.dumps(d) + "\n" for d in docs))
    return docs


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    make_corpus(tmp_path / "docs.jsonl")
    return tmp_path / "docs.jsonl"


def make_pairs(n: int = 12) -> list[dict]:
    pairs = []
    for i in range(n):
        pid = f"p{i:02d}"
        short = f"[{pid}] Short answer {i}."
        long = f"[{pid}] A longer answer {i} that explains the reasons, gives an example and a source."
        longer_side = "a" if i % 2 == 0 else "b"
        a, b = (long, short) if longer_side == "a" else (short, long)
        better = longer_side if pid not in NOISY else ("b" if longer_side == "a" else "a")
        pairs.append({"id": pid, "a": a, "b": b, "better": better, "meta": {"i": i}})
    return pairs


@pytest.fixture
def seeds(tmp_path: Path) -> Path:
    path = tmp_path / "seeds.jsonl"
    path.write_text("".join(json.dumps(p) + "\n" for p in make_pairs()))
    return path


def make_script(**kw) -> Script:
    return Script(initial=list(INITIAL), replacements=list(REPLACEMENTS), flip_markers=FLIPPED, **kw)


@pytest.fixture
def fake():
    with FakeLLMServer(make_script()) as server:
        yield server
