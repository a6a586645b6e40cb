"""Pydantic records for everything that crosses a boundary (files, prompts, checkpoints)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, field_validator

from critmine.measures import Measure, Prefer

Side = Literal["a", "b"]
Verdict = Literal["a", "b", "none"]
Order = Literal["ab", "ba", "both"]
Band = Literal["good", "mid", "low"]


class _InputRecord(BaseModel):
    """A user-supplied record: strict fields, an id (integers accepted as text), free-form meta."""

    model_config = ConfigDict(extra="forbid")
    id: str
    meta: dict[str, Any] = Field(default_factory=dict)

    @field_validator("id", mode="before")
    @classmethod
    def _id_as_str(cls, v: Any) -> Any:
        return str(v) if isinstance(v, int) else v


class Pair(_InputRecord):
    """Two texts and, when labelled, which one is better data."""

    a: str
    b: str
    better: Side | None = None

    @field_validator("a", "b")
    @classmethod
    def _non_empty(cls, v: str) -> str:
        if not v.strip():
            raise ValueError("text is empty")
        return v


class Document(_InputRecord):
    """One corpus document; `row` is the input row it was read from (every column), when it was read from one."""

    text: str
    _row: dict[str, Any] | None = PrivateAttr(None)

    @property
    def row(self) -> dict[str, Any] | None:
        return self._row

    @row.setter
    def row(self, value: dict[str, Any] | None) -> None:
        self._row = value

    @field_validator("text")
    @classmethod
    def _non_empty(cls, v: str) -> str:
        if not v.strip():
            raise ValueError("text is empty")
        return v


class Rewrite(BaseModel):
    """One rewrite of a criterion's description and the critiques that caused it."""

    from_version: int
    to_version: int
    old_description: str
    new_description: str
    critiques: list[str]
    driven_by: list[str] = Field(description="ids of the seed pairs whose critiques drove this rewrite")
    accepted: bool
    old_accuracy: float | None = None
    new_accuracy: float | None = None
    old_held_out: float | None = Field(None, description="old version's accuracy on the seed pairs that did not "
                                                         "drive this rewrite")
    new_held_out: float | None = Field(None, description="new version's accuracy on those pairs (the rewrite is "
                                                         "accepted only if it is higher)")
    iteration: int = 0


class Criterion(BaseModel):
    """A verbal quality criterion, one version of it, and how well it agrees with people."""

    name: str
    description: str
    version: int = 1
    origin: Literal["proposed", "replacement", "knowledge_base"] = "proposed"
    source: str | None = Field(None, description="where a knowledge-base criterion comes from")
    measure: Measure | None = Field(None, description="a computed criterion: the measure (critmine.measures) that "
                                                  "judges it instead of an LLM")
    prefer: Prefer = Field("higher", description="a computed criterion's better end")
    scale: float | None = Field(None, description="spread of its soft margins on the seed pairs (RMS of "
                                                  "p_a/(p_a+p_b) − ½): the vote divides by it")
    weight: float = Field(1.0, ge=0, description="its weight in the vote, fitted on the seed pairs (1: equal votes)")
    accuracy: float | None = Field(None, description="accuracy on seed pairs that did not drive its rewrites")
    ci_low: float | None = None
    ci_high: float | None = None
    coverage: float | None = Field(None, description="share of pairs not abstained on")
    n_judged: int = 0
    n_correct: int = 0
    seed_accuracy: float | None = Field(None, description="accuracy on all seed pairs (used for banding)")
    band: Band | None = None
    history: list[Rewrite] = Field(default_factory=list)

    @property
    def key(self) -> str:
        return f"{self.name}@v{self.version}"

    @property
    def computed(self) -> bool:
        return self.measure is not None


class Judgment(BaseModel):
    """A worker's judgment of one pair under one criterion version, in one order or both combined."""

    pair_id: str
    criterion: str
    version: int
    order: Order
    p_a: float = 0.0
    p_b: float = 0.0
    p_none: float = 1.0
    verdict: Verdict = "none"
    reasoning: str | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached: bool = False
    failed: bool = False
