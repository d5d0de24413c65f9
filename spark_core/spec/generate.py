"""Build a mission scaffold from a one-line description (``spark-spec mission-generate``)."""

from __future__ import annotations

import re
from typing import List, Optional, Sequence

from spark_core.spec.errors import SpecError
from spark_core.spec.models import (
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
    NodeSpec,
    ReasoningStrategySpec,
    SimulationToolOverrideSpec,
    StateFieldSpec,
)

__all__ = ["DEFAULT_PLAN", "generate_mission", "slugify"]

#: Plan used when the caller gives none.
DEFAULT_PLAN = ("prepare", "execute", "report")
#: Node type of an agent in a spec (what strategy bindings target).
_AGENT_NODE_TYPE = "spark_core.agents.node:AgentNode"

_STEP_ID = re.compile(r"^[A-Za-z_][A-Za-z0-9_\-]*$")
#: Replies of the scaffold agent's scripted model in ``simulation-run``, by strategy: what
#: each strategy asks for (Plan-and-Solve: a numbered plan, then the answer).
_SCRIPTS = {
    "plan_and_solve": [
        "1. Gather what the request needs\n2. Work out the answer",
        "Final Answer: (simulated) replace simulation.models with realistic replies",
    ],
    "react": [
        "Final Answer: (simulated) replace simulation.models with realistic replies"
    ],
    "chain_of_thought": [
        "Thinking it through.\n"
        "Final Answer: (simulated) replace simulation.models with realistic replies"
    ],
}


def slugify(text: str, *, limit: int = 40) -> str:
    """Turn free text into an id-friendly slug (``"ETL Pipeline!"`` → ``"etl-pipeline"``).

    Args:
        text: The text.
        limit: Maximum length.

    Returns:
        The slug (``"mission"`` when nothing usable is left).
    """
    slug = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:limit].rstrip("-")
    return slug or "mission"


def _linear_graph(
    graph_id: str,
    steps: Sequence[MissionPlanStepSpec],
    agent: Optional[str] = None,
    description: str = "",
) -> GraphSpec:
    nodes = [
        NodeSpec(
            id=step.id,
            type="step",
            params={"description": step.description},
        )
        for step in steps
    ]
    edges = [EdgeSpec(source=a.id, target=b.id) for a, b in zip(steps, steps[1:])]
    if agent is not None:
        nodes.append(
            NodeSpec(
                id=agent,
                type=_AGENT_NODE_TYPE,
                # An offline model, so the scaffold runs anywhere without credentials.
                params={
                    "model": {"provider": "echo"},
                    "system_prompt": description,
                    "prompt_key": "request",
                },
                description="Scaffold agent: replace the echo model with a real one, "
                'e.g. {"provider": "openai", "model_id": "gpt-4o-mini"}',
            )
        )
        edges.append(EdgeSpec(source=steps[-1].id, target=agent))
    return GraphSpec(
        id=graph_id,
        start=steps[0].id,
        nodes=nodes,
        edges=edges,
        description="Scaffold: one 'step' node per plan step; replace them with real nodes.",
    )


def generate_mission(
    description: str,
    *,
    mission_id: Optional[str] = None,
    strategy: Optional[str] = None,
    graph: Optional[GraphSpec] = None,
    plan: Optional[Sequence[str]] = None,
    version: str = "0.1.0",
) -> MissionSpec:
    """Build a valid mission scaffold.

    Without ``graph``, the graph is a linear chain of built-in ``step`` nodes, one per plan
    step (node id = step id), so the plan advances as the graph runs; with a ``strategy``,
    an agent node (``agent``, an offline echo model to replace) follows them, answers the
    run's ``request`` input, and gets scripted ``simulation.models`` replies so
    ``simulation-run`` completes offline. With ``graph``, the plan steps are left unmapped
    unless their ids match node ids.

    Args:
        description: What the mission does.
        mission_id: The id (default: ``mission.<slug of description>``).
        strategy: A reasoning strategy (e.g. ``plan_and_solve``) bound to every agent node
            of ``graph`` (type ``...:AgentNode``), or to the scaffold's agent node.
        graph: Use this graph instead of the scaffold chain.
        plan: Plan step ids in order (each depends on the previous); default
            ``prepare, execute, report`` (or the graph's nodes in order when a graph is given).
        version: Semantic version.

    Returns:
        The mission.

    Raises:
        SpecError: A plan step id is invalid or repeated, the strategy is unknown, or a
            strategy is given for a graph without agent nodes.
    """
    if not isinstance(description, str) or not description.strip():
        raise SpecError("the mission description must not be empty")
    if plan is None:
        plan = [n.id for n in graph.nodes] if graph is not None else list(DEFAULT_PLAN)
    ids = [p.strip() for p in plan if p.strip()]
    if not ids:
        raise SpecError("the plan needs at least one step")
    for step_id in ids:
        if not _STEP_ID.fullmatch(step_id):
            raise SpecError(
                f"invalid plan step id {step_id!r} (letters, digits, '_' and '-')"
            )
    if len(set(ids)) != len(ids):
        raise SpecError("plan step ids must be unique")
    steps: List[MissionPlanStepSpec] = []
    for index, step_id in enumerate(ids):
        steps.append(
            MissionPlanStepSpec(
                id=step_id,
                description=f"{step_id.replace('_', ' ').replace('-', ' ').capitalize()}",
                depends_on=[ids[index - 1]] if index else [],
            )
        )
    slug = slugify(description)
    if strategy is not None:
        from spark_core.agents.errors import AgentConfigError
        from spark_core.agents.strategies import strategy_class

        try:  # the names specs accept (cot is chain_of_thought), written canonically
            strategy = strategy_class(strategy).type_name
        except AgentConfigError as exc:
            raise SpecError(str(exc)) from None
    scaffold_agent = None
    if graph is None and strategy is not None:
        scaffold_agent = "agent"
        while scaffold_agent in ids:  # a plan step may already be called "agent"
            scaffold_agent += "_node"
    graph_spec = (
        graph
        if graph is not None
        else _linear_graph(slug, steps, scaffold_agent, description)
    )
    strategies = []
    if strategy is not None:
        # Bindings configure agents (the loader rejects any other target).
        agents = [n.id for n in graph_spec.nodes if n.type.endswith(":AgentNode")]
        if not agents:
            raise SpecError(
                f"strategy {strategy!r} binds agent nodes (type '{_AGENT_NODE_TYPE}'); "
                f"graph {graph_spec.id!r} has none"
            )
        strategies = [
            MissionStrategyBindingSpec(
                target=target,
                strategy=ReasoningStrategySpec(type=strategy),
                reference=f"nodes.{target}",
            )
            for target in agents
        ]
    simulation = MissionSimulationSpec(
        enabled=True,
        tools=[
            SimulationToolOverrideSpec(
                name=t.name,
                static_response={"simulated": True, "tool": t.name},
                description="scaffold response; edit to match the real tool",
            )
            for t in graph_spec.tools
        ],
        inputs={"request": description},
        models=(
            {scaffold_agent: list(_SCRIPTS[strategy])}
            if scaffold_agent is not None and strategy is not None
            else {}
        ),
    )
    return MissionSpec(
        mission_id=mission_id if mission_id is not None else f"mission.{slug}",
        version=version,
        graph=graph_spec,
        description=description,
        plan=MissionPlanSpec(steps=steps),
        state_schema=MissionStateSchemaSpec(
            fields={
                "last_step": StateFieldSpec(
                    type="str", description="Id of the last scaffold step that ran"
                )
            }
        ),
        strategies=strategies,
        telemetry=MissionTelemetrySpec(enabled=True, backend="memory"),
        deployment=MissionDeploymentSpec(
            target="development", replicas=1, resources={"cpu": "1", "memory": "512Mi"}
        ),
        simulation=simulation,
    )
