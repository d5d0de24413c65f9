"""Fixtures and small node classes shared by the engine tests."""

from __future__ import annotations

import asyncio
import sqlite3
from typing import Any, Dict, List, Optional, Tuple

import pytest

from spark_core.graphs import Graph, GraphObserver, GraphState, RunInfo
from spark_core.nodes import ExecutionContext, Node


class Add(Node):
    """Adds ``amount`` to ``inputs['value']``."""

    def __init__(self, amount: int = 1, name: Optional[str] = None) -> None:
        super().__init__(name=name)
        self.amount = amount

    async def process(self, context: ExecutionContext) -> Dict[str, Any]:
        return {"value": context.inputs.content.get("value", 0) + self.amount}


class SyncAdd(Node):
    """Plain ``def`` version of :class:`Add`."""

    def __init__(self, amount: int = 1, name: Optional[str] = None) -> None:
        super().__init__(name=name)
        self.amount = amount

    def process(self, context: ExecutionContext) -> Dict[str, Any]:
        return {"value": context.inputs.content.get("value", 0) + self.amount}


class Recorder(GraphObserver):
    """Records every hook call as a tuple."""

    def __init__(self) -> None:
        self.calls: List[Tuple[Any, ...]] = []

    async def on_run_start(self, run: RunInfo) -> None:
        self.calls.append(("run_start", run.run_id))

    async def on_run_end(self, run: RunInfo, result: Any, error: Any) -> None:
        self.calls.append(
            ("run_end", result.status if result else type(error).__name__)
        )

    async def on_node_start(self, run: RunInfo, node: Node, context: Any) -> None:
        self.calls.append(("node_start", node.id))

    async def on_attempt_start(self, run: RunInfo, node: Node, context: Any) -> None:
        self.calls.append(("attempt_start", node.id, context.metadata["attempt"]))

    async def on_attempt_end(
        self, run: RunInfo, node: Node, context: Any, output: Any, error: Any
    ) -> None:
        self.calls.append(
            ("attempt_end", node.id, type(error).__name__ if error else None)
        )

    async def on_node_end(
        self, run: RunInfo, node: Node, context: Any, output: Any
    ) -> None:
        self.calls.append(("node_end", node.id))

    async def on_node_error(
        self, run: RunInfo, node: Node, context: Any, error: Any
    ) -> None:
        self.calls.append(("node_error", node.id, type(error).__name__))

    async def on_retry(
        self, run: RunInfo, node: Node, context: Any, error: Any, delay_s: float
    ) -> None:
        self.calls.append(("retry", node.id, delay_s))

    async def on_event(
        self, run: RunInfo, node: Node, name: str, data: Dict[str, Any]
    ) -> None:
        self.calls.append(("event", node.id, name, data))

    def names(self) -> List[str]:
        return [c[0] for c in self.calls]


class Overlap:
    """Counts how many tracked sections run at the same time (max concurrency)."""

    def __init__(self) -> None:
        self.current = 0
        self.peak = 0

    async def section(self, barrier: Optional[asyncio.Event] = None) -> None:
        self.current += 1
        self.peak = max(self.peak, self.current)
        await asyncio.sleep(0.01)
        self.current -= 1


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


class FailingCommit:
    """A connection whose next COMMIT fails (e.g. the disk is full)."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn
        self.fail_next_commit = True

    @property
    def in_transaction(self) -> bool:
        return self.conn.in_transaction

    def cursor(self) -> "FailingCommit":
        return self

    def execute(self, sql: str, params: Any = ()) -> Any:
        if sql == "COMMIT" and self.fail_next_commit:
            self.fail_next_commit = False
            raise sqlite3.OperationalError("database or disk is full")
        return self.conn.execute(sql, params)


def stored_run(graph: Graph, run_id: str) -> Dict[str, Any]:
    """Return the stored record of ``run_id`` (failing the test when it is missing)."""
    record = graph.state.backend.load_run(run_id)
    assert record is not None, f"run {run_id} not stored"
    return record


def gstate(context: ExecutionContext) -> GraphState:
    """Return the context's graph state (failing the test when the node runs alone)."""
    assert context.graph_state is not None
    return context.graph_state
