"""Analyze: deterministic findings from a window of runs (no model involved).

Per node: latency p50/p95 (nearest-rank percentiles of attempt durations), error rate and
error kinds, retries and timeouts, cost and tokens. Per graph: success rate, mean score,
and the inputs of failed runs. Findings are sorted by severity, then kind, then node, so the
same runs always give the same findings in the same order.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from typing import Any, Dict, List, Optional, Sequence

from spark_core.rsi.experience import RunRecord

__all__ = ["NodeStats", "Finding", "Analysis", "analyze", "percentile"]

_SEVERITY = {"critical": 0, "warning": 1, "info": 2}


def percentile(values: Sequence[float], q: float) -> float:
    """The nearest-rank percentile (``q`` in 0..100) of ``values`` (0.0 when empty).

    Args:
        values: The sample.
        q: The percentile.

    Returns:
        The smallest value with at least ``q`` percent of the sample at or below it.
    """
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100.0 * len(ordered)))
    return float(ordered[min(rank, len(ordered)) - 1])


@dataclass
class NodeStats:
    """What one node did over the window.

    Attributes:
        node_id: The node.
        attempts: Attempts made.
        executions: Attempts that were first attempts (so attempts - executions = retries).
        errors: Attempts that failed.
        timeouts: Attempts that hit their timeout.
        error_rate: errors / attempts.
        error_kinds: Error class name -> attempts that failed with it.
        p50_ms: Median attempt duration.
        p95_ms: 95th percentile attempt duration.
        cost_usd: Cost reported by the node.
        tokens: Tokens reported by the node.
    """

    node_id: str
    attempts: int = 0
    executions: int = 0
    errors: int = 0
    timeouts: int = 0
    error_rate: float = 0.0
    error_kinds: Dict[str, int] = field(default_factory=dict)
    p50_ms: float = 0.0
    p95_ms: float = 0.0
    cost_usd: float = 0.0
    tokens: int = 0

    @property
    def retries(self) -> int:
        """Attempts after the first of an execution."""
        return self.attempts - self.executions

    def to_dict(self) -> Dict[str, Any]:
        """Return the stats as JSON-ready data (``retries`` included).

        Returns:
            A dict.
        """
        data = asdict(self)
        data["retries"] = self.retries
        return data


@dataclass
class Finding:
    """One observation RSI may act on.

    Attributes:
        kind: ``timeouts``, ``node_errors``, ``retries``, ``slow_node``, ``cost``,
            ``failing_inputs``, ``low_score`` or ``run_failures``.
        severity: ``critical``, ``warning`` or ``info``.
        summary: One readable sentence.
        node_id: The node concerned (None for graph-wide findings).
        metrics: The figures behind it (JSON data).
    """

    kind: str
    severity: str
    summary: str
    node_id: Optional[str] = None
    metrics: Dict[str, Any] = field(default_factory=dict)

    @property
    def key(self) -> str:
        """A stable reference, e.g. ``timeouts:lookup``."""
        return f"{self.kind}:{self.node_id}" if self.node_id else self.kind

    def to_dict(self) -> Dict[str, Any]:
        """Return the finding as JSON-ready data.

        Returns:
            A dict with every attribute and the ``key``.
        """
        data = asdict(self)
        data["key"] = self.key
        return data

    @classmethod
    def from_dict(cls, data: Dict[str, Any]) -> Finding:
        """Build a finding from :meth:`to_dict` output.

        Args:
            data: The dict.

        Returns:
            The finding.
        """
        return cls(
            kind=str(data["kind"]),
            severity=str(data["severity"]),
            summary=str(data["summary"]),
            node_id=data.get("node_id"),
            metrics=dict(data.get("metrics") or {}),
        )


@dataclass
class Analysis:
    """The window's figures and findings.

    Attributes:
        runs: Runs analyzed.
        success_rate: Share of runs that completed (0.0 without runs).
        mean_score: Mean score of scored runs (None when none was scored).
        mean_cost_usd: Mean cost per run.
        nodes: Node id -> stats.
        findings: The findings, most severe first.
    """

    runs: int
    success_rate: float
    mean_score: Optional[float]
    mean_cost_usd: float
    nodes: Dict[str, NodeStats]
    findings: List[Finding]

    @classmethod
    def from_dict(cls, data: Dict[str, Any]) -> Analysis:
        """Build an analysis from :meth:`to_dict` output.

        Args:
            data: The dict.

        Returns:
            The analysis.
        """
        nodes = {}
        for node_id, stats in (data.get("nodes") or {}).items():
            fields_ = {k: v for k, v in stats.items() if k != "retries"}
            nodes[node_id] = NodeStats(**fields_)
        return cls(
            runs=int(data["runs"]),
            success_rate=float(data["success_rate"]),
            mean_score=data.get("mean_score"),
            mean_cost_usd=float(data.get("mean_cost_usd") or 0.0),
            nodes=nodes,
            findings=[Finding.from_dict(f) for f in data.get("findings", [])],
        )

    def to_dict(self) -> Dict[str, Any]:
        """Return the analysis as JSON-ready data.

        Returns:
            A dict.
        """
        return {
            "runs": self.runs,
            "success_rate": self.success_rate,
            "mean_score": self.mean_score,
            "mean_cost_usd": self.mean_cost_usd,
            "nodes": {k: v.to_dict() for k, v in self.nodes.items()},
            "findings": [f.to_dict() for f in self.findings],
        }


def _node_stats(runs: Sequence[RunRecord]) -> Dict[str, NodeStats]:
    stats: Dict[str, NodeStats] = {}
    durations: Dict[str, List[float]] = {}
    for run in runs:
        for a in run.attempts:
            s = stats.setdefault(a.node_id, NodeStats(a.node_id))
            durations.setdefault(a.node_id, []).append(a.duration_ms)
            s.attempts += 1
            s.executions += 1 if a.attempt <= 1 else 0
            s.cost_usd += a.cost_usd
            s.tokens += a.tokens
            if a.status == "error":
                s.errors += 1
                kind = a.error_kind or "Error"
                s.error_kinds[kind] = s.error_kinds.get(kind, 0) + 1
                s.timeouts += 1 if a.timed_out else 0
    for node_id, s in stats.items():
        s.error_rate = s.errors / s.attempts if s.attempts else 0.0
        s.p50_ms = percentile(durations[node_id], 50)
        s.p95_ms = percentile(durations[node_id], 95)
        s.error_kinds = dict(sorted(s.error_kinds.items()))
    return dict(sorted(stats.items()))


def _distinct_inputs(runs: Sequence[RunRecord], limit: int) -> List[Any]:
    seen: Dict[str, Any] = {}
    for run in runs:
        if run.inputs is None:
            continue
        key = json.dumps(run.inputs, sort_keys=True, default=str)
        seen.setdefault(key, run.inputs)
        if len(seen) >= limit:
            break
    return list(seen.values())


def analyze(
    runs: Sequence[RunRecord],
    *,
    error_rate_threshold: float = 0.05,
    score_threshold: float = 0.8,
    max_failing_inputs: int = 5,
) -> Analysis:
    """Compute figures and findings for a window of runs.

    Args:
        runs: The runs (e.g. ``ExperienceDatabase.query_runs(...)``).
        error_rate_threshold: A node erring on at least this share of its attempts is a
            finding.
        score_threshold: A mean score below this is a ``low_score`` finding.
        max_failing_inputs: Distinct failing inputs kept in the finding.

    Returns:
        The analysis (no findings for an empty window).
    """
    nodes = _node_stats(runs)
    total = len(runs)
    completed = [r for r in runs if r.ok]
    scores = [r.score for r in runs if r.score is not None]
    mean_score = sum(scores) / len(scores) if scores else None
    findings: List[Finding] = []
    for s in nodes.values():
        if s.timeouts:
            rate = s.timeouts / s.attempts
            findings.append(
                Finding(
                    "timeouts",
                    "critical" if rate >= 0.2 else "warning",
                    f"node {s.node_id!r} timed out on {s.timeouts} of {s.attempts} "
                    f"attempts ({rate:.0%})",
                    s.node_id,
                    {"timeouts": s.timeouts, "attempts": s.attempts, "rate": rate},
                )
            )
        other = s.errors - s.timeouts
        if other and other / s.attempts >= error_rate_threshold:
            kinds = {k: v for k, v in s.error_kinds.items() if k != "NodeTimeoutError"}
            findings.append(
                Finding(
                    "node_errors",
                    "critical" if other / s.attempts >= 0.2 else "warning",
                    f"node {s.node_id!r} failed {other} of {s.attempts} attempts "
                    f"({', '.join(f'{k} x{v}' for k, v in kinds.items())})",
                    s.node_id,
                    {
                        "errors": other,
                        "attempts": s.attempts,
                        "rate": other / s.attempts,
                        "error_kinds": kinds,
                    },
                )
            )
        if s.retries:
            findings.append(
                Finding(
                    "retries",
                    "info",
                    f"node {s.node_id!r} was retried {s.retries} time(s)",
                    s.node_id,
                    {"retries": s.retries, "executions": s.executions},
                )
            )
    if nodes:
        slowest = max(nodes.values(), key=lambda s: (s.p95_ms, s.node_id))
        findings.append(
            Finding(
                "slow_node",
                "info",
                f"node {slowest.node_id!r} is the slowest: p50 {slowest.p50_ms:.1f} ms, "
                f"p95 {slowest.p95_ms:.1f} ms",
                slowest.node_id,
                {"p50_ms": slowest.p50_ms, "p95_ms": slowest.p95_ms},
            )
        )
        costly = max(nodes.values(), key=lambda s: (s.cost_usd, s.node_id))
        total_cost = sum(s.cost_usd for s in nodes.values())
        if costly.cost_usd > 0:
            findings.append(
                Finding(
                    "cost",
                    "info",
                    f"node {costly.node_id!r} spends {costly.cost_usd / total_cost:.0%} "
                    f"of the cost (${costly.cost_usd:.4f}, {costly.tokens} tokens)",
                    costly.node_id,
                    {
                        "cost_usd": costly.cost_usd,
                        "tokens": costly.tokens,
                        "share": costly.cost_usd / total_cost,
                    },
                )
            )
    failed = [r for r in runs if not r.ok]
    if failed:
        rate = len(failed) / total
        findings.append(
            Finding(
                "run_failures",
                "critical" if rate >= 0.2 else "warning",
                f"{len(failed)} of {total} runs did not complete ({rate:.0%})",
                None,
                {"failed": len(failed), "runs": total, "rate": rate},
            )
        )
        examples = _distinct_inputs(failed, max_failing_inputs)
        if examples:
            findings.append(
                Finding(
                    "failing_inputs",
                    "info",
                    f"{len(examples)} distinct input(s) among the failed runs",
                    None,
                    {"inputs": examples},
                )
            )
    if mean_score is not None and mean_score < score_threshold:
        findings.append(
            Finding(
                "low_score",
                "warning",
                f"mean score {mean_score:.2f} over {len(scores)} scored run(s) is below "
                f"{score_threshold:.2f}",
                None,
                {"mean_score": mean_score, "scored": len(scores)},
            )
        )
    findings.sort(key=lambda f: (_SEVERITY.get(f.severity, 9), f.kind, f.node_id or ""))
    return Analysis(
        runs=total,
        success_rate=len(completed) / total if total else 0.0,
        mean_score=mean_score,
        mean_cost_usd=sum(r.cost_usd for r in runs) / total if total else 0.0,
        nodes=nodes,
        findings=findings,
    )
