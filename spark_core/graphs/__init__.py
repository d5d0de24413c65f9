"""Graphs, state and run records (``from spark_core.graphs import Graph``).

Every name loads on first use (PEP 562), so importing one module of this package (the
plug-in registry, the backends) does not import the engine. The mission-control names
(``MissionControl``, ``MissionPlan``, ``PlanStep``, ``PlanManager``, ``Guardrails``,
``BudgetGuardrail``, ``BudgetGuardrailConfig``, ``GuardrailBreachError``) come from
``spark_core.graphs.mission_control``.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    from spark_core.graphs.backends import (
        InMemoryStateBackend,
        SQLiteStateBackend,
        StateBackend,
    )
    from spark_core.graphs.graph import Graph
    from spark_core.graphs.mission_control import (
        BudgetGuardrail,
        BudgetGuardrailConfig,
        GuardrailBreachError,
        Guardrails,
        MissionControl,
        MissionPlan,
        PlanManager,
        PlanStep,
    )
    from spark_core.graphs.observers import (
        GraphObserver,
        NodeRunInfo,
        RunInfo,
        RunResult,
    )
    from spark_core.graphs.state import GraphState
    from spark_core.graphs.state_schema import MissionStateModel
    from spark_core.nodes.edges import Edge

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
# Name -> the module that defines it.
_WHERE = {
    "Graph": "spark_core.graphs.graph",
    "GraphState": "spark_core.graphs.state",
    "StateBackend": "spark_core.graphs.backends",
    "InMemoryStateBackend": "spark_core.graphs.backends",
    "SQLiteStateBackend": "spark_core.graphs.backends",
    "MissionStateModel": "spark_core.graphs.state_schema",
    "RunResult": "spark_core.graphs.observers",
    "RunInfo": "spark_core.graphs.observers",
    "NodeRunInfo": "spark_core.graphs.observers",
    "GraphObserver": "spark_core.graphs.observers",
    "Edge": "spark_core.nodes.edges",
    **{name: "spark_core.graphs.mission_control" for name in _MISSION_NAMES},
}

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
    "MissionControl",
    "MissionPlan",
    "PlanStep",
    "PlanManager",
    "Guardrails",
    "BudgetGuardrail",
    "BudgetGuardrailConfig",
    "GuardrailBreachError",
]


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'spark_core.graphs' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> Any:
    return sorted(set(globals()) | set(__all__))
