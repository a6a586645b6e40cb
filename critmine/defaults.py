"""Values that several settings share, written once."""

from __future__ import annotations

DEFAULT_MODEL = "qwen2.5-coder-0.5b"  # the embedded model critmine starts when no --base-url is given
MAX_TEXT_CHARS = 2400  # texts longer than this are cut in the middle before they reach a prompt
