"""Agents built from specs: agent nodes from params, strategy bindings, model swaps."""

from __future__ import annotations

import asyncio
from typing import Any, Dict

import pytest

from spark_core.agents import (
    AgentConfigError,
    AgentNode,
    ChainOfThoughtStrategy,
    PlanAndSolveStrategy,
    ReActStrategy,
    agent_from_spec,
    bind_strategies,
    model_from_spec,
    replace_models,
)
from spark_core.graphs import Graph
from spark_core.kit.loader import SpecLoader, export_graph
from spark_core.models import EchoModel, ScriptedModel
from spark_core.models.openai import OpenAIModel
from spark_core.spec import GraphSpec, SpecError
from spark_core.spec.simulation import run_simulation
from tests.agents.fake_openai import FakeOpenAIServer, reply
from tests.agents.helpers import calls_to, lookup_capital

SCRIPT = [
    {"tool_calls": [{"name": "lookup_capital", "arguments": {"country": "Peru"}}]},
    "Final Answer: Lima",
]


def graph_spec() -> Dict[str, Any]:
    return {
        "id": "geo",
        "start": "analyst",
        "nodes": [
            {
                "id": "analyst",
                "type": "spark_core.agents.node:AgentNode",
                "params": {
                    "model": {"provider": "scripted", "script": SCRIPT},
                    "system_prompt": "You know geography.",
                    "tools": ["lookup_capital"],
                    "strategy": {"type": "react", "config": {"verbose": True}},
                    "max_steps": 4,
                },
            }
        ],
        "tools": [{"name": "lookup_capital", "description": "Capital of a country"}],
    }


def test_agent_node_loaded_from_a_spec_uses_graph_tools() -> None:
    loader = SpecLoader(tools={"lookup_capital": lookup_capital})
    graph = loader.load_graph(GraphSpec.from_dict(graph_spec()))
    node = graph.nodes["analyst"]
    assert isinstance(node, AgentNode) and node.agent.name == "analyst"
    assert node.agent.strategy == ReActStrategy(verbose=True)
    result = asyncio.run(graph.run({"prompt": "Capital of Peru?"}))
    assert result.content["answer"] == "Lima"
    assert len(calls_to("lookup_capital")) == 1
    model = node.agent.config.model
    assert model.requests[0]["tools"][0]["function"]["name"] == "lookup_capital"


def test_simulation_swaps_the_graph_tool_for_its_override() -> None:
    spec = GraphSpec.from_dict(graph_spec())
    report = run_simulation(
        spec,
        {"prompt": "Capital of Peru?"},
        overrides={"lookup_capital": "Lima (simulated)"},
    )
    assert report.status == "completed", report.error
    assert report.tool_calls == {"lookup_capital": 1}
    assert report.output["tool_calls"][0]["result"] == "Lima (simulated)"
    assert calls_to("lookup_capital") == []  # the real tool never ran


def test_simulation_swaps_models_for_scripted_ones() -> None:
    data = graph_spec()
    data["nodes"][0]["params"]["model"] = {"provider": "openai", "model_id": "gpt-4o"}
    spec = GraphSpec.from_dict(data)
    with pytest.raises(SpecError, match="no scripted model for agent node"):
        run_simulation(spec, {"prompt": "x"}, overrides={"lookup_capital": "Lima"})
    stand_in = ScriptedModel(SCRIPT)
    report = run_simulation(
        spec,
        {"prompt": "Capital of Peru?"},
        overrides={"lookup_capital": "Lima"},
        models={"analyst": stand_in},
    )
    assert report.status == "completed", report.error
    assert report.model_calls == {"analyst": 2} and len(stand_in.requests) == 2
    with pytest.raises(SpecError, match="'other', which are not agent nodes"):
        run_simulation(
            spec, {}, overrides={"lookup_capital": "Lima"}, models={"other": ["hi"]}
        )


def test_agent_nodes_export_to_specs_that_load() -> None:
    loader = SpecLoader(tools={"lookup_capital": lookup_capital})
    graph = loader.load_graph(GraphSpec.from_dict(graph_spec()))
    bind_strategies(graph, [{"target": "analyst", "strategy": {"type": "cot"}}])
    spec = export_graph(graph)
    params = spec.nodes[0].params
    assert params["strategy"] == {"type": "chain_of_thought", "config": {}}  # as bound
    assert params["model"] == {"provider": "scripted", "script": SCRIPT}
    again = loader.load_graph(spec)
    node = again.nodes["analyst"]
    assert node.agent.strategy == ChainOfThoughtStrategy()
    assert node.agent.config.tools == ["lookup_capital"]

    python_agent = AgentNode(
        agent_from_spec({"model": {"provider": "echo"}}), name="py"
    )
    with pytest.raises(AgentConfigError, match="wraps a Python Agent"):
        export_graph(Graph(python_agent))
    with pytest.raises(AgentConfigError, match="hold Python objects"):
        export_graph(Graph(AgentNode(model=EchoModel(), name="obj")))


def test_graph_tool_names_must_exist() -> None:
    agent = agent_from_spec({"model": "gpt-4o", "tools": ["search"]}, name="a")
    with pytest.raises(
        AgentConfigError, match="uses the graph tool 'search' but runs outside"
    ):
        asyncio.run(agent.run("hi"))
    graph = Graph(AgentNode(agent))
    with pytest.raises(Exception, match="in a graph without that tool"):
        asyncio.run(graph.run({"prompt": "hi"}))


def test_bind_strategies_and_replace_models() -> None:
    first = AgentNode(model={"provider": "echo"}, name="first")
    second = AgentNode(model="gpt-4o-mini", name="second", prompt_key="answer")
    first >> second
    graph = Graph(first)
    bound = bind_strategies(
        graph,
        [
            {"target": "first", "strategy": {"type": "cot"}},
            {
                "target": "second",
                "strategy": {"type": "plan_and_solve", "config": {"max_plan_steps": 3}},
            },
        ],
    )
    assert bound == {
        "first": ChainOfThoughtStrategy(),
        "second": PlanAndSolveStrategy(3),
    }
    bind_strategies(graph, [{"target": "first", "strategy": {"type": "react"}}])
    assert second.agent.strategy == PlanAndSolveStrategy(3)
    with pytest.raises(AgentConfigError, match="'nope', which is not an agent node"):
        bind_strategies(graph, [{"target": "nope", "strategy": {"type": "react"}}])
    assert second.agent.strategy == PlanAndSolveStrategy(3)  # unchanged

    assert isinstance(second.agent.config.model, OpenAIModel)
    assert (
        replace_models(graph, lambda node_id, old: EchoModel(prefix=f"{node_id}: "))
        == 2
    )
    result = asyncio.run(graph.run({"prompt": "x"}))
    assert result.outputs["first"]["answer"].startswith("first: ")
    echo: Any = second.agent.config.model
    assert echo.requests[0]["messages"][1]["content"].startswith("first: ")
    with pytest.raises(AgentConfigError, match="factory gave"):
        replace_models(graph, lambda node_id, old: "not a model")


def test_a_spec_cannot_send_the_environment_key_elsewhere(
    fake_openai: FakeOpenAIServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-env-secret")
    fake_openai.add(reply("hi"), reply("hi"))
    spec = {"model_id": "m", "base_url": fake_openai.base_url, "max_retries": 0}
    asyncio.run(model_from_spec(spec).complete([{"role": "user", "content": "x"}]))
    assert "Authorization" not in fake_openai.requests[0]["headers"]
    # The endpoint the environment names gets the key, however the spec spells it.
    monkeypatch.setenv("OPENAI_BASE_URL", fake_openai.base_url)
    spec["base_url"] = fake_openai.base_url + "/"
    asyncio.run(model_from_spec(spec).complete([{"role": "user", "content": "x"}]))
    assert fake_openai.requests[1]["headers"]["Authorization"] == "Bearer sk-env-secret"
    assert model_from_spec({"model_id": "m"}).has_api_key


def test_spec_errors_are_named() -> None:
    assert isinstance(model_from_spec({"provider": "echo"}), EchoModel)
    assert isinstance(
        model_from_spec({"provider": "scripted", "script": ["x"]}), ScriptedModel
    )
    openai = model_from_spec(
        {"model_id": "m", "base_url": "http://127.0.0.1:9/v1", "pricing": [1.0, 2.0]}
    )
    assert isinstance(openai, OpenAIModel) and openai.pricing is not None
    bounded = model_from_spec(
        {"model_id": "m", "timeout": 5, "deadline": 20, "max_response_bytes": 9}
    )
    assert (bounded.timeout, bounded.deadline, bounded.max_response_bytes) == (
        5.0,
        20.0,
        9,
    )
    with pytest.raises(AgentConfigError, match="api_key must not be stored"):
        model_from_spec({"model_id": "m", "api_key": "sk-x"})
    with pytest.raises(AgentConfigError, match="unknown model provider 'magic'"):
        model_from_spec({"provider": "magic"})
    with pytest.raises(AgentConfigError, match=r"unknown key\(s\) \['temperature'\]"):
        model_from_spec({"model_id": "m", "temperature": 0})
    with pytest.raises(AgentConfigError, match="script must be a list"):
        model_from_spec({"provider": "scripted"})
    with pytest.raises(AgentConfigError, match="model is required"):
        agent_from_spec({})
    with pytest.raises(AgentConfigError, match=r"unknown key\(s\) \['brain'\]"):
        agent_from_spec({"model": "m", "brain": 1})
    with pytest.raises(AgentConfigError, match="list of graph tool names"):
        agent_from_spec({"model": "m", "tools": [1]})
    with pytest.raises(AgentConfigError, match="unknown reasoning strategy"):
        agent_from_spec({"model": "m", "strategy": "guess"})
    with pytest.raises(Exception, match="not both"):
        AgentNode(agent_from_spec({"model": "m"}), model="m")
