"""The graph RSI improves in these tests: a lookup that times out on slow inputs, then an
agent whose system prompt gives poor answers (scored by :func:`score`)."""

from __future__ import annotations

import asyncio
from typing import Any, Dict, List

from spark_core.models import Message, ScriptedModel
from spark_core.nodes import ExecutionContext, Node
from spark_core.spec import MissionSpec

#: How long a slow lookup takes; the baseline's timeout is well below it.
SLOW_SECONDS = 0.6
TIMEOUT_SECONDS = 0.3


class Lookup(Node):
    """Finds the customer's record, slowly for inputs marked ``slow``; reports a cost."""

    async def process(self, context: ExecutionContext) -> Dict[str, Any]:
        content = dict(context.inputs.content or {})
        if content.get("slow"):
            await asyncio.sleep(SLOW_SECONDS)
        # A fast request never yields, so a busy machine cannot time it out.
        context.report_cost(0.001, tokens=10, source="lookup")
        return {"prompt": str(content.get("question", ""))}


def polite_model() -> ScriptedModel:
    """A model whose answer depends on the system prompt: polite only when told to be."""

    def answer(messages: List[Message]) -> str:
        system = " ".join(m.content or "" for m in messages if m.role == "system")
        if "empath" in system.lower():
            return "Thank you for reaching out, happy to help."
        return "No."

    return ScriptedModel([answer], loop=True)


def score(inputs: Any, output: Any) -> float:
    """1.0 for a polite answer, else 0.0."""
    answer = str((output or {}).get("answer", ""))
    return 1.0 if "thank" in answer.lower() else 0.0


def mission(version: str = "1.0.0") -> MissionSpec:
    """The customer-service mission (with a DENY policy that RSI must keep)."""
    return MissionSpec.from_dict(
        {
            "mission_id": "customer_service_agent",
            "version": version,
            "graph": {
                "id": "customer_service_agent",
                "start": "lookup",
                "nodes": [
                    {
                        "id": "lookup",
                        "type": "tests.rsi.sample:Lookup",
                        "config": {"timeout": {"timeout_seconds": TIMEOUT_SECONDS}},
                    },
                    {
                        "id": "answer",
                        "type": "spark_core.agents.node:AgentNode",
                        "params": {
                            "model": {
                                "provider": "scripted",
                                "script": ["No."],
                                "loop": True,
                            },
                            "system_prompt": "Answer.",
                        },
                    },
                ],
                "edges": [{"source": "lookup", "target": "answer"}],
            },
            "metadata": {
                "governance": {
                    "policies": [
                        {
                            "name": "safety",
                            "rules": [
                                {
                                    "name": "no-refunds",
                                    "effect": "deny",
                                    "actions": ["tool:execute"],
                                    "resources": ["tool://refund"],
                                }
                            ],
                        }
                    ]
                }
            },
        }
    )


def inputs(count: int) -> List[Dict[str, Any]]:
    """``count`` inputs, every other one slow."""
    return [
        {"question": f"where is order {i}?", "slow": i % 2 == 1} for i in range(count)
    ]
