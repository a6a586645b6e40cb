"""The criteria-mining flow as a LangGraph StateGraph, checkpointed in the run directory.

warmup → retrieve_knowledge → propose → [judge → score → reflect → revise] × iterations → finalize

The state holds only small, JSON-able values (criteria, compact per-pair results); judgments go to files.
Every LLM answer is cached, and LangGraph's SQLite checkpointer stores the state after every node, so a killed
run resumes where it stopped and re-pays no finished call.
"""

from __future__ import annotations

import json
import logging
import random
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypedDict

import datasets
from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver
from langgraph.graph import END, START, StateGraph
from tqdm.auto import tqdm

from critmine.agents import ensemble, knowledge, scoring
from critmine.agents.audit import shortcut_audit
from critmine.agents.manager import Manager
from critmine.agents.worker import Worker
from critmine.artifacts import CriteriaSet, RunLayout, VoteStats
from critmine.config import MineConfig
from critmine.errors import RunStopped
from critmine.eval.metrics import agreement, agreement_stats
from critmine.io import write_json_atomic, write_jsonl_atomic
from critmine.records import Criterion, Judgment, Pair, Rewrite

log = logging.getLogger(__name__)


class FlowError(RunStopped):
    """The flow cannot go on (e.g. the manager proposed no usable criterion)."""


class FlowState(TypedDict, total=False):
    iteration: int
    observations: list[str]
    kb_criteria: list[dict]
    kb_candidates: list[dict]
    kb_screened_out: list[dict]
    kb_reserve: list[dict]  # candidates that passed but were not kept at first: they fill a short proposal
    criteria: dict[str, dict]  # name → accepted Criterion
    pending: dict[str, dict]  # name → {"criterion": Criterion, "rewrite": {critiques, driven_by} | None}
    critiques: dict[str, dict]
    banned: list[dict]
    refused: list[dict]  # proposals and rewrites the vetting refused
    results: dict[str, dict[str, list]]  # "name@vN" → pair id → [p_a, p_b, p_none, verdict]
    best: float
    stale: int
    done: bool


def _accuracies(criteria: list[Criterion]) -> str:
    return ", ".join(f"{c.name}={c.seed_accuracy:.2f}" if c.seed_accuracy is not None else f"{c.name}=n/a"
                     for c in criteria)


def _next_version(c: Criterion) -> int:
    return max([c.version] + [rw.to_version for rw in c.history]) + 1


class MiningFlow:
    """Builds and runs the graph; nodes are methods so they share the agents, the pairs and the run dir."""

    def __init__(self, cfg: MineConfig, pairs: list[Pair], manager: Manager, worker: Worker, run_dir: Path,
                 on_step: Callable[[], None] | None = None, failures: Callable[[], int] | None = None):
        """`failures` counts LLM calls that failed for good so far: a step during which it grows is not saved."""
        self.cfg, self.pairs, self.manager, self.worker = cfg, pairs, manager, worker
        self.run_dir = Path(run_dir)
        self.layout = RunLayout(run_dir)
        self.on_step = on_step or (lambda: None)
        self.failures = failures or (lambda: 0)

    # -- nodes -------------------------------------------------------------------------------------------
    async def retrieve_knowledge(self, state: FlowState) -> FlowState:
        cfg = self.cfg
        if cfg.no_kb or cfg.kb_max_candidates == 0:
            log.info("knowledge base: off; the manager proposes every criterion")
            return {"kb_criteria": []}
        query = " ".join(state.get("observations", []))
        entries = [e for e in knowledge.load_all(cfg.kb_file) if not (cfg.no_measures and e.measure)]
        if not cfg.kb_domains:  # domains a user names are taken as named
            before = len(entries)
            entries, absent = knowledge.applicable(entries, [t for p in self.pairs for t in (p.a, p.b)])
            if absent:
                log.info("knowledge base: the seed texts show no %s; leaving out the %d criteria of only %s "
                         "(--kb-domains to choose domains yourself)", " or ".join(absent), before - len(entries),
                         " or ".join(absent))
        # Every computed criterion costs nothing to judge; the verbal ones are the best of the screen (or of the
        # ranking against the manager's observations when there is no screen).
        ranked = [e for _, e in knowledge.rank(entries, query, cfg.kb_domains or None)]
        if cfg.kb_screen:
            verbal, screened_out = await self._screen(
                [e.criterion() for e in knowledge.shortlist(ranked, cfg.kb_screen)])
        else:
            verbal, screened_out = [e.criterion() for e in ranked if not e.measure][: cfg.kb_max_candidates], []
        candidates = [e.criterion() for e in ranked if e.measure] + verbal
        with tqdm(total=len(self.pairs), desc=f"retrieve ({len(candidates)} knowledge-base criteria)",
                  unit="pair") as bar:
            js = await self.worker.judge_all(self.pairs, candidates, phase="retrieve", progress=bar)
        results = scoring.result_tables(js)
        scored = sorted((self._score(c, results) for c in candidates), key=scoring.by_evidence, reverse=True)
        log.info("knowledge base: seed accuracy of %d retrieved candidates: %s", len(scored), _accuracies(scored))
        limit = cfg.kb_max_initial if cfg.kb_max_initial is not None else cfg.n_criteria // 2
        passed = [c for c in scored if (c.seed_accuracy or 0.0) >= cfg.kb_min_accuracy]
        log.info("knowledge base: kept %s as initial criteria", ", ".join(c.name for c in passed[:limit]) or "none")
        # Start them fresh: the judge node scores them again (free, from the response cache). The others that passed
        # are the reserve that fills the set when the manager's proposals fall short.
        fresh = [Criterion(**c.model_dump(include={"name", "description", "origin", "source", "measure", "prefer"}))
                 for c in passed]
        return {"kb_criteria": [c.model_dump() for c in fresh[:limit]],
                "kb_reserve": [c.model_dump() for c in fresh[limit:]],
                "kb_candidates": [c.model_dump(include={"name", "seed_accuracy", "ci_low", "coverage", "source",
                                                        "measure"}) for c in scored],
                "kb_screened_out": screened_out}

    async def _screen(self, shortlist: list[Criterion]) -> tuple[list[Criterion], list[dict]]:
        """The best `kb_max_candidates` of `shortlist` by agreement on a few seed pairs (a fixed, seeded sample),
        and what the others scored there. The screened pairs' answers are cached, so judging the winners on all
        seed pairs pays only for the rest."""
        cfg = self.cfg
        if len(shortlist) <= cfg.kb_max_candidates:
            return shortlist, []
        few = sorted(random.Random(0).sample(self.pairs, min(cfg.kb_screen_pairs, len(self.pairs))),
                     key=lambda p: p.id)
        with tqdm(total=len(few), desc=f"screen ({len(shortlist)} knowledge-base criteria)", unit="pair") as bar:
            results = scoring.result_tables(await self.worker.judge_all(few, shortlist, phase="retrieve",
                                                                        progress=bar))
        ranked = sorted((scoring.score(c, results.get(c.key, {}), few, low=cfg.low_threshold,
                                       good=cfg.good_threshold) for c in shortlist),
                        key=scoring.by_evidence, reverse=True)
        fresh = {c.name: c for c in shortlist}
        log.info("knowledge base: screened %d criteria on %d seed pairs: %s", len(ranked), len(few),
                 _accuracies(ranked))
        out = [{"name": c.name, "source": c.source, "screen_accuracy": c.seed_accuracy, "screen_pairs": len(few)}
               for c in ranked[cfg.kb_max_candidates:]]
        return [fresh[c.name] for c in ranked[: cfg.kb_max_candidates]], out

    async def warmup(self, state: FlowState) -> FlowState:
        obs = await self.manager.warmup(self.pairs)
        log.info("warm-up: %d observations from %d seed pairs", len(obs), len(self.pairs))
        return {"observations": obs}

    async def propose(self, state: FlowState) -> FlowState:
        kb = [Criterion(**c) for c in state.get("kb_criteria", [])]
        new = await self.manager.propose(self.cfg.n_criteria - len(kb), state.get("observations", []), kb, [])
        crits = kb + new
        reserve = [Criterion(**c) for c in state.get("kb_reserve") or []]
        if len(crits) < self.cfg.n_criteria and reserve:
            extra = reserve[: self.cfg.n_criteria - len(crits)]
            log.info("the manager proposed %d usable criteria of %d asked; filled with %s from the knowledge base",
                     len(new), self.cfg.n_criteria - len(kb), ", ".join(c.name for c in extra))
            crits += extra
        refused = self.manager.take_refused()
        if not crits:
            why = "; ".join(f"{r['name']}: {r['why']}" for r in refused[:3])
            raise FlowError(f"the manager proposed no usable criterion ({len(refused)} refused{': ' if why else ''}"
                            f"{why}); see the log for its answers")
        log.info("proposed %d criteria: %s", len(crits), ", ".join(c.name for c in crits))
        return {"pending": {c.name: {"criterion": c.model_dump(), "rewrite": None} for c in crits},
                "criteria": {}, "banned": [], "results": {}, "iteration": 0, "best": -1.0, "stale": 0,
                "refused": refused}

    async def judge(self, state: FlowState) -> FlowState:
        pending = state.get("pending") or {}
        if not pending:
            return {}
        it = state.get("iteration", 0)
        crits = [Criterion(**p["criterion"]) for p in pending.values()]
        with tqdm(total=len(self.pairs), desc=f"judge (iteration {it}, {len(crits)} criteria)", unit="pair") as bar:
            js = await self.worker.judge_all(self.pairs, crits, progress=bar)
        write_jsonl_atomic(self.layout.iteration_judgments(it), js)
        return {"results": {**(state.get("results") or {}), **scoring.result_tables(js)}}

    def _score(self, c: Criterion, results: dict) -> Criterion:
        return scoring.score(c, results.get(c.key, {}), self.pairs, low=self.cfg.low_threshold,
                             good=self.cfg.good_threshold)

    async def score(self, state: FlowState) -> FlowState:
        it, results = state.get("iteration", 0), state.get("results") or {}
        criteria = dict(state.get("criteria") or {})
        for name, item in (state.get("pending") or {}).items():
            new = self._score(Criterion(**item["criterion"]), results)
            rw = item.get("rewrite")
            if rw is None:
                criteria[name] = new.model_dump()
                continue
            old = Criterion(**criteria[name])
            # Accepted only if it wins on the seed pairs whose critiques did not drive it (out of fold).
            held = [p for p in self.pairs if p.id not in set(rw["driven_by"])]
            old_h, new_h = (scoring.score(c, results.get(c.key, {}), held, low=self.cfg.low_threshold,
                                          good=self.cfg.good_threshold).seed_accuracy for c in (old, new))
            accepted = new_h is not None and (old_h is None or new_h > old_h)
            rewrite = Rewrite(from_version=old.version, to_version=new.version, old_description=old.description,
                              new_description=new.description, critiques=rw["critiques"], driven_by=rw["driven_by"],
                              accepted=accepted, old_accuracy=old.seed_accuracy, new_accuracy=new.seed_accuracy,
                              old_held_out=old_h, new_held_out=new_h, iteration=it)
            winner = new if accepted else old
            winner.history = old.history + [rewrite]
            criteria[name] = self._score(winner, results).model_dump()
            log.info("rewrite of %s v%d→v%d %s (seeds %.3f → %.3f; on the %d seeds that did not drive it %.3f → %.3f)",
                     name, old.version, new.version, "accepted" if accepted else "rejected", old.seed_accuracy or 0,
                     new.seed_accuracy or 0, len(held), old_h or 0, new_h or 0)
        current = [Criterion(**c) for c in criteria.values()]
        flow = self._flow_accuracy(current, results)
        write_json_atomic(self.layout.snapshot(it),
                          {"iteration": it, "flow_soft_accuracy": flow,
                           "criteria": [c.model_dump(exclude={"history"}) for c in current]})
        best, stale = state.get("best", -1.0), state.get("stale", 0)
        stale = 0 if flow is not None and flow > best + 1e-9 else stale + 1
        best = max(best, flow if flow is not None else -1.0)
        nothing_to_do = not any(c.band in ("mid", "low") for c in current)
        done = it >= self.cfg.iterations or stale >= self.cfg.patience or nothing_to_do
        log.info("iteration %d: flow soft-vote accuracy on seeds %s; bands %s%s", it,
                 "n/a" if flow is None else f"{flow:.3f}", {c.name: c.band for c in current},
                 "; stopping" if done else "")
        return {"criteria": criteria, "pending": {}, "best": best, "stale": stale, "done": done}

    def _ensemble(self, criteria: list[Criterion], results: dict) -> ensemble.Ensemble:
        """The voting criteria with their weights (cfg.ensemble: all above chance weighed on the seeds or equally,
        the bands rule, or forward selection)."""
        cfg = self.cfg
        if cfg.ensemble == "bands":
            return ensemble.Ensemble(scoring.select_final(criteria, low=cfg.low_threshold, min_final=cfg.min_final))
        pool = scoring.above_chance(criteria, low=cfg.low_threshold)
        if cfg.ensemble == "above":
            return ensemble.Ensemble(pool)
        if cfg.ensemble == "fitted":
            return ensemble.weighed(pool, results, self.pairs)
        return ensemble.choose(pool, results, self.pairs, max_n=cfg.n_criteria, min_n=cfg.min_final)

    def _flow_accuracy(self, criteria: list[Criterion], results: dict) -> float | None:
        final = self._ensemble(criteria, results).criteria
        pred = scoring.votes([results.get(c.key, {}) for c in final], [p.id for p in self.pairs],
                             [scoring.Voter.of(c) for c in final])
        correct, judged, _ = agreement([pred[p.id]["soft"] for p in self.pairs], [p.better for p in self.pairs])
        return correct / judged if judged else None

    async def reflect(self, state: FlowState) -> FlowState:
        it, results = state.get("iteration", 0), state.get("results") or {}
        critiques: dict[str, dict] = {}
        if self.cfg.no_reflection:
            log.info("reflection: off (--no-reflection); only low criteria are replaced")
            return {"critiques": critiques}
        for name, cd in (state.get("criteria") or {}).items():
            c = Criterion(**cd)
            if c.band != "mid" or c.computed:  # a measure is kept or replaced, never rewritten
                continue
            wrong = scoring.wrong_pairs(results.get(c.key, {}), self.pairs)
            in_fold = [p for p in wrong if scoring.fold_of(p.id, self.cfg.folds) == it % self.cfg.folds]
            notes, used = [], []
            for pair in (in_fold or wrong)[: self.cfg.max_reflect_cases]:
                reasoning = await self.worker.reason(pair, c)
                critique = await self.manager.reflect(c, pair, reasoning)
                if critique:
                    notes.append(critique)
                    used.append(pair.id)
            if notes:
                critiques[name] = {"critiques": notes, "driven_by": used}
        log.info("reflection: critiques for %s", ", ".join(critiques) or "no criterion")
        return {"critiques": critiques}

    async def revise(self, state: FlowState) -> FlowState:
        criteria = dict(state.get("criteria") or {})
        pending: dict[str, dict] = {}
        for name, info in (state.get("critiques") or {}).items():
            c = Criterion(**criteria[name])
            desc = await self.manager.refine(c, info["critiques"])
            if desc:
                new = Criterion(name=name, description=desc, version=_next_version(c), origin=c.origin)
                pending[name] = {"criterion": new.model_dump(), "rewrite": info}
        low = [Criterion(**cd) for cd in criteria.values() if cd["band"] == "low"]
        banned = list(state.get("banned") or []) + [c.model_dump() for c in low]
        for c in low:
            del criteria[c.name]
        keep = [Criterion(**cd) for cd in criteria.values()]
        repl = await self.manager.propose(len(low), state.get("observations", []), keep,
                                          [Criterion(**b) for b in banned], origin="replacement")
        pending.update({c.name: {"criterion": c.model_dump(), "rewrite": None} for c in repl})
        log.info("revise: %d rewrites, %d replaced (%s), %d replacements", len(pending) - len(repl), len(low),
                 ", ".join(c.name for c in low) or "-", len(repl))
        return {"criteria": criteria, "banned": banned, "pending": pending, "critiques": {},
                "iteration": state.get("iteration", 0) + 1,
                "refused": list(state.get("refused") or []) + self.manager.take_refused()}

    async def finalize(self, state: FlowState) -> FlowState:
        results = state.get("results") or {}
        everything = [Criterion(**c) for c in (state.get("criteria") or {}).values()]
        chosen = self._ensemble(everything, results)
        final = chosen.criteria
        log.info("voting criteria (%s): %s; %s rule, cross-validated seed accuracy %s", self.cfg.ensemble,
                 ", ".join(f"{c.name} (weight {c.weight:.2f})" for c in final), chosen.rule,
                 "n/a" if chosen.cv_accuracy is None else f"{chosen.cv_accuracy:.3f}")
        pred = scoring.votes([results.get(c.key, {}) for c in final], [p.id for p in self.pairs],
                             [scoring.Voter.of(c) for c in final])
        flow = {kind: agreement_stats([pred[p.id][kind] for p in self.pairs], [p.better for p in self.pairs])
                for kind in ("soft", "majority")}
        final_names = {c.name for c in final}
        tried = everything + [Criterion(**c) for c in state.get("banned") or []]
        no_signal = scoring.no_signal_advice(final, tried, len(self.pairs), self.cfg.worker.model)
        if no_signal:
            log.warning("%s", no_signal)
        CriteriaSet(
            criteria=final, not_selected=[c for c in everything if c.name not in final_names],
            replaced=[Criterion(**c) for c in state.get("banned") or []],
            knowledge_base_candidates=state.get("kb_candidates") or [],
            knowledge_base_screened_out=state.get("kb_screened_out") or [],
            flow_on_seeds={kind: VoteStats(**stats) for kind, stats in flow.items()},
            iterations_run=state.get("iteration", 0),
            seed_pair_ids=[p.id for p in self.pairs],  # so no evaluation can count them as test pairs
            thresholds={"low": self.cfg.low_threshold, "good": self.cfg.good_threshold},
            refused=state.get("refused") or [], no_signal=no_signal,
            seed_audit=shortcut_audit(self.pairs, final, results),
            ensemble=chosen.summary() if self.cfg.ensemble in ("fitted", "forward") else None,
        ).write(self.layout.criteria)
        write_jsonl_atomic(self.layout.predictions,
                           [{"id": p.id, "human": p.better, **pred[p.id]} for p in self.pairs])
        self._collect_judgments()
        return {"done": True}

    def _collect_judgments(self) -> None:
        files = self.layout.iteration_judgment_files()
        rows = [json.loads(line) for f in files for line in f.read_text().splitlines() if line.strip()]
        write_jsonl_atomic(self.layout.judgments, rows)
        if rows:
            datasets.disable_progress_bars()
            datasets.Dataset.from_list([Judgment(**r).model_dump() for r in rows]).to_parquet(
                str(self.layout.judgments_parquet))

    # -- graph -------------------------------------------------------------------------------------------
    def _step(self, fn: Callable[[FlowState], Awaitable[FlowState]]):
        async def node(state: FlowState) -> FlowState:
            before = self.failures()
            update = await fn(state)
            self.on_step()
            if (failed := self.failures() - before) > 0:  # raising here keeps LangGraph from checkpointing it
                raise FlowError(f"{failed} LLM call(s) failed for good in the {fn.__name__} step, so it was not "
                                "saved; every answered call is cached: once the server answers, continue with "
                                "`critmine mine --resume` (`critmine run`: the same command)")
            return update

        node.__name__ = fn.__name__
        return node

    def graph(self) -> StateGraph:
        g = StateGraph(FlowState)
        names = ["retrieve_knowledge", "warmup", "propose", "judge", "score", "reflect", "revise", "finalize"]
        for n in names:
            g.add_node(n, self._step(getattr(self, n)))
        g.add_edge(START, "warmup")
        for a, b in [("warmup", "retrieve_knowledge"), ("retrieve_knowledge", "propose"), ("propose", "judge"),
                     ("judge", "score"), ("reflect", "revise"), ("revise", "judge"), ("finalize", END)]:
            g.add_edge(a, b)
        g.add_conditional_edges("score", lambda s: "finalize" if s.get("done") else "reflect",
                                {"finalize": "finalize", "reflect": "reflect"})
        return g

    async def run(self, *, resume: bool) -> dict[str, Any]:
        """Run to the end (or resume from the last checkpoint); returns the final state."""
        config = {"configurable": {"thread_id": "mine"}, "recursion_limit": 20 + 8 * self.cfg.iterations}
        async with AsyncSqliteSaver.from_conn_string(str(self.layout.checkpoints)) as saver:
            app = self.graph().compile(checkpointer=saver)
            snapshot = await app.aget_state(config)
            if resume and snapshot.next:
                log.info("resuming at %s", ", ".join(snapshot.next))
                self.manager.remember_refused(snapshot.values.get("refused") or [])
                return await app.ainvoke(None, config)
            if resume and snapshot.values.get("done"):
                log.info("run already finished; nothing to resume")
                return snapshot.values
            return await app.ainvoke({"iteration": 0}, config)
