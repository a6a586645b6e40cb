"""Input columns to records: which column holds a record's id, text or texts and label; every other column is kept.

A corpus row such as FineWeb's {id, text, url, date, dump, …} becomes a Document whose meta holds url, date, dump,
…; the row itself stays with the record (`Document.row`) so outputs can write every column back. Preference data
with `chosen` / `rejected` columns becomes pairs whose sides are put in a stable pseudo-random order (a hash of the
pair), so the better text is not always A. Without an id column, ids can be generated from a hash of the texts.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from pydantic import BaseModel, Field

CHOSEN, REJECTED = "chosen", "rejected"
LABELS = {"a": "a", "b": "b", "A": "a", "B": "b", "": None, None: None}


class Columns(BaseModel):
    """Where a record's fields are in an input row (defaults: critmine's own names)."""

    id: str = Field("id", description="the column of record ids")
    text: str = Field("text", description="documents: the column of texts")
    a: str = Field("a", description="pairs: the column of the first text")
    b: str = Field("b", description="pairs: the column of the second text")
    label: str = Field("better", description="pairs: the column saying which text is better (a, b or empty)")
    generate_ids: bool = Field(False, description="make ids from a hash of the text(s) when there is no id column")

    def hint(self, field: str) -> str:
        """What to tell a user whose rows lack `field`."""
        flag = {"text": "--text-column", "id": "--id-column (or --generate-ids)", "a": "--a-column",
                "b": "--b-column"}.get(field)
        return f" (name the column with {flag})" if flag else ""


def stable_id(*texts: str) -> str:
    """An id from the texts alone: the same input gives the same id on every machine and run."""
    h = hashlib.sha1("\x1f".join(texts).encode("utf-8")).hexdigest()
    return h[:16]


def _meta(row: dict[str, Any], used: set[str]) -> Any:
    """The record's meta: its own `meta` (a dict, JSON text from CSV, or absent) plus every column not used."""
    meta = row.get("meta")
    if isinstance(meta, str):
        meta = json.loads(meta) if meta.strip() else {}  # JSONDecodeError: the caller names the row
    if meta is None:
        meta = {}
    if not isinstance(meta, dict):
        return meta  # validation refuses it with the row's location
    extra = {k: v for k, v in row.items() if k not in used and k != "meta"}
    return {**extra, **meta}


def document_fields(row: dict[str, Any], cols: Columns) -> dict[str, Any]:
    """The fields of a Document from one input row (validation comes after)."""
    out: dict[str, Any] = {"meta": _meta(row, {cols.id, cols.text})}
    if cols.text in row:
        out["text"] = row[cols.text]
    if cols.id in row and row[cols.id] is not None:
        out["id"] = row[cols.id]
    elif cols.generate_ids and isinstance(out.get("text"), str):
        out["id"] = stable_id(out["text"])
    return out


def pair_fields(row: dict[str, Any], cols: Columns) -> dict[str, Any]:
    """The fields of a Pair from one input row: a/b/label columns, or chosen/rejected (validation comes after)."""
    if cols.a not in row and CHOSEN in row and REJECTED in row:
        chosen, rejected = row[CHOSEN], row[REJECTED]
        pid = row.get(cols.id) if row.get(cols.id) is not None else stable_id(str(chosen), str(rejected))
        swap = int(hashlib.sha1(str(pid).encode("utf-8")).hexdigest(), 16) % 2 == 1
        out = {"id": pid, "a": rejected if swap else chosen, "b": chosen if swap else rejected,
               "better": "b" if swap else "a", "meta": _meta(row, {cols.id, CHOSEN, REJECTED})}
        return out
    out = {"meta": _meta(row, {cols.id, cols.a, cols.b, cols.label})}
    for field, col in (("a", cols.a), ("b", cols.b)):
        if col in row:
            out[field] = row[col]
    label = row.get(cols.label)
    out["better"] = LABELS.get(label, label) if isinstance(label, str | None) else label
    if cols.id in row and row[cols.id] is not None:
        out["id"] = row[cols.id]
    elif cols.generate_ids and isinstance(out.get("a"), str) and isinstance(out.get("b"), str):
        out["id"] = stable_id(out["a"], out["b"])
    return out
