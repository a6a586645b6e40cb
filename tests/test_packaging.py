"""A wheel built from the source tree ships the prompts, the knowledge base, the labelling page and the licence."""
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SOURCES = ("pyproject.toml", "README.md", "LICENSE", "critmine", "agents", "prompts", "scorer", "eval")
INSTALLED_AS = {"critmine": "critmine", "agents": "critmine/agents", "prompts": "critmine/prompts",
                "scorer": "critmine/scorer", "eval": "critmine/eval"}


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    pytest.importorskip("setuptools", minversion="77")  # the build-system requirement
    tree, out = tmp_path_factory.mktemp("tree"), tmp_path_factory.mktemp("dist")
    for name in SOURCES:  # a copy, so the build writes no build/ or egg-info into the checkout
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(source, tree / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            shutil.copy2(source, tree / name)
    build = subprocess.run(
        [sys.executable, "-c", f"from setuptools import build_meta; build_meta.build_wheel({str(out)!r})"],
        cwd=tree, capture_output=True, text=True, timeout=300,
    )
    assert build.returncode == 0, build.stderr[-2000:]
    return next(out.glob("critmine-*.whl")), build.stdout + build.stderr


def test_wheel_ships_every_module(wheel: tuple[Path, str]) -> None:
    names = set(zipfile.ZipFile(wheel[0]).namelist())
    modules = {f"{INSTALLED_AS[folder]}/{path.relative_to(ROOT / folder).as_posix()}"
               for folder in INSTALLED_AS for path in (ROOT / folder).rglob("*.py") if "__pycache__" not in path.parts}
    assert "critmine/integrations/datatrove.py" in modules
    assert modules <= names, sorted(modules - names)


def test_wheel_ships_the_data_files(wheel: tuple[Path, str]) -> None:
    names = set(zipfile.ZipFile(wheel[0]).namelist())
    shipped = {name for name in names if not name.endswith(".py") and name.startswith("critmine/")}
    expected = {"critmine/static/label.html", "critmine/prompts/knowledge/criteria.jsonl"}
    expected |= {f"critmine/prompts/{p.name}" for p in (ROOT / "prompts").glob("*.j2")}
    assert expected <= shipped, sorted(expected - shipped)
    assert any(name.endswith(".dist-info/licenses/LICENSE") for name in names)


def test_setuptools_warns_of_nothing_to_be_dropped(wheel: tuple[Path, str]) -> None:
    # Data folders missing from `packages` and a `license` table build today, with warnings that later setuptools
    # will refuse them.
    assert "absent from setuptools' `packages` configuration" not in wheel[1]
    assert "deprecated" not in wheel[1].lower(), wheel[1][-2000:]
