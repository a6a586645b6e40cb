"""`critmine mine`: set up a run directory, the clients and the flow; run or resume it; report."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import time
from pathlib import Path

from critmine.agents import knowledge
from critmine.agents.flow import MiningFlow
from critmine.agents.manager import Manager
from critmine.agents.vetting import Vetter
from critmine.agents.worker import Worker
from critmine.artifacts import CriteriaSet, RunLayout
from critmine.config import MineConfig
from critmine.endpoints import resolve
from critmine.io import InputError, check_output_dir, read_pairs, response_caches, write_json_atomic
from critmine.llm import LLMClient, ResponseCache, Usage
from critmine.records import Pair

log = logging.getLogger(__name__)


def seeds_digest(pairs: list[Pair]) -> str:
    h = hashlib.sha256()
    for p in pairs:
        h.update(p.model_dump_json().encode("utf-8"))
    return h.hexdigest()


def prepare(cfg: MineConfig, *, resume: bool) -> tuple[MineConfig, list[Pair]]:
    """Validate input and the run directory before anything is written. Raises InputError."""
    run_dir, layout = Path(cfg.out), RunLayout(cfg.out)
    if resume:
        saved = layout.config
        if not saved.exists():
            raise InputError(f"{run_dir}: not a critmine run directory (no {saved.name}); nothing to resume")
        stored = MineConfig.read(saved)
        # The run's definition comes from the run dir; only how to reach servers, the budget and the caches to
        # reuse may change (a URL given now replaces the stored one; none given keeps it).
        stored.manager.base_url = cfg.manager.base_url or stored.manager.base_url
        stored.worker.base_url = cfg.worker.base_url or stored.worker.base_url
        stored.manager.api_key, stored.worker.api_key = cfg.manager.api_key, cfg.worker.api_key
        stored.budget, stored.reuse_cache = cfg.budget, cfg.reuse_cache
        cfg = stored
    elif layout.checkpoints.exists() or layout.config.exists():
        raise InputError(f"{run_dir}: a run already exists here; use --resume to continue it or choose another --out")
    else:
        check_output_dir(run_dir, "a critmine run directory", own=(layout.run.name, layout.cache.name))
    # Resolved once, here: a cache that is not there is bad input, said before anything is written.
    cfg.reuse_cache = [str(f) for f in response_caches(cfg.reuse_cache)]
    pairs = read_pairs(cfg.pairs, labelled=True, columns=cfg.columns)
    if len(pairs) < 2:
        raise InputError(f"{cfg.pairs}: need at least 2 labelled pairs, found {len(pairs)}")
    digest = seeds_digest(pairs)
    if resume and cfg.seeds_sha256 and digest != cfg.seeds_sha256:
        raise InputError(f"{cfg.pairs}: the seed pairs changed since this run started; start a new run instead")
    cfg.seeds_sha256 = digest
    return cfg, pairs


def _load_usage(layout: RunLayout) -> Usage:
    f = layout.usage
    return Usage.model_validate_json(f.read_text()) if f.exists() else Usage()


def summary_table(criteria_file: Path) -> str:
    found = CriteriaSet.read(criteria_file, allow_empty=True)
    lines = [f"{'criterion':<32}{'ver':>4}{'origin':>16}{'acc':>7}{'95% CI':>15}{'cover':>7}{'n':>5}"]
    for c in found.criteria:
        acc = "-" if c.accuracy is None else f"{c.accuracy:.3f}"
        ci = f"[{c.ci_low or 0:.2f}, {c.ci_high or 1:.2f}]"
        lines.append(f"{c.name[:31]:<32}{c.version:>4}{c.origin:>16}{acc:>7}{ci:>15}"
                     f"{c.coverage or 0:>7.2f}{c.n_judged:>5}")
    for kind, f in found.flow_on_seeds.items():
        acc = "-" if f.accuracy is None else f"{f.accuracy:.3f}"
        lines.append(f"flow ({kind} vote) on seeds: accuracy {acc} [{f.ci_low:.2f}, {f.ci_high:.2f}], "
                     f"coverage {f.coverage:.2f}")
    return "\n".join(lines)


async def _run_flow(cfg: MineConfig, pairs: list[Pair], run_dir: Path, resume: bool) -> None:
    """Start the servers, then (only then) write the run directory and run the flow."""
    clients: list[LLMClient] = []
    cache: ResponseCache | None = None
    usage: Usage | None = None

    layout = RunLayout(run_dir)

    def save_usage() -> None:
        write_json_atomic(layout.usage, usage.model_dump())

    try:
        with contextlib.ExitStack() as stack:
            started: dict[str, str] = {}
            manager_ep = resolve(cfg.manager, stack, started)
            worker_ep = resolve(cfg.worker, stack, started)
            run_dir.mkdir(parents=True, exist_ok=True)
            write_json_atomic(layout.config, cfg.model_dump())
            usage = _load_usage(layout)
            cache = ResponseCache(layout.cache, cfg.reuse_cache)
            clients = [LLMClient(ep, usage=usage, cache=cache, budget=cfg.budget, on_paid=save_usage)
                       for ep in (manager_ep, worker_ep)]
            vetter = Vetter([t for p in pairs for t in (p.a, p.b)],
                            [f"{e.name} {e.description}" for e in knowledge.load_all(cfg.kb_file)])
            manager = Manager(clients[0], max_text_chars=min(cfg.max_text_chars, 1200), vetter=vetter)
            worker = Worker(clients[1], max_text_chars=cfg.max_text_chars, top_logprobs=cfg.top_logprobs)
            flow = MiningFlow(cfg, pairs, manager, worker, run_dir, on_step=save_usage,
                              failures=lambda: usage.total().failures)
            await flow.run(resume=resume)
    finally:
        for c in clients:
            await c.aclose()
        if usage is not None:
            save_usage()
        if cache is not None:
            cache.close()


def run_mine(cfg: MineConfig, *, resume: bool) -> Path:
    """Run (or resume) mining; returns the run directory. Raises InputError, or ServerError when a model server
    cannot start, before writing anything."""
    cfg, pairs = prepare(cfg, resume=resume)
    run_dir = Path(cfg.out)
    t0 = time.monotonic()
    asyncio.run(_run_flow(cfg, pairs, run_dir, resume))
    log.info("mining finished in %.1f s", time.monotonic() - t0)
    return run_dir
