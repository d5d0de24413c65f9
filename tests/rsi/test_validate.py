"""Validate: proposals are applied to a copy and must stay valid, governed and in bounds."""

from __future__ import annotations

import pytest

from spark_core.rsi import ExperienceDatabase
from spark_core.rsi.analysis import Analysis, NodeStats, analyze
from spark_core.rsi.proposals import Proposal, ProposalKind
from spark_core.rsi.validate import SafetyPolicy, governance_problems, validate_proposal
from spark_core.spec import MissionSpec
from tests.rsi import sample

SAFE = SafetyPolicy(allowed_modules=("spark_core", "tests.rsi"))


def _proposal(kind: str, target: str, change: dict) -> Proposal:
    return Proposal.from_dict(
        {"kind": kind, "target": target, "change": change}, id="p"
    )


def test_a_safe_proposal_is_accepted_with_its_candidate() -> None:
    verdict = validate_proposal(
        _proposal("timeout", "lookup", {"timeout_seconds": 1.2}), sample.mission(), SAFE
    )
    assert verdict.accepted and verdict.reasons == []
    assert verdict.candidate is not None
    assert verdict.candidate.graph.node("lookup").config.timeout.timeout_seconds == 1.2


def test_dropping_a_deny_rule_is_refused_with_the_reason() -> None:
    unsafe = _proposal("policy", "safety", {"remove_rules": ["no-refunds"]})
    verdict = validate_proposal(unsafe, sample.mission(), SAFE)
    assert not verdict.accepted
    assert verdict.reasons == ["drops DENY rule 'no-refunds' of policy 'safety'"]


def test_governance_loosening_in_every_form_is_caught() -> None:
    base = sample.mission()
    weaker = _proposal(
        "policy",
        "safety",
        {
            "remove_rules": ["no-refunds"],
            "add_rules": [
                {
                    "name": "no-refunds",
                    "effect": "require_approval",
                    "resources": ["tool://refund"],
                }
            ],
        },
    ).apply(base)
    assert governance_problems(base, weaker) == [
        "changes DENY rule 'no-refunds' of policy 'safety'"
    ]
    stricter = _proposal(
        "policy", "safety", {"add_rules": [{"name": "no-deletes", "effect": "deny"}]}
    ).apply(base)
    assert governance_problems(base, stricter) == []
    data = base.to_dict()
    data["metadata"]["governance"]["policies"][0]["default_effect"] = "deny"
    strict_default = type(base).from_dict(data)
    loosened = _proposal("policy", "safety", {"default_effect": "allow"}).apply(
        strict_default
    )
    assert governance_problems(strict_default, loosened) == [
        "weakens the default effect of policy 'safety' from deny to allow"
    ]


def test_modules_tools_models_and_kinds_outside_the_policy_are_refused() -> None:
    base = sample.mission()
    verdict = validate_proposal(
        _proposal("timeout", "lookup", {"timeout_seconds": 1}), base, SafetyPolicy()
    )
    assert verdict.reasons == [
        "node 'lookup' uses module 'tests.rsi.sample', which is not allowed"
    ]
    only_timeouts = SafetyPolicy(
        allowed_modules=SAFE.allowed_modules, allowed_kinds=(ProposalKind.TIMEOUT,)
    )
    verdict = validate_proposal(
        _proposal("model", "answer", {"model": "gpt-4o"}), base, only_timeouts
    )
    assert verdict.reasons == ["proposal kind 'model' is not allowed"]
    models = SafetyPolicy(
        allowed_modules=SAFE.allowed_modules, allowed_models=("gpt-4o-mini",)
    )
    verdict = validate_proposal(
        _proposal("model", "answer", {"model": "gpt-4o"}), base, models
    )
    assert verdict.reasons == ["model 'gpt-4o' is not allowed"]
    verdict = validate_proposal(
        _proposal("tool_swap", "lookup", {"old": "a", "new": "b"}), base, SAFE
    )
    assert verdict.reasons == [
        "does not apply: tool_swap proposal: node 'lookup' does not use tool 'a'"
    ]


def test_invalid_and_unloadable_candidates_are_refused() -> None:
    base = sample.mission()
    bad_edge = _proposal(
        "edge",
        "lookup->answer",
        {"condition": {"kind": "expr", "value": "$.outputs.x >"}},
    )
    verdict = validate_proposal(bad_edge, base, SAFE)
    assert not verdict.accepted and verdict.reasons[0].startswith("does not load")
    bad_strategy = _proposal("strategy", "answer", {"strategy": {"type": "telepathy"}})
    verdict = validate_proposal(bad_strategy, base, SAFE)
    assert not verdict.accepted
    assert "telepathy" in " ".join(verdict.reasons)


def test_the_cost_bound_uses_measured_costs(filled_db: ExperienceDatabase) -> None:
    analysis = analyze(filled_db.query_runs("customer_service_agent", "1.0"))
    retry = _proposal("retry", "lookup", {"max_retries": 3})
    tight = SafetyPolicy(allowed_modules=SAFE.allowed_modules, max_cost_per_run=0.001)
    verdict = validate_proposal(retry, sample.mission(), tight, analysis=analysis)
    # 10 of 20 lookups completed and reported 0.001: 0.0005 per run, x4 with 3 retries.
    assert verdict.estimated_cost_per_run == pytest.approx(0.002)
    assert verdict.reasons == [
        "estimated cost per run $0.0020 exceeds the bound $0.0010"
    ]
    loose = SafetyPolicy(allowed_modules=SAFE.allowed_modules, max_cost_per_run=0.01)
    assert validate_proposal(retry, sample.mission(), loose, analysis=analysis).accepted


def _agent_mission() -> MissionSpec:
    return MissionSpec.from_dict(
        {
            "mission_id": "research",
            "version": "1.0.0",
            "graph": {
                "id": "research",
                "start": "agent",
                "nodes": [
                    {
                        "id": "agent",
                        "type": "spark_core.agents.node:AgentNode",
                        "params": {
                            "model": {"provider": "openai", "model_id": "gpt-4o-mini"},
                            "tools": ["search"],
                        },
                    }
                ],
                "tools": [{"name": "search"}, {"name": "search_v2"}],
            },
        }
    )


def test_tool_swaps_stay_among_the_allowed_tools() -> None:
    mission = _agent_mission()
    ok = validate_proposal(
        _proposal("tool_swap", "agent", {"old": "search", "new": "search_v2"}), mission
    )
    assert ok.accepted, ok.reasons
    assert ok.candidate is not None
    assert ok.candidate.graph.node("agent").params["tools"] == ["search_v2"]
    shell = validate_proposal(
        _proposal("tool_swap", "agent", {"old": "search", "new": "shell"}), mission
    )
    assert "node 'agent' uses tool 'shell', which is not allowed" in shell.reasons
    narrow = SafetyPolicy(allowed_tools=("search",))
    refused = validate_proposal(
        _proposal("tool_swap", "agent", {"old": "search", "new": "search_v2"}),
        mission,
        narrow,
    )
    assert refused.reasons == [
        "node 'agent' uses tool 'search_v2', which is not allowed"
    ]


def test_a_model_swap_is_priced_against_the_cost_bound() -> None:
    analysis = Analysis(
        runs=10,
        success_rate=1.0,
        mean_score=None,
        mean_cost_usd=0.001,
        nodes={"agent": NodeStats("agent", attempts=10, executions=10, cost_usd=0.01)},
        findings=[],
    )
    bound = SafetyPolicy(max_cost_per_run=0.005)
    dearer = validate_proposal(
        _proposal("model", "agent", {"model": "gpt-4o"}),
        _agent_mission(),
        bound,
        analysis=analysis,
    )
    # gpt-4o costs (2.5 + 10) / (0.15 + 0.6) times gpt-4o-mini per million tokens.
    assert dearer.estimated_cost_per_run == pytest.approx(0.001 * 12.5 / 0.75)
    assert dearer.reasons == [
        "estimated cost per run $0.0167 exceeds the bound $0.0050"
    ]
    unknown = validate_proposal(
        _proposal("model", "agent", {"model": "mystery-model"}),
        _agent_mission(),
        bound,
        analysis=analysis,
    )
    assert unknown.reasons == [
        "cannot estimate the cost of model 'mystery-model' (no pricing)"
    ]
    cheaper = validate_proposal(
        _proposal("model", "agent", {"model": "gpt-4.1-nano"}),
        _agent_mission(),
        bound,
        analysis=analysis,
    )
    assert cheaper.accepted and cheaper.estimated_cost_per_run < 0.001
