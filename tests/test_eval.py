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


def test_eval_refuses_seed_pairs(fake, seeds, tmp_path, caplog):
    _mine(fake, seeds, tmp_path / "run")
    rc = main(["eval", "--pairs", str(seeds), "--criteria", str(tmp_path / "run" / "criteria.json"),
               "--base-url", fake.base_url, "--model", "fake"])
    assert rc == 2
    assert any("were seed pairs of the mining run" in r.getMessage() for r in caplog.records)
    assert not (tmp_path / "run" / "eval").exists()
