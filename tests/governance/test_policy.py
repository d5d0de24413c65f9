"""PolicySet: glob matching, deny-overrides precedence, conditions, serialisation."""

from __future__ import annotations

from typing import Any

import pytest

from spark_core.errors import RunStopped, SparkError
from spark_core.governance import PolicyDecision, PolicyEffect, PolicyRule, PolicySet
from spark_core.governance.policy import PolicyDefinitionError, PolicyViolationError
from tests.governance import fs_app


def rule(
    name: str, effect: PolicyEffect, resources: list[str], **kw: object
) -> PolicyRule:
    return PolicyRule(
        name=name, effect=effect, actions=["tool:execute"], resources=resources, **kw
    )  # type: ignore[arg-type]


def test_seed_policy_denies_delete_and_requires_approval_for_write() -> None:
    fs_policy = fs_app.FS_POLICY  # the seed's policy, as the approval tests use it
    deny = fs_policy.evaluate("tool:execute", "tool://delete_file")
    assert deny.effect is PolicyEffect.DENY and deny.denied
    assert deny.rule_name == "block_delete"
    assert deny.reason == "Prevent agents from deleting files"
    approval = fs_policy.evaluate("tool:execute", "tool://write_file")
    assert approval.requires_approval and approval.rule_name == "require_approval_write"
    read = fs_policy.evaluate("tool:execute", "tool://read_file")
    assert read.allowed and read.rule is None and "default" in read.reason


def test_deny_overrides_an_allow_listed_first() -> None:
    policy = PolicySet(
        "p",
        [
            rule("allow_all_tools", PolicyEffect.ALLOW, ["tool://*"]),
            rule("deny_rm", PolicyEffect.DENY, ["tool://rm"]),
        ],
    )
    decision = policy.evaluate("tool:execute", "tool://rm")
    assert decision.effect is PolicyEffect.DENY
    assert decision.matched_rules == ("allow_all_tools", "deny_rm")


def test_require_approval_beats_allow_and_loses_to_deny() -> None:
    policy = PolicySet(
        "p",
        [
            rule("allow", PolicyEffect.ALLOW, ["tool://*"]),
            rule("ask", PolicyEffect.REQUIRE_APPROVAL, ["tool://write_*"]),
            rule("deny", PolicyEffect.DENY, ["tool://write_etc"]),
        ],
    )
    assert policy.evaluate("tool:execute", "tool://write_file").requires_approval
    assert policy.evaluate("tool:execute", "tool://write_etc").denied
    assert policy.evaluate("tool:execute", "tool://read").allowed


def test_first_rule_of_the_winning_effect_is_reported() -> None:
    policy = PolicySet(
        "p",
        [
            rule("deny_a", PolicyEffect.DENY, ["tool://*"]),
            rule("deny_b", PolicyEffect.DENY, ["tool://x"]),
        ],
    )
    assert policy.evaluate("tool:execute", "tool://x").rule_name == "deny_a"


def test_default_effect_applies_when_nothing_matches() -> None:
    policy = PolicySet(
        "strict",
        [rule("ok", PolicyEffect.ALLOW, ["tool://read"])],
        default_effect="deny",
    )
    assert policy.evaluate("tool:execute", "tool://read").allowed
    decision = policy.evaluate("tool:execute", "tool://other")
    assert decision.denied and decision.rule is None


def test_action_globs() -> None:
    policy = PolicySet(
        "p",
        [
            PolicyRule(
                "no_nodes",
                PolicyEffect.DENY,
                actions=["node:*"],
                resources=["node://danger*"],
            )
        ],
    )
    assert policy.evaluate("node:execute", "node://danger_zone").denied
    assert policy.evaluate("tool:execute", "node://danger_zone").allowed
    assert policy.evaluate("node:execute", "node://safe").allowed


def test_glob_is_case_sensitive_and_anchored() -> None:
    policy = PolicySet("p", [rule("d", PolicyEffect.DENY, ["tool://rm"])])
    assert policy.evaluate("tool:execute", "tool://RM").allowed
    assert policy.evaluate("tool:execute", "tool://rm2").allowed
    assert policy.evaluate("tool:execute", "xtool://rm").allowed


def test_conditions_on_context_attributes() -> None:
    policy = PolicySet(
        "p",
        [
            rule(
                "high_risk",
                PolicyEffect.REQUIRE_APPROVAL,
                ["tool://*"],
                conditions={"risk_tier": {"in": ["high", "critical"]}},
            ),
            rule(
                "etc",
                PolicyEffect.DENY,
                ["tool://write_file"],
                conditions={"arguments.path": {"glob": "/etc/*"}},
            ),
            rule(
                "big",
                PolicyEffect.DENY,
                ["tool://pay"],
                conditions={"arguments.amount": {"gt": 100}},
            ),
        ],
    )
    ev = policy.evaluate
    assert ev("tool:execute", "tool://x", {"risk_tier": "high"}).requires_approval
    assert ev("tool:execute", "tool://x", {"risk_tier": "low"}).allowed
    assert ev("tool:execute", "tool://x", {}).allowed  # absent attribute: no match
    assert ev(
        "tool:execute", "tool://write_file", {"arguments": {"path": "/etc/passwd"}}
    ).denied
    assert ev(
        "tool:execute", "tool://write_file", {"arguments": {"path": "/tmp/a"}}
    ).allowed
    assert ev("tool:execute", "tool://pay", {"arguments": {"amount": 101}}).denied
    assert ev("tool:execute", "tool://pay", {"arguments": {"amount": 100}}).allowed


def test_plain_value_condition_means_equality_and_exists_operator() -> None:
    policy = PolicySet(
        "p",
        [
            rule("eq", PolicyEffect.DENY, ["tool://a"], conditions={"env": "prod"}),
            rule(
                "ex",
                PolicyEffect.DENY,
                ["tool://b"],
                conditions={"user": {"exists": False}},
            ),
        ],
    )
    assert policy.evaluate("tool:execute", "tool://a", {"env": "prod"}).denied
    assert policy.evaluate("tool:execute", "tool://a", {"env": "dev"}).allowed
    assert policy.evaluate("tool:execute", "tool://b", {}).denied
    assert policy.evaluate("tool:execute", "tool://b", {"user": "ana"}).allowed


def test_incomparable_condition_fails_closed() -> None:
    deny = PolicySet(
        "p",
        [
            rule(
                "d",
                PolicyEffect.DENY,
                ["tool://pay"],
                conditions={"amount": {"gt": 100}},
            )
        ],
    )
    allow = PolicySet(
        "p",
        [
            rule(
                "a",
                PolicyEffect.ALLOW,
                ["tool://pay"],
                conditions={"amount": {"lt": 100}},
            )
        ],
        default_effect="deny",
    )
    assert deny.evaluate("tool:execute", "tool://pay", {"amount": "lots"}).denied
    assert allow.evaluate("tool:execute", "tool://pay", {"amount": "lots"}).denied


@pytest.mark.parametrize(
    "ops, restrictive_matches",
    [
        ({"eq": "high"}, False),  # positive tests on an absent attribute are false
        ({"in": ["high"]}, False),
        ({"gt": 1}, False),
        ({"glob": "/etc/*"}, False),
        ({"ne": "low"}, True),  # negative tests cannot be decided: fail closed
        ({"not_in": ["low"]}, True),
        ({"exists": False}, True),
        ({"exists": True}, False),
    ],
)
def test_an_absent_attribute_fails_closed_only_where_undecidable(
    ops: dict, restrictive_matches: bool
) -> None:
    for effect in (PolicyEffect.DENY, PolicyEffect.REQUIRE_APPROVAL):
        policy = PolicySet("p", [rule("r", effect, ["*"], conditions={"tier": ops})])
        decision = policy.evaluate("tool:execute", "tool://x", {})
        assert (decision.effect is effect) is restrictive_matches
    allow = PolicySet(
        "p",
        [rule("a", PolicyEffect.ALLOW, ["*"], conditions={"tier": ops})],
        default_effect="deny",
    )
    # an ALLOW rule never matches an undecidable test
    expected = ops == {"exists": False}
    assert allow.evaluate("tool:execute", "tool://x", {}).allowed is expected


def test_rules_with_conditions_are_hashable_and_equal_by_value() -> None:
    a = rule("r", PolicyEffect.DENY, ["*"], conditions={"tier": {"in": ["x", "y"]}})
    b = rule("r", PolicyEffect.DENY, ["*"], conditions={"tier": {"in": ["x", "y"]}})
    c = rule("r", PolicyEffect.DENY, ["*"], conditions={"tier": "z"})
    assert a == b and hash(a) == hash(b) and len({a, b}) == 1
    assert a != c and len({a, c}) == 2


def test_conditions_read_object_attributes() -> None:
    class Ctx:
        risk_tier = "high"

    policy = PolicySet(
        "p", [rule("r", PolicyEffect.DENY, ["*"], conditions={"risk_tier": "high"})]
    )
    assert policy.evaluate("tool:execute", "tool://x", Ctx()).denied


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"name": "", "effect": "deny"}, "name"),
        ({"name": "r", "effect": "maybe"}, "unknown policy effect"),
        (
            {"name": "r", "effect": "deny", "actions": "tool:execute"},
            "list of glob patterns",
        ),
        ({"name": "r", "effect": "deny", "resources": []}, "must not be empty"),
        (
            {"name": "r", "effect": "deny", "conditions": {"a": {"approx": 1}}},
            "unknown operator",
        ),
        (
            {"name": "r", "effect": "deny", "conditions": {"a": {"in": "abc"}}},
            "needs a list",
        ),
        ({"name": "r", "effect": "deny", "conditions": ["a"]}, "mapping"),
    ],
)
def test_invalid_rules_raise_clear_errors(kwargs: dict, message: str) -> None:
    with pytest.raises(PolicyDefinitionError, match=message) as info:
        PolicyRule(**kwargs)
    assert isinstance(info.value, SparkError) and isinstance(info.value, ValueError)


def test_duplicate_rule_names_are_rejected() -> None:
    r = rule("same", PolicyEffect.DENY, ["tool://a"])
    with pytest.raises(PolicyDefinitionError, match="already has a rule named 'same'"):
        PolicySet("p", [r, r])


def test_effect_accepts_strings() -> None:
    loose: Any = "REQUIRE_APPROVAL"
    assert PolicyRule("r", loose).effect is PolicyEffect.REQUIRE_APPROVAL
    assert PolicyEffect.coerce("Deny") is PolicyEffect.DENY


def test_round_trip_through_dict() -> None:
    policy = PolicySet(
        "p",
        [
            rule(
                "d",
                PolicyEffect.DENY,
                ["tool://a*"],
                conditions={"x": {"gte": 2}},
                description="why",
            ),
            rule("a", PolicyEffect.ALLOW, ["tool://b"]),
        ],
        default_effect=PolicyEffect.REQUIRE_APPROVAL,
    )
    again = PolicySet.from_dict(policy.to_dict())
    assert again.to_dict() == policy.to_dict()
    assert again.evaluate("tool:execute", "tool://abc", {"x": 3}).denied
    assert again.evaluate("tool:execute", "tool://zzz").requires_approval
    with pytest.raises(PolicyDefinitionError, match="unknown field"):
        PolicyRule.from_dict({"name": "r", "effect": "deny", "resource": ["x"]})


def test_decision_to_dict_and_violation_error() -> None:
    policy = PolicySet(
        "fs", [rule("block", PolicyEffect.DENY, ["tool://rm"], description="no")]
    )
    decision = policy.evaluate("tool:execute", "tool://rm")
    assert isinstance(decision, PolicyDecision)
    assert decision.to_dict() == {
        "policy": "fs",
        "effect": "deny",
        "rule": "block",
        "reason": "no",
        "action": "tool:execute",
        "resource": "tool://rm",
        "matched_rules": ["block"],
    }
    err = PolicyViolationError.from_decision(decision)
    assert isinstance(err, RunStopped)
    assert err.decision is decision
    assert "block" in str(err) and "tool://rm" in str(err) and "fs" in str(err)
