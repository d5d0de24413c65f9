"""User code that ``mypy --strict`` must accept (checked by test_typing.py, never run)."""

from __future__ import annotations

from typing import Any, Dict, List

from spark_core.graphs import Graph
from spark_core.nodes import ExecutionContext, JoinNode, Node


class Step(Node):
    async def process(self, context: ExecutionContext) -> Dict[str, Any]:
        return {}


class Helper:
    """Stands for a node, as an ``Agent`` does (it has ``as_node()``)."""

    def __init__(self) -> None:
        self.node = Step(name="helper")

    def as_node(self) -> Node:
        return self.node

    def __rshift__(self, other: Any) -> Any:
        return self.node >> other


def build() -> List[Graph]:
    a, b, c, helper = Step(name="a"), Step(name="b"), Step(name="c"), Helper()
    a >> b >> c
    c >> helper >> Step(name="d")
    a.on(branch="x") >> helper
    join = JoinNode(name="j")
    [b, c] >> join
    a >> [b, c]
    return [Graph(a), Graph(helper), Graph(start=helper)]
