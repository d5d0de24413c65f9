"""Policy rules: who may do what, decided by deny-overrides.

A :class:`PolicySet` holds :class:`PolicyRule` objects. Each rule names an effect
(:class:`PolicyEffect`), glob patterns for actions (``tool:execute``, ``node:execute``)
and resources (``tool://write_file``, ``node://fetch``), and optional conditions on
context attributes. :meth:`PolicySet.evaluate` collects every matching rule and returns a
:class:`PolicyDecision` with the strongest effect::

    DENY  >  REQUIRE_APPROVAL  >  ALLOW          (no rule matched: ``default_effect``)

So an ALLOW listed first can never hide a DENY listed later (the pitfall of first-match
policies). Among rules of the strongest effect, the first one listed is reported.

Conditions map a context attribute (dotted paths reach into nested mappings, e.g.
``arguments.path``) to an expected value, or to a mapping of operators:
``eq ne in not_in gt gte lt lte glob exists``. All conditions of a rule must hold.

A test that cannot be decided fails closed: it counts as matched for DENY /
REQUIRE_APPROVAL rules and as not matched for ALLOW rules. That covers a comparison that
cannot be made (``gt`` between a number and a string, ``glob`` on a number) and a negative
test on an absent attribute (``ne`` / ``not_in``: an undeclared ``risk_tier`` may be anything,
so ``DENY risk_tier not_in [low]`` denies it). A positive test (``eq in gt gte lt lte glob``)
on an absent attribute is simply false, for every effect: ``REQUIRE_APPROVAL risk_tier in
[high]`` does not ask about tools that declare no tier. ``exists`` tests presence itself.

Stable API used by agents and the CLI: ``PolicySet.evaluate``, ``PolicyDecision`` fields
(``effect``, ``rule``, ``reason``, ``action``, ``resource``, ``policy``) and
``PolicyViolationError.decision``.
"""

from __future__ import annotations

import enum
import fnmatch
import re
from dataclasses import dataclass, field
from typing import (
    Any,
    Callable,
    Dict,
    Iterable,
    List,
    Mapping,
    Optional,
    Sequence,
    Tuple,
)

from spark_core.errors import RunStopped, SparkError

__all__ = [
    "PolicyEffect",
    "PolicyRule",
    "PolicySet",
    "PolicyDecision",
    "PolicyDefinitionError",
    "PolicyViolationError",
]


class PolicyDefinitionError(SparkError, ValueError):
    """A policy rule or policy set was defined with invalid values."""


class PolicyEffect(str, enum.Enum):
    """What a matching rule does. Order of strength: DENY > REQUIRE_APPROVAL > ALLOW."""

    ALLOW = "allow"
    DENY = "deny"
    REQUIRE_APPROVAL = "require_approval"

    @property
    def strength(self) -> int:
        """Rank used for deny-overrides: higher wins."""
        return _STRENGTH[self]

    @classmethod
    def coerce(cls, value: Any) -> PolicyEffect:
        """Return ``value`` as a PolicyEffect, accepting names and values case-insensitively.

        Raises:
            PolicyDefinitionError: ``value`` names no effect.
        """
        if isinstance(value, cls):
            return value
        if isinstance(value, str):
            text = value.strip().lower()
            for member in cls:
                if text in (member.value, member.name.lower()):
                    return member
        raise PolicyDefinitionError(
            f"unknown policy effect {value!r}: expected one of "
            + ", ".join(m.value for m in cls)
        )


_STRENGTH = {
    PolicyEffect.ALLOW: 0,
    PolicyEffect.REQUIRE_APPROVAL: 1,
    PolicyEffect.DENY: 2,
}

_OPERATORS = frozenset(
    {"eq", "ne", "in", "not_in", "gt", "gte", "lt", "lte", "glob", "exists"}
)
_MISSING = object()


class _Incomparable(Exception):
    """A condition could not be evaluated (types do not compare)."""


def _compile_globs(
    field_name: str, patterns: Any
) -> Tuple[Tuple[str, ...], Callable[[str], bool]]:
    if isinstance(patterns, str) or not isinstance(patterns, (list, tuple)):
        raise PolicyDefinitionError(
            f"{field_name} must be a list of glob patterns, got {type(patterns).__name__}"
        )
    if not patterns:
        raise PolicyDefinitionError(f"{field_name} must not be empty")
    for p in patterns:
        if not isinstance(p, str) or not p:
            raise PolicyDefinitionError(
                f"{field_name} entries must be non-empty strings: {p!r}"
            )
    texts = tuple(patterns)
    if "*" in texts:
        return texts, lambda _value: True
    regex = re.compile("|".join(f"(?:{fnmatch.translate(p)})" for p in texts))
    return texts, lambda value: regex.match(value) is not None


def _lookup(context: Any, path: str) -> Any:
    """Resolve a dotted path in nested mappings / attributes; _MISSING when absent."""
    current = context
    for part in path.split("."):
        if isinstance(current, Mapping):
            if part not in current:
                return _MISSING
            current = current[part]
        elif current is not None and hasattr(current, part):
            current = getattr(current, part)
        else:
            return _MISSING
    return current


def _check(op: str, actual: Any, expected: Any) -> bool:
    if op == "exists":
        return (actual is not _MISSING) == bool(expected)
    if actual is _MISSING:
        if op in ("ne", "not_in"):
            raise _Incomparable(op)  # the unknown value may be the excluded one
        return False
    try:
        if op == "eq":
            return bool(actual == expected)
        if op == "ne":
            return bool(actual != expected)
        if op == "in":
            return actual in expected
        if op == "not_in":
            return actual not in expected
        if op == "gt":
            return bool(actual > expected)
        if op == "gte":
            return bool(actual >= expected)
        if op == "lt":
            return bool(actual < expected)
        if op == "lte":
            return bool(actual <= expected)
        if op == "glob":
            if not isinstance(actual, str):
                raise _Incomparable(op)
            return fnmatch.fnmatchcase(actual, str(expected))
    except TypeError as exc:
        raise _Incomparable(op) from exc
    raise _Incomparable(op)  # pragma: no cover - operators are validated up front


def _normalise_conditions(conditions: Any) -> Dict[str, Dict[str, Any]]:
    if conditions is None:
        return {}
    if not isinstance(conditions, Mapping):
        raise PolicyDefinitionError(
            f"conditions must be a mapping of attribute -> value, got {type(conditions).__name__}"
        )
    out: Dict[str, Dict[str, Any]] = {}
    for attr, spec in conditions.items():
        if not isinstance(attr, str) or not attr:
            raise PolicyDefinitionError(
                f"condition attribute must be a non-empty string: {attr!r}"
            )
        if isinstance(spec, Mapping) and spec and all(isinstance(k, str) for k in spec):
            unknown = sorted(set(spec) - _OPERATORS)
            if unknown:
                raise PolicyDefinitionError(
                    f"condition on {attr!r} uses unknown operator(s) {unknown}: "
                    f"expected {sorted(_OPERATORS)}"
                )
            for op in ("in", "not_in"):
                if op in spec and isinstance(spec[op], (str, bytes)):
                    raise PolicyDefinitionError(
                        f"condition {attr!r} operator {op!r} needs a list, got a string"
                    )
            out[attr] = dict(spec)
        else:
            out[attr] = {"eq": spec}
    return out


@dataclass(frozen=True)
class PolicyRule:
    """One rule of a policy set.

    Attributes:
        name: Rule name, reported in decisions and audit records.
        effect: What the rule does when it matches (a PolicyEffect or its string value).
        actions: Glob patterns for the action, e.g. ``["tool:execute"]`` or ``["tool:*"]``.
        resources: Glob patterns for the resource, e.g. ``["tool://write_*"]``.
        conditions: Optional ``{attribute: value | {operator: value}}`` on the context.
        description: Human-readable reason, used as the decision's reason.
    """

    name: str
    effect: PolicyEffect
    actions: Sequence[str] = ("*",)
    resources: Sequence[str] = ("*",)
    conditions: Optional[Mapping[str, Any]] = None
    description: str = ""
    _match_action: Callable[[str], bool] = field(init=False, repr=False, compare=False)
    _match_resource: Callable[[str], bool] = field(
        init=False, repr=False, compare=False
    )
    _conditions: Dict[str, Dict[str, Any]] = field(
        init=False, repr=False, compare=False
    )

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name.strip():
            raise PolicyDefinitionError("policy rule name must be a non-empty string")
        object.__setattr__(self, "effect", PolicyEffect.coerce(self.effect))
        actions, match_action = _compile_globs(
            f"rule {self.name!r} actions", self.actions
        )
        resources, match_res = _compile_globs(
            f"rule {self.name!r} resources", self.resources
        )
        object.__setattr__(self, "actions", actions)
        object.__setattr__(self, "resources", resources)
        object.__setattr__(self, "_match_action", match_action)
        object.__setattr__(self, "_match_resource", match_res)
        try:
            conds = _normalise_conditions(self.conditions)
        except PolicyDefinitionError as exc:
            raise PolicyDefinitionError(f"rule {self.name!r}: {exc}") from None
        object.__setattr__(self, "_conditions", conds)
        if not isinstance(self.description, str):
            raise PolicyDefinitionError(
                f"rule {self.name!r} description must be a string"
            )

    def __hash__(self) -> int:
        # The generated hash would hash ``conditions`` (a dict) and fail; equal rules still
        # hash alike without it.
        return hash(
            (self.name, self.effect, self.actions, self.resources, self.description)
        )

    def matches(self, action: str, resource: str, context: Any = None) -> bool:
        """Tell whether this rule applies to ``action`` on ``resource`` in ``context``.

        Args:
            action: The action, e.g. ``"tool:execute"``.
            resource: The resource, e.g. ``"tool://write_file"``.
            context: Mapping (or object) whose attributes the conditions test.

        Returns:
            True when action, resource and every condition match.
        """
        if not (self._match_action(action) and self._match_resource(resource)):
            return False
        for attr, ops in self._conditions.items():
            actual = _lookup(context, attr) if context is not None else _MISSING
            for op, expected in ops.items():
                try:
                    ok = _check(op, actual, expected)
                except _Incomparable:
                    # Fail closed: restrictive rules apply, permissive ones do not.
                    ok = self.effect is not PolicyEffect.ALLOW
                if not ok:
                    return False
        return True

    def to_dict(self) -> Dict[str, Any]:
        """Return a JSON-serialisable description of the rule."""
        out: Dict[str, Any] = {
            "name": self.name,
            "effect": self.effect.value,
            "actions": list(self.actions),
            "resources": list(self.resources),
        }
        if self.conditions:
            out["conditions"] = dict(self.conditions)
        if self.description:
            out["description"] = self.description
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> PolicyRule:
        """Build a rule from :meth:`to_dict` output (or hand-written JSON).

        Raises:
            PolicyDefinitionError: A field is missing or invalid.
        """
        if not isinstance(data, Mapping):
            raise PolicyDefinitionError(
                f"policy rule must be a mapping, got {type(data).__name__}"
            )
        unknown = sorted(
            set(data)
            - {"name", "effect", "actions", "resources", "conditions", "description"}
        )
        if unknown:
            raise PolicyDefinitionError(f"policy rule has unknown field(s) {unknown}")
        for key in ("name", "effect"):
            if key not in data:
                raise PolicyDefinitionError(f"policy rule is missing {key!r}")
        return cls(
            name=data["name"],
            effect=data["effect"],
            actions=data.get("actions", ["*"]),
            resources=data.get("resources", ["*"]),
            conditions=data.get("conditions"),
            description=data.get("description", ""),
        )


@dataclass(frozen=True)
class PolicyDecision:
    """The outcome of :meth:`PolicySet.evaluate`.

    Attributes:
        effect: The winning effect.
        rule: The rule that decided, or None when ``default_effect`` applied.
        reason: Why, in words (the rule's description, or a generated sentence).
        action: The evaluated action.
        resource: The evaluated resource.
        policy: Name of the policy set.
        matched_rules: Names of every rule that matched, in listed order.
    """

    effect: PolicyEffect
    rule: Optional[PolicyRule]
    reason: str
    action: str = ""
    resource: str = ""
    policy: str = ""
    matched_rules: Tuple[str, ...] = ()

    @property
    def allowed(self) -> bool:
        """True when the effect is ALLOW."""
        return self.effect is PolicyEffect.ALLOW

    @property
    def denied(self) -> bool:
        """True when the effect is DENY."""
        return self.effect is PolicyEffect.DENY

    @property
    def requires_approval(self) -> bool:
        """True when the effect is REQUIRE_APPROVAL."""
        return self.effect is PolicyEffect.REQUIRE_APPROVAL

    @property
    def rule_name(self) -> Optional[str]:
        """Name of the deciding rule, None for the default effect."""
        return self.rule.name if self.rule is not None else None

    def to_dict(self) -> Dict[str, Any]:
        """Return a JSON-serialisable view (used for audit records and telemetry)."""
        return {
            "policy": self.policy,
            "effect": self.effect.value,
            "rule": self.rule_name,
            "reason": self.reason,
            "action": self.action,
            "resource": self.resource,
            "matched_rules": list(self.matched_rules),
        }


class PolicySet:
    """A named list of rules evaluated with deny-overrides.

    Args:
        name: Name reported in decisions and audit records.
        rules: The rules (PolicyRule objects or their dict form).
        default_effect: Effect when no rule matches (ALLOW unless told otherwise). Note that
            a graph given a policy set also checks ``node:execute`` on ``node://<id>`` before
            each node, so a set with ``default_effect=DENY`` must allow the nodes it wants run.
        description: Free text.
    """

    def __init__(
        self,
        name: str,
        rules: Optional[Iterable[Any]] = None,
        *,
        default_effect: Any = PolicyEffect.ALLOW,
        description: str = "",
    ) -> None:
        if not isinstance(name, str) or not name.strip():
            raise PolicyDefinitionError("policy set name must be a non-empty string")
        self.name = name
        self.description = description
        self.default_effect = PolicyEffect.coerce(default_effect)
        self._rules: List[PolicyRule] = []
        for rule in rules or ():
            self.add_rule(rule)

    @property
    def rules(self) -> Tuple[PolicyRule, ...]:
        """The rules, in the order they were listed."""
        return tuple(self._rules)

    def add_rule(self, rule: Any) -> None:
        """Append a rule (a PolicyRule or its dict form).

        Raises:
            PolicyDefinitionError: The rule is invalid or its name is already used.
        """
        if isinstance(rule, Mapping):
            rule = PolicyRule.from_dict(rule)
        if not isinstance(rule, PolicyRule):
            raise PolicyDefinitionError(
                f"policy set {self.name!r}: rules must be PolicyRule objects, "
                f"got {type(rule).__name__}"
            )
        if any(r.name == rule.name for r in self._rules):
            raise PolicyDefinitionError(
                f"policy set {self.name!r} already has a rule named {rule.name!r}"
            )
        self._rules.append(rule)

    def evaluate(
        self, action: str, resource: str, context: Any = None
    ) -> PolicyDecision:
        """Decide ``action`` on ``resource``: the strongest matching effect wins.

        Args:
            action: e.g. ``"tool:execute"``.
            resource: e.g. ``"tool://write_file"``.
            context: Mapping or object whose attributes rule conditions test.

        Returns:
            The decision; ``rule`` is None when the default effect applied.
        """
        best: Optional[PolicyRule] = None
        matched: List[str] = []
        for rule in self._rules:
            if rule.matches(action, resource, context):
                matched.append(rule.name)
                if best is None or rule.effect.strength > best.effect.strength:
                    best = rule
        if best is None:
            return PolicyDecision(
                effect=self.default_effect,
                rule=None,
                reason=f"no rule matched {action} on {resource}; "
                f"default effect {self.default_effect.value}",
                action=action,
                resource=resource,
                policy=self.name,
            )
        reason = best.description or f"rule {best.name!r} ({best.effect.value}) matched"
        return PolicyDecision(
            effect=best.effect,
            rule=best,
            reason=reason,
            action=action,
            resource=resource,
            policy=self.name,
            matched_rules=tuple(matched),
        )

    def to_dict(self) -> Dict[str, Any]:
        """Return a JSON-serialisable description of the set."""
        return {
            "name": self.name,
            "description": self.description,
            "default_effect": self.default_effect.value,
            "rules": [r.to_dict() for r in self._rules],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> PolicySet:
        """Build a policy set from :meth:`to_dict` output.

        Raises:
            PolicyDefinitionError: A field is missing or invalid.
        """
        if not isinstance(data, Mapping) or "name" not in data:
            raise PolicyDefinitionError("policy set must be a mapping with a 'name'")
        rules = data.get("rules", [])
        if not isinstance(rules, list):
            raise PolicyDefinitionError("policy set 'rules' must be a list")
        return cls(
            data["name"],
            rules,
            default_effect=data.get("default_effect", PolicyEffect.ALLOW),
            description=data.get("description", ""),
        )

    def __repr__(self) -> str:
        return (
            f"PolicySet(name={self.name!r}, rules={len(self._rules)}, "
            f"default_effect={self.default_effect.value})"
        )


class PolicyViolationError(RunStopped):
    """A policy denied an action (or a reviewer rejected it). Stops the run; never retried.

    The stopped run is stored as ``failed`` (``run_status``), and resuming it fails again.

    Attributes:
        decision: The PolicyDecision that denied the action (stable, used by agents).
        request: The rejected approval request as a dict, when a reviewer rejected it.
    """

    run_status = "failed"

    def __init__(
        self,
        message: str,
        *,
        decision: Optional[PolicyDecision] = None,
        request: Optional[Mapping[str, Any]] = None,
    ) -> None:
        super().__init__(message)
        self.decision = decision
        self.request = dict(request) if request is not None else None

    def stop_event(self) -> Optional[Tuple[str, Dict[str, Any]]]:
        """Telemetry's ``policy.violation`` event: the denying decision.

        Returns:
            The event name and its attributes.
        """
        decision = self.decision.to_dict() if self.decision is not None else {}
        return "policy.violation", decision

    @classmethod
    def from_decision(cls, decision: PolicyDecision) -> PolicyViolationError:
        """Build the error for a DENY decision, naming policy, rule, action and resource."""
        rule = f" rule {decision.rule_name!r}" if decision.rule is not None else ""
        return cls(
            f"policy {decision.policy!r}{rule} denied {decision.action} on "
            f"{decision.resource}: {decision.reason}",
            decision=decision,
        )
