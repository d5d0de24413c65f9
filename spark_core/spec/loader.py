"""Turn specs into runnable graphs, and live graphs back into specs.

Safety: a spec names code only through references (``"package.module:Name"``). The loader
imports a node class only when its module is under one of ``allowed_modules`` (default:
``spark_core``) and the object is a :class:`~spark_core.nodes.Node` subclass; it imports a
tool or simulation handler only under ``allowed_tool_modules`` (default: none, so tools come
from Python through ``tools=``). The rule, dangerous standard-library modules included, is
:mod:`spark_core.spec.allowlist`'s, which ``spark-spec compile`` and ``mission-validate``
apply too. Node params are JSON values passed to the constructor; nothing
in a spec is evaluated as code (edge expressions use the engine's safe expression language).
"""

from __future__ import annotations

import importlib
import inspect
import os
from typing import (
    Any,
    Callable,
    Dict,
    Iterable,
    List,
    Mapping,
    Optional,
    Sequence,
    Type,
)
from typing import Union

from spark_core.errors import SparkError
from spark_core.graphs import Graph, GraphObserver
from spark_core.graphs.state_schema import MissionStateModel
from spark_core.nodes import Node, NodeConfig
from spark_core.nodes.capabilities import (
    CircuitBreakerCapability,
    RateLimitCapability,
    RetryCapability,
    TimeoutCapability,
)
from spark_core.spec.allowlist import (
    DEFAULT_ALLOWED_MODULES,
    dangerous_root,
    module_refusal,
    normalise_prefixes,
)
from spark_core.spec.builtin_nodes import BUILTIN_NODES
from spark_core.spec.errors import SpecError, SpecLoadError
from spark_core.spec.models import (
    CircuitBreakerSpec,
    EdgeConditionSpec,
    EdgeSpec,
    GraphSpec,
    MissionSpec,
    MissionStateSchemaSpec,
    MissionTelemetrySpec,
    NodeConfigSpec,
    NodeSpec,
    RateLimitSpec,
    RetrySpec,
    TimeoutSpec,
    ToolSpec,
)
from spark_core.spec.validation import (
    RESERVED_NODE_PARAMS,
    ensure_valid_graph,
    is_reference,
    state_field_problem,
)

__all__ = ["SpecLoader", "export_graph", "DEFAULT_ALLOWED_MODULES"]

_STATE_TYPES: Dict[str, Any] = {
    "str": str,
    "int": int,
    "float": float,
    "bool": bool,
    "list": list,
    "dict": dict,
    "datetime": str,
    "any": Any,
}


class SpecLoader:
    """Builds runnable :class:`~spark_core.graphs.Graph` objects from specs.

    Args:
        allowed_modules: Module prefixes node classes may be imported from
            (``"myapp"`` allows ``myapp`` and ``myapp.*``). Default: ``("spark_core",)``.
        allowed_tool_modules: Module prefixes tools and simulation handlers may be imported
            from. Default: none.
        node_types: Extra named node types (name → Node subclass), on top of the built-ins.
        tools: Tool implementations by name (callables or governance ``Tool`` objects); they
            win over a spec's ``reference``.
    """

    def __init__(
        self,
        allowed_modules: Optional[Iterable[str]] = None,
        *,
        allowed_tool_modules: Iterable[str] = (),
        node_types: Optional[Mapping[str, Type[Node]]] = None,
        tools: Optional[Mapping[str, Any]] = None,
    ) -> None:
        """Create a loader (see the class docstring for the arguments)."""
        self.allowed_modules = normalise_prefixes(
            DEFAULT_ALLOWED_MODULES if allowed_modules is None else allowed_modules
        )
        self.allowed_tool_modules = normalise_prefixes(allowed_tool_modules)
        self.node_types: Dict[str, Type[Node]] = dict(BUILTIN_NODES)
        for name, cls in (node_types or {}).items():
            self.register(name, cls)
        self.tools: Dict[str, Any] = dict(tools or {})

    def __repr__(self) -> str:
        return (
            f"SpecLoader(allowed_modules={list(self.allowed_modules)!r}, "
            f"node_types={sorted(self.node_types)!r})"
        )

    # ------------------------------------------------------------------ registry
    def register(self, name: str, cls: Type[Node]) -> None:
        """Register a node class under a type name usable in specs.

        Args:
            name: The type name (no ``:``).
            cls: A :class:`~spark_core.nodes.Node` subclass.

        Raises:
            SpecError: The name or class is not acceptable.
        """
        if not isinstance(name, str) or not name or ":" in name:
            raise SpecError(
                f"node type names are non-empty and have no ':', got {name!r}"
            )
        if not (isinstance(cls, type) and issubclass(cls, Node)):
            raise SpecError(f"node type {name!r} must be a Node subclass, got {cls!r}")
        self.node_types[name] = cls

    def resolve(self, reference: str, *, kind: str = "node") -> Any:
        """Import the object a ``"module:Name"`` reference names, if its module is allowed.

        Args:
            reference: The reference.
            kind: ``"node"`` (checked against ``allowed_modules``) or ``"tool"`` (checked
                against ``allowed_tool_modules``).

        Returns:
            The object.

        Raises:
            SpecLoadError: Malformed, not allowed, or not found; or, from a module that is
                not itself a dangerous one, an object defined in a dangerous module that is
                not allowed (a re-export). Nothing is imported unless the module is allowed.
        """
        if not isinstance(reference, str) or not is_reference(reference):
            raise SpecLoadError(
                f"{kind} reference {reference!r} must look like 'module:Name'"
            )
        module_name, attribute = reference.split(":", 1)
        prefixes = self.allowed_modules if kind == "node" else self.allowed_tool_modules
        refusal = module_refusal(module_name, prefixes)
        if refusal is not None:
            raise SpecLoadError(f"{kind} reference {reference!r}: {refusal}")
        if attribute.startswith("_"):
            raise SpecLoadError(
                f"{kind} reference {reference!r}: private names are not allowed"
            )
        try:
            module = importlib.import_module(module_name)
        except ImportError as exc:
            raise SpecLoadError(
                f"{kind} reference {reference!r}: cannot import: {exc}"
            ) from None
        try:
            obj = getattr(module, attribute)
        except AttributeError:
            raise SpecLoadError(
                f"{kind} reference {reference!r}: {module_name} has no {attribute!r}"
            ) from None
        # An allowed module may re-export a dangerous function (`from os import system`):
        # unless the spec named a dangerous module itself, where it was defined counts.
        home = getattr(obj, "__module__", None)
        if isinstance(home, str) and dangerous_root(module_name) is None:
            refusal = module_refusal(home, prefixes)
            if refusal is not None and dangerous_root(home) is not None:
                name = getattr(obj, "__qualname__", attribute)
                raise SpecLoadError(
                    f"{kind} reference {reference!r} is {home}.{name}: {refusal}"
                )
        return obj

    def node_class(self, node_type: str) -> Type[Node]:
        """Return the Node subclass a spec ``type`` names.

        Args:
            node_type: A registered name or a ``"module:Class"`` reference.

        Returns:
            The class.

        Raises:
            SpecLoadError: Unknown, not allowed, or not a Node subclass.
        """
        if ":" not in node_type:
            cls = self.node_types.get(node_type)
            if cls is None:
                raise SpecLoadError(
                    f"unknown node type {node_type!r}; known: {', '.join(sorted(self.node_types))}"
                )
            return cls
        obj = self.resolve(node_type, kind="node")
        if not (isinstance(obj, type) and issubclass(obj, Node)):
            raise SpecLoadError(f"node type {node_type!r} is not a Node subclass")
        return obj

    # ------------------------------------------------------------------ building
    @staticmethod
    def build_config(spec: NodeConfigSpec, description: str = "") -> NodeConfig:
        """Build the engine's :class:`NodeConfig` from a config spec.

        Args:
            spec: The capabilities.
            description: The node's description.

        Returns:
            The config.
        """
        retry = spec.retry
        return NodeConfig(
            retry=None if retry is None else RetryCapability(**retry.settings()),
            timeout=(
                None
                if spec.timeout is None
                else TimeoutCapability(timeout_seconds=spec.timeout.timeout_seconds)
            ),
            rate_limit=(
                None
                if spec.rate_limit is None
                else RateLimitCapability(
                    max_calls=spec.rate_limit.max_calls,
                    period_seconds=spec.rate_limit.period_seconds,
                )
            ),
            circuit_breaker=(
                None
                if spec.circuit_breaker is None
                else CircuitBreakerCapability(
                    failure_threshold=spec.circuit_breaker.failure_threshold,
                    reset_timeout=spec.circuit_breaker.reset_timeout,
                )
            ),
            description=description,
        )

    def build_node(self, spec: NodeSpec) -> Node:
        """Instantiate one node from its spec.

        Args:
            spec: The node spec.

        Returns:
            The node, with ``id`` and ``name`` equal to ``spec.id``.

        Raises:
            SpecLoadError: The type cannot be resolved or its constructor rejects the params.
        """
        cls = self.node_class(spec.type)
        try:
            config = self.build_config(spec.config, spec.description)
        except ValueError as exc:
            raise SpecLoadError(f"node {spec.id!r}: invalid config: {exc}") from None
        params = dict(spec.params)
        try:
            accepted = inspect.signature(cls.__init__).parameters
        except (
            TypeError,
            ValueError,
        ):  # pragma: no cover - builtins without signatures
            accepted = {}  # type: ignore[assignment]
        takes_any = any(
            p.kind is inspect.Parameter.VAR_KEYWORD for p in accepted.values()
        )
        for reserved in RESERVED_NODE_PARAMS:
            if reserved in params:
                raise SpecLoadError(f"node {spec.id!r}: param {reserved!r} is reserved")
            if reserved in accepted or takes_any:
                params[reserved] = spec.id if reserved == "name" else config
        try:
            node = cls(**params)
        except SpecError as exc:
            raise SpecLoadError(f"node {spec.id!r}: {exc}") from None
        except (TypeError, ValueError, SparkError) as exc:
            raise SpecLoadError(
                f"node {spec.id!r}: cannot create {spec.type}: {exc}"
            ) from None
        node.name = node.id = spec.id  # setting the id fixes it
        node.config = config
        return node

    def build_tools(
        self, specs: Sequence[ToolSpec], overrides: Optional[Mapping[str, Any]] = None
    ) -> List[Any]:
        """Build governance ``Tool`` objects for a graph's tool specs.

        Implementation order per tool: ``overrides`` (e.g. simulated tools), then the loader's
        ``tools=``, then the spec's ``reference`` (under ``allowed_tool_modules``).

        Args:
            specs: The graph's tools.
            overrides: Name → callable or Tool replacing the implementation.

        Returns:
            The tools.

        Raises:
            SpecLoadError: A tool has no usable implementation.
        """
        built: List[Any] = []
        extra = dict(overrides or {})
        for spec in specs:
            impl = extra.pop(spec.name, None)
            if impl is None:
                impl = self.tools.get(spec.name)
            if impl is None:
                if spec.reference is None:
                    raise SpecLoadError(
                        f"tool {spec.name!r} has no implementation: pass it with "
                        "SpecLoader(tools=...) or give it a reference"
                    )
                impl = self.resolve(spec.reference, kind="tool")
            built.append(self._as_tool(spec.name, impl, spec.description))
        for name, impl in extra.items():
            built.append(self._as_tool(name, impl, ""))
        return built

    @staticmethod
    def _as_tool(name: str, impl: Any, description: str) -> Any:
        from spark_core.governance.tools import Tool

        if isinstance(impl, Tool):
            if impl.name == name:
                return impl
            impl = impl.func
        if not callable(impl):
            raise SpecLoadError(f"tool {name!r}: implementation is not callable")
        try:
            return Tool(impl, name=name, description=description or None)
        except SparkError as exc:
            raise SpecLoadError(f"tool {name!r}: {exc}") from None

    @staticmethod
    def build_state_schema(spec: MissionStateSchemaSpec) -> Type[MissionStateModel]:
        """Build a ``MissionStateModel`` subclass declaring the spec's fields.

        Args:
            spec: The state schema spec.

        Returns:
            A new schema class (fields without a default default to ``None``).

        Raises:
            SpecLoadError: A field name is not an identifier or clashes with the base class.
        """
        annotations: Dict[str, Any] = {}
        namespace: Dict[str, Any] = {
            "__annotations__": annotations,
            "__module__": __name__,
        }
        for name, field in spec.fields.items():
            problem = state_field_problem(name)
            if problem is not None:
                raise SpecLoadError(f"state field name {name!r}: {problem}")
            kind = _STATE_TYPES.get(field.type, Any)
            annotations[name] = (
                kind if field.default is not None or kind is Any else Optional[kind]
            )
            namespace[name] = field.default
        return type("SpecState", (MissionStateModel,), namespace)

    def load_graph(
        self,
        spec: Union[GraphSpec, Dict[str, Any]],
        *,
        state_backend: Any = None,
        state_schema: Optional[MissionStateSchemaSpec] = None,
        tool_overrides: Optional[Mapping[str, Any]] = None,
        policy_set: Any = None,
        telemetry: Any = None,
        observers: Sequence[GraphObserver] = (),
    ) -> Graph:
        """Validate a graph spec and build the runnable graph.

        Args:
            spec: A :class:`GraphSpec` or its dict form.
            state_backend: State backend for the graph (in memory by default).
            state_schema: Schema used when the graph spec declares none.
            tool_overrides: Name → implementation replacing tools (simulation).
            policy_set: Governance policies for the graph.
            telemetry: A ``TelemetryManager``.
            observers: Extra observers.

        Returns:
            The graph.

        Raises:
            SpecValidationError: The spec is invalid.
            SpecLoadError: A node type, tool or param cannot be loaded.
        """
        graph_spec = ensure_valid_graph(spec, node_types=self.node_types)
        nodes = {n.id: self.build_node(n) for n in graph_spec.nodes}
        for edge in graph_spec.edges:
            _link(nodes[edge.source], nodes[edge.target], edge.condition)
        schema_spec = graph_spec.state_schema or state_schema
        tools = self.build_tools(graph_spec.tools, tool_overrides)
        try:
            return Graph(
                nodes[graph_spec.start],
                state_backend=state_backend,
                state_schema=(
                    None
                    if schema_spec is None
                    else self.build_state_schema(schema_spec)
                ),
                max_steps=graph_spec.max_steps,
                tools=tools or None,
                policy_set=policy_set,
                telemetry=telemetry,
                observers=observers,
                graph_id=graph_spec.id,
                initial_state=dict(graph_spec.initial_state),
            )
        except SpecError:
            raise
        except SparkError as exc:
            raise SpecLoadError(f"graph {graph_spec.id!r}: {exc}") from None

    @staticmethod
    def build_telemetry(spec: MissionTelemetrySpec) -> Any:
        """Create the ``TelemetryManager`` a mission's telemetry spec describes.

        Args:
            spec: The telemetry settings.

        Returns:
            A new manager, or None when telemetry is disabled.

        ``postgresql`` takes its DSN from ``db_path`` or, so that no password need be
        written in a spec file, from the ``SPARK_TELEMETRY_DSN`` environment variable;
        ``otlp`` takes its collector from the ``OTEL_EXPORTER_OTLP_*`` environment.

        Raises:
            SpecLoadError: The backend is not one spark_core provides (memory, sqlite,
                postgresql, otlp), sqlite has no ``db_path``, postgresql no DSN.
        """
        if not spec.enabled:
            return None
        if spec.backend not in ("memory", "sqlite", "postgresql", "otlp"):
            raise SpecLoadError(
                f"telemetry backend {spec.backend!r} is not available in spark_core "
                "(use memory, sqlite, postgresql or otlp)"
            )
        if spec.backend == "sqlite" and not spec.db_path:
            raise SpecLoadError("telemetry.db_path is required for the sqlite backend")
        from spark_core.telemetry import TelemetryConfig, TelemetryManager

        backend_config: Dict[str, Any] = {}
        if spec.backend == "sqlite":
            backend_config = {"path": spec.db_path}
        elif spec.backend == "postgresql":
            dsn = spec.db_path or os.environ.get("SPARK_TELEMETRY_DSN")
            if not dsn:
                raise SpecLoadError(
                    "the postgresql telemetry backend needs a DSN: telemetry.db_path "
                    "or the SPARK_TELEMETRY_DSN environment variable"
                )
            backend_config = {"dsn": dsn}
        config = TelemetryConfig(
            enabled=True,
            backend=spec.backend,
            backend_config=backend_config,
            sampling_rate=spec.sampling_rate,
            buffer_size=spec.buffer_size,
            export_interval=spec.export_interval,
        )
        return TelemetryManager(config)

    def load_mission(
        self,
        mission: MissionSpec,
        *,
        attach_plan: bool = True,
        spec_telemetry: bool = False,
        **kwargs: Any,
    ) -> Graph:
        """Build a mission's graph, with its state schema and (optionally) its plan manager.

        The mission's strategy bindings set the reasoning strategy of the agent nodes they
        target (see :func:`spark_core.agents.factory.bind_strategies`).

        Args:
            mission: The mission.
            attach_plan: Attach a ``PlanManager`` for ``mission.plan``.
            spec_telemetry: Record telemetry as ``mission.telemetry`` says (a new
                ``TelemetryManager``; the caller closes ``graph``'s manager when done). Off by
                default so loading never writes files; an explicit ``telemetry=`` wins.
            **kwargs: Passed on to :meth:`load_graph`.

        Returns:
            The graph.

        Raises:
            SpecValidationError: The graph spec is invalid.
            SpecLoadError: Something in it cannot be loaded, a strategy binding targets a
                node that is not an agent node or names an unknown strategy, or the plan
                does not fit the graph.
        """
        kwargs.setdefault("state_schema", mission.state_schema)
        if (
            spec_telemetry
            and "telemetry" not in kwargs
            and mission.telemetry is not None
        ):
            kwargs["telemetry"] = self.build_telemetry(mission.telemetry)
        graph = self.load_graph(mission.graph, **kwargs)
        if mission.strategies:
            # Imported only for missions that bind strategies: agents are optional.
            from spark_core.agents.errors import AgentConfigError
            from spark_core.agents.factory import bind_strategies

            try:
                bind_strategies(graph, mission.strategies)
            except AgentConfigError as exc:
                raise SpecLoadError(f"mission {mission.mission_id!r}: {exc}") from None
        if attach_plan and mission.plan is not None and mission.plan.steps:
            from spark_core.graphs.mission_control import (
                MissionPlan,
                PlanManager,
                PlanStep,
                PlanValidationError,
            )

            plan = MissionPlan(
                [
                    PlanStep(
                        id=s.id,
                        description=s.description,
                        depends_on=list(s.depends_on),
                        nodes=list(s.nodes),
                    )
                    for s in mission.plan.steps
                ]
            )
            manager = PlanManager(
                plan,
                state_key=mission.plan.state_key,
                auto_advance=mission.plan.auto_advance,
            )
            try:
                manager.attach(graph)
            except PlanValidationError as exc:
                raise SpecLoadError(f"mission {mission.mission_id!r}: {exc}") from None
        return graph


def _link(source: Node, target: Node, condition: Optional[EdgeConditionSpec]) -> None:
    if condition is None:
        source >> target
    elif condition.kind == "expr":
        source.on(expr=condition.value) >> target
    elif {"expr", "when"}.isdisjoint(condition.value):
        source.on(**condition.value) >> target
    else:  # keys that collide with on()'s own keywords
        source.add_edge(target, "equals", dict(condition.value))


# ---------------------------------------------------------------------- export
def _type_of(node: Node, registry: Mapping[str, Type[Node]]) -> str:
    cls = type(node)
    for name, known in registry.items():
        if known is cls:
            return name
    if "<locals>" in cls.__qualname__ or "." in cls.__qualname__:
        raise SpecError(
            f"node {node.id!r}: class {cls.__qualname__} is not importable by name "
            "(define it at module level)"
        )
    return f"{cls.__module__}:{cls.__qualname__}"


def _config_spec(config: NodeConfig) -> NodeConfigSpec:
    retry = config.retry
    return NodeConfigSpec(
        retry=None if retry is None else RetrySpec(**retry.settings()),
        timeout=(
            None
            if config.timeout is None
            else TimeoutSpec(timeout_seconds=float(config.timeout.timeout_seconds))
        ),
        rate_limit=(
            None
            if config.rate_limit is None
            else RateLimitSpec(
                max_calls=config.rate_limit.max_calls,
                period_seconds=float(config.rate_limit.period_seconds),
            )
        ),
        circuit_breaker=(
            None
            if config.circuit_breaker is None
            else CircuitBreakerSpec(
                failure_threshold=config.circuit_breaker.failure_threshold,
                reset_timeout=float(config.circuit_breaker.reset_timeout),
            )
        ),
    )


def _tool_spec(tool: Any) -> ToolSpec:
    from spark_core.governance.tools import as_tool

    tool = as_tool(tool)  # plain functions get their name, description and schema
    func: Callable[..., Any] = getattr(tool, "func", tool)
    name = str(getattr(tool, "name", None) or getattr(func, "__name__", "tool"))
    module = getattr(func, "__module__", None)
    qualname = getattr(func, "__qualname__", "")
    reference = (
        f"{module}:{qualname}" if module and qualname and "." not in qualname else None
    )
    return ToolSpec(
        name=name,
        reference=reference,
        description=getattr(tool, "description", "") or "",
        parameters=dict(getattr(tool, "parameters", {}) or {}),
    )


def export_graph(
    graph: Graph,
    *,
    graph_id: Optional[str] = None,
    node_types: Optional[Mapping[str, Type[Node]]] = None,
) -> GraphSpec:
    """Describe a live graph as a :class:`GraphSpec`.

    Node params come from the node's ``spec_params()`` method when it has one (the built-in
    types do), else they are empty. Callable edge conditions cannot be described as data.

    Args:
        graph: The graph.
        graph_id: Id for the spec (default: the graph's id).
        node_types: Extra registry names to use for node classes.

    Returns:
        The spec.

    Raises:
        SpecError: The graph holds something a spec cannot express (a callable edge, a node
            class defined inside a function).
    """
    registry: Dict[str, Type[Node]] = {**BUILTIN_NODES, **(node_types or {})}
    nodes = []
    for node in graph.nodes.values():
        params_of = getattr(node, "spec_params", None)
        params = params_of() if callable(params_of) else {}
        nodes.append(
            NodeSpec(
                id=node.id,
                type=_type_of(node, registry),
                params=params,
                config=_config_spec(node.config),
                description=node.config.description,
            )
        )
    edges = []
    for edge in graph.edges:
        if edge.kind == "callable":
            raise SpecError(
                f"edge {edge.source} -> {edge.target} has a Python callable condition, which a "
                "spec cannot express (use key=value or expr= conditions)"
            )
        condition = (
            None
            if edge.kind == "always"
            else EdgeConditionSpec(kind=edge.kind, value=edge.value)
        )
        edges.append(
            EdgeSpec(source=edge.source, target=edge.target, condition=condition)
        )
    tools = [_tool_spec(t) for t in graph.tools]
    spec = GraphSpec(
        id=graph_id or str(graph.graph_id),
        start=graph.start.id,
        nodes=nodes,
        edges=edges,
        tools=tools,
        max_steps=graph.max_steps,
    )
    # Round-trip through dict form so non-JSON params are reported as spec errors.
    return GraphSpec.from_dict(spec.to_dict())
