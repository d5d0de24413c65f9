"""Graph and mission specs: plain dataclasses, JSON files, validation.

Everything a spec file can say lives here as data; turning a spec into a runnable graph is
:class:`spark_core.spec.loader.SpecLoader`'s job, and running it with simulated tools is
:mod:`spark_core.spec.simulation`'s.
"""

from __future__ import annotations

from spark_core.spec._parse import ValidationIssue
from spark_core.spec.errors import SpecError, SpecLoadError, SpecValidationError
from spark_core.spec.models import (
    SPEC_VERSION,
    CircuitBreakerSpec,
    EdgeConditionSpec,
    EdgeSpec,
    GraphSpec,
    MissionDeploymentSpec,
    MissionPlanSpec,
    MissionPlanStepSpec,
    MissionSimulationSpec,
    MissionSpec,
    MissionStateSchemaSpec,
    MissionStrategyBindingSpec,
    MissionTelemetrySpec,
    NodeConfigSpec,
    NodeSpec,
    RateLimitSpec,
    ReasoningStrategySpec,
    RetrySpec,
    SimulationToolOverrideSpec,
    StateFieldSpec,
    StateSchemaSpec,
    TimeoutSpec,
    ToolSpec,
    is_semver,
)
from spark_core.spec.serde import (
    load_graph_spec,
    load_mission_spec,
    load_spec,
    save_graph_spec,
    save_mission_spec,
    spec_from_dict,
)
from spark_core.spec.validation import (
    BUILTIN_NODE_TYPES,
    ensure_valid_graph,
    ensure_valid_mission,
    validate_graph,
    validate_mission,
    validate_spec,
)

__all__ = [
    "SPEC_VERSION",
    "BUILTIN_NODE_TYPES",
    "SpecError",
    "SpecLoadError",
    "SpecValidationError",
    "ValidationIssue",
    "CircuitBreakerSpec",
    "EdgeConditionSpec",
    "EdgeSpec",
    "GraphSpec",
    "MissionDeploymentSpec",
    "MissionPlanSpec",
    "MissionPlanStepSpec",
    "MissionSimulationSpec",
    "MissionSpec",
    "MissionStateSchemaSpec",
    "MissionStrategyBindingSpec",
    "MissionTelemetrySpec",
    "NodeConfigSpec",
    "NodeSpec",
    "RateLimitSpec",
    "ReasoningStrategySpec",
    "RetrySpec",
    "SimulationToolOverrideSpec",
    "StateFieldSpec",
    "StateSchemaSpec",
    "TimeoutSpec",
    "ToolSpec",
    "is_semver",
    "load_graph_spec",
    "load_mission_spec",
    "load_spec",
    "save_graph_spec",
    "save_mission_spec",
    "spec_from_dict",
    "ensure_valid_graph",
    "ensure_valid_mission",
    "validate_graph",
    "validate_mission",
    "validate_spec",
]
