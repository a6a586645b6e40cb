"""`critmine select`: keep the best documents by score, by fraction or token budget.

Scores are z-normalised. τ = 0 is top-k; τ > 0 samples without replacement in proportion to exp(z/τ) via
the Gumbel top-k trick (QuRating's recipe): key = z/τ + Gumbel noise, keep the largest keys.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

from critmine.artifacts import SelectSummary, summary_of
from critmine.io import InputError, check_output_file, write_jsonl_atomic
from critmine.scorer.output import read_scored

log = logging.getLogger(__name__)


def selection_keys(scores: np.ndarray, tau: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """z-scores and the sort keys (z/τ plus Gumbel noise; z itself when τ = 0)."""
    std = scores.std()
    z = (scores - scores.mean()) / (std if std > 0 else 1.0)
    if tau <= 0:
        return z, z
    return z, z / tau + np.random.default_rng(seed).gumbel(size=len(z))


def choose(scores: np.ndarray, tokens: np.ndarray, *, fraction: float | None, budget_tokens: int | None,
           tau: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A boolean mask of the kept rows, and the z-scores."""
    if (fraction is None) == (budget_tokens is None):
        raise InputError("select: give exactly one of --fraction and --budget-tokens")
    if fraction is not None and not 0 < fraction <= 1:
        raise InputError("--fraction must be in (0, 1]")
    z, key = selection_keys(scores, tau, seed)
    order = np.argsort(-key, kind="stable")
    if fraction is not None:
        take = order[: int(round(fraction * len(scores)))]
    else:
        within = np.cumsum(tokens[order]) <= budget_tokens
        take = order[within]  # every document that still fits, best keys first
    mask = np.zeros(len(scores), dtype=bool)
    mask[take] = True
    return mask, z


def select(scored: str | Path, out: str | Path, *, fraction: float | None = None, budget_tokens: int | None = None,
           tau: float = 1.0, seed: int = 0) -> SelectSummary:
    out = Path(out)
    summary_file = summary_of(out)
    check_output_file(out, summary_file, "critmine select")
    table = read_scored(scored, columns=["id", "score", "n_tokens"])
    scores = table["score"].to_numpy().astype(np.float64)
    tokens = table["n_tokens"].to_numpy()
    mask, z = choose(scores, tokens, fraction=fraction, budget_tokens=budget_tokens, tau=tau, seed=seed)
    files = sorted(Path(scored).glob("*.parquet")) if Path(scored).is_dir() else [Path(scored)]

    def kept_rows():
        row = 0
        for f in files:  # stream the texts back, one record batch at a time
            for batch in pq.ParquetFile(f).iter_batches(columns=["id", "text", "meta", "score"], batch_size=4096):
                for rec in batch.to_pylist():
                    if mask[row]:
                        meta = json.loads(rec["meta"] or "{}")
                        meta.update(critmine_score=rec["score"], critmine_z=round(float(z[row]), 4))
                        yield {"id": rec["id"], "text": rec["text"], "meta": meta}
                    row += 1

    write_jsonl_atomic(out, kept_rows())
    summary = SelectSummary(documents=len(scores), kept=int(mask.sum()), tokens=int(tokens.sum()),
                            kept_tokens=int(tokens[mask].sum()), tau=tau, seed=seed, fraction=fraction,
                            budget_tokens=budget_tokens, mean_z_kept=float(z[mask].mean()) if mask.any() else None,
                            min_score_kept=float(scores[mask].min()) if mask.any() else None,
                            scored=str(scored), out=str(out))
    summary.write(summary_file)
    log.info("kept %d of %d documents (%d of %d tokens)", summary.kept, summary.documents, summary.kept_tokens,
             summary.tokens)
    return summary


def describe(s: SelectSummary) -> str:
    share = s.kept / s.documents if s.documents else 0
    tok = s.kept_tokens / s.tokens if s.tokens else 0
    mz = s.mean_z_kept
    return (f"kept {s.kept:,} of {s.documents:,} documents ({share:.1%}), {s.kept_tokens:,} of {s.tokens:,} tokens "
            f"({tok:.1%}); mean z of kept {'-' if mz is None else f'{mz:+.2f}'} (tau {s.tau}); wrote {s.out}")
