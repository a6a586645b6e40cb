"""`critmine train`: fit a Bradley–Terry scorer on agent-labelled pairs; report held-out and human accuracy."""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from critmine.artifacts import ScorerMeta
from critmine.columns import Columns
from critmine.eval.metrics import agreement_stats
from critmine.io import InputError, check_output_dir, read_pairs
from critmine.records import Pair
from critmine.scorer.bradley_terry import choose_c, fit_linear
from critmine.scorer.features import make_features
from critmine.scorer.model import Scorer
from critmine.scorer.reward_model import train_reward_model

log = logging.getLogger(__name__)


def soft_label(pair: Pair) -> float:
    """p(a better): the agents' soft vote when `critmine judge` recorded one, else the hard label."""
    p = pair.meta.get("p_a")
    if isinstance(p, int | float) and 0.0 <= p <= 1.0:
        return float(p)
    return 1.0 if pair.better == "a" else 0.0


def split_holdout(pairs: list[Pair], fraction: float, seed: int) -> tuple[list[Pair], list[Pair]]:
    """Deterministic split by a hash of the pair id (stable when pairs are added or reordered)."""
    def u(p: Pair) -> float:
        return int(hashlib.sha1(f"{seed}:{p.id}".encode()).hexdigest()[:8], 16) / 0xFFFFFFFF
    test = [p for p in pairs if u(p) < fraction]
    return [p for p in pairs if u(p) >= fraction], test


def accuracy_on(scorer: Scorer, pairs: list[Pair]) -> dict:
    """Agreement of "the higher score wins" with the pairs' labels (ties abstain)."""
    if not pairs:
        return agreement_stats([], [])
    sa = scorer.score([p.a for p in pairs])
    sb = scorer.score([p.b for p in pairs])
    pred = ["a" if x > y else "b" if y > x else "none" for x, y in zip(sa, sb, strict=True)]
    return agreement_stats(pred, [p.better for p in pairs])


def train_scorer(pairs_path: str, out_dir: Path, *, features: str = "hashing", holdout: float = 0.1,
                 human_pairs: str | None = None, seed: int = 0, c: float | None = None,
                 columns: Columns | None = None) -> ScorerMeta:
    if (out_dir / "scorer.json").exists():
        raise InputError(f"{out_dir}: a scorer already exists here; choose another --out")
    check_output_dir(out_dir, "an empty directory for a scorer")
    if not 0.0 <= holdout < 0.9:
        raise InputError("--holdout must be in [0, 0.9)")
    pairs = read_pairs(pairs_path, labelled=True, columns=columns)
    human = read_pairs(human_pairs, labelled=True) if human_pairs else []
    train, test = split_holdout(pairs, holdout, seed)
    if len(train) < 4:
        raise InputError(f"{pairs_path}: only {len(train)} training pairs; label more pairs with `critmine judge`")
    p_a = np.array([soft_label(p) for p in train])
    t0 = time.monotonic()
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))  # ours alone
    try:
        meta = _train_into(tmp, pairs_path, train, test, human, human_pairs, p_a, features, seed, c, t0)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    umask = os.umask(0)
    os.umask(umask)
    tmp.chmod(0o777 & ~umask)  # mkdtemp's private mode was only for while it was being written
    if out_dir.exists():
        out_dir.rmdir()  # empty (checked above): the user made it for us
    tmp.rename(out_dir)
    log.info("scorer (%s) trained on %d pairs in %.1f s; held-out accuracy %s", features, len(train),
             meta.train_s, meta.holdout["accuracy"])
    return meta


def _train_into(tmp: Path, pairs_path: str, train: list[Pair], test: list[Pair], human: list[Pair],
                human_pairs: str | None, p_a: np.ndarray, features: str, seed: int, c: float | None,
                t0: float) -> ScorerMeta:
    meta = {"features": features, "trained_on": str(pairs_path), "n_train": len(train), "n_holdout": len(test),
            "seed": seed, "created": datetime.now(UTC).isoformat(timespec="seconds"),
            "mean_label": float(p_a.mean())}
    weights = None
    if features.startswith("hf:"):
        train_reward_model(features[3:], [p.a for p in train], [p.b for p in train], p_a, tmp / "model", seed=seed)
    else:
        f = make_features(features)
        fa, fb = f.transform([p.a for p in train]), f.transform([p.b for p in train])
        c = c if c is not None else choose_c(fa, fb, p_a, seed=seed)
        try:
            weights = fit_linear(fa, fb, p_a, c=c)
        except ValueError as e:
            raise InputError(f"{pairs_path}: {e}") from None
        meta.update(features_config=f.config, l2_c=c)
    meta["train_s"] = round(time.monotonic() - t0, 3)
    scorer = Scorer(meta, weights, tmp)
    meta["holdout"] = accuracy_on(scorer, test)
    meta["train_fit"] = accuracy_on(scorer, train)
    if human:
        meta["human"] = {"pairs": str(human_pairs), **accuracy_on(scorer, human)}
    texts = list(dict.fromkeys(t for p in train for t in (p.a, p.b)))
    scores = scorer.score(texts)
    meta["score_quantiles"] = {f"{q:.2f}": float(np.quantile(scores, q)) for q in np.arange(1, 100) / 100}
    scorer.meta = meta
    return scorer.save(tmp)


def describe(meta: ScorerMeta) -> str:
    def row(name: str, s: dict | None) -> str:
        if not s or s.get("accuracy") is None:
            return f"{name:<34}{'-':>7}"
        return f"{name:<34}{s['accuracy']:>7.3f}   [{s['ci_low']:.2f}, {s['ci_high']:.2f}]{s['n_judged']:>6}"

    lines = [f"{'scorer (' + meta.features + ')':<34}{'acc':>7}{'95% CI':>15}{'n':>6}",
             row("training pairs (fit)", meta.train_fit), row("held-out agent labels", meta.holdout)]
    if meta.human is not None:
        lines.append(row("human labels", meta.human))
    lines.append(f"trained on {meta.n_train} pairs in {meta.train_s:.1f} s")
    return "\n".join(lines)
