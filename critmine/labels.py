"""Human labels as an append-only log beside the pairs file: every decision is fsynced at once.

State (who decided what, where to resume) is a replay of the log, so a crash or a closed tab loses nothing.
"""

from __future__ import annotations

import json
import os
import time
from collections import Counter
from itertools import combinations
from pathlib import Path

from critmine.eval.metrics import cohen_kappa
from critmine.io import InputError, read_pairs
from critmine.records import Pair

DECISIONS = ("a", "b", "tie", "skip")


def log_path(pairs_file: str | Path) -> Path:
    p = Path(pairs_file)
    return p.with_name(p.name + ".labels.jsonl")


class LabelLog:
    def __init__(self, path: str | Path):
        self.path = Path(path)

    def append(self, event: dict) -> None:
        """Write one event and fsync before returning: once the browser hears "ok", the label is on disk."""
        line = json.dumps({**event, "ts": time.time()}, ensure_ascii=False) + "\n"
        with self.path.open("a", encoding="utf-8") as fh:
            fh.write(line)
            fh.flush()
            os.fsync(fh.fileno())

    def events(self) -> list[dict]:
        if not self.path.exists():
            return []
        out = []
        for line in self.path.read_text(encoding="utf-8").splitlines():
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:
                continue  # a line torn by a crash mid-write was never acknowledged
        return out

    def decisions(self, annotator: str) -> dict[str, dict]:
        """pair id → the annotator's standing decision, after replaying labels and undos in order."""
        stack: list[dict] = []
        for e in self.events():
            if e.get("annotator") != annotator:
                continue
            if e.get("action") == "label":
                stack = [d for d in stack if d["pair_id"] != e["pair_id"]] + [e]
            elif e.get("action") == "undo" and stack:
                stack.pop()
        return {d["pair_id"]: d for d in stack}

    def annotators(self) -> list[str]:
        return sorted({e["annotator"] for e in self.events() if "annotator" in e})

    def label(self, annotator: str, pair_id: str, decision: str, reason: str = "") -> None:
        if decision not in DECISIONS:
            raise ValueError(f"unknown decision {decision!r}")
        self.append({"action": "label", "annotator": annotator, "pair_id": pair_id, "label": decision,
                     "reason": reason})

    def undo(self, annotator: str) -> str | None:
        """Take back the annotator's latest standing decision; returns its pair id."""
        standing = self.decisions(annotator)
        if not standing:
            return None
        last = max(standing.values(), key=lambda d: d["ts"])
        self.append({"action": "undo", "annotator": annotator, "pair_id": last["pair_id"]})
        return last["pair_id"]


def next_index(pairs: list[Pair], decided: dict[str, dict]) -> int:
    """Index of the first pair the annotator has not decided (len(pairs) when all are done)."""
    return next((i for i, p in enumerate(pairs) if p.id not in decided), len(pairs))


def merged_labels(pairs: list[Pair], log: LabelLog) -> dict[str, str]:
    """pair id → majority a/b over annotators (ties and skips abstain; an even split gives no label)."""
    votes: dict[str, Counter] = {p.id: Counter() for p in pairs}
    for who in log.annotators():
        for pid, d in log.decisions(who).items():
            if pid in votes and d["label"] in ("a", "b"):
                votes[pid][d["label"]] += 1
    out = {}
    for pid, c in votes.items():
        if c and c["a"] != c["b"]:
            out[pid] = "a" if c["a"] > c["b"] else "b"
    return out


def export(pairs: list[Pair], log: LabelLog) -> list[Pair]:
    labels = merged_labels(pairs, log)
    return [p.model_copy(update={"better": labels[p.id]}) for p in pairs if p.id in labels]


def check_export_target(path: str | Path, pairs: list[Pair], pairs_file: str | Path) -> None:
    """An export replaces only an earlier export of the same pairs (every id in it is one of `pairs`) or an empty
    file (an export made before any label); never the pairs file itself."""
    if Path(path).resolve() == Path(pairs_file).resolve():
        raise InputError(f"{path}: is the pairs file being labelled; choose another --export")
    if not Path(path).exists() or Path(path).stat().st_size == 0:
        return
    try:
        ours = {p.id for p in read_pairs(path)} <= {p.id for p in pairs}
    except InputError:
        ours = False
    if not ours:
        raise InputError(f"{path}: exists and is not an export of {pairs_file}; choose another --export (critmine "
                         "never replaces a file it did not write)")


def stats(pairs: list[Pair], log: LabelLog) -> dict:
    ids = {p.id for p in pairs}
    who = log.annotators()
    per = {w: {pid: d["label"] for pid, d in log.decisions(w).items() if pid in ids} for w in who}
    report = {"pairs": len(pairs), "annotators": {w: dict(Counter(per[w].values())) for w in who}, "agreement": []}
    for x, y in combinations(who, 2):
        common = [pid for pid in per[x] if pid in per[y] and per[x][pid] != "skip" and per[y][pid] != "skip"]
        lx, ly = [per[x][p] for p in common], [per[y][p] for p in common]
        report["agreement"].append({"annotators": [x, y], "n": len(common),
                                    "percent": (sum(a == b for a, b in zip(lx, ly, strict=True)) / len(common))
                                    if common else None,
                                    "kappa": cohen_kappa(lx, ly) if common else None})
    report["merged_labelled"] = len(merged_labels(pairs, log))
    return report
