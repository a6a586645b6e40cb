"""`critmine run`: mine → judge → train → score → select in one run directory, resumable phase by phase.

Each phase is skipped when its finished output exists (criteria.json, labelled.jsonl, scorer/scorer.json,
scored.parquet/_SUCCESS, selected.jsonl) and otherwise resumes from its own checkpoints; the run ends in
one report (report.md / report.html) covering every phase.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from critmine.artifacts import RunLayout
from critmine.config import MineConfig
from critmine.io import write_json_atomic

log = logging.getLogger(__name__)


@dataclass
class RunSettings:
    corpus: str
    n_pairs: int = 200
    group_by: str | None = None
    min_confidence: float = 0.0
    features: str = "hashing"
    holdout: float = 0.1
    human_pairs: str | None = None
    score_engine: str = "local"
    fraction: float | None = 0.3
    budget_tokens: int | None = None
    tau: float = 1.0
    seed: int = 0
    judge_engine: str = "server"
    done: list[str] = field(default_factory=list)


def run_all(cfg: MineConfig, s: RunSettings) -> dict:
    from critmine.judging import run_judge
    from critmine.mine import run_mine
    from critmine.scorer.bulk import score_corpus
    from critmine.scorer.output import SUCCESS
    from critmine.scorer.select import select
    from critmine.scorer.train import train_scorer

    run = RunLayout(cfg.out)
    outputs = {"criteria": run.criteria, "labelled": run.labelled, "scorer": run.scorer, "scored": run.scored,
               "selected": run.selected}
    phases: dict[str, object] = {}
    if run.criteria.exists():
        log.info("phase mine: done already")
    else:
        log.info("phase mine")
        run_mine(cfg, resume=run.config.exists())
    if run.labelled.exists():
        log.info("phase judge: done already")
    else:
        log.info("phase judge")
        phases["judge"] = run_judge(run.criteria, run.labelled, cfg.worker, corpus=s.corpus, n_pairs=s.n_pairs,
                                    seed=s.seed, group_by=s.group_by, min_confidence=s.min_confidence,
                                    engine=s.judge_engine, max_text_chars=cfg.max_text_chars)
    if run.scorer_meta.exists():
        log.info("phase train: done already")
    else:
        log.info("phase train")
        phases["train"] = train_scorer(str(run.labelled), run.scorer, features=s.features, holdout=s.holdout,
                                       human_pairs=s.human_pairs, seed=s.seed)
    if (run.scored / SUCCESS).exists():
        log.info("phase score: done already")
    else:
        log.info("phase score")
        phases["score"] = score_corpus(run.scorer, s.corpus, run.scored, engine=s.score_engine)
    if run.selected.exists():
        log.info("phase select: done already")
    else:
        log.info("phase select")
        phases["select"] = select(run.scored, run.selected, fraction=s.fraction, budget_tokens=s.budget_tokens,
                                  tau=s.tau, seed=s.seed)
    write_json_atomic(run.run, {"settings": s.__dict__, "outputs": {k: str(v) for k, v in outputs.items()}})
    from critmine.eval.report import write_report

    md, page = write_report(run.root)
    return {"report": str(page), **{k: str(v) for k, v in outputs.items()}}
