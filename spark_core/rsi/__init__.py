"""Recursive self-improvement: telemetry -> hypotheses -> safety check -> A/B test -> deploy."""

from __future__ import annotations

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

__all__ = [
    "RSIError",
    "ExperienceStoreError",
    "ProposalError",
    "DeploymentError",
    "RollbackError",
    "ExperienceDatabase",
    "ExperienceObserver",
    "ExperienceStore",
    "SQLiteExperienceStore",
    "NodeAttempt",
    "RunRecord",
]
