"""Graphs, nodes, tools and simulation handlers the spec tests import by reference."""

from __future__ import annotations

from typing import Any, Dict, List

from spark_core.graphs import Graph
from spark_core.nodes import ExecutionContext, Node, NodeConfig
from spark_core.nodes.capabilities import RetryCapability
from spark_core.spec.builtin_nodes import MergeNode, TemplateNode, ToolCallNode

#: Arguments every handler call received (tests clear it).
HANDLER_CALLS: List[Dict[str, Any]] = []


class Doubler(Node):
    """Doubles ``value``; a custom class whose constructor does not take ``name``."""

    def __init__(self, factor: int = 2) -> None:
        super().__init__()
        self.factor = factor

    def spec_params(self) -> Dict[str, Any]:
        return {"factor": self.factor}

    async def process(self, context: ExecutionContext) -> Dict[str, Any]:
        content = dict(context.inputs.content)
        content["value"] = content.get("value", 0) * self.factor
        return content


class NotANode:
    """Something that is not a Node (the loader must refuse it)."""


def search(query: str) -> Dict[str, Any]:
    """Pretend to search (the "real" tool).

    Args:
        query: What to look for.
    """
    return {"hits": len(query), "real": True}


def fake_search(**arguments: Any) -> Dict[str, Any]:
    """Simulation handler for ``search``."""
    HANDLER_CALLS.append(arguments)
    return {"hits": 42, "simulated_query": arguments.get("query")}


def build_graph() -> Graph:
    """A graph of built-in and custom nodes with a conditional edge and a tool."""
    greet = TemplateNode(name="greet", template="query {topic}", output_key="query")
    find = ToolCallNode(
        name="find",
        tool="search",
        input_keys=["query"],
        config=NodeConfig(retry=RetryCapability(max_retries=2, initial_delay=0.0)),
    )
    double = Doubler(factor=3)  # id "Doubler" (its class name)
    done = MergeNode(name="done", values={"done": True})
    greet >> find
    find.on(expr="$.outputs.result.hits > 0") >> double
    double >> done
    return Graph(greet, tools=[search], graph_id="sample")


def not_a_graph() -> int:
    """A factory returning something that is not a graph."""
    return 7


def broken_factory() -> Graph:
    """A graph factory that fails (export must report it on one line)."""
    raise RuntimeError("no config")
