"""Readers and writers for pairs and documents.

JSONL is read line by line (so every error names its line); Parquet, CSV and saved `datasets` datasets are
streamed through `datasets`. Every reader validates as it goes and raises `InputError("file:line: why")`.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import datasets
import pyarrow.parquet as pq
from pydantic import BaseModel, ValidationError

from critmine.records import Document, Pair

R = TypeVar("R", Pair, Document)


class InputError(Exception):
    """Bad user input; the message names the file and line."""


def _describe(err: ValidationError) -> str:
    parts = []
    for e in err.errors():
        field = ".".join(str(x) for x in e["loc"]) or "record"
        if e["type"] == "missing":
            parts.append(f"missing field '{field}'")
        elif e["type"] == "extra_forbidden":
            parts.append(f"unknown field '{field}'")
        elif field == "better":
            parts.append("field 'better' must be \"a\", \"b\" or null")
        else:
            parts.append(f"field '{field}': {e['msg'].removeprefix('Value error, ')}")
    return "; ".join(parts)


def _jsonl_rows(path: Path) -> Iterator[tuple[str, Any]]:
    with path.open("rb") as fh:
        for lineno, raw in enumerate(fh, 1):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as e:
                raise InputError(f"{path}:{lineno}: not UTF-8 text (byte 0x{raw[e.start]:02x} at column "
                                 f"{e.start + 1}); is this a binary file?") from None
            if not line.strip():
                continue
            try:
                yield f"{path}:{lineno}", json.loads(line)
            except json.JSONDecodeError as e:
                raise InputError(f"{path}:{lineno}: invalid JSON ({e.msg})") from None


def _datasets_rows(path: Path) -> Iterator[tuple[str, Any]]:
    datasets.disable_progress_bars()
    if path.is_dir():
        try:
            ds: Any = datasets.load_from_disk(str(path))
        except Exception as e:  # noqa: BLE001 - any failure to open is a user error here
            raise InputError(f"{path}: not a saved datasets dataset ({e})") from None
        if isinstance(ds, datasets.DatasetDict):
            ds = ds[next(iter(ds))]
        first_row = 1
    else:
        fmt = {".parquet": "parquet", ".csv": "csv"}[path.suffix.lower()]
        if fmt == "parquet":
            _check_parquet(path)
        try:
            ds = datasets.load_dataset(fmt, data_files=str(path), split="train", streaming=True)
        except Exception as e:  # noqa: BLE001 - any failure to open is a user error here
            raise InputError(f"{path}: cannot read as {fmt} ({type(e).__name__}: {_first_line(e)})") from None
        first_row = 2 if fmt == "csv" else 1  # CSV line 1 is the header
    kind = "line" if path.suffix.lower() == ".csv" else "row"
    try:
        for i, row in enumerate(ds):
            where = f"{path}:{i + first_row}" if kind == "line" else f"{path}: row {i + 1}"
            yield where, row
    except InputError:
        raise
    except Exception as e:  # noqa: BLE001 - datasets raises many types for unreadable files
        raise InputError(f"{path}: cannot read ({type(e).__name__}: {_first_line(e)})") from None


def _first_line(e: BaseException) -> str:
    return (str(e).strip().splitlines() or [""])[0][:300]


def _check_parquet(path: Path) -> None:
    """A file that is not Parquet, named as one: one line instead of an Arrow traceback."""
    try:
        pq.ParquetFile(path)
    except Exception as e:  # noqa: BLE001 - Arrow raises several types for a broken file
        raise InputError(f"{path}: not a Parquet file ({_first_line(e)})") from None


def iter_rows(path: str | os.PathLike) -> Iterator[tuple[str, Any]]:
    """Yield (location, raw row) from JSONL, Parquet, CSV or a saved dataset directory."""
    p = Path(path)
    if not p.exists():
        raise InputError(f"{p}: no such file or directory")
    suffix = p.suffix.lower()
    if p.is_dir() or suffix in (".parquet", ".csv"):
        return _datasets_rows(p)
    if suffix in (".jsonl", ".json", ".ndjson"):
        return _jsonl_rows(p)
    raise InputError(f"{p}: unsupported format (use .jsonl, .parquet, .csv or a saved datasets directory)")


def _coerce(row: Any, where: str) -> dict:
    if not isinstance(row, dict):
        raise InputError(f"{where}: expected a JSON object, got {type(row).__name__}")
    row = dict(row)
    meta = row.get("meta")
    if isinstance(meta, str):  # CSV stores meta as JSON text
        try:
            row["meta"] = json.loads(meta) if meta.strip() else {}
        except json.JSONDecodeError:
            raise InputError(f"{where}: field 'meta' is not valid JSON") from None
    elif meta is None:
        row.pop("meta", None)
    if row.get("better") == "":
        row["better"] = None
    return row


def iter_records(path: str | os.PathLike, model: type[R]) -> Iterator[R]:
    """Stream validated records; duplicate ids are an error."""
    seen: set[str] = set()
    for where, raw in iter_rows(path):
        try:
            rec = model.model_validate(_coerce(raw, where))
        except ValidationError as e:
            raise InputError(f"{where}: {_describe(e)}") from None
        rid = rec.id
        if rid in seen:
            raise InputError(f"{where}: duplicate id '{rid}'")
        seen.add(rid)
        yield rec


def read_pairs(path: str | os.PathLike, *, labelled: bool = False) -> list[Pair]:
    """Read all pairs; with `labelled`, every pair must have `better`."""
    pairs = []
    for i, pair in enumerate(iter_records(path, Pair), 1):
        if labelled and pair.better is None:
            raise InputError(f"{path}: pair '{pair.id}' (record {i}) has no label ('better' is null)")
        pairs.append(pair)
    if not pairs:
        raise InputError(f"{path}: no pairs")
    return pairs


def iter_documents(path: str | os.PathLike) -> Iterator[Document]:
    return iter_records(path, Document)


def check_output_dir(path: str | os.PathLike, what: str, own: tuple[str, ...] = ()) -> None:
    """The one rule for a directory a command writes: it is missing, empty, or this command's own (it holds one of
    the `own` files the command writes). Anything else is refused: critmine never writes into, or clears, a
    directory it did not create."""
    p = Path(path)
    if not p.exists():
        return
    if not p.is_dir() or (any(p.iterdir()) and not any((p / name).exists() for name in own)):
        raise InputError(f"{p}: exists and is not {what}; choose another --out (critmine never writes into a "
                         "directory it did not create)")


def check_output_file(path: str | os.PathLike, marker: str | os.PathLike, what: str) -> None:
    """An output file is replaced only when it is this command's own (its `marker` file is beside it)."""
    if Path(path).exists() and not Path(marker).exists():
        raise InputError(f"{path}: exists and was not written by {what}; choose another --out (critmine never "
                         "replaces a file it did not write)")


def publish_file(fh, target: Path) -> None:
    """fsync a finished temp file, give it ordinary permissions and move it into place."""
    with open(fh.name, "rb+") as f:
        os.fsync(f.fileno())
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(fh.name, 0o666 & ~umask)
    os.replace(fh.name, target)


def write_jsonl_atomic(path: str | os.PathLike, records: Iterable[BaseModel | dict]) -> None:
    """Write JSONL through a temp file and rename, so readers never see a partial file."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile("w", dir=p.parent, delete=False, suffix=".tmp", encoding="utf-8") as fh:
        for r in records:
            fh.write((r.model_dump_json() if isinstance(r, BaseModel) else json.dumps(r, ensure_ascii=False)) + "\n")
    publish_file(fh, p)


def write_json_atomic(path: str | os.PathLike, obj: Any) -> None:
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile("w", dir=p.parent, delete=False, suffix=".tmp", encoding="utf-8") as fh:
        json.dump(obj, fh, indent=2, ensure_ascii=False, default=str)
        fh.write("\n")
    publish_file(fh, p)
