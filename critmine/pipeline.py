"""`critmine run`: mine → judge → train → score → select in one run directory, resumable phase by phase.

One rule decides each phase. Its fingerprint is a hash of its own settings and of the fingerprint of the phase
before it, recorded in run.json when the phase starts and when it ends. A phase is skipped when it ended with
today's fingerprint; it resumes from its own checkpoints when it started with it; and when its settings (or an
earlier phase's) changed, what it wrote is removed (the LLM response caches are kept, so unchanged calls stay free)
and it runs again. The run ends in one report (report.md / report.html) covering every phase.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from critmine.agents.annotate import judge_parts
from critmine.artifacts import CriteriaSet, PhaseRecord, RunLayout, RunRecord
from critmine.columns import Columns
from critmine.commands import RunCommand
from critmine.errors import NoSignal
from critmine.eval.report import write_report
from critmine.io import check_output_dir
from critmine.judging import run_judge
from critmine.mining import run_mine
from critmine.scorer.bulk import score_corpus
from critmine.scorer.output import scored_dir
from critmine.scorer.select import select
from critmine.scorer.train import train_scorer

log = logging.getLogger(__name__)
PHASES = ("mine", "judge", "train", "score", "select")


def file_identity(path: str) -> str:
    """A file as a phase sees it, cheaply (a corpus may be large): its path, size and modification time."""
    p = Path(path)
    if not p.is_file():
        return path  # a saved dataset or a URL: named
    st = p.stat()
    return f"{p.resolve()}:{st.st_size}:{st.st_mtime_ns}"


def phase_settings(s: RunCommand) -> dict[str, dict[str, Any]]:
    """What each phase's result depends on (not how fast or where it runs)."""
    mine = s.mine_config()
    columns = {"columns": s.columns().model_dump()} if s.columns() != Columns() else {}  # default: as before
    return {
        "mine": {**mine.model_dump(include=set(type(mine).model_fields) - {"out", "budget", "manager", "worker",
                                                                           "seeds_sha256", "reuse_cache"}),
                 "seeds": file_identity(s.pairs), "models": [mine.manager.model, mine.worker.model]},
        "judge": {"corpus": file_identity(s.corpus), **columns, "n_pairs": s.n_pairs, "group_by": s.group_by,
                  "min_confidence": s.min_confidence, "seed": s.seed, "max_text_chars": s.max_text_chars},
        "train": {"features": s.features, "holdout": s.holdout, "human_pairs": s.human_pairs, "seed": s.seed},
        "score": {"corpus": file_identity(s.corpus), **columns},
        "select": {"fraction": s.fraction, "budget_tokens": s.budget_tokens, "threshold": s.threshold, "tau": s.tau,
                   "seed": s.seed},
    }


def fingerprints(settings: dict[str, dict[str, Any]]) -> dict[str, str]:
    out, upstream = {}, ""
    for name in PHASES:
        text = json.dumps({"upstream": upstream, **settings[name]}, sort_keys=True, default=str)
        out[name] = upstream = hashlib.sha256(text.encode()).hexdigest()[:16]
    return out


def _remove(*paths: Path) -> None:
    """Remove files and folders of a run directory that critmine wrote (the run's own files, named by RunLayout)."""
    for p in paths:
        if p.is_dir():
            shutil.rmtree(p)
        else:
            p.unlink(missing_ok=True)


def reset(run: RunLayout, phase: str) -> None:
    """Remove what `phase` wrote into the run directory, keeping LLM response caches."""
    if phase == "mine":
        _remove(run.config, run.criteria, run.predictions, run.judgments, run.judgments_parquet, run.checkpoints,
                run.root / "judgments", run.root / "snapshots")
    elif phase == "judge":
        _remove(run.labelled)
        judge_parts(run.labelled_parts).remove_own()
    elif phase == "train":
        _remove(run.scorer)
    elif phase == "score":
        scored_dir(run.scored).remove_own()
    elif phase == "select":
        _remove(run.selected, run.selected_summary)


def run_all(s: RunCommand) -> dict:
    run = RunLayout(s.out)
    check_output_dir(run.root, "a critmine run directory", own=(run.run.name, run.config.name))
    cfg = s.mine_config()
    outputs = {"criteria": run.criteria, "labelled": run.labelled, "scorer": run.scorer, "scored": run.scored,
               "selected": run.selected}
    finished = {"mine": run.criteria, "judge": run.labelled, "train": run.scorer_meta,
                "score": scored_dir(run.scored).done, "select": run.selected}
    steps: dict[str, Callable[[], object]] = {
        "mine": lambda: run_mine(cfg, resume=run.config.exists()),
        "judge": lambda: run_judge(run.criteria, run.labelled, cfg.worker, corpus=s.corpus, n_pairs=s.n_pairs,
                                   seed=s.seed, group_by=s.group_by, min_confidence=s.min_confidence,
                                   engine=s.judge_engine, max_text_chars=cfg.max_text_chars, columns=s.columns(),
                                   reuse_cache=s.reuse_cache),
        "train": lambda: train_scorer(str(run.labelled), run.scorer, features=s.features, holdout=s.holdout,
                                      human_pairs=s.human_pairs, seed=s.seed),
        "score": lambda: score_corpus(run.scorer, s.corpus, run.scored, engine=s.score_engine, columns=s.columns()),
        "select": lambda: select(run.scored, run.selected, fraction=s.fraction, budget_tokens=s.budget_tokens,
                                 threshold=s.threshold, tau=s.tau, seed=s.seed),
    }
    settings = phase_settings(s)
    prints = fingerprints(settings)
    record = RunRecord.read(run.run).phases if run.run.exists() else {}
    rerun_upstream = False
    for name in PHASES:
        before = record.get(name)
        if before is None and finished[name].exists() and not rerun_upstream:
            log.info("phase %s: done already (adopted: no recorded settings)", name)
        elif before is not None and before.fingerprint == prints[name] and before.done \
                and finished[name].exists() and not rerun_upstream:
            log.info("phase %s: done already", name)
        else:
            if rerun_upstream or (before is not None and before.fingerprint != prints[name]):
                if before is not None:  # a new run's later phases have nothing to run again
                    log.info("phase %s: its settings or an earlier phase changed; running it again", name)
                reset(run, name)
            log.info("phase %s", name)
            record[name] = PhaseRecord(fingerprint=prints[name], done=False, settings=settings[name])
            if run.root.exists():  # a new run's directory is created by its first phase (mine checks it is new)
                _save(run, s, record, outputs)
            steps[name]()
            rerun_upstream = True
        record[name] = PhaseRecord(fingerprint=prints[name], done=True, settings=settings[name])
        _save(run, s, record, outputs)
        if name == "mine" and not s.without_signal and (
                why := CriteriaSet.read(run.criteria, allow_empty=True).no_signal):
            write_report(run.root)
            raise NoSignal(f"{why} The run stops before labelling the corpus with these criteria "
                           "(--without-signal goes on regardless).")
    _, page = write_report(run.root)
    return {"report": str(page), **{k: str(v) for k, v in outputs.items()}}


def _save(run: RunLayout, s: RunCommand, record: dict[str, PhaseRecord], outputs: dict[str, Path]) -> None:
    RunRecord(settings=s.model_dump(mode="json", exclude={"verbose", "config"}), phases=record,
              outputs={k: str(v) for k, v in outputs.items()}).write(run.run)
