"""The output directory of `critmine score`, whichever engine wrote it: Parquet shards part-NNNNN.parquet, a
manifest that makes the directory this command's own (so it may be resumed), and `_SUCCESS` once complete."""

from __future__ import annotations

import contextlib
import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from critmine.io import InputError

SUCCESS, MANIFEST = "_SUCCESS", "_manifest.json"
SCHEMA = pa.schema([("id", pa.string()), ("text", pa.string()), ("meta", pa.string()), ("score", pa.float64()),
                    ("n_tokens", pa.int64())])


def check_resume(out_dir: Path, manifest: dict) -> None:
    """An existing output directory may be resumed only when its manifest is this run's (InputError otherwise)."""
    f = out_dir / MANIFEST
    if not f.exists():
        if any(out_dir.iterdir()):
            raise InputError(f"{out_dir}: exists and is not a critmine scoring output; choose another --out")
        return
    old = json.loads(f.read_text())
    changed = [k for k in manifest if old.get(k) != manifest[k]]
    if changed:
        raise InputError(f"{out_dir}: holds a scoring run with other settings ({', '.join(changed)} changed); "
                         "choose another --out")


def remove_own_output(out_dir: Path) -> None:
    """Remove what this command wrote into a directory it created (its manifest and shards), then the directory
    if nothing else is in it: never a file critmine did not write."""
    for f in [out_dir / MANIFEST, out_dir / SUCCESS, *out_dir.glob("part-*.parquet"), *out_dir.glob(".part-*.tmp")]:
        f.unlink(missing_ok=True)
    with contextlib.suppress(OSError):
        out_dir.rmdir()


def read_scored(path: str | Path, columns: list[str] | None = None) -> pa.Table:
    """The scored rows (every shard, in order) of a finished `critmine score` output."""
    p = Path(path)
    if not p.exists():
        raise InputError(f"{p}: no such file or directory (the output of `critmine score`)")
    if p.is_dir() and not (p / SUCCESS).exists():
        raise InputError(f"{p}: scoring did not finish (no {SUCCESS}); rerun `critmine score` to complete it")
    files = sorted(p.glob("*.parquet")) if p.is_dir() else [p]
    if not files:
        raise InputError(f"{p}: no scored Parquet files")
    tables = []
    for f in files:
        try:
            names = pq.read_schema(f).names
        except Exception as e:  # noqa: BLE001 - Arrow raises several types for a broken file
            raise InputError(f"{f}: not a Parquet file ({(str(e).splitlines() or [''])[0][:200]})") from None
        missing = sorted(set(columns or SCHEMA.names) - set(names))
        if missing:
            raise InputError(f"{f}: not a `critmine score` output (missing column(s) {', '.join(missing)})")
        tables.append(pq.read_table(f, columns=columns))  # only the columns asked for: texts stay on disk
    return pa.concat_tables(tables)
