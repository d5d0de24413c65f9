"""The result of one RSI run: typed, readable with ``print``, and JSON-serialisable."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

from spark_core.rsi.abtest import ABTestResult
from spark_core.rsi.analysis import Finding
from spark_core.rsi.deploy import DeploymentRecord
from spark_core.rsi.proposals import Proposal

__all__ = ["ProposalOutcome", "RSISummary", "STATUSES"]

#: What an RSI run ended with.
STATUSES = (
    "no_findings",
    "no_proposals",
    "no_safe_proposals",
    "no_winner",
    "winner_not_deployed",
    "awaiting_approval",
    "rejected",
    "deployed",
)


@dataclass
class ProposalOutcome:
    """What became of one proposal.

    Attributes:
        proposal: The proposal.
        verdict: ``refused`` (validation), ``won``, ``lost`` or ``inconclusive`` (A/B test),
            or ``deployed``.
        reasons: Why it was refused, or the A/B decision's reason.
        estimated_cost_per_run: The validation's cost estimate.
    """

    proposal: Proposal
    verdict: str
    reasons: List[str] = field(default_factory=list)
    estimated_cost_per_run: Optional[float] = None

    def to_dict(self) -> Dict[str, Any]:
        """Return the outcome as JSON-ready data.

        Returns:
            A dict.
        """
        return {
            "proposal": self.proposal.to_dict(),
            "verdict": self.verdict,
            "reasons": list(self.reasons),
            "estimated_cost_per_run": self.estimated_cost_per_run,
        }

    @classmethod
    def from_dict(cls, data: Dict[str, Any]) -> ProposalOutcome:
        """Build an outcome from :meth:`to_dict` output.

        Args:
            data: The dict.

        Returns:
            The outcome.
        """
        return cls(
            proposal=Proposal.from_dict(data["proposal"]),
            verdict=str(data["verdict"]),
            reasons=[str(r) for r in data.get("reasons", [])],
            estimated_cost_per_run=data.get("estimated_cost_per_run"),
        )


@dataclass
class RSISummary:
    """What one RSI run found, proposed, tested and deployed.

    Attributes:
        graph_id: The improved graph (mission) id.
        status: One of :data:`STATUSES`.
        version_before: The version analyzed.
        version_after: The version current after the run (the same when nothing deployed).
        run_id: The meta-graph run's id (``rsi.resume(run_id)`` after an approval).
        runs_analyzed: Runs in the analysis window.
        success_rate: Their success rate.
        findings: What the analysis found.
        proposals: Each proposal and its outcome.
        ab_tests: The A/B tests made.
        winner: The proposal id chosen, if any.
        deployment: The deploy record, if one was made.
        approval_request_id: The pending approval, when the deploy waits for one.
        notes: Other remarks (model answers refused, ...).
    """

    graph_id: str
    status: str
    version_before: str
    version_after: str
    run_id: Optional[str] = None
    runs_analyzed: int = 0
    success_rate: float = 0.0
    findings: List[Finding] = field(default_factory=list)
    proposals: List[ProposalOutcome] = field(default_factory=list)
    ab_tests: List[ABTestResult] = field(default_factory=list)
    winner: Optional[str] = None
    deployment: Optional[DeploymentRecord] = None
    approval_request_id: Optional[str] = None
    notes: List[str] = field(default_factory=list)

    @property
    def deployed(self) -> bool:
        """Whether a new version was deployed."""
        return self.status == "deployed"

    def to_dict(self) -> Dict[str, Any]:
        """Return the summary as JSON-ready data.

        Returns:
            A dict (``json.dumps`` accepts it).
        """
        return {
            "graph_id": self.graph_id,
            "status": self.status,
            "version_before": self.version_before,
            "version_after": self.version_after,
            "run_id": self.run_id,
            "runs_analyzed": self.runs_analyzed,
            "success_rate": self.success_rate,
            "findings": [f.to_dict() for f in self.findings],
            "proposals": [p.to_dict() for p in self.proposals],
            "ab_tests": [t.to_dict() for t in self.ab_tests],
            "winner": self.winner,
            "deployment": self.deployment.to_dict() if self.deployment else None,
            "approval_request_id": self.approval_request_id,
            "notes": list(self.notes),
        }

    def to_json(self, indent: Optional[int] = 2) -> str:
        """Return the summary as JSON text.

        Args:
            indent: Indentation (None: one line).

        Returns:
            The text.
        """
        return json.dumps(self.to_dict(), indent=indent, allow_nan=False)

    @classmethod
    def from_dict(cls, data: Dict[str, Any]) -> RSISummary:
        """Build a summary from :meth:`to_dict` output.

        Args:
            data: The dict.

        Returns:
            The summary.
        """
        deployment = data.get("deployment")
        return cls(
            graph_id=str(data["graph_id"]),
            status=str(data["status"]),
            version_before=str(data["version_before"]),
            version_after=str(data["version_after"]),
            run_id=data.get("run_id"),
            runs_analyzed=int(data.get("runs_analyzed", 0)),
            success_rate=float(data.get("success_rate", 0.0)),
            findings=[Finding.from_dict(f) for f in data.get("findings", [])],
            proposals=[ProposalOutcome.from_dict(p) for p in data.get("proposals", [])],
            ab_tests=[ABTestResult.from_dict(t) for t in data.get("ab_tests", [])],
            winner=data.get("winner"),
            deployment=DeploymentRecord.from_dict(deployment) if deployment else None,
            approval_request_id=data.get("approval_request_id"),
            notes=[str(n) for n in data.get("notes", [])],
        )

    def __str__(self) -> str:
        lines = [
            f"RSI {self.graph_id}: {self.status} "
            f"(version {self.version_before} -> {self.version_after})",
            f"  analyzed {self.runs_analyzed} run(s), success rate {self.success_rate:.0%}",
        ]
        if self.findings:
            lines.append("  findings:")
            lines += [f"    [{f.severity}] {f.summary}" for f in self.findings]
        if self.proposals:
            lines.append("  proposals:")
            for outcome in self.proposals:
                p = outcome.proposal
                lines.append(
                    f"    {p.id} {p.kind.value} {p.target} ({p.source}): {outcome.verdict}"
                )
                lines += [f"        - {reason}" for reason in outcome.reasons]
        for test in self.ab_tests:
            a, b = test.baseline, test.candidate
            lines.append(
                f"  A/B {test.proposal_id} (n={test.samples} per arm): {test.decision}; "
                f"success {a.success_rate:.0%} -> {b.success_rate:.0%}, "
                f"latency {a.mean_latency_ms:.1f} -> {b.mean_latency_ms:.1f} ms"
                + (
                    f", score {a.mean_score:.2f} -> {b.mean_score:.2f}"
                    if a.mean_score is not None and b.mean_score is not None
                    else ""
                )
            )
            for t in test.tests:
                lines.append(
                    f"      {t.name} {t.metric} ({t.alternative}): "
                    f"z={t.statistic:.2f} p={t.p_value:.4f}"
                )
        if self.deployment is not None:
            lines.append(
                f"  deployed {self.deployment.version} (was "
                f"{self.deployment.previous_version}) -> {self.deployment.path}"
            )
            lines += ["    " + line for line in self.deployment.diff.splitlines()]
        if self.approval_request_id:
            lines.append(f"  waiting for approval {self.approval_request_id}")
        lines += [f"  note: {note}" for note in self.notes]
        return "\n".join(lines)
