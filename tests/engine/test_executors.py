"""The executor seam: where a node's ``process`` runs."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import Any, Dict, List

import pytest

from spark_core import ExecutionContext, Graph, Node, NodeConfig, SQLiteStateBackend
from spark_core.errors import GraphDefinitionError, NodeExecutionError
from spark_core.nodes.capabilities import RetryCapability
from spark_core.nodes.executors import LocalExecutor, NodeExecutor


class Recording(NodeExecutor):
    """Runs ``process`` in this process and remembers which nodes it ran."""

    def __init__(self) -> None:
        self.ran: List[str] = []

    async def run(self, node: Node, context: ExecutionContext) -> Any:
        self.ran.append(node.id)
        return await LocalExecutor().run(node, context)


class Remote(NodeExecutor):
    """Stands for a worker elsewhere: computes from the inputs alone, sends writes back."""

    def __init__(self, fail_first: int = 0) -> None:
        self.fail_first = fail_first
        self.calls = 0

    async def run(self, node: Node, context: ExecutionContext) -> Any:
        self.calls += 1
        n = context.inputs.content.get("n", 0)
        # What the remote node wrote comes back and is applied inside the attempt.
        assert context.graph_state is not None
        await context.graph_state.update({f"attempt_{self.calls}": n})
        if self.calls <= self.fail_first:
            raise ConnectionError("worker lost")
        return {"n": n + 1}


class Inc(Node):
    async def process(self, context: ExecutionContext) -> Dict[str, Any]:
        return {"n": context.inputs.content.get("n", 0) + 1}


class SyncInc(Node):
    def process(self, context: ExecutionContext) -> Dict[str, Any]:
        return {
            "n": context.inputs.content.get("n", 0) + 1,
            "thread": threading.get_ident(),
        }


def test_a_graph_executor_runs_every_node() -> None:
    executor = Recording()
    a, b = Inc(name="a"), SyncInc(name="b")
    a >> b
    result = Graph(a, executor=executor).run_sync({"n": 1})
    assert executor.ran == ["a", "b"]
    assert result.content["n"] == 3


def test_a_nodes_executor_wins_over_the_graphs() -> None:
    graph_executor, node_executor = Recording(), Recording()
    a, b = Inc(name="a"), Inc(name="b", config=NodeConfig(executor=node_executor))
    a >> b
    Graph(a, executor=graph_executor).run_sync()
    assert graph_executor.ran == ["a"] and node_executor.ran == ["b"]


def test_a_node_run_alone_uses_its_executor() -> None:
    executor = Recording()
    node = Inc(name="alone", config=NodeConfig(executor=executor))
    assert asyncio.run(node.run({"n": 4})).content == {"n": 5}
    assert executor.ran == ["alone"]


def test_without_an_executor_a_plain_def_runs_in_a_worker_thread() -> None:
    result = Graph(SyncInc(name="s")).run_sync()
    assert result.content["thread"] != threading.get_ident()


def test_writes_an_executor_applies_are_the_attempts(tmp_path: Path) -> None:
    # The first attempt's write is undone before the retry; the step commits the second's.
    remote = Remote(fail_first=1)
    backend = SQLiteStateBackend(tmp_path / "s.db")
    node = Inc(name="r", config=NodeConfig(retry=RetryCapability(initial_delay=0)))
    graph = Graph(node, executor=remote, state_backend=backend)
    result = graph.run_sync({"n": 7})
    assert remote.calls == 2 and result.node_results["r"].attempts == 2
    assert result.content == {"n": 8}
    assert backend.load_state() == {"attempt_2": 7}


def test_an_executors_failure_is_the_nodes_and_its_writes_are_dropped(
    tmp_path: Path,
) -> None:
    backend = SQLiteStateBackend(tmp_path / "s.db")
    graph = Graph(Inc(name="r"), executor=Remote(fail_first=5), state_backend=backend)
    with pytest.raises(NodeExecutionError) as info:
        graph.run_sync({"n": 1})
    assert info.value.node_id == "r" and isinstance(info.value.cause, ConnectionError)
    assert backend.load_state() == {}


def test_an_executor_must_be_a_node_executor() -> None:
    with pytest.raises(GraphDefinitionError, match="executor"):
        Graph(Inc(), executor=object())  # type: ignore[arg-type]
    with pytest.raises(GraphDefinitionError, match="executor"):
        NodeConfig(executor=lambda node, ctx: None)  # type: ignore[arg-type]


def test_the_base_executor_must_be_implemented() -> None:
    with pytest.raises(NotImplementedError):
        asyncio.run(
            NodeExecutor().run(Inc(), ExecutionContext.__new__(ExecutionContext))
        )
