"""Typed run artifacts: each JSON file a command writes has one model here, and one reader (`Model.read`) that
validates it and names the file in one line when it cannot.

`CriteriaSet` is criteria.json, the result of `critmine mine`: the selected criteria with their measured accuracy,
the ones not selected or replaced, the flow's vote on the seeds and the seed pair ids (so no evaluation counts them).
`ScorerMeta` is scorer.json of `critmine train`; `JudgeSummary`, `ScoreSummary` and `SelectSummary` are what
`judge`, `score` and `select` report; `EvalResult` is eval.json of `critmine eval`.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, ClassVar, Self, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from critmine.io import InputError, write_json_atomic
from critmine.llm.cache import CACHE_FILE
from critmine.records import Criterion


class VoteStats(BaseModel):
    """Agreement of a vote with human labels (eval.metrics.agreement_stats)."""

    model_config = ConfigDict(extra="allow")

    accuracy: float | None = None
    n_correct: int = 0
    n_judged: int = 0
    coverage: float = 0.0
    ci_low: float = 0.0
    ci_high: float = 1.0
    kappa: float | None = None


M = TypeVar("M", bound=BaseModel)


def read_model(cls: type[M], path: str | os.PathLike, what: str, hint: str = "") -> M:
    """A JSON file validated as `cls`; InputError (one line naming the file) when it is missing or is not one."""
    p = Path(path)
    if not p.is_file():
        raise InputError(f"{p}: no such {what}{hint}")
    try:
        return cls.model_validate(json.loads(p.read_text(encoding="utf-8")))
    except (json.JSONDecodeError, UnicodeDecodeError, ValidationError) as e:
        reason = str(e).splitlines()[0][:200]
        raise InputError(f"{p}: not a {what} ({reason})") from None


class Artifact(BaseModel):
    """A JSON file a command writes. Keys a newer critmine adds are kept (extra="allow")."""

    model_config = ConfigDict(extra="allow")
    what: ClassVar[str] = "critmine artifact"
    hint: ClassVar[str] = ""

    @classmethod
    def read(cls, path: str | os.PathLike) -> Self:
        """The validated file; InputError (one line naming the file) when it is missing or is not one."""
        return read_model(cls, path, cls.what, cls.hint)

    def write(self, path: str | os.PathLike) -> None:
        """The fields that were set (a metric that was not measured is absent, not null)."""
        write_json_atomic(path, self.model_dump(mode="json", exclude_unset=True))


class ScorerMeta(Artifact):
    """scorer.json: how a scorer was trained and how accurate it was."""

    what: ClassVar[str] = "scorer.json of a scorer"
    format: str = Field(description="critmine-scorer/N: which Scorer reads this directory")
    features: str
    trained_on: str
    n_train: int
    n_holdout: int = 0
    seed: int = 0
    created: str = ""
    mean_label: float | None = None
    features_config: dict[str, Any] | None = None
    l2_c: float | None = None
    train_s: float = 0.0
    holdout: dict[str, Any] = Field(default_factory=dict, description="accuracy on held-out agent-labelled pairs")
    train_fit: dict[str, Any] = Field(default_factory=dict)
    human: dict[str, Any] | None = Field(None, description="accuracy on human-labelled pairs, when given")
    score_quantiles: dict[str, float] | None = Field(
        None, description="quantiles (0.01 … 0.99) of its scores on the texts it was trained on: thresholds that "
        "keep a known share of such texts (Scorer.threshold)")


class JudgeSummary(Artifact):
    """What `critmine judge` labelled and what it cost (OUT.parts/summary.json)."""

    what: ClassVar[str] = "judge summary"
    judged: int
    labelled: int
    dropped_no_vote: int = 0
    dropped_low_confidence: int = 0
    criteria: list[str]
    engine: str
    min_confidence: float = 0.0
    wall_s: float = 0.0
    llm_calls: int = 0
    cached_calls: int = 0
    prompt_tokens: int = 0
    calls_this_run: int = 0
    failed_calls_this_run: int = 0
    retries_this_run: int = 0
    out: str


class ScoreSummary(Artifact):
    """A finished `critmine score` (the `_SUCCESS` marker's content)."""

    what: ClassVar[str] = "score summary"
    rows: int
    shards: int
    scored_now: int = 0
    wall_s: float = 0.0
    startup_s: float | None = None
    docs_per_s: float | None = None
    engine: str
    workers: int | None = None


class SelectSummary(Artifact):
    """What `critmine select` kept (OUT.summary.json)."""

    what: ClassVar[str] = "select summary"
    documents: int
    kept: int
    tokens: int
    kept_tokens: int
    tau: float
    seed: int
    fraction: float | None = None
    budget_tokens: int | None = None
    threshold: float | None = None
    mean_z_kept: float | None = None
    min_score_kept: float | None = None
    scored: str
    out: str
    pushed_to: str | None = None  # the Hub dataset repository's URL, after --push-to-hub


class EvalResult(Artifact):
    """eval.json: a method's agreement with human labels on test pairs; None where a metric does not apply."""

    what: ClassVar[str] = "eval.json of `critmine eval`"
    method: str
    n_pairs: int
    criteria: list[dict[str, Any]] = Field(default_factory=list, description="per-criterion agreement")
    predictions: dict[str, dict[str, Any]] = Field(default_factory=dict)
    flow_soft: VoteStats
    flow_majority: VoteStats | None = None
    swap_consistency: float | None = None
    audit: dict[str, Any] | None = Field(None, description="shortcut audit: simple signals, length-matched pairs, "
                                                           "the flow without its computed criteria")
    pairs: str
    wall_s: float = 0.0
    llm_calls: int = 0
    paid_calls: int = 0
    tokens: int = 0
    failed_calls: int = 0
    injection: dict[str, Any] | None = None


class PhaseRecord(BaseModel):
    fingerprint: str = Field(description="hash of the phase's settings and of the previous phase's fingerprint")
    done: bool
    settings: dict[str, Any]


class RunRecord(Artifact):
    """run.json of `critmine run`: its settings, each phase's record, and where the outputs are."""

    what: ClassVar[str] = "run.json of `critmine run`"
    settings: dict[str, Any] = Field(default_factory=dict)
    phases: dict[str, PhaseRecord] = Field(default_factory=dict, description="absent in runs before fingerprints")
    outputs: dict[str, str] = Field(default_factory=dict)


class CriteriaSet(BaseModel):
    """criteria.json of a mining run."""

    criteria: list[Criterion] = Field(description="the selected criteria, in the order they vote")
    not_selected: list[Criterion] = Field(default_factory=list)
    replaced: list[Criterion] = Field(default_factory=list, description="low criteria the manager replaced")
    knowledge_base_candidates: list[dict] = Field(default_factory=list, description="retrieved and scored on seeds")
    knowledge_base_screened_out: list[dict] = Field(default_factory=list,
                                                    description="shortlisted, but lost the screen on a few seeds")
    flow_on_seeds: dict[str, VoteStats] = Field(default_factory=dict, description="soft and majority vote on seeds")
    iterations_run: int = 0
    seed_pair_ids: list[str] | None = Field(None, description="None in files written before ids were recorded")
    thresholds: dict[str, float] = Field(default_factory=dict)
    refused: list[dict] = Field(default_factory=list,
                                description="the manager's proposals and rewrites refused before judging, and why")
    seed_audit: dict[str, Any] | None = Field(None, description="shortcut audit on the seed pairs (agents/audit.py)")
    ensemble: dict[str, Any] | None = Field(None, description="how the voting criteria and their weights were "
                                                              "chosen (agents/ensemble.py)")
    no_signal: str | None = Field(None, description="set when no selected criterion beats chance on the seed "
                                                    "pairs with a margin its interval supports: what to try")

    @classmethod
    def read(cls, path: str | os.PathLike, *, allow_empty: bool = False) -> CriteriaSet:
        """The criteria of a mining run; InputError (one line) when the file is missing, broken or (unless
        `allow_empty`: a run that selected nothing still has a report) holds no criteria."""
        found = read_model(cls, path, "criteria.json of a mining run", " (run `critmine mine` first)")
        if not found.criteria and not allow_empty:
            raise InputError(f"{path}: no criteria")
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
    cache = _file(CACHE_FILE)  # every answered LLM call (resume and reruns are free)
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
