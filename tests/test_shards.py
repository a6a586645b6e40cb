"""The one resume rule for sharded outputs (judge's parts directory and score's output use it)."""

from __future__ import annotations

import pytest

from critmine.agents.annotate import ShardStore
from critmine.cli import main
from critmine.io import InputError
from critmine.scorer.bulk import score_corpus
from critmine.scorer.output import scored_dir
from critmine.shards import ShardDir
from tests.test_distil import make_corpus
from tests.test_hardening import labelled_pairs


def test_a_sharded_output_is_resumed_only_with_its_own_manifest(tmp_path):
    out = ShardDir(tmp_path / "out", "a test output", shard_glob="part-*.txt", also=("pairs.jsonl",),
                   keep=("cache.sqlite",))
    out.open({"input": "a", "shard_size": 2})
    (out.root / "part-00000.txt").write_text("done")
    (out.root / ".part-00001.txt.tmp").write_text("half")  # killed while writing
    (out.root / "pairs.jsonl").write_text("{}")
    (out.root / "cache.sqlite").write_text("answers")
    out.open({"input": "a", "shard_size": 2})  # the same inputs: resumed, the half-written shard dropped
    assert [p.name for p in out.sealed()] == ["part-00000.txt"] and not (out.root / ".part-00001.txt.tmp").exists()
    with pytest.raises(InputError, match=r"with other inputs or settings \(input changed\); choose another --out"):
        out.check({"input": "b", "shard_size": 2})
    out.done.write_text("{}")
    assert out.is_complete()
    out.remove_own()
    assert sorted(p.name for p in out.root.iterdir()) == ["cache.sqlite"]  # the cache survives, for free reruns


def test_a_directory_that_is_not_ours_is_never_written_or_cleared(tmp_path):
    theirs = tmp_path / "theirs"
    theirs.mkdir()
    (theirs / "notes.txt").write_text("mine")
    for shards in (scored_dir(theirs), ShardStore(theirs, 4).shards_dir):
        with pytest.raises(InputError, match="exists and is not"):
            shards.open({"input": "a"})
        shards.remove_own()
        assert (theirs / "notes.txt").read_text() == "mine"


def test_a_complete_scoring_output_of_other_inputs_is_refused_not_returned(tmp_path):
    scorer = tmp_path / "scorer"
    assert main(["train", "--pairs", str(labelled_pairs(tmp_path / "train.jsonl", 60)), "--out", str(scorer)]) == 0
    make_corpus(tmp_path / "a.jsonl", n=20)
    make_corpus(tmp_path / "b.jsonl", n=30)
    assert score_corpus(scorer, str(tmp_path / "a.jsonl"), tmp_path / "scored", workers=1).rows == 20
    with pytest.raises(InputError, match="input.* changed"):  # before, the finished output was handed back
        score_corpus(scorer, str(tmp_path / "b.jsonl"), tmp_path / "scored", workers=1)
