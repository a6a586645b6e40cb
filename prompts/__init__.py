"""Every prompt critmine sends, as Jinja2 template files, and the loader that turns them into chat messages.

A template marks its messages with lines `<<<system>>>`, `<<<user>>>` and `<<<assistant>>>`. Only the template's
own text can make structure: every value inserted into a template (documents, criteria, anything an LLM wrote)
passes through `neutralise`, so it can never start a message, close the fence it sits in, or smuggle a
chat-template token into the prompt.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Any

import jinja2

_ROLE = re.compile(r"^<<<(system|user|assistant)>>>\s*$", re.M)
# In data: anything that looks like a role marker, one of our fence tags, or a chat-template special token.
_DATA_ROLE = re.compile(r"<<<\s*(system|user|assistant)\s*>>>", re.I)
FENCES = ("text_a", "text_b", "text", "better", "worse")
_DATA_FENCE = re.compile(r"<(/?)\s*(" + "|".join(FENCES) + r")\s*>", re.I)
_DATA_SPECIAL = re.compile(r"<\|([^|<>\s]{1,40})\|>")


def neutralise(text: str) -> str:
    """A value as inert text: role markers, fence tags and special tokens keep their letters but lose their form."""
    text = _DATA_ROLE.sub(lambda m: f"<< {m.group(1)} >>", text)
    text = _DATA_FENCE.sub(lambda m: f"[{m.group(1)}{m.group(2)}]", text)
    return _DATA_SPECIAL.sub(lambda m: f"<| {m.group(1)} |>", text)


def _finalize(value: Any) -> Any:
    return neutralise(value) if isinstance(value, str) else value


@lru_cache(maxsize=1)
def _env() -> jinja2.Environment:
    return jinja2.Environment(loader=jinja2.PackageLoader("critmine.prompts", "."), undefined=jinja2.StrictUndefined,
                              keep_trailing_newline=False, autoescape=False, finalize=_finalize)


def render_messages(template: str, **variables) -> list[dict[str, str]]:
    """Render `template` (a file name in this package) into OpenAI chat messages."""
    text = _env().get_template(template).render(**variables)
    parts = _ROLE.split(text)
    if parts[0].strip():
        raise ValueError(f"prompt {template} has text before its first role marker")
    return [{"role": role, "content": body.strip()} for role, body in zip(parts[1::2], parts[2::2], strict=True)]
