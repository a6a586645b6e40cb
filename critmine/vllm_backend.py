"""vLLM: a safetensors checkpoint for it, and its OpenAI-compatible server managed like the embedded one.

vLLM is an optional extra in its own environment (`make test-vllm` builds one for CPU); nothing here imports it
at module level.
"""

from __future__ import annotations

import logging
import os
import re
import sys
from pathlib import Path

from critmine.embedded import MODELS, cache_dir, model_path
from critmine.servers import ManagedServer, ServerError

log = logging.getLogger(__name__)


HUB_MODEL = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")  # owner/name: vLLM fetches it itself


def hf_checkpoint(model: str) -> Path | str:
    """What vLLM loads: the user's checkpoint dir as is, a Hub model id as is (vLLM downloads it, as it would
    without critmine), or an embedded model converted once from GGUF (transformers + gguf, ≈1 min for the 0.5B) into
    the user cache."""
    if Path(model).is_dir():
        return Path(model)
    if model not in MODELS and HUB_MODEL.match(model):
        return model
    if model not in MODELS:
        raise ServerError(f"{model}: not a checkpoint directory, a Hub model id nor an embedded model "
                          f"({', '.join(MODELS)})")
    target = cache_dir() / f"{model}-hf"
    if (target / "config.json").exists() and (target / "model.safetensors").exists():
        return target
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    gguf = model_path(model)
    log.info("converting %s to a safetensors checkpoint in %s", gguf.name, target)
    tok = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    lm = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name, dtype=torch.bfloat16)
    # the weights are dequantized in memory; drop the GGUF marker so they can be saved
    lm.hf_quantizer = None  # type: ignore[assignment]  # transformers types it as a module attribute
    if hasattr(lm.config, "quantization_config"):
        delattr(lm.config, "quantization_config")
    tmp = target.with_name(target.name + ".tmp")
    lm.save_pretrained(tmp)
    tok.save_pretrained(tmp)
    tmp.rename(target)
    return target


class VllmServer(ManagedServer):
    """`python -m vllm.entrypoints.openai.api_server` with prefix caching and enough logprobs for the worker."""

    def __init__(self, model: str, *, served_name: str | None = None, host: str = "127.0.0.1",
                 port: int | None = None, tensor_parallel_size: int = 1, max_model_len: int = 4096,
                 kv_cache_memory_bytes: int | None = None, max_logprobs: int = 20, ready_timeout_s: float = 900.0,
                 extra_args: list[str] | None = None):
        super().__init__(f"vLLM {model}", host=host, port=port, ready_timeout_s=ready_timeout_s)
        self.extra_args = list(extra_args or [])
        self.model, self.served_name = model, served_name or model
        self.tp, self.max_model_len = tensor_parallel_size, max_model_len
        self.kv_bytes, self.max_logprobs = kv_cache_memory_bytes, max_logprobs

    @property
    def probe_model(self) -> str:
        return self.served_name

    def command(self) -> list[str]:
        cmd = [sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--model", str(hf_checkpoint(self.model)),
               "--served-model-name", self.served_name, "--host", self.host, "--port", str(self.port),
               "--enable-prefix-caching", "--max-logprobs", str(self.max_logprobs),
               "--max-model-len", str(self.max_model_len), "--tensor-parallel-size", str(self.tp)]
        if self.kv_bytes:  # on CPU, reserve this much for the KV cache instead of a fraction of all memory
            cmd += ["--kv-cache-memory-bytes", str(self.kv_bytes)]
        return cmd + self.extra_args  # the user's engine arguments last: they win
