"""Proposals: typed changes to a mission spec, each tied to the finding it addresses.

A :class:`Proposal` names its ``kind`` (:class:`ProposalKind`), its ``target`` and a
``change`` whose shape the kind fixes:

===========  ===================  =====================================================
kind         target               change
===========  ===================  =====================================================
prompt       agent node id        ``{"system_prompt": str}`` and/or ``{"prompt_template"}``
strategy     agent node id        ``{"strategy": {"type": str, "config": {...}}}``
model        agent node id        ``{"model": "gpt-4o-mini" | {"provider": ..., ...}}``
retry        node id              a ``RetrySpec`` dict (``{"max_retries": 2, ...}``)
timeout      node id              ``{"timeout_seconds": float > 0}``
rate_limit   node id              a ``RateLimitSpec`` dict
tool_swap    node id              ``{"old": tool name, "new": tool name}``
edge         ``"source->target"``  ``{"condition": {"kind", "value"} | null}``
policy       policy set name      ``{"remove_rules": [...], "add_rules": [...],
                                  "default_effect": ...}`` (validation refuses loosening)
===========  ===================  =====================================================

:meth:`Proposal.apply` returns a changed copy of the spec; the original is never touched.
Governance policies a mission carries live in ``metadata["governance"]["policies"]`` (a list
of ``PolicySet.to_dict()`` forms), where the policy kind edits them.
"""

from __future__ import annotations

import copy
import enum
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Mapping, Optional

from spark_core.rsi.errors import ProposalError
from spark_core.spec import MissionSpec, RateLimitSpec, RetrySpec, SpecValidationError

__all__ = [
    "ProposalKind",
    "Proposal",
    "AGENT_NODE_TYPE",
    "is_agent_node",
    "mission_policies",
]

AGENT_NODE_TYPE = "spark_core.agents.node:AgentNode"


class ProposalKind(str, enum.Enum):
    """What part of the spec a proposal changes."""

    PROMPT = "prompt"
    STRATEGY = "strategy"
    MODEL = "model"
    RETRY = "retry"
    TIMEOUT = "timeout"
    RATE_LIMIT = "rate_limit"
    TOOL_SWAP = "tool_swap"
    EDGE = "edge"
    POLICY = "policy"


def is_agent_node(node: Mapping[str, Any]) -> bool:
    """Tell whether a node dict is an agent node.

    Args:
        node: A ``NodeSpec`` dict.

    Returns:
        Whether its type is ``AgentNode``.
    """
    return str(node.get("type", "")).endswith(":AgentNode")


def mission_policies(data: Mapping[str, Any]) -> List[Dict[str, Any]]:
    """The governance policy sets a mission dict carries.

    Args:
        data: ``MissionSpec.to_dict()``.

    Returns:
        Their dict forms (empty when the mission has none).

    Raises:
        ProposalError: ``metadata.governance.policies`` is not a list of objects.
    """
    governance = (data.get("metadata") or {}).get("governance") or {}
    policies = governance.get("policies", []) if isinstance(governance, dict) else None
    if not isinstance(policies, list) or not all(isinstance(p, dict) for p in policies):
        raise ProposalError(
            "metadata.governance.policies must be a list of policy sets"
        )
    return policies


def _text(change: Mapping[str, Any], key: str) -> Optional[str]:
    value = change.get(key)
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip():
        raise ProposalError(f"change.{key} must be a non-empty string")
    return value


def _check_keys(kind: str, change: Mapping[str, Any], allowed: List[str]) -> None:
    unknown = sorted(set(change) - set(allowed))
    if unknown:
        raise ProposalError(
            f"{kind} change has unknown key(s) {unknown} (accepted: {allowed})"
        )


def _check_prompt(change: Mapping[str, Any]) -> None:
    _check_keys("prompt", change, ["system_prompt", "prompt_template"])
    if (
        _text(change, "system_prompt") is None
        and _text(change, "prompt_template") is None
    ):
        raise ProposalError("prompt change needs system_prompt or prompt_template")


def _check_strategy(change: Mapping[str, Any]) -> None:
    _check_keys("strategy", change, ["strategy"])
    strategy = change.get("strategy")
    if not isinstance(strategy, dict) or not isinstance(strategy.get("type"), str):
        raise ProposalError(
            'strategy change needs {"strategy": {"type": ..., "config": {...}}}'
        )
    if not isinstance(strategy.get("config", {}), dict):
        raise ProposalError("change.strategy.config must be an object")


def _check_model(change: Mapping[str, Any]) -> None:
    _check_keys("model", change, ["model"])
    model = change.get("model")
    if not (isinstance(model, str) and model) and not isinstance(model, dict):
        raise ProposalError("change.model must be a model id or a model spec object")
    if isinstance(model, dict) and "api_key" in model:
        raise ProposalError("change.model must not hold an api_key")


def _spec_check(cls: Any, what: str) -> Callable[[Mapping[str, Any]], None]:
    def check(change: Mapping[str, Any]) -> None:
        try:
            cls.from_dict(dict(change))
        except SpecValidationError as exc:
            raise ProposalError(f"{what} change is invalid: {exc.issues[0]}") from None

    return check


def _check_timeout(change: Mapping[str, Any]) -> None:
    _check_keys("timeout", change, ["timeout_seconds"])
    value = change.get("timeout_seconds")
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        raise ProposalError("change.timeout_seconds must be a number > 0")


def _check_tool_swap(change: Mapping[str, Any]) -> None:
    _check_keys("tool_swap", change, ["old", "new"])
    if _text(change, "old") is None or _text(change, "new") is None:
        raise ProposalError("tool_swap change needs old and new tool names")


def _check_edge(change: Mapping[str, Any]) -> None:
    _check_keys("edge", change, ["condition"])
    if "condition" not in change:
        raise ProposalError("edge change needs a condition (null removes it)")
    condition = change["condition"]
    if condition is not None and not isinstance(condition, dict):
        raise ProposalError("change.condition must be an object or null")


def _check_policy(change: Mapping[str, Any]) -> None:
    _check_keys("policy", change, ["remove_rules", "add_rules", "default_effect"])
    if not change:
        raise ProposalError("policy change is empty")
    remove = change.get("remove_rules", [])
    add = change.get("add_rules", [])
    if not isinstance(remove, list) or not all(isinstance(r, str) for r in remove):
        raise ProposalError("change.remove_rules must be a list of rule names")
    if not isinstance(add, list) or not all(isinstance(r, dict) for r in add):
        raise ProposalError("change.add_rules must be a list of rule objects")


_CHECKS: Dict[ProposalKind, Callable[[Mapping[str, Any]], None]] = {
    ProposalKind.PROMPT: _check_prompt,
    ProposalKind.STRATEGY: _check_strategy,
    ProposalKind.MODEL: _check_model,
    ProposalKind.RETRY: _spec_check(RetrySpec, "retry"),
    ProposalKind.TIMEOUT: _check_timeout,
    ProposalKind.RATE_LIMIT: _spec_check(RateLimitSpec, "rate_limit"),
    ProposalKind.TOOL_SWAP: _check_tool_swap,
    ProposalKind.EDGE: _check_edge,
    ProposalKind.POLICY: _check_policy,
}


@dataclass(frozen=True)
class Proposal:
    """One typed change to a mission spec.

    Attributes:
        id: Unique within an RSI run (``p1``, ``p2``...).
        kind: What it changes.
        target: Node id, ``"source->target"`` edge, or policy set name.
        change: The change (shape fixed by ``kind``, see the module docstring).
        finding: Key of the finding it addresses (``timeouts:lookup``).
        expected_effect: What should improve, in words.
        rationale: Why.
        source: ``"rule"`` (built in) or ``"model"``.
    """

    id: str
    kind: ProposalKind
    target: str
    change: Dict[str, Any] = field(default_factory=dict)
    finding: str = ""
    expected_effect: str = ""
    rationale: str = ""
    source: str = "rule"

    def __post_init__(self) -> None:
        try:
            kind = ProposalKind(self.kind)
        except ValueError:
            known = ", ".join(k.value for k in ProposalKind)
            raise ProposalError(
                f"unknown proposal kind {self.kind!r} (known: {known})"
            ) from None
        object.__setattr__(self, "kind", kind)
        if not isinstance(self.target, str) or not self.target:
            raise ProposalError("proposal target must be a non-empty string")
        if not isinstance(self.change, dict):
            raise ProposalError("proposal change must be an object")
        _CHECKS[kind](self.change)

    def to_dict(self) -> Dict[str, Any]:
        """Return the proposal as JSON-ready data.

        Returns:
            A dict (``kind`` as its string value).
        """
        return {
            "id": self.id,
            "kind": self.kind.value,
            "target": self.target,
            "change": copy.deepcopy(self.change),
            "finding": self.finding,
            "expected_effect": self.expected_effect,
            "rationale": self.rationale,
            "source": self.source,
        }

    @classmethod
    def from_dict(
        cls, data: Any, *, id: Optional[str] = None, source: Optional[str] = None
    ) -> Proposal:
        """Build and check a proposal from JSON data (what a model answers).

        Args:
            data: ``{"kind", "target", "change", "finding"?, "expected_effect"?,
                "rationale"?}``.
            id: Its id (default: ``data["id"]``).
            source: Its source (default: ``data["source"]`` or ``"model"``).

        Returns:
            The proposal.

        Raises:
            ProposalError: A field is missing, unknown or of the wrong shape.
        """
        if not isinstance(data, dict):
            raise ProposalError(
                f"a proposal must be an object, got {type(data).__name__}"
            )
        allowed = {"id", "kind", "target", "change", "finding", "expected_effect"}
        allowed |= {"rationale", "source"}
        unknown = sorted(set(data) - allowed)
        if unknown:
            raise ProposalError(f"proposal has unknown key(s) {unknown}")
        for key in ("kind", "target", "change"):
            if key not in data:
                raise ProposalError(f"proposal is missing {key!r}")
        texts = {
            k: data.get(k, "") for k in ("finding", "expected_effect", "rationale")
        }
        for key, value in texts.items():
            if not isinstance(value, str):
                raise ProposalError(f"proposal {key} must be a string")
        return cls(
            id=str(id if id is not None else data.get("id", "")),
            kind=data["kind"],
            target=data["target"],
            change=copy.deepcopy(data["change"]),
            source=str(source if source is not None else data.get("source", "model")),
            **texts,
        )

    # ------------------------------------------------------------------ applying
    def apply(self, mission: MissionSpec) -> MissionSpec:
        """Return a copy of ``mission`` with the change applied.

        Args:
            mission: The spec (left unchanged).

        Returns:
            The changed spec (structurally checked; run semantic validation on it).

        Raises:
            ProposalError: The target does not exist or is not of the kind the change needs.
            SpecValidationError: The changed spec is structurally invalid.
        """
        data = mission.to_dict()
        _APPLY[self.kind](self, data)
        return MissionSpec.from_dict(data)

    def _node(self, data: Dict[str, Any], *, agent: bool = False) -> Dict[str, Any]:
        node: Optional[Dict[str, Any]] = next(
            (n for n in data["graph"]["nodes"] if n["id"] == self.target), None
        )
        if node is None:
            raise ProposalError(f"{self.kind.value} proposal: no node {self.target!r}")
        if agent and not is_agent_node(node):
            raise ProposalError(
                f"{self.kind.value} proposal: node {self.target!r} is not an agent node"
            )
        return node


def _apply_prompt(p: Proposal, data: Dict[str, Any]) -> None:
    params = p._node(data, agent=True)["params"]
    params.update({k: v for k, v in p.change.items() if v is not None})


def _apply_strategy(p: Proposal, data: Dict[str, Any]) -> None:
    node = p._node(data, agent=True)
    strategy = {"type": p.change["strategy"]["type"]}
    strategy["config"] = dict(p.change["strategy"].get("config") or {})
    binding = next((b for b in data["strategies"] if b["target"] == p.target), None)
    if binding is not None:  # a mission binding wins over the node's own strategy
        binding["strategy"] = strategy
    else:
        node["params"]["strategy"] = strategy


def _apply_model(p: Proposal, data: Dict[str, Any]) -> None:
    p._node(data, agent=True)["params"]["model"] = copy.deepcopy(p.change["model"])


def _apply_capability(name: str) -> Callable[[Proposal, Dict[str, Any]], None]:
    def apply(p: Proposal, data: Dict[str, Any]) -> None:
        p._node(data)["config"][name] = copy.deepcopy(p.change)

    return apply


def _apply_tool_swap(p: Proposal, data: Dict[str, Any]) -> None:
    node = p._node(data)
    old, new = p.change["old"], p.change["new"]
    params = node["params"]
    if node["type"] == "tool_call" and params.get("tool") == old:
        params["tool"] = new
    elif isinstance(params.get("tools"), list) and old in params["tools"]:
        params["tools"] = [new if t == old else t for t in params["tools"]]
    else:
        raise ProposalError(
            f"tool_swap proposal: node {p.target!r} does not use tool {old!r}"
        )


def _apply_edge(p: Proposal, data: Dict[str, Any]) -> None:
    source, _, target = p.target.partition("->")
    edge = next(
        (
            e
            for e in data["graph"]["edges"]
            if e["source"] == source.strip() and e["target"] == target.strip()
        ),
        None,
    )
    if edge is None:
        raise ProposalError(f"edge proposal: no edge {p.target!r}")
    edge["condition"] = copy.deepcopy(p.change["condition"])


def _apply_policy(p: Proposal, data: Dict[str, Any]) -> None:
    policies = mission_policies(data)
    policy = next((s for s in policies if s.get("name") == p.target), None)
    if policy is None:
        raise ProposalError(f"policy proposal: no policy set {p.target!r}")
    rules = [r for r in policy.get("rules", []) if isinstance(r, dict)]
    names = {r.get("name") for r in rules}
    missing = [n for n in p.change.get("remove_rules", []) if n not in names]
    if missing:
        raise ProposalError(f"policy proposal: no rule(s) {missing} in {p.target!r}")
    removed = set(p.change.get("remove_rules", []))
    policy["rules"] = [r for r in rules if r.get("name") not in removed]
    policy["rules"] += copy.deepcopy(p.change.get("add_rules", []))
    if "default_effect" in p.change:
        policy["default_effect"] = p.change["default_effect"]


_APPLY: Dict[ProposalKind, Callable[[Proposal, Dict[str, Any]], None]] = {
    ProposalKind.PROMPT: _apply_prompt,
    ProposalKind.STRATEGY: _apply_strategy,
    ProposalKind.MODEL: _apply_model,
    ProposalKind.RETRY: _apply_capability("retry"),
    ProposalKind.TIMEOUT: _apply_capability("timeout"),
    ProposalKind.RATE_LIMIT: _apply_capability("rate_limit"),
    ProposalKind.TOOL_SWAP: _apply_tool_swap,
    ProposalKind.EDGE: _apply_edge,
    ProposalKind.POLICY: _apply_policy,
}
