"""Recursive self-improvement end to end, offline.

A customer-service mission has two problems: its lookup node times out on slow requests, and
its agent's system prompt gives curt answers. The script records 20 real runs in an
experience database, then runs RSI: the analysis finds the timeouts and the low score, the
built-in rules propose a longer timeout, a (scripted) model proposes a better prompt and an
unsafe policy change, validation refuses the unsafe one, A/B tests measure the other two,
the winner is deployed as version 1.1.0, and one call rolls it back.

    python examples/rsi_example.py
"""

from __future__ import annotations

import asyncio
import json
import tempfile
from pathlib import Path
from typing import Any, Dict, List

from spark_core.agents import replace_models
from spark_core.kit.loader import SpecLoader
from spark_core.models import Message, ScriptedModel
from spark_core.nodes import ExecutionContext, Node
from spark_core.rsi import (
    ABTestConfig,
    ExperienceDatabase,
    RSIMetaGraph,
    RSIMetaGraphConfig,
    SafetyPolicy,
)
from spark_core.spec import MissionSpec

ALLOWED = ("spark_core", __name__)


class Lookup(Node):
    """Finds the customer's order: slow for some requests."""

    async def process(self, context: ExecutionContext) -> Dict[str, Any]:
        request = dict(context.inputs.content or {})
        if request.get("slow"):
            await asyncio.sleep(0.6)
        context.report_cost(0.001, tokens=10, source="orders-db")
        return {"prompt": request["question"]}


MISSION = MissionSpec.from_dict(
    {
        "mission_id": "customer_service_agent",
        "version": "1.0.0",
        "graph": {
            "id": "customer_service_agent",
            "start": "lookup",
            "nodes": [
                {
                    "id": "lookup",
                    "type": f"{__name__}:Lookup",
                    "config": {"timeout": {"timeout_seconds": 0.3}},
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


def support_model() -> ScriptedModel:
    """Stands in for the production model: polite only when the prompt asks for empathy."""

    def answer(messages: List[Message]) -> str:
        system = " ".join(m.content or "" for m in messages if m.role == "system")
        return "Thank you for reaching out!" if "empath" in system else "No."

    return ScriptedModel([answer], loop=True)


def politeness(inputs: Any, output: Any) -> float:
    """The scoring function: 1 for a polite answer."""
    return 1.0 if "thank" in str((output or {}).get("answer", "")).lower() else 0.0


def improvement_model() -> ScriptedModel:
    """Stands in for the model RSI asks for ideas (OpenAIModel in production)."""
    ideas = [
        {
            "kind": "prompt",
            "target": "answer",
            "change": {
                "system_prompt": "Be empathetic; thank the customer, then answer."
            },
            "finding": "low_score",
            "expected_effect": "friendlier answers",
        },
        {
            "kind": "policy",
            "target": "safety",
            "change": {"remove_rules": ["no-refunds"]},
            "finding": "run_failures",
            "expected_effect": "fewer blocked requests",
        },
    ]
    return ScriptedModel([json.dumps({"proposals": ideas})], loop=True)


async def main(folder: Path) -> None:
    experience_db = ExperienceDatabase(str(folder / "experience.db"))
    await experience_db.initialize()

    # 1. Production traffic of version 1.0, recorded automatically by an observer.
    observer = experience_db.observer(
        "customer_service_agent", "1.0", scorer=politeness
    )
    graph = SpecLoader(ALLOWED).load_mission(MISSION, observers=[observer])
    model = support_model()
    replace_models(graph, lambda node_id, old: model)
    for i in range(20):
        try:
            await graph.run({"question": f"Where is order {i}?", "slow": i % 2 == 1})
        except Exception:
            pass  # a timed-out run is recorded as failed
    print(f"recorded {len(experience_db.query_runs('customer_service_agent'))} runs")

    # 2. One RSI pass: analyze -> hypothesize -> validate -> A/B test -> deploy.
    rsi = RSIMetaGraph(
        config=RSIMetaGraphConfig(
            graph_id="customer_service_agent",
            graph_version="1.0",
            analysis_window_hours=24,
            max_hypotheses=3,
            deploy=True,
            repository=str(folder / "versions"),
            safety=SafetyPolicy(allowed_modules=ALLOWED),
            ab_test=ABTestConfig(concurrency=10),
        ),
        experience_db=experience_db,
        model=improvement_model(),
        scorer=politeness,
        models=lambda: {"answer": support_model()},
    )
    summary = await rsi.run(target_graph=MISSION)
    print(summary)

    # 3. Changed our mind? One call puts 1.0.0 back.
    record = rsi.rollback()
    print(f"rolled back to {record.version} (was {record.previous_version})")
    experience_db.close()


if __name__ == "__main__":
    with tempfile.TemporaryDirectory() as tmp:
        asyncio.run(main(Path(tmp)))
