"""An agent with tools under a policy, offline by default, against a real model on request.

Run it as is: a ScriptedModel plays the model, so it needs no key and no network::

    python examples/agent_example.py

Point it at any OpenAI-compatible endpoint by setting one variable (plus the usual
``OPENAI_API_KEY``, and ``OPENAI_BASE_URL`` for a non-OpenAI server, ``MODEL_ID`` to pick
the model)::

    SPARK_MODEL=openai OPENAI_API_KEY=sk-... python examples/agent_example.py
    SPARK_MODEL=openai OPENAI_BASE_URL=http://localhost:11434/v1 MODEL_ID=llama3.1 \\
        python examples/agent_example.py
"""

from __future__ import annotations

import asyncio
import os
from typing import Any, Dict

from spark_core.agents import Agent, AgentConfig, AgentNode, ReActStrategy
from spark_core.governance import PolicyEffect, PolicyRule, PolicySet, tool
from spark_core.graphs import Graph
from spark_core.graphs.mission_control import Guardrails
from spark_core.models import ScriptedModel

POPULATIONS_M = {"lima": 10.1, "paris": 11.3, "tokyo": 37.1}


@tool
def city_population(city: str) -> float:
    """Return the metro population of a city, in millions.

    Args:
        city: The city's name.
    """
    return POPULATIONS_M.get(city.strip().lower(), 0.0)


@tool
def add(a: float, b: float) -> float:
    """Add two numbers.

    Args:
        a: First number.
        b: Second number.
    """
    return round(a + b, 3)


@tool
def delete_file(path: str) -> str:
    """Delete a file.

    Args:
        path: The file.
    """
    raise RuntimeError("never reached: the policy denies it")


POLICY = PolicySet(
    name="least_privilege",
    rules=[
        PolicyRule(
            name="no_deletes",
            effect=PolicyEffect.DENY,
            actions=["tool:execute"],
            resources=["tool://delete_file"],
            description="Agents never delete files",
        )
    ],
)

# What the offline model "decides": look both cities up at once (and try to delete a
# file, which the policy refuses), add, answer in JSON. Token counts as a real model reports.
OFFLINE_SCRIPT = [
    {
        "text": "Thought: I need both populations, and my old notes are stale.",
        "tool_calls": [
            {"name": "city_population", "arguments": {"city": "Lima"}},
            {"name": "city_population", "arguments": {"city": "Paris"}},
            {"name": "delete_file", "arguments": {"path": "notes.txt"}},
        ],
        "usage": {"prompt_tokens": 300, "completion_tokens": 40},
    },
    {
        "text": "Thought: deleting was refused; fine. Now add them.",
        "tool_calls": [{"name": "add", "arguments": {"a": 10.1, "b": 11.3}}],
        "usage": {"prompt_tokens": 420, "completion_tokens": 20},
    },
    {
        "text": 'Thought: done.\nFinal Answer: {"cities": ["Lima", "Paris"], '
        '"population_millions": 21.4}',
        "usage": {"prompt_tokens": 480, "completion_tokens": 25},
    },
]


def make_model() -> Any:
    """The model: offline by default; SPARK_MODEL=openai uses an OpenAI-compatible endpoint."""
    if os.environ.get("SPARK_MODEL", "scripted") == "openai":
        from spark_core.models.openai import OpenAIModel

        return OpenAIModel(model_id=os.getenv("MODEL_ID", "gpt-4o-mini"))
    # Priced like gpt-4o-mini, so the offline run shows what the budget guardrail sees.
    return ScriptedModel(OFFLINE_SCRIPT, pricing=(0.15, 0.60))


def make_agent() -> Agent:
    """The production-style configuration from the guide's best practices."""
    return Agent(
        config=AgentConfig(
            model=make_model(),
            system_prompt="You answer questions about cities. Use the tools for every number.",
            tools=[city_population, add, delete_file],
            policy_set=POLICY,
            output_mode="json",
            reasoning_strategy=ReActStrategy(),
            max_steps=int(os.getenv("MAX_STEPS", "8")),
            parallel_tool_execution=True,
            name="city_analyst",
        )
    )


QUESTION = (
    "What is the combined metro population of Lima and Paris, in millions? Answer as JSON "
    'like {"cities": [...], "population_millions": <number>}.'
)


async def main() -> Dict[str, Any]:
    """Run the agent inside a graph with a cost guardrail and print what happened."""
    graph = Graph(AgentNode(make_agent()), observers=[Guardrails(max_cost=0.50)])
    result = await graph.run({"prompt": QUESTION})
    out: Dict[str, Any] = result.content
    print("answer:", out["answer"])
    print(
        "steps:",
        out["steps"],
        "| tokens:",
        out["usage"]["total_tokens"],
        f"| cost: ${out['cost_usd']:.6f}",
    )
    for call in out["tool_calls"]:
        print(
            f"  tool {call['name']}({call['arguments']}) -> {call['status']}: "
            f"{call['result'] if call['status'] == 'ok' else call['error']}"
        )
    return out


if __name__ == "__main__":
    asyncio.run(main())
