"""`critmine select --push-to-hub`: the selection lands in a Hub dataset repository (a stand-in for huggingface_hub's
HfApi that keeps the repository in a local folder: never the network)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import datasets
import pyarrow.parquet as pq
import pytest

from critmine import hub
from critmine.cli import main
from tests.conftest import make_corpus
from tests.test_distil import _scorer


class LocalHub:
    """HfApi's calls that critmine makes, on folders under `root` (one per repository)."""

    instances: list[LocalHub] = []

    def __init__(self, root: Path, fail: bool = False):
        self.root, self.fail, self.commits = root, fail, []

    def __call__(self):  # HfApi() -> this stand-in
        return self

    def create_repo(self, repo_id, *, repo_type, private, exist_ok):
        assert repo_type == "dataset" and exist_ok
        (self.root / repo_id).mkdir(parents=True, exist_ok=True)
        return f"https://huggingface.co/datasets/{repo_id}"

    def file_exists(self, repo_id, filename, *, repo_type):
        return (self.root / repo_id / filename).exists()

    def create_commit(self, repo_id, operations, *, commit_message, repo_type):
        if self.fail:
            raise ConnectionError("hub unreachable")
        for op in operations:
            target = self.root / repo_id / op.path_in_repo
            target.parent.mkdir(parents=True, exist_ok=True)
            if isinstance(op.path_or_fileobj, bytes):
                target.write_bytes(op.path_or_fileobj)
            else:
                shutil.copyfile(op.path_or_fileobj, target)
        self.commits.append((repo_id, commit_message, [op.path_in_repo for op in operations]))


@pytest.fixture()
def scored(tmp_path):
    make_corpus(tmp_path / "docs.jsonl", n=60)
    assert main(["score", "--scorer", str(_scorer(tmp_path)), "--input", str(tmp_path / "docs.jsonl"), "--out",
                 str(tmp_path / "scored")]) == 0
    return tmp_path / "scored"


def test_push_to_hub_uploads_the_selection_and_a_card_that_load_dataset_opens(scored, tmp_path, monkeypatch):
    fake_hub = LocalHub(tmp_path / "hub")
    monkeypatch.setattr(hub, "HfApi", fake_hub)
    out = tmp_path / "kept.parquet"
    assert main(["select", "--scored", str(scored), "--out", str(out), "--fraction", "0.5",
                 "--push-to-hub", "me/kept-docs"]) == 0
    repo = tmp_path / "hub" / "me" / "kept-docs"
    pushed = datasets.load_dataset("parquet", data_files=str(repo / "data" / "*.parquet"), split="train")
    assert pushed["id"] == pq.read_table(out)["id"].to_pylist() and pushed.num_rows == 30
    card = (repo / "README.md").read_text()
    assert card.startswith("---\nconfigs:") and "kept 30 of 60 documents" in card
    summary = json.loads(out.with_name("kept.parquet.summary.json").read_text())
    assert summary["pushed_to"] == "https://huggingface.co/datasets/me/kept-docs"
    # A card already in the repository is the user's: a second push leaves it alone; a saved dataset's Arrow files
    # go under data/NAME/ and open with the arrow loader.
    (repo / "README.md").write_text("my card\n")
    assert main(["select", "--scored", str(scored), "--out", str(tmp_path / "kept_ds"), "--fraction", "0.2",
                 "--push-to-hub", "me/kept-docs"]) == 0
    assert (repo / "README.md").read_text() == "my card\n"
    assert fake_hub.commits[-1][2] == ["data/kept_ds/data-00000-of-00001.arrow"]
    arrow = datasets.load_dataset("arrow", data_files=str(repo / "data" / "kept_ds" / "*.arrow"), split="train")
    assert arrow.num_rows == 12 and "critmine_z" in arrow.column_names


def test_push_to_hub_fails_early_on_bad_repo_or_missing_library_and_keeps_the_file_when_upload_fails(
        scored, tmp_path, monkeypatch, caplog):
    monkeypatch.setattr(hub, "HfApi", LocalHub(tmp_path / "hub"))
    out = tmp_path / "kept.parquet"
    assert main(["select", "--scored", str(scored), "--out", str(out), "--fraction", "0.5",
                 "--push-to-hub", "no spaces/allowed here"]) == 2
    assert not out.exists() and "not a Hub repository id" in caplog.text
    monkeypatch.setattr(hub, "HfApi", None)
    assert main(["select", "--scored", str(scored), "--out", str(out), "--fraction", "0.5",
                 "--push-to-hub", "me/kept"]) == 2
    assert not out.exists() and "pip install huggingface_hub" in caplog.text
    monkeypatch.setattr(hub, "HfApi", LocalHub(tmp_path / "hub", fail=True))
    assert main(["select", "--scored", str(scored), "--out", str(out), "--fraction", "0.5",
                 "--push-to-hub", "me/kept"]) == 1
    assert pq.read_table(out).num_rows == 30  # the finished selection is kept
    assert "hub unreachable" in caplog.text and "run select again with --push-to-hub" in caplog.text
