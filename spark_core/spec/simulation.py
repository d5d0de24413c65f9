"""Run a mission end to end with simulated tools ("simulate first").

Every tool of the graph is replaced by a stand-in built from the mission's
``simulation.tools`` overrides (a ``static_response`` or a ``handler`` reference) or from the
``overrides=`` given in Python, and every agent's model by a ``ScriptedModel`` playing the
replies in ``simulation.models`` (or the ``models=`` given in Python). A tool without a
stand-in, or an agent whose model would call a real endpoint and has no script, stops the
simulation before it starts (unless ``allow_real_tools=True``), so a simulation never reaches
an external system by accident. The report says which tools and models were simulated and how
often they were called.

```python
report = run_simulation(load_mission_spec("mission.json"), {"query": "spark"})
print(report.status, report.tool_calls)   # completed {'search': 1}
```
"""

from __future__ import annotations

import copy
import inspect
from dataclasses import dataclass, field
from typing import Any, Dict, List, Mapping, Optional, Tuple, Union

from spark_core.agents.factory import replace_models
from spark_core.errors import RunPaused, RunStopped, SparkError
from spark_core.models.scripted import EchoModel, ScriptedModel
from spark_core.spec.errors import SpecError
from spark_core.spec.loader import SpecLoader
from spark_core.spec.models import GraphSpec, MissionSpec, SimulationToolOverrideSpec
from spark_core.utils import arun

__all__ = [
    "SimulatedTool",
    "SimulationReport",
    "run_simulation",
    "run_simulation_async",
]


class SimulatedTool:
    """A stand-in for a tool: returns a fixed response or calls a handler, and counts calls.

    Args:
        name: The tool's name.
        static_response: Returned (a fresh copy) on every call when ``handler`` is None.
        handler: Called with the tool's keyword arguments instead (may be ``async``).
    """

    def __init__(
        self,
        name: str,
        static_response: Any = None,
        handler: Any = None,
        log: Optional[List[Dict[str, Any]]] = None,
    ) -> None:
        """Create the stand-in (see the class docstring; ``log`` is a shared call list)."""
        self.name = name
        self.static_response = static_response
        self.handler = handler
        self.calls: List[Dict[str, Any]] = []
        self.log = log
        self.__name__ = name

    def __repr__(self) -> str:
        kind = "handler" if self.handler is not None else "static"
        return f"SimulatedTool({self.name!r}, {kind}, calls={len(self.calls)})"

    async def __call__(self, **arguments: Any) -> Any:
        """Record the call and answer it.

        Args:
            **arguments: The tool's arguments.

        Returns:
            The handler's result, or a copy of the static response.
        """
        self.calls.append(copy.deepcopy(arguments))
        if self.log is not None:
            self.log.append({"tool": self.name, "arguments": copy.deepcopy(arguments)})
        if self.handler is None:
            return copy.deepcopy(self.static_response)
        result = self.handler(**arguments)
        if inspect.isawaitable(result):
            result = await result
        return result


@dataclass
class SimulationReport:
    """What a simulation run did.

    Attributes:
        graph_id: The graph's id.
        mission_id: The mission's id (None for a bare graph).
        run_id: The run's id.
        status: ``completed``, ``failed`` (also a policy violation), ``paused`` or
            ``cancelled`` (a guardrail or another stop).
        output: The final output.
        outputs: Node id → last output.
        tool_calls: Simulated tool name → number of calls (0 for unused tools).
        calls: Every simulated call in order: ``{"tool", "arguments"}``.
        real_tools: Tools that ran for real (only with ``allow_real_tools=True``).
        model_calls: Agent node id → number of calls to its scripted stand-in model.
        real_models: Agent nodes whose real model ran (only with ``allow_real_tools=True``).
        plan: The mission plan snapshot after the run, when the mission has a plan.
        error: The error text when the run did not complete.
    """

    graph_id: str
    mission_id: Optional[str]
    run_id: Optional[str]
    status: str
    output: Any = None
    outputs: Dict[str, Any] = field(default_factory=dict)
    tool_calls: Dict[str, int] = field(default_factory=dict)
    calls: List[Dict[str, Any]] = field(default_factory=list)
    real_tools: List[str] = field(default_factory=list)
    model_calls: Dict[str, int] = field(default_factory=dict)
    real_models: List[str] = field(default_factory=list)
    plan: Optional[Dict[str, Any]] = None
    error: Optional[str] = None

    @property
    def ok(self) -> bool:
        """Whether the run completed."""
        return self.status == "completed"

    def to_dict(self) -> Dict[str, Any]:
        """Return the report as JSON-ready data.

        Returns:
            A dict with every attribute.
        """
        return {
            "graph_id": self.graph_id,
            "mission_id": self.mission_id,
            "run_id": self.run_id,
            "status": self.status,
            "output": self.output,
            "outputs": self.outputs,
            "tool_calls": dict(self.tool_calls),
            "calls": list(self.calls),
            "real_tools": list(self.real_tools),
            "model_calls": dict(self.model_calls),
            "real_models": list(self.real_models),
            "plan": self.plan,
            "error": self.error,
        }


def _stand_ins(
    loader: Any,
    specs: List[SimulationToolOverrideSpec],
    overrides: Optional[Mapping[str, Any]],
    log: List[Dict[str, Any]],
) -> Dict[str, SimulatedTool]:
    tools: Dict[str, SimulatedTool] = {}
    for spec in specs:
        handler = (
            None if spec.handler is None else loader.resolve(spec.handler, kind="tool")
        )
        if handler is not None and not callable(handler):
            raise SpecError(f"simulation handler {spec.handler!r} is not callable")
        tools[spec.name] = SimulatedTool(spec.name, spec.static_response, handler, log)
    for name, value in (overrides or {}).items():
        if callable(value):
            tools[name] = SimulatedTool(name, handler=value, log=log)
        else:
            tools[name] = SimulatedTool(name, static_response=value, log=log)
    return tools


def _script_models(
    graph: Any, scripts: Mapping[str, Any]
) -> Tuple[Dict[str, Any], List[str]]:
    """Swap each agent's model for its scripted stand-in.

    Returns the stand-ins by node id and the agent nodes left with a model that is not an
    offline one (it would call a real endpoint).
    """
    stand_ins: Dict[str, Any] = {}
    real: List[str] = []

    def swap(node_id: str, model: Any) -> Any:
        script = scripts.get(node_id)
        if script is None:
            if not isinstance(model, (ScriptedModel, EchoModel)):
                real.append(node_id)
            return model
        if not callable(getattr(script, "complete", None)):
            try:
                script = ScriptedModel(script)
            except (TypeError, ValueError) as exc:
                raise SpecError(f"simulation model for {node_id!r}: {exc}") from None
        stand_ins[node_id] = script
        return script

    replace_models(graph, swap)
    unknown = sorted(set(scripts) - set(stand_ins))
    if unknown:
        raise SpecError(
            "simulation models given for "
            + ", ".join(repr(n) for n in unknown)
            + ", which are not agent nodes"
        )
    return stand_ins, real


async def run_simulation_async(
    spec: Union[MissionSpec, GraphSpec],
    inputs: Any = None,
    *,
    loader: Any = None,
    overrides: Optional[Mapping[str, Any]] = None,
    models: Optional[Mapping[str, Any]] = None,
    allow_real_tools: bool = False,
    state_backend: Any = None,
) -> SimulationReport:
    """Run a mission (or graph) once with simulated tools.

    Args:
        spec: The mission or graph.
        inputs: The run input (default: the mission's ``simulation.inputs``).
        loader: A :class:`~spark_core.spec.loader.SpecLoader` (default: a new one).
        overrides: Extra stand-ins by tool name: a callable is a handler, anything else a
            static response. They win over the spec's overrides.
        models: Extra stand-in models by agent node id: a model, or a ``ScriptedModel``
            script. They win over the spec's ``simulation.models``.
        allow_real_tools: Let tools without a stand-in, and agents whose model calls an
            endpoint and has no script, run for real.
        state_backend: State backend (in memory by default).

    Returns:
        The report (a failed run is reported, not raised).

    Raises:
        SpecError: Simulation is disabled, a tool or an agent's model has no stand-in, a
            model stand-in names no agent node, or the spec cannot load.
    """
    loader = loader if loader is not None else SpecLoader()
    mission = spec if isinstance(spec, MissionSpec) else None
    graph_spec = spec.graph if isinstance(spec, MissionSpec) else spec
    sim = mission.simulation if mission is not None else None
    if sim is not None and not sim.enabled:
        raise SpecError(
            "simulation is disabled for this mission (simulation.enabled is false)"
        )
    log: List[Dict[str, Any]] = []
    stand_ins = _stand_ins(loader, list(sim.tools) if sim else [], overrides, log)
    declared = [t.name for t in graph_spec.tools]
    missing = [name for name in declared if name not in stand_ins]
    if missing and not allow_real_tools:
        raise SpecError(
            "no simulated response for tool(s) "
            + ", ".join(repr(m) for m in missing)
            + ": add simulation.tools overrides (or allow real tools)"
        )
    if mission is not None:
        graph = loader.load_mission(
            mission, tool_overrides=stand_ins, state_backend=state_backend
        )
    else:
        graph = loader.load_graph(
            graph_spec, tool_overrides=stand_ins, state_backend=state_backend
        )
    scripts: Dict[str, Any] = dict(sim.models) if sim is not None else {}
    scripts.update(models or {})
    model_stand_ins, real_models = _script_models(graph, scripts)
    if real_models and not allow_real_tools:
        raise SpecError(
            "no scripted model for agent node(s) "
            + ", ".join(repr(n) for n in real_models)
            + ": add simulation.models replies (or allow real tools)"
        )
    if inputs is None and sim is not None:
        inputs = copy.deepcopy(sim.inputs)
    report = SimulationReport(
        graph_id=graph_spec.id,
        mission_id=mission.mission_id if mission else None,
        run_id=None,
        status="completed",
        real_tools=missing,
        real_models=real_models,
    )
    try:
        result = await graph.run(inputs)
        report.run_id = result.run_id
        report.output = result.content
        report.outputs = dict(result.outputs)
    except RunPaused as exc:
        report.status, report.error, report.run_id = "paused", str(exc), exc.run_id
    except RunStopped as exc:
        report.status, report.error = exc.run_status, str(exc)
        report.run_id = exc.run_id
    except SparkError as exc:
        report.status, report.error, report.run_id = "failed", str(exc), exc.run_id
    report.tool_calls = {name: len(tool.calls) for name, tool in stand_ins.items()}
    report.calls = log
    report.model_calls = {
        node_id: len(getattr(model, "requests", ()))
        for node_id, model in model_stand_ins.items()
    }
    if mission is not None and mission.plan is not None and mission.plan.steps:
        snapshot = await graph.state.get(mission.plan.state_key, None)
        report.plan = snapshot if isinstance(snapshot, dict) else None
    return report


def run_simulation(
    spec: Union[MissionSpec, GraphSpec],
    inputs: Any = None,
    **kwargs: Any,
) -> SimulationReport:
    """Synchronous :func:`run_simulation_async` (works in notebooks too).

    Args:
        spec: The mission or graph.
        inputs: The run input.
        **kwargs: As for :func:`run_simulation_async`.

    Returns:
        The report.
    """
    return arun(run_simulation_async(spec, inputs, **kwargs))
