"""Readers and writers for pairs and documents.

JSONL (also .gz / .zst) is read line by line (so every error names its line); Parquet, CSV, saved `datasets`
datasets, Hub dataset ids and remote URLs (hf://, s3://, https://: fsspec) are streamed through `datasets`. Columns
map to record fields through `critmine.columns`; every other column is kept. Every reader validates as it goes and
raises `InputError("file:line: why")`.
"""

from __future__ import annotations

import gzip
import io
import json
import os
import re
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import datasets
import pyarrow.parquet as pq
import zstandard
from pydantic import BaseModel, ValidationError

from critmine.columns import Columns, document_fields, pair_fields
from critmine.llm.cache import CACHE_FILE
from critmine.records import Document, Pair

R = TypeVar("R", Pair, Document)


class InputError(Exception):
    """Bad user input; the message names the file and line."""


def response_caches(paths: Iterable[str | Path]) -> list[Path]:
    """The response caches that `paths` name: a cache file, or a run directory with every llm_cache.sqlite in it."""
    found: list[Path] = []
    for path in map(Path, paths):
        files = sorted(path.rglob(CACHE_FILE)) if path.is_dir() else [path] if path.is_file() else []
        if not files:
            raise InputError(f"{path}: no response cache ({CACHE_FILE}) there to reuse")
        for f in files:
            with open(f, "rb") as fh:
                if fh.read(16) != b"SQLite format 3\x00":
                    raise InputError(f"{f}: not a response cache (not an SQLite file)")
        found += files
    return found


def _describe(err: ValidationError, cols: Columns) -> str:
    parts = []
    for e in err.errors():
        field = ".".join(str(x) for x in e["loc"]) or "record"
        if e["type"] == "missing":
            column = getattr(cols, field, field) if field in ("id", "text", "a", "b") else field
            parts.append(f"missing column '{column}'{cols.hint(field)}")
        elif e["type"] == "extra_forbidden":
            parts.append(f"unknown field '{field}'")
        elif field == "better":
            parts.append("field 'better' must be \"a\", \"b\" or null")
        else:
            parts.append(f"field '{field}': {e['msg'].removeprefix('Value error, ')}")
    return "; ".join(parts)


def _open_binary(path: Path) -> Any:
    """A file, decompressed on the fly when it ends in .gz or .zst."""
    suffix = path.suffix.lower()
    if suffix == ".gz":
        return gzip.open(path, "rb")
    if suffix == ".zst":
        return io.BufferedReader(zstandard.ZstdDecompressor().stream_reader(path.open("rb")))
    return path.open("rb")


def _lines(path: Path) -> Iterator[tuple[int, bytes]]:
    lineno = 0
    try:
        with _open_binary(path) as fh:
            for lineno, raw in enumerate(fh, 1):  # noqa: B007 - lineno is read in the error below
                yield lineno, raw
    except (OSError, EOFError, zstandard.ZstdError) as e:
        raise InputError(f"{path}:{lineno + 1}: cannot read ({_first_line(e)})") from None


def _jsonl_rows(path: Path) -> Iterator[tuple[str, Any]]:
    for lineno, raw in _lines(path):
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
        fmt = FILE_FORMATS[path.suffix.lower()]
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


HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+(:[\w.-]+)?$")  # owner/name[:split]
FILE_FORMATS = {".parquet": "parquet", ".csv": "csv", ".jsonl": "json", ".json": "json", ".ndjson": "json"}
JSONL_SUFFIXES = (".jsonl", ".json", ".ndjson")


def is_remote(source: str | os.PathLike) -> bool:
    """A Hub dataset id (owner/name[:split]) or a URL (hf://, s3://, https://…) rather than a local path."""
    s = str(source)
    file_like = Path(s.split(":")[0]).suffix.lower() in (*FILE_FORMATS, ".gz", ".zst")  # a local file, mistyped
    return "://" in s or (bool(HUB_ID.match(s)) and not file_like and not Path(s).exists())


def _remote_rows(source: str) -> Iterator[tuple[str, Any]]:
    """Rows of a Hub dataset or a remote file, streamed by `datasets` (files through fsspec)."""
    datasets.disable_progress_bars()
    name = source.split("://", 1)[-1]
    suffixes = [x.lower() for x in Path(name).suffixes[-2:]]
    fmt = next((FILE_FORMATS[x] for x in reversed(suffixes) if x in FILE_FORMATS), None)
    try:
        if "://" in source and fmt:
            ds: Any = datasets.load_dataset(fmt, data_files=source, split="train", streaming=True)
        else:
            repo, _, split = source.removeprefix("hf://datasets/").partition(":")
            ds = datasets.load_dataset(repo, split=split or "train", streaming=True)
    except Exception as e:  # noqa: BLE001 - any failure to open is a user error here
        local = "" if "://" in source else "no such local file or directory, and "  # owner/name: a path mistyped?
        raise InputError(f"{source}: {local}cannot open as a dataset ({type(e).__name__}: {_first_line(e)})"
                         ) from None
    try:
        for i, row in enumerate(ds):
            yield f"{source}: row {i + 1}", row
    except Exception as e:  # noqa: BLE001 - datasets raises many types for unreadable data
        raise InputError(f"{source}: cannot read ({type(e).__name__}: {_first_line(e)})") from None


def iter_rows(path: str | os.PathLike) -> Iterator[tuple[str, Any]]:
    """Yield (location, raw row) from JSONL (.gz, .zst), Parquet, CSV, a saved dataset directory, a Hub dataset id
    or a remote URL."""
    if is_remote(path):
        return _remote_rows(str(path))
    p = Path(path)
    if not p.exists():
        raise InputError(f"{p}: no such file or directory")
    suffixes = [x.lower() for x in p.suffixes[-2:]]
    plain = suffixes[0] if len(suffixes) == 2 and suffixes[1] in (".gz", ".zst") else p.suffix.lower()
    if p.is_dir() or p.suffix.lower() in (".parquet", ".csv"):
        return _datasets_rows(p)
    if plain in JSONL_SUFFIXES:
        return _jsonl_rows(p)
    raise InputError(f"{p}: unsupported format (use .jsonl[.gz|.zst], .parquet, .csv, a saved datasets directory, "
                     "a Hub dataset id or an hf:// URL)")


def iter_records(path: str | os.PathLike, model: type[R], columns: Columns | None = None) -> Iterator[R]:
    """Stream validated records (columns mapped by `columns`, the others kept); duplicate ids are an error."""
    seen: set[str] = set()
    for where, rec in validated(iter_rows(path), model, columns):
        if rec.id in seen:
            raise InputError(f"{where}: duplicate id '{rec.id}'")
        seen.add(rec.id)
        yield rec


def validated(rows: Iterable[tuple[str, Any]], model: type[R], columns: Columns | None = None
              ) -> Iterator[tuple[str, R]]:
    """(location, record) for (location, raw row): columns mapped, the record validated (a Document keeps its row);
    InputError naming the location otherwise."""
    cols = columns or Columns()
    fields = pair_fields if model is Pair else document_fields
    for where, raw in rows:
        if not isinstance(raw, dict):
            raise InputError(f"{where}: expected a JSON object, got {type(raw).__name__}")
        try:
            rec = model.model_validate(fields(raw, cols))
        except json.JSONDecodeError:
            raise InputError(f"{where}: field 'meta' is not valid JSON") from None
        except ValidationError as e:
            raise InputError(f"{where}: {_describe(e, cols)}") from None
        if isinstance(rec, Document):
            rec.row = raw
        yield where, rec


def read_pairs(path: str | os.PathLike, *, labelled: bool = False, columns: Columns | None = None) -> list[Pair]:
    """Read all pairs; with `labelled`, every pair must have `better`."""
    pairs = []
    for i, pair in enumerate(iter_records(path, Pair, columns), 1):
        if labelled and pair.better is None:
            raise InputError(f"{path}: pair '{pair.id}' (record {i}) has no label ('better' is null)")
        pairs.append(pair)
    if not pairs:
        raise InputError(f"{path}: no pairs")
    return pairs


def iter_documents(path: str | os.PathLike, columns: Columns | None = None) -> Iterator[Document]:
    return iter_records(path, Document, columns)


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


def write_text_atomic(path: str | os.PathLike, text: str) -> None:
    """Write text through a temp file and rename, so readers never see a partial file."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile("w", dir=p.parent, delete=False, suffix=".tmp", encoding="utf-8") as fh:
        fh.write(text)
    publish_file(fh, p)


def write_json_atomic(path: str | os.PathLike, obj: Any) -> None:
    write_text_atomic(path, json.dumps(obj, indent=2, ensure_ascii=False, default=str) + "\n")
