"""Model servers critmine starts itself: own process group, parent-death signal, health wait, clean stop."""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import signal
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx

from critmine.errors import RunStopped

log = logging.getLogger(__name__)


class ServerError(RunStopped):
    """A model server could not be prepared or started; the message is one line naming the cause and the fix."""


CRASH_SIGNALS = {signal.SIGILL, signal.SIGSEGV, signal.SIGBUS, signal.SIGFPE}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def die_with_parent(parent: int, sig: int = signal.SIGKILL) -> None:
    """Ask Linux to send `sig` to this process when its parent dies (PR_SET_PDEATHSIG); exit at once if the
    parent is already gone. Used by every helper process critmine starts (servers, scoring workers)."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, sig)
    if os.getppid() != parent:
        os._exit(1)


@contextlib.contextmanager
def ctrl_c_interrupts() -> Iterator[None]:
    """While critmine blocks on a starting server or a loading in-process engine, Ctrl-C raises KeyboardInterrupt at
    once. Inside asyncio.run the first Ctrl-C only cancels the main task, which a blocking wait never looks at: it
    went on waiting for a model to load or a hung server to answer (up to the ready timeout)."""
    if threading.current_thread() is not threading.main_thread() or signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
        yield
        return
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
    finally:
        if previous is not None:  # None: a handler not set from Python, which cannot be put back
            signal.signal(signal.SIGINT, previous)


def _dies_with_parent(sig: int) -> Callable[[], None]:
    """A preexec_fn (runs in the child between fork and exec): own process group, `sig` when the parent dies."""
    def preexec() -> None:
        os.setsid()
        die_with_parent(os.getppid(), sig)
    return preexec


class ManagedServer:
    """Context manager around an OpenAI-compatible server process; subclasses say how to start it."""

    # Sent by the kernel when critmine dies without stopping the server (kill -9), when nobody is left to escalate:
    # SIGTERM lets a server shut its own helper processes down (vLLM); one with none to shut down may say SIGKILL.
    parent_death_signal: int = signal.SIGTERM
    stop_grace_s: float = 20.0  # stop(): how long SIGTERM may take before SIGKILL

    def __init__(self, name: str, *, host: str = "127.0.0.1", port: int | None = None,
                 ready_timeout_s: float = 300.0):
        self.name, self.host, self.port = name, host, port or free_port()
        self.ready_timeout_s = ready_timeout_s
        self.proc: subprocess.Popen | None = None
        self.log_file: Path | None = None

    def command(self) -> list[str]:
        raise NotImplementedError

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}/v1"

    def start(self) -> ManagedServer:
        cmd = self.command()
        fd, name = tempfile.mkstemp(prefix="critmine-server-", suffix=".log")
        self.log_file = Path(name)
        log.info("starting %s on %s", self.name, self.base_url)
        self.proc = subprocess.Popen(cmd, stdout=fd, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                     preexec_fn=_dies_with_parent(self.parent_death_signal))
        os.close(fd)
        try:
            with ctrl_c_interrupts():
                self._wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def _wait_ready(self) -> None:
        """Wait for /health, then ask for one token: a server that loads but crashes on its first computation
        (a binary built for instructions this CPU does not allow) fails here, not in the middle of a run."""
        t0 = time.monotonic()
        while time.monotonic() - t0 < self.ready_timeout_s:
            self._check_alive()
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"http://{self.host}:{self.port}/health", timeout=2).status_code == 200:
                    self._probe(max(10.0, self.ready_timeout_s - (time.monotonic() - t0)))
                    log.info("%s ready in %.1f s", self.name, time.monotonic() - t0)
                    return
            time.sleep(0.25)
        raise ServerError(f"{self.name} not ready after {self.ready_timeout_s:.0f} s: {self._log_tail()}")

    def _probe(self, timeout: float) -> None:
        """One tiny completion; the server must answer it (and stay alive)."""
        body = {"model": self.probe_model, "messages": [{"role": "user", "content": "Say OK."}], "max_tokens": 1,
                "temperature": 0}
        try:
            r = httpx.post(f"{self.base_url}/chat/completions", json=body, timeout=timeout)
            r.raise_for_status()
            if not r.json().get("choices"):
                raise ValueError("no choices in the answer")
        except (httpx.HTTPError, ValueError) as e:
            time.sleep(0.5)  # a crashing server may still be dying: prefer its exit status as the explanation
            self._check_alive()
            raise ServerError(f"{self.name} started but did not answer a one-token completion "
                              f"({type(e).__name__}: {str(e)[:200]}): {self._log_tail()}") from None
        self._check_alive()

    @property
    def probe_model(self) -> str:
        """The model name the server answers to (each server says)."""
        raise NotImplementedError

    def _check_alive(self) -> None:
        code = self.proc.poll() if self.proc is not None else None
        if code is None:
            return
        if code < 0 and -code in CRASH_SIGNALS:
            raise ServerError(f"{self.name} was killed by {signal.Signals(-code).name} while starting: "
                              f"{self.crash_hint()}")
        raise ServerError(f"{self.name} exited with code {code} while starting: {self._log_tail()}")

    def crash_hint(self) -> str:
        """What to do when the server binary crashes on this CPU."""
        return "the server binary was built for instructions this CPU does not allow; rebuild it for this machine"

    def _log_tail(self) -> str:
        if not self.log_file or not self.log_file.exists():
            return ""
        lines = [x.strip() for x in self.log_file.read_text(errors="replace").strip().splitlines() if x.strip()]
        return " | ".join(lines[-3:]) or "(the server wrote nothing)"

    def stop(self) -> None:
        """SIGTERM the server's whole process group, SIGKILL if it lingers; remove its log file (also when the
        server had already died: a failed start's message quotes the log before stop() is called)."""
        if self.proc is not None and self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(self.stop_grace_s)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)
            log.info("%s stopped", self.name)
        if self.log_file:
            self.log_file.unlink(missing_ok=True)

    def __enter__(self) -> ManagedServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def serve_forever(self) -> int:
        """Run in the foreground until Ctrl-C / SIGTERM (`critmine serve`)."""
        with self:
            assert self.proc is not None  # started by __enter__
            log.info("serving %s at %s (Ctrl-C to stop)", self.name, self.base_url)
            try:
                while self.proc.poll() is None:
                    time.sleep(0.5)
            except KeyboardInterrupt:
                pass
        return 0
