"""Governance: policies with deny-overrides, typed tools, and human approvals.

Public names: :class:`PolicySet`, :class:`PolicyRule`, :class:`PolicyEffect`,
:class:`PolicyDecision`, :func:`tool`, :class:`Tool`, :class:`PolicyViolationError`,
:class:`ApprovalPendingError`, :class:`ApprovalStore`, :class:`ApprovalRequest`, and (loaded
lazily, since they hook into the graph package) :class:`ToolExecutor` and
:class:`NodePolicyObserver`.
"""

from __future__ import annotations

from typing import Any

from spark_core.governance.approvals import (
    ApprovalAlreadyResolvedError,
    ApprovalError,
    ApprovalNotFoundError,
    ApprovalPendingError,
    ApprovalRequest,
    ApprovalStore,
)
from spark_core.governance.policy import (
    PolicyDecision,
    PolicyDefinitionError,
    PolicyEffect,
    PolicyRule,
    PolicySet,
    PolicyViolationError,
)
from spark_core.governance.tools import (
    Tool,
    ToolArgumentError,
    ToolError,
    ToolNotFoundError,
    tool,
)

__all__ = [
    "PolicySet",
    "PolicyRule",
    "PolicyEffect",
    "PolicyDecision",
    "PolicyDefinitionError",
    "PolicyViolationError",
    "ApprovalPendingError",
    "ApprovalStore",
    "ApprovalRequest",
    "ApprovalError",
    "ApprovalNotFoundError",
    "ApprovalAlreadyResolvedError",
    "Tool",
    "tool",
    "ToolError",
    "ToolArgumentError",
    "ToolNotFoundError",
    "ToolExecutor",
    "NodePolicyObserver",
]


def __getattr__(name: str) -> Any:
    if name in ("ToolExecutor", "NodePolicyObserver"):
        from spark_core.governance import executor

        return getattr(executor, name)
    raise AttributeError(f"module 'spark_core.governance' has no attribute {name!r}")
