"""Agents outside a graph: strategies, tools under policy, JSON mode, limits, checkpoints."""

from __future__ import annotations

import asyncio
import json
import logging
import os
from pathlib import Path
from typing import Any, Dict, List

import pytest

from spark_core.agents import (
    Agent,
    AgentCheckpointError,
    AgentConfig,
    AgentConfigError,
    AgentError,
    AgentMaxStepsError,
    AgentOutputError,
    ChainOfThoughtStrategy,
    PlanAndSolveStrategy,
    ReActStrategy,
    strategy_from_spec,
)
from spark_core.agents.strategies import (
    FINAL_ANSWER_HINT,
    extract_final_answer,
    parse_plan,
    parse_text_actions,
)
from spark_core.governance import ApprovalPendingError
from spark_core.governance.policy import PolicySet
from spark_core.governance.tools import tool
from spark_core.models import EchoModel, ScriptedModel
from spark_core.models.openai import OpenAIModel
from tests.agents.fake_openai import FakeOpenAIServer, reply
from tests.agents.helpers import (
    add,
    calls_to,
    delete_file,
    fs_policy,
    lookup_capital,
    write_file,
)


def run(coro: Any) -> Any:
    return asyncio.run(coro)


def messages_of(request: Dict[str, Any]) -> List[Dict[str, Any]]:
    return list(request["body"]["messages"])


# --------------------------------------------------------------------------- ReAct


def test_react_loop_calls_two_tools_and_answers(fake_openai: FakeOpenAIServer) -> None:
    fake_openai.add(
        reply(
            "Thought: I need the capital.",
            [{"id": "c1", "name": "lookup_capital", "arguments": {"country": "Peru"}}],
            prompt_tokens=100,
            completion_tokens=20,
        ),
        reply(
            None,
            [{"id": "c2", "name": "add", "arguments": {"a": 40, "b": 2}}],
            prompt_tokens=150,
            completion_tokens=10,
        ),
        reply(
            "Thought: done.\nFinal Answer: Lima, 42",
            prompt_tokens=200,
            completion_tokens=8,
        ),
    )
    model = OpenAIModel("gpt-4o-mini", base_url=fake_openai.base_url, backoff_factor=0)
    agent = Agent(
        config=AgentConfig(
            model=model,
            tools=[lookup_capital, add],
            reasoning_strategy=ReActStrategy(verbose=True),
        )
    )
    result = run(agent.run("Capital of Peru, and 40+2?"))

    assert result.answer == "Lima, 42"
    assert result.steps == 3
    assert [(r.name, r.status, r.result) for r in result.tool_calls] == [
        ("lookup_capital", "ok", "Lima"),
        ("add", "ok", 42),
    ]
    assert result.usage.prompt_tokens == 450 and result.usage.completion_tokens == 38
    assert result.cost == pytest.approx(model.estimate_cost(result.usage))
    assert result.cost > 0
    # The tool schemas went to the endpoint, and each result came back as a tool message.
    first = fake_openai.requests[0]["body"]
    assert {t["function"]["name"] for t in first["tools"]} == {"lookup_capital", "add"}
    assert first["messages"][0]["role"] == "system"
    assert "Final Answer" in first["messages"][0]["content"]
    third = messages_of(fake_openai.requests[2])
    assert third[-1] == {
        "role": "tool",
        "content": "42",
        "tool_call_id": "c2",
        "name": "add",
    }
    assert third[-3] == {
        "role": "tool",
        "content": "Lima",
        "tool_call_id": "c1",
        "name": "lookup_capital",
    }
    assert [m["role"] for m in result.transcript] == [
        "system",
        "user",
        "assistant",
        "tool",
        "assistant",
        "tool",
        "assistant",
    ]


def test_react_text_actions_for_models_without_function_calling() -> None:
    model = ScriptedModel(
        [
            'Thought: add them\nAction: add[{"a": 2, "b": 3}]\nObservation: (made up)',
            'Thought: now the capital\nAction: lookup_capital\nAction Input: {"country": "France"}',
            "Final Answer: 5 and Paris",
        ]
    )
    agent = Agent(
        model=model,
        tools=[add, lookup_capital],
        reasoning_strategy=ReActStrategy(mode="text"),
    )
    result = run(agent.run("2+3 and the capital of France"))
    assert result.answer == "5 and Paris"
    assert [c["tool"] for c in calls_to("add") + calls_to("lookup_capital")] == [
        "add",
        "lookup_capital",
    ]
    assert model.requests[0]["tools"] is None  # tools described in the prompt instead
    system = model.requests[0]["messages"][0]["content"]
    assert "lookup_capital" in system and "Action: tool_name[" in system
    assert model.requests[1]["messages"][-1] == {
        "role": "user",
        "content": "Observation: 5",
    }
    assert model.requests[2]["messages"][-1]["content"] == "Observation: Paris"


def test_tool_problems_are_reported_to_the_model() -> None:
    @tool
    def explode() -> str:
        """Always fails."""
        raise RuntimeError("disk on fire")

    model = ScriptedModel(
        [
            {
                "tool_calls": [
                    {"name": "nope", "arguments": {}},
                    {"name": "add", "arguments": {"a": 1}},
                    {"name": "explode", "arguments": {}},
                    {"name": "add", "arguments": "{broken"},
                ]
            },
            "Final Answer: gave up",
        ]
    )
    result = run(Agent(model=model, tools=[add, explode]).run("go"))
    assert [r.status for r in result.tool_calls] == ["error"] * 4
    seen = [m["content"] for m in model.requests[1]["messages"] if m["role"] == "tool"]
    assert "unknown tool 'nope'" in seen[0]
    assert "missing required argument(s) ['b']" in seen[1]
    assert "RuntimeError: disk on fire" in seen[2]
    assert "not valid JSON" in seen[3]
    assert calls_to("add") == []


def test_parallel_tool_execution_runs_a_steps_calls_concurrently() -> None:
    arrived: List[str] = []
    events: Dict[str, asyncio.Event] = {}  # made inside the running loop (Python 3.9)
    patience = {"seconds": 5.0}

    @tool
    async def meet(who: str) -> str:
        """Wait until both callers arrived (deadlocks if the calls run one after the other).

        Args:
            who: Caller name.
        """
        both_here = events.setdefault("both_here", asyncio.Event())
        arrived.append(who)
        if len(arrived) == 2:
            both_here.set()
        await asyncio.wait_for(both_here.wait(), timeout=patience["seconds"])
        return f"{who} met"

    script: List[Any] = [
        {
            "tool_calls": [
                {"name": "meet", "arguments": {"who": "a"}},
                {"name": "meet", "arguments": {"who": "b"}},
            ]
        },
        "Final Answer: met",
    ]
    agent = Agent(
        model=ScriptedModel(script), tools=[meet], parallel_tool_execution=True
    )
    result = run(agent.run("meet"))
    assert [r.result for r in result.tool_calls] == ["a met", "b met"]

    arrived.clear()
    events.clear()
    patience["seconds"] = 0.2  # one after the other, the first caller waits in vain
    sequential = Agent(model=ScriptedModel(script), tools=[meet])
    result = run(sequential.run("meet"))
    assert result.tool_calls[0].status == "error"
    assert "TimeoutError" in (result.tool_calls[0].error or "")


# --------------------------------------------------------------------------- governance


def test_denied_tool_is_reported_as_refused(fake_openai: FakeOpenAIServer) -> None:
    fake_openai.add(
        reply(
            None,
            [{"id": "d1", "name": "delete_file", "arguments": {"path": "/etc/passwd"}}],
        ),
        reply("Final Answer: I am not allowed to delete that file."),
    )
    model = OpenAIModel("gpt-4o", base_url=fake_openai.base_url)
    agent = Agent(
        config=AgentConfig(model=model, tools=[delete_file], policy_set=fs_policy())
    )
    result = run(agent.run("delete /etc/passwd"))
    assert result.answer == "I am not allowed to delete that file."
    assert calls_to("delete_file") == []
    [record] = result.tool_calls
    assert record.status == "denied" and "block_delete" in (record.error or "")
    tool_msg = messages_of(fake_openai.requests[1])[-1]
    assert tool_msg["role"] == "tool" and tool_msg["tool_call_id"] == "d1"
    assert tool_msg["content"].startswith("Tool call refused by policy")


def test_approval_pauses_then_resume_runs_the_tool_once() -> None:
    model = ScriptedModel(
        [
            {
                "tool_calls": [
                    {"id": "r1", "name": "add", "arguments": {"a": 1, "b": 1}},
                    {
                        "id": "w1",
                        "name": "write_file",
                        "arguments": {"path": "out.txt", "content": "hello"},
                    },
                ]
            },
            "Final Answer: wrote it",
        ]
    )
    agent = Agent(model=model, tools=[add, write_file], policy_set=fs_policy())
    with pytest.raises(ApprovalPendingError) as info:
        run(agent.run("write hello"))
    assert agent.paused and calls_to("write_file") == []
    with pytest.raises(AgentError, match="paused"):
        run(agent.run("something else"))
    pending = run(agent.approvals.list(status="pending"))
    assert [p.id for p in pending] == [info.value.request_id]
    assert pending[0].resource == "tool://write_file"

    with pytest.raises(ApprovalPendingError):  # still not approved: stays paused
        run(agent.resume())
    run(agent.approvals.resolve(info.value.request_id, "approved", reviewer="ana"))
    result = run(agent.resume())
    assert result.answer == "wrote it"
    assert len(calls_to("write_file")) == 1
    assert len(calls_to("add")) == 1  # done before the pause, not redone
    assert [r.status for r in result.tool_calls] == ["ok", "ok"]
    assert model.calls == 2 and not agent.paused
    with pytest.raises(AgentError, match="no paused run"):
        run(agent.resume())


def test_rejected_approval_is_reported_as_refused() -> None:
    model = ScriptedModel(
        [
            {
                "tool_calls": [
                    {"name": "write_file", "arguments": {"path": "a", "content": "b"}}
                ]
            },
            "Final Answer: could not write",
        ]
    )
    agent = Agent(model=model, tools=[write_file], policy_set=fs_policy())
    with pytest.raises(ApprovalPendingError) as info:
        run(agent.run("write"))
    run(
        agent.approvals.resolve(
            info.value.request_id, "rejected", reviewer="bo", notes="no"
        )
    )
    result = run(agent.resume())
    assert result.tool_calls[0].status == "denied"
    assert "rejected" in (result.tool_calls[0].error or "")
    assert calls_to("write_file") == []


# --------------------------------------------------------------------------- output & limits


def test_json_mode_corrects_one_invalid_answer(fake_openai: FakeOpenAIServer) -> None:
    fake_openai.add(
        reply("Final Answer: {'city': 'Lima'}"),  # Python, not JSON
        reply('Final Answer: ```json\n{"city": "Lima", "population_m": 10}\n```'),
    )
    model = OpenAIModel("m", base_url=fake_openai.base_url)
    agent = Agent(config=AgentConfig(model=model, output_mode="json"))
    result = run(agent.run("Capital of Peru as JSON"))
    assert result.answer == {"city": "Lima", "population_m": 10}
    assert result.steps == 2
    feedback = messages_of(fake_openai.requests[1])[-1]
    assert feedback["role"] == "user" and "not valid" in feedback["content"]
    assert "valid JSON" in messages_of(fake_openai.requests[0])[0]["content"]


def test_json_mode_gives_up_after_the_retries() -> None:
    model = ScriptedModel(["not json", "still not", "nope"])
    agent = Agent(model=model, output_mode="json", json_retries=2)
    with pytest.raises(AgentOutputError) as info:
        run(agent.run("json please"))
    assert info.value.attempts == 3 and info.value.text == "nope"
    assert model.calls == 3


def test_json_output_validator() -> None:
    def needs_city(value: Any) -> None:
        if not isinstance(value, dict) or "city" not in value:
            raise ValueError("the object needs a 'city' key")

    model = ScriptedModel(['{"town": "Lima"}', '{"city": "Lima"}'])
    agent = Agent(model=model, output_mode="json", output_validator=needs_city)
    assert run(agent.run("?")).answer == {"city": "Lima"}
    assert "needs a 'city' key" in model.requests[1]["messages"][-1]["content"]


def test_max_steps_gives_a_clear_error() -> None:
    looping = {"tool_calls": [{"name": "add", "arguments": {"a": 1, "b": 1}}]}
    agent = Agent(model=ScriptedModel([looping], loop=True), tools=[add], max_steps=3)
    with pytest.raises(AgentMaxStepsError) as info:
        run(agent.run("loop forever"))
    assert info.value.max_steps == 3 and info.value.steps == 3
    assert "max_steps=3" in str(info.value)
    assert len(calls_to("add")) == 3


# --------------------------------------------------------------------------- strategies


def test_chain_of_thought_extracts_the_final_answer() -> None:
    model = ScriptedModel(
        [
            "17 * 3 = 51, and 51 + 4 = 55.",  # no marker: asked once more
            "Step 1: 17*3 = 51\nStep 2: 51+4 = 55\nFinal Answer: 55",
        ]
    )
    agent = Agent(model=model, reasoning_strategy=ChainOfThoughtStrategy())
    result = run(agent.run("17*3+4?"))
    assert result.answer == "55"
    assert "step by step" in model.requests[0]["messages"][0]["content"]
    assert "Final Answer" in model.requests[1]["messages"][-1]["content"]


def test_chain_of_thought_json() -> None:
    model = ScriptedModel(['Reasoning...\nFinal Answer: {"result": 55}'])
    agent = Agent(
        model=model, output_mode="json", reasoning_strategy=ChainOfThoughtStrategy()
    )
    assert run(agent.run("17*3+4?")).answer == {"result": 55}


def test_plan_and_solve_plans_first_then_executes() -> None:
    model = ScriptedModel(
        [
            "1. Look up the capital of Peru\n2) Count its letters\n",
            {
                "tool_calls": [
                    {"name": "lookup_capital", "arguments": {"country": "Peru"}}
                ]
            },
            "Lima has 4 letters.\nFinal Answer: Lima (4)",
        ]
    )
    agent = Agent(
        model=model, tools=[lookup_capital], reasoning_strategy=PlanAndSolveStrategy()
    )
    result = run(agent.run("How many letters has Peru's capital?"))
    assert result.plan == ["Look up the capital of Peru", "Count its letters"]
    assert result.answer == "Lima (4)"
    assert model.requests[0]["tools"] is None  # planning without tools
    assert "numbered list" in model.requests[0]["messages"][-1]["content"]
    assert model.requests[1]["tools"] is not None
    assert "carry out the plan" in model.requests[1]["messages"][-1]["content"]


def test_parsers() -> None:
    assert extract_final_answer("a\nFinal answer: x\n  FINAL ANSWER:  y ") == (
        "x\n  FINAL ANSWER:  y"
    )  # the first marker at a line start; the rest is the answer
    assert extract_final_answer("**Final Answer:** 42") == "42"
    assert extract_final_answer("I know the final answer: 42") is None
    assert extract_final_answer("no marker") is None
    calls = parse_text_actions(
        'Action: add[{"a": 1}]\nAction: ping[]\nAction: bad[{oops]'
    )
    assert [(c.name, c.arguments, c.error is None) for c in calls] == [
        ("add", {"a": 1}, True),
        ("ping", {}, True),
        ("bad", {}, False),
    ]
    assert (
        parse_text_actions('Action: add["x"]')[0].error
        == "arguments must be a JSON object"
    )
    assert parse_plan("Plan:\n1. a\n2) b\nStep 3: c\nnot a step") == ["a", "b", "c"]


def test_final_answer_in_a_thought_does_not_end_the_react_loop() -> None:
    model = ScriptedModel(
        [
            "Thought: I will know the final answer: once I look it up.\n"
            'Action: lookup_capital[{"country": "Peru"}]',
            "Final Answer: Lima",
        ]
    )
    agent = Agent(
        model=model,
        tools=[lookup_capital],
        reasoning_strategy=ReActStrategy(mode="text"),
    )
    result = run(agent.run("Capital of Peru?"))
    assert result.answer == "Lima" and model.calls == 2
    assert [c["country"] for c in calls_to("lookup_capital")] == ["Peru"]


def test_an_action_before_the_marker_runs_before_any_answer() -> None:
    # The model guessed the observation and answered in the same reply.
    model = ScriptedModel(
        [
            'Action: lookup_capital[{"country": "France"}]\nObservation: Rome\n'
            "Final Answer: Rome",
            "Final Answer: Paris",
        ]
    )
    agent = Agent(
        model=model,
        tools=[lookup_capital],
        reasoning_strategy=ReActStrategy(mode="text"),
    )
    assert run(agent.run("Capital of France?")).answer == "Paris"
    assert len(calls_to("lookup_capital")) == 1


def test_json_answer_containing_the_marker_text_is_kept_whole() -> None:
    model = ScriptedModel(['Final Answer: {"note": "the final answer: is 42"}'])
    agent = Agent(model=model, output_mode="json")
    result = run(agent.run("q"))
    assert result.answer == {"note": "the final answer: is 42"} and model.calls == 1


def test_chain_of_thought_marker_only_at_a_line_start() -> None:
    model = ScriptedModel(["17*3+4 = 55\nFinal Answer: 55 (the final answer: checked)"])
    agent = Agent(model=model, reasoning_strategy=ChainOfThoughtStrategy())
    assert run(agent.run("17*3+4?")).answer == "55 (the final answer: checked)"


@pytest.mark.parametrize("marker", ["## Final Answer:", "> Final Answer:"])
def test_a_markdown_final_answer_line_ends_the_run(marker: str) -> None:
    model = ScriptedModel([f"17*3+4 = 55\n{marker} 55", "Final Answer: asked again"])
    agent = Agent(model=model, reasoning_strategy=ChainOfThoughtStrategy())
    assert run(agent.run("17*3+4?")).answer == "55" and model.calls == 1


def test_strategy_from_spec() -> None:
    assert strategy_from_spec("react", {"verbose": True}) == ReActStrategy(verbose=True)
    assert isinstance(strategy_from_spec("Chain-Of-Thought"), ChainOfThoughtStrategy)
    assert strategy_from_spec("plan_and_solve", {"max_plan_steps": 3}).config() == {
        "max_plan_steps": 3
    }
    spec = PlanAndSolveStrategy(4).to_spec()
    assert strategy_from_spec(spec["type"], spec["config"]) == PlanAndSolveStrategy(4)
    with pytest.raises(
        AgentConfigError, match="unknown reasoning strategy type 'tree'"
    ):
        strategy_from_spec("tree")
    with pytest.raises(
        AgentConfigError, match=r"does not accept config key\(s\) \['depth'\]"
    ):
        strategy_from_spec("react", {"depth": 3})
    with pytest.raises(AgentConfigError, match="mode"):
        strategy_from_spec("react", {"mode": "telepathy"})


# --------------------------------------------------------------------------- memory & config


def test_memory_and_checkpoints(tmp_path: Path) -> None:
    model = EchoModel(prefix="you said: ")
    agent = Agent(model=model)
    run(agent.run("one"))
    run(agent.run("two"))
    assert [m["content"] for m in model.requests[1]["messages"][1:]] == [
        "one",
        "you said: one",
        "two",
    ]
    assert agent.interactions == 2 and agent.total_usage.total_tokens > 0

    path = tmp_path / "checkpoint_2.json"
    agent.save_checkpoint(path)
    assert json.loads(path.read_text())["interactions"] == 2
    assert os.listdir(tmp_path) == [
        "checkpoint_2.json"
    ]  # no temporary file left behind

    again = Agent.from_checkpoint(path, AgentConfig(model=EchoModel()))
    assert again.interactions == 2 and len(again.history) == 4
    run(again.run("three"))
    assert (
        len(again.config.model.requests[0]["messages"]) == 6
    )  # system + 4 + new prompt
    again.reset()
    assert again.history == []

    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(AgentCheckpointError, match="not JSON"):
        again.load_checkpoint(tmp_path / "bad.json")
    (tmp_path / "other.json").write_text('{"format": "something else"}')
    with pytest.raises(AgentCheckpointError, match="not an agent checkpoint"):
        again.load_checkpoint(tmp_path / "other.json")
    with pytest.raises(AgentCheckpointError, match="cannot read"):
        again.load_checkpoint(tmp_path / "missing.json")
    with pytest.raises(AgentCheckpointError, match="cannot write"):
        again.save_checkpoint(tmp_path / "no-such-dir" / "x.json")


WRITE_SCRIPT: List[Any] = [
    {
        "tool_calls": [
            {"name": "write_file", "arguments": {"path": "p", "content": "c"}}
        ]
    },
    "Final Answer: done",
]


def paused_checkpoint(path: Path) -> str:
    """Pause an agent on a write_file approval, save it to ``path``; return the request id."""
    agent = Agent(
        model=ScriptedModel(WRITE_SCRIPT), tools=[write_file], policy_set=fs_policy()
    )
    with pytest.raises(ApprovalPendingError) as info:
        run(agent.run("write"))
    agent.save_checkpoint(path)
    return str(info.value.request_id)


def test_paused_run_survives_a_checkpoint_file(tmp_path: Path) -> None:
    path = tmp_path / "paused.json"
    request_id = paused_checkpoint(path)
    restored = Agent.load_checkpoint(
        path,
        AgentConfig(
            model=ScriptedModel(WRITE_SCRIPT[1:]),
            tools=[write_file],
            policy_set=fs_policy(),
        ),
    )
    assert restored.paused
    # The original request is still there to resolve; resuming before that asks nothing new.
    [pending] = run(restored.approvals.list(status="pending"))
    assert pending.id == request_id
    with pytest.raises(ApprovalPendingError) as info:
        run(restored.resume())
    assert info.value.request_id == request_id and calls_to("write_file") == []
    assert [r.id for r in run(restored.approvals.list())] == [request_id]
    run(restored.approvals.resolve(request_id, "approved", reviewer="ops"))
    result = run(restored.resume())
    assert result.answer == "done" and len(calls_to("write_file")) == 1
    assert run(restored.approvals.get(request_id)).consumed_at is not None


def test_a_rejection_given_after_a_restart_is_honoured(tmp_path: Path) -> None:
    path = tmp_path / "paused.json"
    request_id = paused_checkpoint(path)
    config = AgentConfig(
        model=ScriptedModel(["Final Answer: not written"]),
        tools=[write_file],
        policy_set=fs_policy(),
    )
    restored = Agent.load_checkpoint(path, config)
    run(restored.approvals.resolve(request_id, "rejected", notes="no"))
    result = run(restored.resume())
    assert [r.status for r in result.tool_calls] == ["denied"]
    assert calls_to("write_file") == []


@pytest.mark.parametrize("policy", [None, "other"])
def test_a_paused_run_never_runs_its_tool_without_the_policy_that_paused_it(
    tmp_path: Path, policy: Any
) -> None:
    path = tmp_path / "paused.json"
    request_id = paused_checkpoint(path)
    policy_set = None if policy is None else PolicySet(name=policy)
    agent = Agent(
        model=ScriptedModel(WRITE_SCRIPT[1:]), tools=[write_file], policy_set=policy_set
    )
    data = json.loads(path.read_text())
    assert data["paused"]["policy_set"] == "fs_safety"
    del data[
        "approvals"
    ]  # the approvals do not decide: the paused run names its policy
    path.write_text(json.dumps(data))
    with pytest.raises(AgentCheckpointError) as info:
        agent.load_checkpoint(path)
    assert "paused for approval under policy set 'fs_safety'" in str(info.value)
    assert not agent.paused  # left unchanged
    with pytest.raises(AgentError, match="no paused run"):
        run(agent.resume())
    assert calls_to("write_file") == [] and request_id


@pytest.mark.parametrize("policy", [None, "fs_safety"])
def test_a_paused_run_from_a_format_1_checkpoint_is_refused(
    tmp_path: Path, policy: Any
) -> None:
    # /1 files (some without approvals) do not say which policy set paused the run.
    path = tmp_path / "paused.json"
    paused_checkpoint(path)
    data = json.loads(path.read_text())
    assert data["format"] == "spark_core.agent/2"
    data["format"] = "spark_core.agent/1"
    del data["paused"]["policy_set"], data["approvals"]
    path.write_text(json.dumps(data))
    policy_set = None if policy is None else fs_policy()
    agent = Agent(
        model=ScriptedModel(WRITE_SCRIPT[1:]), tools=[write_file], policy_set=policy_set
    )
    with pytest.raises(AgentCheckpointError, match="not the policy set that paused it"):
        agent.load_checkpoint(path)
    assert not agent.paused and calls_to("write_file") == []
    # Without its paused run, a /1 file restores (history, totals).
    data["paused"], data["interactions"] = None, 3
    path.write_text(json.dumps(data))
    assert agent.load_checkpoint(path).interactions == 3 and not agent.paused


def test_load_checkpoint_from_the_class_or_into_an_agent(tmp_path: Path) -> None:
    agent = Agent(model=EchoModel())
    run(agent.run("hello"))
    path = tmp_path / "checkpoint_1.json"
    agent.save_checkpoint(path)

    built = Agent.load_checkpoint(path, AgentConfig(model=EchoModel()))
    assert isinstance(built, Agent) and built.interactions == 1
    assert [m.content for m in built.history] == ["hello", "hello"]
    into = Agent(model=EchoModel())
    assert into.load_checkpoint(path) is into and into.interactions == 1
    with pytest.raises(TypeError):
        Agent.load_checkpoint(path)  # type: ignore[call-arg]


def test_the_saved_strategy_is_restored(tmp_path: Path) -> None:
    path = tmp_path / "checkpoint.json"
    agent = Agent(
        model=EchoModel(), reasoning_strategy=PlanAndSolveStrategy(max_plan_steps=3)
    )
    agent.save_checkpoint(path)
    # The config sets no strategy: the saved one comes back.
    restored = Agent.load_checkpoint(path, AgentConfig(model=EchoModel()))
    assert restored.strategy == PlanAndSolveStrategy(max_plan_steps=3)
    # The config sets one: it is kept.
    chosen = AgentConfig(model=EchoModel(), reasoning_strategy=ChainOfThoughtStrategy())
    assert Agent.load_checkpoint(path, chosen).strategy == ChainOfThoughtStrategy()
    data = json.loads(path.read_text())
    data["strategy"] = {"type": "tree_of_thought", "config": {}}
    path.write_text(json.dumps(data))
    with pytest.raises(AgentCheckpointError, match="tree_of_thought"):
        Agent.load_checkpoint(path, AgentConfig(model=EchoModel()))


def test_a_paused_run_needs_the_strategy_that_paused_it(tmp_path: Path) -> None:
    model = ScriptedModel(
        ["1. write the file", WRITE_SCRIPT[0], "Final Answer: written"]
    )
    agent = Agent(
        model=model,
        tools=[write_file],
        policy_set=fs_policy(),
        reasoning_strategy=PlanAndSolveStrategy(),
    )
    with pytest.raises(ApprovalPendingError) as info:
        run(agent.run("write"))
    path = tmp_path / "paused.json"
    agent.save_checkpoint(path)

    def config(strategy: Any) -> AgentConfig:
        return AgentConfig(
            model=ScriptedModel(["Final Answer: written"]),
            tools=[write_file],
            policy_set=fs_policy(),
            reasoning_strategy=strategy,
        )

    with pytest.raises(AgentCheckpointError, match="strategy 'plan_and_solve'"):
        Agent.load_checkpoint(path, config(ReActStrategy()))
    restored = Agent.load_checkpoint(path, config(None))
    run(restored.approvals.resolve(info.value.request_id, "approved"))
    result = run(restored.resume())
    assert result.plan == ["write the file"] and result.answer == "written"
    assert len(calls_to("write_file")) == 1


def test_a_graph_run_paused_for_approval_is_not_kept_in_the_agent(
    tmp_path: Path,
) -> None:
    from spark_core.agents import AgentNode
    from spark_core.graphs import Graph

    agent = Agent(model=ScriptedModel(WRITE_SCRIPT), tools=[write_file])
    graph = Graph(AgentNode(agent), policy_set=fs_policy())
    with pytest.raises(ApprovalPendingError):
        run(graph.run({"prompt": "write"}))
    # The pause is the graph's: alone, the agent has nothing to resume (it would run the
    # tool outside the graph's policy), and its checkpoint holds no paused run.
    assert not agent.paused
    with pytest.raises(AgentError, match="no paused run"):
        run(agent.resume())
    agent.save_checkpoint(tmp_path / "agent.json")
    assert json.loads((tmp_path / "agent.json").read_text())["paused"] is None
    assert calls_to("write_file") == []


def test_config_validation() -> None:
    model = EchoModel()
    with pytest.raises(AgentConfigError, match="complete"):
        AgentConfig(model=object())
    with pytest.raises(AgentConfigError, match="output_mode"):
        AgentConfig(model=model, output_mode="xml")
    with pytest.raises(AgentConfigError, match="max_steps"):
        AgentConfig(model=model, max_steps=0)
    with pytest.raises(AgentConfigError, match="json_retries"):
        AgentConfig(model=model, json_retries=-1)
    with pytest.raises(AgentConfigError, match="reasoning_strategy"):
        AgentConfig(model=model, reasoning_strategy="react")  # type: ignore[arg-type]
    with pytest.raises(AgentConfigError, match="duplicate tool name 'add'"):
        Agent(model=model, tools=[add, add])
    with pytest.raises(AgentConfigError, match="not both"):
        Agent(AgentConfig(model=model), model=model)
    with pytest.raises(AgentError, match="prompt must be text"):
        run(Agent(model=model).run(42))  # type: ignore[arg-type]
    assert repr(Agent(model=model)).startswith("Agent(name='agent', model='echo'")


def test_seed_basic_agent_snippet() -> None:
    config = AgentConfig(
        model=EchoModel(), system_prompt="You are a helpful assistant."
    )
    agent = Agent(config=config)
    result = agent.run_sync("Hello, Spark!")
    assert result.answer == "Hello, Spark!"
    system, *rest = result.transcript
    assert system["role"] == "system" and set(system) == {"role", "content"}
    assert system["content"].startswith("You are a helpful assistant.\n\n")
    assert FINAL_ANSWER_HINT in system["content"]  # the default strategy's instructions
    assert rest == [
        {"role": "user", "content": "Hello, Spark!"},
        {"role": "assistant", "content": "Hello, Spark!"},
    ]


def test_verbose_react_logs_thoughts_and_actions(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="spark_core.agents.strategies")
    model = ScriptedModel(
        [
            {
                "text": "Thought: I should add.",
                "tool_calls": [{"name": "add", "arguments": {"a": 1, "b": 2}}],
            },
            "Final Answer: 3",
        ]
    )
    run(
        Agent(
            model=model, tools=[add], reasoning_strategy=ReActStrategy(verbose=True)
        ).run("?")
    )
    assert "Thought: I should add." in caplog.text
    assert 'Action: add {"a": 1, "b": 2}' in caplog.text
    caplog.clear()
    run(Agent(model=ScriptedModel(["Thought: quiet\nFinal Answer: 1"])).run("?"))
    assert "quiet" not in caplog.text


def test_run_sync_works_inside_a_running_loop() -> None:
    async def notebook_cell() -> Any:  # a notebook cell runs inside an event loop
        return Agent(model=EchoModel()).run_sync("from a notebook")

    assert run(notebook_cell()).answer == "from a notebook"


def test_seed_snippets_run_as_written(
    fake_openai: FakeOpenAIServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(
        "OPENAI_BASE_URL", fake_openai.base_url
    )  # instead of the internet
    fake_openai.add(
        reply("Hello! How can I help?"), reply('Final Answer: {"ok": true}')
    )
    from spark_core.agents import Agent, AgentConfig
    from spark_core.agents.strategies import ReActStrategy
    from spark_core.models.openai import OpenAIModel

    config = AgentConfig(
        model=OpenAIModel(model_id="gpt-4o"),
        system_prompt="You are a helpful assistant.",
    )
    agent = Agent(config=config)
    result = run(agent.run("Hello, Spark!"))
    assert result.answer == "Hello! How can I help?"

    model = OpenAIModel(
        model_id=os.getenv("MODEL_ID", "gpt-4o"), api_key=os.getenv("OPENAI_API_KEY")
    )
    config = AgentConfig(
        model=model,
        output_mode="json",
        reasoning_strategy=ReActStrategy(verbose=True),
        tools=[write_file, delete_file],
        policy_set=fs_policy(),
        max_steps=int(os.getenv("MAX_STEPS", "20")),
        parallel_tool_execution=True,
    )
    assert run(Agent(config=config).run("ok?")).answer == {"ok": True}
