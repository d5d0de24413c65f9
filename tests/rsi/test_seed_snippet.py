"""The seed's RSI snippet, as written (``spark.`` -> ``spark_core.``), with ``OpenAIModel``
talking to the fake OpenAI-compatible server the agent tests use."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from spark_core.agents import AgentNode
from spark_core.graphs import Graph
from spark_core.models.openai import OpenAIModel
from spark_core.rsi import ExperienceDatabase, RSISummary
from tests.agents.fake_openai import FakeOpenAIServer, reply
from tests.rsi import sample

SECRET = "sk-test-SECRET-rsi-0123456789"
PROPOSAL = {
    "kind": "prompt",
    "target": "answer",
    "change": {"system_prompt": "Be empathetic and thank the customer."},
    "finding": "low_score",
    "expected_effect": "friendlier answers",
}


def test_seed_snippet_runs_as_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)  # the snippet writes "experience.db" where it runs
    with FakeOpenAIServer([reply(json.dumps({"proposals": [PROPOSAL]}))]) as server:
        monkeypatch.setenv("OPENAI_BASE_URL", server.base_url)
        monkeypatch.setenv("OPENAI_API_KEY", SECRET)
        summary = asyncio.run(_snippet())
    (request,) = server.requests
    assert request["body"]["model"] == "gpt-4o"
    assert request["body"]["response_format"] == {"type": "json_object"}
    assert "low_score" in request["body"]["messages"][1]["content"]
    assert summary.runs_analyzed == 20 and summary.version_before == "1.0.0"
    (outcome,) = summary.proposals
    assert (
        outcome.proposal.source == "model" and outcome.proposal.kind.value == "prompt"
    )
    # Without a scoring function both arms look alike: no winner, nothing deployed.
    assert outcome.verdict == "inconclusive" and summary.status == "no_winner"
    printed = capsys.readouterr().out
    assert printed.startswith("RSI Result: RSI customer_service_agent: no_winner")
    assert SECRET not in printed and SECRET not in summary.to_json()
    assert (tmp_path / "experience.db").exists()


async def _snippet() -> RSISummary:
    from spark_core.rsi import ExperienceDatabase, RSIMetaGraph, RSIMetaGraphConfig

    # 1. Initialize Experience DB
    experience_db = ExperienceDatabase("experience.db")
    await experience_db.initialize()
    my_graph = await _graph_with_history(experience_db)

    # 2. Configure RSI
    rsi_config = RSIMetaGraphConfig(
        graph_id="customer_service_agent",
        graph_version="1.0",
        analysis_window_hours=24,
        max_hypotheses=3,
    )

    # 3. Create Meta-Graph
    rsi = RSIMetaGraph(
        config=rsi_config,
        experience_db=experience_db,
        model=OpenAIModel(model_id="gpt-4o"),
    )

    # 4. Run Improvement Loop
    summary = await rsi.run(target_graph=my_graph)
    print(f"RSI Result: {summary}")
    return summary


async def _graph_with_history(experience_db: ExperienceDatabase) -> Graph:
    """A customer-service graph of spark_core nodes, run 20 times into the database."""
    answer = AgentNode(
        name="answer",
        model={"provider": "scripted", "script": ["No."], "loop": True},
        system_prompt="Answer.",
    )
    observer = experience_db.observer(
        "customer_service_agent", "1.0", scorer=sample.score
    )
    graph = Graph(answer, graph_id="customer_service_agent", observers=[observer])
    for item in sample.inputs(20):
        await graph.run(item["question"])
    return graph
