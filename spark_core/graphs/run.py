"""The bookkeeping of one run: its frontier, join buffers, outputs and node results.

:class:`Run` is what the scheduler updates step by step, what a run record is saved from
and rebuilt into (:func:`run_from_record`, to resume), and what a checkpoint is made of.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any, Dict, List, Optional, Tuple

from spark_core.errors import GraphDefinitionError
from spark_core.graphs.backends import RunRecord
from spark_core.graphs.observers import NodeRunInfo, RunInfo, RunResult

if TYPE_CHECKING:  # pragma: no cover
    from spark_core.graphs.graph import Graph

# A frontier entry: a node waiting to run, with its inputs (plain tuples: one per step).
Pending = Tuple[str, Any]


class Position:
    """Where a run stands as a durable backend last stored it (updated at every commit).

    Attributes:
        frontier: The stored frontier (``[node_id, inputs]`` lists).
        joins: The stored join buffers.
        step: The stored step count, or ``None`` while nothing was stored.
        last_node: The stored result node.
    """

    __slots__ = ("frontier", "joins", "step", "last_node")

    def __init__(self) -> None:
        self.frontier: List[Any] = []
        self.joins: Dict[str, Any] = {}
        self.step: Optional[int] = None
        self.last_node: Optional[str] = None


class Run:
    """The bookkeeping of one run (or resumption): frontier, joins, outputs, results.

    Attributes:
        info: The run as observers see it.
        pending: Sequence number -> frontier entry (insertion order is frontier order).
        joins: Join node id -> rounds of ``{parent id: output}`` waiting to run.
        outputs: Node id -> its last output.
        node_results: Node id -> what happened to it (its last execution).
        last_node: The end node whose output is the result so far.
        step: Node executions completed (over all resumptions).
        committed: The position a durable backend last stored (the run record is saved
            with it, so it never points past what was committed; ``step`` is ``None``
            while nothing is stored, and always with a backend that is not durable).
    """

    __slots__ = (
        "info",
        "pending",
        "seq",
        "joins",
        "outputs",
        "node_results",
        "last_node",
        "step",
        "committed",
        "joins_dirty",
    )

    def __init__(self, info: RunInfo) -> None:
        self.info = info
        self.pending: Dict[int, Pending] = {}
        self.seq = 0
        self.joins: Dict[str, List[Dict[str, Any]]] = {}
        self.outputs: Dict[str, Any] = {}
        self.node_results: Dict[str, NodeRunInfo] = {}
        self.last_node: Optional[str] = None
        self.step = 0
        self.committed = Position()
        self.joins_dirty = False  # join buffers changed since the last commit

    def add(self, node_id: str, inputs: Any) -> int:
        """Add a frontier entry; return its sequence number."""
        self.seq += 1
        self.pending[self.seq] = (node_id, inputs)
        return self.seq

    def frontier(self) -> List[Any]:
        """The frontier as stored: ``[node_id, inputs]`` lists."""
        return [[node_id, inputs] for node_id, inputs in self.pending.values()]

    def stored(self, frontier: List[Any], joins_changed: bool = True) -> None:
        """Remember the position a durable backend now holds (see ``committed``)."""
        stored = self.committed
        if joins_changed or stored.step is None:
            stored.joins = {
                join_id: [dict(r) for r in rounds]
                for join_id, rounds in self.joins.items()
            }
        stored.frontier, stored.step, stored.last_node = (
            frontier,
            self.step,
            self.last_node,
        )

    def record(
        self, graph_id: str, status: str, error: Optional[BaseException] = None
    ) -> RunRecord:
        """The run record to save now (without ``outputs``)."""
        return RunRecord(
            run_id=self.info.run_id,
            graph_id=graph_id,
            status=status,
            inputs=self.info.inputs,
            frontier=self.frontier(),
            joins=self.joins,
            step=self.step,
            last_node=self.last_node,
            error=f"{type(error).__name__}: {error}" if error is not None else None,
        )

    def result(self, status: str) -> RunResult:
        """The run's result with ``status``."""
        last = self.last_node
        return RunResult(
            run_id=self.info.run_id,
            status=status,
            content=self.outputs.get(last) if last is not None else None,
            outputs=dict(self.outputs),
            node_results=dict(self.node_results),
            steps=self.step,
        )


def run_from_record(graph: "Graph", record: RunRecord) -> Run:
    """Rebuild a stored run's bookkeeping (to resume it).

    Args:
        graph: The graph it runs on.
        record: The stored record (or a checkpoint's fields).

    Returns:
        The run, marked as resumed.

    Raises:
        GraphDefinitionError: The record names a node the graph does not have.
    """
    info = RunInfo(
        run_id=record["run_id"],
        graph=graph,
        started_at=time.time(),
        step=int(record.get("step") or 0),
        inputs=record.get("inputs"),
        resumed=True,
    )
    run = Run(info)
    for node_id, inputs in record.get("frontier") or []:
        require_node(graph, node_id)
        run.add(node_id, inputs)
    for join_id in record.get("joins") or {}:
        require_node(graph, join_id)
    run.joins = {k: list(v) for k, v in (record.get("joins") or {}).items()}
    run.outputs = dict(record.get("outputs") or {})
    run.last_node = record.get("last_node")
    run.step = info.step
    return run


def require_node(graph: "Graph", node_id: Any) -> None:
    """Refuse a stored node id the graph does not have.

    Args:
        graph: The graph.
        node_id: The id.

    Raises:
        GraphDefinitionError: The graph has no such node.
    """
    if node_id not in graph.nodes:
        raise GraphDefinitionError(
            f"the stored run refers to node {node_id!r}, which this graph does not have"
        )


__all__ = ["Run", "Position", "Pending", "run_from_record", "require_node"]
