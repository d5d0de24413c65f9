"""Benchmark the agent layer's own overhead (prints figures; not a test).

Measured in one process, on loopback, with no real model:

1. The agent loop with a ScriptedModel: microseconds per run and per model step that the
   agent itself adds (prompting, parsing, governance executor, transcript), for a two-step
   ReAct run (one tool call, then the answer), three ways: alone without a policy; alone
   with a policy set (each tool call is evaluated and audited in the executor's memory,
   which keeps the newest 500 records); and inside a graph node (``AgentNode``).
2. ``OpenAIModel.complete`` against a local OpenAI-compatible server vs a raw
   ``requests.Session.post`` of the same body: the model's overhead over plain HTTP.

Usage::

    python bench/agents.py [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import time
from typing import Any, Callable, Dict, List

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from spark_core.agents import Agent, AgentConfig, AgentNode  # noqa: E402
from spark_core.governance import PolicyEffect, PolicyRule, PolicySet  # noqa: E402
from spark_core.governance import tool  # noqa: E402
from spark_core.graphs import Graph  # noqa: E402
from spark_core.models import ScriptedModel  # noqa: E402
from spark_core.models.openai import OpenAIModel  # noqa: E402
from tests.agents.fake_openai import FakeOpenAIServer, reply  # noqa: E402


@tool
def add(a: int, b: int) -> int:
    """Add two numbers.

    Args:
        a: First.
        b: Second.
    """
    return a + b


SCRIPT: List[Any] = [
    {"tool_calls": [{"name": "add", "arguments": {"a": 1, "b": 2}}]},
    "Thought: easy.\nFinal Answer: 3",
]
POLICY = PolicySet(
    "bench",
    [
        PolicyRule(
            name="no_delete",
            effect=PolicyEffect.DENY,
            actions=["tool:execute"],
            resources=["tool://delete_*"],
        )
    ],
)


def median_us(samples: List[float]) -> float:
    return statistics.median(samples) * 1e6


async def agent_runs(n: int, policy: Any, in_graph: bool) -> float:
    """Median seconds per two-step run."""
    model = ScriptedModel(SCRIPT, loop=True)
    agent = Agent(
        config=AgentConfig(model=model, tools=[add], policy_set=policy, memory=False)
    )
    graph = Graph(AgentNode(agent)) if in_graph else None
    samples = []
    for _ in range(n):
        started = time.perf_counter()
        if graph is not None:
            await graph.run({"prompt": "1+2?"})
        else:
            await agent.run("1+2?")
        samples.append(time.perf_counter() - started)
    return statistics.median(samples)


def http_calls(n: int) -> Dict[str, float]:
    import requests

    messages = [{"role": "user", "content": "hi"}]
    with FakeOpenAIServer() as server:
        server.add(*[reply("ok") for _ in range(2 * n + 10)])
        model = OpenAIModel("gpt-4o-mini", base_url=server.base_url, api_key="sk-bench")
        session = requests.Session()
        url = server.base_url + "/chat/completions"
        body = {"model": "gpt-4o-mini", "messages": messages}

        def raw_call() -> None:
            session.post(
                url, json=body, headers={"Authorization": "Bearer sk-bench"}, timeout=10
            ).json()

        async def interleaved() -> Dict[str, List[float]]:
            # Alternate the two so warm-up and machine noise hit both alike.
            out: Dict[str, List[float]] = {"raw": [], "model": []}
            for _ in range(n):
                started = time.perf_counter()
                raw_call()
                out["raw"].append(time.perf_counter() - started)
                started = time.perf_counter()
                await model.complete(messages)
                out["model"].append(time.perf_counter() - started)
            return out

        samples = asyncio.run(interleaved())
        model.close()
        session.close()
    return {
        "raw_us": median_us(samples["raw"]),
        "model_us": median_us(samples["model"]),
    }


def report(label: str, fn: Callable[[], float], steps: int) -> None:
    seconds = fn()
    print(
        f"{label:<46} {seconds * 1e6:9.1f} us/run  {seconds * 1e6 / steps:8.1f} us/step"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer iterations")
    args = parser.parse_args()
    n = 200 if args.quick else 2000
    print(f"agent loop, 2 model steps + 1 tool call, median of {n} runs")
    report("agent alone, no policy", lambda: asyncio.run(agent_runs(n, None, False)), 2)
    report(
        "agent alone, policy set (audit in memory)",
        lambda: asyncio.run(agent_runs(n, POLICY, False)),
        2,
    )
    report(
        "agent as a graph node (AgentNode)",
        lambda: asyncio.run(agent_runs(n, None, True)),
        2,
    )
    calls = 100 if args.quick else 500
    figures = http_calls(calls)
    print(f"\nchat completion on loopback, median of {calls} calls")
    print(f"{'raw requests.Session.post':<46} {figures['raw_us']:9.1f} us")
    print(
        f"{'OpenAIModel.complete (worker thread)':<46} {figures['model_us']:9.1f} us "
        f"({figures['model_us'] / figures['raw_us']:.2f}x)"
    )


if __name__ == "__main__":
    main()
