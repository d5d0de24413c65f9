"""The graph's lazy hooks into governance (tools, node policies) and telemetry."""

from __future__ import annotations

from typing import Any, Dict, List

import pytest

from spark_core.errors import RunStopped
from spark_core.graphs import Graph
from spark_core.nodes import ExecutionContext, Node


def add(a: int, b: int) -> int:
    """Add two numbers.

    Args:
        a: First.
        b: Second.
    """
    return a + b


class UsesTool(Node):
    async def process(self, context: ExecutionContext) -> Dict[str, Any]:
        return {"sum": await context.call_tool("add", a=2, b=3)}


def test_call_tool_goes_through_the_graph_tool_executor() -> None:
    graph = Graph(start=UsesTool(), tools=[add])
    assert graph.tool_executor is graph.tool_executor  # built once, lazily
    assert graph.run_sync().content == {"sum": 5}


def greet(name: str) -> str:
    """Greet someone.

    Args:
        name: Who to greet.
    """
    return f"hello {name}"


class GreetsByName(Node):
    async def process(self, context: ExecutionContext) -> Dict[str, Any]:
        return {"text": await context.call_tool("greet", name="ada")}


def test_a_tool_argument_may_be_called_name() -> None:
    assert Graph(start=GreetsByName(), tools=[greet]).run_sync().content == {
        "text": "hello ada"
    }


def test_a_graph_without_tools_has_no_executor() -> None:
    assert Graph(start=Node()).tool_executor is None


def test_policy_set_adds_a_node_policy_observer() -> None:
    from spark_core.governance.policy import PolicyEffect, PolicyRule, PolicySet

    ran: List[str] = []

    class Mark(Node):
        async def process(self, context: ExecutionContext) -> Dict[str, Any]:
            ran.append(self.id)
            return {}

    policy = PolicySet(
        "p",
        [
            PolicyRule(
                name="no-b",
                effect=PolicyEffect.DENY,
                actions=["node:execute"],
                resources=["node://b"],
            )
        ],
    )
    a = Mark(name="a")
    a >> Mark(name="b")
    graph = Graph(start=a, policy_set=policy)
    assert len(graph.observers) == 1
    with pytest.raises(RunStopped):  # PolicyViolationError is a RunStopped
        graph.run_sync()
    assert ran == ["a"]


def test_approvals_store_uses_the_graph_state() -> None:
    graph = Graph(start=Node())
    assert graph.approvals is graph.approvals


def test_telemetry_adds_its_observer() -> None:
    from spark_core.telemetry.manager import TelemetryManager

    graph = Graph(start=Node(), telemetry=TelemetryManager())
    assert type(graph.observers[0]).__name__ == "TelemetryObserver"
    assert graph.run_sync({"x": 1}).content == {"x": 1}


def test_mission_control_names_load_lazily_from_graphs() -> None:
    from spark_core.graphs import MissionControl, MissionPlan, PlanStep

    assert MissionControl.__module__ == "spark_core.graphs.mission_control"
    assert MissionPlan and PlanStep
    with pytest.raises(AttributeError):
        from spark_core import graphs

        getattr(graphs, "NoSuchThing")


def test_import_spark_core_is_cheap() -> None:
    import subprocess
    import sys

    code = (
        "import sys, spark_core; "
        "print(spark_core.SparkError.__name__, 'spark_core.graphs' in sys.modules)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert out.stdout.split() == ["SparkError", "False"]
