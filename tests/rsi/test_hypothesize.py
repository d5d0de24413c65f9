"""Proposals: typed, applied to copies, from rules and from a model (JSON, re-asked)."""

from __future__ import annotations

import asyncio
import json

import pytest

from spark_core.models import ScriptedModel
from spark_core.rsi import ExperienceDatabase
from spark_core.rsi.analysis import analyze
from spark_core.rsi.errors import ProposalError
from spark_core.rsi.hypothesize import hypothesize
from spark_core.rsi.proposals import Proposal, ProposalKind
from tests.rsi import sample

PROMPT = {
    "kind": "prompt",
    "target": "answer",
    "change": {"system_prompt": "Be empathetic and thank the customer."},
    "finding": "low_score",
    "expected_effect": "higher score",
}
DROP_DENY = {
    "kind": "policy",
    "target": "safety",
    "change": {"remove_rules": ["no-refunds"]},
    "finding": "run_failures",
}


def test_each_kind_applies_to_a_copy() -> None:
    mission = sample.mission()
    before = mission.to_dict()
    cases = [
        (
            PROMPT,
            ("graph", "nodes", 1, "params", "system_prompt"),
            PROMPT["change"]["system_prompt"],
        ),
        (
            {"kind": "timeout", "target": "lookup", "change": {"timeout_seconds": 1.2}},
            ("graph", "nodes", 0, "config", "timeout", "timeout_seconds"),
            1.2,
        ),
        (
            {"kind": "retry", "target": "lookup", "change": {"max_retries": 2}},
            ("graph", "nodes", 0, "config", "retry", "max_retries"),
            2,
        ),
        (
            {"kind": "model", "target": "answer", "change": {"model": "gpt-4o-mini"}},
            ("graph", "nodes", 1, "params", "model"),
            "gpt-4o-mini",
        ),
        (
            {
                "kind": "strategy",
                "target": "answer",
                "change": {"strategy": {"type": "react"}},
            },
            ("graph", "nodes", 1, "params", "strategy", "type"),
            "react",
        ),
        (
            {
                "kind": "edge",
                "target": "lookup->answer",
                "change": {
                    "condition": {"kind": "expr", "value": "$.outputs.prompt != ''"}
                },
            },
            ("graph", "edges", 0, "condition", "kind"),
            "expr",
        ),
        (DROP_DENY, ("metadata", "governance", "policies", 0, "rules"), []),
    ]
    for data, path, expected in cases:
        changed = Proposal.from_dict(data, id="p").apply(mission).to_dict()
        for step in path:
            changed = changed[step]
        assert changed == expected, data["kind"]
    assert mission.to_dict() == before


@pytest.mark.parametrize(
    "data, message",
    [
        ({"kind": "rewrite", "target": "x", "change": {}}, "unknown proposal kind"),
        (
            {"kind": "timeout", "target": "lookup", "change": {"timeout_seconds": -1}},
            "> 0",
        ),
        ({"kind": "prompt", "target": "answer", "change": {}}, "system_prompt"),
        (
            {"kind": "retry", "target": "lookup", "change": {"max_retries": "3"}},
            "retry",
        ),
        (
            {"kind": "model", "target": "a", "change": {"model": {"api_key": "k"}}},
            "api_key",
        ),
        ({"kind": "prompt", "target": "answer"}, "missing 'change'"),
        ({**PROMPT, "extra": 1}, "unknown key"),
        ("not an object", "must be an object"),
    ],
)
def test_malformed_proposals_are_refused(data: object, message: str) -> None:
    with pytest.raises(ProposalError, match=message):
        Proposal.from_dict(data)


def test_a_change_to_a_node_of_the_wrong_kind_does_not_apply() -> None:
    prompt_on_lookup = Proposal.from_dict({**PROMPT, "target": "lookup"})
    with pytest.raises(ProposalError, match="not an agent node"):
        prompt_on_lookup.apply(sample.mission())
    with pytest.raises(ProposalError, match="no node 'ghost'"):
        Proposal.from_dict({**PROMPT, "target": "ghost"}).apply(sample.mission())


def test_rules_propose_a_longer_timeout_offline(filled_db: ExperienceDatabase) -> None:
    analysis = analyze(filled_db.query_runs("customer_service_agent", "1.0"))
    result = asyncio.run(hypothesize(analysis, sample.mission(), max_hypotheses=3))
    (proposal,) = result.proposals
    assert proposal.kind is ProposalKind.TIMEOUT and proposal.target == "lookup"
    assert proposal.change == {"timeout_seconds": 1.2}
    assert proposal.finding == "timeouts:lookup" and proposal.source == "rule"


def test_model_proposals_are_validated_and_reasked_within_bounds(
    filled_db: ExperienceDatabase,
) -> None:
    analysis = analyze(filled_db.query_runs("customer_service_agent", "1.0"))
    model = ScriptedModel(
        ["not json", json.dumps({"proposals": [PROMPT, DROP_DENY, PROMPT]})]
    )
    result = asyncio.run(
        hypothesize(analysis, sample.mission(), max_hypotheses=3, model=model)
    )
    assert [(p.id, p.kind.value, p.source) for p in result.proposals] == [
        ("p1", "timeout", "rule"),
        ("p2", "prompt", "model"),
        ("p3", "policy", "model"),
    ]
    assert len(result.notes) == 1 and "not JSON" in result.notes[0]
    assert model.requests[0]["options"] == {"response_format": {"type": "json_object"}}
    assert "invalid" in model.requests[1]["messages"][-1]["content"]

    stubborn = ScriptedModel(["nope"], loop=True)
    result = asyncio.run(
        hypothesize(
            analysis, sample.mission(), max_hypotheses=1, model=stubborn, max_reasks=2
        )
    )
    assert stubborn.calls == 3 and len(result.notes) == 3
    assert [p.kind for p in result.proposals] == [ProposalKind.TIMEOUT]


@pytest.mark.parametrize(
    "data, message",
    [
        (
            {"kind": "edge", "target": "answer->lookup", "change": {"condition": None}},
            "no edge",
        ),
        (
            {"kind": "policy", "target": "other", "change": {"remove_rules": []}},
            "no policy set",
        ),
        (
            {
                "kind": "policy",
                "target": "safety",
                "change": {"remove_rules": ["ghost"]},
            },
            "no rule",
        ),
        (
            {
                "kind": "strategy",
                "target": "lookup",
                "change": {"strategy": {"type": "react"}},
            },
            "not an agent node",
        ),
    ],
)
def test_changes_to_missing_targets_do_not_apply(data: dict, message: str) -> None:
    with pytest.raises(ProposalError, match=message):
        Proposal.from_dict(data).apply(sample.mission())


def test_rate_limit_and_binding_changes() -> None:
    limited = Proposal.from_dict(
        {
            "kind": "rate_limit",
            "target": "lookup",
            "change": {"max_calls": 5, "period_seconds": 1.0},
        }
    ).apply(sample.mission())
    assert limited.graph.node("lookup").config.rate_limit.max_calls == 5
    data = sample.mission().to_dict()
    data["strategies"] = [{"target": "answer", "strategy": {"type": "react"}}]
    bound = type(sample.mission()).from_dict(data)
    changed = Proposal.from_dict(
        {
            "kind": "strategy",
            "target": "answer",
            "change": {"strategy": {"type": "cot"}},
        }
    ).apply(bound)
    # A mission binding wins over the node's own strategy, so the binding changes.
    assert changed.strategies[0].strategy.type == "cot"
    assert "strategy" not in changed.graph.node("answer").params
