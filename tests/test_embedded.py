"""End to end on the real embedded model (llama.cpp + Qwen2.5-Coder-0.5B from PyPI): no orphan server, ever."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from critmine import embedded
from critmine.agents.worker import Worker
from critmine.embedded import EmbeddedError, EmbeddedServer
from critmine.llm import Endpoint, LLMClient, Usage
from critmine.records import Criterion, Pair

pytestmark = pytest.mark.embedded
ROOT = Path(__file__).resolve().parents[1]


def llama_servers() -> set[int]:
    pids = set()
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                if b"llama-server" in (d / "cmdline").read_bytes().split(b"\0")[0]:
                    pids.add(int(d.name))
            except OSError:
                continue
    return pids


def wait_gone(before: set[int], timeout: float = 15) -> set[int]:
    deadline = time.monotonic() + timeout
    while (left := llama_servers() - before) and time.monotonic() < deadline:
        time.sleep(0.2)
    return left


@pytest.fixture
def forum_seeds(tmp_path) -> Path:
    lines = (ROOT / "data/forum/seed.jsonl").read_text().splitlines()[:4]
    path = tmp_path / "seeds.jsonl"
    path.write_text("\n".join(lines) + "\n")
    return path


def _mine(seeds: Path, out: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "critmine.cli", "mine", "--pairs", str(seeds), "--out", str(out),
            "--n-criteria", "2", "--iterations", "0", "--max-text-chars", "600", "--kb-max-candidates", "2", *extra]


def test_mine_without_base_url_runs_on_the_embedded_model_and_leaves_no_server(forum_seeds, tmp_path):
    before = llama_servers()
    res = subprocess.run(_mine(forum_seeds, tmp_path / "run", "--no-measures"), capture_output=True, text=True,
                         timeout=600)
    # 4 seed pairs rarely carry a signal whose interval clears chance: then the run ends honestly with code 4
    assert res.returncode in (0, 4), res.stderr[-2000:]
    assert (res.returncode == 4) == ("NO SIGNAL" in res.stdout)
    data = json.loads((tmp_path / "run" / "criteria.json").read_text())
    assert data["criteria"] and all(c["coverage"] is not None for c in data["criteria"])
    usage = json.loads((tmp_path / "run" / "usage.json").read_text())["phases"]
    # The worker's verdicts were paid for (retrieval, and judging unless every judged criterion came from the knowledge
    # base, whose answers the cache replays) and llama.cpp reused each pair's prefix.
    verdicts = [usage[k] for k in ("retrieve", "judge") if k in usage]
    assert sum(u["calls"] for u in verdicts) > 0 and sum(u["cached_tokens"] for u in verdicts) > 0
    assert wait_gone(before, timeout=1) == set()


@pytest.mark.parametrize("sig, code", [(signal.SIGINT, 130), (signal.SIGTERM, 130), (signal.SIGKILL, -9)])
def test_interrupt_or_kill_leaves_no_server(forum_seeds, tmp_path, sig, code):
    before = llama_servers()
    server_tmp = tmp_path / "tmp"  # where the server's log goes (TMPDIR), not the machine's /tmp
    server_tmp.mkdir()
    # A runner started in the background (no job control) passes SIGINT on as ignored, and Python keeps an
    # inherited SIG_IGN; the child gets the default disposition, as in a terminal.
    proc = subprocess.Popen(_mine(forum_seeds, tmp_path / "run"), stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True, env={**os.environ, "TMPDIR": str(server_tmp)},
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.monotonic() + 120
    while not (llama_servers() - before) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert llama_servers() - before, "the embedded server never started"
    time.sleep(3)  # mid-run
    proc.send_signal(sig)
    assert proc.wait(60) == code
    assert wait_gone(before) == set()
    # Ctrl-C and SIGTERM stop the server and remove its log; after kill -9 nobody can (the log stays, for diagnosis)
    assert len(list(server_tmp.glob("critmine-server-*.log"))) == (sig == signal.SIGKILL)


def test_checksum_mismatch_is_refused_and_nothing_is_kept(tmp_path, monkeypatch):
    spec = embedded.MODELS["qwen2.5-coder-0.5b"]
    monkeypatch.setitem(embedded.MODELS, "tampered", spec.__class__(**{**spec.__dict__, "sha256": "0" * 64}))
    monkeypatch.setattr(embedded, "cache_dir", lambda: tmp_path)
    with pytest.raises(EmbeddedError, match="does not match its pinned checksum"):
        embedded.model_path("tampered")
    assert list(tmp_path.iterdir()) == []


def judge_on_embedded(pairs: list[Pair], criteria: list[Criterion]) -> list:
    """Every pair under every criterion, by a Worker on a freshly started embedded 0.5B server."""
    async def go(base_url):
        client = LLMClient(Endpoint(base_url=base_url, model="qwen2.5-coder-0.5b", kind="llamacpp"), usage=Usage())
        try:
            return await Worker(client).judge_all(pairs, criteria)
        finally:
            await client.aclose()

    with EmbeddedServer() as server:
        return asyncio.run(go(server.base_url))


def test_swap_and_logprob_verdicts_pick_the_well_written_text():
    good = ["Photosynthesis converts light energy into chemical energy stored in glucose.",
            "Water boils at 100 degrees Celsius at sea level because its vapour pressure equals the air pressure.",
            "The French Revolution began in 1789 and ended the absolute monarchy of Louis XVI.",
            "A prime number has exactly two divisors: one and itself."]
    bad = ["light plant sugar the the energy energy makes it green green",
           "boil water hot hot 100 it is is because air",
           "france king 1789 revolution people the the angry yes",
           "prime number it is number divide one yes maybe two"]
    pairs = [Pair(id=str(i), a=g if i % 2 else b, b=b if i % 2 else g, better="a" if i % 2 else "b")
             for i, (g, b) in enumerate(zip(good, bad, strict=True))]
    crit = Criterion(name="well_written", description="Prefer the text that is fluent, grammatical and informative.")
    js = judge_on_embedded(pairs, [crit])
    both = {j.pair_id: j.verdict for j in js if j.order == "both"}
    assert sum(both[p.id] == p.better for p in pairs) >= 3, both


def test_judge_local_and_ray_give_the_same_labels_on_the_embedded_model(tmp_path):
    pytest.importorskip("ray")
    from critmine.cli import main

    pairs = (ROOT / "data/argument/dev.jsonl").read_text().splitlines()[:3]
    unlabelled = [{**json.loads(x), "better": None} for x in pairs]
    (tmp_path / "pairs.jsonl").write_text("".join(json.dumps(p) + "\n" for p in unlabelled))
    crit = [{"name": "evidence", "description": "Prefer the text that supports its claim with reasons or examples."}]
    (tmp_path / "criteria.json").write_text(json.dumps({"criteria": crit}))
    before = llama_servers()
    for engine in ("server", "ray"):
        assert main(["judge", "--criteria", str(tmp_path / "criteria.json"), "--pairs", str(tmp_path / "pairs.jsonl"),
                     "--out", str(tmp_path / f"{engine}.jsonl"), "--engine", engine, "--shard-size", "2"]) == 0
    local, ray = ([json.loads(x) for x in (tmp_path / f"{e}.jsonl").read_text().splitlines()]
                  for e in ("server", "ray"))
    assert [r["id"] for r in local] == [r["id"] for r in ray] and local  # each run paid its own calls (own cache)
    for x, y in zip(local, ray, strict=True):
        assert abs(x["meta"]["p_a"] - y["meta"]["p_a"]) < 0.02  # llama.cpp's numerics vary a little with batching
        if abs(x["meta"]["p_a"] - 0.5) > 0.02:  # so only a decisive pair must get the same label
            assert x["better"] == y["better"]
    assert not wait_gone(before)


def test_fluency_measure_prefers_the_grammatical_sentence_on_the_embedded_model(tmp_path):
    """Learner-style errors against their corrections: no question asked, only each text's likelihood."""
    right = ["She has lived in this city since she was a child.", "There are many people who want to travel abroad.",
             "I am looking forward to hearing from you soon.", "He didn't go to school yesterday because he was ill.",
             "The informations were very useful for our project.".replace("informations were", "information was"),
             "If I had known, I would have told you."]
    wrong = ["She live in this city since she was a child.", "There is many people who wants to travel abroad.",
             "I am looking forward to hear from you soon.", "He didn't went to school yesterday because he was ill.",
             "The informations were very useful for our project.", "If I would know, I would told you."]
    pairs = [Pair(id=str(i), a=r if i % 2 else w, b=w if i % 2 else r, better="a" if i % 2 else "b")
             for i, (r, w) in enumerate(zip(right, wrong, strict=True))]
    crit = Criterion(name="fluent_language", description="fluency", measure="mean_logprob")
    t0 = time.monotonic()
    js = judge_on_embedded(pairs, [crit])
    print(f"fluency on {len(pairs)} pairs: {time.monotonic() - t0:.1f} s (server start included)")
    verdicts = {j.pair_id: j.verdict for j in js}
    assert not any(j.failed for j in js)
    assert sum(verdicts[p.id] == p.better for p in pairs) >= 5, verdicts
