"""Careless and hostile input: not-text files, foreign output directories, killed commands.

Bad input gets one line naming the file (and line), exit code 2, and nothing written; critmine never removes a file
it did not write; a killed command leaves no process behind."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from critmine.cli import main
from critmine.labels import LabelLog, log_path
from tests.conftest import make_pairs
from tests.test_distil import labelled_pairs, make_corpus

UNREACHABLE = ["--base-url", "http://127.0.0.1:9/v1", "--server-kind", "openai", "--model", "fake"]


def errors(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]


@pytest.fixture
def scorer(tmp_path: Path) -> Path:
    assert main(["train", "--pairs", str(labelled_pairs(tmp_path / "train.jsonl", 60)), "--out",
                 str(tmp_path / "scorer")]) == 0
    return tmp_path / "scorer"


@pytest.fixture
def criteria(tmp_path: Path) -> Path:
    f = tmp_path / "criteria.json"
    f.write_text(json.dumps({"criteria": [{"name": "c", "description": "Prefer the clearer text."}],
                             "seed_pair_ids": []}))
    return f


def not_utf8(path: Path, rows: list[dict]) -> Path:
    """JSONL whose third line holds a byte that is not UTF-8."""
    lines = [json.dumps(r).encode() for r in rows]
    lines[2] = lines[2][:20] + b"\xff\xfe" + lines[2][20:]
    path.write_bytes(b"\n".join(lines) + b"\n")
    return path


def reading_commands(tmp_path: Path, pairs: Path, docs: Path, scorer: Path, criteria: Path) -> dict:
    out = tmp_path / "out"
    return {
        "mine": ["mine", "--pairs", str(pairs), "--out", str(out), *UNREACHABLE],
        "eval": ["eval", "--pairs", str(pairs), "--criteria", str(criteria), "--out", str(out), *UNREACHABLE],
        "judge --pairs": ["judge", "--criteria", str(criteria), "--pairs", str(pairs), "--out", str(out / "l.jsonl"),
                          *UNREACHABLE],
        "judge --corpus": ["judge", "--criteria", str(criteria), "--corpus", str(docs), "--n-pairs", "2", "--out",
                           str(out / "l.jsonl"), *UNREACHABLE],
        "train": ["train", "--pairs", str(pairs), "--out", str(out)],
        "score": ["score", "--scorer", str(scorer), "--input", str(docs), "--out", str(out)],
        "pairs sample": ["pairs", "sample", str(docs), "--n-pairs", "2", "--out", str(out / "p.jsonl")],
        "label --export": ["label", str(pairs), "--export", str(out / "e.jsonl")],
    }


def test_binary_input_names_file_and_line_in_every_reading_command(tmp_path, scorer, criteria, caplog):
    pairs = not_utf8(tmp_path / "pairs.jsonl", make_pairs(5))
    docs = not_utf8(tmp_path / "docs.jsonl", make_corpus(tmp_path / "ok.jsonl", n=20))
    for name, args in reading_commands(tmp_path, pairs, docs, scorer, criteria).items():
        caplog.clear()
        assert main(args) == 2, name
        (line,) = errors(caplog)
        src = docs if name in ("judge --corpus", "score", "pairs sample") else pairs
        assert line.startswith(f"{src}:3: not UTF-8 text"), (name, line)
        assert not (tmp_path / "out").exists(), name


def test_a_parquet_file_that_is_not_parquet_is_one_line_and_leaves_nothing(tmp_path, scorer, caplog):
    fake = tmp_path / "docs.parquet"
    fake.write_text("id,text\n1,hello\n")
    assert main(["score", "--scorer", str(scorer), "--input", str(fake), "--out", str(tmp_path / "out")]) == 2
    (line,) = errors(caplog)
    assert line.startswith(f"{fake}: not a Parquet file")
    assert not (tmp_path / "out").exists()


def test_scoring_an_empty_file_is_an_error_not_an_empty_success(tmp_path, scorer, caplog):
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    assert main(["score", "--scorer", str(scorer), "--input", str(empty), "--out", str(tmp_path / "out")]) == 2
    assert errors(caplog) == [f"{empty}: no documents"] and not (tmp_path / "out").exists()


@pytest.mark.parametrize("kind", ["missing", "empty dir", "not parquet", "wrong columns"])
def test_select_on_something_that_is_not_a_score_output(tmp_path, caplog, kind):
    import pyarrow as pa
    import pyarrow.parquet as pq

    scored = tmp_path / "scored.parquet"
    if kind == "empty dir":
        scored.mkdir()
        (scored / "_SUCCESS").write_text("{}")
    elif kind == "not parquet":
        scored.write_text("hello")
    elif kind == "wrong columns":
        pq.write_table(pa.table({"id": ["a"], "text": ["t"]}), scored)
    out = tmp_path / "sel.jsonl"
    assert main(["select", "--scored", str(scored), "--out", str(out), "--fraction", "0.5"]) == 2
    (line,) = errors(caplog)
    assert str(scored) in line and "Traceback" not in line
    assert not out.exists()


def test_train_refuses_a_directory_that_is_not_its_own_and_touches_no_neighbour(tmp_path, caplog):
    pairs = labelled_pairs(tmp_path / "train.jsonl", 60)
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("my notes")
    assert main(["train", "--pairs", str(pairs), "--out", str(out)]) == 2
    assert (out / "notes.txt").read_text() == "my notes" and "is not an empty directory" in errors(caplog)[0]
    neighbour = tmp_path / "scorer.tmp"  # the name the old code wiped before training
    neighbour.mkdir()
    (neighbour / "keep.txt").write_text("keep")
    empty = tmp_path / "scorer"
    empty.mkdir()  # an empty directory made for the scorer is fine
    assert main(["train", "--pairs", str(pairs), "--out", str(empty)]) == 0
    assert (empty / "scorer.json").exists() and (neighbour / "keep.txt").read_text() == "keep"
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []  # no temp dir left
    assert oct((empty).stat().st_mode & 0o777) != oct(0o700)  # ordinary permissions, not mkdtemp's


def test_every_writing_command_refuses_an_output_that_is_not_its_own(tmp_path, scorer, criteria, caplog):
    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text("".join(json.dumps(p) + "\n" for p in make_pairs(4)))
    docs = tmp_path / "docs.jsonl"
    make_corpus(docs, n=20)
    assert main(["score", "--scorer", str(scorer), "--input", str(docs), "--out", str(tmp_path / "scored")]) == 0
    user_dir = tmp_path / "mine"
    user_dir.mkdir()
    (user_dir / "notes.txt").write_text("mine")
    user_file = tmp_path / "notes.jsonl"
    user_file.write_text("mine")
    parts = tmp_path / "labels.jsonl.parts"  # a folder of the user's that has judge's parts-directory name
    parts.mkdir()
    (parts / "notes.txt").write_text("mine")
    cases = {
        "mine": ["mine", "--pairs", str(pairs), "--out", str(user_dir), *UNREACHABLE],
        "eval": ["eval", "--pairs", str(pairs), "--criteria", str(criteria), "--out", str(user_dir), *UNREACHABLE],
        "eval --scorer": ["eval", "--pairs", str(pairs), "--scorer", str(scorer), "--out", str(user_dir)],
        "judge": ["judge", "--criteria", str(criteria), "--pairs", str(pairs), "--out", str(user_file), *UNREACHABLE],
        "judge (parts)": ["judge", "--criteria", str(criteria), "--pairs", str(pairs), "--out",
                          str(tmp_path / "labels.jsonl"), *UNREACHABLE],
        "select": ["select", "--scored", str(tmp_path / "scored"), "--out", str(user_file), "--fraction", "0.5"],
    }
    for name, args in cases.items():
        caplog.clear()
        assert main(args) == 2, name
        (line,) = errors(caplog)
        assert "critmine never" in line, (name, line)
        assert sorted(p.name for p in user_dir.iterdir()) == ["notes.txt"] and user_file.read_text() == "mine"
        assert sorted(p.name for p in parts.iterdir()) == ["notes.txt"]
    sel = tmp_path / "sel.jsonl"  # its own output is replaced by a rerun
    for _ in range(2):
        assert main(["select", "--scored", str(tmp_path / "scored"), "--out", str(sel), "--fraction", "0.5"]) == 0


def test_ray_score_refuses_a_directory_that_is_not_its_own(tmp_path, scorer, caplog):
    pytest.importorskip("ray")
    docs = tmp_path / "docs.jsonl"
    make_corpus(docs, n=40)
    out = tmp_path / "scored"
    out.mkdir()
    (out / "mine.parquet").write_text("a user's file")
    args = ["score", "--scorer", str(scorer), "--input", str(docs), "--engine", "ray", "--workers", "1"]
    assert main([*args, "--out", str(out)]) == 2
    assert (out / "mine.parquet").read_text() == "a user's file"
    assert "not a critmine scoring output" in errors(caplog)[0]
    neighbour = tmp_path / "fresh.ray-tmp"  # the name the old code wiped
    neighbour.mkdir()
    (neighbour / "keep.txt").write_text("keep")
    assert main([*args, "--out", str(tmp_path / "fresh")]) == 0
    assert (neighbour / "keep.txt").read_text() == "keep"
    assert len(list((tmp_path / "fresh").glob("part-*.parquet"))) >= 1 and (tmp_path / "fresh" / "_SUCCESS").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".fresh.")]  # its temp dir is gone


def children_of(pid: int) -> set[int]:
    kids = set()
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                if int((d / "stat").read_text().rsplit(")", 1)[1].split()[1]) == pid:
                    kids.add(int(d.name))
            except (OSError, IndexError, ValueError):
                continue
    return kids


def alive(pids: set[int]) -> set[int]:
    out = set()
    for p in pids:
        try:
            if (Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()[0]) != "Z":
                out.add(p)
        except OSError:
            continue
    return out


def test_kill_9_of_score_leaves_no_worker_behind(tmp_path, scorer):
    docs = tmp_path / "big.jsonl"
    make_corpus(docs, n=3000)
    cmd = [sys.executable, "-m", "critmine.cli", "score", "--scorer", str(scorer), "--input", str(docs), "--out",
           str(tmp_path / "out"), "--workers", "2", "--batch-size", "10", "--shard-size", "100"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while not list((tmp_path / "out").glob("part-*.parquet")) and time.monotonic() < deadline:
        time.sleep(0.05)
    kids = children_of(proc.pid)
    assert len(kids) >= 2, "the scoring workers never started"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(10)
    deadline = time.monotonic() + 15
    while alive(kids) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert alive(kids) == set()  # the workers and multiprocessing's resource tracker died with their parent


def test_logging_is_one_line_for_input_errors(tmp_path, caplog):
    caplog.set_level(logging.INFO)
    assert main(["select", "--scored", str(tmp_path / "nope"), "--out", str(tmp_path / "s.jsonl"),
                 "--fraction", "0.5"]) == 2
    assert errors(caplog) == [f"{tmp_path / 'nope'}: no such file or directory (the output of `critmine score`)"]


@pytest.mark.parametrize("content, says", [
    ("{not json", "not a criteria.json of a mining run"),
    ('{"criteria": "clarity"}', "not a criteria.json of a mining run"),
    ('{"criteria": [{"name": "c"}]}', "not a criteria.json of a mining run"),  # no description
    ('{"criteria": []}', "no criteria"),
])
def test_every_reader_of_criteria_json_gives_one_line(tmp_path, caplog, content, says):
    run = tmp_path / "run"
    run.mkdir()
    (run / "criteria.json").write_text(content)
    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text("".join(json.dumps(p) + "\n" for p in make_pairs(4)))
    crit = str(run / "criteria.json")
    for args in (["judge", "--criteria", crit, "--pairs", str(pairs), "--out", str(tmp_path / "l.jsonl")],
                 ["eval", "--criteria", crit, "--pairs", str(pairs), "--out", str(tmp_path / "e")],
                 ["kb", "add", str(run), "--kb", str(tmp_path / "kb.jsonl")]):
        caplog.clear()
        assert main([*args, *UNREACHABLE] if args[0] != "kb" else args) == 2, args
        (line,) = errors(caplog)
        assert line.startswith(f"{run / 'criteria.json'}: {says}"), line
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pairs.jsonl", "run"]  # nothing written


def test_pairs_sample_and_label_export_never_replace_a_file_they_did_not_write(tmp_path, caplog):
    docs = make_corpus(tmp_path / "docs.jsonl", n=20)
    notes = tmp_path / "notes.jsonl"
    notes.write_text('{"my": "own file"}\n')
    assert main(["pairs", "sample", str(docs), "--n-pairs", "2", "--out", str(notes)]) == 2
    assert errors(caplog)[0].startswith(f"{notes}: exists") and notes.read_text() == '{"my": "own file"}\n'
    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text("".join(json.dumps(r) + "\n" for r in make_pairs(4)))
    caplog.clear()
    assert main(["label", str(pairs), "--export", str(notes)]) == 2
    assert errors(caplog)[0].startswith(f"{notes}: exists and is not an export of {pairs}")
    assert notes.read_text() == '{"my": "own file"}\n'
    before = pairs.read_text()
    assert main(["label", str(pairs), "--export", str(pairs)]) == 2 and pairs.read_text() == before
    # An earlier export of the same pairs is replaced: exporting again after more labelling is the point.
    export = tmp_path / "labelled.jsonl"
    assert main(["label", str(pairs), "--export", str(export)]) == 0 and export.read_text() == ""  # nothing labelled
    LabelLog(log_path(pairs)).label("me", "p00", "b")
    assert main(["label", str(pairs), "--export", str(export)]) == 0
    assert [json.loads(x)["better"] for x in export.read_text().splitlines()] == ["b"]
    LabelLog(log_path(pairs)).label("me", "p01", "a")
    assert main(["label", str(pairs), "--export", str(export)]) == 0 and len(export.read_text().splitlines()) == 2
