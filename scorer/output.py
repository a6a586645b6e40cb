"""The output of `critmine score`, whichever engine wrote it: Parquet shards part-NNNNN.parquet (every input column
plus `critmine_score` and `n_tokens`), a manifest that makes the directory this command's own (so it may be
resumed), and `_SUCCESS` once complete (critmine.shards)."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from critmine.io import InputError
from critmine.shards import ShardDir

SUCCESS, MANIFEST = "_SUCCESS", "_manifest.json"
SCORE, N_TOKENS = "critmine_score", "n_tokens"
REQUIRED = ("id", SCORE, N_TOKENS)  # every other column is the input's


def scored_dir(out_dir: str | Path) -> ShardDir:
    """The output directory of `critmine score`, under the one resume rule for sharded outputs."""
    return ShardDir(out_dir, "a critmine scoring output", manifest=MANIFEST, done=SUCCESS, shard_glob="part-*.parquet")


def scored_files(path: str | Path) -> list[Path]:
    """The Parquet files of a scored output, in row order (the shards of a directory, or the one file)."""
    p = Path(path)
    return sorted(p.glob("*.parquet")) if p.is_dir() else [p]


def read_scored(path: str | Path, columns: list[str] | None = None) -> pa.Table:
    """The scored rows (every shard, in order) of a finished `critmine score` output."""
    p = Path(path)
    if not p.exists():
        raise InputError(f"{p}: no such file or directory (the output of `critmine score`)")
    if p.is_dir() and not (p / SUCCESS).exists():
        raise InputError(f"{p}: scoring did not finish (no {SUCCESS}); rerun `critmine score` to complete it")
    files = scored_files(p)
    if not files:
        raise InputError(f"{p}: no scored Parquet files")
    tables = []
    for f in files:
        try:
            names = pq.read_schema(f).names
        except Exception as e:  # noqa: BLE001 - Arrow raises several types for a broken file
            raise InputError(f"{f}: not a Parquet file ({(str(e).splitlines() or [''])[0][:200]})") from None
        missing = sorted(set(columns or REQUIRED) - set(names))
        if missing:
            raise InputError(f"{f}: not a `critmine score` output (missing column(s) {', '.join(missing)})")
        tables.append(pq.read_table(f, columns=columns))  # only the columns asked for: texts stay on disk
    return pa.concat_tables(tables)
