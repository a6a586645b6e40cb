"""Typed run artifacts: each file a run writes has one model here, and one reader that validates it.

`CriteriaSet` is criteria.json, the result of `critmine mine`: the selected criteria with their measured accuracy,
the ones not selected or replaced, the flow's vote on the seeds and the seed pair ids (so no evaluation counts them).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from pydantic import BaseModel, Field, ValidationError

from critmine.io import InputError, write_json_atomic
from critmine.records import Criterion


class VoteStats(BaseModel):
    """Agreement of a vote with human labels (eval.metrics.agreement_stats)."""

    accuracy: float | None = None
    n_correct: int = 0
    n_judged: int = 0
    coverage: float = 0.0
    ci_low: float = 0.0
    ci_high: float = 1.0
    kappa: float | None = None


class CriteriaSet(BaseModel):
    """criteria.json of a mining run."""

    criteria: list[Criterion] = Field(description="the selected criteria, in the order they vote")
    not_selected: list[Criterion] = Field(default_factory=list)
    replaced: list[Criterion] = Field(default_factory=list, description="low criteria the manager replaced")
    knowledge_base_candidates: list[dict] = Field(default_factory=list, description="retrieved and scored on seeds")
    flow_on_seeds: dict[str, VoteStats] = Field(default_factory=dict, description="soft and majority vote on seeds")
    iterations_run: int = 0
    seed_pair_ids: list[str] | None = Field(None, description="None in files written before ids were recorded")
    thresholds: dict[str, float] = Field(default_factory=dict)

    @classmethod
    def read(cls, path: str | os.PathLike, *, allow_empty: bool = False) -> CriteriaSet:
        """The criteria of a mining run; InputError (one line) when the file is missing, broken or (unless
        `allow_empty`: a run that selected nothing still has a report) holds no criteria."""
        p = Path(path)
        if not p.is_file():
            raise InputError(f"{p}: no such criteria file (run `critmine mine` first)")
        try:
            found = cls.model_validate(json.loads(p.read_text(encoding="utf-8")))
        except (json.JSONDecodeError, UnicodeDecodeError, ValidationError) as e:
            reason = str(e).splitlines()[0][:200]
            raise InputError(f"{p}: not a criteria.json of a mining run ({reason})") from None
        if not found.criteria and not allow_empty:
            raise InputError(f"{p}: no criteria")
        return found

    def write(self, path: str | os.PathLike) -> None:
        write_json_atomic(path, self.model_dump())


def parts_of(out: str | os.PathLike) -> Path:
    """Where `critmine judge` keeps the shards, cache and summary of the labels it writes to `out`."""
    p = Path(out)
    return p.with_name(p.name + ".parts")


def summary_of(out: str | os.PathLike) -> Path:
    """The summary `critmine select` writes beside its output."""
    p = Path(out)
    return p.with_name(p.name + ".summary.json")


def _file(name: str) -> property:
    return property(lambda self: self.root / name, doc=f"RUN/{name}")


class RunLayout:
    """Every file of a run directory (`critmine mine`, then `critmine run`'s later phases), named once."""

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)

    config = _file("config.json")  # the resolved mining settings (secrets left out)
    usage = _file("usage.json")  # LLM calls, tokens, retries and failures per phase
    criteria = _file("criteria.json")  # CriteriaSet
    predictions = _file("predictions.jsonl")  # the flow's vote per seed pair
    judgments = _file("judgments.jsonl")  # every worker judgment (also as judgments.parquet)
    judgments_parquet = _file("judgments.parquet")
    checkpoints = _file("checkpoints.sqlite")  # LangGraph's checkpoints (resume)
    cache = _file("llm_cache.sqlite")  # every answered LLM call (resume and reruns are free)
    labelled = _file("labelled.jsonl")  # agent-labelled corpus pairs
    scorer = _file("scorer")  # the trained scorer's directory
    scorer_meta = _file("scorer/scorer.json")
    scored = _file("scored.parquet")  # the scored corpus (Parquet shards, _SUCCESS when complete)
    selected = _file("selected.jsonl")  # the kept documents
    run = _file("run.json")  # `critmine run`'s settings and outputs
    report_md = _file("report.md")
    report_html = _file("report.html")

    @property
    def labelled_parts(self) -> Path:
        return parts_of(self.labelled)

    @property
    def selected_summary(self) -> Path:
        return summary_of(self.selected)

    def iteration_judgments(self, iteration: int) -> Path:
        return self.root / "judgments" / f"iter{iteration}.jsonl"

    def snapshot(self, iteration: int) -> Path:
        return self.root / "snapshots" / f"iter{iteration}.json"

    def _numbered(self, folder: str, pattern: str) -> list[Path]:
        return sorted((self.root / folder).glob(pattern), key=lambda f: int(f.stem[4:]))

    def iteration_judgment_files(self) -> list[Path]:
        return self._numbered("judgments", "iter*.jsonl")

    def snapshots(self) -> list[Path]:
        return self._numbered("snapshots", "iter*.json")

    def evaluations(self) -> dict[str, Path]:
        """eval*/eval.json beside the run, by folder name."""
        return {f.parent.name: f for f in sorted(self.root.glob("eval*/eval.json"))}
