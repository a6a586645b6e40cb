"""`critmine select`: keep the best documents by score, by fraction, token budget or score threshold.

Scores are z-normalised. τ = 0 is top-k; τ > 0 samples without replacement in proportion to exp(z/τ) via
the Gumbel top-k trick (QuRating's recipe): key = z/τ + Gumbel noise, keep the largest keys. A threshold keeps
every document scoring at or above it (what the datatrove filter in critmine.integrations does, document by
document). The kept rows keep every column of the scored output, plus `critmine_z`; the output's format follows its
name: .parquet, .jsonl (.jsonl.gz), or a saved `datasets` directory for a name without a suffix.
"""

from __future__ import annotations

import gzip
import json
import logging
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import datasets
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from critmine.artifacts import SelectSummary, summary_of
from critmine.io import InputError, check_output_file, publish_file
from critmine.scorer.output import N_TOKENS, SCORE, read_scored, scored_files

Z = "critmine_z"

log = logging.getLogger(__name__)


def selection_keys(scores: np.ndarray, tau: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """z-scores and the sort keys (z/τ plus Gumbel noise; z itself when τ = 0)."""
    std = scores.std()
    z = (scores - scores.mean()) / (std if std > 0 else 1.0)
    if tau <= 0:
        return z, z
    return z, z / tau + np.random.default_rng(seed).gumbel(size=len(z))


def choose(scores: np.ndarray, tokens: np.ndarray, *, fraction: float | None, budget_tokens: int | None,
           tau: float, seed: int, threshold: float | None = None) -> tuple[np.ndarray, np.ndarray]:
    """A boolean mask of the kept rows, and the z-scores."""
    if sum(x is not None for x in (fraction, budget_tokens, threshold)) != 1:
        raise InputError("select: give exactly one of --fraction, --budget-tokens and --threshold")
    if fraction is not None and not 0 < fraction <= 1:
        raise InputError("--fraction must be in (0, 1]")
    z, key = selection_keys(scores, tau, seed)
    if threshold is not None:
        return scores >= threshold, z
    order = np.argsort(-key, kind="stable")
    if fraction is not None:
        take = order[: int(round(fraction * len(scores)))]
    else:
        within = np.cumsum(tokens[order]) <= budget_tokens
        take = order[within]  # every document that still fits, best keys first
    mask = np.zeros(len(scores), dtype=bool)
    mask[take] = True
    return mask, z


def kept_batches(scored: str | Path, mask: np.ndarray, z: np.ndarray) -> Iterator[pa.RecordBatch]:
    """The kept rows of the scored shards with their z-score, streamed one record batch at a time."""
    row = 0
    for f in scored_files(scored):
        for batch in pq.ParquetFile(f).iter_batches(batch_size=4096):
            keep = mask[row: row + batch.num_rows]
            if keep.any():
                picked = batch.filter(pa.array(keep))
                zs = pa.array(np.round(z[row: row + batch.num_rows][keep], 4))
                names = [n for n in picked.schema.names if n != Z]
                yield pa.RecordBatch.from_arrays([picked.column(n) for n in names] + [zs], names=names + [Z])
            row += batch.num_rows


def output_format(out: Path) -> str:
    """parquet, jsonl or dataset, from the output's name."""
    name = out.name.lower()
    if name.endswith(".parquet"):
        return "parquet"
    if name.endswith((".jsonl", ".json", ".ndjson", ".jsonl.gz", ".json.gz")):
        return "jsonl"
    if not out.suffix:
        return "dataset"
    raise InputError(f"{out}: unsupported output (use .parquet, .jsonl, .jsonl.gz or a directory name for a saved "
                     "datasets dataset)")


def _json_row(rec: dict) -> str:
    meta = rec.get("meta")
    if isinstance(meta, str) and meta.startswith("{"):  # critmine's own JSON text back to a mapping
        rec["meta"] = json.loads(meta)
    return json.dumps(rec, ensure_ascii=False, default=str) + "\n"


def write_kept(batches: Iterator[pa.RecordBatch], schema: pa.Schema, out: Path) -> None:
    """Write the kept rows to `out` in the format its name asks for, atomically (temp beside it, then rename)."""
    fmt = output_format(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile("wb", dir=out.parent, delete=False, suffix=".tmp") as fh:
        if fmt == "jsonl":
            sink = gzip.open(fh, "wb") if out.name.lower().endswith(".gz") else fh
            for batch in batches:
                sink.write("".join(_json_row(r) for r in batch.to_pylist()).encode("utf-8"))
            if sink is not fh:
                sink.close()
        else:
            with pq.ParquetWriter(fh, schema) as writer:
                for batch in batches:
                    writer.write_batch(batch)
    if fmt != "dataset":
        publish_file(fh, out)
        return
    try:
        tmp_dir = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
        datasets.disable_progress_bars()
        datasets.Dataset.from_parquet(fh.name).save_to_disk(str(tmp_dir))
        if out.exists():  # ours: check_output_file found our summary beside it
            shutil.rmtree(out)
        os.replace(tmp_dir, out)
    finally:
        os.unlink(fh.name)


def select(scored: str | Path, out: str | Path, *, fraction: float | None = None, budget_tokens: int | None = None,
           threshold: float | None = None, tau: float = 1.0, seed: int = 0) -> SelectSummary:
    out = Path(out)
    output_format(out)  # an unsupported name fails before any work
    summary_file = summary_of(out)
    check_output_file(out, summary_file, "critmine select")
    table = read_scored(scored, columns=[SCORE, N_TOKENS])
    scores = table[SCORE].to_numpy().astype(np.float64)
    tokens = table[N_TOKENS].to_numpy()
    mask, z = choose(scores, tokens, fraction=fraction, budget_tokens=budget_tokens, tau=tau, seed=seed,
                     threshold=threshold)
    base = pq.read_schema(scored_files(scored)[0])
    schema = pa.schema([f for f in base if f.name != Z] + [pa.field(Z, pa.float64())])
    write_kept(kept_batches(scored, mask, z), schema, out)
    summary = SelectSummary(documents=len(scores), kept=int(mask.sum()), tokens=int(tokens.sum()),
                            kept_tokens=int(tokens[mask].sum()), tau=tau, seed=seed, fraction=fraction,
                            budget_tokens=budget_tokens, threshold=threshold,
                            mean_z_kept=float(z[mask].mean()) if mask.any() else None,
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
            f"({tok:.1%}); mean z of kept {'-' if mz is None else f'{mz:+.2f}'} (tau {s.tau}); wrote {s.out}"
            + (f"; pushed to {s.pushed_to}" if s.pushed_to else ""))
