"""Graph runs instrumented by TelemetryObserver: traces, node spans, events, sampling."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any, Dict, List

import pytest

from spark_core.errors import NodeExecutionError
from spark_core.governance import (
    ApprovalPendingError,
    PolicyEffect,
    PolicyRule,
    PolicySet,
    PolicyViolationError,
    tool,
)
from spark_core.graphs import Graph, GuardrailBreachError
from spark_core.graphs.mission_control import Guardrails
from spark_core.nodes import ExecutionContext, JoinNode, Node, NodeConfig
from spark_core.nodes.capabilities import RetryCapability
from spark_core.telemetry import TelemetryConfig, TelemetryManager
from spark_core.telemetry.config import TelemetryConfigError


class Echo(Node):
    async def process(self, context: ExecutionContext) -> Dict[str, Any]:
        return {"from": self.id}


def fan_out_graph(manager: TelemetryManager, width: int = 5) -> Graph:
    start = Echo(name="start")
    branches: List[Node] = [Echo(name=f"branch{i}") for i in range(width)]
    join = JoinNode(name="join")
    start >> branches
    branches >> join
    return Graph(start, telemetry=manager, graph_id="fanout")


def test_fan_out_run_records_one_trace_and_a_span_per_node(
    manager: TelemetryManager,
) -> None:
    graph = fan_out_graph(manager)
    result = graph.run_sync()
    asyncio.run(manager.flush())
    [trace] = manager.query_traces(name="fanout")
    assert trace["status"] == "ok"
    assert trace["attributes"] == {
        "run_id": result.run_id,
        "graph_id": "fanout",
        "resumed": False,
    }
    spans = manager.query_spans(trace_id=trace["trace_id"])
    assert sorted(s["name"] for s in spans) == sorted(
        ["start", "join"] + [f"branch{i}" for i in range(5)]
    )
    for span in spans:
        assert span["kind"] == "node" and span["status"] == "ok"
        assert span["attributes"]["attempt"] == 1 and span["duration_ms"] >= 0
        assert span["attributes"]["node_id"] == span["name"]
    assert {s["attributes"]["node_type"] for s in spans} == {"Echo", "JoinNode"}
    assert {r["name"] for r in manager.slowest_nodes(limit=100)} == {
        s["name"] for s in spans
    }


def test_retries_give_one_span_per_attempt_and_a_retry_event(
    memory_manager: TelemetryManager,
) -> None:
    class Flaky(Node):
        calls = 0

        async def process(self, context: ExecutionContext) -> Dict[str, Any]:
            Flaky.calls += 1
            if Flaky.calls == 1:
                raise ConnectionError("password=hunter2 rejected")
            return {}

    node = Flaky(
        name="flaky",
        config=NodeConfig(retry=RetryCapability(max_retries=2, initial_delay=0)),
    )
    Graph(node, telemetry=memory_manager).run_sync()
    spans = memory_manager.query_spans(name="flaky")
    assert [(s["status"], s["attributes"]["attempt"]) for s in spans] == [
        ("error", 1),
        ("ok", 2),
    ]
    assert spans[0]["error"].startswith("ConnectionError")
    [retry] = memory_manager.query_events(name="node.retry")
    assert retry["attributes"] == {
        "node_id": "flaky",
        "attempt": 1,
        "delay_s": 0,
        "error_type": "ConnectionError",
    }
    assert memory_manager.error_rates()["flaky"] == {
        "attempts": 2,
        "errors": 1,
        "error_rate": 0.5,
    }


def test_failed_run_is_an_error_trace(memory_manager: TelemetryManager) -> None:
    class Broken(Node):
        async def process(self, context: ExecutionContext) -> Dict[str, Any]:
            raise ValueError("bad")

    with pytest.raises(NodeExecutionError, match="ValueError: bad"):
        Graph(Broken(name="broken"), telemetry=memory_manager).run_sync()
    [trace] = memory_manager.query_traces()
    assert trace["status"] == "error"
    [failed] = memory_manager.query_events(name="node.failed")
    assert failed["attributes"] == {"node_id": "broken", "error_type": "ValueError"}


def test_cost_and_custom_events_are_attached_to_the_node_span(
    memory_manager: TelemetryManager,
) -> None:
    class Caller(Node):
        async def process(self, context: ExecutionContext) -> Dict[str, Any]:
            context.report_cost(0.25, tokens=42, source="gpt")
            await context.emit(
                "progress", pct=50, api_key="sk-should-not-appear-123456"
            )
            return {}

    Graph(Caller(name="caller"), telemetry=memory_manager).run_sync()
    [span] = memory_manager.query_spans(name="caller")
    events = {e["name"]: e for e in memory_manager.query_events()}
    assert events["cost"]["attributes"] == {
        "usd": 0.25,
        "tokens": 42,
        "source": "gpt",
        "node_id": "caller",
    }
    assert events["cost"]["span_id"] == span["span_id"]
    assert events["progress"]["attributes"]["api_key"] == "[REDACTED]"


def test_guardrail_breach_is_recorded(memory_manager: TelemetryManager) -> None:
    node = Echo(name="loop")
    node.on(lambda out: True) >> node
    graph = Graph(node, telemetry=memory_manager)
    Guardrails(max_iterations=3).attach(graph)
    with pytest.raises(GuardrailBreachError):
        graph.run_sync()
    [trace] = memory_manager.query_traces()
    assert trace["status"] == "stopped"
    [event] = memory_manager.query_events(name="guardrail.breach")
    assert event["attributes"] == {
        "limit": "max_iterations",
        "value": 4,
        "threshold": 3,
        "node_id": "loop",
    }
    assert len(memory_manager.query_spans(name="loop")) == 3


@tool
def publish(text: str) -> str:
    """Publish text."""
    return "published"


@tool
def drop_table(table: str) -> str:
    """Drop a table."""
    return "dropped"


class Publisher(Node):
    async def process(self, context: ExecutionContext) -> Dict[str, Any]:
        return {
            "r": await context.call_tool(
                str(context.inputs.content["tool"]), **context.inputs.content["args"]
            )
        }


POLICY = PolicySet(
    "content",
    [
        PolicyRule(
            "ask_publish",
            PolicyEffect.REQUIRE_APPROVAL,
            ["tool:execute"],
            ["tool://publish"],
        ),
        PolicyRule("no_drops", PolicyEffect.DENY, ["tool:execute"], ["tool://drop_*"]),
    ],
)


def test_policy_decisions_and_approvals_are_recorded(
    sqlite_manager: TelemetryManager,
) -> None:
    m = sqlite_manager
    graph = Graph(
        Publisher(name="pub"),
        tools=[publish, drop_table],
        policy_set=POLICY,
        telemetry=m,
    )

    async def main() -> None:
        with pytest.raises(ApprovalPendingError) as info:
            await graph.run({"tool": "publish", "args": {"text": "hello"}})
        await graph.approvals.resolve(info.value.request_id, "approved", reviewer="ed")
        await graph.resume(info.value.run_id)
        with pytest.raises(PolicyViolationError):
            await graph.run({"tool": "drop_table", "args": {"table": "users"}})
        await m.flush()

    asyncio.run(main())
    paused, resumed, denied = m.query_traces()
    assert (paused["status"], resumed["status"], denied["status"]) == (
        "paused",
        "ok",
        "error",  # as the stored run: failed
    )
    assert resumed["attributes"]["resumed"] is True
    names = [e["name"] for e in m.query_events(trace_id=paused["trace_id"])]
    assert names.count("approval.requested") == 1 and "approval.pending" in names
    resumed_events = {
        e["name"]: e for e in m.query_events(trace_id=resumed["trace_id"])
    }
    assert resumed_events["approval.used"]["attributes"]["resource"] == "tool://publish"
    violation = m.query_events(trace_id=denied["trace_id"], name="policy.violation")[0]
    assert violation["attributes"]["rule"] == "no_drops"
    decisions = [
        e["attributes"]["effect"]
        for e in m.query_events(name="policy.decision")
        if e["attributes"]["action"] == "tool:execute"
    ]
    assert decisions == ["require_approval", "deny"]
    [paused_span] = m.query_spans(trace_id=paused["trace_id"], name="pub")
    assert paused_span["status"] == "paused"


def test_sampling_zero_records_no_graph_runs(tmp_path: Path) -> None:
    m = TelemetryManager(
        TelemetryConfig(
            backend="sqlite",
            sampling_rate=0.0,
            backend_config={"path": str(tmp_path / "t.db")},
        )
    )
    try:
        graph = fan_out_graph(m)
        for _ in range(3):
            assert graph.run_sync().status == "completed"
        assert (
            m.query_traces() == [] and m.query_spans() == [] and m.query_events() == []
        )
    finally:
        m.close()


def test_sampling_keeps_whole_runs(memory_manager: TelemetryManager) -> None:
    m = TelemetryManager(TelemetryConfig(sampling_rate=0.5))
    m._rng.seed(7)
    graph = fan_out_graph(m, width=3)
    for _ in range(40):
        graph.run_sync()
    traces = m.query_traces()
    assert 5 < len(traces) < 35
    assert len(m.query_spans()) == 5 * len(
        traces
    )  # start + 3 branches + join per kept run


def test_disabled_telemetry_leaves_runs_untouched() -> None:
    m = TelemetryManager(TelemetryConfig(enabled=False))
    assert fan_out_graph(m).run_sync().status == "completed"
    assert m.query_traces() == []


def test_graph_accepts_a_config_or_true_for_telemetry() -> None:
    from spark_core.telemetry.instrument import TelemetryObserver

    observer = TelemetryObserver(TelemetryConfig(sampling_rate=1.0))
    graph = Graph(Echo(name="one"), observers=[observer])
    graph.run_sync()
    assert [s["name"] for s in observer.manager.query_spans()] == ["one"]
    TelemetryManager.reset_instance()
    try:
        assert TelemetryObserver(True).manager is TelemetryManager.get_instance()
    finally:
        TelemetryManager.reset_instance()
    with pytest.raises(
        TelemetryConfigError, match="TelemetryManager, a TelemetryConfig or True"
    ):
        Graph(Echo(name="one"), telemetry="yes")
    assert Graph(Echo(name="one"), telemetry=False).observers == []  # off, like None


def test_code_inside_a_node_can_open_child_spans(
    memory_manager: TelemetryManager,
) -> None:
    from spark_core.telemetry.instrument import current_node_span

    class Agentish(Node):
        async def process(self, context: ExecutionContext) -> Dict[str, Any]:
            parent = current_node_span(context)
            assert parent is not None and parent.manager is memory_manager
            child = parent.manager.begin_span(
                "llm_call", parent.trace_id, parent_id=parent.span_id
            )
            child.end()
            return {}

    Graph(Agentish(name="agent"), telemetry=memory_manager).run_sync()
    spans = {s["name"]: s for s in memory_manager.query_spans()}
    assert spans["llm_call"]["parent_id"] == spans["agent"]["span_id"]
    assert current_node_span(None) is None


def test_node_span_nests_under_the_node_attempt_and_records_errors(
    memory_manager: TelemetryManager,
) -> None:
    from spark_core.telemetry import node_span

    class Agentish(Node):
        async def process(self, context: ExecutionContext) -> Dict[str, Any]:
            async with node_span(
                context, "llm_call", {"api_key": "sk-1", "n": 1}
            ) as llm:
                assert llm is not None
                llm.set_attribute("tokens", 7)
                async with node_span(context, "tool_call") as inner:
                    assert inner is not None
                    memory_manager.record_event("picked")
            with pytest.raises(ValueError):
                async with node_span(context, "tool_call"):
                    raise ValueError("boom")
            return {}

    fan = [Agentish(name=f"agent{i}") for i in range(3)]
    start = Echo(name="start")
    start >> fan
    Graph(start, telemetry=memory_manager).run_sync()
    spans = memory_manager.query_spans()
    by_id = {s["span_id"]: s for s in spans}
    llm_calls = [s for s in spans if s["name"] == "llm_call"]
    assert len(llm_calls) == 3
    for llm in llm_calls:
        assert by_id[llm["parent_id"]]["name"].startswith("agent")
        assert llm["attributes"] == {"api_key": "[REDACTED]", "n": 1, "tokens": 7}
    tool_calls = [s for s in spans if s["name"] == "tool_call"]
    assert sorted(by_id[s["parent_id"]]["name"][:5] for s in tool_calls) == (
        ["agent"] * 3 + ["llm_c"] * 3
    )
    failed = [s for s in tool_calls if s["status"] == "error"]
    assert len(failed) == 3 and all("ValueError: boom" in s["error"] for s in failed)
    picked = [e for e in memory_manager.query_events() if e["name"] == "picked"]
    assert len(picked) == 3
    assert {by_id[e["span_id"]]["name"] for e in picked} == {"tool_call"}


def test_node_span_records_nothing_without_telemetry_or_sampling() -> None:
    from spark_core.telemetry import node_span

    seen: List[Any] = []

    class Agentish(Node):
        async def process(self, context: ExecutionContext) -> Dict[str, Any]:
            async with node_span(context, "llm_call") as span:
                seen.append(span)
            return {}

    Graph(Agentish(name="a")).run_sync()
    off = TelemetryManager(TelemetryConfig(sampling_rate=0.0))
    try:
        Graph(Agentish(name="a"), telemetry=off).run_sync()
        assert off.query_spans() == []
    finally:
        off.close()

    async def alone() -> None:
        async with node_span(None, "llm_call") as span:
            seen.append(span)

    asyncio.run(alone())
    assert seen == [None, None, None]


def test_two_executions_of_one_node_at_once_get_a_span_each(
    memory_manager: TelemetryManager,
) -> None:
    from spark_core.telemetry import node_span

    class Both(Node):
        """Reached from two branches; the first execution waits until the second began."""

        async def process(self, context: ExecutionContext) -> Dict[str, Any]:
            came_from = context.inputs.content["from"]
            if came_from == "left":
                await second_in.wait()
            else:
                second_in.set()
            async with node_span(context, "inner", {"via": came_from}) as span:
                assert span is not None
            return {"from": came_from}

    second_in = asyncio.Event()
    start, left, right, both = (
        Echo(name="start"),
        Echo(name="left"),
        Echo(name="right"),
        Both(name="both"),
    )
    start >> [left, right]
    left >> both
    right >> both
    Graph(start, telemetry=memory_manager).run_sync()
    spans = memory_manager.query_spans()
    both_spans = {s["span_id"]: s for s in spans if s["name"] == "both"}
    assert len(both_spans) == 2 and {s["status"] for s in both_spans.values()} == {"ok"}
    inner = [s for s in spans if s["name"] == "inner"]
    assert sorted(s["attributes"]["via"] for s in inner) == ["left", "right"]
    assert {s["parent_id"] for s in inner} == set(both_spans)


def test_manager_spans_and_events_opened_inside_a_node_nest_under_its_attempt(
    memory_manager: TelemetryManager,
) -> None:
    class Manual(Node):
        async def process(self, context: ExecutionContext) -> Dict[str, Any]:
            async with memory_manager.start_span("inner", attributes={"i": self.id}):
                memory_manager.record_event("inside")
            return {"from": self.id}

    start = Manual(name="start")  # inline (one ready node), then three concurrent tasks
    start >> [Manual(name=f"b{i}") for i in range(3)]
    Graph(start, telemetry=memory_manager, graph_id="g").run_sync()
    [trace] = memory_manager.query_traces()  # no separate trace per inner span
    spans = memory_manager.query_spans()
    assert {s["trace_id"] for s in spans} == {trace["trace_id"]}
    by_id = {s["span_id"]: s for s in spans}
    inner = [s for s in spans if s["name"] == "inner"]
    assert sorted(by_id[s["parent_id"]]["name"] for s in inner) == [
        "b0",
        "b1",
        "b2",
        "start",
    ]
    assert all(by_id[s["parent_id"]]["name"] == s["attributes"]["i"] for s in inner)
    events = memory_manager.query_events(name="inside")
    assert {by_id[e["span_id"]]["name"] for e in events} == {"inner"}


def test_the_current_span_is_put_back_after_a_run_even_a_paused_one(
    memory_manager: TelemetryManager,
) -> None:
    @tool
    def write(path: str) -> str:
        """Write."""
        return "ok"

    class Writes(Node):
        async def process(self, context: ExecutionContext) -> Dict[str, Any]:
            return {"r": await context.call_tool("write", path="p")}

    ask = PolicySet(
        "p", [PolicyRule("ask", PolicyEffect.REQUIRE_APPROVAL, ["tool:*"], ["*"])]
    )
    graph = Graph(
        Writes(name="w"), tools=[write], policy_set=ask, telemetry=memory_manager
    )

    async def main() -> None:
        await Graph(Echo(name="e"), telemetry=memory_manager).run()
        with pytest.raises(ApprovalPendingError):
            await graph.run()  # stops inside the node: its attempt never ends normally
        async with memory_manager.start_span("after") as span:
            assert span.parent_id is None

    asyncio.run(main())
    [after] = memory_manager.query_spans(name="after")
    run_traces = {
        t["trace_id"] for t in memory_manager.query_traces() if t["name"] != "after"
    }
    assert after["trace_id"] not in run_traces
