"""`critmine eval` on held-out pairs against the fake server: numbers, swap consistency, seed-overlap refusal."""

from __future__ import annotations

import json

from critmine.cli import main
from tests.conftest import make_pairs


def _mine(fake, seeds, out):
    assert main(["mine", "--pairs", str(seeds), "--out", str(out), "--base-url", fake.base_url, "--model", "fake",
                 "--n-criteria", "4", "--no-kb", "--retry-backoff", "0.01"]) == 0


def test_eval_on_held_out_pairs(fake, seeds, tmp_path, capsys):
    _mine(fake, seeds, tmp_path / "run")
    test = [{**p, "id": f"t{i}"} for i, p in enumerate(make_pairs(20)[12:])]  # 8 pairs the mining never saw
    test_file = tmp_path / "test.jsonl"
    test_file.write_text("".join(json.dumps(p) + "\n" for p in test))
    rc = main(["eval", "--pairs", str(test_file), "--criteria", str(tmp_path / "run" / "criteria.json"),
               "--base-url", fake.base_url, "--model", "fake"])
    assert rc == 0
    result = json.loads((tmp_path / "run" / "eval" / "eval.json").read_text())
    # make_pairs(20)[12:] has no noisy pair: every final criterion follows the hidden rule → all right.
    assert result["flow_soft"]["accuracy"] == 1.0 and result["flow_soft"]["n_judged"] == 8
    assert result["flow_soft"]["kappa"] == 1.0
    assert all(r["accuracy"] == 1.0 for r in result["criteria"])
    assert result["swap_consistency"] == 1.0  # the fake's preference does not depend on the order
    assert "FLOW (soft vote)" in capsys.readouterr().out
    # Shortcut audit: "longer wins" alone is right on all of these pairs, and none is length-matched.
    audit = result["audit"]
    assert audit["simple_signals"]["longer_text"] == 1.0 and audit["simple_signals"]["shorter_sentences"] == 0.0
    assert audit["length_matched_pairs"] == 0 and audit["flow_length_matched"]["accuracy"] is None
    assert "flow_without_computed" not in audit  # mined with --no-kb: no computed criterion in the flow


def test_eval_refuses_seed_pairs(fake, seeds, tmp_path, caplog):
    _mine(fake, seeds, tmp_path / "run")
    (tmp_path / "run" / "config.json").unlink()  # the ids recorded in criteria.json are enough
    rc = main(["eval", "--pairs", str(seeds), "--criteria", str(tmp_path / "run" / "criteria.json"),
               "--base-url", fake.base_url, "--model", "fake"])
    assert rc == 2
    assert any("were seed pairs of the mining run" in r.getMessage() for r in caplog.records)
    assert not (tmp_path / "run" / "eval").exists()


def _held_out(tmp_path, flip_labels=()):
    rows = [{**p, "id": f"t{i}"} for i, p in enumerate(make_pairs(20)[12:])]
    for r in rows:
        if r["id"] in flip_labels:  # people chose the shorter text here
            r["better"] = "b" if r["better"] == "a" else "a"
    f = tmp_path / "test.jsonl"
    f.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return f, rows


def test_baselines_are_measured_with_the_same_worker(fake, seeds, tmp_path):
    import random

    _mine(fake, seeds, tmp_path / "run")
    test_file, rows = _held_out(tmp_path, flip_labels=("t0",))
    crit = str(tmp_path / "run" / "criteria.json")
    acc = {}
    for name in ("vanilla", "one-prompt", "qurating", "length", "random"):
        out = tmp_path / f"eval-{name}"
        assert main(["eval", "--pairs", str(test_file), "--criteria", crit, "--baseline", name, "--out", str(out),
                     "--base-url", fake.base_url, "--model", "fake"]) == 0
        acc[name] = json.loads((out / "eval.json").read_text())
    # The fake judges overall quality (vanilla) and the final criteria together (one-prompt) by the hidden rule.
    assert acc["vanilla"]["flow_soft"]["accuracy"] == 7 / 8 and acc["one-prompt"]["flow_soft"]["accuracy"] == 7 / 8
    # QuRating's descriptions do not match the rule, so the fake prefers the shorter text under them.
    assert acc["qurating"]["flow_soft"]["accuracy"] == 1 / 8 and len(acc["qurating"]["criteria"]) == 4
    assert acc["length"]["flow_soft"]["accuracy"] == 7 / 8 and acc["length"]["llm_calls"] == 0
    rng = random.Random(0)
    expected = sum(rng.choice("ab") == r["better"] for r in rows) / len(rows)
    assert acc["random"]["flow_soft"]["accuracy"] == expected and acc["random"]["llm_calls"] == 0
    assert acc["vanilla"]["llm_calls"] == 8 * 2  # both orders, one prompt per pair


def test_injection_probe_reports_flips_per_attack_kind(fake, seeds, tmp_path, capsys):
    _mine(fake, seeds, tmp_path / "run")
    test_file, _ = _held_out(tmp_path, flip_labels=("t0", "t1"))
    assert main(["eval", "--pairs", str(test_file), "--criteria", str(tmp_path / "run" / "criteria.json"),
                 "--injection", "--base-url", fake.base_url, "--model", "fake"]) == 0
    inj = json.loads((tmp_path / "run" / "eval" / "eval.json").read_text())["injection"]
    # This fake obeys planted instructions. On the 6 pairs where people chose the longer text, the planted
    # (shorter, worse) text now wins; on t0 and t1 the plant sits in the longer text, which already won.
    assert set(inj["by_kind"]) == {"instruction", "role_marker", "fence_break", "chat_template"}
    for kind in inj["by_kind"].values():
        assert kind["pairs"] == 8 and kind["flip_rate"] == 6 / 8 and kind["toward_injected_rate"] == 6 / 8
        assert kind["accuracy_injected"] == 0.0
    assert inj["pairs"] == 32 and inj["flip_rate"] == 6 / 8
    assert "role_marker" in capsys.readouterr().out
    # judgments.jsonl holds the test pairs as they are; each attack's verdicts on the same ids sit in their own file.
    out = tmp_path / "run" / "eval"
    clean = [json.loads(x) for x in (out / "judgments.jsonl").read_text().splitlines()]
    keys = [(j["pair_id"], j["criterion"], j["order"]) for j in clean]
    assert len(keys) == len(set(keys)) and {j["pair_id"] for j in clean} == {f"t{i}" for i in range(8)}
    for kind in inj["by_kind"]:
        planted = [json.loads(x) for x in (out / f"judgments-injected-{kind}.jsonl").read_text().splitlines()]
        assert len(planted) == len(clean)
    # Structural attacks stayed data: every verdict request is the template's two messages, one fence per text.
    verdicts = [r for r in fake.requests if "response_format" not in r]
    assert verdicts and all([m["role"] for m in r["messages"]] == ["system", "user"] for r in verdicts)
    for r in verdicts:
        user = r["messages"][1]["content"]
        assert user.count("<text_a>") == user.count("</text_a>") == user.count("</text_b>") == 1
        assert "<|im_start|>" not in user and "<<<system>>>" not in user


def test_mine_and_eval_write_a_self_contained_report(fake, seeds, tmp_path):
    _mine(fake, seeds, tmp_path / "run")
    page = tmp_path / "run" / "report.html"
    assert page.exists() and page.read_text().count("<img") == 3  # evolution, final criteria, margins
    test_file, _ = _held_out(tmp_path)
    assert main(["eval", "--pairs", str(test_file), "--criteria", str(tmp_path / "run" / "criteria.json"),
                 "--base-url", fake.base_url, "--model", "fake"]) == 0
    html = page.read_text()
    assert html.count('src="data:image/png;base64,') == 4  # + the held-out evaluation
    assert "http://" not in html and "https://" not in html  # opens offline
    md = (tmp_path / "run" / "report.md").read_text()
    assert "| thoroughness | 1 | proposed | 0.833 |" in md and "## Evaluation on held-out pairs" in md
    assert "<table>" in html and "<td>thoroughness</td>" in html and "<h2>Evaluation on held-out pairs</h2>" in html
    # descriptions come from an LLM: markup in them is shown as text, never run
    crit = json.loads((tmp_path / "run" / "criteria.json").read_text())
    crit["criteria"][0]["description"] = "Prefers <script>alert(1)</script> texts"
    (tmp_path / "run" / "criteria.json").write_text(json.dumps(crit))
    assert main(["report", str(tmp_path / "run")]) == 0
    html = page.read_text()
    assert "<script>" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html


def test_benchmark_that_mines_no_usable_criterion_says_so_in_one_line(tmp_path):
    import subprocess
    import sys
    from pathlib import Path

    from tests.conftest import make_script
    from tests.fake_server import FakeLLMServer

    d = tmp_path / "bench"
    d.mkdir()
    (d / "seed.jsonl").write_text("".join(json.dumps(p) + "\n" for p in make_pairs()))
    (d / "test.jsonl").write_text("".join(json.dumps({**p, "id": f"t{i}"}) + "\n" for i, p in enumerate(make_pairs())))
    script = make_script()
    script.initial = script.replacements = [{"name": "edu_basic_relevance", "description": "The criterion"}]
    root = Path(__file__).resolve().parents[1]
    with FakeLLMServer(script) as fake:
        proc = subprocess.run([sys.executable, str(root / "eval" / "benchmarks" / "benchmark.py"), "--pairs-dir",
                               str(d), "--work", str(tmp_path / "work"), "--base-url", fake.base_url, "--model",
                               "fake", "--no-kb", "--baselines", "length", "--scorer-pairs", "0"],
                              capture_output=True, text=True, timeout=300)
    assert proc.returncode == 1
    errors = [line for line in proc.stderr.splitlines() if "INFO" not in line]
    assert errors == [next(line for line in errors if "proposed no usable criterion" in line)]
    assert not (tmp_path / "work" / "criteria.json").exists() and not (tmp_path / "work" / "benchmark.json").exists()


def test_benchmark_table_has_flow_scorer_and_baselines(fake, tmp_path):
    import subprocess
    import sys
    from pathlib import Path

    d = tmp_path / "bench"
    d.mkdir()
    (d / "seed.jsonl").write_text("".join(json.dumps(p) + "\n" for p in make_pairs()))
    test = [{**p, "id": f"t{i}", "a": p["a"].replace("[p", "[t"), "b": p["b"].replace("[p", "[t")}
            for i, p in enumerate(make_pairs(40)[12:])]
    (d / "test.jsonl").write_text("".join(json.dumps(p) + "\n" for p in test))
    from tests.conftest import make_corpus

    make_corpus(tmp_path / "corpus.jsonl")  # distinct lengths: the fake's rule decides every corpus pair
    root = Path(__file__).resolve().parents[1]
    cmd = [sys.executable, str(root / "eval" / "benchmarks" / "benchmark.py"), "--pairs-dir", str(d), "--work",
           str(tmp_path / "work"), "--base-url", fake.base_url, "--model", "fake", "--kb-max-candidates", "0",
           "--baselines", "length,random", "--scorer-pairs", "40", "--scorer-corpus", str(tmp_path / "corpus.jsonl"),
           "--no-reflection", "--manager-model", "fake-manager"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    mined_with = json.loads((tmp_path / "work" / "config.json").read_text())  # the ablation flag reached mining
    assert mined_with["no_reflection"] is True and mined_with["no_kb"] is False
    # the manager's model is its own, the worker's stays --model
    assert (mined_with["manager"]["model"], mined_with["worker"]["model"]) == ("fake-manager", "fake")
    assert {r["model"] for r in fake.requests_for("warmup")} == {"fake-manager"}
    table = json.loads((tmp_path / "work" / "benchmark.json").read_text())
    methods = [r["method"] for r in table["rows"]]
    assert methods == ["Flow", "Scorer (hashing)", "length", "random"]
    flow, scorer, length = table["rows"][:3]
    assert flow["accuracy"] == 1.0 and length["accuracy"] == 1.0  # the test pairs follow the hidden rule
    d = length["flow_minus_this"]  # paired on the same 28 pairs: never apart
    assert (d["n"], d["difference"], d["ci_low"], d["ci_high"], d["mcnemar_p"]) == (28, 0, 0, 0, 1.0)
    assert "Flow - length" in proc.stdout
    # measured like every method (its quality is tested in test_distil: the fake's length rule cannot be learnt
    # from length-matched corpus pairs)
    assert scorer["n"] == 28 and scorer["llm_calls"] > 0 and scorer["accuracy"] is not None
    assert (tmp_path / "work" / "scorer" / "scorer.json").exists()
    measured = json.loads((tmp_path / "work" / "eval-scorer" / "eval.json").read_text())
    assert measured["swap_consistency"] is None and measured["flow_majority"] is None  # n/a, not a made-up 1.0
    assert "Scorer (hashing)" in proc.stdout
    assert flow["paid"] == flow["llm_calls"] == 28 * 2 * 2 * len(json.loads((tmp_path / "work" / "criteria.json")
                                                                            .read_text())["criteria"])
    assert flow["tokens"] > 0 and scorer["paid"] == scorer["llm_calls"] and table["mining"]["paid"] > 0
    # the ablation re-vote reads the same judgments: "as mined" is the benchmark's Flow, without a new call
    revote = subprocess.run([sys.executable, str(root / "eval" / "benchmarks" / "revote.py"), "--work",
                             str(tmp_path / "work"), "--pairs", str(tmp_path / "bench" / "test.jsonl")],
                            capture_output=True, text=True, timeout=120)
    assert revote.returncode == 0, revote.stderr[-3000:]
    rows = {line[:40].strip(): line[40:].split() for line in revote.stdout.splitlines()[1:]}
    assert rows["as mined"][0] == f"{flow['accuracy']:.3f}" and rows["as mined"][-1] == f"n={flow['n']}"
    assert {"unscaled mean", "raw sum of p_a - p_b", "fitted weights (seeds)", "majority"} <= set(rows)
    # a rerun reuses everything: the same calls and tokens (replayed from the caches), nothing paid, and no wall
    # time claimed for what it did not run
    again = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr[-3000:]
    table2 = json.loads((tmp_path / "work" / "benchmark.json").read_text())
    flow2, scorer2 = table2["rows"][:2]
    assert (flow2["llm_calls"], flow2["tokens"], flow2["paid"]) == (flow["llm_calls"], flow["tokens"], 0)
    assert (scorer2["llm_calls"], scorer2["tokens"], scorer2["paid"]) == (scorer["llm_calls"], scorer["tokens"], 0)
    assert scorer2["wall_s"] is None and table2["mining"]["wall_s"] is None and table2["mining"]["paid"] == 0
    assert table2["mining"]["tokens"] == table["mining"]["tokens"]
    # --scorer-pairs 0: the table without a scorer row (the baselines and Flow as before, replayed)
    at = cmd.index("--scorer-pairs") + 1
    no_scorer = [*cmd[:at], "0", *cmd[at + 1:]]
    third = subprocess.run(no_scorer, capture_output=True, text=True, timeout=600)
    assert third.returncode == 0, third.stderr[-3000:]
    table3 = json.loads((tmp_path / "work" / "benchmark.json").read_text())
    assert [r["method"] for r in table3["rows"]] == ["Flow", "length", "random"]
    assert table3["rows"][0]["accuracy"] == flow["accuracy"] and "scorer:" not in third.stdout


def test_eval_scorer_refuses_its_training_pairs(tmp_path, caplog):
    (tmp_path / "lab.jsonl").write_text("".join(json.dumps(p) + "\n" for p in make_pairs(20)))
    assert main(["train", "--pairs", str(tmp_path / "lab.jsonl"), "--out", str(tmp_path / "s"), "--holdout", "0"]) == 0
    (tmp_path / "test.jsonl").write_text("".join(json.dumps(p) + "\n" for p in make_pairs(4)))
    assert main(["eval", "--pairs", str(tmp_path / "test.jsonl"), "--scorer", str(tmp_path / "s")]) == 2
    assert any("were training pairs of the scorer" in r.getMessage() for r in caplog.records)
    held = [{**p, "id": f"h{i}"} for i, p in enumerate(make_pairs(4))]
    (tmp_path / "held.jsonl").write_text("".join(json.dumps(p) + "\n" for p in held))
    assert main(["eval", "--pairs", str(tmp_path / "held.jsonl"), "--scorer", str(tmp_path / "s")]) == 0
    result = json.loads((tmp_path / "s" / "eval" / "eval.json").read_text())
    assert result["flow_soft"]["n_judged"] == 4 and result["llm_calls"] == 0


def test_eval_counts_failed_calls_and_a_healthy_rerun_repairs_them(fake, seeds, tmp_path):
    from tests.conftest import make_script
    from tests.fake_server import FAULT_TIMEOUT_S, FakeLLMServer

    _mine(fake, seeds, tmp_path / "run")
    test_file, _ = _held_out(tmp_path)
    crit = str(tmp_path / "run" / "criteria.json")

    def evaluate(url: str, out: str, *extra: str) -> dict:
        assert main(["eval", "--pairs", str(test_file), "--criteria", crit, "--out", str(tmp_path / out),
                     "--base-url", url, "--model", "fake", "--retry-backoff", "0.01",
                     "--timeout", str(FAULT_TIMEOUT_S),
                     *extra]) == 0
        return json.loads((tmp_path / out / "eval.json").read_text())

    clean = evaluate(fake.base_url, "clean")
    with FakeLLMServer(make_script(fault_rate=0.2, fault_seed=5)) as faulty:
        broken = evaluate(faulty.base_url, "eval", "--max-retries", "0")
        faults = sum(faulty.faults.values())
    assert faults > 0 and broken["failed_calls"] == faults  # every fault counted, none hidden
    assert broken["flow_soft"]["coverage"] < 1.0 or any(r["coverage"] < 1.0 for r in broken["criteria"])
    repaired = evaluate(fake.base_url, "eval")  # same --out: cached answers are reused, failed ones asked again
    assert repaired["failed_calls"] == 0 and repaired["paid_calls"] == faults
    assert repaired["flow_soft"] == clean["flow_soft"] and repaired["criteria"] == clean["criteria"]


def test_eval_and_judge_reuse_the_verdicts_the_other_paid_for(fake, seeds, tmp_path, caplog):
    _mine(fake, seeds, tmp_path / "run")
    test_file, rows = _held_out(tmp_path)
    unlabelled = tmp_path / "unlabelled.jsonl"
    unlabelled.write_text("".join(json.dumps({**r, "better": None}) + "\n" for r in rows))
    crit = str(tmp_path / "run" / "criteria.json")
    assert main(["judge", "--criteria", crit, "--pairs", str(unlabelled), "--out", str(tmp_path / "labelled.jsonl"),
                 "--base-url", fake.base_url, "--model", "fake"]) == 0
    fresh = tmp_path / "eval-fresh"
    assert main(["eval", "--pairs", str(test_file), "--criteria", crit, "--out", str(fresh),
                 "--base-url", fake.base_url, "--model", "fake"]) == 0
    reused = tmp_path / "eval-reused"
    assert main(["eval", "--pairs", str(test_file), "--criteria", crit, "--out", str(reused), "--reuse-cache",
                 str(tmp_path / "labelled.jsonl.parts"), "--base-url", fake.base_url, "--model", "fake"]) == 0
    before, after = (json.loads((d / "eval.json").read_text()) for d in (fresh, reused))
    assert before["paid_calls"] > 0 and after["paid_calls"] == 0  # every verdict came from the judge's cache
    asked = len(fake.requests)  # and the other way round: judging again reuses what an evaluation paid for
    assert main(["judge", "--criteria", crit, "--pairs", str(unlabelled), "--out", str(tmp_path / "again.jsonl"),
                 "--reuse-cache", str(fresh), "--base-url", fake.base_url, "--model", "fake"]) == 0
    assert len(fake.requests) == asked
    assert (tmp_path / "again.jsonl").read_text() == (tmp_path / "labelled.jsonl").read_text()
    assert after["flow_soft"] == before["flow_soft"] and after["criteria"] == before["criteria"]
    # The reused answers are now the evaluation's own: it replays without the judge's directory.
    import shutil
    shutil.rmtree(tmp_path / "labelled.jsonl.parts")
    (reused / "eval.json").unlink()
    assert main(["eval", "--pairs", str(test_file), "--criteria", crit, "--out", str(reused),
                 "--base-url", fake.base_url, "--model", "fake"]) == 0
    assert json.loads((reused / "eval.json").read_text())["paid_calls"] == 0
    assert main(["eval", "--pairs", str(test_file), "--criteria", crit, "--out", str(tmp_path / "e3"),
                 "--reuse-cache", str(tmp_path / "nowhere"), "--base-url", fake.base_url, "--model", "fake"]) == 2
    assert any("no response cache" in r.getMessage() and "nowhere" in r.getMessage() for r in caplog.records)
    assert main(["eval", "--pairs", str(test_file), "--criteria", crit, "--out", str(tmp_path / "e3"),
                 "--reuse-cache", str(test_file), "--base-url", fake.base_url, "--model", "fake"]) == 2
    assert any("not a response cache" in r.getMessage() for r in caplog.records)
    assert not (tmp_path / "e3").exists()
