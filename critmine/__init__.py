"""critmine: mine verbal data-quality criteria from a few human-labelled pairs.

The Python API (critmine.api) is loaded on first use, so importing one module of critmine stays cheap:

    import critmine
    crit = critmine.mine(pairs, "runs/mine", base_url=URL)
"""

import importlib
from typing import Any

__version__ = "0.1.0"
API = ("mine", "evaluate", "judge", "train", "score", "select", "run", "execute", "Scorer", "CriteriaSet", "Criterion",
       "Pair", "Document", "Columns", "InputError")
__all__ = ["__version__", *API]


def __getattr__(name: str) -> Any:
    if name in API:
        return getattr(importlib.import_module("critmine.api"), name)
    raise AttributeError(f"module 'critmine' has no attribute {name!r}")
