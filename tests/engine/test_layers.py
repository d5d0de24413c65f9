"""spark_core's layers: the core imports no plug-in, and no import cycle joins subpackages.

Read from the source (every import statement, also those inside functions; not those under
``if TYPE_CHECKING:``), so an import hidden in a function counts like any other.
"""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Dict, Iterator, List, Set, Tuple

import spark_core

ROOT = Path(spark_core.__file__).parent

# The engine's core: the graph, scheduler, node runner, state and backends.
CORE = {"nodes", "graphs"}
# What plugs into it (through observers and spark_core.graphs.plugins).
PLUGIN_MODULES = (
    "spark_core.governance",
    "spark_core.telemetry",
    "spark_core.agents",
    "spark_core.models",
    "spark_core.spec",
    "spark_core.kit",
    "spark_core.cli",
    "spark_core.graphs.mission_control",
)
# Modules of the core that only re-export a plug-in under a seed's path.
ALIASES = {"spark_core.nodes.spec", "spark_core.nodes.serde"}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imports(path: Path) -> Iterator[str]:
    """Every spark_core module ``path`` imports (outside ``if TYPE_CHECKING:``)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    skipped: Set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.dump(node.test):
            skipped.update(id(child) for child in ast.walk(node))
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module]
            names += [f"{node.module}.{alias.name}" for alias in node.names]
        elif isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        else:
            continue
        for name in names:
            if name.split(".")[0] == "spark_core":
                yield name


def _edges() -> List[Tuple[str, str]]:
    """(importing module, imported name) for every import in spark_core."""
    return [
        (_module_name(path), name)
        for path in sorted(ROOT.rglob("*.py"))
        for name in _imports(path)
    ]


def _subpackage(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 2 or (ROOT / parts[-1]).is_dir() else ""


def _is_under(name: str, module: str) -> bool:
    return name == module or name.startswith(module + ".")


def _cycles(graph: Dict[str, Set[str]]) -> List[List[str]]:
    """The strongly connected components with more than one member (Tarjan)."""
    index: Dict[str, int] = {}
    low: Dict[str, int] = {}
    stack: List[str] = []
    found: List[List[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for target in graph.get(node, ()):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def _part(name: str) -> str:
    """The subpackage or top-level module of spark_core that ``name`` lies in, else ``""``."""
    parts = name.split(".")
    if len(parts) < 2:
        return ""
    found = (ROOT / parts[1]).is_dir() or (ROOT / f"{parts[1]}.py").is_file()
    return parts[1] if found else ""


def test_the_core_imports_no_plug_in() -> None:
    offending = [
        (module, name)
        for module, name in _edges()
        if _subpackage(module) in CORE
        and module not in ALIASES
        and not any(_is_under(module, plugin) for plugin in PLUGIN_MODULES)
        and any(_is_under(name, plugin) for plugin in PLUGIN_MODULES)
    ]
    assert offending == []


def test_no_import_cycle_joins_subpackages_or_top_level_modules() -> None:
    # Each subpackage (nodes, graphs, spec, kit, agents, ...) and each top-level module
    # (errors, expr, files, cli, ...) is one vertex; an import between two is an edge.
    graph: Dict[str, Set[str]] = {}
    for module, name in _edges():
        source, target = _part(module), _part(name)
        if module not in ALIASES and source and target and source != target:
            graph.setdefault(source, set()).add(target)
    assert {"nodes", "graphs", "spec", "kit", "agents", "expr"} <= set(graph)
    assert _cycles(graph) == []


def test_the_cycle_finder_finds_a_cycle() -> None:
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [
        ["a", "b", "c"]
    ]


def test_the_import_reader_sees_imports_inside_functions(tmp_path: Path) -> None:
    source = tmp_path / "probe.py"
    source.write_text(
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n    import spark_core.spec\n"
        "def f():\n    from spark_core.governance import tools\n",
        encoding="utf-8",
    )
    assert list(_imports(source)) == [
        "spark_core.governance",
        "spark_core.governance.tools",
    ]
