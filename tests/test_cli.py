"""The command line is generated from the settings models: their defaults and help, CRITMINE_* variables and a
--config file (TOML or YAML), with the command line first, then the environment, then the file."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from critmine.cli import COMMANDS, main, parse
from critmine.commands import MineCommand
from critmine.config import EndpointConfig, MineConfig, MiningOptions


def mine_settings(*args: str) -> MineCommand:
    settings, _ = parse(["mine", "--pairs", "p.jsonl", "--out", "o", *args])
    assert isinstance(settings, MineCommand)
    return settings


def test_cli_defaults_are_the_models_defaults(monkeypatch):
    from_cli = mine_settings().mine_config().model_dump(exclude={"pairs", "out"})
    from_model = MineConfig(pairs="p.jsonl", out="o").model_dump(exclude={"pairs", "out"})
    assert from_cli == from_model  # e.g. --patience was 2 on the CLI and 1 in MineConfig
    judge, _ = parse(["judge", "--criteria", "c.json", "--pairs", "p", "--out", "o"])
    worker = judge.endpoints()[1]
    assert worker.model_dump(exclude={"base_url"}) == EndpointConfig().model_dump(exclude={"base_url"})


def test_every_mining_setting_can_be_set_from_the_cli():
    cfg = mine_settings("--kb-min-accuracy", "0.7", "--kb-max-initial", "2", "--min-final", "4", "--top-logprobs",
                        "5", "--patience", "3", "--low-threshold", "0.4", "--good-threshold", "0.8", "--no-kb",
                        "--kb", "my.jsonl", "--kb-domains", "argument,fluency").mine_config()
    assert (cfg.kb_min_accuracy, cfg.kb_max_initial, cfg.min_final, cfg.top_logprobs, cfg.patience) == (0.7, 2, 4, 5, 3)
    assert (cfg.low_threshold, cfg.good_threshold, cfg.no_kb, cfg.kb_file) == (0.4, 0.8, True, "my.jsonl")
    assert cfg.kb_domains == ["argument", "fluency"]
    assert set(MiningOptions.model_fields) <= set(MineCommand.model_fields)


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_every_command_shows_its_defaults_in_help(command):
    help_text = subprocess.run([sys.executable, "-m", "critmine.cli", *command.split(), "--help"],
                               capture_output=True, text=True, env={"COLUMNS": "200", "PATH": ""}).stdout
    assert help_text.startswith(f"usage: critmine {command}")
    entries = re.split(r"\n  (?=-)", help_text.split("options:")[1])  # one per option, its help included
    for name, field in COMMANDS[command][0].model_fields.items():
        if field.is_required() or "Positional" in repr(field.metadata):
            continue
        flag = "--" + name.replace("_", "-")
        entry = next(e for e in entries if flag in e.split("\n")[0].replace(",", " ").split())
        default = field.get_default(call_default_factory=True)
        shown = "null" if default is None else "list" if default == [] else str(default)
        assert f"(default: {shown})" in entry or f"(default factory: {shown})" in entry, (flag, entry)
    if command == "mine":
        assert "criteria to mine (default: 10)" in help_text and "(default: qwen2.5-coder-0.5b)" in help_text


def test_verbose_works_before_and_after_the_command():
    assert parse(["report", "r"])[0].verbose is False
    assert parse(["-v", "report", "r"])[0].verbose is True
    assert parse(["report", "r", "-v"])[0].verbose is True
    assert parse(["kb", "list", "-v"])[0].verbose is True


def test_environment_and_config_file(tmp_path, monkeypatch):
    toml = tmp_path / "run.toml"
    toml.write_text('model = "from-file"\nn_criteria = 4\nkb-domains = ["fluency"]\npatience = 3\n')
    cfg = mine_settings("--config", str(toml)).mine_config()
    assert (cfg.worker.model, cfg.n_criteria, cfg.kb_domains, cfg.patience) == ("from-file", 4, ["fluency"], 3)
    monkeypatch.setenv("CRITMINE_MODEL", "from-env")
    monkeypatch.setenv("CRITMINE_PATIENCE", "5")
    cfg = mine_settings("--config", str(toml), "--n-criteria", "6").mine_config()
    # the command line beats the environment, which beats the file
    assert (cfg.worker.model, cfg.manager.model, cfg.n_criteria, cfg.patience) == ("from-env", "from-env", 6, 5)
    yaml = tmp_path / "run.yaml"
    yaml.write_text("worker_model: w\nno_kb: true\n")
    monkeypatch.setenv("CRITMINE_CONFIG", str(yaml))
    cfg = mine_settings().mine_config()
    assert (cfg.worker.model, cfg.manager.model, cfg.no_kb) == ("w", "from-env", True)


@pytest.mark.parametrize("text, suffix, message", [
    ("n_criteria = [", ".toml", "not a valid TOML file"),
    ("colour = 3\n", ".toml", "colour: Extra inputs are not permitted"),
    ("n_criteria: 0\n", ".yaml", "n_criteria: Input should be greater than or equal to 1"),
    ("- a\n", ".yaml", "a config file holds a table of settings"),
])
def test_a_bad_config_file_is_one_line_and_exit_2(tmp_path, caplog, text, suffix, message):
    f = tmp_path / f"run{suffix}"
    f.write_text(text)
    out = tmp_path / "out"
    assert main(["mine", "--pairs", "p.jsonl", "--out", str(out), "--config", str(f)]) == 2
    errors = [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]
    assert len(errors) == 1 and message in errors[0] and "\n" not in errors[0]
    assert not out.exists()


def test_a_bad_environment_value_is_one_line_and_exit_2(monkeypatch, caplog, tmp_path):
    for name, value, message in (("CRITMINE_N_CRITERIA", "abc", "n_criteria: Input should be a valid integer"),
                                 ("CRITMINE_KB_DOMAINS", "a,b", 'error parsing value for field "kb_domains"')):
        caplog.clear()
        with monkeypatch.context() as m:
            m.setenv(name, value)
            assert main(["mine", "--pairs", "p.jsonl", "--out", str(tmp_path / "o")]) == 2
        errors = [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]
        assert len(errors) == 1 and message in errors[0], errors


def test_unknown_options_and_commands_exit_2(capsys):
    with pytest.raises(SystemExit) as e:
        parse(["mine", "--out", "o", "--colour", "3"])
    assert e.value.code == 2 and "unrecognized arguments: --colour 3" in capsys.readouterr().err
    assert main(["frobnicate"]) == 2
    assert "usage: critmine COMMAND" in capsys.readouterr().err


def test_mine_runs_from_the_environment_and_a_config_file(fake, seeds, tmp_path, monkeypatch):
    config = tmp_path / "run.toml"
    config.write_text('n_criteria = 4\nno_kb = true\nretry_backoff = 0.01\niterations = 1\n')
    monkeypatch.setenv("CRITMINE_BASE_URL", fake.base_url)
    monkeypatch.setenv("CRITMINE_MODEL", "fake")
    monkeypatch.setenv("CRITMINE_API_KEY", "secret-from-env")
    out = tmp_path / "run"
    assert main(["mine", "--pairs", str(seeds), "--out", str(out), "--config", str(config)]) == 0
    saved = MineConfig.read(out / "config.json")
    assert (saved.worker.model, saved.worker.base_url, saved.n_criteria, saved.no_kb, saved.iterations) == (
        "fake", fake.base_url, 4, True, 1)
    assert "secret-from-env" not in (out / "config.json").read_text()  # secrets are never written
    assert {r["model"] for r in fake.requests} == {"fake"}
