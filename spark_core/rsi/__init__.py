"""Recursive self-improvement: telemetry -> hypotheses -> safety check -> A/B test -> deploy.

Every change RSI proposes is typed (:class:`Proposal`), checked (:func:`validate_proposal`),
measured (:func:`run_ab_test`) and reversible (:class:`SpecRepository`)::

    from spark_core.rsi import RSIMetaGraph, RSIMetaGraphConfig, ExperienceDatabase

    experience_db = ExperienceDatabase("experience.db")
    await experience_db.initialize()
    rsi = RSIMetaGraph(config=RSIMetaGraphConfig(graph_id="customer_service_agent",
                                                 graph_version="1.0"),
                       experience_db=experience_db)
    summary = await rsi.run(target_graph=my_graph)

``import spark_core`` does not load this package.
"""

from __future__ import annotations

from spark_core.rsi.abtest import ABTestConfig, ABTestResult, ArmMetrics, run_ab_test
from spark_core.rsi.analysis import Analysis, Finding, NodeStats, analyze
from spark_core.rsi.deploy import (
    DeploymentRecord,
    SpecRepository,
    bump_version,
    normalize_version,
    register_flow,
)
from spark_core.rsi.errors import (
    DeploymentError,
    ExperienceStoreError,
    ProposalError,
    RollbackError,
    RSIError,
)
from spark_core.rsi.experience import (
    ExperienceDatabase,
    ExperienceObserver,
    ExperienceStore,
    NodeAttempt,
    RunRecord,
    SQLiteExperienceStore,
)
from spark_core.rsi.hypothesize import HypothesisRules, hypothesize
from spark_core.rsi.meta_graph import RSIMetaGraph, RSIMetaGraphConfig
from spark_core.rsi.proposals import Proposal, ProposalKind
from spark_core.rsi.summary import ProposalOutcome, RSISummary
from spark_core.rsi.validate import SafetyPolicy, Verdict, validate_proposal

__all__ = [
    "RSIMetaGraph",
    "RSIMetaGraphConfig",
    "RSISummary",
    "ProposalOutcome",
    "ExperienceDatabase",
    "ExperienceObserver",
    "ExperienceStore",
    "SQLiteExperienceStore",
    "NodeAttempt",
    "RunRecord",
    "Analysis",
    "Finding",
    "NodeStats",
    "analyze",
    "Proposal",
    "ProposalKind",
    "HypothesisRules",
    "hypothesize",
    "SafetyPolicy",
    "Verdict",
    "validate_proposal",
    "ABTestConfig",
    "ABTestResult",
    "ArmMetrics",
    "run_ab_test",
    "SpecRepository",
    "DeploymentRecord",
    "bump_version",
    "normalize_version",
    "register_flow",
    "RSIError",
    "ExperienceStoreError",
    "ProposalError",
    "DeploymentError",
    "RollbackError",
]
