"""The command line takes its defaults and help from the settings models, shows them, and takes -v anywhere."""

from __future__ import annotations

import subprocess
import sys

from critmine.cli import build_parser
from critmine.cli_args import endpoints, mine_config
from critmine.config import EndpointConfig, MineConfig


def parsed(*args: str) -> MineConfig:
    ns = build_parser().parse_args(["mine", "--pairs", "p.jsonl", "--out", "o", *args])
    return mine_config(ns, *endpoints(ns))


def test_cli_defaults_are_the_models_defaults():
    from_cli = parsed().model_dump(exclude={"pairs", "out"})
    from_model = MineConfig(pairs="p.jsonl", out="o").model_dump(exclude={"pairs", "out"})
    assert from_cli == from_model  # e.g. --patience was 2 on the CLI and 1 in MineConfig
    ns = build_parser().parse_args(["judge", "--criteria", "c.json", "--pairs", "p", "--out", "o"])
    worker = endpoints(ns)[1]
    assert worker.model_dump(exclude={"base_url"}) == EndpointConfig().model_dump(exclude={"base_url"})


def test_every_mining_setting_can_be_set_from_the_cli():
    cfg = parsed("--kb-min-accuracy", "0.7", "--kb-max-initial", "2", "--min-final", "4", "--top-logprobs", "5",
                 "--patience", "3", "--thresholds", "0.4,0.8")
    assert (cfg.kb_min_accuracy, cfg.kb_max_initial, cfg.min_final, cfg.top_logprobs, cfg.patience) == (0.7, 2, 4, 5, 3)
    assert (cfg.low_threshold, cfg.good_threshold) == (0.4, 0.8)


def test_help_shows_defaults_and_verbose_works_after_the_command():
    help_text = subprocess.run([sys.executable, "-m", "critmine.cli", "mine", "--help"], capture_output=True,
                               text=True, env={"COLUMNS": "200", "PATH": ""}).stdout
    assert "criteria to mine (default: 10)" in help_text and "(default: 2)" in help_text
    assert "(default: qwen2.5-coder-0.5b)" in help_text
    parser = build_parser()
    assert parser.parse_args(["report", "r"]).verbose is False
    assert parser.parse_args(["-v", "report", "r"]).verbose is True
    assert parser.parse_args(["report", "r", "-v"]).verbose is True
    assert parser.parse_args(["kb", "list", "-v"]).verbose is True
