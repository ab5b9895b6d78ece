"""The layout's rules, read from the code's own imports (every import, lazy ones included).

- no import cycle between the parts of `service/` (a part is a sub-package or a top-level
  module), so each part can be read, tested and replaced from the ones below it;
- `schemas/` imports nothing of `service/`, and `service/` nothing of `workers/`;
- provider adapters (`llm/`, `embeddings/`, `store/`) import no use-case code;
- importing any module of `workers/` does not load the query path.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("service", "schemas", "workers")
ADAPTERS = ("service.llm", "service.embeddings", "service.store")
# What an adapter may use besides other adapters: the wire contract, configuration and the
# shared helpers for tokens, upstream calls and stopping tasks.
ADAPTER_MAY_USE = {"schemas", "service.config", "service.pricing", "service.tokens"}
ADAPTER_MAY_USE |= {"service.cancelling", "service.upstream", *ADAPTERS}
QUERY_PATH = ("service.query", "service.llm", "service.streams", "service.routes", "service.app")


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found |= {f"{node.module}.{alias.name}" for alias in node.names}
    return {name for name in found if name.split(".")[0] in PACKAGES}


def part(module: str) -> str:
    """`service.catalog.base` -> `service.catalog`; `service.config` -> `service.config`."""
    pieces = module.split(".")
    if pieces[0] != "service" or len(pieces) == 1:
        return pieces[0]
    return ".".join(pieces[:2])


def known_modules() -> dict[str, Path]:
    files = [p for pkg in PACKAGES for p in (ROOT / pkg).rglob("*.py")]
    return {module_name(p): p for p in files}


def graph() -> dict[str, set[str]]:
    """Part -> the parts it imports (imports of names inside a module resolve to the module)."""
    modules = known_modules()
    edges: dict[str, set[str]] = defaultdict(set)
    for name, path in modules.items():
        for target in imports_of(path):
            while target not in modules and "." in target:
                target = target.rsplit(".", 1)[0]  # `from service.store import base`
            if part(target) != part(name):
                edges[part(name)].add(part(target))
    return edges


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one part (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in edges.get(v, ()):
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

    for v in sorted(set(edges) | {w for ws in edges.values() for w in ws}):
        if v not in index:
            visit(v)
    return found


def test_no_cycle_between_the_parts_of_service() -> None:
    edges = {a: {b for b in bs if b.startswith("service")} for a, bs in graph().items()}
    assert cycles(edges) == []


def test_the_graph_reader_finds_a_cycle() -> None:
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_imports_run_one_way_between_packages() -> None:
    edges = graph()
    assert not {p for p in edges.get("schemas", set()) if p.startswith("service")}
    assert not [a for a, bs in edges.items() if a.startswith("service") and "workers" in bs]


@pytest.mark.parametrize("adapter", ADAPTERS)
def test_provider_adapters_import_no_use_case_code(adapter: str) -> None:
    allowed = {p for p in ADAPTER_MAY_USE}
    used = graph().get(adapter, set())
    assert used <= allowed, f"{adapter} imports {sorted(used - allowed)}"


def test_the_parsers_import_nothing_of_the_service_but_themselves() -> None:
    """They run in a child process: they must not drag the service in (nor depend on it)."""
    used = graph().get("service.parsing", set())
    assert {p for p in used if p.startswith("service")} == set()


def loaded_by(module: str) -> list[str]:
    """The `service` modules a fresh interpreter has loaded after importing `module`."""
    code = (
        f"import sys, {module}\n"
        "print('\\n'.join(m for m in sys.modules if m.startswith('service')))"
    )
    run = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert run.returncode == 0, run.stderr
    return run.stdout.split()


@pytest.mark.parametrize("module", sorted(m for m in known_modules() if m.startswith("workers")))
def test_importing_a_worker_module_does_not_load_the_query_path(module: str) -> None:
    assert not [m for m in loaded_by(module) if m.startswith(QUERY_PATH)]


def test_the_probe_sees_the_query_path_where_it_is_loaded() -> None:
    assert [m for m in loaded_by("service.app") if m.startswith("service.query")]
