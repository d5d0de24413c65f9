"""Graphs, state and run records (``from spark_core.graphs import Graph``).

The mission-control names (``MissionControl``, ``MissionPlan``, ``PlanStep``, ``PlanManager``,
``Guardrails``, ``BudgetGuardrail``, ``BudgetGuardrailConfig``, ``GuardrailBreachError``) are
loaded on first use from ``spark_core.graphs.mission_control``.
"""

from __future__ import annotations

from typing import Any

from spark_core.graphs.backends import (
    InMemoryStateBackend,
    SQLiteStateBackend,
    StateBackend,
)
from spark_core.graphs.edges import Edge
from spark_core.graphs.graph import Graph
from spark_core.graphs.observers import GraphObserver, NodeRunInfo, RunInfo, RunResult
from spark_core.graphs.state import GraphState
from spark_core.graphs.state_schema import MissionStateModel

_MISSION_NAMES = (
    "MissionControl",
    "MissionPlan",
    "PlanStep",
    "PlanManager",
    "Guardrails",
    "BudgetGuardrail",
    "BudgetGuardrailConfig",
    "GuardrailBreachError",
)

__all__ = [
    "Graph",
    "GraphState",
    "StateBackend",
    "InMemoryStateBackend",
    "SQLiteStateBackend",
    "MissionStateModel",
    "RunResult",
    "RunInfo",
    "NodeRunInfo",
    "GraphObserver",
    "Edge",
    *_MISSION_NAMES,
]


def __getattr__(name: str) -> Any:
    if name in _MISSION_NAMES:
        from spark_core.graphs import mission_control

        return getattr(mission_control, name)
    raise AttributeError(f"module 'spark_core.graphs' has no attribute {name!r}")
