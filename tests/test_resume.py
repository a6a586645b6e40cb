"""kill -9 in the middle of mining, then --resume: zero repeated calls, same final result."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

from critmine.llm import Usage
from tests.conftest import make_script
from tests.fake_server import FakeLLMServer


def _cmd(fake, seeds, out, *extra):
    return [sys.executable, "-m", "critmine.cli", "mine", "--pairs", str(seeds), "--out", str(out), "--base-url",
            fake.base_url, "--model", "fake", "--n-criteria", "4", "--no-kb", "--retry-backoff", "0.01", *extra]


def test_kill_9_then_resume_repeats_no_answered_call(seeds, tmp_path):
    with FakeLLMServer(make_script(delay_s=0.01)) as fake:
        subprocess.run(_cmd(fake, seeds, tmp_path / "clean"), check=True, capture_output=True, timeout=120)
        clean = json.loads((tmp_path / "clean" / "criteria.json").read_text())
        clean_requests = fake.answered

    with FakeLLMServer(make_script(delay_s=0.01)) as fake:
        out = tmp_path / "run"
        proc = subprocess.Popen(_cmd(fake, seeds, out), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 60
        while fake.answered < 120 and time.monotonic() < deadline:  # well into the second judge phase
            time.sleep(0.01)
        fake.hold.set()
        time.sleep(0.5)  # answers already delivered reach the client's cache
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
        first = fake.answered
        assert 100 < first < clean_requests and not (out / "criteria.json").exists()
        fake.hold.clear()

        res = subprocess.run(_cmd(fake, seeds, out, "--resume"), capture_output=True, text=True, timeout=120)
        assert res.returncode == 0, res.stderr
        assert max(fake.keys.values()) == 1, "an answered request was sent again after resume"
        assert fake.answered == clean_requests  # the two runs together made exactly the calls of one clean run
        usage = json.loads((out / "usage.json").read_text())["phases"]
        paid = sum(p["calls"] for p in usage.values())
        assert paid == clean_requests  # counts survived the kill: every answered request was counted once
        assert sum(p["cached_calls"] for p in usage.values()) > 0  # the resumed judge node was served from cache

    resumed = json.loads((out / "criteria.json").read_text())
    strip = lambda d: [(c["name"], c["version"], c["accuracy"], c["ci_low"], c["coverage"]) for c in d["criteria"]]  # noqa: E731
    assert strip(resumed) == strip(clean) and resumed.keys() == clean.keys()


def test_a_new_run_reusing_a_finished_runs_cache_pays_for_nothing_it_paid_for(seeds, tmp_path):
    with FakeLLMServer(make_script(delay_s=0.0)) as fake:
        subprocess.run(_cmd(fake, seeds, tmp_path / "first"), check=True, capture_output=True, timeout=120)
        paid_first = fake.answered
        subprocess.run(_cmd(fake, seeds, tmp_path / "again", "--reuse-cache", str(tmp_path / "first")), check=True,
                       capture_output=True, timeout=120)
        assert paid_first > 0 and fake.answered == paid_first  # the server was not asked again
        bad = subprocess.run(_cmd(fake, seeds, tmp_path / "bad", "--reuse-cache", str(tmp_path / "none")),
                             capture_output=True, text=True, timeout=120)
    first, again = (json.loads((tmp_path / d / "criteria.json").read_text()) for d in ("first", "again"))
    assert [c["name"] for c in again["criteria"]] == [c["name"] for c in first["criteria"]]
    usage = Usage.model_validate_json((tmp_path / "again" / "usage.json").read_text()).total()
    assert usage.calls == 0 and usage.answers > 0  # every answer counted, none paid
    assert bad.returncode == 2 and "no response cache" in bad.stderr and not (tmp_path / "bad").exists()
