"""Nodes and their execution context (``from spark_core.nodes import Node``)."""

from __future__ import annotations

from spark_core.nodes.base import JoinNode, Node, NodeConfig, NodeLike, NodeResult
from spark_core.nodes.context import ExecutionContext, Inputs, NodeState

__all__ = [
    "Node",
    "NodeConfig",
    "NodeResult",
    "NodeLike",
    "JoinNode",
    "ExecutionContext",
    "Inputs",
    "NodeState",
]
