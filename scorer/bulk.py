"""`critmine score`: stream a corpus through a scorer into Parquet shards, resumably.

Local engine: documents are read and validated one by one (`critmine.io`), scored in batches by a pool of
worker processes, and written as `part-NNNNN.parquet` shards of `shard_size` rows; a shard appears (atomic
rename) only when complete, so a killed run resumes after the last complete shard with no row lost or
duplicated. `_SUCCESS` marks a finished output. Memory holds a few batches, never the corpus.
Each output row is the input row, every column kept (a dict `meta` as JSON text), plus `critmine_score` and
`n_tokens`; the first shard fixes the column types for the others.
"""

from __future__ import annotations

import concurrent.futures as cf
import json
import logging
import multiprocessing as mp
import os
import time
from collections.abc import Iterator
from itertools import islice
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from tqdm.auto import tqdm

from critmine.artifacts import ScoreSummary
from critmine.columns import Columns
from critmine.io import InputError, is_remote, iter_documents
from critmine.records import Document
from critmine.scorer.model import Scorer, count_tokens
from critmine.scorer.output import N_TOKENS, SCORE, scored_dir
from critmine.scorer.ray_engine import score_with_ray
from critmine.servers import die_with_parent
from critmine.shards import ShardDir

log = logging.getLogger(__name__)

_scorer: Scorer | None = None  # one per worker process


def _init_worker(scorer_dir: str, parent: int) -> None:
    global _scorer
    die_with_parent(parent)  # a kill -9 of `critmine score` must not leave its workers behind
    _scorer = Scorer.load(scorer_dir)


def _score_texts(texts: list[str]) -> tuple[np.ndarray, list[int]]:
    assert _scorer is not None
    return _scorer.score(texts), [count_tokens(t) for t in texts]


def _ready(delay: float) -> int:
    """Which worker ran this (a worker runs tasks only once its scorer is loaded)."""
    time.sleep(delay)
    return os.getpid()


def _batches(docs: Iterator[Document], size: int) -> Iterator[list[Document]]:
    while batch := list(islice(docs, size)):
        yield batch


def output_row(doc: Document, score: float, n_tokens: int) -> dict:
    """The input row with every column (an `id` added when it had none), plus the score and the token count."""
    row = dict(doc.row) if doc.row is not None else {"id": doc.id, "text": doc.text, "meta": doc.meta}
    row.setdefault("id", doc.id)
    if isinstance(row.get("meta"), dict | list):
        row["meta"] = json.dumps(row["meta"], ensure_ascii=False)
    row[SCORE], row[N_TOKENS] = score, n_tokens
    return row


class ShardWriter:
    """Writes shards with one schema: the first shard's (null-typed columns as text), or a resumed output's."""

    def __init__(self, out_dir: Path, sealed: list[Path]):
        self.out_dir = out_dir
        self.schema: pa.Schema | None = pq.read_schema(sealed[0]) if sealed else None
        self.warned = False

    def write(self, index: int, rows: list[dict]) -> None:
        if self.schema is None:
            inferred = pa.Table.from_pylist(rows).schema
            self.schema = pa.schema([f.with_type(pa.string()) if pa.types.is_null(f.type) else f for f in inferred])
        extra = {k for r in rows for k in r} - set(self.schema.names)
        if extra and not self.warned:
            log.warning("column(s) %s first appear after the first shard and are not written (the first shard "
                        "fixes the columns)", ", ".join(sorted(extra)))
            self.warned = True
        try:
            table = pa.Table.from_pylist(rows, schema=self.schema)
        except (pa.ArrowInvalid, pa.ArrowTypeError) as e:
            raise InputError(f"shard {index}: a column changes type after the first shard ({e})") from None
        _write_table(self.out_dir, index, table)


def _write_table(out_dir: Path, index: int, table: pa.Table) -> None:
    tmp = out_dir / f".part-{index:05d}.parquet.tmp"
    pq.write_table(table, tmp)
    with open(tmp, "rb+") as fh:
        os.fsync(fh.fileno())
    os.replace(tmp, out_dir / f"part-{index:05d}.parquet")


def _manifest(scorer_dir: Path, meta: dict, input_path: str, shard_size: int, engine: str) -> dict:
    if is_remote(input_path):  # a Hub dataset or URL: identified by name
        source: dict = {"input": input_path}
    else:
        st = os.stat(input_path)
        source = {"input": str(Path(input_path).resolve()), "input_size": st.st_size, "input_mtime": int(st.st_mtime)}
    return {**source, "scorer": str(scorer_dir.resolve()), "scorer_created": meta.get("created"),
            "shard_size": shard_size, "engine": engine}


def default_workers(scorer_dir: Path) -> int:
    """Processes for the local engine: one per core for hashing; one for neural scorers (torch uses the cores)."""
    features = Scorer.read_meta(scorer_dir).get("features", "")
    return (os.cpu_count() or 1) if features == "hashing" else 1


def score_corpus(scorer_dir: str | Path, input_path: str, out_dir: str | Path, *, engine: str = "local",
                 batch_size: int = 1024, shard_size: int = 20_000, workers: int | None = None,
                 columns: Columns | None = None) -> ScoreSummary:
    scorer_dir, out_dir = Path(scorer_dir), Path(out_dir)
    meta = Scorer.read_meta(scorer_dir)  # fail early on a bad scorer directory (the model loads in the workers)
    if not is_remote(input_path) and not Path(input_path).exists():
        raise InputError(f"{input_path}: no such file or directory")
    shards = scored_dir(out_dir)
    manifest = _manifest(scorer_dir, meta, input_path, shard_size, engine)
    shards.check(manifest)  # the one resume rule: ours, with these inputs and settings, or refused
    if shards.is_complete():
        log.info("%s is complete already", out_dir)
        return ScoreSummary.read(shards.done)
    workers = workers or default_workers(scorer_dir)
    fresh = not out_dir.exists()
    _first_document(input_path, columns)  # an unreadable or empty input fails here, before anything is written
    if engine == "ray":
        return score_with_ray(scorer_dir, input_path, shards, manifest, batch_size=batch_size, workers=workers,
                              text_column=(columns or Columns()).text)
    try:
        shards.open(manifest)
        return _score_local(scorer_dir, input_path, shards, batch_size=batch_size, shard_size=shard_size,
                            workers=workers, columns=columns)
    except InputError:
        if fresh:  # bad input: leave nothing behind (a resumed run keeps the shards it had)
            shards.remove_own()
        raise


def _first_document(input_path: str, columns: Columns | None) -> None:
    if next(iter(iter_documents(input_path, columns)), None) is None:
        raise InputError(f"{input_path}: no documents")


def _score_local(scorer_dir: Path, input_path: str, shards: ShardDir, *, batch_size: int, shard_size: int,
                 workers: int, columns: Columns | None) -> ScoreSummary:
    out_dir = shards.root
    done_shards = shards.sealed()
    skip = sum(pq.ParquetFile(f).metadata.num_rows for f in done_shards)
    if skip:
        log.info("resuming: %d complete shards (%d documents) kept", len(done_shards), skip)
    writer = ShardWriter(out_dir, done_shards)
    docs = iter_documents(input_path, columns)
    for _ in islice(docs, skip):  # read (and validate) but do not score what is already written
        pass
    n, shard, pending = 0, len(done_shards), []
    t_start = time.monotonic()
    # spawn, not fork: a forked copy of a process that has started torch's thread pools can hang
    with cf.ProcessPoolExecutor(workers, mp_context=mp.get_context("spawn"), initializer=_init_worker,
                                initargs=(str(scorer_dir), os.getpid())) as pool, \
            tqdm(desc="score", unit="doc", initial=skip, smoothing=0.1) as bar:
        ready: set[int] = set()
        while len(ready) < workers:  # wait until every worker has loaded the scorer
            ready |= set(pool.map(_ready, [0.05] * workers))
        t0 = time.monotonic()
        in_flight: list[tuple[list[Document], cf.Future]] = []
        batches = _batches(docs, min(batch_size, shard_size))

        def drain_one() -> None:
            nonlocal shard, pending, n
            batch, fut = in_flight.pop(0)
            scores, tokens = fut.result()
            pending += [output_row(d, s, t) for d, s, t in zip(batch, scores.tolist(), tokens, strict=True)]
            n += len(batch)
            bar.update(len(batch))
            while len(pending) >= shard_size:
                writer.write(shard, pending[:shard_size])
                pending, shard = pending[shard_size:], shard + 1

        for batch in batches:
            in_flight.append((batch, pool.submit(_score_texts, [d.text for d in batch])))
            if len(in_flight) >= 2 * workers:
                drain_one()
        while in_flight:
            drain_one()
        if pending:
            writer.write(shard, pending)
            shard += 1
    wall = time.monotonic() - t0
    summary = ScoreSummary(rows=skip + n, shards=shard, scored_now=n, wall_s=round(time.monotonic() - t_start, 2),
                           startup_s=round(t0 - t_start, 2), docs_per_s=round(n / wall, 1) if wall > 0 else None,
                           engine="local", workers=workers)
    summary.write(shards.done)
    log.info("scored %d documents (%d now) in %.1f s: %s docs/s", skip + n, n, wall, summary.docs_per_s)
    return summary


