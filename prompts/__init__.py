"""Every prompt critmine sends, as Jinja2 template files, and the loader that turns them into chat messages.

A template marks its messages with lines `<<<system>>>` and `<<<user>>>`.
"""

from __future__ import annotations

import re
from functools import lru_cache

import jinja2

_ROLE = re.compile(r"^<<<(system|user|assistant)>>>\s*$", re.M)


@lru_cache(maxsize=1)
def _env() -> jinja2.Environment:
    return jinja2.Environment(loader=jinja2.PackageLoader("critmine.prompts", "."), undefined=jinja2.StrictUndefined,
                              keep_trailing_newline=False, autoescape=False)


def render_messages(template: str, **variables) -> list[dict[str, str]]:
    """Render `template` (a file name in this package) into OpenAI chat messages."""
    text = _env().get_template(template).render(**variables)
    parts = _ROLE.split(text)
    if parts[0].strip():
        raise ValueError(f"prompt {template} has text before its first role marker")
    return [{"role": role, "content": body.strip()} for role, body in zip(parts[1::2], parts[2::2], strict=True)]
