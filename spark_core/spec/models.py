"""Plain dataclasses describing graphs and missions as JSON-ready data.

Every class has ``to_dict()`` and ``from_dict()``; ``from_dict(x.to_dict()) == x`` for every
valid spec. ``from_dict`` checks structure (types, required fields, ranges) and raises
:class:`~spark_core.spec.errors.SpecValidationError` listing every problem with its path.
Semantic checks (unknown edge targets, cycles, ...) live in :mod:`spark_core.spec.validation`.
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass, field, fields, is_dataclass
from typing import Any, Callable, Dict, List, Optional, Type, TypeVar

from spark_core.spec._parse import Parser, join_path
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
RETRY_STRATEGIES = ("exponential", "linear", "fixed")

_T = TypeVar("_T")


def _dump(value: Any) -> Any:
    """Turn a spec value into plain JSON data (deep copy, so callers cannot alias)."""
    if is_dataclass(value) and not isinstance(value, type):
        return {f.name: _dump(getattr(value, f.name)) for f in fields(value)}
    if isinstance(value, list):
        return [_dump(v) for v in value]
    if isinstance(value, dict):
        return {k: _dump(v) for k, v in value.items()}
    return copy.deepcopy(value)


def _names(cls: type) -> List[str]:
    return [f.name for f in fields(cls)]


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
        parse: Callable[[Parser, Any, str], Optional[_T]] = getattr(cls, "_parse")
        result = parse(parser, data, "")
        if result is None or parser.has_errors:
            raise SpecValidationError(parser.issues)
        return result


def _parse_optional(
    p: Parser, data: Dict[str, Any], key: str, path: str, parse: Callable[..., Any]
) -> Any:
    value = data.get(key)
    if value is None:
        return None
    return parse(p, value, join_path(path, key))


def _parse_list(
    p: Parser, data: Dict[str, Any], key: str, path: str, parse: Callable[..., Any]
) -> List[Any]:
    out = []
    for index, item in enumerate(p.list_of(data, key, path)):
        parsed = parse(p, item, join_path(join_path(path, key), index))
        if parsed is not None:
            out.append(parsed)
    return out


# --------------------------------------------------------------------------- node capabilities
@dataclass
class RetrySpec(_SpecBase):
    """Retry a failing node (maps to ``RetryCapability``).

    Attributes:
        max_retries: Extra attempts after the first (0 = no retry).
        backoff_factor: Multiplier of the exponential strategy (>= 1).
        initial_delay: Seconds to wait before the first retry.
        max_delay: Upper bound of any single delay in seconds.
        strategy: ``"exponential"``, ``"linear"`` or ``"fixed"``.
        jitter: Randomise each delay.
    """

    max_retries: int = 3
    backoff_factor: float = 2.0
    initial_delay: float = 0.1
    max_delay: float = 30.0
    strategy: str = "exponential"
    jitter: bool = False

    @classmethod
    def _parse(cls, p: Parser, data: Any, path: str) -> Optional[RetrySpec]:
        d = p.obj(data, path, _names(cls))
        if d is None:
            return None
        strategy = p.string(d, "strategy", path, default="exponential")
        if isinstance(strategy, str) and strategy not in RETRY_STRATEGIES:
            p.error(
                join_path(path, "strategy"),
                f"must be one of {', '.join(RETRY_STRATEGIES)}",
            )
        return cls(
            max_retries=p.integer(d, "max_retries", path, default=3, minimum=0),
            backoff_factor=p.number(
                d, "backoff_factor", path, default=2.0, minimum=1.0
            ),
            initial_delay=p.number(d, "initial_delay", path, default=0.1, minimum=0.0),
            max_delay=p.number(d, "max_delay", path, default=30.0, minimum=0.0),
            strategy=strategy,
            jitter=p.boolean(d, "jitter", path, default=False),
        )


@dataclass
class TimeoutSpec(_SpecBase):
    """Fail a node attempt that runs too long (maps to ``TimeoutCapability``).

    Attributes:
        timeout_seconds: Longest an attempt may run, in seconds (> 0).
    """

    timeout_seconds: float = 30.0

    @classmethod
    def _parse(cls, p: Parser, data: Any, path: str) -> Optional[TimeoutSpec]:
        d = p.obj(data, path, _names(cls))
        if d is None:
            return None
        return cls(
            timeout_seconds=p.number(
                d,
                "timeout_seconds",
                path,
                default=30.0,
                minimum=0.0,
                exclusive_minimum=True,
            )
        )


@dataclass
class RateLimitSpec(_SpecBase):
    """Limit how often a node runs (maps to ``RateLimitCapability``).

    Attributes:
        max_calls: Executions allowed per period (>= 1).
        period_seconds: Length of the period in seconds (> 0).
    """

    max_calls: int = 10
    period_seconds: float = 1.0

    @classmethod
    def _parse(cls, p: Parser, data: Any, path: str) -> Optional[RateLimitSpec]:
        d = p.obj(data, path, _names(cls))
        if d is None:
            return None
        return cls(
            max_calls=p.integer(d, "max_calls", path, default=10, minimum=1),
            period_seconds=p.number(
                d,
                "period_seconds",
                path,
                default=1.0,
                minimum=0.0,
                exclusive_minimum=True,
            ),
        )


@dataclass
class CircuitBreakerSpec(_SpecBase):
    """Stop calling a failing node for a while (maps to ``CircuitBreakerCapability``).

    Attributes:
        failure_threshold: Consecutive failures that open the circuit (>= 1).
        reset_timeout: Seconds the circuit stays open before a trial call (>= 0).
    """

    failure_threshold: int = 5
    reset_timeout: float = 60.0

    @classmethod
    def _parse(cls, p: Parser, data: Any, path: str) -> Optional[CircuitBreakerSpec]:
        d = p.obj(data, path, _names(cls))
        if d is None:
            return None
        return cls(
            failure_threshold=p.integer(
                d, "failure_threshold", path, default=5, minimum=1
            ),
            reset_timeout=p.number(d, "reset_timeout", path, default=60.0, minimum=0.0),
        )


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

    @classmethod
    def _parse(cls, p: Parser, data: Any, path: str) -> Optional[NodeConfigSpec]:
        d = p.obj(data, path, _names(cls))
        if d is None:
            return None
        return cls(
            retry=_parse_optional(p, d, "retry", path, RetrySpec._parse),
            timeout=_parse_optional(p, d, "timeout", path, TimeoutSpec._parse),
            rate_limit=_parse_optional(p, d, "rate_limit", path, RateLimitSpec._parse),
            circuit_breaker=_parse_optional(
                p, d, "circuit_breaker", path, CircuitBreakerSpec._parse
            ),
        )


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

    id: str
    type: str
    params: Dict[str, Any] = field(default_factory=dict)
    config: NodeConfigSpec = field(default_factory=NodeConfigSpec)
    description: str = ""

    @classmethod
    def _parse(cls, p: Parser, data: Any, path: str) -> Optional[NodeSpec]:
        d = p.obj(data, path, _names(cls))
        if d is None:
            return None
        config = _parse_optional(p, d, "config", path, NodeConfigSpec._parse)
        return cls(
            id=p.string(d, "id", path, required=True, nonempty=True),
            type=p.string(d, "type", path, required=True, nonempty=True),
            params=p.json_object(d, "params", path),
            config=config if config is not None else NodeConfigSpec(),
            description=p.string(d, "description", path),
        )


@dataclass
class EdgeConditionSpec(_SpecBase):
    """When an edge is followed.

    Attributes:
        kind: ``"equals"`` (``value`` is a dict of output key → expected value) or ``"expr"``
            (``value`` is an expression such as ``"$.outputs.score > 0.5"``).
        value: The condition's data.
    """

    kind: str
    value: Any

    @classmethod
    def _parse(cls, p: Parser, data: Any, path: str) -> Optional[EdgeConditionSpec]:
        d = p.obj(data, path, _names(cls))
        if d is None:
            return None
        kind = p.string(d, "kind", path, required=True)
        value = d.get("value")
        where = join_path(path, "value")
        if kind == "equals":
            if not isinstance(value, dict) or not value:
                p.error(
                    where, "must be a non-empty object of output key -> expected value"
                )
            else:
                p.json_value(value, where)
        elif kind == "expr":
            if not isinstance(value, str) or not value.strip():
                p.error(where, "must be a non-empty expression string")
        elif isinstance(kind, str):
            p.error(
                join_path(path, "kind"),
                f"must be one of {', '.join(EDGE_CONDITION_KINDS)}",
            )
        return cls(kind=kind or "", value=value)


@dataclass
class EdgeSpec(_SpecBase):
    """A directed edge between two nodes of the graph.

    Attributes:
        source: Id of the node the edge leaves.
        target: Id of the node it leads to.
        condition: When the edge is followed (None: always).
        description: Free text.
    """

    source: str
    target: str
    condition: Optional[EdgeConditionSpec] = None
    description: str = ""

    @classmethod
    def _parse(cls, p: Parser, data: Any, path: str) -> Optional[EdgeSpec]:
        d = p.obj(data, path, _names(cls))
        if d is None:
            return None
        return cls(
            source=p.string(d, "source", path, required=True, nonempty=True),
            target=p.string(d, "target", path, required=True, nonempty=True),
            condition=_parse_optional(
                p, d, "condition", path, EdgeConditionSpec._parse
            ),
            description=p.string(d, "description", path),
        )


@dataclass
class ToolSpec(_SpecBase):
    """A tool the graph's nodes may call through ``ctx.call_tool(name, ...)``.

    Attributes:
        name: The tool's name.
        reference: ``"module:function"`` implementing it (None: only simulated).
        description: Free text.
        parameters: JSON schema of the arguments (informational).
    """

    name: str
    reference: Optional[str] = None
    description: str = ""
    parameters: Dict[str, Any] = field(default_factory=dict)

    @classmethod
    def _parse(cls, p: Parser, data: Any, path: str) -> Optional[ToolSpec]:
        d = p.obj(data, path, _names(cls))
        if d is None:
            return None
        return cls(
            name=p.string(d, "name", path, required=True, nonempty=True),
            reference=p.string(d, "reference", path, default=None, nonempty=True),
            description=p.string(d, "description", path),
            parameters=p.json_object(d, "parameters", path),
        )


@dataclass
class StateFieldSpec(_SpecBase):
    """One declared state field.

    Attributes:
        type: One of ``str int float bool list dict datetime any``.
        required: Whether the field must be present.
        default: Initial value (JSON).
        description: Free text.
    """

    type: str = "any"
    required: bool = False
    default: Any = None
    description: str = ""

    @classmethod
    def _parse(cls, p: Parser, data: Any, path: str) -> Optional[StateFieldSpec]:
        d = p.obj(data, path, _names(cls))
        if d is None:
            return None
        kind = p.string(d, "type", path, default="any")
        if isinstance(kind, str) and kind not in STATE_FIELD_TYPES:
            p.error(
                join_path(path, "type"),
                f"must be one of {', '.join(STATE_FIELD_TYPES)}",
            )
        default = d.get("default")
        p.json_value(default, join_path(path, "default"))
        return cls(
            type=kind,
            required=p.boolean(d, "required", path, default=False),
            default=default,
            description=p.string(d, "description", path),
        )


@dataclass
class MissionStateSchemaSpec(_SpecBase):
    """The declared shape of the graph state.

    Attributes:
        schema_class: Optional ``"module:Class"`` of a ``MissionStateModel`` (informational).
        fields: Field name → :class:`StateFieldSpec`.
    """

    schema_class: Optional[str] = None
    fields: Dict[str, StateFieldSpec] = field(default_factory=dict)

    def __post_init__(self) -> None:
        # Accept plain dicts for fields, as the seed's examples write them.
        for name, value in list(self.fields.items()):
            if isinstance(value, dict):
                self.fields[name] = StateFieldSpec.from_dict(value)

    @classmethod
    def _parse(
        cls, p: Parser, data: Any, path: str
    ) -> Optional[MissionStateSchemaSpec]:
        d = p.obj(data, path, ["schema_class", "fields"])
        if d is None:
            return None
        parsed: Dict[str, StateFieldSpec] = {}
        raw = d.get("fields")
        where = join_path(path, "fields")
        if raw is not None:
            if not isinstance(raw, dict):
                p.error(where, "must be an object of field name -> field spec")
            else:
                for name, value in raw.items():
                    item = StateFieldSpec._parse(p, value, join_path(where, str(name)))
                    if item is not None:
                        parsed[str(name)] = item
        return cls(
            schema_class=p.string(d, "schema_class", path, default=None, nonempty=True),
            fields=parsed,
        )


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

    id: str
    start: str
    nodes: List[NodeSpec] = field(default_factory=list)
    edges: List[EdgeSpec] = field(default_factory=list)
    tools: List[ToolSpec] = field(default_factory=list)
    state_schema: Optional[MissionStateSchemaSpec] = None
    initial_state: Dict[str, Any] = field(default_factory=dict)
    max_steps: Optional[int] = None
    description: str = ""

    @classmethod
    def _parse(cls, p: Parser, data: Any, path: str) -> Optional[GraphSpec]:
        d = p.obj(data, path, _names(cls))
        if d is None:
            return None
        spec = cls(
            id=p.string(d, "id", path, required=True, nonempty=True),
            start=p.string(d, "start", path, required=True, nonempty=True),
            nodes=_parse_list(p, d, "nodes", path, NodeSpec._parse),
            edges=_parse_list(p, d, "edges", path, EdgeSpec._parse),
            tools=_parse_list(p, d, "tools", path, ToolSpec._parse),
            state_schema=_parse_optional(
                p, d, "state_schema", path, MissionStateSchemaSpec._parse
            ),
            initial_state=p.json_object(d, "initial_state", path),
            max_steps=p.integer(d, "max_steps", path, default=None, minimum=1),
            description=p.string(d, "description", path),
        )
        raw_nodes = d.get("nodes")
        if raw_nodes is None or raw_nodes == []:
            p.error(join_path(path, "nodes"), "must contain at least one node")
        _check_unique(
            p, [n.id for n in spec.nodes], join_path(path, "nodes"), "node id"
        )
        _check_unique(
            p, [t.name for t in spec.tools], join_path(path, "tools"), "tool name"
        )
        return spec

    def node(self, node_id: str) -> Optional[NodeSpec]:
        """Return the node with this id.

        Args:
            node_id: The id.

        Returns:
            The node spec, or None.
        """
        return next((n for n in self.nodes if n.id == node_id), None)


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

    id: str
    description: str = ""
    depends_on: List[str] = field(default_factory=list)
    nodes: List[str] = field(default_factory=list)

    @classmethod
    def _parse(cls, p: Parser, data: Any, path: str) -> Optional[MissionPlanStepSpec]:
        d = p.obj(data, path, _names(cls))
        if d is None:
            return None
        return cls(
            id=p.string(d, "id", path, required=True, nonempty=True),
            description=p.string(d, "description", path),
            depends_on=p.string_list(d, "depends_on", path),
            nodes=p.string_list(d, "nodes", path),
        )


@dataclass
class MissionPlanSpec(_SpecBase):
    """A declarative plan.

    Attributes:
        steps: The steps.
        state_key: Graph-state key the plan is mirrored to at run time.
        auto_advance: Whether a step completes when the node with the same id completes.
    """

    steps: List[MissionPlanStepSpec] = field(default_factory=list)
    state_key: str = "mission_plan"
    auto_advance: bool = True

    @classmethod
    def _parse(cls, p: Parser, data: Any, path: str) -> Optional[MissionPlanSpec]:
        d = p.obj(data, path, _names(cls))
        if d is None:
            return None
        spec = cls(
            steps=_parse_list(p, d, "steps", path, MissionPlanStepSpec._parse),
            state_key=p.string(
                d, "state_key", path, default="mission_plan", nonempty=True
            ),
            auto_advance=p.boolean(d, "auto_advance", path, default=True),
        )
        _check_unique(
            p, [s.id for s in spec.steps], join_path(path, "steps"), "step id"
        )
        return spec


@dataclass
class ReasoningStrategySpec(_SpecBase):
    """A reasoning strategy for an agent, by name.

    Attributes:
        type: ``"react"``, ``"chain_of_thought"`` (or ``"cot"``) or ``"plan_and_solve"``.
        config: The strategy's settings (``{"verbose", "mode"}`` for ReAct,
            ``{"max_plan_steps"}`` for Plan-and-Solve, none for Chain-of-Thought).
    """

    type: str
    config: Dict[str, Any] = field(default_factory=dict)

    @classmethod
    def _parse(cls, p: Parser, data: Any, path: str) -> Optional[ReasoningStrategySpec]:
        d = p.obj(data, path, _names(cls))
        if d is None:
            return None
        return cls(
            type=p.string(d, "type", path, required=True, nonempty=True),
            config=p.json_object(d, "config", path),
        )


@dataclass
class MissionStrategyBindingSpec(_SpecBase):
    """Binds a reasoning strategy to an agent node of the graph.

    Attributes:
        target: Id of an agent node (``spark_core.agents.node:AgentNode``).
        strategy: The strategy it uses (replacing the node's own).
        reference: Free-form pointer to the target, e.g. ``"nodes.analyst"``
            (informational).
    """

    target: str
    strategy: ReasoningStrategySpec
    reference: Optional[str] = None

    @classmethod
    def _parse(
        cls, p: Parser, data: Any, path: str
    ) -> Optional[MissionStrategyBindingSpec]:
        d = p.obj(data, path, _names(cls))
        if d is None:
            return None
        strategy = _parse_optional(p, d, "strategy", path, ReasoningStrategySpec._parse)
        if strategy is None:
            if d.get("strategy") is None:
                p.error(join_path(path, "strategy"), "is required")
            return None
        return cls(
            target=p.string(d, "target", path, required=True, nonempty=True),
            strategy=strategy,
            reference=p.string(d, "reference", path, default=None),
        )


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
    backend: str = "memory"
    db_path: Optional[str] = None
    sampling_rate: float = 1.0
    buffer_size: int = 100
    export_interval: float = 10.0

    @classmethod
    def _parse(cls, p: Parser, data: Any, path: str) -> Optional[MissionTelemetrySpec]:
        d = p.obj(data, path, _names(cls))
        if d is None:
            return None
        return cls(
            enabled=p.boolean(d, "enabled", path, default=True),
            backend=p.string(d, "backend", path, default="memory", nonempty=True),
            db_path=p.string(d, "db_path", path, default=None),
            sampling_rate=p.number(
                d, "sampling_rate", path, default=1.0, minimum=0.0, maximum=1.0
            ),
            buffer_size=p.integer(d, "buffer_size", path, default=100, minimum=1),
            export_interval=p.number(
                d,
                "export_interval",
                path,
                default=10.0,
                minimum=0.0,
                exclusive_minimum=True,
            ),
        )


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

    target: str = "development"
    replicas: int = 1
    resources: Dict[str, str] = field(default_factory=dict)
    health_check_interval: int = 30
    restart_policy: str = "on-failure"
    environment: Dict[str, str] = field(default_factory=dict)

    @classmethod
    def _parse(cls, p: Parser, data: Any, path: str) -> Optional[MissionDeploymentSpec]:
        d = p.obj(data, path, _names(cls))
        if d is None:
            return None
        return cls(
            target=p.string(d, "target", path, default="development", nonempty=True),
            replicas=p.integer(d, "replicas", path, default=1, minimum=0),
            resources=p.string_map(d, "resources", path),
            health_check_interval=p.integer(
                d, "health_check_interval", path, default=30, minimum=1
            ),
            restart_policy=p.string(d, "restart_policy", path, default="on-failure"),
            environment=p.string_map(d, "environment", path),
        )


@dataclass
class SimulationToolOverrideSpec(_SpecBase):
    """Replaces a tool during simulation.

    Attributes:
        name: The tool replaced.
        static_response: Returned on every call (when ``handler`` is None).
        handler: ``"module:function"`` called with the tool's arguments instead.
        description: Free text.
    """

    name: str
    static_response: Any = None
    handler: Optional[str] = None
    description: str = ""

    @classmethod
    def _parse(
        cls, p: Parser, data: Any, path: str
    ) -> Optional[SimulationToolOverrideSpec]:
        d = p.obj(data, path, _names(cls))
        if d is None:
            return None
        response = d.get("static_response")
        p.json_value(response, join_path(path, "static_response"))
        spec = cls(
            name=p.string(d, "name", path, required=True, nonempty=True),
            static_response=response,
            handler=p.string(d, "handler", path, default=None, nonempty=True),
            description=p.string(d, "description", path),
        )
        if spec.handler is not None and response is not None:
            p.error(path, "set either static_response or handler, not both")
        return spec


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
    def _parse(cls, p: Parser, data: Any, path: str) -> Optional[MissionSimulationSpec]:
        d = p.obj(data, path, _names(cls))
        if d is None:
            return None
        spec = cls(
            enabled=p.boolean(d, "enabled", path, default=True),
            tools=_parse_list(p, d, "tools", path, SimulationToolOverrideSpec._parse),
            inputs=p.json_object(d, "inputs", path),
            models=p.json_object(d, "models", path),
        )
        _check_unique(
            p, [t.name for t in spec.tools], join_path(path, "tools"), "tool override"
        )
        for node_id, script in spec.models.items():
            where = join_path(join_path(path, "models"), node_id)
            if not isinstance(script, list) or not script:
                p.error(where, "must be a non-empty list of scripted replies")
                continue
            for index, reply in enumerate(script):
                if not isinstance(reply, (str, dict)):
                    p.error(join_path(where, index), "must be a text or an object")
        return spec


_PRE_ID = r"(?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*)"
_SEMVER = re.compile(
    r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)"
    rf"(?:-({_PRE_ID}(?:\.{_PRE_ID})*))?"
    r"(?:\+([0-9a-zA-Z-]+(?:\.[0-9a-zA-Z-]+)*))?$"
)
_MISSION_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")


def is_semver(text: str) -> bool:
    """Tell whether ``text`` is a semantic version (``MAJOR.MINOR.PATCH[-pre][+build]``).

    Args:
        text: The version.

    Returns:
        Whether it is valid semver 2.0.
    """
    return bool(_SEMVER.fullmatch(text))


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

    mission_id: str
    version: str
    graph: GraphSpec
    description: str = ""
    spark_version: str = SPEC_VERSION
    plan: Optional[MissionPlanSpec] = None
    state_schema: Optional[MissionStateSchemaSpec] = None
    strategies: List[MissionStrategyBindingSpec] = field(default_factory=list)
    telemetry: Optional[MissionTelemetrySpec] = None
    deployment: Optional[MissionDeploymentSpec] = None
    simulation: Optional[MissionSimulationSpec] = None
    metadata: Dict[str, Any] = field(default_factory=dict)

    @classmethod
    def _parse(cls, p: Parser, data: Any, path: str) -> Optional[MissionSpec]:
        d = p.obj(data, path, _names(cls))
        if d is None:
            return None
        mission_id = p.string(d, "mission_id", path, required=True, nonempty=True)
        if (
            isinstance(mission_id, str)
            and mission_id
            and not _MISSION_ID.fullmatch(mission_id)
        ):
            p.error(
                join_path(path, "mission_id"),
                "may contain only letters, digits, '.', '_' and '-' (not first)",
            )
        version = p.string(d, "version", path, required=True)
        if isinstance(d.get("version"), str) and not is_semver(version):
            p.error(
                join_path(path, "version"),
                f"must be a semantic version, got {version!r}",
            )
        graph = _parse_optional(p, d, "graph", path, GraphSpec._parse)
        if graph is None:
            if d.get("graph") is None:
                p.error(join_path(path, "graph"), "is required")
            return None
        return cls(
            mission_id=mission_id,
            version=version,
            graph=graph,
            description=p.string(d, "description", path),
            spark_version=p.string(
                d, "spark_version", path, default=SPEC_VERSION, nonempty=True
            ),
            plan=_parse_optional(p, d, "plan", path, MissionPlanSpec._parse),
            state_schema=_parse_optional(
                p, d, "state_schema", path, MissionStateSchemaSpec._parse
            ),
            strategies=_parse_list(
                p, d, "strategies", path, MissionStrategyBindingSpec._parse
            ),
            telemetry=_parse_optional(
                p, d, "telemetry", path, MissionTelemetrySpec._parse
            ),
            deployment=_parse_optional(
                p, d, "deployment", path, MissionDeploymentSpec._parse
            ),
            simulation=_parse_optional(
                p, d, "simulation", path, MissionSimulationSpec._parse
            ),
            metadata=p.json_object(d, "metadata", path),
        )
