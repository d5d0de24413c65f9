"""Agents inside graphs: cost to budgets, events and spans, pause and resume across restarts."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any, Dict, List, Tuple

import pytest

from spark_core.agents import Agent, AgentError, AgentNode
from spark_core.agents.agent import CHECKPOINT_KEY_PREFIX
from spark_core.governance import ApprovalPendingError
from spark_core.governance.approvals import ApprovalStore
from spark_core.graphs import Graph, GraphObserver, SQLiteStateBackend
from spark_core.graphs.mission_control import GuardrailBreachError, Guardrails
from spark_core.errors import NodeExecutionError
from spark_core.models import ScriptedModel, ScriptExhaustedError
from spark_core.models.openai import OpenAIModel
from spark_core.nodes import Node
from spark_core.telemetry import TelemetryManager
from tests.agents import restart_app
from tests.agents.fake_openai import FakeOpenAIServer, reply
from tests.agents.helpers import add, calls_to, fs_policy, lookup_capital, write_file

ROOT = Path(__file__).resolve().parents[2]


class Recorder(GraphObserver):
    """Collects every event nodes emit."""

    def __init__(self) -> None:
        self.events: List[Tuple[str, str, Dict[str, Any]]] = []

    async def on_event(
        self, run: Any, node: Any, name: str, data: Dict[str, Any]
    ) -> None:
        self.events.append((node.id, name, dict(data)))

    def named(self, name: str) -> List[Dict[str, Any]]:
        return [data for _, n, data in self.events if n == name]


def two_step_model() -> ScriptedModel:
    return ScriptedModel(
        [
            {
                "tool_calls": [
                    {
                        "id": "t1",
                        "name": "lookup_capital",
                        "arguments": {"country": "Peru"},
                    }
                ]
            },
            "Final Answer: Lima",
        ]
    )


def test_agent_node_reports_cost_and_calls() -> None:
    recorder = Recorder()
    agent = Agent(model=two_step_model(), tools=[lookup_capital], name="geo")
    node = AgentNode(agent)
    graph = Graph(node, observers=[recorder])
    result = asyncio.run(graph.run({"prompt": "Capital of Peru?"}))

    assert result.status == "completed"
    assert result.content["answer"] == "Lima"
    assert result.content["steps"] == 2
    assert result.content["tool_calls"][0]["result"] == "Lima"
    costs = recorder.named("cost")
    assert len(costs) == 2 and all(c["source"] == "agent:geo/scripted" for c in costs)
    assert sum(c["tokens"] for c in costs) == result.content["usage"]["total_tokens"]
    llm = recorder.named("llm_call")
    assert [e["step"] for e in llm] == [1, 2]
    assert llm[0]["tool_calls"] == ["lookup_capital"]
    [tool_event] = recorder.named("tool_call")
    assert tool_event["tool"] == "lookup_capital" and tool_event["status"] == "ok"


def test_token_budget_stops_a_chatty_agent() -> None:
    looping = {"tool_calls": [{"name": "add", "arguments": {"a": 1, "b": 2}}]}
    agent = Agent(model=ScriptedModel([looping], loop=True), tools=[add], max_steps=50)
    graph = Graph(AgentNode(agent), observers=[Guardrails(max_tokens=500)])
    with pytest.raises(GuardrailBreachError, match="max_tokens"):
        asyncio.run(graph.run({"prompt": "count forever"}))
    assert 0 < len(calls_to("add")) < 50


def test_a_priced_models_cost_stops_the_run_at_the_usd_budget(
    fake_openai: FakeOpenAIServer,
) -> None:
    # $1000 per million prompt tokens: each 100-token call costs $0.10.
    step = reply(
        None, [{"name": "add", "arguments": {"a": 1, "b": 2}}], prompt_tokens=100
    )
    fake_openai.add(*[step] * 10)
    model = OpenAIModel(
        "priced", base_url=fake_openai.base_url, pricing=(1000.0, 0.0), backoff_factor=0
    )
    recorder = Recorder()
    graph = Graph(
        AgentNode(Agent(model=model, tools=[add], max_steps=10, name="spender")),
        observers=[recorder, Guardrails(max_cost=0.25)],
    )
    with pytest.raises(GuardrailBreachError) as info:
        asyncio.run(graph.run({"prompt": "keep adding"}))
    assert info.value.limit == "max_cost"
    assert info.value.value == pytest.approx(0.30) and info.value.threshold == 0.25
    assert "max_cost breached" in str(info.value)
    assert len(fake_openai.requests) == 3  # stopped at the call that crossed the limit
    assert [c["usd"] for c in recorder.named("cost")] == pytest.approx([0.1] * 3)


def test_a_priced_scripted_model_reports_its_cost_offline() -> None:
    model = ScriptedModel(
        [
            {
                "tool_calls": [{"name": "add", "arguments": {"a": 1, "b": 2}}],
                "usage": {"prompt_tokens": 2000, "completion_tokens": 100},
            },
            {"text": "Final Answer: 3", "usage": {"prompt_tokens": 2500}},
        ],
        pricing=(100.0, 1000.0),
    )
    recorder = Recorder()
    graph = Graph(AgentNode(Agent(model=model, tools=[add])), observers=[recorder])
    result = asyncio.run(graph.run({"prompt": "1+2"}))
    # 2000 * $100/M + 100 * $1000/M, then 2500 * $100/M
    assert result.content["cost_usd"] == pytest.approx(0.2 + 0.1 + 0.25)
    assert [c["usd"] for c in recorder.named("cost")] == pytest.approx([0.3, 0.25])
    assert result.content["usage"]["prompt_tokens"] == 4500


def test_agent_spans_in_telemetry() -> None:
    telemetry = TelemetryManager()
    agent = Agent(model=two_step_model(), tools=[lookup_capital], name="geo")
    graph = Graph(AgentNode(agent, name="research"), telemetry=telemetry)
    asyncio.run(graph.run({"prompt": "Capital of Peru?"}))

    spans = telemetry.query_spans()
    by_name: Dict[str, List[Dict[str, Any]]] = {}
    for span in spans:
        by_name.setdefault(span["name"], []).append(span)
    [node_span] = by_name["research"]
    assert len(by_name["llm_call"]) == 2
    [tool_span] = by_name["tool_call"]
    for span in by_name["llm_call"] + [tool_span]:
        assert span["parent_id"] == node_span["span_id"]
        assert span["trace_id"] == node_span["trace_id"]
    assert tool_span["attributes"]["tool"] == "lookup_capital"
    assert tool_span["attributes"]["status"] == "ok"
    assert by_name["llm_call"][0]["attributes"]["model"] == "scripted"
    telemetry.close()


class Ask(Node):
    async def process(self, context: Any) -> Dict[str, Any]:
        return {"prompt": f"Capital of {context.inputs.content['country']}?"}


class Shout(Node):
    async def process(self, context: Any) -> Dict[str, Any]:
        return {"loud": context.inputs.content["answer"].upper()}


def test_the_agent_itself_is_a_node() -> None:
    agent = Agent(model=two_step_model(), tools=[lookup_capital], name="geo")
    ask, shout = Ask(), Shout()
    ask >> agent >> shout
    graph = Graph(ask)
    assert list(graph.nodes) == ["Ask", "geo", "Shout"]
    assert graph.nodes["geo"] is agent.as_node()  # one node per agent
    result = asyncio.run(graph.run({"country": "Peru"}))
    assert result.content == {"loud": "LIMA"}

    alone = Graph(Agent(model=two_step_model(), tools=[lookup_capital], name="solo"))
    assert isinstance(alone.start, AgentNode) and alone.start.id == "solo"
    other = Agent(model=two_step_model(), name="other")
    assert other.as_node("renamed") is not other.as_node()


def test_prompt_from_input() -> None:
    node = AgentNode(
        Agent(model=two_step_model()), prompt_template="Capital of {country}?"
    )
    assert node.prompt_for({"country": "Peru"}) == "Capital of Peru?"
    with pytest.raises(AgentError, match="needs input key 'country'"):
        node.prompt_for({"nation": "Peru"})
    plain = AgentNode(Agent(model=two_step_model()), name="plain")
    assert plain.prompt_for("hi") == "hi"
    assert plain.prompt_for({"prompt": {"q": 1}}) == '{"q": 1}'
    with pytest.raises(AgentError, match="no 'prompt' key"):
        plain.prompt_for({"question": "x"})
    with pytest.raises(AgentError, match="string or a dict"):
        plain.prompt_for(3)
    with pytest.raises(AgentError, match="needs an Agent"):
        AgentNode("agent")  # type: ignore[arg-type]
    assert plain.id == "plain"
    assert Agent(model=two_step_model(), name="named").as_node().id == "named"


def test_agent_inside_a_custom_node_pauses_and_resumes(tmp_path: Path) -> None:
    model = ScriptedModel(restart_app.SCRIPT)
    agent = Agent(model=model, tools=[add, write_file], policy_set=fs_policy())

    class Writer(Node):
        async def process(self, context: Any) -> Dict[str, Any]:
            result = await agent.run("add and save", context=context)
            return {"said": result.answer}

    writer = Writer(name="writer")
    writer >> Node(name="finish")
    graph = Graph(writer, state_backend=SQLiteStateBackend(tmp_path / "s.db"))
    with pytest.raises(ApprovalPendingError) as info:
        asyncio.run(graph.run({}, run_id="r1"))
    saved = asyncio.run(graph.state.get(CHECKPOINT_KEY_PREFIX + "writer:r1"))
    assert saved["run_id"] == "r1" and saved["session"]["pending"]["done"]
    asyncio.run(
        graph.approvals.resolve(info.value.request_id, "approved", reviewer="ana")
    )
    result = asyncio.run(graph.resume("r1"))
    assert result.status == "completed"
    assert result.outputs["writer"] == {"said": "saved 42 to answer.txt"}
    assert result.content == {"said": "saved 42 to answer.txt"}  # went on to "finish"
    assert len(calls_to("write_file")) == 1 and len(calls_to("add")) == 1
    assert asyncio.run(graph.state.get(CHECKPOINT_KEY_PREFIX + "writer:r1")) is None


@pytest.mark.parametrize("kind", ["sqlite", "postgres"])
def test_approval_pause_and_resume_across_a_restart(
    tmp_path: Path, kind: str, request: pytest.FixtureRequest
) -> None:
    # The agent's checkpoint lives in graph state: on a SQLite file or in PostgreSQL.
    db = (
        str(tmp_path / "mission.sqlite")
        if kind == "sqlite"
        else request.getfixturevalue("pg_dsn")
    )
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    first = subprocess.run(
        [sys.executable, "-m", "tests.agents.restart_app", db],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert first.returncode == 0, first.stderr
    paused = json.loads(first.stdout.strip().splitlines()[-1])
    assert paused["run_id"] == "mission-1"
    assert [c["tool"] for c in paused["calls"]] == [
        "add"
    ]  # write_file waits for a human

    # An operator approves it from another process, as `spark-spec approval-resolve` does.
    store = ApprovalStore.open(db)
    [pending] = store.list_sync(status="pending")
    assert (
        pending.id == paused["request_id"] and pending.resource == "tool://write_file"
    )
    store.resolve_sync(pending.id, "approved", reviewer="ops", notes="fine")

    # A fresh process (fresh objects, nothing in memory) resumes the run.
    model = ScriptedModel(restart_app.SCRIPT[1:])
    graph = restart_app.build_graph(db, model)
    result = asyncio.run(graph.resume("mission-1"))
    assert result.status == "completed"
    assert result.content["answer"] == "saved 42 to answer.txt"
    assert [c["tool"] for c in calls_to("write_file")] == ["write_file"]  # exactly once
    assert calls_to("add") == []  # done before the pause, not redone
    assert [r["status"] for r in result.content["tool_calls"]] == ["ok", "ok"]
    # The model saw the whole conversation, with both tool results, in one request.
    [request] = model.requests
    tool_messages = [m for m in request["messages"] if m["role"] == "tool"]
    assert [(m["tool_call_id"], m["content"]) for m in tool_messages] == [
        ("c-add", "42"),
        ("c-write", '{"written": 2, "path": "answer.txt"}'),
    ]
    # Resuming again returns the stored result; the approval is used up.
    again = asyncio.run(
        restart_app.build_graph(db, ScriptedModel([])).resume("mission-1")
    )
    assert again.status == "completed" and len(calls_to("write_file")) == 1
    assert store.list_sync(status="approved")[0].consumed_at


def test_two_paused_runs_resume_independently() -> None:
    def respond(messages: List[Any]) -> Any:
        last = messages[-1]
        if last.role == "tool":
            return f"Final Answer: {last.content}"
        return {
            "tool_calls": [
                {
                    "name": "write_file",
                    "arguments": {"path": "f", "content": last.content},
                }
            ]
        }

    agent = Agent(
        model=ScriptedModel([respond], loop=True),
        tools=[write_file],
        policy_set=fs_policy(),
        memory=False,
    )
    graph = Graph(AgentNode(agent, name="writer"))
    requests = {}
    for run_id, text in (("r1", "alpha"), ("r2", "beta")):
        with pytest.raises(ApprovalPendingError) as info:
            asyncio.run(graph.run({"prompt": text}, run_id=run_id))
        requests[run_id] = info.value.request_id
    for request_id in requests.values():
        asyncio.run(graph.approvals.resolve(request_id, "approved", reviewer="ana"))
    second = asyncio.run(graph.resume("r2"))
    first = asyncio.run(graph.resume("r1"))
    assert first.content["answer"] == '{"written": 5, "path": "f"}'
    assert second.content["answer"] == '{"written": 4, "path": "f"}'
    assert [c["content"] for c in calls_to("write_file")] == ["beta", "alpha"]


def test_a_resumed_run_that_fails_resumes_from_its_last_tool_step(
    tmp_path: Path,
) -> None:
    db = str(tmp_path / "s.db")
    with pytest.raises(ApprovalPendingError) as info:
        asyncio.run(
            restart_app.build_graph(db, ScriptedModel(restart_app.SCRIPT[:1])).run(
                {"prompt": "go"}, run_id="m"
            )
        )
    ApprovalStore.open(db).resolve_sync(info.value.request_id, "approved")
    # The model is down right after the approved tool ran: the run fails...
    with pytest.raises(NodeExecutionError, match="ran out of replies"):
        asyncio.run(restart_app.build_graph(db, ScriptedModel([])).resume("m"))
    assert len(calls_to("write_file")) == 1
    # ...and resuming it again continues the conversation; the tool does not run again.
    model = ScriptedModel(restart_app.SCRIPT[1:])
    result = asyncio.run(restart_app.build_graph(db, model).resume("m"))
    assert result.status == "completed" and len(calls_to("write_file")) == 1
    assert [m["role"] for m in model.requests[0]["messages"]][-2:] == ["tool", "tool"]
    assert ApprovalStore.open(db).list_sync(status="pending") == []


def test_standalone_resume_after_a_model_failure() -> None:
    script: List[Any] = [
        {
            "tool_calls": [
                {"name": "write_file", "arguments": {"path": "p", "content": "c"}}
            ]
        }
    ]
    agent = Agent(
        model=ScriptedModel(script), tools=[write_file], policy_set=fs_policy()
    )
    with pytest.raises(ApprovalPendingError) as info:
        asyncio.run(agent.run("write"))
    asyncio.run(agent.approvals.resolve(info.value.request_id, "approved"))
    with pytest.raises(ScriptExhaustedError):
        asyncio.run(agent.resume())
    assert agent.paused and len(calls_to("write_file")) == 1
    agent.config.model = ScriptedModel(["Final Answer: ok"])
    assert asyncio.run(agent.resume()).answer == "ok"
    assert len(calls_to("write_file")) == 1 and not agent.paused


def test_graph_runs_do_not_share_conversation_memory() -> None:
    model = ScriptedModel(["Final Answer: a", "Final Answer: b"])
    graph = Graph(AgentNode(Agent(model=model), name="chat"))
    asyncio.run(graph.run({"prompt": "first"}))
    asyncio.run(graph.run({"prompt": "second"}))
    assert [m["content"] for m in model.requests[1]["messages"][1:]] == ["second"]
