"""`--features hf:MODEL`: fine-tune a local transformers model as a Bradley–Terry reward model (for GPU users).

A sequence-classification head with one output is the score; the loss is BCE(σ(s_a − s_b), p) over pairs.
Runs on CPU too (slowly); the model is read from a local directory only, never from a hub.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np

from critmine.io import InputError

log = logging.getLogger(__name__)


def _device():
    import torch

    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def _load(path: str):
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    if not Path(path).is_dir():
        raise InputError(f"hf:{path}: not a local model directory (critmine never downloads weights)")
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(path, local_files_only=True)
    model = AutoModelForSequenceClassification.from_pretrained(path, num_labels=1, local_files_only=True)
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    model.config.pad_token_id = tok.pad_token_id
    return tok, model


def train_reward_model(model_path: str, texts_a: list[str], texts_b: list[str], p_a: np.ndarray, out_dir: Path, *,
                       epochs: int = 2, lr: float = 3e-5, batch_size: int = 8, max_length: int = 256,
                       seed: int = 0) -> None:
    import torch

    torch.manual_seed(seed)
    tok, model = _load(model_path)
    device = _device()
    model.to(device).train()
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01)
    target = torch.tensor(np.asarray(p_a), dtype=torch.float32)
    rng = np.random.default_rng(seed)
    for epoch in range(epochs):
        total = 0.0
        order = rng.permutation(len(texts_a))
        for start in range(0, len(texts_a), batch_size):
            idx = order[start:start + batch_size]
            enc = tok([texts_a[i] for i in idx] + [texts_b[i] for i in idx], truncation=True,
                      max_length=max_length, padding=True, return_tensors="pt").to(device)
            s = model(**enc).logits.squeeze(-1)
            margin = s[: len(idx)] - s[len(idx):]
            loss = torch.nn.functional.binary_cross_entropy_with_logits(margin, target[idx].to(device))
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += float(loss.detach()) * len(idx)
        log.info("reward model epoch %d: loss %.4f", epoch + 1, total / max(1, len(texts_a)))
    model.save_pretrained(out_dir)
    tok.save_pretrained(out_dir)


class RewardModel:
    """A saved reward model: texts → scores."""

    def __init__(self, path: Path, batch_size: int = 32, max_length: int = 256):
        import torch

        self.tok, self.model = _load(str(path))
        self.device = _device()
        self.model.to(self.device).eval()
        self.batch_size, self.max_length, self._torch = batch_size, max_length, torch

    def score(self, texts: list[str]) -> np.ndarray:
        out = []
        with self._torch.inference_mode():
            for start in range(0, len(texts), self.batch_size):
                enc = self.tok(texts[start:start + self.batch_size], truncation=True, max_length=self.max_length,
                               padding=True, return_tensors="pt").to(self.device)
                out.append(self.model(**enc).logits.squeeze(-1).float().cpu().numpy())
        return np.concatenate(out) if out else np.zeros(0, dtype=np.float32)
