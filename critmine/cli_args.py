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


ENDPOINT, MINE = EndpointConfig.model_fields, MineConfig.model_fields


def declared(fields: dict, name: str, **kw) -> dict:
    """argparse keywords for a settings field: its default and its help come from the model (declared once)."""
    field = fields[name]
    return {"default": field.get_default(call_default_factory=True), "help": field.description, **kw}


class Parser(argparse.ArgumentParser):
    """Every critmine parser (subcommands included): help shows defaults, and -v works after any subcommand."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("formatter_class", argparse.ArgumentDefaultsHelpFormatter)
        super().__init__(*args, **kwargs)
        self.add_argument("-v", "--verbose", action="store_true", default=argparse.SUPPRESS,
                          help="debug logging")


def add_endpoint_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("LLM endpoints (default: the embedded CPU model, started and stopped by critmine)")
    g.add_argument("--base-url", **declared(ENDPOINT, "base_url"))
    g.add_argument("--manager-base-url", help="endpoint for the manager only (default: --base-url)")
    g.add_argument("--api-key", default="none", help="sent as a bearer token")
    g.add_argument("--model", **declared(ENDPOINT, "model"))
    g.add_argument("--manager-model", help="default: --model")
    g.add_argument("--worker-model", help="default: --model")
    g.add_argument("--server-kind", choices=["auto", "llamacpp", "vllm", "openai"], **declared(ENDPOINT, "kind"))
    g.add_argument("--concurrency", type=int, **declared(ENDPOINT, "concurrency"))
    g.add_argument("--timeout", type=float, **declared(ENDPOINT, "timeout_s"))
    g.add_argument("--max-retries", type=int, **declared(ENDPOINT, "max_retries"))
    g.add_argument("--retry-backoff", type=float, **declared(ENDPOINT, "backoff_s"))
    g.add_argument("--llama-server", metavar="PATH", **declared(ENDPOINT, "llama_server"))


def endpoints(args: argparse.Namespace) -> tuple[EndpointConfig, EndpointConfig]:
    common = dict(api_key=args.api_key, kind=args.server_kind, timeout_s=args.timeout, max_retries=args.max_retries,
                  concurrency=args.concurrency, backoff_s=args.retry_backoff, llama_server=args.llama_server)
    manager = EndpointConfig(base_url=args.manager_base_url or args.base_url,
                             model=args.manager_model or args.model, **common)
    worker = EndpointConfig(base_url=args.base_url, model=args.worker_model or args.model, **common)
    return manager, worker


def add_mining_args(m: argparse.ArgumentParser) -> None:
    g = m.add_argument_group("mining")
    g.add_argument("--n-criteria", type=int, **declared(MINE, "n_criteria"))
    g.add_argument("--iterations", type=int, **declared(MINE, "iterations"))
    g.add_argument("--thresholds", type=_thresholds, help="LOW,GOOD seed-accuracy bands (replace / keep)",
                   default=(MINE["low_threshold"].default, MINE["good_threshold"].default))
    g.add_argument("--folds", type=int, **declared(MINE, "folds"))
    g.add_argument("--max-reflect-cases", type=int, **declared(MINE, "max_reflect_cases"))
    g.add_argument("--patience", type=int, **declared(MINE, "patience"))
    g.add_argument("--min-final", type=int, **declared(MINE, "min_final"))
    g.add_argument("--max-text-chars", type=int, **declared(MINE, "max_text_chars"))
    g.add_argument("--top-logprobs", type=int, **declared(MINE, "top_logprobs"))
    g.add_argument("--kb", **declared(MINE, "kb_file"))
    g.add_argument("--no-kb", action="store_true", **declared(MINE, "no_kb"))
    g.add_argument("--no-reflection", action="store_true", **declared(MINE, "no_reflection"))
    g.add_argument("--kb-domains", default="", help="comma-separated domains, e.g. argument,fluency (empty: all)")
    g.add_argument("--kb-max-candidates", type=int, **declared(MINE, "kb_max_candidates"))
    g.add_argument("--kb-min-accuracy", type=float, **declared(MINE, "kb_min_accuracy"))
    g.add_argument("--kb-max-initial", type=int, **declared(MINE, "kb_max_initial"))
    g.add_argument("--max-calls", type=int, help="stop cleanly (resumable) after this many paid LLM calls")
    g.add_argument("--max-tokens", type=int, help="stop cleanly (resumable) after this many paid tokens")


def mine_config(args: argparse.Namespace, manager: EndpointConfig, worker: EndpointConfig) -> MineConfig:
    low, good = args.thresholds
    return MineConfig(pairs=str(args.pairs or ""), out=str(args.out), manager=manager, worker=worker,
                      n_criteria=args.n_criteria, iterations=args.iterations, low_threshold=low, good_threshold=good,
                      folds=args.folds, patience=args.patience, max_reflect_cases=args.max_reflect_cases,
                      max_text_chars=args.max_text_chars, min_final=args.min_final, top_logprobs=args.top_logprobs,
                      budget=Budget(max_calls=args.max_calls, max_tokens=args.max_tokens), no_kb=args.no_kb,
                      no_reflection=args.no_reflection, kb_file=args.kb, kb_max_candidates=args.kb_max_candidates,
                      kb_min_accuracy=args.kb_min_accuracy, kb_max_initial=args.kb_max_initial,
                      kb_domains=[d for d in args.kb_domains.split(",") if d])
