"""The backend's flow definitions (``flow_id, name, nodes, entry_point, ...``) as local graphs.

The backend runs a definition's nodes in dependency order, each on its agent, with the
run's input merged with the outputs of the nodes it depends on; a failed node fails the run.
:func:`definition_factory` builds a spark_core graph doing the same: one node per definition
node (a join where a node depends on several), started at ``entry_point``. What a graph cannot
express the way the backend runs it (a node without an agent, several nodes without
dependencies) is refused with a 422 naming the node.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any, Callable, Dict, List, Mapping, Optional

from ai_spine.local.agents import AGENT_TYPES
from ai_spine.validation import Entry, detail, expected, id_problem

if TYPE_CHECKING:  # pragma: no cover
    from spark_core.graphs import Graph

__all__ = ["is_definition", "definition_problems", "definition_factory", "normalise"]

#: Runs one node on its agent: (agent_id, execution_id, node_id, input, config) -> output.
StepRunner = Callable[[str, str, str, Dict[str, Any], Dict[str, Any]], Any]
_RUN_INPUT = "ai_spine.run_input"


def is_definition(body: Any) -> bool:
    """Whether a flow body is the backend's definition form (``nodes``), not a ``spec``."""
    return isinstance(body, Mapping) and "nodes" in body and "spec" not in body


def definition_problems(
    body: Mapping[str, Any], agent_exists: Callable[[str], bool]
) -> List[Entry]:
    """The 422 entries for a flow definition (empty when it can run locally).

    Args:
        body: The definition.
        agent_exists: Whether an agent id is registered (the backend checks it too).

    Returns:
        FastAPI-shaped error entries.
    """
    errors: List[Entry] = []
    problem = id_problem(body.get("flow_id"), "flow_id", "body")
    if problem is not None:
        errors.append(problem)
    for name in ("name", "description"):  # both required by the backend's model
        if not isinstance(body.get(name), str):
            errors.append(detail(("body", name), "Field required", "missing"))
    for name, kind in (("version", str), ("metadata", dict), ("exit_points", list)):
        if name in body and not isinstance(body[name], kind):
            errors.append(
                detail(
                    ("body", name), f"{name} must be a {kind.__name__}", "type_error"
                )
            )
    nodes = body.get("nodes")
    if not isinstance(nodes, list) or not nodes:
        errors.append(
            detail(("body", "nodes"), "nodes must be a non-empty list", "list_type")
        )
        return errors
    ids: List[str] = []
    for i, node in enumerate(nodes):
        loc = ("body", "nodes", i)
        if not isinstance(node, dict) or not isinstance(node.get("id"), str):
            errors.append(detail(loc + ("id",), "Field required", "missing"))
            continue
        ids.append(node["id"])
        if node.get("type") not in AGENT_TYPES:
            errors.append(
                detail(
                    loc + ("type",),
                    f"Input should be {', '.join(repr(t) for t in AGENT_TYPES)}",
                    "enum",
                    expected(AGENT_TYPES),
                )
            )
        agent = node.get("agent_id")
        if not isinstance(agent, str):
            errors.append(
                detail(
                    loc + ("agent_id",),
                    f"node {node['id']!r} has no agent_id: every node runs on an agent",
                    "missing",
                )
            )
        elif not agent_exists(agent):
            errors.append(
                detail(
                    loc + ("agent_id",),
                    f"Agent '{agent}' not found (register it first)",
                    "value_error",
                )
            )
        deps = node.get("depends_on", [])
        if not isinstance(deps, list) or not all(isinstance(d, str) for d in deps):
            errors.append(
                detail(
                    loc + ("depends_on",),
                    "depends_on must be a list of str",
                    "list_type",
                )
            )
        if not isinstance(node.get("config", {}), dict):
            errors.append(
                detail(loc + ("config",), "config must be an object", "dict_type")
            )
    if errors:
        return errors
    if len(set(ids)) != len(ids):
        errors.append(
            detail(("body", "nodes"), "node ids must be unique", "value_error")
        )
    known = set(ids)
    for i, node in enumerate(nodes):
        for dep in node.get("depends_on", []):
            if dep not in known:
                errors.append(
                    detail(
                        ("body", "nodes", i, "depends_on"),
                        f"node {node['id']!r} depends on unknown node {dep!r}",
                        "value_error",
                    )
                )
    entry = body.get("entry_point")
    roots = [n["id"] for n in nodes if not n.get("depends_on")]
    if entry not in known:
        errors.append(
            detail(
                ("body", "entry_point"), "entry_point must name a node", "value_error"
            )
        )
    elif roots != [entry]:
        errors.append(
            detail(
                ("body", "entry_point"),
                f"only the entry point may have no dependencies; these have none: {roots}",
                "value_error",
            )
        )
    for exit_id in body.get("exit_points", []):
        if exit_id not in known:
            errors.append(
                detail(
                    ("body", "exit_points"),
                    f"exit point {exit_id!r} is not a node",
                    "value_error",
                )
            )
    if not errors and _has_cycle(nodes):
        errors.append(
            detail(
                ("body", "nodes"), "the nodes' dependencies form a cycle", "value_error"
            )
        )
    return errors


def normalise(body: Mapping[str, Any]) -> Dict[str, Any]:
    """The backend's ``FlowDefinition.dict()`` of a checked definition (defaults filled)."""
    return {
        "flow_id": body["flow_id"],
        "name": body["name"],
        "description": body["description"],
        "version": body.get("version", "1.0.0"),
        "nodes": [
            {
                "id": n["id"],
                "agent_id": n["agent_id"],
                "type": n["type"],
                "depends_on": list(n.get("depends_on", [])),
                "config": dict(n.get("config", {})),
                "conditions": n.get("conditions"),
            }
            for n in body["nodes"]
        ],
        "entry_point": body["entry_point"],
        "exit_points": list(body.get("exit_points", [])),
        "metadata": dict(body.get("metadata", {})),
    }


def definition_factory(
    definition: Mapping[str, Any], run_step: StepRunner
) -> Callable[[], "Graph"]:
    """A factory of fresh graphs running a checked, normalised definition.

    Args:
        definition: What :func:`normalise` returned.
        run_step: Runs one node on its agent (blocking; called in a worker thread).

    Returns:
        A zero-argument callable returning a new Graph.
    """
    from spark_core.graphs import Graph
    from spark_core.nodes import ExecutionContext, JoinNode, Node

    class AgentStep(Node):
        """One definition node: its agent gets the run's input and its dependencies'."""

        def __init__(self, spec: Dict[str, Any], entry: bool) -> None:
            super().__init__(spec["id"])
            self.spec = spec
            self.entry = entry

        async def process(self, context: ExecutionContext) -> Any:
            return await _step(self.spec, self.entry, context, run_step)

    class AgentJoin(JoinNode):
        """A definition node depending on several nodes."""

        def __init__(self, spec: Dict[str, Any]) -> None:
            super().__init__(spec["id"])
            self.spec = spec

        async def process(self, context: ExecutionContext) -> Any:
            return await _step(self.spec, False, context, run_step)

    nodes: List[Dict[str, Any]] = list(definition["nodes"])

    def build() -> "Graph":
        made: Dict[str, Any] = {}
        for spec in nodes:
            deps = spec["depends_on"]
            made[spec["id"]] = (
                AgentJoin(spec)
                if len(deps) > 1
                else AgentStep(spec, spec["id"] == definition["entry_point"])
            )
        for spec in nodes:
            for dep in spec["depends_on"]:
                made[dep] >> made[spec["id"]]
        return Graph(made[definition["entry_point"]])

    return build


async def _step(
    spec: Dict[str, Any], entry: bool, context: Any, run_step: StepRunner
) -> Any:
    if entry:
        data = dict(context.inputs.content or {})
        context.graph_state.set_sync(_RUN_INPUT, data)
    else:
        data = dict(context.graph_state.get_sync(_RUN_INPUT) or {})
        content = context.inputs.content
        parents = content if len(spec["depends_on"]) > 1 else {"": content}
        for out in parents.values():  # as the backend: input_data.update(dep output)
            if isinstance(out, dict):
                data.update(out)
    output = await asyncio.get_running_loop().run_in_executor(
        None,
        run_step,
        spec["agent_id"],
        str(context.run_id),
        spec["id"],
        data,
        spec["config"],
    )
    return output if isinstance(output, dict) else {"output": output}


def _has_cycle(nodes: List[Dict[str, Any]]) -> bool:
    deps = {n["id"]: list(n.get("depends_on", [])) for n in nodes}
    state: Dict[str, int] = {}  # 1: visiting, 2: done

    for start in deps:
        stack = [(start, iter(deps[start]))]
        if state.get(start) == 2:
            continue
        state[start] = 1
        while stack:
            node, children = stack[-1]
            child: Optional[str] = next(children, None)
            if child is None:
                state[node] = 2
                stack.pop()
            elif state.get(child) == 1:
                return True
            elif state.get(child) != 2:
                state[child] = 1
                stack.append((child, iter(deps[child])))
    return False
