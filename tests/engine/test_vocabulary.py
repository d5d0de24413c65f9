"""The everyday names from ``spark_core``, and plug-ins wired from outside the core."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any, Iterator

import pytest

import spark_core
from spark_core import errors, utils
from spark_core.graphs import backends, graph, observers, plugins, state
from spark_core.nodes import base, context

EVERYDAY = {
    "Graph": graph.Graph,
    "Node": base.Node,
    "JoinNode": base.JoinNode,
    "NodeConfig": base.NodeConfig,
    "ExecutionContext": context.ExecutionContext,
    "GraphState": state.GraphState,
    "SQLiteStateBackend": backends.SQLiteStateBackend,
    "RunResult": observers.RunResult,
    "GraphObserver": observers.GraphObserver,
    "SparkError": errors.SparkError,
    "NodeExecutionError": errors.NodeExecutionError,
    "arun": utils.arun,
}


def _python(code: str) -> Any:
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    return json.loads(out.stdout)


def test_the_everyday_names_are_the_subpackages_objects() -> None:
    for name, value in EVERYDAY.items():
        assert getattr(spark_core, name) is value, name
    assert set(EVERYDAY) <= set(spark_core.__all__) and set(EVERYDAY) <= set(
        dir(spark_core)
    )


def test_an_unknown_name_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="NoSuchThing"):
        spark_core.NoSuchThing  # type: ignore[attr-defined]  # noqa: B018


def test_import_spark_core_loads_nothing_until_a_name_is_used() -> None:
    loaded = _python(
        "import json, sys, spark_core\n"
        "def mods(): return sorted(m for m in sys.modules if m.startswith('spark_core.'))\n"
        "before = mods(); spark_core.Node; after = mods()\n"
        "print(json.dumps([before, after]))"
    )
    before, after = loaded
    assert before == []
    assert "spark_core.nodes.base" in after
    assert "spark_core.graphs.graph" not in after  # a Node needs no graph


def test_graph_plug_ins_load_from_outside_the_core_on_demand() -> None:
    # Nothing imports governance or telemetry before the graph asks for them.
    loaded = _python(
        "import json, sys\n"
        "from spark_core import Graph, Node\n"
        "g = Graph(Node(name='n'))\n"
        "plain = sorted(m for m in sys.modules if m.startswith(('spark_core.governance',"
        " 'spark_core.telemetry')))\n"
        "g = Graph(Node(name='n'), tools=[len], telemetry=True)\n"
        "print(json.dumps([plain, type(g.tool_executor).__module__,"
        " [type(o).__module__ for o in g.observers]]))"
    )
    plain, executor_module, observer_modules = loaded
    assert plain == []
    assert executor_module == "spark_core.governance.executor"
    assert observer_modules == ["spark_core.telemetry.instrument"]


@pytest.fixture
def registry() -> Iterator[None]:
    saved = dict(plugins._FACTORIES)
    yield
    plugins._FACTORIES.clear()
    plugins._FACTORIES.update(saved)


def test_a_registered_factory_builds_the_plug_in(registry: None) -> None:
    built = []

    class Watcher(observers.GraphObserver):
        def __init__(self, value: Any) -> None:
            built.append(value)

    plugins.register("telemetry", Watcher)
    g = graph.Graph(base.Node(name="n"), telemetry="mine")
    assert built == ["mine"] and isinstance(g.observers[0], Watcher)


def test_an_unknown_plug_in_is_a_lookup_error(registry: None) -> None:
    with pytest.raises(LookupError, match="nothing"):
        plugins.factory("nothing")
