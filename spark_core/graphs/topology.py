"""A graph's shape: its nodes found from the start node, their ids, edges and routes."""

from __future__ import annotations

from collections import deque
from typing import Any, Callable, Deque, Dict, List, Tuple

from spark_core.errors import GraphDefinitionError
from spark_core.nodes.base import Node
from spark_core.nodes.edges import Edge

Router = Callable[
    [Any], List[Node]
]  # a node's output -> targets of the edges that fire


class Topology:
    """The nodes reachable from ``start`` by following edges, and how outputs travel.

    Building it settles the ids of unnamed nodes (``ClassName_2``, ... in discovery order)
    and compiles every node's edge conditions into its router.

    Attributes:
        nodes: Node id -> node, breadth-first from the start node (graph order).
        edges: Every edge, in discovery order.
        parents: Node id -> ids of the nodes with an edge to it (a join waits for each).
        routes: Node id -> its router.
        rank: Node id -> its position in graph order (the result is the latest end node's).
    """

    __slots__ = ("nodes", "edges", "parents", "routes", "rank")

    def __init__(self, start: Node) -> None:
        """Discover the graph from ``start``.

        Args:
            start: The start node.

        Raises:
            GraphDefinitionError: A node skipped ``Node.__init__`` or two share an id.
        """
        self.nodes: Dict[str, Node] = {}
        self.edges: List[Edge] = []
        self.parents: Dict[str, List[str]] = {}
        self.routes: Dict[str, Router] = {}
        order = _reachable(start)
        counts: Dict[str, int] = {}
        for node in order:
            if node._auto_id:
                base = node.name
                counts[base] = counts.get(base, 0) + 1
                node._id = base if counts[base] == 1 else f"{base}_{counts[base]}"
        for node in order:
            if node.id in self.nodes:
                raise GraphDefinitionError(
                    f"two different nodes have the id {node.id!r}: give them distinct names"
                )
            self.nodes[node.id] = node
        for node in order:
            links = []
            for target, kind, value in node._links:
                edge = Edge(node.id, target.id, kind, value)
                self.edges.append(edge)
                links.append((edge, target))
                parents = self.parents.setdefault(target.id, [])
                if node.id not in parents:
                    parents.append(node.id)
            self.routes[node.id] = _router(links)
        self.rank = {node_id: i for i, node_id in enumerate(self.nodes)}


def _reachable(start: Node) -> List[Node]:
    """The nodes reachable from ``start``, breadth-first."""
    seen: Dict[int, Node] = {}
    order: List[Node] = []
    queue: Deque[Node] = deque([start])
    while queue:
        node = queue.popleft()
        if id(node) in seen:
            continue
        if not hasattr(node, "_links"):
            raise GraphDefinitionError(
                f"{type(node).__name__}.__init__ must call super().__init__()"
            )
        seen[id(node)] = node
        order.append(node)
        queue.extend(target for target, _, _ in node._links)
    return order


def _router(links: List[Tuple[Edge, Node]]) -> Router:
    """Return the function from a node's output to the targets of its edges that fire."""
    if all(edge.kind == "always" for edge, _ in links):  # no condition to check
        targets = [target for _, target in links]
        return lambda output: targets
    return lambda output: [target for edge, target in links if edge.matches(output)]


__all__ = ["Topology", "Router"]
