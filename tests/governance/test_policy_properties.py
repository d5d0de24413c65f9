"""Property tests: deny-overrides does not depend on rule order."""

from __future__ import annotations

from typing import List

from hypothesis import given
from hypothesis import strategies as st

from spark_core.governance import PolicyEffect, PolicyRule, PolicySet

EFFECTS = list(PolicyEffect)
RESOURCES = ["tool://a", "tool://b", "tool://*", "tool://a*", "node://a"]


@st.composite
def rule_lists(draw: st.DrawFn) -> List[PolicyRule]:
    n = draw(st.integers(min_value=0, max_value=8))
    return [
        PolicyRule(
            name=f"r{i}",
            effect=draw(st.sampled_from(EFFECTS)),
            actions=[draw(st.sampled_from(["tool:execute", "tool:*", "node:execute"]))],
            resources=[draw(st.sampled_from(RESOURCES))],
        )
        for i in range(n)
    ]


@given(rule_lists(), st.randoms(use_true_random=False), st.sampled_from(EFFECTS))
def test_strongest_matching_effect_wins_in_any_order(
    rules: List[PolicyRule], rnd: object, default: PolicyEffect
) -> None:
    shuffled = list(rules)
    rnd.shuffle(shuffled)  # type: ignore[attr-defined]
    a = PolicySet("a", rules, default_effect=default).evaluate(
        "tool:execute", "tool://a"
    )
    b = PolicySet("b", shuffled, default_effect=default).evaluate(
        "tool:execute", "tool://a"
    )
    assert a.effect is b.effect
    matching = [r for r in rules if r.matches("tool:execute", "tool://a")]
    expected = max(
        (r.effect for r in matching), key=lambda e: e.strength, default=default
    )
    assert a.effect is expected
    assert (a.rule is None) == (not matching)
