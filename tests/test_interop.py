"""Real datasets in and out (columns kept, Parquet / .jsonl.gz / saved datasets / Hub ids), the Python API inside a
running event loop, and the datatrove filter inside a real LocalPipelineExecutor."""

from __future__ import annotations

import asyncio
import gzip
import json
import random
from pathlib import Path

import datasets
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import critmine
from critmine.cli import main
from critmine.io import InputError, iter_documents, read_pairs
from tests.conftest import LONG_WORDS, SHORT_WORDS, make_corpus, make_pairs
from tests.test_distil import _scorer

FINEWEB_COLUMNS = ["text", "id", "dump", "url", "date", "file_path", "language", "language_score", "token_count",
                   "score", "int_score", "tags"]


def fineweb_like(path: Path, n: int) -> pa.Table:
    """A FineWeb-Edu-like Parquet file: its 11 columns (typed as FineWeb's are) plus a list column."""
    rng = random.Random(0)
    texts = [" ".join(rng.choice(LONG_WORDS if i % 3 else SHORT_WORDS) for _ in range(5 + i % 40)) for i in range(n)]
    table = pa.table({
        "text": texts, "id": [f"<urn:uuid:{i:08d}>" for i in range(n)], "dump": ["CC-MAIN-2024-10"] * n,
        "url": [f"https://example.org/{i}" for i in range(n)], "date": ["2024-02-21T10:00:00Z"] * n,
        "file_path": [f"s3://commoncrawl/{i % 7}.warc.gz" for i in range(n)], "language": ["en"] * n,
        "language_score": [0.9 + (i % 10) / 100 for i in range(n)], "token_count": [len(t.split()) for t in texts],
        "score": [float(i % 5) for i in range(n)], "int_score": [i % 5 for i in range(n)],
        "tags": [["edu", str(i % 3)] for i in range(n)]})
    pq.write_table(table, path, row_group_size=10_000)
    return table


def test_fineweb_parquet_and_jsonl_gz_keep_every_column_and_select_opens_with_datasets(tmp_path):
    scorer = _scorer(tmp_path)
    source = fineweb_like(tmp_path / "fineweb.parquet", 50_000)
    out = tmp_path / "scored"
    assert main(["score", "--scorer", str(scorer), "--input", str(tmp_path / "fineweb.parquet"), "--out", str(out),
                 "--shard-size", "20000"]) == 0
    scored = pq.read_table(sorted(out.glob("part-*.parquet")))
    assert scored.column_names == FINEWEB_COLUMNS + ["critmine_score", "n_tokens"]  # the user's `score` is kept
    assert scored.num_rows == 50_000 and scored.select(FINEWEB_COLUMNS).equals(source.select(FINEWEB_COLUMNS))
    assert main(["select", "--scored", str(out), "--out", str(tmp_path / "kept.parquet"), "--fraction", "0.3",
                 "--tau", "0"]) == 0
    kept = datasets.load_dataset("parquet", data_files=str(tmp_path / "kept.parquet"), split="train")
    assert kept.num_rows == 15_000 and kept.column_names == FINEWEB_COLUMNS + ["critmine_score", "n_tokens",
                                                                               "critmine_z"]
    assert min(kept["critmine_score"]) >= sorted(scored["critmine_score"].to_pylist())[-15_000]
    assert kept[0]["tags"][0] == "edu" and kept[0]["url"].startswith("https://")
    # The same selection as a saved dataset and as .jsonl.gz, chosen by the output's name.
    assert main(["select", "--scored", str(out), "--out", str(tmp_path / "kept_ds"), "--fraction", "0.3",
                 "--tau", "0"]) == 0
    assert datasets.load_from_disk(str(tmp_path / "kept_ds"))["id"] == kept["id"]
    # A .jsonl.gz corpus in critmine's own format: id, text, meta, and a column of its own.
    docs = make_corpus(tmp_path / "docs.jsonl", n=60)
    with gzip.open(tmp_path / "docs.jsonl.gz", "wt") as fh:
        fh.writelines(json.dumps({**d, "source_url": f"u{i}"}) + "\n" for i, d in enumerate(docs))
    assert main(["score", "--scorer", str(scorer), "--input", str(tmp_path / "docs.jsonl.gz"), "--out",
                 str(tmp_path / "scored_gz")]) == 0
    assert main(["select", "--scored", str(tmp_path / "scored_gz"), "--out", str(tmp_path / "kept.jsonl.gz"),
                 "--fraction", "0.5"]) == 0
    rows = [json.loads(x) for x in gzip.open(tmp_path / "kept.jsonl.gz", "rt")]
    assert len(rows) == 30 and all(r["source_url"].startswith("u") and r["meta"]["source"] for r in rows)
    assert list(iter_documents(tmp_path / "kept.jsonl.gz"))[0].meta["source_url"].startswith("u")  # reads back


def test_columns_by_flag_chosen_rejected_and_generated_ids(tmp_path, caplog):
    rows = [{"prompt": f"q{i}", "chosen": p["a"] if p["better"] == "a" else p["b"],
             "rejected": p["b"] if p["better"] == "a" else p["a"]} for i, p in enumerate(make_pairs(40))]
    datasets.Dataset.from_list(rows).to_parquet(str(tmp_path / "prefs.parquet"))
    pairs = read_pairs(tmp_path / "prefs.parquet", labelled=True)
    assert len({p.id for p in pairs}) == 40 and {p.better for p in pairs} == {"a", "b"}  # sides in stable order
    assert all((p.a if p.better == "a" else p.b) == r["chosen"] and p.meta["prompt"] == r["prompt"]
               for p, r in zip(pairs, rows, strict=True))
    assert [p.id for p in read_pairs(tmp_path / "prefs.parquet")] == [p.id for p in pairs]  # stable ids
    # Documents under other column names; ids generated from the text when asked, refused with a hint otherwise.
    (tmp_path / "docs.jsonl").write_text("".join(json.dumps({"content": f"text number {i}", "lang": "en"}) + "\n"
                                                 for i in range(5)))
    with pytest.raises(InputError, match=r"docs.jsonl:1: missing column 'id' \(name the column with --id-column"):
        list(iter_documents(tmp_path / "docs.jsonl", critmine.Columns(text="content")))
    docs = list(iter_documents(tmp_path / "docs.jsonl", critmine.Columns(text="content", generate_ids=True)))
    assert docs[0].text == "text number 0" and docs[0].meta == {"lang": "en"} and len(docs[0].id) == 16
    assert main(["pairs", "sample", str(tmp_path / "docs.jsonl"), "--text-column", "content", "--generate-ids",
                 "--n-pairs", "2", "--out", str(tmp_path / "p.jsonl")]) == 0
    assert main(["pairs", "sample", str(tmp_path / "docs.jsonl"), "--n-pairs", "2", "--out",
                 str(tmp_path / "q.jsonl")]) == 2
    assert "missing column 'text' (name the column with --text-column)" in caplog.text


def test_hub_dataset_ids_and_urls_stream_through_datasets(tmp_path, monkeypatch):
    calls = []

    def fake_load_dataset(path, *args, **kw):
        calls.append((path, kw))
        return iter([{"id": "h1", "text": "from the hub", "url": "x"}])

    monkeypatch.setattr(datasets, "load_dataset", fake_load_dataset)
    (doc,) = iter_documents("HuggingFaceFW/fineweb-edu:train")
    assert doc.text == "from the hub" and doc.meta == {"url": "x"}
    list(iter_documents("hf://datasets/org/name/data/part-0.parquet"))
    assert calls == [("HuggingFaceFW/fineweb-edu", {"split": "train", "streaming": True}),
                     ("parquet", {"data_files": "hf://datasets/org/name/data/part-0.parquet", "split": "train",
                                  "streaming": True})]


def test_python_api_mines_judges_trains_scores_and_selects_inside_a_running_loop(fake, seeds, tmp_path):
    docs = make_corpus(tmp_path / "docs.jsonl", n=80)
    common = {"base_url": fake.base_url, "model": "fake", "retry_backoff": 0.01, "timeout": 5}

    async def notebook_cell():
        assert asyncio.get_running_loop()  # as in Jupyter: asyncio.run would fail here
        crit = critmine.mine(make_pairs(), tmp_path / "run", n_criteria=4, iterations=1, no_kb=True, **common)
        labelled = critmine.judge(tmp_path / "run" / "criteria.json", tmp_path / "labels.jsonl",
                                  corpus=datasets.Dataset.from_list(docs), n_pairs=40, **common)
        scorer = critmine.train(labelled, tmp_path / "scorer", holdout=0.0)
        rows = critmine.score(scorer, docs)
        kept = critmine.select(rows, fraction=0.25, tau=0)
        return crit, labelled, scorer, rows, kept

    crit, labelled, scorer, rows, kept = asyncio.run(notebook_cell())
    assert isinstance(crit, critmine.CriteriaSet) and "thoroughness" in [c.name for c in crit.criteria]
    assert len(labelled) >= 30 and all(isinstance(p, critmine.Pair) and p.better for p in labelled)
    assert isinstance(scorer, critmine.Scorer) and scorer.meta["score_quantiles"]
    assert [r["id"] for r in rows] == [d["id"] for d in docs] and all("critmine_score" in r for r in rows)
    assert len(kept) == 20
    # The hidden rule is "longer wins": the scorer, trained only on agent labels, keeps long documents.
    assert sum(len(r["text"]) for r in kept) / 20 > 1.5 * sum(len(d["text"]) for d in docs) / 80
    assert (tmp_path / "run.input.jsonl").exists()  # the in-memory seeds, kept so the run can resume
    # Files as the CLI does them, from the Scorer object train() returned.
    scored = critmine.score(scorer, tmp_path / "docs.jsonl", out=tmp_path / "scored")
    assert critmine.select(scored, tmp_path / "kept.parquet", fraction=0.25, tau=0) == tmp_path / "kept.parquet"
    assert pq.read_table(tmp_path / "kept.parquet")["id"].to_pylist() == [r["id"] for r in kept]


def test_datatrove_filter_keeps_what_select_keeps_at_the_same_threshold(tmp_path):
    pytest.importorskip("datatrove")
    from datatrove.executor import LocalPipelineExecutor
    from datatrove.pipeline.readers import JsonlReader
    from datatrove.pipeline.writers import JsonlWriter

    from critmine.integrations.datatrove import ScoreFilter

    scorer = _scorer(tmp_path)
    (tmp_path / "in").mkdir()
    make_corpus(tmp_path / "in" / "docs.jsonl", n=300)
    threshold = critmine.Scorer.load(scorer).threshold(0.3)
    LocalPipelineExecutor([JsonlReader(str(tmp_path / "in")), ScoreFilter(str(scorer), threshold=threshold),
                           JsonlWriter(str(tmp_path / "out"))], tasks=1, logging_dir=str(tmp_path / "logs")).run()
    kept_by_datatrove = [json.loads(x) for f in sorted((tmp_path / "out").glob("*.jsonl.gz"))
                         for x in gzip.open(f, "rt")]
    assert main(["score", "--scorer", str(scorer), "--input", str(tmp_path / "in" / "docs.jsonl"), "--out",
                 str(tmp_path / "scored")]) == 0
    assert main(["select", "--scored", str(tmp_path / "scored"), "--out", str(tmp_path / "kept.jsonl"),
                 "--threshold", str(threshold)]) == 0
    kept_by_select = [json.loads(x) for x in (tmp_path / "kept.jsonl").read_text().splitlines()]
    assert 0 < len(kept_by_select) < 300
    assert [d["id"] for d in kept_by_datatrove] == [d["id"] for d in kept_by_select]
    assert all(abs(a["metadata"]["critmine_score"] - b["critmine_score"]) < 1e-9
               for a, b in zip(kept_by_datatrove, kept_by_select, strict=True))


def test_remote_endpoints_default_to_concurrency_and_read_openai_variables(monkeypatch, tmp_path):
    import contextlib

    from critmine import commands as c
    from critmine.config import EndpointConfig
    from critmine.endpoints import resolve
    from critmine.llm.endpoint import REMOTE_CONCURRENCY

    with contextlib.ExitStack() as stack:
        remote = resolve(EndpointConfig(base_url="http://127.0.0.1:9/v1", kind="openai"), stack, {})
        chosen = resolve(EndpointConfig(base_url="http://127.0.0.1:9/v1", kind="openai", concurrency=3), stack, {})
    assert remote.concurrency == REMOTE_CONCURRENCY > 1 and chosen.concurrency == 3
    monkeypatch.setenv("OPENAI_API_KEY", "sk-from-env")
    monkeypatch.setenv("OPENAI_BASE_URL", "http://10.0.0.1:8000/v1")
    cmd = c.EvalCommand(_cli_parse_args=["--pairs", "p.jsonl", "--out", str(tmp_path)])
    assert (cmd.api_key, cmd.base_url) == ("sk-from-env", "http://10.0.0.1:8000/v1")
    monkeypatch.setenv("CRITMINE_BASE_URL", "http://10.0.0.2:8000/v1")  # critmine's own variable wins
    cmd = c.EvalCommand(_cli_parse_args=["--pairs", "p.jsonl", "--api-key", "sk-flag"])
    assert (cmd.api_key, cmd.base_url) == ("sk-flag", "http://10.0.0.2:8000/v1")
    assert "sk-" not in json.dumps(c.MineCommand(_cli_parse_args=["--pairs", "p", "--out", "o"]).mine_config()
                                   .model_dump())  # the key never reaches the saved config


def test_criteria_judge_judges_pairs_like_critmine_judge(fake, tmp_path):
    from critmine.integrations.judge import CriteriaJudge
    from tests.conftest import INITIAL

    crit = critmine.CriteriaSet(criteria=[critmine.Criterion(**INITIAL[0]), critmine.Criterion(**INITIAL[3])])
    crit.write(tmp_path / "criteria.json")
    judge = CriteriaJudge(tmp_path / "criteria.json", base_url=fake.base_url, model="fake")
    long = "A longer answer that explains the reasons, gives an example and a source."
    first = judge(text_a=long, text_b="Short answer.")  # the fake's thoroughness prefers the longer text
    assert first.better == "a" and first.p_a > 0.5 and first.votes == {"thoroughness": "a", "code_style": "none"}

    async def in_a_loop():
        return judge.batch([("Short answer.", long), (long, "Short answer.")])

    assert [v.better for v in asyncio.run(in_a_loop())] == ["b", "a"]
    assert judge.usage.total().calls == 3 * 2 * 2  # 3 pairs × 2 criteria × 2 orders


def test_vllm_server_takes_hub_ids_and_engine_arguments():
    from critmine import commands as c
    from critmine.vllm_backend import VllmServer

    s = c.ServeCommand(_cli_parse_args=["--engine", "vllm", "--model", "Qwen/Qwen2.5-7B-Instruct",
                                        "--vllm-arg=--gpu-memory-utilization=0.8", "--vllm-arg=--enforce-eager"])
    cmd = VllmServer(s.model, port=8000, extra_args=s.vllm_arg).command()
    assert cmd[cmd.index("--model") + 1] == "Qwen/Qwen2.5-7B-Instruct"
    assert cmd[-2:] == ["--gpu-memory-utilization=0.8", "--enforce-eager"]


def test_a_mistyped_local_path_is_not_taken_for_a_hub_dataset(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(InputError, match=r"^data/seed.jsonl: no such file or directory$"):
        read_pairs("data/seed.jsonl")

    def not_on_the_hub(path, *args, **kw):
        raise FileNotFoundError(f"Dataset '{path}' doesn't exist on the Hub")

    monkeypatch.setattr(datasets, "load_dataset", not_on_the_hub)
    (tmp_path / "mydir").mkdir()  # a saved dataset's parent, its name mistyped: the user hears both readings
    with pytest.raises(InputError, match=r"^mydir/saved_ds: no such local file or directory, and cannot open as a "
                                         r"dataset \(FileNotFoundError: Dataset 'mydir/saved_ds' doesn't exist"):
        read_pairs("mydir/saved_ds")


def test_python_api_run_chains_in_memory_data_with_a_renamed_text_column(fake, tmp_path):
    docs = [{"id": d["id"], "content": d["text"], "lang": "en"} for d in make_corpus(tmp_path / "docs.jsonl", n=120)]
    outputs = critmine.run(make_pairs(), datasets.Dataset.from_list(docs), tmp_path / "run", text_column="content",
                           base_url=fake.base_url, model="fake", n_criteria=4, no_kb=True, n_pairs=30,
                           fraction=0.2, retry_backoff=0.01)
    selected = [json.loads(line) for line in Path(outputs["selected"]).read_text().splitlines()]
    assert len(selected) == 24 and all(r["content"] and r["lang"] == "en" and "critmine_z" in r for r in selected)
    assert (tmp_path / "run.seeds.jsonl").exists() and (tmp_path / "run.corpus.jsonl").exists()
    best = max(selected, key=lambda r: r["critmine_score"])  # the report quotes it from its own column
    assert f"`{best['id']}`" in (tmp_path / "run" / "report.md").read_text()
    assert json.loads((tmp_path / "run" / "run.json").read_text())["phases"]["score"]["settings"]["columns"][
        "text"] == "content"
