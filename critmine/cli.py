"""The `critmine` command line: generated from the command models in critmine.commands (pydantic-settings).

Each command is a settings model (its options: fields with defaults and help) and a handler that returns what to
print; the commands of the Python API run through `critmine.api.execute`, so the CLI and the API cannot differ.
Options come from the command line, CRITMINE_* variables and a --config TOML/YAML file.
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
import threading
from collections.abc import Callable
from typing import Any

from pydantic import ValidationError
from pydantic_settings import SettingsError

from critmine import api, commands as c
from critmine.agents import knowledge
from critmine.artifacts import RunLayout, ScorerMeta, SelectSummary
from critmine.embedded import EmbeddedServer
from critmine.errors import NoSignal, RunStopped
from critmine.eval.evaluate import table
from critmine.eval.report import write_report
from critmine.io import InputError, iter_documents, read_pairs, write_jsonl_atomic
from critmine.judging import describe as describe_labels
from critmine.label_app import serve
from critmine.labels import LabelLog, check_export_target, export, log_path, stats
from critmine.llm import BudgetExceeded, Usage
from critmine.logs import setup_logging
from critmine.mining import summary_table
from critmine.sampling import sample_pairs
from critmine.scorer.select import describe as describe_selection
from critmine.scorer.train import describe as describe_scorer
from critmine.vllm_backend import VllmServer

log = logging.getLogger("critmine")
EXIT_INPUT, EXIT_BUDGET, EXIT_FAILED, EXIT_NO_SIGNAL, EXIT_INTERRUPTED = 2, 3, 1, 4, 130


def mine(s: c.MineCommand) -> str | tuple[str, int]:
    """The summary; with exit code 4 when no criterion beats chance on the seeds (criteria.json says why)."""
    criteria = api.execute(s)
    run = RunLayout(s.out)
    usage = Usage.model_validate_json(run.usage.read_text())
    text = (f"{summary_table(run.criteria)}\n\nLLM usage\n{usage.table()}\n\n"
            f"wrote {run.criteria} and {run.report_html}")
    return (f"{text}\n\nNO SIGNAL: {criteria.no_signal}", EXIT_NO_SIGNAL) if criteria.no_signal else text


def evaluate(s: c.EvalCommand) -> str:
    done = api.execute(s)
    wall = f"wall time {done.result['wall_s']:.1f} s; " if "wall_s" in done.result else ""
    return (f"{table(done.result)}\n\n{wall}wrote {done.eval_json}"
            + (f"\nupdated {done.report}" if done.report else ""))


def pairs_sample(s: c.PairsSampleCommand) -> str:
    if s.out.exists():  # people may have labelled its pairs: replacing it would orphan their labels
        raise InputError(f"{s.out}: exists; choose another --out (critmine never replaces a pairs file)")
    pairs = sample_pairs(iter_documents(s.corpus, s.columns()), s.n_pairs, seed=s.seed, length_ratio=s.length_ratio,
                         group_by=s.group_by)
    write_jsonl_atomic(s.out, pairs)
    return f"wrote {len(pairs)} length-matched pairs to {s.out}"


def label(s: c.LabelCommand) -> str | int:
    pairs, labels = read_pairs(s.pairs), LabelLog(log_path(s.pairs))
    if not (s.export or s.stats):
        return serve(pairs, s.pairs, s.annotator, host=s.host, port=s.port, note=s.note, open_browser=s.open)
    lines = []
    if s.export:
        check_export_target(s.export, pairs, s.pairs)
        done = export(pairs, labels)
        write_jsonl_atomic(s.export, done)
        lines.append(f"wrote {len(done)} labelled pairs to {s.export} (ties, skips and split votes left out)")
    if s.stats:
        lines.append(json.dumps(stats(pairs, labels), indent=2))
    return "\n".join(lines)


def kb_add(s: c.KbAddCommand) -> str:
    added = knowledge.add_run(s.run_dir, s.kb, s.domain)
    return (f"added {len(added)} criteria to {s.kb}: {', '.join(e.name for e in added)}\n"
            f"use them with: critmine mine --kb {s.kb} ...")


def kb_list(s: c.KbListCommand) -> str:
    entries = knowledge.load_all(s.kb)
    return knowledge.describe(knowledge.matching(entries, domain=s.domain, text=s.search), of=len(entries))


def report(s: c.ReportCommand) -> str:
    md, page = write_report(s.run_dir)
    return f"wrote {md} and {page}"


def serve_model(s: c.ServeCommand) -> int:
    if s.engine == "vllm":
        return VllmServer(s.model, served_name=s.served_model_name, host=s.host, port=s.port,
                          tensor_parallel_size=s.tensor_parallel_size, max_model_len=s.max_model_len,
                          kv_cache_memory_bytes=s.kv_cache_memory_bytes, extra_args=s.vllm_arg).serve_forever()
    return EmbeddedServer(s.model, host=s.host, port=s.port, binary=s.llama_server,
                          threads=s.llama_threads).serve_forever()


def judge(s: c.JudgeCommand) -> str:
    return describe_labels(api.execute(s))


def train(s: c.TrainCommand) -> str:
    return f"{describe_scorer(api.execute(s))}\nwrote {s.out}"


def score(s: c.ScoreCommand) -> str:
    r = api.execute(s)
    return (f"scored {r.rows:,} documents into {r.shards} shards in {r.wall_s} s ({r.docs_per_s} docs/s, {r.engine}); "
            f"wrote {s.out}")


def select_documents(s: c.SelectCommand) -> str:
    return describe_selection(api.execute(s))


def run(s: c.RunCommand) -> str:
    outputs = api.execute(s)
    layout = RunLayout(s.out)
    return (f"{summary_table(layout.criteria)}\n\n{describe_scorer(ScorerMeta.read(layout.scorer_meta))}\n\n"
            f"{describe_selection(SelectSummary.read(layout.selected_summary))}\n\n"
            + "".join(f"{k:<10}{v}\n" for k, v in outputs.items()))


COMMANDS: dict[str, tuple[type[c.Command], Callable[[Any], str | int]]] = {
    "mine": (c.MineCommand, mine), "eval": (c.EvalCommand, evaluate), "pairs sample": (c.PairsSampleCommand,
    pairs_sample), "label": (c.LabelCommand, label), "kb add": (c.KbAddCommand, kb_add), "kb list": (c.KbListCommand,
    kb_list), "report": (c.ReportCommand, report), "serve": (c.ServeCommand, serve_model), "judge": (c.JudgeCommand,
    judge), "train": (c.TrainCommand, train), "score": (c.ScoreCommand, score), "select": (c.SelectCommand,
    select_documents), "run": (c.RunCommand, run)}


def usage() -> str:
    rows = "".join(f"  {name:<14}{(cls.__doc__ or '').strip()}\n" for name, (cls, _) in COMMANDS.items())
    return (f"usage: critmine COMMAND [options]   (critmine COMMAND --help: its options and defaults)\n\n{rows}\n"
            "Options also come from CRITMINE_<OPTION> variables and --config FILE.toml|yaml.\n")


def parse(argv: list[str]) -> tuple[c.Command, Callable[[Any], str | int]]:
    """The command named by the first words of argv, and its settings (SystemExit(2) on bad options)."""
    while argv[:1] in (["-v"], ["--verbose"]):  # -v before the command, too
        argv = argv[1:] + argv[:1]
    for words in (2, 1):
        name = " ".join(argv[:words])
        if name in COMMANDS and all(not w.startswith("-") for w in argv[:words]):
            cls, handler = COMMANDS[name]
            named = argparse.ArgumentParser(add_help=False)
            named.add_argument("--config")  # read first: the file sits below the command line and the environment
            found = named.parse_known_args(argv[words:])[0].config
            settings = cls(_cli_parse_args=argv[words:], _cli_prog_name=f"critmine {name}",  # type: ignore[call-arg]
                           **({"config": found} if found else {}))
            return settings, handler
    out = sys.stdout if argv[:1] in (["-h"], ["--help"]) else sys.stderr
    out.write(usage())
    raise SystemExit(0 if out is sys.stdout else EXIT_INPUT)


def _resume_hint(settings: c.Command | None) -> str:
    """How the interrupted command goes on (its class says); nothing before a command was parsed."""
    return type(settings).resume_hint if settings is not None else ""


def _terminate(signum, frame) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    verbose = "-v" in argv or "--verbose" in argv
    setup_logging(verbose)
    in_main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _terminate) if in_main_thread else None  # SIGTERM cleans up like Ctrl-C
    try:
        return _run(argv, verbose)
    finally:
        if in_main_thread:
            signal.signal(signal.SIGTERM, previous)


def _run(argv: list[str], verbose: bool) -> int:
    settings: c.Command | None = None
    try:
        settings, handler = parse(argv)
        result = handler(settings)
    except SystemExit as e:  # --help, or a bad option (argparse printed why)
        return int(e.code or 0)
    except InputError as e:
        log.error("%s", e)
        return EXIT_INPUT
    except ValidationError as e:
        log.error("invalid settings: %s", "; ".join(
            ": ".join(filter(None, [".".join(map(str, err["loc"])), err["msg"].removeprefix("Value error, ")]))
            for err in e.errors()))
        return EXIT_INPUT
    except SettingsError as e:  # a CRITMINE_* value that does not parse
        log.error("invalid settings: %s (a list in a variable is JSON, e.g. '[\"a\", \"b\"]')", e)
        return EXIT_INPUT
    except NoSignal as e:
        log.error("%s", e)
        return EXIT_NO_SIGNAL
    except RunStopped as e:  # one line: what failed, what to do
        log.error("%s", e)
        return EXIT_FAILED
    except BudgetExceeded as e:
        log.error("%s; the run stopped cleanly: raise --max-calls / --max-tokens and %s", e, _resume_hint(settings))
        return EXIT_BUDGET
    except KeyboardInterrupt:
        log.error("%s", "; ".join(filter(None, ["interrupted", _resume_hint(settings)])))
        return EXIT_INTERRUPTED
    except Exception as e:  # noqa: BLE001 - last resort: one line, non-zero exit, details with -v
        log.error("failed: %s: %s", type(e).__name__, e, exc_info=verbose)
        return EXIT_FAILED
    if isinstance(result, int):
        return result
    text, code = result if isinstance(result, tuple) else (result, 0)
    sys.stdout.write(text + "\n")
    return code


if __name__ == "__main__":
    sys.exit(main())
