"""Graphs: chains, observers, conditional edges, fan-out, joins, loops, cancellation."""

from __future__ import annotations

import asyncio
import threading
from typing import Any, Dict, List, Optional

import pytest

from spark_core.errors import (
    EdgeConditionError,
    ExpressionError,
    GraphDefinitionError,
    MaxStepsExceededError,
    NodeExecutionError,
    RunStopped,
    SparkError,
)
from spark_core.graphs import Edge, Graph, GraphObserver, InMemoryStateBackend, RunInfo
from spark_core.nodes import ExecutionContext, JoinNode, Node, NodeConfig
from spark_core.nodes.capabilities import CircuitBreakerCapability, RetryCapability
from spark_core.utils import arun
from tests.engine.conftest import Add, Overlap, Recorder, SyncAdd, gstate, stored_run


class Emit(Node):
    """Returns a fixed dict."""

    def __init__(self, output: Dict[str, Any], name: str) -> None:
        super().__init__(name=name)
        self.output = output

    async def process(self, context: ExecutionContext) -> Dict[str, Any]:
        return dict(self.output)


class Tag(Node):
    """Returns its input plus ``{"seen": [..., name]}``."""

    async def process(self, context: ExecutionContext) -> Dict[str, Any]:
        content = dict(context.inputs.content)
        content["seen"] = list(content.get("seen", [])) + [self.id]
        return content


def test_seed_simple_linear_flow() -> None:
    class ProcessNode(Node):
        async def process(self, context: ExecutionContext) -> Dict[str, Any]:
            return {"data": [1, 2, 3]}

    class TransformNode(Node):
        async def process(self, context: ExecutionContext) -> Dict[str, Any]:
            return {"total": sum(context.inputs.content["data"])}

    node1 = ProcessNode()
    node2 = TransformNode()
    node1 >> node2
    graph = Graph(start=node1)

    async def main() -> Any:
        return await graph.run()

    result = arun(main())
    assert result.status == "completed"
    assert result.content == {"total": 6}
    assert result.outputs == {
        "ProcessNode": {"data": [1, 2, 3]},
        "TransformNode": {"total": 6},
    }
    assert result.node_results["TransformNode"].status == "completed"
    assert result.node_results["TransformNode"].attempts == 1
    assert result.node_results["TransformNode"].duration_s >= 0


def test_chain_operator_returns_the_right_side_and_mixes_sync_and_async() -> None:
    a, b, c = Add(1), SyncAdd(10), Add(100)
    assert (a >> b) is b
    a >> b >> c
    graph = Graph(start=a)
    assert list(graph.nodes) == ["Add", "SyncAdd", "Add_2"]
    assert [(e.source, e.target, e.kind) for e in graph.edges] == [
        ("Add", "SyncAdd", "always"),
        ("SyncAdd", "Add_2", "always"),
    ]
    assert graph.run_sync({"value": 0}).content == {"value": 111}


def test_duplicate_explicit_names_are_rejected() -> None:
    a, b = Add(name="x"), Add(name="x")
    a >> b
    with pytest.raises(GraphDefinitionError, match="'x'"):
        Graph(start=a)


def test_graph_rejects_bad_arguments() -> None:
    with pytest.raises(GraphDefinitionError):
        Graph(start="not a node")  # type: ignore[arg-type]
    with pytest.raises(GraphDefinitionError):
        Graph(start=Add(), max_steps=0)
    with pytest.raises(
        GraphDefinitionError, match="state_backend must be a StateBackend"
    ):
        Graph(start=Add(), state_backend="state.db")  # type: ignore[arg-type]
    with pytest.raises(GraphDefinitionError, match=r"tools\[1\] must be a Tool"):
        Graph(start=Add(), tools=[len, "write_file"])
    with pytest.raises(
        GraphDefinitionError, match=r"observers\[0\] must be a GraphObserver"
    ):
        Graph(start=Add(), observers=[print])  # type: ignore[list-item]


def test_failure_ends_run_with_node_execution_error_carrying_run_id() -> None:
    class Broken(Node):
        async def process(self, context: ExecutionContext) -> Dict[str, Any]:
            raise ValueError("bad value")

    a = Add()
    a >> Broken(name="broken") >> Add(name="never")
    graph = Graph(start=a)
    with pytest.raises(NodeExecutionError) as info:
        graph.run_sync({}, run_id="r1")
    assert info.value.node_id == "broken"
    assert info.value.run_id == "r1"
    assert isinstance(info.value.__cause__, ValueError)
    record = stored_run(graph, "r1")
    assert record["status"] == "failed"
    assert record["frontier"] == [["broken", {"value": 1}]]
    assert "bad value" in record["error"]


@pytest.mark.parametrize("error", [SystemExit(3), KeyboardInterrupt()])
def test_exit_and_interrupt_from_a_node_are_not_wrapped(error: BaseException) -> None:
    class Leave(Node):
        async def process(self, context: ExecutionContext) -> Dict[str, Any]:
            raise error

    graph = Graph(start=Leave(name="leave"))
    with pytest.raises(type(error)) as info:
        asyncio.run(graph.run(run_id="r1"))
    assert info.value is error
    if isinstance(error, KeyboardInterrupt):
        assert stored_run(graph, "r1")["status"] == "cancelled"


@pytest.mark.parametrize("retry", [False, True])
def test_a_failure_of_a_node_run_inside_a_node_names_the_outer_node(
    retry: bool,
) -> None:
    class Inner(Node):
        async def process(self, context: ExecutionContext) -> Dict[str, Any]:
            raise ValueError("inner broke")

    class Outer(Node):
        async def process(self, context: ExecutionContext) -> Dict[str, Any]:
            return (await Inner(name="inner").run({})).content  # type: ignore[no-any-return]

    config = NodeConfig(retry=RetryCapability(max_retries=0)) if retry else None
    with pytest.raises(NodeExecutionError) as info:
        Graph(start=Outer(name="outer", config=config)).run_sync()
    assert info.value.node_id == "outer"
    inner = info.value.__cause__
    assert isinstance(inner, NodeExecutionError) and inner.node_id == "inner"
    assert isinstance(inner.__cause__, ValueError)


def test_run_id_cannot_be_reused() -> None:
    graph = Graph(start=Add())
    graph.run_sync(run_id="same")
    with pytest.raises(SparkError, match="resume"):
        graph.run_sync(run_id="same")


def test_a_second_run_while_one_is_in_progress_is_refused() -> None:
    started = asyncio.Event()

    class Wait(Node):
        async def process(self, context: ExecutionContext) -> Dict[str, Any]:
            started.set()
            await asyncio.sleep(0.01)
            return {"done": True}

    graph = Graph(start=Wait(name="wait"))

    async def main() -> Any:
        first = asyncio.ensure_future(graph.run(run_id="first"))
        await started.wait()
        for second in (graph.run(run_id="second"), graph.resume("first")):
            with pytest.raises(SparkError, match="one run at a time"):
                await second
        return await first

    assert arun(main()).content == {"done": True}
    assert graph.state.backend.load_run("second") is None  # refused before anything
    assert graph.run_sync(run_id="third").status == "completed"  # one after the other


def test_a_run_holds_the_graph_until_its_on_run_end_hooks_returned() -> None:
    ending, release = asyncio.Event(), asyncio.Event()

    class SlowEnd(GraphObserver):
        async def on_run_end(self, run: RunInfo, result: Any, error: Any) -> None:
            if not ending.is_set():  # the first run's hook waits
                ending.set()
                await release.wait()

    class Write(Node):
        async def process(self, context: ExecutionContext) -> Dict[str, Any]:
            value = context.inputs.content["v"]
            await gstate(context).set("k", value)
            if value == 2:
                raise RuntimeError("boom")
            return {"v": value}

    graph = Graph(start=Write(name="w"), observers=[SlowEnd()])

    async def main() -> None:
        first = asyncio.ensure_future(graph.run({"v": 1}))
        await ending.wait()  # the first run is saved; its on_run_end is still running
        try:
            with pytest.raises(SparkError, match="one run at a time"):
                await graph.run({"v": 2})
        finally:
            release.set()
            await first

    arun(main())
    assert graph.state.get_sync("k") == 1
    with pytest.raises(NodeExecutionError, match="boom"):  # once settled, it may run
        graph.run_sync({"v": 2})
    assert graph.state.get_sync("k") == 1  # the failed node's write is dropped


def test_two_threads_cannot_both_start_a_run_of_one_graph() -> None:
    class Gate(InMemoryStateBackend):
        """Holds the first run inside its run-id check until told to go on."""

        def __init__(self) -> None:
            super().__init__()
            self.inside, self.go = threading.Event(), threading.Event()

        def load_run(self, run_id: str) -> Optional[Dict[str, Any]]:
            if run_id == "a":
                self.inside.set()
                self.go.wait(10)
            return super().load_run(run_id)

    backend = Gate()
    graph = Graph(start=Add(name="n"), state_backend=backend)
    results: List[Any] = []
    first = threading.Thread(target=lambda: results.append(graph.run_sync(run_id="a")))
    first.start()
    try:
        assert backend.inside.wait(10)
        with pytest.raises(SparkError, match="one run at a time"):
            graph.run_sync(run_id="b")
    finally:
        backend.go.set()
        first.join(10)
    assert [r.status for r in results] == ["completed"]
    assert backend.load_run("b") is None


def test_observers_see_every_hook_in_order(recorder: Recorder) -> None:
    a, b = Add(name="a"), Add(name="b")
    a >> b
    graph = Graph(start=a, observers=[recorder])
    graph.run_sync({"value": 1})
    assert recorder.names() == [
        "run_start",
        "node_start",
        "attempt_start",
        "attempt_end",
        "node_end",
        "node_start",
        "attempt_start",
        "attempt_end",
        "node_end",
        "run_end",
    ]
    assert recorder.calls[-1] == ("run_end", "completed")


def test_events_reach_observers(recorder: Recorder) -> None:
    class Spender(Node):
        def process(self, context: ExecutionContext) -> Dict[str, Any]:  # in a thread
            context.report_cost(0.25, tokens=100, source="gpt")
            return {}

    class Announcer(Node):
        async def process(self, context: ExecutionContext) -> Dict[str, Any]:
            await context.emit("progress", pct=50)
            return {}

    a = Spender(name="spend")
    a >> Announcer(name="announce")
    Graph(start=a, observers=[recorder]).run_sync()
    events = [c for c in recorder.calls if c[0] == "event"]
    assert events == [
        ("event", "spend", "cost", {"usd": 0.25, "tokens": 100, "source": "gpt"}),
        ("event", "announce", "progress", {"pct": 50}),
    ]


def test_observer_can_stop_the_run_before_a_node() -> None:
    ran: List[str] = []

    class Guard(GraphObserver):
        async def on_node_start(self, run: RunInfo, node: Node, context: Any) -> None:
            if node.id == "b":
                raise RunStopped("budget exhausted")

    class Mark(Node):
        async def process(self, context: ExecutionContext) -> Dict[str, Any]:
            ran.append(self.id)
            return {}

    a = Mark(name="a")
    a >> Mark(name="b")
    graph = Graph(start=a, observers=[Guard()])
    with pytest.raises(RunStopped, match="budget") as info:
        graph.run_sync(run_id="stop")
    assert type(info.value) is RunStopped  # not wrapped
    assert ran == ["a"]
    assert stored_run(graph, "stop")["status"] == "cancelled"


def test_observer_error_fails_the_node(recorder: Recorder) -> None:
    class Deny(GraphObserver):
        async def on_node_start(self, run: RunInfo, node: Node, context: Any) -> None:
            raise PermissionError("node:execute denied")

    graph = Graph(start=Add(name="a"), observers=[recorder, Deny()])
    with pytest.raises(NodeExecutionError) as info:
        graph.run_sync()
    assert isinstance(info.value.__cause__, PermissionError)
    assert ("node_error", "a", "NodeExecutionError") in recorder.calls


def test_retry_hooks(recorder: Recorder) -> None:
    from spark_core.nodes import NodeConfig
    from spark_core.nodes.capabilities import RetryCapability

    class Once(Node):
        failed = False

        async def process(self, context: ExecutionContext) -> Dict[str, Any]:
            if not Once.failed:
                Once.failed = True
                raise OSError("flaky network")
            return {}

    node = Once(
        config=NodeConfig(retry=RetryCapability(max_retries=1, initial_delay=0))
    )
    result = Graph(start=node, observers=[recorder]).run_sync()
    assert result.node_results["Once"].attempts == 2
    assert ("retry", "Once", 0) in recorder.calls
    assert ("attempt_end", "Once", "OSError") in recorder.calls


# ------------------------------------------------------------------ conditional edges
def test_branch_equals_edges() -> None:
    router = Emit({"branch": "B"}, "router")
    a, b = Tag(name="A"), Tag(name="B")
    router.on(branch="A") >> a
    router.on(branch="B") >> b
    result = Graph(start=router).run_sync()
    assert result.content == {"branch": "B", "seen": ["B"]}
    assert "A" not in result.outputs


def test_expression_edges() -> None:
    scorer = Emit({"score": 0.7}, "scorer")
    high, low = Tag(name="high"), Tag(name="low")
    scorer.on(expr="$.outputs.score > 0.5") >> high
    scorer.on(expr="$.outputs.score <= 0.5") >> low
    graph = Graph(start=scorer)
    assert graph.run_sync().content["seen"] == ["high"]
    assert graph.edges[0] == Edge("scorer", "high", "expr", "$.outputs.score > 0.5")


def test_callable_edges_and_keyword_equals() -> None:
    src = Emit({"ok": True, "status": "done"}, "src")
    yes, no, done = Tag(name="yes"), Tag(name="no"), Tag(name="done")
    src.on(lambda out: out["ok"]) >> yes
    src.on(when=lambda out: not out["ok"]) >> no
    src.on(status="done") >> done
    result = Graph(start=src).run_sync()
    assert set(result.outputs) == {"src", "yes", "done"}


def test_on_requires_exactly_one_condition() -> None:
    node = Add()
    with pytest.raises(GraphDefinitionError):
        node.on()
    with pytest.raises(GraphDefinitionError):
        node.on(expr="$.outputs.x", branch="a")
    with pytest.raises(ExpressionError):
        node.on(expr="__import__('os')")


def test_add_edge_takes_an_explicit_condition() -> None:
    src = Emit({"expr": 1, "when": "now", "score": 0.9}, "src")
    hit, miss, scored, always = (
        Tag(name=n) for n in ("hit", "miss", "scored", "always")
    )
    assert src.add_edge(hit, "equals", {"expr": 1, "when": "now"}) is hit
    src.add_edge(miss, "equals", {"expr": 2})
    src.add_edge(scored, "expr", "$.outputs.score > 0.5")
    src.add_edge(always)
    graph = Graph(start=src)
    assert graph.edges[0] == Edge("src", "hit", "equals", {"expr": 1, "when": "now"})
    assert set(graph.run_sync().outputs) == {"src", "hit", "scored", "always"}


def test_the_same_conditional_edge_twice_is_one_edge() -> None:
    src, dst = Emit({"branch": "x", "n": 2}, "src"), Tag(name="dst")
    src.on(branch="x") >> dst
    src.on(branch="x") >> dst
    src.on(expr="$.outputs.n > 1") >> dst
    src.on(expr="$.outputs.n > 1") >> dst
    src.add_edge(dst, "equals", {"branch": "x"})
    graph = Graph(start=src)
    assert len(graph.edges) == 2
    assert graph.run_sync().node_results["dst"].runs == 2  # once per distinct edge


def test_add_edge_rejects_conditions_that_do_not_fit_the_kind() -> None:
    node = Add()
    with pytest.raises(GraphDefinitionError, match="edge kind"):
        node.add_edge(Add(), "sometimes", None)
    with pytest.raises(GraphDefinitionError, match="'equals'"):
        node.add_edge(Add(), "equals", "x")
    with pytest.raises(GraphDefinitionError, match="'always'"):
        node.add_edge(Add(), "always", {"x": 1})
    with pytest.raises(GraphDefinitionError, match="callable"):
        node.add_edge(Add(), "callable", 3)
    with pytest.raises(ExpressionError):
        node.add_edge(Add(), "expr", "__import__('os')")
    with pytest.raises(GraphDefinitionError, match="Node"):
        node.add_edge("b", "always")  # type: ignore[arg-type]
    assert node.successors == []


def test_an_id_set_explicitly_is_kept_by_the_graph() -> None:
    first, second, third = Add(), Add(), Add()
    first.id = "custom"
    first >> second >> third
    assert list(Graph(start=first).nodes) == ["custom", "Add", "Add_2"]
    with pytest.raises(GraphDefinitionError, match="non-empty string"):
        first.id = ""


def test_graph_tools_are_read_only() -> None:
    def lookup(query: str) -> str:
        return query

    assert Graph(start=Add()).tools == ()
    graph = Graph(start=Add(), tools=[lookup])
    assert graph.tools == (lookup,)
    with pytest.raises(AttributeError):
        graph.tools = ()  # type: ignore[misc]


def test_failing_condition_is_the_source_nodes_failure() -> None:
    src = Emit({"ok": True}, "src")
    src.on(lambda out: out["missing"]) >> Tag(name="t")
    with pytest.raises(NodeExecutionError, match="src -> t") as info:
        Graph(start=src).run_sync()
    assert info.value.node_id == "src"
    assert isinstance(info.value.__cause__, EdgeConditionError)


def test_a_raising_condition_is_reported_as_the_nodes_failure(
    recorder: Recorder,
) -> None:
    breaker = CircuitBreakerCapability(failure_threshold=1, reset_timeout=3600)
    config = NodeConfig(retry=RetryCapability(max_retries=2), circuit_breaker=breaker)
    src = Emit({"ok": True}, "src")
    src.config = config
    src.on(lambda out: out["missing"]) >> Tag(name="t")
    with pytest.raises(NodeExecutionError, match="src -> t") as info:
        Graph(start=src, observers=[recorder]).run_sync()
    assert isinstance(info.value.__cause__, EdgeConditionError)
    node_calls = [c for c in recorder.calls if c[0] not in ("run_start", "run_end")]
    assert node_calls == [  # never reported done, not retried
        ("node_start", "src"),
        ("attempt_start", "src", 1),
        ("attempt_end", "src", "EdgeConditionError"),
        ("node_error", "src", "NodeExecutionError"),
    ]
    assert not breaker.allow()  # the breaker counted a failure


def test_an_approved_call_is_reused_when_a_condition_failed_its_node() -> None:
    from spark_core.governance import (
        ApprovalPendingError,
        PolicyEffect,
        PolicyRule,
        PolicySet,
    )

    sent: List[str] = []
    broken = {"on": True}

    def send(msg: str) -> str:
        """Send a message."""
        sent.append(msg)
        return "sent"

    def condition(output: Any) -> bool:
        if broken["on"]:
            raise KeyError("score")
        return True

    class Notify(Node):
        async def process(self, context: ExecutionContext) -> Dict[str, Any]:
            return {"reply": await context.call_tool("send", msg="hi")}

    notify = Notify(name="notify")
    notify.on(condition) >> Node(name="after")
    rule = PolicyRule(
        "ask", PolicyEffect.REQUIRE_APPROVAL, ["tool:execute"], ["tool://send"]
    )
    graph = Graph(start=notify, tools=[send], policy_set=PolicySet("p", [rule]))
    with pytest.raises(ApprovalPendingError) as pending:
        graph.run_sync(run_id="r")
    arun(graph.approvals.resolve(pending.value.request_id, "approved"))
    with pytest.raises(NodeExecutionError, match="notify -> after"):
        graph.resume_sync("r")  # the call is made, then the condition fails the node
    broken["on"] = False
    result = graph.resume_sync(
        "r"
    )  # the node runs again: the approved result is reused
    assert result.outputs["notify"] == {"reply": "sent"}
    assert sent == ["hi"]


def test_bounded_loop() -> None:
    class Inc(Node):
        async def process(self, context: ExecutionContext) -> Dict[str, Any]:
            return {"n": context.inputs.content.get("n", 0) + 1}

    inc, out = Inc(name="inc"), Tag(name="out")
    inc.on(expr="$.outputs.n < 5") >> inc
    inc.on(expr="$.outputs.n >= 5") >> out
    result = Graph(start=inc).run_sync()
    assert result.content == {"n": 5, "seen": ["out"]}
    assert result.node_results["inc"].runs == 5
    assert result.steps == 6


def test_unbounded_loop_hits_max_steps() -> None:
    spin = Add(name="spin")
    spin >> spin
    graph = Graph(start=spin, max_steps=25)
    with pytest.raises(MaxStepsExceededError, match="max_steps=25") as info:
        graph.run_sync(run_id="loop")
    assert stored_run(graph, "loop")["step"] == 25
    assert info.value.run_id == "loop"
    assert "node 'spin' ran 25 times" in str(info.value) and "loop" in str(info.value)


def test_by_default_each_node_runs_at_most_1000_times_whatever_the_graph_size() -> None:
    chain = [Add(name=f"n{i}") for i in range(1001)]
    for left, right in zip(chain, chain[1:]):
        left >> right
    assert Graph(start=chain[0]).run_sync({"value": 0}).content == {"value": 1001}
    start = Add(name="start")
    start >> [Add(name=f"b{i}") for i in range(1000)]
    assert Graph(start=start).run_sync().steps == 1001
    # A loop in a big graph is stopped as soon as in a small one.
    spin = Add(name="spin")
    spin >> spin
    spin >> [Add(name=f"side{i}") for i in range(50)]
    graph = Graph(start=spin)
    assert graph.max_steps is None
    with pytest.raises(MaxStepsExceededError, match="'spin' ran 1000 times") as info:
        graph.run_sync(run_id="spin")
    assert (info.value.max_steps, info.value.node_id, info.value.runs) == (
        None,
        "spin",
        1000,
    )
    record = stored_run(graph, "spin")
    assert record["status"] == "failed"
    assert ["spin", {"value": 1000}] in record["frontier"]  # its 1,001st run is pending


def test_max_steps_bounds_the_total_instead_of_each_node() -> None:
    count = Add(name="count")
    count.on(expr="$.outputs.value < 1500") >> count
    assert Graph(start=count, max_steps=2000).run_sync().content == {"value": 1500}
    with pytest.raises(MaxStepsExceededError, match="ran 1000 times"):
        Graph(start=count).run_sync()  # the default: 1,000 per node


def test_max_steps_on_a_graph_without_loops_does_not_blame_a_loop() -> None:
    start = Add(name="start")
    start >> [Add(name=f"b{i}") for i in range(5)]
    with pytest.raises(MaxStepsExceededError, match="max_steps=3") as info:
        Graph(start=start, max_steps=3).run_sync()
    assert "loop" not in str(info.value) and info.value.runs == 1


# ---------------------------------------------------------------- fan-out and joins
def test_fan_out_branches_run_concurrently() -> None:
    overlap = Overlap()

    class Branch(Node):
        async def process(self, context: ExecutionContext) -> Dict[str, Any]:
            await overlap.section()
            return {"branch": self.id}

    start = Add(name="start")
    branches = [Branch(name=f"b{i}") for i in range(8)]
    start >> branches
    result = Graph(start=start).run_sync()
    assert overlap.peak == 8
    assert {f"b{i}" for i in range(8)} <= set(result.outputs)


def test_sync_branches_run_concurrently_in_threads() -> None:
    import threading

    barrier = threading.Barrier(3, timeout=5)

    class Blocking(Node):
        def process(self, context: ExecutionContext) -> Dict[str, Any]:
            barrier.wait()  # only returns when all three threads are inside
            return {"id": self.id}

    start = Add(name="start")
    start >> [Blocking(name=f"s{i}") for i in range(3)]
    result = Graph(start=start).run_sync()
    assert {"s0", "s1", "s2"} <= set(result.outputs)


@pytest.mark.parametrize("durable", [False, True])
def test_content_is_the_end_node_latest_in_graph_order(
    tmp_path: Any, durable: bool
) -> None:
    class Sleep(Tag):
        def __init__(self, name: str, delay: float) -> None:
            super().__init__(name=name)
            self.delay = delay

        async def process(self, context: ExecutionContext) -> Dict[str, Any]:
            await asyncio.sleep(self.delay)
            return await super().process(context)

    from spark_core.graphs import SQLiteStateBackend

    start = Tag(name="start")
    slow_end, fast = Sleep("slow_end", 0.05), Sleep("fast", 0.0)
    start >> [slow_end, fast]
    fast >> Tag(name="end")  # finishes first, but comes later in graph order
    backend = SQLiteStateBackend(tmp_path / "c.db") if durable else None
    graph = Graph(start=start, state_backend=backend)
    result = graph.run_sync({}, run_id="c")
    assert result.content == {"seen": ["start", "fast", "end"]}
    assert graph.resume_sync("c").content == result.content  # the stored result too


def test_join_waits_for_every_parent() -> None:
    class Slow(Node):
        def __init__(self, name: str, delay: float) -> None:
            super().__init__(name=name)
            self.delay = delay

        async def process(self, context: ExecutionContext) -> Dict[str, Any]:
            await asyncio.sleep(self.delay)
            return {"from": self.id}

    class Merge(JoinNode):
        async def process(self, context: ExecutionContext) -> Dict[str, Any]:
            return {"parents": sorted(context.inputs.content)}

    start = Add(name="start")
    merge = Merge(name="merge")
    branches = [Slow("fast", 0.0), Slow("mid", 0.01), Slow("slow", 0.02)]
    start >> branches
    branches >> merge
    result = Graph(start=start).run_sync()
    assert result.content == {"parents": ["fast", "mid", "slow"]}
    assert result.node_results["merge"].runs == 1
    assert list(result.outputs)[-1] == "merge"  # it ran after every parent


def test_default_join_returns_parent_outputs_and_handles_untaken_branches() -> None:
    router = Emit({"branch": "a", "v": 1}, "router")
    a, b, join = Tag(name="a"), Tag(name="b"), JoinNode(name="join")
    router.on(branch="a") >> a
    router.on(branch="b") >> b
    [a, b] >> join
    result = Graph(start=router).run_sync()
    # b never runs, so the join runs with the message it has once nothing else can.
    assert result.content == {"a": {"branch": "a", "v": 1, "seen": ["a"]}}


def test_failure_cancels_sibling_branches() -> None:
    cancelled: List[str] = []
    finished: List[str] = []

    class Sleeper(Node):
        async def process(self, context: ExecutionContext) -> Dict[str, Any]:
            try:
                await asyncio.sleep(10)
            except asyncio.CancelledError:
                cancelled.append(self.id)
                raise
            finished.append(self.id)
            return {}

    class Fail(Node):
        async def process(self, context: ExecutionContext) -> Dict[str, Any]:
            await asyncio.sleep(0.01)
            raise RuntimeError("branch failed")

    start = Add(name="start")
    start >> [Sleeper(name="s1"), Fail(name="f"), Sleeper(name="s2")]
    graph = Graph(start=start)
    with pytest.raises(NodeExecutionError, match="branch failed"):
        graph.run_sync(run_id="cancel")
    assert sorted(cancelled) == ["s1", "s2"]
    assert finished == []
    frontier = stored_run(graph, "cancel")["frontier"]
    assert sorted(entry[0] for entry in frontier) == ["f", "s1", "s2"]


def test_cancelling_the_run_task_cancels_branches() -> None:
    cancelled: List[str] = []
    started: List[str] = []

    class Sleeper(Node):
        async def process(self, context: ExecutionContext) -> Dict[str, Any]:
            started.append(self.id)
            try:
                await asyncio.sleep(10)
            except asyncio.CancelledError:
                cancelled.append(self.id)
                raise
            return {}

    start = Add(name="start")
    start >> [Sleeper(name="s1"), Sleeper(name="s2")]
    graph = Graph(start=start)

    async def main() -> None:
        task = asyncio.ensure_future(graph.run(run_id="outer"))
        while len(started) < 2 and not task.done():
            await asyncio.sleep(0)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    arun(main())
    assert sorted(cancelled) == ["s1", "s2"]
    assert stored_run(graph, "outer")["status"] == "cancelled"


def test_graph_state_is_shared_and_survives_runs() -> None:
    class Count(Node):
        async def process(self, context: ExecutionContext) -> Dict[str, Any]:
            async with gstate(context).lock():
                n = await gstate(context).get("counter", 0)
                await asyncio.sleep(0)  # the other branches run now: the lock must hold
                await gstate(context).set("counter", n + 1)
            return {"counter": n + 1}

    start = Add(name="start")
    start >> [Count(name=f"c{i}") for i in range(5)]
    graph = Graph(start=start)
    graph.run_sync()
    graph.run_sync()
    assert arun(graph.state.get("counter")) == 10
    arun(graph.reset_state())
    assert arun(graph.state.get("counter")) is None


def test_context_metadata_and_graph_links() -> None:
    seen: Dict[str, Any] = {}

    class Look(Node):
        async def process(self, context: ExecutionContext) -> Dict[str, Any]:
            seen.update(context.metadata)
            seen["graph"] = context.graph
            seen["has_state"] = bool(context.graph_state)
            return {}

    graph = Graph(start=Look(name="look"), graph_id="g1")
    graph.run_sync(run_id="meta")
    assert seen["node_id"] == "look" and seen["run_id"] == "meta"
    assert seen["attempt"] == 1 and seen["graph_id"] == "g1" and seen["step"] == 1
    assert seen["graph"] is graph and seen["has_state"] is True
