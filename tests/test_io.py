"""Bad input: one clear line naming file and line, exit code 2, nothing written."""

from __future__ import annotations

import json
from pathlib import Path

import datasets
import pytest

from critmine.cli import main
from critmine.io import InputError, iter_documents, read_pairs
from tests.conftest import make_pairs

GOOD = {"id": "x1", "a": "text one", "b": "text two", "better": "a", "meta": {}}


def _lines(*rows: str) -> str:
    return "".join(r + "\n" for r in rows)


@pytest.mark.parametrize("bad_line, message", [
    ("{not json", "invalid JSON"),
    (json.dumps({"id": "x2", "a": "t", "better": "a"}), "missing column 'b' (name the column with --b-column)"),
    (json.dumps({**GOOD, "id": "x2", "better": "c"}), "field 'better' must be"),
    (json.dumps({**GOOD}), "duplicate id 'x1'"),
    (json.dumps({**GOOD, "id": "x2", "b": "   "}), "field 'b': text is empty"),
])
def test_bad_pairs_file_names_file_and_line_and_writes_nothing(tmp_path, caplog, bad_line, message):
    f = tmp_path / "seeds.jsonl"
    f.write_text(_lines(json.dumps(GOOD), bad_line))
    out = tmp_path / "run"
    rc = main(["mine", "--pairs", str(f), "--out", str(out), "--base-url", "http://127.0.0.1:9/v1",
               "--server-kind", "openai"])
    assert rc == 2
    assert not out.exists()
    errors = [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]
    assert len(errors) == 1 and errors[0].startswith(f"{f}:2: ") and message in errors[0]


def test_unlabelled_seed_pair_is_rejected(tmp_path):
    f = tmp_path / "seeds.jsonl"
    f.write_text(_lines(json.dumps(GOOD), json.dumps({**GOOD, "id": "x2", "better": None})))
    with pytest.raises(InputError, match="'x2'.*no label"):
        read_pairs(f, labelled=True)


def test_existing_run_needs_resume(tmp_path, seeds):
    out = tmp_path / "run"
    out.mkdir()
    (out / "config.json").write_text("{}")
    assert main(["mine", "--pairs", str(seeds), "--out", str(out), "--base-url", "http://127.0.0.1:9/v1"]) == 2


def test_parquet_csv_and_saved_dataset_read_the_same_pairs(tmp_path):
    rows = make_pairs(5)
    ds = datasets.Dataset.from_list([{**r, "meta": json.dumps(r["meta"])} for r in rows])
    ds.to_parquet(str(tmp_path / "p.parquet"))
    ds.to_csv(str(tmp_path / "p.csv"), index=False)
    ds.save_to_disk(str(tmp_path / "saved"))
    expected = read_pairs(_write_jsonl(tmp_path / "p.jsonl", rows))
    for src in ("p.parquet", "p.csv", "saved"):
        assert read_pairs(tmp_path / src) == expected, src


def test_csv_error_names_the_line(tmp_path):
    f = tmp_path / "docs.csv"
    f.write_text("id,text\nd1,hello\nd2,\n")
    with pytest.raises(InputError, match=rf"^{f}:3: field 'text'"):
        list(iter_documents(f))


def _write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text(_lines(*(json.dumps(r) for r in rows)))
    return path
