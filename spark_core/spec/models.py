"""Plain dataclasses describing graphs and missions as JSON-ready data.

Every class has ``to_dict()`` and ``from_dict()``; ``from_dict(x.to_dict()) == x`` for every
valid spec. ``from_dict`` checks structure (types, required fields, ranges) and raises
:class:`~spark_core.spec.errors.SpecValidationError` listing every problem with its path.
It is one generic reader (:func:`~spark_core.spec._parse.parse_dataclass`) driven by each
class's fields: their types, defaults and rules (bounds, choices, non-empty text) are
declared once, here. Semantic checks (unknown edge targets, cycles, ...) live in
:mod:`spark_core.spec.validation`.
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass, field, fields, is_dataclass
from typing import Any, Dict, List, Optional, Type, TypeVar

from spark_core.field_rules import rule
from spark_core.retry import RetrySettings
from spark_core.spec._parse import Parser, join_path, parse_dataclass
from spark_core.spec.errors import SpecValidationError

__all__ = [
    "SPEC_VERSION",
    "STATE_FIELD_TYPES",
    "RetrySpec",
    "TimeoutSpec",
    "RateLimitSpec",
    "CircuitBreakerSpec",
    "NodeConfigSpec",
    "NodeSpec",
    "EdgeConditionSpec",
    "EdgeSpec",
    "ToolSpec",
    "StateFieldSpec",
    "MissionStateSchemaSpec",
    "StateSchemaSpec",
    "GraphSpec",
    "MissionPlanStepSpec",
    "MissionPlanSpec",
    "ReasoningStrategySpec",
    "MissionStrategyBindingSpec",
    "MissionTelemetrySpec",
    "MissionDeploymentSpec",
    "SimulationToolOverrideSpec",
    "MissionSimulationSpec",
    "MissionSpec",
]

SPEC_VERSION = "2.0"
STATE_FIELD_TYPES = ("str", "int", "float", "bool", "list", "dict", "datetime", "any")
EDGE_CONDITION_KINDS = ("equals", "expr")

_T = TypeVar("_T")
# Field rules used by many specs.
_NONEMPTY = rule(nonempty=True)
_POSITIVE = rule(minimum=0, exclusive=True)
_AT_LEAST_ONE = rule(minimum=1)


def _dump(value: Any) -> Any:
    """Turn a spec value into plain JSON data (deep copy, so callers cannot alias)."""
    if is_dataclass(value) and not isinstance(value, type):
        return {f.name: _dump(getattr(value, f.name)) for f in fields(value)}
    if isinstance(value, list):
        return [_dump(v) for v in value]
    if isinstance(value, dict):
        return {k: _dump(v) for k, v in value.items()}
    return copy.deepcopy(value)


class _SpecBase:
    """Shared ``to_dict`` / ``from_dict`` for every spec dataclass."""

    def to_dict(self) -> Dict[str, Any]:
        """Return the spec as plain JSON data (every field present).

        Returns:
            A new dict; changing it does not change the spec.
        """
        result: Dict[str, Any] = _dump(self)
        return result

    def model_dump(self) -> Dict[str, Any]:
        """Alias of :meth:`to_dict` (pydantic's spelling, used by the seed's examples).

        Returns:
            The spec as plain JSON data.
        """
        return self.to_dict()

    @classmethod
    def from_dict(cls: Type[_T], data: Any) -> _T:
        """Build the spec from plain JSON data, checking its structure.

        Args:
            data: A dict as produced by ``to_dict`` (or read from JSON).

        Returns:
            The spec.

        Raises:
            SpecValidationError: The data is malformed; ``issues`` names every problem.
        """
        parser = Parser()
        result = parse_dataclass(parser, cls, data, "")
        if result is None or parser.has_errors:
            raise SpecValidationError(parser.issues)
        return result

    @classmethod
    def check_structure(
        cls, p: Parser, data: Dict[str, Any], values: Dict[str, Any], path: str
    ) -> None:
        """Record what no single field can check (unique ids, fields that depend on others).

        Called by :func:`~spark_core.spec._parse.parse_dataclass` after every field is
        read; nothing to check by default.

        Args:
            p: Where issues are recorded.
            data: The JSON object read.
            values: Field name → value read (None for a required nested spec that is
                missing).
            path: The object's path in the document.
        """


def _check_unique(p: Parser, values: List[str], path: str, what: str) -> None:
    seen: Dict[str, int] = {}
    for index, value in enumerate(values):
        if value in seen:
            p.error(
                join_path(path, index),
                f"duplicate {what} {value!r} (first at [{seen[value]}])",
            )
        else:
            seen[value] = index


# --------------------------------------------------------------------------- node capabilities
@dataclass(frozen=True)
class RetrySpec(RetrySettings, _SpecBase):
    """Retry a failing node: :class:`~spark_core.retry.RetrySettings` as a spec (its fields,
    defaults and bounds; ``RetryCapability(**spec.settings())`` is the node's capability).
    """


@dataclass
class TimeoutSpec(_SpecBase):
    """Fail a node attempt that runs too long (maps to ``TimeoutCapability``).

    Attributes:
        timeout_seconds: Longest an attempt may run, in seconds (> 0).
    """

    timeout_seconds: float = field(default=30.0, metadata=_POSITIVE)


@dataclass
class RateLimitSpec(_SpecBase):
    """Limit how often a node runs (maps to ``RateLimitCapability``).

    Attributes:
        max_calls: Executions allowed per period (>= 1).
        period_seconds: Length of the period in seconds (> 0).
    """

    max_calls: int = field(default=10, metadata=_AT_LEAST_ONE)
    period_seconds: float = field(default=1.0, metadata=_POSITIVE)


@dataclass
class CircuitBreakerSpec(_SpecBase):
    """Stop calling a failing node for a while (maps to ``CircuitBreakerCapability``).

    Attributes:
        failure_threshold: Consecutive failures that open the circuit (>= 1).
        reset_timeout: Seconds the circuit stays open before a trial call (>= 0).
    """

    failure_threshold: int = field(default=5, metadata=_AT_LEAST_ONE)
    reset_timeout: float = field(default=60.0, metadata=rule(minimum=0))


@dataclass
class NodeConfigSpec(_SpecBase):
    """A node's capabilities (each optional; None: not used).

    Attributes:
        retry: Retry a failing attempt.
        timeout: Bound each attempt's duration.
        rate_limit: Bound how often the node runs.
        circuit_breaker: Stop calling the node after repeated failures.
    """

    retry: Optional[RetrySpec] = None
    timeout: Optional[TimeoutSpec] = None
    rate_limit: Optional[RateLimitSpec] = None
    circuit_breaker: Optional[CircuitBreakerSpec] = None


# --------------------------------------------------------------------------- graph
@dataclass
class NodeSpec(_SpecBase):
    """One node of a graph.

    Attributes:
        id: Unique id within the graph.
        type: A registered type name (e.g. ``"echo"``) or a ``"module:Class"`` reference.
        params: Keyword arguments for the node's constructor (JSON values).
        config: Capabilities (retry, timeout, rate limit, circuit breaker).
        description: Free text.
    """

    id: str = field(metadata=_NONEMPTY)
    type: str = field(metadata=_NONEMPTY)
    params: Dict[str, Any] = field(default_factory=dict)
    config: NodeConfigSpec = field(default_factory=NodeConfigSpec)
    description: str = ""


@dataclass
class EdgeConditionSpec(_SpecBase):
    """When an edge is followed.

    Attributes:
        kind: ``"equals"`` (``value`` is a dict of output key → expected value) or ``"expr"``
            (``value`` is an expression such as ``"$.outputs.score > 0.5"``).
        value: The condition's data.
    """

    kind: str = field(metadata=rule(choices=EDGE_CONDITION_KINDS))
    value: Any

    @classmethod
    def check_structure(
        cls, p: Parser, data: Dict[str, Any], values: Dict[str, Any], path: str
    ) -> None:
        """Check that ``value`` suits ``kind``."""
        kind, value = values["kind"], values["value"]
        where = join_path(path, "value")
        if kind == "equals" and (not isinstance(value, dict) or not value):
            p.error(where, "must be a non-empty object of output key -> expected value")
        elif kind == "expr" and (not isinstance(value, str) or not value.strip()):
            p.error(where, "must be a non-empty expression string")


@dataclass
class EdgeSpec(_SpecBase):
    """A directed edge between two nodes of the graph.

    Attributes:
        source: Id of the node the edge leaves.
        target: Id of the node it leads to.
        condition: When the edge is followed (None: always).
        description: Free text.
    """

    source: str = field(metadata=_NONEMPTY)
    target: str = field(metadata=_NONEMPTY)
    condition: Optional[EdgeConditionSpec] = None
    description: str = ""


@dataclass
class ToolSpec(_SpecBase):
    """A tool the graph's nodes may call through ``ctx.call_tool(name, ...)``.

    Attributes:
        name: The tool's name.
        reference: ``"module:function"`` implementing it (None: only simulated).
        description: Free text.
        parameters: JSON schema of the arguments (informational).
    """

    name: str = field(metadata=_NONEMPTY)
    reference: Optional[str] = field(default=None, metadata=_NONEMPTY)
    description: str = ""
    parameters: Dict[str, Any] = field(default_factory=dict)


@dataclass
class StateFieldSpec(_SpecBase):
    """One declared state field.

    Attributes:
        type: One of ``str int float bool list dict datetime any``.
        required: Whether the field must be present.
        default: Initial value (JSON).
        description: Free text.
    """

    type: str = field(default="any", metadata=rule(choices=STATE_FIELD_TYPES))
    required: bool = False
    default: Any = None
    description: str = ""


@dataclass
class MissionStateSchemaSpec(_SpecBase):
    """The declared shape of the graph state.

    Attributes:
        schema_class: Optional ``"module:Class"`` of a ``MissionStateModel`` (informational).
        fields: Field name → :class:`StateFieldSpec`.
    """

    schema_class: Optional[str] = field(default=None, metadata=_NONEMPTY)
    fields: Dict[str, StateFieldSpec] = field(
        default_factory=dict,
        metadata=rule(expected="an object of field name -> field spec"),
    )

    def __post_init__(self) -> None:
        # Accept plain dicts for fields, as the seed's examples write them.
        for name, value in list(self.fields.items()):
            if isinstance(value, dict):
                self.fields[name] = StateFieldSpec.from_dict(value)


StateSchemaSpec = MissionStateSchemaSpec


@dataclass
class GraphSpec(_SpecBase):
    """A whole graph: nodes, edges, tools, state.

    Attributes:
        id: The graph's id.
        start: Id of the first node.
        nodes: The nodes.
        edges: The edges.
        tools: Tools available to nodes.
        state_schema: Declared state fields.
        initial_state: State values set before the run.
        max_steps: Upper bound on node executions per run; None (the default) leaves it
            to ``Graph``'s own default (see ``Graph(max_steps=...)``).
        description: Free text.
    """

    id: str = field(metadata=_NONEMPTY)
    start: str = field(metadata=_NONEMPTY)
    nodes: List[NodeSpec] = field(default_factory=list)
    edges: List[EdgeSpec] = field(default_factory=list)
    tools: List[ToolSpec] = field(default_factory=list)
    state_schema: Optional[MissionStateSchemaSpec] = None
    initial_state: Dict[str, Any] = field(default_factory=dict)
    max_steps: Optional[int] = field(default=None, metadata=_AT_LEAST_ONE)
    description: str = ""

    @classmethod
    def check_structure(
        cls, p: Parser, data: Dict[str, Any], values: Dict[str, Any], path: str
    ) -> None:
        """Require a node; refuse duplicate node ids and tool names."""
        if data.get("nodes") in (None, []):
            p.error(join_path(path, "nodes"), "must contain at least one node")
        nodes, tools = values["nodes"], values["tools"]
        _check_unique(p, [n.id for n in nodes], join_path(path, "nodes"), "node id")
        _check_unique(p, [t.name for t in tools], join_path(path, "tools"), "tool name")

    def node(self, node_id: str) -> Optional[NodeSpec]:
        """Return the node with this id.

        Args:
            node_id: The id.

        Returns:
            The node spec, or None.
        """
        return next((n for n in self.nodes if n.id == node_id), None)


# --------------------------------------------------------------------------- mission
@dataclass
class MissionPlanStepSpec(_SpecBase):
    """One plan step and the steps it depends on.

    Attributes:
        id: Step id.
        description: What the step does.
        depends_on: Ids of steps that must complete first.
        nodes: Ids of the graph nodes performing the step (empty: the node with the step's id).
    """

    id: str = field(metadata=_NONEMPTY)
    description: str = ""
    depends_on: List[str] = field(default_factory=list)
    nodes: List[str] = field(default_factory=list)


@dataclass
class MissionPlanSpec(_SpecBase):
    """A declarative plan.

    Attributes:
        steps: The steps.
        state_key: Graph-state key the plan is mirrored to at run time.
        auto_advance: Whether a step completes when the node with the same id completes.
    """

    steps: List[MissionPlanStepSpec] = field(default_factory=list)
    state_key: str = field(default="mission_plan", metadata=_NONEMPTY)
    auto_advance: bool = True

    @classmethod
    def check_structure(
        cls, p: Parser, data: Dict[str, Any], values: Dict[str, Any], path: str
    ) -> None:
        """Refuse duplicate step ids."""
        ids = [s.id for s in values["steps"]]
        _check_unique(p, ids, join_path(path, "steps"), "step id")


@dataclass
class ReasoningStrategySpec(_SpecBase):
    """A reasoning strategy for an agent, by name.

    Attributes:
        type: ``"react"``, ``"chain_of_thought"`` (or ``"cot"``) or ``"plan_and_solve"``.
        config: The strategy's settings (``{"verbose", "mode"}`` for ReAct,
            ``{"max_plan_steps"}`` for Plan-and-Solve, none for Chain-of-Thought).
    """

    type: str = field(metadata=_NONEMPTY)
    config: Dict[str, Any] = field(default_factory=dict)


@dataclass
class MissionStrategyBindingSpec(_SpecBase):
    """Binds a reasoning strategy to an agent node of the graph.

    Attributes:
        target: Id of an agent node (``spark_core.agents.node:AgentNode``).
        strategy: The strategy it uses (replacing the node's own).
        reference: Free-form pointer to the target, e.g. ``"nodes.analyst"``
            (informational).
    """

    target: str = field(metadata=_NONEMPTY)
    strategy: ReasoningStrategySpec
    reference: Optional[str] = None


@dataclass
class MissionTelemetrySpec(_SpecBase):
    """Telemetry settings for the mission.

    Attributes:
        enabled: Whether to record traces and events.
        backend: ``"memory"``, ``"sqlite"``, ``"postgresql"`` or ``"otlp"``.
        db_path: The SQLite file (sqlite backend), or the DSN (postgresql backend; by
            default ``$SPARK_TELEMETRY_DSN``, which keeps the password out of the spec).
        sampling_rate: Share of runs recorded, from 0 to 1.
        buffer_size: Records kept before a flush (>= 1).
        export_interval: Seconds between flushes (> 0).
    """

    enabled: bool = True
    backend: str = field(default="memory", metadata=_NONEMPTY)
    db_path: Optional[str] = None
    sampling_rate: float = field(default=1.0, metadata=rule(minimum=0, maximum=1))
    buffer_size: int = field(default=100, metadata=_AT_LEAST_ONE)
    export_interval: float = field(default=10.0, metadata=_POSITIVE)


@dataclass
class MissionDeploymentSpec(_SpecBase):
    """Where and how the mission is deployed.

    Attributes:
        target: ``"development"``, ``"staging"`` or ``"production"``.
        replicas: Instances to run (1 to 100 to deploy).
        resources: Per instance: ``cpu`` (``"2"``, ``"500m"``), ``memory`` (``"512Mi"``),
            ``gpu`` (a whole number).
        health_check_interval: Seconds between health checks (>= 1).
        restart_policy: ``"always"``, ``"on-failure"`` or ``"never"``.
        environment: Environment variables (names only for secrets: set their values in
            the target environment).
    """

    target: str = field(default="development", metadata=_NONEMPTY)
    replicas: int = field(default=1, metadata=rule(minimum=0))
    resources: Dict[str, str] = field(default_factory=dict)
    health_check_interval: int = field(default=30, metadata=_AT_LEAST_ONE)
    restart_policy: str = "on-failure"
    environment: Dict[str, str] = field(default_factory=dict)


@dataclass
class SimulationToolOverrideSpec(_SpecBase):
    """Replaces a tool during simulation.

    Attributes:
        name: The tool replaced.
        static_response: Returned on every call (when ``handler`` is None).
        handler: ``"module:function"`` called with the tool's arguments instead.
        description: Free text.
    """

    name: str = field(metadata=_NONEMPTY)
    static_response: Any = None
    handler: Optional[str] = field(default=None, metadata=_NONEMPTY)
    description: str = ""

    @classmethod
    def check_structure(
        cls, p: Parser, data: Dict[str, Any], values: Dict[str, Any], path: str
    ) -> None:
        """Refuse a handler and a static response together."""
        if values["handler"] is not None and values["static_response"] is not None:
            p.error(path, "set either static_response or handler, not both")


@dataclass
class MissionSimulationSpec(_SpecBase):
    """How ``simulation-run`` runs the mission.

    Attributes:
        enabled: Whether simulation is allowed.
        tools: Tool overrides.
        inputs: Default run input.
        models: Agent node id → the replies of the ``ScriptedModel`` that stands in for
            its model (each a text, or ``{"text", "tool_calls": [{"name", "arguments"}]}``).
    """

    enabled: bool = True
    tools: List[SimulationToolOverrideSpec] = field(default_factory=list)
    inputs: Dict[str, Any] = field(default_factory=dict)
    models: Dict[str, List[Any]] = field(default_factory=dict)

    @classmethod
    def check_structure(
        cls, p: Parser, data: Dict[str, Any], values: Dict[str, Any], path: str
    ) -> None:
        """Refuse duplicate tool overrides and model scripts that are not lists of replies."""
        names = [t.name for t in values["tools"]]
        _check_unique(p, names, join_path(path, "tools"), "tool override")
        for node_id, script in values["models"].items():
            where = join_path(join_path(path, "models"), node_id)
            if not isinstance(script, list) or not script:
                p.error(where, "must be a non-empty list of scripted replies")
                continue
            for index, reply in enumerate(script):
                if not isinstance(reply, (str, dict)):
                    p.error(join_path(where, index), "must be a text or an object")


_PRE_ID = r"(?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*)"
_SEMVER = re.compile(
    r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)"
    rf"(?:-({_PRE_ID}(?:\.{_PRE_ID})*))?"
    r"(?:\+([0-9a-zA-Z-]+(?:\.[0-9a-zA-Z-]+)*))?$"
)
_MISSION_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")


def _mission_id_problem(text: str) -> Optional[str]:
    if text and not _MISSION_ID.fullmatch(text):
        return "may contain only letters, digits, '.', '_' and '-' (not first)"
    return None


def is_semver(text: str) -> bool:
    """Tell whether ``text`` is a semantic version (``MAJOR.MINOR.PATCH[-pre][+build]``).

    Args:
        text: The version.

    Returns:
        Whether it is valid semver 2.0.
    """
    return bool(_SEMVER.fullmatch(text))


def _version_problem(text: str) -> Optional[str]:
    return None if is_semver(text) else f"must be a semantic version, got {text!r}"


@dataclass
class MissionSpec(_SpecBase):
    """A deployable mission: a graph plus plan, state schema, strategies and settings.

    Attributes:
        mission_id: Unique id (reverse DNS recommended).
        version: Semantic version.
        graph: The graph.
        description: Free text.
        spark_version: Spec format version.
        plan: Execution plan.
        state_schema: Declared state fields.
        strategies: Strategy bindings.
        telemetry: Telemetry settings.
        deployment: Deployment settings.
        simulation: Simulation settings.
        metadata: Free JSON metadata.
    """

    mission_id: str = field(metadata=rule(nonempty=True, check=_mission_id_problem))
    version: str = field(metadata=rule(check=_version_problem))
    graph: GraphSpec
    description: str = ""
    spark_version: str = field(default=SPEC_VERSION, metadata=_NONEMPTY)
    plan: Optional[MissionPlanSpec] = None
    state_schema: Optional[MissionStateSchemaSpec] = None
    strategies: List[MissionStrategyBindingSpec] = field(default_factory=list)
    telemetry: Optional[MissionTelemetrySpec] = None
    deployment: Optional[MissionDeploymentSpec] = None
    simulation: Optional[MissionSimulationSpec] = None
    metadata: Dict[str, Any] = field(default_factory=dict)
