"""The commands, declared once as pydantic-settings models: what each command does and its options.

The CLI is generated from these fields (defaults and descriptions in `--help`), and each command also reads
`CRITMINE_<FIELD>` environment variables and a `--config` TOML or YAML file. Priority: command line, then
environment, then the config file, then the defaults here. The settings the domain packages take (EndpointConfig,
MiningOptions, MineConfig) are in critmine.config.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any, ClassVar, Literal

import yaml
from pydantic import AliasChoices, BaseModel, Field, model_validator
from pydantic_settings import (
    BaseSettings,
    CliPositionalArg,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from critmine.columns import Columns
from critmine.config import EndpointConfig, MineConfig, MiningOptions
from critmine.defaults import DEFAULT_MODEL, MAX_TEXT_CHARS
from critmine.io import InputError
from critmine.llm import Budget

ENV_PREFIX = "CRITMINE_"
DEFAULT_USER_KB = Path("~/.local/share/critmine/criteria.jsonl").expanduser()


def _same_as(model: type[BaseModel], name: str) -> Any:
    """A CLI field with the default and the description of a settings field declared elsewhere."""
    field = model.model_fields[name]
    if field.default_factory is not None:
        return Field(default_factory=field.default_factory, description=field.description)
    return Field(field.default, description=field.description)


class Command(BaseSettings):
    """What every command reads: its own fields from the command line, CRITMINE_* variables and --config."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, cli_kebab_case=True, cli_implicit_flags="toggle",
                                      cli_hide_none_type=True, extra="forbid", populate_by_name=True)

    # How to go on after Ctrl-C, a kill or a spent budget (the CLI's last line): most commands keep what they
    # finished (shards, phases, the response cache), so the same command line continues; "" where nothing does.
    resume_hint: ClassVar[str] = "run the same command again to continue (finished work is kept)"

    verbose: bool = Field(False, validation_alias=AliasChoices("v", "verbose"), description="debug logging")
    config: Path | None = Field(None, description="a TOML or YAML file of this command's settings (field names "
                                                  "as in --help, with _ for -)")

    @classmethod
    def settings_customise_sources(cls, settings_cls: type[BaseSettings], init_settings: PydanticBaseSettingsSource,
                                   env_settings: PydanticBaseSettingsSource,
                                   dotenv_settings: PydanticBaseSettingsSource,
                                   file_secret_settings: PydanticBaseSettingsSource,
                                   ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings, env_settings, ConfigFileSource(settings_cls, init_settings, env_settings),
                OpenAIEnvSource(settings_cls))


class OpenAIEnvSource(PydanticBaseSettingsSource):
    """OPENAI_API_KEY and OPENAI_BASE_URL, read as the openai client reads them, below every other source (the
    command line, CRITMINE_* variables and --config all win)."""

    VARIABLES = {"api_key": "OPENAI_API_KEY", "base_url": "OPENAI_BASE_URL"}

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:  # pragma: no cover - unused
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        fields = self.settings_cls.model_fields
        return {name: os.environ[var] for name, var in self.VARIABLES.items()
                if name in fields and os.environ.get(var)}


class ConfigFileSource(PydanticBaseSettingsSource):
    """The `--config` file (named on the command line or by CRITMINE_CONFIG), below the other sources."""

    def __init__(self, settings_cls: type[BaseSettings], *named_by: PydanticBaseSettingsSource):
        super().__init__(settings_cls)
        self.named_by = named_by

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:  # pragma: no cover - unused
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        path = next((found for s in self.named_by if (found := s().get("config"))), None)
        return read_config_file(Path(path)) if path else {}


def read_config_file(path: Path) -> dict[str, Any]:
    """A settings file: TOML (.toml) or YAML (.yaml, .yml); one line naming the file when it cannot be read."""
    if path.suffix not in (".toml", ".yaml", ".yml"):
        raise InputError(f"{path}: a config file must be .toml, .yaml or .yml")
    try:
        text = path.read_text(encoding="utf-8")
        data = tomllib.loads(text) if path.suffix == ".toml" else yaml.safe_load(text)
    except OSError as e:
        raise InputError(f"{path}: cannot read the config file ({e.strerror})") from None
    except (tomllib.TOMLDecodeError, yaml.YAMLError, UnicodeDecodeError) as e:
        raise InputError(f"{path}: not a valid {path.suffix.lstrip('.').upper() or 'YAML'} file: "
                         f"{str(e).splitlines()[0]}") from None
    if not isinstance(data, dict):
        raise InputError(f"{path}: a config file holds a table of settings")
    return {k.replace("-", "_"): v for k, v in data.items()}


class ColumnOptions(BaseModel):
    """Which input columns hold ids, texts and labels (every other column is kept)."""

    id_column: str = _same_as(Columns, "id")
    text_column: str = _same_as(Columns, "text")
    a_column: str = _same_as(Columns, "a")
    b_column: str = _same_as(Columns, "b")
    label_column: str = _same_as(Columns, "label")
    generate_ids: bool = _same_as(Columns, "generate_ids")

    def columns(self) -> Columns:
        return Columns(id=self.id_column, text=self.text_column, a=self.a_column, b=self.b_column,
                       label=self.label_column, generate_ids=self.generate_ids)


class EndpointOptions(BaseModel):
    """The LLM endpoints: default the embedded CPU model, started and stopped by critmine."""

    base_url: str | None = Field(None, description="OpenAI-compatible endpoint (or OPENAI_BASE_URL); none: the "
                                                   "embedded CPU model")
    manager_base_url: str | None = Field(None, description="endpoint for the manager only (default: --base-url)")
    api_key: str = Field("none", exclude=True, description="sent as a bearer token (better: CRITMINE_API_KEY or "
                                                           "OPENAI_API_KEY)")
    model: str = _same_as(EndpointConfig, "model")
    manager_model: str | None = Field(None, description="default: --model")
    worker_model: str | None = Field(None, description="default: --model")
    server_kind: Literal["auto", "llamacpp", "vllm", "openai"] = _same_as(EndpointConfig, "kind")
    concurrency: int | None = _same_as(EndpointConfig, "concurrency")
    timeout: float = _same_as(EndpointConfig, "timeout_s")
    max_retries: int = _same_as(EndpointConfig, "max_retries")
    retry_backoff: float = _same_as(EndpointConfig, "backoff_s")
    llama_server: str | None = _same_as(EndpointConfig, "llama_server")
    llama_threads: int | None = _same_as(EndpointConfig, "llama_threads")

    def endpoints(self) -> tuple[EndpointConfig, EndpointConfig]:
        """(manager, worker)."""
        common = dict(api_key=self.api_key, kind=self.server_kind, timeout_s=self.timeout,
                      max_retries=self.max_retries, concurrency=self.concurrency, backoff_s=self.retry_backoff,
                      llama_server=self.llama_server, llama_threads=self.llama_threads)
        manager = EndpointConfig(base_url=self.manager_base_url or self.base_url,
                                 model=self.manager_model or self.model, **common)
        worker = EndpointConfig(base_url=self.base_url, model=self.worker_model or self.model, **common)
        return manager, worker


class BudgetOptions(BaseModel):
    max_calls: int | None = Field(None, description="stop cleanly (resumable) after this many paid LLM calls")
    max_tokens: int | None = Field(None, description="stop cleanly (resumable) after this many paid tokens")


class MiningCommandOptions(BudgetOptions, EndpointOptions, ColumnOptions, MiningOptions):
    """What `mine` and `run` share; `mine_config()` is the MineConfig they describe."""

    pairs: str | None
    out: Path
    reuse_cache: list[str] = _same_as(MineConfig, "reuse_cache")

    def mine_config(self) -> MineConfig:
        manager, worker = self.endpoints()
        return MineConfig(**self.model_dump(include=set(MiningOptions.model_fields)), pairs=str(self.pairs or ""),
                          columns=self.columns(), out=str(self.out), manager=manager, worker=worker,
                          budget=Budget(max_calls=self.max_calls, max_tokens=self.max_tokens),
                          reuse_cache=self.reuse_cache)


class MineCommand(Command, MiningCommandOptions):
    """mine quality criteria from labelled seed pairs"""

    resume_hint: ClassVar[str] = "continue with --resume"

    pairs: str | None = Field(None, description="labelled seed pairs (JSONL, Parquet, CSV or a saved dataset)")
    out: Path = Field(description="run directory")
    resume: bool = Field(False, description="continue the run in --out after a stop or a kill")


class EvalCommand(Command, EndpointOptions, ColumnOptions):
    """measure mined criteria, a scorer or a baseline on human-labelled test pairs"""

    pairs: str = Field(description="labelled test pairs (never the seed pairs)")
    criteria: Path | None = Field(None, description="criteria.json of a mining run")
    scorer: Path | None = Field(None, description="a scorer directory (from `critmine train`): no LLM calls")
    baseline: Literal["vanilla", "one-prompt", "qurating", "length", "random"] | None = Field(
        None, description="measure a baseline instead (one-prompt puts all --criteria into one prompt)")
    injection: bool = Field(False, description="also judge the pairs with an attack planted in the worse text and "
                                               "report the flip rate per attack kind")
    injection_kinds: list[str] = Field(default_factory=list, description="only these attack kinds (empty: all): "
                                       "instruction, role_marker, fence_break, chat_template")
    out: Path | None = Field(None, description="output directory (default: <run>/eval[-BASELINE])")
    sample: int | None = Field(None, description="evaluate a seeded random sample of this many pairs")
    seed: int = 0
    max_text_chars: int = Field(MAX_TEXT_CHARS, description="texts are cut to this")
    engine: Literal["server", "vllm-offline"] = Field(
        "server", description="vllm-offline: judge in-process with vllm.LLM, fully batched (--model: checkpoint)")
    kv_cache_memory_bytes: int | None = Field(None, description="vllm-offline: KV cache size (needed on CPU)")
    reuse_cache: list[str] = _same_as(MineConfig, "reuse_cache")

    def attacks(self) -> bool | list[str]:
        """What run_eval's `injection` takes: False, True (every kind) or the kinds named."""
        return (self.injection_kinds or True) if self.injection or self.injection_kinds else False


class PairsSampleCommand(Command, ColumnOptions):
    """random length-matched pairs of documents from a corpus (streamed)"""

    corpus: CliPositionalArg[str] = Field(description="documents: JSONL, Parquet, CSV or a saved dataset")
    n_pairs: int = Field(40, ge=1, description="pairs to sample")
    out: Path = Field(description="pairs file to write")
    seed: int = 0
    group_by: str | None = Field(None, description="pair only documents with the same value of this meta key")
    length_ratio: float = Field(1.5, description="longer text at most this many times the shorter")


class LabelCommand(Command):
    """label pairs in the browser; export labels; agreement statistics"""

    pairs: CliPositionalArg[str] = Field(description="pairs file (labels are logged beside it, in "
                                                     "PAIRS.labels.jsonl)")
    annotator: str = "annotator"
    host: str = Field("127.0.0.1", description="bind address (default: this machine only)")
    port: int = Field(0, description="0 picks a free port")
    open: bool = Field(False, description="open the page in a browser")
    note: str = Field("", description="instruction shown above the texts")
    export: Path | None = Field(None, description="write labelled pairs (majority over annotators) to this file")
    stats: bool = Field(False, description="print per-annotator counts, agreement and kappa")


class KbAddCommand(Command):
    """add a run's accepted criteria (with measured accuracy) to your knowledge base"""

    run_dir: CliPositionalArg[Path]
    kb: Path = Field(DEFAULT_USER_KB, description="your knowledge-base file")
    domain: list[str] = Field(default_factory=list, description="domains of these criteria")


class KbListCommand(Command):
    """list knowledge-base criteria"""

    kb: Path | None = Field(None, description="also list this user file")
    domain: str | None = Field(None, description="only this domain")
    search: str | None = Field(None, description="only criteria whose name or description contains this text")


class ReportCommand(Command):
    """write report.md and a self-contained report.html for a run directory"""

    run_dir: CliPositionalArg[Path]


class ServeCommand(Command):
    """run a model server (embedded llama.cpp or vLLM) in the foreground"""

    resume_hint: ClassVar[str] = ""

    engine: Literal["embedded", "vllm"] = "embedded"
    model: str = Field(DEFAULT_MODEL, description="embedded model name, a .gguf path, or (vllm) a checkpoint directory "
                                                  "or a Hub model id")
    served_model_name: str | None = Field(None, description="vllm: the name clients use (default: --model)")
    host: str = "127.0.0.1"
    port: int = 8080
    tensor_parallel_size: int = 1
    max_model_len: int = 4096
    kv_cache_memory_bytes: int | None = Field(None, description="vllm: KV cache size (needed on CPU machines)")
    vllm_arg: list[str] = Field(default_factory=list, description="vllm: engine arguments passed through, e.g. "
                                "--vllm-arg=--gpu-memory-utilization=0.8 (repeatable)")
    llama_server: str | None = _same_as(EndpointConfig, "llama_server")
    llama_threads: int | None = _same_as(EndpointConfig, "llama_threads")


class PairSourceOptions(BaseModel):
    """Where pairs to judge come from (a corpus: sampled, length-matched on request)."""

    n_pairs: int | None = Field(None, description="with --corpus: sample this many pairs")
    group_by: str | None = Field(None, description="with --corpus: pair only documents with the same value of this "
                                                   "meta key")
    length_ratio: float | None = Field(None, description="with --corpus: length-matched pairs within this ratio "
                                                         "(default: random pairs, as the corpus is)")
    min_confidence: float = Field(0.0, ge=0.0, lt=1.0, description="drop pairs whose soft vote |2·p(a)−1| is below "
                                                                   "this (disagreeing or abstaining criteria)")
    seed: int = 0


class JudgeCommand(Command, PairSourceOptions, EndpointOptions, ColumnOptions):
    """label many pairs with mined criteria (agent annotation at scale)"""

    criteria: Path = Field(description="criteria.json of a mining run")
    pairs: str | None = Field(None, description="unlabelled pairs to judge (or --corpus)")
    corpus: str | None = Field(None, description="documents to sample pairs from (see --n-pairs)")
    out: Path = Field(description="labelled pairs (JSONL); shards go to OUT.parts/")
    engine: Literal["server", "vllm-offline", "ray"] = "server"
    workers: int = Field(2, ge=1, description="ray: judging actors")
    shard_size: int = Field(16, ge=1, description="pairs per shard (the unit of resumption)")
    max_text_chars: int = Field(MAX_TEXT_CHARS, description="texts are cut to this")
    kv_cache_memory_bytes: int | None = Field(None, description="vllm-offline: KV cache size (needed on CPU)")
    reuse_cache: list[str] = _same_as(MineConfig, "reuse_cache")

    @model_validator(mode="after")
    def _one_source(self) -> JudgeCommand:
        if (self.pairs is None) == (self.corpus is None):
            raise ValueError("give exactly one of --pairs and --corpus")
        return self


class TrainOptions(BaseModel):
    features: str = Field("hashing", description="hashing, minilm, or hf:LOCAL_MODEL_DIR")
    holdout: float = Field(0.1, ge=0.0, lt=1.0, description="share of pairs held out for the reported accuracy")
    human_pairs: str | None = Field(None, description="also report accuracy on these human-labelled pairs")
    seed: int = 0


class TrainCommand(Command, TrainOptions, ColumnOptions):
    """train a Bradley–Terry scorer on labelled pairs"""

    pairs: str = Field(description="labelled pairs (from `critmine judge`, or human labels)")
    out: Path = Field(description="scorer directory")


class ScoreCommand(Command, ColumnOptions):
    """score every document of a corpus (streamed, sharded, resumable)"""

    scorer: Path = Field(description="a scorer directory (from `critmine train`)")
    input: str = Field(description="documents: JSONL, Parquet, CSV or a saved dataset")
    out: Path = Field(description="output directory of Parquet shards")
    engine: Literal["local", "ray"] = "local"
    batch_size: int = Field(1024, ge=1)
    shard_size: int = Field(20_000, ge=1, description="rows per output shard (local engine)")
    workers: int | None = Field(None, description="processes / Ray actors (default: cores for hashing, else 1)")


class SelectOptions(BaseModel):
    fraction: float | None = Field(None, gt=0.0, le=1.0, description="share of documents to keep")
    budget_tokens: int | None = Field(None, ge=1, description="keep documents until this many tokens (instead of "
                                                              "--fraction)")
    threshold: float | None = Field(None, description="keep every document scoring at least this (instead of "
                                                      "--fraction; the scorer's quantiles are in its meta.json)")
    tau: float = Field(1.0, ge=0.0, description="0: top-k; > 0: Gumbel sampling on z/τ")
    seed: int = 0

    @model_validator(mode="after")
    def _one_target(self) -> SelectOptions:
        others = self.budget_tokens is not None or self.threshold is not None
        if others and "fraction" not in self.model_fields_set:
            self.fraction = None  # a default fraction (run's) gives way to a token budget or a threshold
        if sum(x is not None for x in (self.fraction, self.budget_tokens, self.threshold)) != 1:
            raise ValueError("give exactly one of --fraction, --budget-tokens and --threshold")
        return self


class SelectCommand(Command, SelectOptions):
    """select the best documents by score (top-k or Gumbel sampling)"""

    scored: Path = Field(description="scored Parquet shards (from `critmine score`)")
    out: Path = Field(description="selected documents: .parquet, .jsonl, .jsonl.gz, or a directory name (a saved "
                                  "datasets dataset)")
    push_to_hub: str | None = Field(None, description="also upload the selection to this Hub dataset repository "
                                                      "(owner/name; the token: HF_TOKEN or `hf auth login`)")
    private: bool = Field(False, description="--push-to-hub: create the repository as private")


class RunCommand(Command, SelectOptions, TrainOptions, MiningCommandOptions):
    """the whole chain: mine → judge → train → score → select, resumable; a phase whose settings changed reruns"""

    pairs: str = Field(description="labelled seed pairs")
    corpus: str = Field(description="documents to filter (pairs to judge are sampled from it)")
    n_pairs: int = Field(200, ge=2, description="corpus pairs the agents label for the scorer")
    group_by: str | None = Field(None, description="pair only documents with the same value of this meta key")
    min_confidence: float = _same_as(PairSourceOptions, "min_confidence")
    judge_engine: Literal["server", "ray"] = "server"
    score_engine: Literal["local", "ray"] = "local"
    without_signal: bool = Field(False, description="go on to label, train and select even when no mined criterion "
                                                    "beats chance on the seeds (otherwise the run stops, exit 4)")
    fraction: float | None = Field(0.3, gt=0.0, le=1.0, description="share of documents to keep")
    out: Path = Field(description="run directory")
