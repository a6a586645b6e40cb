"""The `critmine` command line."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from pathlib import Path

from pydantic import ValidationError

from critmine.artifacts import RunLayout
from critmine.cli_args import Parser, add_endpoint_args, add_mining_args, endpoints, mine_config, setup_logging
from critmine.cli_distil import HANDLERS as DISTIL_HANDLERS
from critmine.cli_distil import add_parsers as add_distil_parsers
from critmine.defaults import DEFAULT_MODEL, MAX_TEXT_CHARS
from critmine.errors import RunStopped
from critmine.io import InputError
from critmine.llm import BudgetExceeded

log = logging.getLogger("critmine")
DEFAULT_USER_KB = Path("~/.local/share/critmine/criteria.jsonl").expanduser()
EXIT_INPUT, EXIT_BUDGET, EXIT_FAILED, EXIT_INTERRUPTED = 2, 3, 1, 130


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="critmine", description=__doc__)
    parser.set_defaults(verbose=False)
    sub = parser.add_subparsers(dest="command", required=True)

    m = sub.add_parser("mine", help="mine quality criteria from labelled seed pairs")
    m.add_argument("--pairs", help="labelled seed pairs (JSONL, Parquet, CSV or a saved dataset)")
    m.add_argument("--out", required=True, type=Path, help="run directory")
    m.add_argument("--resume", action="store_true", help="continue the run in --out after a stop or a kill")
    add_mining_args(m)
    add_endpoint_args(m)

    e = sub.add_parser("eval", help="measure mined criteria or a baseline on human-labelled test pairs")
    e.add_argument("--pairs", required=True, help="labelled test pairs (never the seed pairs)")
    e.add_argument("--criteria", type=Path, help="criteria.json of a mining run")
    e.add_argument("--scorer", type=Path, help="a scorer directory (from `critmine train`): no LLM calls")
    e.add_argument("--baseline", choices=["vanilla", "one-prompt", "qurating", "length", "random"],
                   help="measure a baseline instead (one-prompt puts all --criteria into one prompt)")
    e.add_argument("--injection", nargs="?", const="all", metavar="KINDS",
                   help="also judge the pairs with an attack planted in the worse text and report the flip rate per "
                        "attack kind: all (default), or a comma-separated subset of instruction, role_marker, "
                        "fence_break, chat_template")
    e.add_argument("--out", type=Path, help="output directory (default: <run>/eval[-BASELINE])")
    e.add_argument("--sample", type=int, help="evaluate a seeded random sample of this many pairs")
    e.add_argument("--seed", type=int, default=0)
    e.add_argument("--max-text-chars", type=int, default=MAX_TEXT_CHARS, help="texts are cut to this")
    e.add_argument("--engine", choices=["server", "vllm-offline"], default="server",
                   help="vllm-offline: judge in-process with vllm.LLM, fully batched (--model: checkpoint or name)")
    e.add_argument("--kv-cache-memory-bytes", type=int, help="vllm-offline: KV cache size (needed on CPU)")
    add_endpoint_args(e)

    ps = sub.add_parser("pairs", help="make pairs to label").add_subparsers(dest="pairs_command", required=True)
    sp = ps.add_parser("sample", help="random length-matched pairs of documents from a corpus (streamed)")
    sp.add_argument("corpus", help="documents: JSONL, Parquet, CSV or a saved dataset")
    sp.add_argument("--n", type=int, default=40)
    sp.add_argument("--out", required=True, type=Path)
    sp.add_argument("--seed", type=int, default=0)
    sp.add_argument("--group-by", help="pair only documents with the same value of this meta key")
    sp.add_argument("--length-ratio", type=float, default=1.5, help="longer text at most this many times the shorter")

    lb = sub.add_parser("label", help="label pairs in the browser; export labels; agreement statistics")
    lb.add_argument("pairs", help="pairs file (labels are logged beside it, in PAIRS.labels.jsonl)")
    lb.add_argument("--annotator", default="annotator")
    lb.add_argument("--host", default="127.0.0.1", help="bind address (default: this machine only)")
    lb.add_argument("--port", type=int, default=0, help="0 picks a free port")
    lb.add_argument("--open", action="store_true", help="open the page in a browser")
    lb.add_argument("--note", default="", help="instruction shown above the texts")
    lb.add_argument("--export", type=Path, metavar="OUT", help="write labelled pairs (majority over annotators)")
    lb.add_argument("--stats", action="store_true", help="print per-annotator counts, agreement and kappa")

    kb = sub.add_parser("kb", help="the criteria knowledge base").add_subparsers(dest="kb_command", required=True)
    ka = kb.add_parser("add", help="add a run's accepted criteria (with measured accuracy) to your knowledge base")
    ka.add_argument("run_dir", type=Path)
    ka.add_argument("--kb", type=Path, default=DEFAULT_USER_KB,
                    help=f"your knowledge-base file (default {DEFAULT_USER_KB})")
    ka.add_argument("--domain", action="append", default=[], help="domain of these criteria (repeatable)")
    kl = kb.add_parser("list", help="list knowledge-base criteria")
    kl.add_argument("--kb", type=Path, help="also list this user file")
    kl.add_argument("--domain", help="only this domain")
    kl.add_argument("--search", help="only criteria whose name or description contains this text")

    rp = sub.add_parser("report", help="write report.md and a self-contained report.html for a run directory")
    rp.add_argument("run_dir", type=Path)

    s = sub.add_parser("serve", help="run a model server (embedded llama.cpp or vLLM) in the foreground")
    s.add_argument("--engine", choices=["embedded", "vllm"], default="embedded")
    s.add_argument("--model", default=DEFAULT_MODEL,
                   help="embedded model name, a .gguf path, or (vllm) a checkpoint directory")
    s.add_argument("--served-model-name", help="vllm: the name clients use (default: --model)")
    s.add_argument("--host", default="127.0.0.1")
    s.add_argument("--port", type=int, default=8080)
    s.add_argument("--tensor-parallel-size", type=int, default=1)
    s.add_argument("--max-model-len", type=int, default=4096)
    s.add_argument("--kv-cache-memory-bytes", type=int, help="vllm: KV cache size (needed on CPU machines)")
    s.add_argument("--llama-server", metavar="PATH", help="embedded: this llama-server binary")
    add_distil_parsers(sub)
    return parser


def _cmd_mine(args: argparse.Namespace) -> int:
    from critmine.mine import run_mine, summary_table

    manager, worker = endpoints(args)
    if not args.resume and not args.pairs:
        raise InputError("mine: --pairs is required (or --resume an existing run)")
    cfg = mine_config(args, manager, worker)
    run_dir = run_mine(cfg, resume=args.resume)
    from critmine.llm import Usage

    run = RunLayout(run_dir)
    usage = Usage.model_validate_json(run.usage.read_text())
    sys.stdout.write(summary_table(run.criteria) + "\n\nLLM usage\n" + usage.table() + "\n")
    from critmine.eval.report import write_report

    _, page = write_report(run_dir)
    sys.stdout.write(f"\nwrote {run.criteria} and {page}\n")
    return 0


def _cmd_eval(args: argparse.Namespace) -> int:
    from critmine.eval.evaluate import run_eval, run_scorer_eval, table

    _, worker = endpoints(args)
    if args.scorer is not None:
        if args.criteria is not None or args.baseline is not None:
            raise InputError("eval: --scorer is measured on its own (no --criteria or --baseline)")
        out = args.out or args.scorer / "eval"
        result = run_scorer_eval(args.pairs, out, args.scorer, sample=args.sample, seed=args.seed)
        sys.stdout.write(table(result) + f"\n\nwrote {out / 'eval.json'}\n")
        return 0
    if args.out is None and args.criteria is None:
        raise InputError("eval: give --out (or --criteria, whose run directory then holds the results)")
    out = args.out or args.criteria.parent / ("eval" + (f"-{args.baseline}" if args.baseline else ""))
    result = run_eval(args.pairs, out, worker, criteria_file=args.criteria, baseline=args.baseline,
                      sample=args.sample, seed=args.seed, max_text_chars=args.max_text_chars, engine=args.engine,
                      kv_cache_memory_bytes=args.kv_cache_memory_bytes,
                      injection=_injection_kinds(args.injection))
    sys.stdout.write(table(result) + f"\n\nwall time {result['wall_s']:.1f} s; wrote {out / 'eval.json'}\n")
    if args.criteria is not None and RunLayout(args.criteria.parent).snapshots():
        from critmine.eval.report import write_report

        _, page = write_report(args.criteria.parent)
        sys.stdout.write(f"updated {page}\n")
    return 0


def _injection_kinds(value: str | None) -> bool | list[str]:
    if value is None:
        return False
    return True if value == "all" else [k for k in value.split(",") if k]


def _cmd_pairs(args: argparse.Namespace) -> int:
    from critmine.io import iter_documents, write_jsonl_atomic
    from critmine.sampling import sample_pairs

    pairs = sample_pairs(iter_documents(args.corpus), args.n, seed=args.seed, length_ratio=args.length_ratio,
                         group_by=args.group_by)
    write_jsonl_atomic(args.out, pairs)
    sys.stdout.write(f"wrote {len(pairs)} length-matched pairs to {args.out}\n")
    return 0


def _cmd_label(args: argparse.Namespace) -> int:
    import json

    from critmine.io import read_pairs, write_jsonl_atomic
    from critmine.labels import LabelLog, export, log_path, stats

    pairs = read_pairs(args.pairs)
    log = LabelLog(log_path(args.pairs))
    if args.export or args.stats:
        if args.export:
            done = export(pairs, log)
            write_jsonl_atomic(args.export, done)
            sys.stdout.write(f"wrote {len(done)} labelled pairs to {args.export} "
                             "(ties, skips and split votes left out)\n")
        if args.stats:
            sys.stdout.write(json.dumps(stats(pairs, log), indent=2) + "\n")
        return 0
    from critmine.label_app import serve

    return serve(pairs, args.pairs, args.annotator, host=args.host, port=args.port, note=args.note,
                 open_browser=args.open)


def _cmd_kb(args: argparse.Namespace) -> int:
    from critmine.agents import knowledge

    if args.kb_command == "add":
        added = knowledge.add_run(args.run_dir, args.kb, args.domain)
        sys.stdout.write(f"added {len(added)} criteria to {args.kb}: {', '.join(e.name for e in added)}\n"
                         f"use them with: critmine mine --kb {args.kb} ...\n")
        return 0
    entries = knowledge.load_all(args.kb)
    text = (args.search or "").lower()
    shown = [e for e in entries if (not args.domain or args.domain in e.domains)
             and (not text or text in e.name or text in e.description.lower())]
    for e in shown:
        acc = f"{e.accuracy:.2f}" if e.accuracy is not None else "   -"
        sys.stdout.write(f"{e.name:<34}{acc:>6}  {','.join(e.domains):<28} {e.source}\n    {e.description}\n")
    sys.stdout.write(f"{len(shown)} of {len(entries)} criteria\n")
    return 0


def _cmd_report(args: argparse.Namespace) -> int:
    from critmine.eval.report import write_report

    md, page = write_report(args.run_dir)
    sys.stdout.write(f"wrote {md} and {page}\n")
    return 0


def _cmd_serve(args: argparse.Namespace) -> int:
    if args.engine == "vllm":
        from critmine.vllm_backend import VllmServer

        return VllmServer(args.model, served_name=args.served_model_name, host=args.host, port=args.port,
                          tensor_parallel_size=args.tensor_parallel_size, max_model_len=args.max_model_len,
                          kv_cache_memory_bytes=args.kv_cache_memory_bytes).serve_forever()
    from critmine.embedded import EmbeddedServer

    return EmbeddedServer(args.model, host=args.host, port=args.port, binary=args.llama_server).serve_forever()


def _terminate(signum, frame) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    setup_logging(args.verbose)
    in_main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _terminate) if in_main_thread else None  # SIGTERM cleans up like Ctrl-C
    try:
        return _dispatch(args)
    finally:
        if in_main_thread:
            signal.signal(signal.SIGTERM, previous)


def _dispatch(args: argparse.Namespace) -> int:
    handlers = {"mine": _cmd_mine, "eval": _cmd_eval, "serve": _cmd_serve, "pairs": _cmd_pairs, "label": _cmd_label,
                "kb": _cmd_kb, "report": _cmd_report}
    handlers.update(DISTIL_HANDLERS)
    try:
        return handlers[args.command](args)
    except InputError as e:
        log.error("%s", e)
        return EXIT_INPUT
    except ValidationError as e:
        log.error("invalid settings: %s", "; ".join(err["msg"] for err in e.errors()))
        return EXIT_INPUT
    except RunStopped as e:  # one line: what failed, what to do
        log.error("%s", e)
        return EXIT_FAILED
    except BudgetExceeded as e:
        log.error("%s; the run stopped cleanly: continue it with --resume and a larger budget", e)
        return EXIT_BUDGET
    except KeyboardInterrupt:
        log.error("interrupted; continue with --resume")
        return EXIT_INTERRUPTED
    except Exception as e:  # noqa: BLE001 - last resort: one line, non-zero exit, details with -v
        log.error("failed: %s: %s", type(e).__name__, e, exc_info=args.verbose)
        return EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())
