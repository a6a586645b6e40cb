"""The Python API: the CLI's commands as functions that take data as well as paths and return objects.

    import critmine
    crit = critmine.mine(pairs, "runs/mine", base_url=URL, model="my-model")     # -> CriteriaSet
    labelled = critmine.judge(crit_file, pairs=unlabelled, out="labels.jsonl", base_url=URL)  # -> list[Pair]
    scorer = critmine.train(labelled, "scorer/")                                 # -> Scorer
    rows = critmine.score(scorer, docs)                                          # -> rows + critmine_score
    kept = critmine.select(rows, fraction=0.3)                                   # -> the kept rows

Inputs are a path (anything the CLI reads), a list of dicts (or Pair / Document records) or a `datasets.Dataset`;
options are the CLI's, with _ for - (`n_criteria=6`, `kb_domains=["argument"]`), validated by the same models.
Each function builds its command's settings model and hands it to `execute`, which the `critmine` CLI calls too:
the CLI is `execute(settings)` plus printing. In-memory inputs a command must keep (mine's seeds, judge's pairs)
are written beside its output as OUT.input.jsonl (`run`: OUT.seeds.jsonl, OUT.corpus.jsonl), so a run can resume.
Every function blocks until done and is safe inside a running event loop (a notebook): the work then runs in a
helper thread.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import json
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple, TypeVar

import datasets
import numpy as np

from critmine import commands as c, hub
from critmine.artifacts import CriteriaSet, JudgeSummary, RunLayout, ScorerMeta, ScoreSummary, SelectSummary, summary_of
from critmine.columns import Columns
from critmine.errors import RunStopped
from critmine.eval.evaluate import run_eval, run_scorer_eval
from critmine.eval.report import write_report
from critmine.io import InputError, read_pairs, validated, write_text_atomic
from critmine.judging import run_judge
from critmine.mining import run_mine
from critmine.pipeline import run_all
from critmine.records import Criterion, Document, Pair
from critmine.scorer.bulk import output_row, score_corpus
from critmine.scorer.model import Scorer, count_tokens
from critmine.scorer.output import N_TOKENS, SCORE
from critmine.scorer.select import Z, choose, describe as describe_selection, select as select_file
from critmine.scorer.train import train_scorer

__all__ = ["Columns", "CriteriaSet", "Criterion", "Document", "InputError", "Pair", "Scorer", "evaluate", "execute",
           "judge", "mine", "run", "score", "select", "train"]
T = TypeVar("T")
Data = str | os.PathLike | Sequence[Mapping[str, Any] | Pair | Document] | datasets.Dataset


def blocking(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Run `fn` here, or in a helper thread when this thread runs an event loop (asyncio.run cannot nest)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return fn(*args, **kwargs)
    with concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="critmine") as pool:
        return pool.submit(fn, *args, **kwargs).result()


def _rows(data: Sequence[Mapping[str, Any] | Pair | Document] | datasets.Dataset) -> Iterable[dict]:
    for r in data:
        yield r.model_dump() if isinstance(r, Pair | Document) else dict(r)  # type: ignore[union-attr]


def as_path(data: Data, out: str | os.PathLike, role: str = "input") -> str:
    """A path for `data`: itself, or in-memory rows written to OUT.ROLE.jsonl beside the output (refused if a file
    of other content is there: critmine never replaces a file it did not write)."""
    if isinstance(data, str | os.PathLike):
        return str(data)
    target = Path(out).with_name(f"{Path(out).name}.{role}.jsonl")
    lines = "".join(json.dumps(r, ensure_ascii=False, default=str) + "\n" for r in _rows(data))
    if target.exists() and target.read_text(encoding="utf-8") != lines:
        raise InputError(f"{target}: exists with other rows; choose another out (critmine writes its in-memory "
                         "input there)")
    if not target.exists():
        write_text_atomic(target, lines)
    return str(target)


@functools.singledispatch
def execute(cmd: c.Command) -> Any:
    """Run one validated command (a CLI command's settings) and return its result object: the one place where a
    command's options become a run. The `critmine` CLI is this plus printing; the functions below build the command
    from data and options, then come here."""
    raise TypeError(f"{type(cmd).__name__} is not a command of the Python API")


@execute.register(c.MineCommand)
def _mine(cmd: c.MineCommand) -> CriteriaSet:
    if not cmd.resume and not cmd.pairs:
        raise InputError("mine: --pairs is required (or --resume an existing run)")
    run = RunLayout(blocking(run_mine, cmd.mine_config(), resume=cmd.resume))
    write_report(run.root)
    return CriteriaSet.read(run.criteria, allow_empty=True)


class Evaluated(NamedTuple):
    result: dict
    eval_json: Path
    report: Path | None  # the mining run's report, updated with this evaluation


@execute.register(c.EvalCommand)
def _evaluate(cmd: c.EvalCommand) -> Evaluated:
    if cmd.scorer is not None:
        if cmd.criteria is not None or cmd.baseline is not None:
            raise InputError("eval: --scorer is measured on its own (no --criteria or --baseline)")
        out = cmd.out or cmd.scorer / "eval"
        return Evaluated(run_scorer_eval(cmd.pairs, out, cmd.scorer, sample=cmd.sample, seed=cmd.seed),
                         out / "eval.json", None)
    if cmd.criteria is None and cmd.out is None:
        raise InputError("eval: give --out (or --criteria, whose run directory then holds the results)")
    out = cmd.out or cmd.criteria.parent / ("eval" + (f"-{cmd.baseline}" if cmd.baseline else ""))  # type: ignore
    result = blocking(run_eval, cmd.pairs, out, cmd.endpoints()[1], criteria_file=cmd.criteria,
                      baseline=cmd.baseline, sample=cmd.sample, seed=cmd.seed, max_text_chars=cmd.max_text_chars,
                      engine=cmd.engine, kv_cache_memory_bytes=cmd.kv_cache_memory_bytes, injection=cmd.attacks(),
                      columns=cmd.columns(), reuse_cache=cmd.reuse_cache)
    report = None
    if cmd.criteria is not None and RunLayout(cmd.criteria.parent).snapshots():
        report = write_report(cmd.criteria.parent)[1]
    return Evaluated(result, out / "eval.json", report)


@execute.register(c.JudgeCommand)
def _judge(cmd: c.JudgeCommand) -> JudgeSummary:
    return blocking(run_judge, cmd.criteria, cmd.out, cmd.endpoints()[1], pairs_path=cmd.pairs, corpus=cmd.corpus,
                    n_pairs=cmd.n_pairs, seed=cmd.seed, group_by=cmd.group_by, length_ratio=cmd.length_ratio,
                    engine=cmd.engine, shard_size=cmd.shard_size, min_confidence=cmd.min_confidence,
                    max_text_chars=cmd.max_text_chars, kv_cache_memory_bytes=cmd.kv_cache_memory_bytes,
                    workers=cmd.workers, columns=cmd.columns(), reuse_cache=cmd.reuse_cache)


@execute.register(c.TrainCommand)
def _train(cmd: c.TrainCommand) -> ScorerMeta:
    return blocking(train_scorer, cmd.pairs, cmd.out, features=cmd.features, holdout=cmd.holdout,
                    human_pairs=cmd.human_pairs, seed=cmd.seed, columns=cmd.columns())


@execute.register(c.ScoreCommand)
def _score(cmd: c.ScoreCommand) -> ScoreSummary:
    return blocking(score_corpus, cmd.scorer, cmd.input, cmd.out, engine=cmd.engine, batch_size=cmd.batch_size,
                    shard_size=cmd.shard_size, workers=cmd.workers, columns=cmd.columns())


@execute.register(c.SelectCommand)
def _select(cmd: c.SelectCommand) -> SelectSummary:
    if cmd.push_to_hub:
        hub.check_repo(cmd.push_to_hub)  # before any work
    summary = select_file(cmd.scored, cmd.out, fraction=cmd.fraction, budget_tokens=cmd.budget_tokens,
                          threshold=cmd.threshold, tau=cmd.tau, seed=cmd.seed)
    if cmd.push_to_hub:
        try:
            url = hub.push(cmd.out, cmd.push_to_hub, summary=describe_selection(summary), private=cmd.private)
        except Exception as e:  # the selection is written: say so, and how to push it again
            raise RunStopped(f"pushing {cmd.out} to {cmd.push_to_hub} failed ({type(e).__name__}: {e}); the "
                             "selection is written: run select again with --push-to-hub to retry") from e
        summary = summary.model_copy(update={"pushed_to": url})
        summary.write(summary_of(cmd.out))
    return summary


@execute.register(c.RunCommand)
def _run(cmd: c.RunCommand) -> dict[str, str]:
    return blocking(run_all, cmd)


def mine(pairs: Data, out: str | os.PathLike, *, resume: bool = False, **options: Any) -> CriteriaSet:
    """`critmine mine`: criteria mined from labelled seed pairs; the run directory is `out`. A run without signal
    returns its CriteriaSet with `no_signal` set (the CLI's exit code 4)."""
    return execute(c.MineCommand(pairs=as_path(pairs, out), out=Path(out), resume=resume, **options))


def evaluate(pairs: Data, out: str | os.PathLike, **options: Any) -> dict:
    """`critmine eval`: mined criteria (criteria=), a scorer (scorer=) or a baseline (baseline=) on human-labelled
    test pairs; returns what eval.json in `out` holds."""
    return execute(c.EvalCommand(pairs=as_path(pairs, out), out=Path(out), **options)).result


def judge(criteria: str | os.PathLike, out: str | os.PathLike, *, pairs: Data | None = None,
          corpus: Data | None = None, **options: Any) -> list[Pair]:
    """`critmine judge`: pairs labelled by the criteria's soft vote (written to `out`, resumable)."""
    cmd = c.JudgeCommand(criteria=Path(criteria), out=Path(out),
                         pairs=as_path(pairs, out) if pairs is not None else None,
                         corpus=as_path(corpus, out) if corpus is not None else None, **options)
    execute(cmd)
    return read_pairs(cmd.out)


def train(pairs: Data, out: str | os.PathLike, **options: Any) -> Scorer:
    """`critmine train`: a Bradley–Terry scorer on labelled pairs, saved in `out` and returned."""
    execute(c.TrainCommand(pairs=as_path(pairs, out), out=Path(out), **options))
    return Scorer.load(out)


def run(pairs: Data, corpus: Data, out: str | os.PathLike, **options: Any) -> dict[str, str]:
    """`critmine run`: mine → judge → train → score → select in the run directory `out` (resumable phase by
    phase); returns the paths of its outputs and report."""
    return execute(c.RunCommand(pairs=as_path(pairs, out, "seeds"), corpus=as_path(corpus, out, "corpus"),
                                out=Path(out), **options))


def _scorer(scorer: Scorer | str | os.PathLike) -> Scorer:
    return scorer if isinstance(scorer, Scorer) else Scorer.load(scorer)


def score(scorer: Scorer | str | os.PathLike, documents: Data, out: str | os.PathLike | None = None,
          **options: Any) -> list[dict] | datasets.Dataset | Path:
    """Every document with `critmine_score` and `n_tokens`. In memory (rows or a Dataset in, the same kind out),
    or, with `out`, `critmine score` into Parquet shards (returns `out`)."""
    if out is not None or isinstance(documents, str | os.PathLike):
        if out is None:
            raise InputError("score: a path input needs out= (a directory of Parquet shards)")
        directory = scorer.directory if isinstance(scorer, Scorer) else scorer
        if directory is None:
            raise InputError("score: scoring files needs a saved scorer (critmine.train or Scorer.load)")
        execute(c.ScoreCommand(scorer=Path(directory), input=str(documents), out=Path(out), **options))
        return Path(out)
    model = _scorer(scorer)
    rows_in = ((f"documents: row {i}", r) for i, r in enumerate(_rows(documents), 1))
    docs = [d for _, d in validated(rows_in, Document, c.ColumnOptions(**options).columns())]
    scores = model.score([d.text for d in docs]) if docs else np.zeros(0)
    rows = [output_row(d, float(s), count_tokens(d.text)) for d, s in zip(docs, scores, strict=True)]
    return datasets.Dataset.from_list(rows) if isinstance(documents, datasets.Dataset) else rows


def select(scored: list[dict] | datasets.Dataset | str | os.PathLike, out: str | os.PathLike | None = None, *,
           fraction: float | None = None, budget_tokens: int | None = None, threshold: float | None = None,
           tau: float = 1.0, seed: int = 0, push_to_hub: str | None = None,
           private: bool = False) -> list[dict] | datasets.Dataset | Path:
    """The kept documents (with `critmine_z`), by fraction, token budget or score threshold: in memory from
    score()'s rows, or `critmine select` from a scored directory into `out` (returns `out`; `push_to_hub`: also
    uploads it to that Hub dataset repository)."""
    if isinstance(scored, str | os.PathLike):
        if out is None:
            raise InputError("select: a scored directory needs out= (.parquet, .jsonl or a directory name)")
        execute(c.SelectCommand(scored=Path(scored), out=Path(out), fraction=fraction, budget_tokens=budget_tokens,
                                threshold=threshold, tau=tau, seed=seed, push_to_hub=push_to_hub, private=private))
        return Path(out)
    if push_to_hub:
        raise InputError("select: push_to_hub needs out= (the file or directory to upload)")
    rows = list(scored)
    scores = np.array([r[SCORE] for r in rows], dtype=np.float64)
    tokens = np.array([r[N_TOKENS] for r in rows], dtype=np.int64)
    mask, z = choose(scores, tokens, fraction=fraction, budget_tokens=budget_tokens, tau=tau, seed=seed,
                     threshold=threshold)
    kept = [{**r, Z: round(float(zi), 4)} for r, zi, m in zip(rows, z, mask, strict=True) if m]
    return datasets.Dataset.from_list(kept) if isinstance(scored, datasets.Dataset) else kept
