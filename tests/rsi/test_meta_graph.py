"""RSI end to end: real runs -> findings -> proposals -> validation -> A/B -> 1.1.0 -> rollback."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from spark_core.graphs import SQLiteStateBackend
from spark_core.models import ScriptedModel
from spark_core.rsi import (
    ABTestConfig,
    DeploymentError,
    ExperienceDatabase,
    RSIError,
    RSIMetaGraph,
    RSIMetaGraphConfig,
    RSISummary,
    SafetyPolicy,
    SpecRepository,
)
from spark_core.telemetry import TelemetryConfig, TelemetryManager
from tests.rsi import sample
from tests.rsi.conftest import ALLOWED, fill
from tests.rsi.test_deploy import FakeRegistry
from tests.rsi.test_hypothesize import DROP_DENY, PROMPT


def _hypothesis_model() -> ScriptedModel:
    return ScriptedModel([json.dumps({"proposals": [PROMPT, DROP_DENY]})], loop=True)


def _rsi(db: ExperienceDatabase, tmp_path: Path, **config: Any) -> RSIMetaGraph:
    options: Any = dict(
        graph_id="customer_service_agent",
        graph_version="1.0",
        max_hypotheses=3,
        deploy=True,
        repository=str(tmp_path / "versions"),
        safety=SafetyPolicy(allowed_modules=tuple(ALLOWED)),
        ab_test=ABTestConfig(concurrency=10),
    )
    options.update(config)
    extra = {k: options.pop(k) for k in ("state_backend", "telemetry") if k in options}
    return RSIMetaGraph(
        config=RSIMetaGraphConfig(**options),
        experience_db=db,
        model=_hypothesis_model(),
        scorer=sample.score,
        models=lambda: {"answer": sample.polite_model()},
        registry=FakeRegistry(),
        **extra,
    )


def test_the_loop_deploys_the_winner_as_1_1_0_and_rollback_restores_1_0(
    filled_db: ExperienceDatabase, tmp_path: Path
) -> None:
    rsi = _rsi(filled_db, tmp_path)
    summary = asyncio.run(rsi.run(target_graph=sample.mission()))

    assert summary.status == "deployed" and summary.deployed
    assert (summary.version_before, summary.version_after) == ("1.0.0", "1.1.0")
    assert summary.runs_analyzed == 20 and summary.success_rate == 0.5
    verdicts = {o.proposal.kind.value: o for o in summary.proposals}
    assert [o.proposal.id for o in summary.proposals] == ["p1", "p2", "p3"]
    assert verdicts["timeout"].verdict == "deployed"
    assert verdicts["prompt"].verdict == "won"
    assert verdicts["policy"].verdict == "refused"
    assert verdicts["policy"].reasons == [
        "drops DENY rule 'no-refunds' of policy 'safety'"
    ]
    # Two candidates tested, each at alpha 0.05 / 2.
    assert [t.proposal_id for t in summary.ab_tests] == ["p1", "p2"]
    assert all(t.alpha == 0.025 and t.samples == 20 for t in summary.ab_tests)
    assert summary.winner == "p1"
    assert "timeout_seconds: 0.3 -> 1.2" in summary.deployment.diff

    repo = SpecRepository(tmp_path / "versions")
    current = repo.load("customer_service_agent")
    assert current.version == "1.1.0"
    assert current.graph.node("lookup").config.timeout.timeout_seconds == 1.2
    assert rsi.registry.calls[-1]["flow_id"] == "customer_service_agent"

    # The summary prints readably and round-trips through JSON.
    text = str(summary)
    assert "RSI customer_service_agent: deployed (version 1.0.0 -> 1.1.0)" in text
    assert "p3 policy safety (model): refused" in text
    assert (
        RSISummary.from_dict(json.loads(summary.to_json())).to_dict()
        == summary.to_dict()
    )
    (stored,) = filled_db.rsi_history("customer_service_agent")
    assert stored["summary"] == summary.to_dict()

    back = rsi.rollback()
    assert (back.version, back.previous_version) == ("1.0.0", "1.1.0")
    assert repo.load("customer_service_agent").to_dict() == sample.mission().to_dict()
    timeouts = [c["spec"]["nodes"][0]["config"]["timeout"] for c in rsi.registry.calls]
    assert timeouts == [{"timeout_seconds": 1.2}, {"timeout_seconds": 0.3}]


def test_the_next_run_improves_the_deployed_version(
    filled_db: ExperienceDatabase, tmp_path: Path
) -> None:
    rsi = _rsi(filled_db, tmp_path)
    asyncio.run(rsi.run(target_graph=sample.mission()))
    # 1.1.0 serves traffic: no more timeouts, answers still poor.
    current = SpecRepository(tmp_path / "versions").load("customer_service_agent")
    asyncio.run(fill(filled_db, version="1.1.0", mission=current))
    rsi.config.graph_version = "1.1.0"
    second = asyncio.run(rsi.run())  # the repository's current version
    assert second.version_before == "1.1.0" and second.status == "deployed"
    assert [f.kind for f in second.findings if f.severity != "info"] == ["low_score"]
    assert second.winner == "p1" and second.proposals[0].proposal.kind.value == "prompt"
    assert second.version_after == "1.2.0"


def test_deploy_waits_for_approval_and_resumes(
    filled_db: ExperienceDatabase, tmp_path: Path
) -> None:
    backend = SQLiteStateBackend(str(tmp_path / "rsi-state.db"))
    rsi = _rsi(filled_db, tmp_path, require_approval=True, state_backend=backend)
    summary = asyncio.run(rsi.run(target_graph=sample.mission()))
    assert summary.status == "awaiting_approval" and summary.approval_request_id
    assert summary.winner == "p1" and summary.version_after == "1.0.0"
    assert (
        SpecRepository(tmp_path / "versions").current_version("customer_service_agent")
        is None
    )

    async def approve_and_resume() -> RSISummary:
        await rsi.graph.approvals.resolve(
            summary.approval_request_id, "approved", reviewer="ana"
        )
        return await rsi.resume(summary.run_id)

    done = asyncio.run(approve_and_resume())
    assert done.status == "deployed" and done.version_after == "1.1.0"


def test_without_deploy_the_winner_is_only_named(
    filled_db: ExperienceDatabase, tmp_path: Path
) -> None:
    rsi = _rsi(filled_db, tmp_path, deploy=False, repository=None)
    summary = rsi.run_sync(target_graph=sample.mission())
    assert summary.status == "winner_not_deployed" and summary.winner == "p1"
    assert summary.deployment is None and summary.version_after == "1.0.0"


def test_offline_without_a_model_and_with_telemetry(
    filled_db: ExperienceDatabase, tmp_path: Path
) -> None:
    manager = TelemetryManager(TelemetryConfig(backend="memory"))
    rsi = _rsi(filled_db, tmp_path, deploy=False, repository=None, telemetry=manager)
    rsi.model = None
    summary = asyncio.run(rsi.run(target_graph=sample.mission()))
    assert [p.proposal.kind.value for p in summary.proposals] == ["timeout"]
    spans = [s["name"] for s in manager.query_spans(kind="node")]
    assert spans == ["analyze", "hypothesize", "validate", "test"]


def test_empty_window_and_bad_configuration(
    experience_db: ExperienceDatabase, tmp_path: Path
) -> None:
    rsi = _rsi(experience_db, tmp_path)
    summary = asyncio.run(rsi.run(target_graph=sample.mission()))
    assert summary.status == "no_findings" and summary.proposals == []
    with pytest.raises(RSIError, match="repository"):
        RSIMetaGraphConfig(graph_id="g", deploy=True)
    with pytest.raises(RSIError, match="max_hypotheses"):
        RSIMetaGraphConfig(graph_id="g", max_hypotheses=-1)
    with pytest.raises(RSIError, match="target_graph must be"):
        asyncio.run(rsi.run(target_graph=42))


def test_an_ab_test_that_cannot_run_decides_nothing(
    filled_db: ExperienceDatabase, tmp_path: Path
) -> None:
    data = sample.mission().to_dict()
    data["graph"]["tools"] = [{"name": "refund"}]  # no simulation stand-in
    mission = type(sample.mission()).from_dict(data)
    rsi = _rsi(
        filled_db,
        tmp_path,
        ab_test=ABTestConfig(allow_real_tools=False),
        max_hypotheses=1,
    )
    summary = asyncio.run(rsi.run(target_graph=mission))
    assert summary.status == "no_winner"
    (test,) = summary.ab_tests
    assert test.decision == "inconclusive"
    assert test.reason.startswith("the A/B test could not run: baseline: no simulation")


def test_a_stale_baseline_is_not_deployed_over_the_current_version(
    filled_db: ExperienceDatabase, tmp_path: Path
) -> None:
    rsi = _rsi(filled_db, tmp_path, max_hypotheses=1)
    assert asyncio.run(rsi.run(target_graph=sample.mission())).version_after == "1.1.0"
    # Improving 1.0.0 again would undo 1.1.0's change: refused, nothing written.
    with pytest.raises(
        DeploymentError, match="not the repository's current version 1.1.0"
    ):
        asyncio.run(rsi.run(target_graph=sample.mission()))
    repo = SpecRepository(tmp_path / "versions")
    assert [r.version for r in repo.history("customer_service_agent")] == [
        "1.0.0",
        "1.1.0",
    ]


def test_a_rejected_deploy_deploys_nothing(
    filled_db: ExperienceDatabase, tmp_path: Path
) -> None:
    rsi = _rsi(filled_db, tmp_path, require_approval=True)
    summary = asyncio.run(rsi.run(target_graph=sample.mission()))

    async def reject_and_resume() -> RSISummary:
        await rsi.graph.approvals.resolve(
            summary.approval_request_id, "rejected", reviewer="ana"
        )
        return await rsi.resume(summary.run_id)

    done = asyncio.run(reject_and_resume())
    assert done.status == "rejected" and done.deployment is None
    assert done.version_after == "1.0.0" and "not approved" in done.notes[-1]
    assert (
        SpecRepository(tmp_path / "versions").current_version("customer_service_agent")
        is None
    )


def test_a_graph_a_spec_cannot_describe_is_refused_clearly(
    experience_db: ExperienceDatabase, tmp_path: Path
) -> None:
    from spark_core.agents import Agent, AgentConfig, AgentNode
    from spark_core.graphs import Graph

    agent = Agent(config=AgentConfig(model=ScriptedModel(["hi"])))
    graph = Graph(AgentNode(agent, name="answer"))
    rsi = _rsi(experience_db, tmp_path)
    with pytest.raises(RSIError, match="cannot describe the target graph as a spec"):
        asyncio.run(rsi.run(target_graph=graph))
