"""Validate: is a proposal safe to try?

A proposal is applied to a copy of the spec, and the candidate must:

1. be of a kind the :class:`SafetyPolicy` allows, and apply to the spec at all;
2. pass spec validation (``validate_mission``: structure and meaning);
3. keep every governance policy of the baseline: each policy set, each DENY and
   REQUIRE_APPROVAL rule unchanged, and no weaker default effect (policies in
   ``metadata.governance.policies``, plus ``SafetyPolicy.policies`` given from Python,
   which no proposal can touch);
4. reference only allowed node modules, tool modules, tools and models, and load with
   them (``SpecLoader``);
5. stay within ``max_cost_per_run``, estimated from the measured cost per node: a model
   swap scales the node's cost by the price ratio, more retries by the worst case
   ``(1 + retries)``.

A refused proposal keeps every reason it was refused for.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence, Tuple

from spark_core.errors import SparkError
from spark_core.rsi.analysis import Analysis
from spark_core.rsi.errors import ProposalError
from spark_core.rsi.proposals import (
    Proposal,
    ProposalKind,
    is_agent_node,
    mission_policies,
)
from spark_core.spec import (
    MissionSpec,
    SpecValidationError,
    validate_mission,
)
from spark_core.spec.validation import is_reference

__all__ = ["SafetyPolicy", "Verdict", "validate_proposal", "governance_problems"]

_STRENGTH = {"allow": 0, "require_approval": 1, "deny": 2}
_RESTRICTIVE = ("deny", "require_approval")


@dataclass(frozen=True)
class SafetyPolicy:
    """What RSI may change.

    Attributes:
        allowed_kinds: Proposal kinds that may be tried.
        allowed_modules: Module prefixes node classes may come from.
        allowed_tool_modules: Module prefixes tool references may come from.
        allowed_tools: Tool names nodes may use (None: those the baseline graph declares).
        allowed_models: Model ids a model swap may choose (None: any).
        max_cost_per_run: Bound on the estimated (and, in the A/B test, measured) mean
            cost of a run in USD (None: no bound).
        policies: Policy sets (``PolicySet.to_dict()`` forms) the graph runs under that
            are not in the spec; they are enforced in A/B runs, and no proposal can touch them.
    """

    allowed_kinds: Tuple[ProposalKind, ...] = tuple(ProposalKind)
    allowed_modules: Tuple[str, ...] = ("spark_core",)
    allowed_tool_modules: Tuple[str, ...] = ()
    allowed_tools: Optional[Tuple[str, ...]] = None
    allowed_models: Optional[Tuple[str, ...]] = None
    max_cost_per_run: Optional[float] = None
    policies: Tuple[Dict[str, Any], ...] = ()

    def loader(self) -> Any:
        """Return a ``SpecLoader`` restricted to the allowed modules.

        Returns:
            The loader.
        """
        from spark_core.spec.loader import SpecLoader

        return SpecLoader(
            list(self.allowed_modules),
            allowed_tool_modules=list(self.allowed_tool_modules),
        )


@dataclass
class Verdict:
    """Whether a proposal may be tested, and why not.

    Attributes:
        proposal: The proposal.
        accepted: Whether it passed every check.
        reasons: Why it was refused (empty when accepted).
        candidate: The changed spec (None when the change did not apply).
        estimated_cost_per_run: The estimate checked against the cost bound.
    """

    proposal: Proposal
    accepted: bool
    reasons: List[str] = field(default_factory=list)
    candidate: Optional[MissionSpec] = None
    estimated_cost_per_run: Optional[float] = None

    def to_dict(self) -> Dict[str, Any]:
        """Return the verdict as JSON-ready data (the candidate spec left out).

        Returns:
            A dict.
        """
        return {
            "proposal": self.proposal.to_dict(),
            "accepted": self.accepted,
            "reasons": list(self.reasons),
            "estimated_cost_per_run": self.estimated_cost_per_run,
        }


def _rules_by_name(policy: Dict[str, Any]) -> Dict[str, Dict[str, Any]]:
    return {
        str(r.get("name")): r for r in policy.get("rules", []) if isinstance(r, dict)
    }


def _effect(value: Any) -> str:
    return str(getattr(value, "value", value) or "allow").lower()


def governance_problems(baseline: MissionSpec, candidate: MissionSpec) -> List[str]:
    """What the candidate loosened in the baseline's governance policies.

    Args:
        baseline: The current spec.
        candidate: The changed spec.

    Returns:
        One sentence per dropped policy set, dropped or changed DENY / REQUIRE_APPROVAL rule,
        and weakened default effect (empty when every policy is kept).
    """
    try:
        before = {str(p.get("name")): p for p in mission_policies(baseline.to_dict())}
        after = {str(p.get("name")): p for p in mission_policies(candidate.to_dict())}
    except ProposalError as exc:
        return [str(exc)]
    problems = []
    for name, policy in before.items():
        kept = after.get(name)
        if kept is None:
            problems.append(f"drops policy set {name!r}")
            continue
        new_rules = _rules_by_name(kept)
        for rule_name, rule in _rules_by_name(policy).items():
            effect = _effect(rule.get("effect"))
            if effect not in _RESTRICTIVE:
                continue
            if rule_name not in new_rules:
                problems.append(
                    f"drops {effect.upper()} rule {rule_name!r} of policy {name!r}"
                )
            elif new_rules[rule_name] != rule:
                problems.append(
                    f"changes {effect.upper()} rule {rule_name!r} of policy {name!r}"
                )
        old_default = _effect(policy.get("default_effect"))
        new_default = _effect(kept.get("default_effect"))
        if _STRENGTH.get(new_default, 0) < _STRENGTH.get(old_default, 0):
            problems.append(
                f"weakens the default effect of policy {name!r} "
                f"from {old_default} to {new_default}"
            )
    return problems


def _under(module: str, prefixes: Sequence[str]) -> bool:
    return any(module == p or module.startswith(p + ".") for p in prefixes)


def _reference_problems(
    baseline: MissionSpec, candidate: MissionSpec, safety: SafetyPolicy
) -> List[str]:
    problems = []
    allowed_tools = set(
        safety.allowed_tools
        if safety.allowed_tools is not None
        else [t.name for t in baseline.graph.tools]
    )
    for node in candidate.graph.nodes:
        if is_reference(node.type):
            module = node.type.split(":", 1)[0]
            if not _under(module, safety.allowed_modules):
                problems.append(
                    f"node {node.id!r} uses module {module!r}, which is not allowed"
                )
        used = []
        if node.type == "tool_call" and isinstance(node.params.get("tool"), str):
            used.append(node.params["tool"])
        if is_agent_node(node.to_dict()) and isinstance(node.params.get("tools"), list):
            used += [str(t) for t in node.params["tools"]]
        for name in used:
            if name not in allowed_tools:
                problems.append(
                    f"node {node.id!r} uses tool {name!r}, which is not allowed"
                )
    for tool in candidate.graph.tools:
        if tool.reference and not _under(
            tool.reference.split(":", 1)[0], safety.allowed_tool_modules
        ):
            if tool.to_dict() not in [t.to_dict() for t in baseline.graph.tools]:
                problems.append(
                    f"tool {tool.name!r} references a module that is not allowed"
                )
    return problems


def _model_id(model: Any) -> str:
    return str(model.get("model_id", "") if isinstance(model, dict) else model)


def _price(model_id: str) -> Optional[float]:
    from spark_core.models import get_pricing

    pricing = get_pricing(model_id)
    if pricing is None:
        return None
    return pricing.input_per_million + pricing.output_per_million


def _estimate_cost(
    proposal: Proposal, baseline: MissionSpec, analysis: Optional[Analysis]
) -> Tuple[Optional[float], List[str]]:
    """Mean cost per run after the change, from the measured cost per node."""
    if analysis is None or analysis.runs == 0:
        return None, []
    per_node = {k: s.cost_usd / analysis.runs for k, s in analysis.nodes.items()}
    node = baseline.graph.node(proposal.target)
    if proposal.kind is ProposalKind.MODEL and node is not None:
        old_id, new_id = _model_id(node.params.get("model")), _model_id(
            proposal.change["model"]
        )
        old_price, new_price = _price(old_id), _price(new_id)
        cost = per_node.get(node.id, 0.0)
        if cost > 0:
            if old_price is None or new_price is None or old_price == 0:
                unknown = new_id if new_price is None else old_id
                return None, [
                    f"cannot estimate the cost of model {unknown!r} (no pricing)"
                ]
            per_node[node.id] = cost * new_price / old_price
    if proposal.kind is ProposalKind.RETRY and node is not None:
        old = node.config.retry.max_retries if node.config.retry is not None else 0
        new = int(proposal.change.get("max_retries", 3))
        per_node[node.id] = per_node.get(node.id, 0.0) * (1 + new) / (1 + old)
    return sum(per_node.values()), []


def validate_proposal(
    proposal: Proposal,
    baseline: MissionSpec,
    safety: SafetyPolicy = SafetyPolicy(),
    *,
    analysis: Optional[Analysis] = None,
) -> Verdict:
    """Check a proposal against the spec and the safety policy.

    Args:
        proposal: The proposal.
        baseline: The current spec.
        safety: What may change.
        analysis: The window's analysis (for the cost estimate).

    Returns:
        The verdict (never raises for a bad proposal: it is refused with the reason).
    """
    verdict = Verdict(proposal, accepted=False)
    if proposal.kind not in safety.allowed_kinds:
        verdict.reasons.append(f"proposal kind {proposal.kind.value!r} is not allowed")
        return verdict
    try:
        candidate = proposal.apply(baseline)
    except ProposalError as exc:
        verdict.reasons.append(f"does not apply: {exc}")
        return verdict
    except SpecValidationError as exc:
        verdict.reasons.append(f"invalid spec: {exc.issues[0]}")
        return verdict
    verdict.candidate = candidate
    try:
        errors = [str(i) for i in validate_mission(candidate) if i.severity == "error"]
    except SparkError as exc:  # e.g. an edge expression that does not parse
        errors = [str(exc)]
    verdict.reasons += [f"invalid spec: {issue}" for issue in errors]
    verdict.reasons += governance_problems(baseline, candidate)
    verdict.reasons += _reference_problems(baseline, candidate, safety)
    if proposal.kind is ProposalKind.MODEL and safety.allowed_models is not None:
        model_id = _model_id(proposal.change["model"])
        if model_id not in safety.allowed_models:
            verdict.reasons.append(f"model {model_id!r} is not allowed")
    if not verdict.reasons:
        try:  # resolves node classes under the allowed modules and builds every node
            from spark_core.spec.simulation import SimulatedTool

            stand_ins = {t.name: SimulatedTool(t.name) for t in candidate.graph.tools}
            safety.loader().load_mission(candidate, tool_overrides=stand_ins)
        except (
            SparkError
        ) as exc:  # SpecError, or an expression the validator let through
            verdict.reasons.append(f"does not load: {exc}")
    estimate, notes = _estimate_cost(proposal, baseline, analysis)
    verdict.estimated_cost_per_run = estimate
    if safety.max_cost_per_run is not None:
        verdict.reasons += notes
        if estimate is not None and estimate > safety.max_cost_per_run:
            verdict.reasons.append(
                f"estimated cost per run ${estimate:.4f} exceeds the bound "
                f"${safety.max_cost_per_run:.4f}"
            )
    verdict.accepted = not verdict.reasons
    return verdict
