"""A saved scorer: one self-describing directory (scorer.json + weights) that turns texts into scores."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np

from critmine.artifacts import ScorerMeta
from critmine.io import InputError
from critmine.scorer.features import make_features
from critmine.scorer.reward_model import RewardModel

FORMAT = "critmine-scorer/1"
META_FILE, WEIGHTS_FILE, HF_DIR = "scorer.json", "weights.npy", "model"
_TOKEN = re.compile(r"\w+|[^\w\s]", re.UNICODE)


def count_tokens(text: str) -> int:
    """Approximate LM tokens: words and punctuation marks (close to BPE counts for English prose)."""
    return len(_TOKEN.findall(text))


class Scorer:
    """s(text) for a whole batch of texts; higher is better data under the mined criteria."""

    def __init__(self, meta: dict[str, Any], weights: np.ndarray | None = None, directory: Path | None = None):
        self.meta = meta
        self.weights = weights
        self.directory = directory  # where it was loaded from (None while training)
        self.features_kind = meta["features"]
        if self.features_kind.startswith("hf:"):
            self._reward = RewardModel(directory / HF_DIR)
        else:
            self._features = make_features(self.features_kind, meta.get("features_config"))

    def score(self, texts: list[str]) -> np.ndarray:
        if self.features_kind.startswith("hf:"):
            return self._reward.score(texts).astype(np.float64)
        return np.asarray(self._features.transform(texts) @ self.weights, dtype=np.float64).ravel()

    def threshold(self, keep: float) -> float:
        """The score that keeps the best `keep` share of texts like its training texts (their quantile 1 − keep)."""
        quantiles = self.meta.get("score_quantiles")
        if not quantiles:
            raise InputError("this scorer has no score quantiles (trained by an older critmine): give a threshold")
        if not 0.0 < keep < 1.0:
            raise InputError(f"keep must be in (0, 1), not {keep}")
        qs = sorted((float(q), v) for q, v in quantiles.items())
        return float(np.interp(1.0 - keep, [q for q, _ in qs], [v for _, v in qs]))

    def save(self, directory: Path) -> ScorerMeta:
        """Weights, then scorer.json (written last: the marker of a complete directory); returns what it wrote."""
        directory.mkdir(parents=True, exist_ok=True)
        if self.weights is not None:
            np.save(directory / WEIGHTS_FILE, self.weights)
        meta = ScorerMeta.model_validate({"format": FORMAT, **self.meta})
        meta.write(directory / META_FILE)
        return meta

    @staticmethod
    def read_meta(directory: str | Path) -> dict[str, Any]:
        """scorer.json of a scorer directory, checked; InputError when it is not one."""
        meta_file = Path(directory) / META_FILE
        if not meta_file.exists():
            raise InputError(f"{directory}: not a scorer directory (no {META_FILE}); train one with `critmine train`")
        meta = ScorerMeta.read(meta_file)
        if meta.format != FORMAT:
            raise InputError(f"{meta_file}: unknown scorer format {meta.format!r}")
        return meta.model_dump(exclude_unset=True)

    @classmethod
    def load(cls, directory: str | Path) -> Scorer:
        d = Path(directory)
        meta = cls.read_meta(d)
        weights = np.load(d / WEIGHTS_FILE) if (d / WEIGHTS_FILE).exists() else None
        return cls(meta, weights, d)
