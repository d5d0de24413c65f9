"""RemoteFlowNode: a flow on any Spine used as a node of a local graph."""

from __future__ import annotations

import asyncio
import queue
import threading
from typing import Any, List

import pytest

from ai_spine.exceptions import ExecutionError, FlowNotFoundError, ValidationError
from ai_spine.local import LocalSpine
from ai_spine.local_async import AsyncLocalSpine
from ai_spine.nodes import LocalAgentNode, RemoteFlowNode
from ai_spine.protocol import AsyncSpine, Spine
from spark_core.errors import NodeExecutionError, NodeTimeoutError
from spark_core.graphs import Graph
from spark_core.nodes import ExecutionContext, Node, NodeConfig
from spark_core.nodes.capabilities import RetryCapability, TimeoutCapability
from tests.local.async_bridge import METHODS
from tests.local.flows import Hooks


class Prepare(Node):
    async def process(self, context: ExecutionContext) -> Any:
        return {"text": context.inputs.content["name"]}


class Report(Node):
    async def process(self, context: ExecutionContext) -> Any:
        # The remote execution's output_data: keyed by the flow's exit node.
        return {"report": f"got {context.inputs.content['exclaim']['text']}"}


def test_a_remote_flow_runs_as_a_node(spine: Spine) -> None:
    start = Prepare("prepare")
    start >> RemoteFlowNode("shout", client=spine, interval=0.01) >> Report("report")
    result = Graph(start).run_sync({"name": "ada"})
    assert result.status == "completed"
    assert result.outputs["remote:shout"] == {"exclaim": {"text": "ADA!"}}
    assert result.content == {"report": "got ADA!"}


def test_remote_failures_fail_the_node(spine: Spine) -> None:
    graph = Graph(RemoteFlowNode("fail", client=spine, name="call", interval=0.01))
    with pytest.raises(NodeExecutionError) as info:
        graph.run_sync({})
    assert info.value.node_id == "call"
    assert isinstance(info.value.cause, ExecutionError)
    assert "boom" in str(info.value)
    with pytest.raises(NodeExecutionError) as missing:
        Graph(RemoteFlowNode("ghost", client=spine, interval=0.01)).run_sync({})
    assert isinstance(missing.value.cause, FlowNotFoundError)


def test_a_timeout_capability_cancels_each_remote_attempt(
    spine: Spine, hooks: Hooks
) -> None:
    config = NodeConfig(
        timeout=TimeoutCapability(timeout_seconds=0.3),
        retry=RetryCapability(max_retries=1, initial_delay=0),
    )
    node = RemoteFlowNode("block", client=spine, interval=0.01, config=config)
    with pytest.raises(NodeTimeoutError) as info:
        Graph(node).run_sync(hooks.input)  # the remote run blocks until released
    assert info.value.node_id == node.id
    assert hooks.cancelled.wait(10), "the remote graph was not cancelled"
    # Two attempts, two remote executions, neither left running.
    latest = spine.list_executions(limit=2)
    assert [(e["flow_id"], e["status"]) for e in latest] == [("block", "cancelled")] * 2


class Flaky(Node):
    """Fails on its first run in this process, succeeds after."""

    calls = 0

    async def process(self, context: ExecutionContext) -> Any:
        Flaky.calls += 1
        if Flaky.calls == 1:
            raise RuntimeError("first call fails")
        return {"calls": Flaky.calls}


def test_the_node_retry_capability_retries_the_remote_flow() -> None:
    Flaky.calls = 0
    with LocalSpine({"flaky": lambda: Graph(Flaky("flaky"))}) as remote:
        retry = NodeConfig(retry=RetryCapability(max_retries=2, initial_delay=0))
        node = RemoteFlowNode("flaky", client=remote, config=retry)
        result = Graph(node).run_sync({})
        assert result.content == {"flaky": {"calls": 2}}
        assert result.node_results[node.id].attempts == 2
        statuses = sorted(e["status"] for e in remote.list_executions())
        assert statuses == ["completed", "failed"]


def test_cancelling_the_local_run_cancels_the_remote_execution(
    local_spine: LocalSpine, hooks: Hooks
) -> None:
    graph = Graph(RemoteFlowNode("block", client=local_spine))

    async def scenario() -> None:
        task = asyncio.ensure_future(graph.run({}))
        while not hooks.started.is_set():
            await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(scenario())
    assert hooks.cancelled.wait(10)
    assert [e["status"] for e in local_spine.list_executions()] == ["cancelled"]


def test_the_node_checks_its_arguments() -> None:
    with pytest.raises(ValidationError):
        RemoteFlowNode("", client=LocalSpine())
    with pytest.raises(ValidationError, match="client must be"):
        RemoteFlowNode("echo", client=object())  # type: ignore[arg-type]


def test_a_registered_agent_is_usable_inside_a_flow() -> None:
    with LocalSpine() as spine:
        spine.create_agent(
            {
                "agent_id": "greeter",
                "name": "Greeter",
                "handler": lambda data: {"greeting": f"hello {data['text']}"},
            }
        )
        start = Prepare("prepare")
        start >> LocalAgentNode("greeter", spine)
        spine.register_flow("greet", lambda: Graph(start))
        done = spine.wait_for_execution(
            spine.execute_flow("greet", {"name": "ada"})["execution_id"], 10
        )
        assert done["result"] == {"greeting": "hello ada"}
        spine.delete_agent("greeter")
        with pytest.raises(ExecutionError, match="Agent 'greeter' not found"):
            spine.wait_for_execution(
                spine.execute_flow("greet", {"name": "bo"})["execution_id"], 10
            )


class SlowToStart(LocalSpine):
    """A Spine whose execute_flow answers only when told (a slow server)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.in_execute = threading.Event()
        self.answer = threading.Event()
        self.cancelled: "queue.Queue[str]" = queue.Queue()

    def execute_flow(self, *args: Any, **kwargs: Any) -> Any:
        self.in_execute.set()
        self.answer.wait(10)
        return super().execute_flow(*args, **kwargs)

    def cancel_execution(self, execution_id: str) -> Any:
        try:
            return super().cancel_execution(execution_id)
        finally:
            self.cancelled.put(execution_id)


def test_cancelled_while_starting_the_remote_execution_is_cancelled_once_started(
    hooks: Hooks,
) -> None:
    from tests.local.flows import make_flows

    with SlowToStart(make_flows(hooks)) as remote:
        graph = Graph(RemoteFlowNode("block", client=remote))

        async def scenario() -> None:
            task = asyncio.ensure_future(graph.run({}))
            while not remote.in_execute.is_set():
                await asyncio.sleep(0.01)
            task.cancel()  # e.g. a node timeout while the server is slow to answer
            with pytest.raises(asyncio.CancelledError):
                await task
            remote.answer.set()

        asyncio.run(scenario())
        execution_id = remote.cancelled.get(timeout=10)
        assert remote.get_execution(execution_id)["status"] == "cancelled"


def test_the_node_checks_its_numbers_when_built() -> None:
    with LocalSpine() as spine:
        with pytest.raises(ValidationError, match="wait_timeout"):
            RemoteFlowNode("echo", client=spine, wait_timeout=0)
        with pytest.raises(ValidationError, match="interval"):
            RemoteFlowNode("echo", client=spine, interval=-1)
        with pytest.raises(ValidationError, match="metadata"):
            RemoteFlowNode("echo", client=spine, metadata={"x": object()})


class Recording:
    """Wraps an AsyncSpine and notes the thread each execute_flow runs in."""

    def __init__(self, spine: AsyncSpine) -> None:
        self.spine = spine
        self.threads: List[threading.Thread] = []
        for name in METHODS:  # on the instance, where the protocol's check looks
            if name != "execute_flow":
                setattr(self, name, getattr(spine, name))

    async def execute_flow(self, *args: Any, **kwargs: Any) -> Any:
        self.threads.append(threading.current_thread())
        return await self.spine.execute_flow(*args, **kwargs)


async def run_and_close(graph: Graph, spine: AsyncSpine, inputs: Any) -> Any:
    """Run a graph in this loop, then close the async client (in the loop it used)."""
    try:
        return await graph.run(inputs)
    finally:
        closer = getattr(spine, "close", None)
        if closer is not None:
            await closer()


def test_an_async_client_is_awaited_in_the_graphs_own_loop(
    async_spine: AsyncSpine,
) -> None:
    spine = Recording(async_spine)
    start = Prepare("prepare")
    node = RemoteFlowNode("shout", client=spine, interval=0.01)  # type: ignore[arg-type]
    start >> node >> Report("report")
    assert node.is_async
    result = asyncio.run(run_and_close(Graph(start), async_spine, {"name": "ada"}))
    assert result.outputs["remote:shout"] == {"exclaim": {"text": "ADA!"}}
    assert result.content == {"report": "got ADA!"}
    assert spine.threads == [threading.main_thread()]  # no worker thread in between


def test_async_remote_failures_fail_the_node(async_spine: AsyncSpine) -> None:
    async def scenario() -> None:
        failing = Graph(RemoteFlowNode("fail", client=async_spine, interval=0.01))
        with pytest.raises(NodeExecutionError) as info:
            await failing.run({})
        assert isinstance(info.value.cause, ExecutionError)
        ghost = Graph(RemoteFlowNode("ghost", client=async_spine, interval=0.01))
        with pytest.raises(NodeExecutionError) as missing:
            await run_and_close(ghost, async_spine, {})
        assert isinstance(missing.value.cause, FlowNotFoundError)

    asyncio.run(scenario())


def test_a_timeout_capability_cancels_each_async_remote_attempt(
    async_spine: AsyncSpine, hooks: Hooks
) -> None:
    config = NodeConfig(
        timeout=TimeoutCapability(timeout_seconds=0.3),
        retry=RetryCapability(max_retries=1, initial_delay=0),
    )
    node = RemoteFlowNode("block", client=async_spine, interval=0.01, config=config)

    async def scenario() -> Any:
        with pytest.raises(NodeTimeoutError):
            await Graph(node).run(hooks.input)
        try:
            return await async_spine.list_executions(limit=2)
        finally:
            closer = getattr(async_spine, "close", None)
            if closer is not None:
                await closer()

    latest = asyncio.run(scenario())
    assert hooks.cancelled.wait(10), "the remote graph was not cancelled"
    assert [(e["flow_id"], e["status"]) for e in latest] == [("block", "cancelled")] * 2


def test_an_execution_started_while_the_node_was_cancelled_is_cancelled(
    local_spine: LocalSpine, hooks: Hooks
) -> None:
    class SlowStart(AsyncLocalSpine):
        """Its execute_flow answers only after the node's task was cancelled."""

        async def execute_flow(self, *args: Any, **kwargs: Any) -> Any:
            await asyncio.sleep(0.2)
            return await super().execute_flow(*args, **kwargs)

    graph = Graph(RemoteFlowNode("block", client=SlowStart(local_spine)))

    async def scenario() -> None:
        task = asyncio.ensure_future(graph.run({}))
        await asyncio.sleep(0.05)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        for _ in range(500):  # the start, then its cancel, finish in this loop
            runs = local_spine.list_executions()
            if runs and runs[0]["status"] == "cancelled":
                break
            await asyncio.sleep(0.01)

    asyncio.run(scenario())
    assert [e["status"] for e in local_spine.list_executions()] == ["cancelled"]
