"""`critmine eval --criteria`: measure mined criteria on human-labelled test pairs the mining never saw."""

from __future__ import annotations

import asyncio
import logging
import random
import time
from pathlib import Path

from tqdm.auto import tqdm

from critmine.agents.annotate import load_criteria
from critmine.agents.audit import shortcut_audit
from critmine.agents.scoring import Voter, result_tables, votes
from critmine.agents.worker import Worker
from critmine.artifacts import CriteriaSet, EvalResult, RunLayout, ScorerMeta
from critmine.columns import Columns
from critmine.config import EndpointConfig, MineConfig
from critmine.defaults import MAX_TEXT_CHARS
from critmine.endpoints import worker_client
from critmine.eval.baselines import ATTACKS, Method, heuristic_judgments, inject, method_for
from critmine.eval.metrics import agreement_stats
from critmine.io import InputError, check_output_dir, read_pairs, response_caches, write_jsonl_atomic
from critmine.llm import Usage
from critmine.llm.cache import CACHE_FILE
from critmine.records import Criterion, Judgment, Pair
from critmine.scorer.model import Scorer

log = logging.getLogger(__name__)
OWN_FILES = ("eval.json", CACHE_FILE)  # what makes an output directory an evaluation's own


def seed_ids_of(criteria_file: Path) -> set[str]:
    """Ids of the seed pairs the criteria were mined on: recorded in criteria.json (older runs: config.json)."""
    recorded = CriteriaSet.read(criteria_file).seed_pair_ids
    if recorded is not None:
        return set(recorded)
    cfg = RunLayout(criteria_file.parent).config
    if not cfg.exists():
        return set()
    mined = MineConfig.read(cfg)
    seeds = mined.pairs
    return {p.id for p in read_pairs(seeds, columns=mined.columns)} if seeds and Path(seeds).exists() else set()


def load_test_pairs(path: str, criteria_file: Path | None, sample: int | None, seed: int,
                    columns: Columns | None = None) -> list[Pair]:
    pairs = read_pairs(path, labelled=True, columns=columns)
    overlap = sorted(seed_ids_of(criteria_file) & {p.id for p in pairs}) if criteria_file else []
    if overlap:
        raise InputError(f"{path}: {len(overlap)} test pairs were seed pairs of the mining run "
                         f"(e.g. '{overlap[0]}'); a reported accuracy must not include them")
    if sample and sample < len(pairs):
        pairs = random.Random(seed).sample(pairs, sample)
    return pairs


def summarise(pairs: list[Pair], criteria: list[Criterion], judgments: list[Judgment]) -> dict:
    gold = [p.better for p in pairs]
    by_key = result_tables(judgments)
    per_order = {(j.criterion, j.pair_id, j.order): j for j in judgments if j.order != "both"}
    tables, rows = [], []
    for c in criteria:
        table = by_key.get(c.key, {})
        tables.append(table)
        rows.append({"name": c.name, "version": c.version, "seed_accuracy": c.accuracy,
                     **agreement_stats([table.get(p.id, [0, 0, 1, "none"])[3] for p in pairs], gold)})
    pred = votes(tables, [p.id for p in pairs], [Voter.of(c) for c in criteria])
    flips = [per_order[(c.name, p.id, "ab")].verdict != per_order[(c.name, p.id, "ba")].verdict
             for c in criteria for p in pairs
             if (c.name, p.id, "ab") in per_order and (c.name, p.id, "ba") in per_order
             and not per_order[(c.name, p.id, "ab")].failed and not per_order[(c.name, p.id, "ba")].failed]
    return {"n_pairs": len(pairs), "criteria": rows, "predictions": pred,
            "audit": shortcut_audit(pairs, criteria, by_key),
            "flow_soft": agreement_stats([pred[p.id]["soft"] for p in pairs], gold),
            "flow_majority": agreement_stats([pred[p.id]["majority"] for p in pairs], gold),
            "swap_consistency": 1 - sum(flips) / len(flips) if flips else None}


def table(result: dict) -> str:
    def fmt(name: str, s: dict) -> str:
        acc = "-" if s["accuracy"] is None else f"{s['accuracy']:.3f}"
        kappa = "-" if s["kappa"] is None else f"{s['kappa']:.2f}"
        return (f"{name[:35]:<36}{acc:>7}   [{s['ci_low']:.2f}, {s['ci_high']:.2f}]{s['coverage']:>8.2f}"
                f"{kappa:>7}{s['n_judged']:>6}")

    lines = [f"{'method':<36}{'acc':>7}{'95% CI':>15}{'cover':>8}{'kappa':>7}{'n':>6}"]
    lines += [fmt(f"{r['name']} v{r['version']}", r) for r in result["criteria"]]
    name = result.get("method", "flow").upper()
    lines.append(fmt(f"{name} (soft vote)", result["flow_soft"]))
    if result.get("flow_majority") is not None:  # n/a for a scorer: one score per text, nothing to vote
        lines.append(fmt(f"{name} (majority vote)", result["flow_majority"]))
    if "injection" in result:
        inj = result["injection"]
        rate = "-" if inj["flip_rate"] is None else f"{inj['flip_rate']:.3f}"
        toward = "-" if inj["toward_injected_rate"] is None else f"{inj['toward_injected_rate']:.3f}"
        lines.append(f"injection probe: flip rate {rate}, won by the planted text {toward} ({inj['pairs']} pairs)")
        for kind, k in inj.get("by_kind", {}).items():
            rate = "-" if k["flip_rate"] is None else f"{k['flip_rate']:.3f}"
            toward = "-" if k["toward_injected_rate"] is None else f"{k['toward_injected_rate']:.3f}"
            lines.append(f"  {kind:<16} flip rate {rate}, won by the planted text {toward} ({k['pairs']} pairs)")
    if result.get("failed_calls"):
        lines.append(f"failed LLM calls: {result['failed_calls']} (their verdicts count as abstentions; rerun the same "
                     "command with the same --out to ask them again: answered calls are cached)")
    sc = result["swap_consistency"]
    lines.append(f"swap consistency (same side in both orders): {'n/a' if sc is None else f'{sc:.3f}'}"
                 f"   pairs: {result['n_pairs']}")
    return "\n".join(lines)


async def _judge(pair_sets: list[list[Pair]], method: Method, worker_cfg: EndpointConfig, out: Path, usage: Usage,
                 max_text_chars: int, engine: str, kv_cache_memory_bytes: int | None,
                 reuse: list[Path]) -> list[list[Judgment]]:
    """Judge each set of pairs with the method, in one client session (one embedded server start)."""
    if method.heuristic:
        return [heuristic_judgments(pairs, method.heuristic) for pairs in pair_sets]
    async with worker_client(worker_cfg, out / CACHE_FILE, usage, engine=engine,
                             kv_cache_memory_bytes=kv_cache_memory_bytes, read_from=reuse) as client:
        worker = Worker(client, max_text_chars=max_text_chars, template=method.template)
        results = []
        for pairs in pair_sets:
            with tqdm(total=len(pairs), desc=f"eval {method.name}", unit="pair") as bar:
                results.append(await worker.judge_all(pairs, method.criteria, phase="eval", progress=bar))
        return results


def injection_effect(pairs: list[Pair], clean: dict, injected: dict) -> dict:
    """How many flow verdicts an instruction planted in the worse text changed, and how many it won."""
    flips = toward = judged = 0
    for p in pairs:
        before, after = clean[p.id]["soft"], injected[p.id]["soft"]
        worse = "b" if p.better == "a" else "a"
        if before == "none" and after == "none":
            continue
        judged += 1
        flips += before != after
        toward += after == worse and before != worse
    return {"pairs": judged, "flip_rate": flips / judged if judged else None,
            "toward_injected_rate": toward / judged if judged else None}


def pooled_injection(by_kind: dict[str, dict]) -> dict:
    """The probe over every attack kind together (pairs counted once per kind)."""
    judged = sum(k["pairs"] for k in by_kind.values())
    flips = sum(k["flip_rate"] * k["pairs"] for k in by_kind.values() if k["flip_rate"] is not None)
    toward = sum(k["toward_injected_rate"] * k["pairs"] for k in by_kind.values()
                 if k["toward_injected_rate"] is not None)
    accs = [k["accuracy_injected"] for k in by_kind.values() if k["accuracy_injected"] is not None]
    return {"pairs": judged, "flip_rate": flips / judged if judged else None,
            "toward_injected_rate": toward / judged if judged else None,
            "accuracy_injected": sum(accs) / len(accs) if accs else None}


def scorer_training_ids(scorer_dir: Path) -> set[str]:
    """Ids of the pairs a scorer was trained on (when its training file is still there)."""
    trained_on = ScorerMeta.read(scorer_dir / "scorer.json").trained_on
    return {p.id for p in read_pairs(trained_on)} if trained_on and Path(trained_on).exists() else set()


def run_scorer_eval(pairs_path: str, out: Path, scorer_dir: Path, *, sample: int | None = None,
                    seed: int = 0) -> dict:
    """`critmine eval --scorer`: "the higher score wins" against human labels (no LLM call)."""
    scorer = Scorer.load(scorer_dir)
    pairs = load_test_pairs(pairs_path, None, sample, seed)
    check_output_dir(out, "a critmine evaluation", own=OWN_FILES)
    overlap = sorted(scorer_training_ids(scorer_dir) & {p.id for p in pairs})
    if overlap:
        raise InputError(f"{pairs_path}: {len(overlap)} test pairs were training pairs of the scorer "
                         f"(e.g. '{overlap[0]}'); a reported accuracy must not include them")
    t0 = time.monotonic()
    sa, sb = scorer.score([p.a for p in pairs]), scorer.score([p.b for p in pairs])
    pred = {p.id: {"margin": float(x - y), "soft": "a" if x > y else "b" if y > x else "none"}
            for p, x, y in zip(pairs, sa, sb, strict=True)}
    stats = agreement_stats([pred[p.id]["soft"] for p in pairs], [p.better for p in pairs])
    result = {"method": f"scorer ({scorer.meta['features']})", "n_pairs": len(pairs), "criteria": [],
              "predictions": pred, "flow_soft": stats,
              "flow_majority": None, "swap_consistency": None,  # n/a: no votes, no order (one score per text)
              "pairs": pairs_path, "scorer": str(scorer_dir), "wall_s": time.monotonic() - t0, "llm_calls": 0,
              "paid_calls": 0, "tokens": 0}
    out.mkdir(parents=True, exist_ok=True)
    EvalResult.model_validate(result).write(out / "eval.json")
    return result


def run_eval(pairs_path: str, out: Path, worker_cfg: EndpointConfig, *, criteria_file: Path | None = None,
             baseline: str | None = None, sample: int | None = None, seed: int = 0,
             max_text_chars: int = MAX_TEXT_CHARS, engine: str = "server", kv_cache_memory_bytes: int | None = None,
             injection: bool | list[str] = False, columns: Columns | None = None,
             reuse_cache: list[str] | None = None) -> dict:
    """Judge held-out pairs with mined criteria or a baseline. `injection`: True for every attack kind of the
    probe (baselines.ATTACKS), or a list of kinds; each kind is the same pairs with that attack planted.
    `reuse_cache`: caches or run directories whose answers are reused (`judge` already asked for these verdicts)."""
    criteria: list[Criterion] = []
    if criteria_file is not None:
        criteria = load_criteria(criteria_file)
    method = method_for(baseline, criteria)
    pairs = load_test_pairs(pairs_path, criteria_file, sample, seed, columns)
    reuse = response_caches(reuse_cache or [])
    check_output_dir(out, "a critmine evaluation", own=OWN_FILES)
    usage, t0 = Usage(), time.monotonic()  # `out` is created once the worker's server is up
    kinds = list(ATTACKS) if injection is True else list(injection or [])
    if unknown := [k for k in kinds if k not in ATTACKS]:
        raise InputError(f"unknown injection kind {', '.join(unknown)}: choose from {', '.join(ATTACKS)}")
    sets = [pairs] + [inject(pairs, kind) for kind in kinds]
    judged = asyncio.run(_judge(sets, method, worker_cfg, out, usage, max_text_chars, engine, kv_cache_memory_bytes,
                                 reuse))
    result = summarise(pairs, method.criteria, judged[0])
    if kinds:
        by_kind = {}
        for kind, injected, js in zip(kinds, sets[1:], judged[1:], strict=True):
            after = summarise(injected, method.criteria, js)
            by_kind[kind] = {**injection_effect(pairs, result["predictions"], after["predictions"]),
                             "accuracy_injected": after["flow_soft"]["accuracy"]}
        result["injection"] = {**pooled_injection(by_kind), "by_kind": by_kind}
    total = usage.total()
    result.update(method=method.name, pairs=pairs_path, criteria_file=str(criteria_file) if criteria_file else None,
                  wall_s=time.monotonic() - t0, llm_calls=total.answers, paid_calls=total.calls,
                  tokens=total.all_tokens, failed_calls=total.failures, usage=usage.model_dump())
    if total.failures:
        log.warning("%d LLM calls failed for good; their verdicts count as abstentions (coverage %.2f); rerun to "
                    "ask them again", total.failures, result["flow_soft"]["coverage"])
    write_jsonl_atomic(out / "judgments.jsonl", judged[0])  # the test pairs as they are
    for kind, js in zip(kinds, judged[1:], strict=True):  # the same pair ids with an attack planted: kept apart
        write_jsonl_atomic(out / f"judgments-injected-{kind}.jsonl", js)
    EvalResult.model_validate(result).write(out / "eval.json")
    return result
