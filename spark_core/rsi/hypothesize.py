"""Hypothesize: proposals from built-in rules and, optionally, from a model.

Rules (no model needed, so RSI works offline):

* a node that times out gets a longer timeout (``timeout_factor`` x, at most
  ``max_timeout_seconds``); a node without a timeout that times out some other way gets a
  retry;
* a node failing with other errors gets a retry (or more retries, up to ``max_retries``).

A model is asked once for proposals in JSON (``response_format`` json_object); its answer
is parsed and checked with :meth:`Proposal.from_dict`, and a bad answer is re-asked with
the error, at most ``max_reasks`` times. Model proposals follow the rule proposals; the
total is cut at ``max_hypotheses``; a second proposal of the same kind for the same target
is dropped.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Tuple

from spark_core.rsi.analysis import Analysis
from spark_core.rsi.errors import ProposalError
from spark_core.rsi.proposals import Proposal, ProposalKind, is_agent_node
from spark_core.spec import MissionSpec

__all__ = ["HypothesisRules", "rule_proposals", "model_proposals", "hypothesize"]


@dataclass(frozen=True)
class HypothesisRules:
    """Knobs of the built-in rules.

    Attributes:
        timeout_factor: A timing-out node's timeout is multiplied by this.
        max_timeout_seconds: Never propose a longer timeout than this.
        max_retries: Never propose more retries than this.
    """

    timeout_factor: float = 4.0
    max_timeout_seconds: float = 300.0
    max_retries: int = 3


def rule_proposals(
    analysis: Analysis, mission: MissionSpec, rules: HypothesisRules = HypothesisRules()
) -> List[Proposal]:
    """Proposals the built-in rules derive from the findings.

    Args:
        analysis: The window's analysis.
        mission: The current spec.
        rules: The rules' knobs.

    Returns:
        The proposals (ids left empty; :func:`hypothesize` numbers them).
    """
    out: List[Proposal] = []
    for finding in analysis.findings:
        node = mission.graph.node(finding.node_id or "")
        if node is None:
            continue
        if finding.kind == "timeouts" and node.config.timeout is not None:
            old = node.config.timeout.timeout_seconds
            new = min(rules.max_timeout_seconds, old * rules.timeout_factor)
            if new > old:
                out.append(
                    Proposal(
                        "",
                        ProposalKind.TIMEOUT,
                        node.id,
                        {"timeout_seconds": round(new, 3)},
                        finding.key,
                        f"fewer timeouts of {node.id!r}: {old:g} s -> {new:g} s",
                        finding.summary,
                    )
                )
        elif finding.kind in ("timeouts", "node_errors"):
            retry = node.config.retry
            current = retry.max_retries if retry is not None else 0
            if current < rules.max_retries:
                change = (
                    retry.to_dict() if retry is not None else {"initial_delay": 0.1}
                )
                change["max_retries"] = min(rules.max_retries, max(2, current + 1))
                out.append(
                    Proposal(
                        "",
                        ProposalKind.RETRY,
                        node.id,
                        change,
                        finding.key,
                        f"transient failures of {node.id!r} retried "
                        f"({current} -> {change['max_retries']} retries)",
                        finding.summary,
                    )
                )
    return out


_SYSTEM = """You improve a graph of AI agents from its telemetry.
Answer with JSON only: {"proposals": [ ... ]}, at most %d items. Each item:
{"kind": one of %s,
 "target": node id (for edge: "source->target"; for policy: policy set name),
 "change": object, by kind:
   prompt: {"system_prompt": "..."}; strategy: {"strategy": {"type": "react", "config": {}}};
   model: {"model": "model-id"}; retry: {"max_retries": 2}; timeout: {"timeout_seconds": 5};
   rate_limit: {"max_calls": 10, "period_seconds": 1}; tool_swap: {"old": "a", "new": "b"};
   edge: {"condition": {"kind": "expr", "value": "..."}};
 "finding": key of the finding addressed, "expected_effect": "...", "rationale": "..."}
Never weaken governance policies."""


def _graph_view(mission: MissionSpec) -> Dict[str, Any]:
    """What the model is shown of the spec: node ids, types, configs and agent settings."""
    nodes = []
    for node in mission.graph.nodes:
        item: Dict[str, Any] = {
            "id": node.id,
            "type": node.type,
            "config": node.config.to_dict(),
        }
        if is_agent_node(node.to_dict()):
            params = node.params
            item["agent"] = {
                k: params.get(k)
                for k in ("system_prompt", "strategy", "tools")
                if k in params
            }
            model = params.get("model")
            item["agent"]["model"] = (
                model.get("model_id") if isinstance(model, dict) else model
            )
        nodes.append(item)
    edges = [f"{e.source}->{e.target}" for e in mission.graph.edges]
    return {
        "nodes": nodes,
        "edges": edges,
        "tools": [t.name for t in mission.graph.tools],
    }


def _parse_reply(text: Optional[str]) -> List[Proposal]:
    try:
        data = json.loads(text or "")
    except ValueError as exc:
        raise ProposalError(f"reply is not JSON: {exc}") from None
    items = data.get("proposals") if isinstance(data, dict) else data
    if not isinstance(items, list):
        raise ProposalError('reply must be {"proposals": [...]}')
    out = []
    for index, item in enumerate(items):
        try:
            out.append(Proposal.from_dict(item, id="", source="model"))
        except ProposalError as exc:
            raise ProposalError(f"proposals[{index}]: {exc}") from None
    return out


async def model_proposals(
    model: Any,
    analysis: Analysis,
    mission: MissionSpec,
    *,
    max_hypotheses: int,
    max_reasks: int = 2,
) -> Tuple[List[Proposal], List[str]]:
    """Ask a model for proposals.

    Args:
        model: Anything with ``async complete(messages, **options)`` (a spark_core model).
        analysis: The window's analysis.
        mission: The current spec.
        max_hypotheses: Most proposals wanted.
        max_reasks: Times a bad answer is sent back with its error.

    Returns:
        The proposals, and notes on what went wrong (empty when all went well).
    """
    from spark_core.models import ModelError

    kinds = ", ".join(k.value for k in ProposalKind)
    user = {
        "findings": [f.to_dict() for f in analysis.findings],
        "success_rate": analysis.success_rate,
        "mean_score": analysis.mean_score,
        "graph": _graph_view(mission),
    }
    messages: List[Dict[str, Any]] = [
        {"role": "system", "content": _SYSTEM % (max_hypotheses, kinds)},
        {"role": "user", "content": json.dumps(user, sort_keys=True, default=str)},
    ]
    notes: List[str] = []
    for _ in range(max_reasks + 1):
        try:
            response = await model.complete(
                messages, response_format={"type": "json_object"}
            )
        except ModelError as exc:
            notes.append(f"model error: {exc}")
            return [], notes
        try:
            return _parse_reply(response.text), notes
        except ProposalError as exc:
            notes.append(f"model reply refused: {exc}")
            messages.append({"role": "assistant", "content": response.text or ""})
            messages.append(
                {
                    "role": "user",
                    "content": f"That reply was invalid ({exc}). Answer again with JSON only.",
                }
            )
    return [], notes


@dataclass
class Hypotheses:
    """The proposals of one RSI run and notes on the model's answers."""

    proposals: List[Proposal] = field(default_factory=list)
    notes: List[str] = field(default_factory=list)


async def hypothesize(
    analysis: Analysis,
    mission: MissionSpec,
    *,
    max_hypotheses: int,
    model: Any = None,
    rules: HypothesisRules = HypothesisRules(),
    max_reasks: int = 2,
) -> Hypotheses:
    """Rule proposals, then model proposals, numbered ``p1``, ``p2``... and cut at the bound.

    Args:
        analysis: The window's analysis.
        mission: The current spec.
        max_hypotheses: Most proposals returned.
        model: A model to ask (None: rules only).
        rules: The rules' knobs.
        max_reasks: Times a bad model answer is re-asked.

    Returns:
        The proposals and notes.
    """
    result = Hypotheses()
    if max_hypotheses <= 0 or not analysis.findings:
        return result
    candidates = rule_proposals(analysis, mission, rules)
    if model is not None:
        asked, result.notes = await model_proposals(
            model,
            analysis,
            mission,
            max_hypotheses=max_hypotheses,
            max_reasks=max_reasks,
        )
        candidates += asked
    seen = set()
    for proposal in candidates:
        key = (proposal.kind, proposal.target)
        if key in seen:
            continue
        seen.add(key)
        data = proposal.to_dict()
        data["id"] = f"p{len(result.proposals) + 1}"
        result.proposals.append(Proposal.from_dict(data))
        if len(result.proposals) >= max_hypotheses:
            break
    return result
