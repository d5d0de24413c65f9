"""Structural and semantic validation of graph and mission specs.

``validate_mission(data)`` returns every :class:`ValidationIssue` (path, message, severity);
``ensure_valid_mission(data)`` raises :class:`SpecValidationError` when any is an error.
"""

from __future__ import annotations

import importlib
import re
from typing import Any, Dict, Iterable, List, Optional, Sequence, Set, Tuple, Union

from spark_core.spec._parse import Parser, ValidationIssue, join_path, parse_dataclass
from spark_core.spec.allowlist import module_refusal, normalise_prefixes
from spark_core.spec.errors import SpecValidationError
from spark_core.spec.models import (
    SPEC_VERSION,
    GraphSpec,
    MissionDeploymentSpec,
    MissionSpec,
    MissionStateSchemaSpec,
    MissionTelemetrySpec,
    ReasoningStrategySpec,
    StateFieldSpec,
)

__all__ = [
    "ValidationIssue",
    "BUILTIN_NODE_TYPES",
    "DEPLOYMENT_TARGETS",
    "validate_graph",
    "validate_mission",
    "validate_spec",
    "ensure_valid_graph",
    "ensure_valid_mission",
    "is_reference",
    "state_field_problem",
    "RESERVED_NODE_PARAMS",
]

#: Node types every loader knows by name (see :mod:`spark_core.spec.builtin_nodes`).
BUILTIN_NODE_TYPES = (
    "echo",
    "set_state",
    "tool_call",
    "template",
    "merge",
    "step",
    "join",
)
DEPLOYMENT_TARGETS = ("development", "staging", "production")
RESTART_POLICIES = ("always", "on-failure", "never")
TELEMETRY_BACKENDS = ("memory", "sqlite", "postgresql", "otlp")

_REFERENCE = re.compile(
    r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*:[A-Za-z_][A-Za-z0-9_]*$"
)
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_CPU = re.compile(r"^(\d+(\.\d+)?|\d+m)$")
_MEMORY = re.compile(r"^\d+(\.\d+)?(Ki|Mi|Gi|Ti|K|M|G|T)?$")
_INT = re.compile(r"^\d+$")
_FIELD_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")
_SECRET_NAME = re.compile(
    r"(KEY|TOKEN|SECRET|PASSWORD|PASSWD|CREDENTIAL)", re.IGNORECASE
)

_TYPE_CHECKS: Dict[str, Tuple[type, ...]] = {
    "str": (str,),
    "int": (int,),
    "float": (int, float),
    "bool": (bool,),
    "list": (list,),
    "dict": (dict,),
    "datetime": (str,),
}

SpecLike = Union[MissionSpec, GraphSpec, Dict[str, Any]]

#: Node params a spec cannot set: the loader passes the node's id and config as them.
RESERVED_NODE_PARAMS = ("name", "config")


def is_reference(text: str) -> bool:
    """Tell whether ``text`` looks like ``"package.module:Name"``.

    Args:
        text: The reference.

    Returns:
        Whether it has that shape (nothing is imported).
    """
    return bool(_REFERENCE.fullmatch(text))  # match() let "a:B\n" through


def state_field_problem(name: str) -> Optional[str]:
    """Tell why ``name`` cannot be a declared state field (validation, loader and codegen
    share this rule).

    Args:
        name: The field name.

    Returns:
        What is wrong with it, or None when it can be used.
    """
    if name.startswith("_spark_"):
        return "names starting with '_spark_' are reserved"
    if not _FIELD_NAME.fullmatch(name):
        return "must be an identifier (letters, digits, '_'; not starting with '_')"
    from spark_core.graphs.state_schema import MissionStateModel

    if hasattr(MissionStateModel, name):
        return f"clashes with MissionStateModel.{name} (the schema's base class)"
    return None


def _structural(cls: Any, data: Any) -> Tuple[Any, List[ValidationIssue]]:
    parser = Parser()
    spec = parse_dataclass(parser, cls, data, "")
    if parser.has_errors:
        spec = None
    return spec, parser.issues


# --------------------------------------------------------------------------- graph
def _graph_issues(
    graph: GraphSpec, base: str, node_types: Optional[Iterable[str]]
) -> List[ValidationIssue]:
    p = Parser()
    known = set(BUILTIN_NODE_TYPES) | set(node_types or ())
    ids = [n.id for n in graph.nodes]
    id_set = set(ids)
    tool_names = {t.name for t in graph.tools}

    if graph.start not in id_set:
        p.error(join_path(base, "start"), f"unknown node {graph.start!r}")

    for index, node in enumerate(graph.nodes):
        where = join_path(join_path(base, "nodes"), index)
        if ":" in node.type:
            if not is_reference(node.type):
                p.error(
                    join_path(where, "type"), "must look like 'package.module:Class'"
                )
        elif node.type not in known:
            p.error(
                join_path(where, "type"),
                f"unknown node type {node.type!r} (use a registered type or 'module:Class')",
            )
        for reserved in RESERVED_NODE_PARAMS:
            if reserved in node.params:
                p.error(
                    join_path(where, f"params.{reserved}"),
                    "is reserved (the loader sets it from the node's "
                    + ("id)" if reserved == "name" else "config)"),
                )
        if node.type == "tool_call":
            tool = node.params.get("tool")
            if not isinstance(tool, str) or not tool:
                p.error(
                    join_path(where, "params.tool"), "is required for a tool_call node"
                )
            elif tool not in tool_names:
                p.error(join_path(where, "params.tool"), f"unknown tool {tool!r}")

    from spark_core.governance.tools import _NAME_RE as _TOOL_NAME  # the engine's rule

    for index, tool in enumerate(graph.tools):
        if not _TOOL_NAME.fullmatch(tool.name):
            p.error(
                join_path(join_path(join_path(base, "tools"), index), "name"),
                f"invalid tool name {tool.name!r}: use 1-64 letters, digits, '_', '.' or '-'",
            )
        if tool.reference is not None and not is_reference(tool.reference):
            p.error(
                join_path(join_path(join_path(base, "tools"), index), "reference"),
                "must look like 'package.module:function'",
            )

    adjacency: Dict[str, List[str]] = {i: [] for i in ids}
    unconditional: Dict[str, List[str]] = {i: [] for i in ids}
    for index, edge in enumerate(graph.edges):
        where = join_path(join_path(base, "edges"), index)
        ok = True
        for end in ("source", "target"):
            name = getattr(edge, end)
            if name not in id_set:
                p.error(join_path(where, end), f"unknown node {name!r}")
                ok = False
        if ok:
            adjacency[edge.source].append(edge.target)
            if edge.condition is None:
                unconditional[edge.source].append(edge.target)

    if graph.start in id_set:
        seen = _reachable(graph.start, adjacency)
        for index, node in enumerate(graph.nodes):
            if node.id not in seen:
                p.warn(
                    join_path(join_path(base, "nodes"), index),
                    f"node {node.id!r} is unreachable from start {graph.start!r}",
                )

    for cycle in _cycles(unconditional):
        p.error(
            join_path(base, "edges"),
            "loop without a bound: "
            + " -> ".join(cycle + [cycle[0]])
            + " has only unconditional edges (put a condition on one of them)",
        )

    if graph.state_schema is not None:
        _schema_issues(p, graph.state_schema, join_path(base, "state_schema"))
        _state_values(
            p, graph.state_schema, graph.initial_state, join_path(base, "initial_state")
        )
    return p.issues


def _reachable(start: str, adjacency: Dict[str, List[str]]) -> Set[str]:
    seen = {start}
    stack = [start]
    while stack:
        for nxt in adjacency.get(stack.pop(), []):
            if nxt not in seen:
                seen.add(nxt)
                stack.append(nxt)
    return seen


def _cycles(adjacency: Dict[str, List[str]]) -> List[List[str]]:
    """Return one representative cycle per strongly connected loop (iterative DFS)."""
    color: Dict[str, int] = {n: 0 for n in adjacency}
    found: List[List[str]] = []
    reported: Set[frozenset[str]] = set()
    for root in adjacency:
        if color[root]:
            continue
        stack: List[Tuple[str, int]] = [(root, 0)]
        path: List[str] = []
        while stack:
            node, index = stack.pop()
            if index == 0:
                color[node] = 1
                path.append(node)
            children = adjacency.get(node, [])
            if index < len(children):
                stack.append((node, index + 1))
                child = children[index]
                if color.get(child, 0) == 0:
                    stack.append((child, 0))
                elif color.get(child) == 1:
                    cycle = path[path.index(child) :]
                    key = frozenset(cycle)
                    if key not in reported:
                        reported.add(key)
                        found.append(cycle)
            else:
                color[node] = 2
                path.pop()
    return found


def _schema_issues(p: Parser, schema: MissionStateSchemaSpec, base: str) -> None:
    if schema.schema_class is not None and not is_reference(schema.schema_class):
        p.error(
            join_path(base, "schema_class"), "must look like 'package.module:Class'"
        )
    for name, spec in schema.fields.items():
        where = join_path(join_path(base, "fields"), name)
        problem = state_field_problem(name)
        if problem is not None:
            p.error(where, problem)
        if spec.default is not None and not _fits(spec, spec.default):
            p.error(join_path(where, "default"), f"does not match type {spec.type!r}")


def _fits(spec: StateFieldSpec, value: Any) -> bool:
    if spec.type == "any" or value is None:
        return True
    kinds = _TYPE_CHECKS.get(spec.type)
    if kinds is None:
        return True
    if spec.type in ("int", "float") and isinstance(value, bool):
        return False
    return isinstance(value, kinds)


def _state_values(
    p: Parser, schema: MissionStateSchemaSpec, values: Dict[str, Any], base: str
) -> None:
    for name, value in values.items():
        spec = schema.fields.get(name)
        if spec is not None and not _fits(spec, value):
            p.error(
                join_path(base, name), f"does not match declared type {spec.type!r}"
            )


# --------------------------------------------------------------------------- mission
def _mission_issues(
    mission: MissionSpec, node_types: Optional[Iterable[str]], check_deployment: bool
) -> List[ValidationIssue]:
    issues = _graph_issues(mission.graph, "graph", node_types)
    p = Parser()
    if mission.spark_version.split(".")[0] != SPEC_VERSION.split(".")[0]:
        p.warn(
            "spark_version", f"{mission.spark_version!r} differs from {SPEC_VERSION!r}"
        )

    node_ids = {n.id for n in mission.graph.nodes}
    if mission.plan is not None:
        steps = {s.id for s in mission.plan.steps}
        deps: Dict[str, List[str]] = {}
        for index, step in enumerate(mission.plan.steps):
            where = f"plan.steps[{index}]"
            good = []
            for dep_index, dep in enumerate(step.depends_on):
                dep_path = join_path(join_path(where, "depends_on"), dep_index)
                if dep == step.id:
                    p.error(dep_path, f"step {step.id!r} depends on itself")
                elif dep not in steps:
                    p.error(dep_path, f"unknown plan step {dep!r}")
                else:
                    good.append(dep)
            deps[step.id] = good
            for node_index, node_id in enumerate(step.nodes):
                if node_id not in node_ids:
                    p.error(f"{where}.nodes[{node_index}]", f"unknown node {node_id!r}")
        _misspelt_steps(p, mission, node_ids)
        for cycle in _cycles(deps):
            p.error(
                "plan.steps", "dependency cycle: " + " -> ".join(cycle + [cycle[0]])
            )

    node_types = {n.id: n.type for n in mission.graph.nodes}
    for index, binding in enumerate(mission.strategies):
        where = f"strategies[{index}]"
        if binding.target not in node_ids:
            p.error(f"{where}.target", f"unknown node {binding.target!r}")
        else:
            _binding_target(p, f"{where}.target", binding.target, node_types)
        _strategy_issues(p, f"{where}.strategy", binding.strategy)

    if mission.state_schema is not None:
        _schema_issues(p, mission.state_schema, "state_schema")
        _state_values(
            p, mission.state_schema, mission.graph.initial_state, "graph.initial_state"
        )

    if mission.simulation is not None:
        tools = {t.name for t in mission.graph.tools}
        for index, override in enumerate(mission.simulation.tools):
            where = f"simulation.tools[{index}]"
            if override.name not in tools:
                p.warn(join_path(where, "name"), f"graph has no tool {override.name!r}")
            if override.handler is not None and not is_reference(override.handler):
                p.error(
                    join_path(where, "handler"),
                    "must look like 'package.module:function'",
                )
        for node_id in mission.simulation.models:
            if node_id not in node_ids:
                p.error(f"simulation.models.{node_id}", f"unknown node {node_id!r}")

    if check_deployment:
        if mission.deployment is None:
            p.error("deployment", "is required for deployment")
        else:
            _deployment_issues(p, mission.deployment)
        if mission.telemetry is not None:
            _telemetry_issues(p, mission.telemetry)
    return issues + p.issues


def _misspelt_steps(p: Parser, mission: MissionSpec, node_ids: Set[str]) -> None:
    # The PlanManager refuses these when the mission is loaded: say so here, before a run.
    from spark_core.graphs.mission_control import misspelt_node

    assert mission.plan is not None
    steps = mission.plan.steps
    covered = {n for s in steps for n in (s.nodes or [s.id])}
    unmapped = sorted(node_ids - covered)
    for index, step in enumerate(steps):
        if step.nodes or step.id in node_ids:
            continue
        meant = misspelt_node(step.id, unmapped)
        if meant is not None:
            p.error(
                f"plan.steps[{index}].id",
                f"{step.id!r} names no node: did you mean {meant!r}? (or map the step "
                "to its nodes with 'nodes')",
            )


def _binding_target(
    p: Parser, path: str, target: str, node_types: Dict[str, str]
) -> None:
    """Bindings configure agents: the loader refuses any other target, so say so here."""
    node_type = node_types[target]
    if node_type in BUILTIN_NODE_TYPES:
        p.error(path, f"node {target!r} is a built-in {node_type!r} node, not an agent")
        return
    if not is_reference(node_type):
        return  # a registered name or a malformed type, reported with the node
    module, name = node_type.split(":", 1)
    if module != "spark_core" and not module.startswith("spark_core."):
        # Validation never imports code from a spec; only loading can tell.
        p.warn(
            path,
            f"node {target!r} has type {node_type!r}: loading checks that it is an "
            "agent node (a subclass of spark_core.agents.node:AgentNode)",
        )
        return
    from spark_core.agents.node import AgentNode

    try:  # spark_core's own modules: importing them runs no spec code
        cls = getattr(importlib.import_module(module), name, None)
    except ImportError:
        cls = None
    if not (isinstance(cls, type) and issubclass(cls, AgentNode)):
        p.error(path, f"node {target!r} has type {node_type!r}, not an agent node")


def _strategy_issues(p: Parser, path: str, strategy: ReasoningStrategySpec) -> None:
    """Check the strategy with the agents' own factory (its names and config keys)."""
    from spark_core.agents.errors import AgentConfigError
    from spark_core.agents.strategies import strategy_class, strategy_from_spec

    try:
        strategy_class(strategy.type)
    except AgentConfigError as exc:
        p.error(join_path(path, "type"), str(exc))
        return
    try:
        strategy_from_spec(strategy.type, strategy.config)
    except (AgentConfigError, TypeError, ValueError) as exc:
        p.error(join_path(path, "config"), str(exc))


def _deployment_issues(p: Parser, dep: MissionDeploymentSpec) -> None:
    if dep.target not in DEPLOYMENT_TARGETS:
        p.error("deployment.target", f"must be one of {', '.join(DEPLOYMENT_TARGETS)}")
    if dep.replicas < 1:
        p.error("deployment.replicas", "must be >= 1 to deploy")
    elif dep.replicas > 100:
        p.error("deployment.replicas", "must be <= 100")
    elif dep.target == "production" and dep.replicas < 2:
        p.warn(
            "deployment.replicas", "production with a single replica has no redundancy"
        )
    for key, value in dep.resources.items():
        where = f"deployment.resources.{key}"
        if key == "cpu" and not _CPU.fullmatch(value):
            p.error(where, f"{value!r} is not a CPU quantity (e.g. '2', '0.5', '500m')")
        elif key == "memory" and not _MEMORY.fullmatch(value):
            p.error(where, f"{value!r} is not a memory quantity (e.g. '512Mi', '4Gi')")
        elif key == "gpu" and not _INT.fullmatch(value):
            p.error(where, f"{value!r} is not a whole number of GPUs")
        elif key not in ("cpu", "memory", "gpu"):
            p.warn(where, "unknown resource (expected cpu, memory, gpu)")
    if dep.restart_policy not in RESTART_POLICIES:
        p.error(
            "deployment.restart_policy", f"must be one of {', '.join(RESTART_POLICIES)}"
        )
    for key, value in dep.environment.items():
        if not _ENV_NAME.fullmatch(key):
            p.error(
                f"deployment.environment.{key}",
                "is not a valid environment variable name",
            )
        elif value and _SECRET_NAME.search(key):
            # Never echo the value: it may be a real credential.
            p.warn(
                f"deployment.environment.{key}",
                "looks like a secret: keep credentials out of the spec and set them in the "
                "target environment",
            )


def _telemetry_issues(p: Parser, tel: MissionTelemetrySpec) -> None:
    if tel.backend not in TELEMETRY_BACKENDS:
        p.error("telemetry.backend", f"must be one of {', '.join(TELEMETRY_BACKENDS)}")
    if tel.enabled and tel.backend == "sqlite" and not tel.db_path:
        p.warn("telemetry.db_path", "a sqlite telemetry backend needs a db_path")


# --------------------------------------------------------------------------- modules
def _module_issues(
    graph: GraphSpec,
    mission: Optional[MissionSpec],
    allowed_modules: Iterable[str],
    allowed_tool_modules: Iterable[str],
) -> List[ValidationIssue]:
    """The references naming a module the loader would refuse (one rule: allowlist)."""
    node_prefixes = normalise_prefixes(allowed_modules)
    tool_prefixes = normalise_prefixes(allowed_tool_modules)
    base = "graph" if mission is not None else ""
    references: List[Tuple[str, str, Tuple[str, ...]]] = []
    for index, node in enumerate(graph.nodes):
        where = join_path(join_path(join_path(base, "nodes"), index), "type")
        references.append((where, node.type, node_prefixes))
    for index, tool in enumerate(graph.tools):
        where = join_path(join_path(join_path(base, "tools"), index), "reference")
        references.append((where, tool.reference or "", tool_prefixes))
    if mission is not None and mission.simulation is not None:
        for index, override in enumerate(mission.simulation.tools):
            where = f"simulation.tools[{index}].handler"
            references.append((where, override.handler or "", tool_prefixes))
    p = Parser()
    for where, reference, prefixes in references:
        if is_reference(reference):  # anything else has its own issue already
            refusal = module_refusal(reference.split(":", 1)[0], prefixes)
            if refusal is not None:
                p.error(where, refusal)
    return p.issues


# --------------------------------------------------------------------------- public API
def validate_graph(
    spec: Union[GraphSpec, Dict[str, Any]],
    *,
    semantic: bool = True,
    node_types: Optional[Iterable[str]] = None,
    allowed_modules: Optional[Iterable[str]] = None,
    allowed_tool_modules: Iterable[str] = (),
) -> List[ValidationIssue]:
    """Validate a graph spec.

    Args:
        spec: A :class:`GraphSpec` or its dict form.
        semantic: Also check meaning (unknown edge ends, unreachable nodes, unbounded loops).
        node_types: Extra registered node type names to accept.
        allowed_modules: When given, check every reference as ``SpecLoader`` would: node
            classes only from these module prefixes (pass ``spark_core`` too), tools only
            from ``allowed_tool_modules`` (see :mod:`spark_core.spec.allowlist`). None (the
            default) checks no module.
        allowed_tool_modules: Module prefixes tools may come from (with ``allowed_modules``).

    Returns:
        Every issue found (errors and warnings); empty when the spec is clean.
    """
    issues: List[ValidationIssue] = []
    graph: Optional[GraphSpec]
    if isinstance(spec, GraphSpec):
        graph, issues = _structural(GraphSpec, spec.to_dict())
    else:
        graph, issues = _structural(GraphSpec, spec)
    if graph is not None and semantic:
        issues += _graph_issues(graph, "", node_types)
    if graph is not None and allowed_modules is not None:
        issues += _module_issues(graph, None, allowed_modules, allowed_tool_modules)
    return issues


def validate_mission(
    spec: Union[MissionSpec, Dict[str, Any]],
    *,
    semantic: bool = True,
    check_deployment: bool = False,
    node_types: Optional[Iterable[str]] = None,
    allowed_modules: Optional[Iterable[str]] = None,
    allowed_tool_modules: Iterable[str] = (),
) -> List[ValidationIssue]:
    """Validate a mission spec.

    Args:
        spec: A :class:`MissionSpec` or its dict form.
        semantic: Also check meaning (graph checks, plan dependencies, strategy targets).
        check_deployment: Also check deployment readiness (target, replicas, resources).
        node_types: Extra registered node type names to accept.
        allowed_modules: When given, check every reference as ``SpecLoader`` would: node
            classes only from these module prefixes (pass ``spark_core`` too), tools and
            simulation handlers only from ``allowed_tool_modules``. None checks no module.
        allowed_tool_modules: Module prefixes tools and simulation handlers may come from.

    Returns:
        Every issue found (errors and warnings); empty when the spec is clean.
    """
    data = spec.to_dict() if isinstance(spec, MissionSpec) else spec
    mission, issues = _structural(MissionSpec, data)
    if mission is not None and (semantic or check_deployment):
        issues += _mission_issues(mission, node_types, check_deployment)
    if mission is not None and allowed_modules is not None:
        issues += _module_issues(
            mission.graph, mission, allowed_modules, allowed_tool_modules
        )
    return issues


def validate_spec(
    data: Dict[str, Any],
    *,
    semantic: bool = True,
    check_deployment: bool = False,
    allowed_modules: Optional[Iterable[str]] = None,
    allowed_tool_modules: Iterable[str] = (),
) -> List[ValidationIssue]:
    """Validate a dict that is either a mission (has ``mission_id``) or a graph.

    Args:
        data: The spec's dict form.
        semantic: Also check meaning.
        check_deployment: Also check deployment readiness (missions only).
        allowed_modules: When given, node class module prefixes (see
            :func:`validate_mission`); None checks no module.
        allowed_tool_modules: Tool and simulation handler module prefixes.

    Returns:
        Every issue found.
    """
    if isinstance(data, dict) and "mission_id" in data:
        return validate_mission(
            data,
            semantic=semantic,
            check_deployment=check_deployment,
            allowed_modules=allowed_modules,
            allowed_tool_modules=allowed_tool_modules,
        )
    return validate_graph(
        data,
        semantic=semantic,
        allowed_modules=allowed_modules,
        allowed_tool_modules=allowed_tool_modules,
    )


def _raise_on_errors(issues: Sequence[ValidationIssue], strict: bool) -> None:
    bad = [i for i in issues if i.severity == "error" or strict]
    if bad:
        raise SpecValidationError(bad)


def ensure_valid_graph(
    spec: Union[GraphSpec, Dict[str, Any]],
    *,
    strict: bool = False,
    node_types: Optional[Iterable[str]] = None,
    allowed_modules: Optional[Iterable[str]] = None,
    allowed_tool_modules: Iterable[str] = (),
) -> GraphSpec:
    """Validate a graph spec and return it parsed.

    Args:
        spec: A :class:`GraphSpec` or its dict form.
        strict: Treat warnings as errors.
        node_types: Extra registered node type names to accept.
        allowed_modules: Node class module prefixes (see :func:`validate_graph`); None
            checks no module.
        allowed_tool_modules: Tool module prefixes.

    Returns:
        The parsed spec.

    Raises:
        SpecValidationError: The spec has errors (or warnings, when strict).
    """
    issues = validate_graph(
        spec,
        node_types=node_types,
        allowed_modules=allowed_modules,
        allowed_tool_modules=allowed_tool_modules,
    )
    _raise_on_errors(issues, strict)
    return spec if isinstance(spec, GraphSpec) else GraphSpec.from_dict(spec)


def ensure_valid_mission(
    spec: Union[MissionSpec, Dict[str, Any]],
    *,
    strict: bool = False,
    check_deployment: bool = False,
    allowed_modules: Optional[Iterable[str]] = None,
    allowed_tool_modules: Iterable[str] = (),
) -> MissionSpec:
    """Validate a mission spec and return it parsed.

    Args:
        spec: A :class:`MissionSpec` or its dict form.
        strict: Treat warnings as errors.
        check_deployment: Also check deployment readiness.
        allowed_modules: Node class module prefixes (see :func:`validate_mission`); None
            checks no module.
        allowed_tool_modules: Tool and simulation handler module prefixes.

    Returns:
        The parsed spec.

    Raises:
        SpecValidationError: The spec has errors (or warnings, when strict).
    """
    issues = validate_mission(
        spec,
        check_deployment=check_deployment,
        allowed_modules=allowed_modules,
        allowed_tool_modules=allowed_tool_modules,
    )
    _raise_on_errors(issues, strict)
    return spec if isinstance(spec, MissionSpec) else MissionSpec.from_dict(spec)
