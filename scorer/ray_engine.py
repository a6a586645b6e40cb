"""`critmine score --engine ray`: the same scoring as a Ray Data pipeline.

read_json / read_parquet → map_batches(ScoreBatch: the scorer as a callable class, one per actor) →
write_parquet. On a cluster, point `ray.init` at it (RAY_ADDRESS); here Ray runs locally on the CPU cores.
The output directory appears only when the pipeline has finished (written beside it, then renamed).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from critmine.artifacts import ScoreSummary
from critmine.columns import stable_id
from critmine.io import InputError
from critmine.scorer.model import Scorer, count_tokens
from critmine.scorer.output import N_TOKENS, SCORE
from critmine.shards import ShardDir

log = logging.getLogger(__name__)


class ScoreBatch:
    """Ray Data callable class: loads the scorer once per actor, scores pandas batches."""

    def __init__(self, scorer_dir: str, text_column: str = "text"):
        self.scorer = Scorer.load(scorer_dir)
        self.text_column = text_column

    def __call__(self, batch: pd.DataFrame) -> pd.DataFrame:
        """Every input column kept (a struct `meta` as JSON text, as the local engine writes it), plus the score."""
        texts = [str(t) for t in batch[self.text_column]]
        out = batch.copy()
        if "meta" in out:
            out["meta"] = [m if isinstance(m, str) else json.dumps(_plain(m) or {}, ensure_ascii=False)
                           for m in batch["meta"]]
        out["id"] = [str(i) for i in batch["id"]] if "id" in batch else [stable_id(t) for t in texts]
        out[SCORE] = self.scorer.score(texts).astype(np.float64)
        out[N_TOKENS] = np.array([count_tokens(t) for t in texts], dtype=np.int64)
        return out


def _plain(value):
    """Arrow structs come back as dicts holding numpy values; make them JSON-serialisable."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items() if v is not None}
    if isinstance(value, np.ndarray | list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, str) and value.startswith("{"):
        try:
            return json.loads(value)
        except json.JSONDecodeError:
            return value
    return value


def init_ray(workers: int) -> None:
    """Join the cluster in RAY_ADDRESS, or start a local Ray with a CPU slot per actor plus one for I/O tasks."""
    import ray

    if not ray.is_initialized():
        local = not os.environ.get("RAY_ADDRESS")
        ray.init(num_cpus=workers + 1 if local else None, include_dashboard=False, log_to_driver=False,
                 configure_logging=False)
    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = False
    ctx.print_on_execution_start = False
    logging.getLogger("ray.data").setLevel(logging.WARNING)


def read_corpus(input_path: str, text_column: str = "text"):
    import ray

    p = Path(input_path)
    suffix = p.suffix.lower()
    if suffix in (".jsonl", ".json", ".ndjson"):
        ds = ray.data.read_json(str(p), lines=True)
    elif suffix == ".parquet" or p.is_dir():
        ds = ray.data.read_parquet(str(p))
    else:
        raise InputError(f"{p}: the ray engine reads JSONL or Parquet")
    if text_column not in ds.schema().names:
        raise InputError(f"{p}: missing column '{text_column}' for documents (name it with --text-column)")
    return ds


def score_with_ray(scorer_dir: Path, input_path: str, shards: ShardDir, manifest: dict, *, batch_size: int,
                   workers: int, text_column: str = "text") -> ScoreSummary:
    """Ray Data writes into a fresh temporary directory of its own beside the output; the shards then move into
    it (new, empty, or this command's own from an earlier attempt: the caller checked) as part-NNNNN."""
    import ray

    out_dir = shards.root
    t0 = time.monotonic()
    init_ray(max(workers, 1))
    ray.data.DataContext.get_current().execution_options.preserve_order = True
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.ray-", dir=out_dir.parent))
    try:
        summary = _write_scores(scorer_dir, input_path, tmp, batch_size=batch_size, workers=workers, t0=t0,
                                text_column=text_column)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)  # our own temporary directory
        raise
    files = sorted(tmp.glob("*.parquet"))
    shards.remove_own()  # an earlier attempt's shards (ours: the caller checked the manifest)
    shards.open(manifest)
    for i, f in enumerate(files):
        os.replace(f, out_dir / f"part-{i:05d}.parquet")
    shutil.rmtree(tmp)  # our own temporary directory, now empty of results
    summary.write(shards.done)
    log.info("ray: scored %d documents in %.1f s", summary.rows, summary.wall_s)
    return summary


def _write_scores(scorer_dir: Path, input_path: str, tmp: Path, *, batch_size: int, workers: int,
                  t0: float, text_column: str) -> ScoreSummary:
    import ray

    ds = read_corpus(input_path, text_column)
    ds = ds.map_batches(ScoreBatch, fn_constructor_kwargs={"scorer_dir": str(scorer_dir), "text_column": text_column},
                        batch_size=batch_size,
                        batch_format="pandas",
                        compute=ray.data.ActorPoolStrategy(size=max(workers, 1)))
    ds.write_parquet(str(tmp))
    files = sorted(tmp.glob("*.parquet"))
    rows = sum(pq.ParquetFile(f).metadata.num_rows for f in files)
    wall = time.monotonic() - t0
    return ScoreSummary(rows=rows, shards=len(files), scored_now=rows, wall_s=round(wall, 2),
                        docs_per_s=round(rows / wall, 1) if wall > 0 else None, engine="ray", workers=workers)
