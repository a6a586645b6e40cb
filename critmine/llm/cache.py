"""Persistent response cache: SQLite in the run directory, one row per finished call."""

from __future__ import annotations

import hashlib
import json
import sqlite3
from collections.abc import Sequence
from pathlib import Path
from typing import Any

CACHE_FILE = "llm_cache.sqlite"  # a run directory's response cache


def request_key(model: str, messages: list[dict], params: dict) -> str:
    """Hash of endpoint model + messages + sampling/format params."""
    blob = json.dumps({"model": model, "messages": messages, "params": params}, sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


def _open_read_only(path: Path) -> sqlite3.Connection:
    """Another run's cache, read-only. On read-only storage (a shared mount, a directory one may not write) SQLite
    cannot create the WAL index beside a WAL-mode file; such a file is read as immutable (no other writer there)."""
    uri = path.resolve().as_uri()
    db = sqlite3.connect(f"{uri}?mode=ro", uri=True, check_same_thread=False)
    try:
        db.execute("SELECT COUNT(*) FROM sqlite_master").fetchone()
    except sqlite3.OperationalError as e:
        if getattr(e, "sqlite_errorcode", None) != sqlite3.SQLITE_CANTOPEN:
            raise
        db.close()
        db = sqlite3.connect(f"{uri}?immutable=1", uri=True, check_same_thread=False)
    return db


class ResponseCache:
    """Key → raw response JSON. Every put is committed at once, so a kill loses no finished call."""

    def __init__(self, path: str | Path, read_from: Sequence[str | Path] = ()):
        """`read_from`: other runs' caches, opened read-only; an answer found there is copied into this one (so
        this run replays without them) and never paid again."""
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=60)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("CREATE TABLE IF NOT EXISTS responses (key TEXT PRIMARY KEY, response TEXT NOT NULL)")
        self._others = [_open_read_only(Path(p)) for p in read_from if Path(p).resolve() != self.path.resolve()]

    def get(self, key: str) -> dict[str, Any] | None:
        query = "SELECT response FROM responses WHERE key = ?"
        row = self._db.execute(query, (key,)).fetchone()
        if row:
            return json.loads(row[0])
        for other in self._others:
            if row := other.execute(query, (key,)).fetchone():
                self._db.execute("INSERT OR REPLACE INTO responses VALUES (?, ?)", (key, row[0]))
                return json.loads(row[0])
        return None

    def put(self, key: str, response: dict[str, Any]) -> None:
        self._db.execute("INSERT OR REPLACE INTO responses VALUES (?, ?)", (key, json.dumps(response)))

    def __len__(self) -> int:
        return self._db.execute("SELECT COUNT(*) FROM responses").fetchone()[0]

    def close(self) -> None:
        for db in (self._db, *self._others):
            db.close()
