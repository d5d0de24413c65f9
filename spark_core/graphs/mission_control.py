"""Mission control: a plan that tracks a run, and guardrails that stop a runaway run.

* :class:`MissionPlan` / :class:`PlanStep` — steps with dependencies (unknown or cyclic
  dependencies are :class:`PlanValidationError`), statuses ``pending``, ``in_progress``,
  ``completed``, ``blocked`` (waiting on dependencies) and ``failed``; ``render_text()``,
  ``snapshot()`` / ``MissionPlan.from_snapshot(...)``.
* :class:`PlanManager` — a graph observer that advances the plan as nodes run (a step maps
  to the node with the same id, or to ``PlanStep(nodes=[...])`` / ``step_nodes={...}``;
  a step named after no node is advanced by hand; ``attach`` refuses steps mapped to nodes
  the graph lacks and step ids that look like misspelt node ids) and keeps the snapshot in
  graph state (``mission_plan``), so it is persisted and resumed. A step completes when its
  nodes have completed *and* its dependencies are completed: a step whose nodes finished
  first stays ``blocked`` and completes as soon as its dependencies do.
* :class:`Guardrails` / :class:`BudgetGuardrail` — limits on node executions, run time,
  reported cost (``context.report_cost(usd, tokens=...)``) and tokens. A breach stops the run
  with :class:`GuardrailBreachError` naming the limit, the measured value and the threshold.
  Limits hold over the whole run: the usage so far is kept in graph state
  (``_spark_guardrails``, committed with each step), so ``graph.resume`` keeps counting where
  the run stopped, also in another process. Run time is the time spent running (not the time
  a run sat paused), checked between nodes (bound single slow nodes with a timeout
  capability).
* :class:`MissionControl` — attaches a plan manager and guardrails in one call.
"""

from __future__ import annotations

import datetime as _dt
import difflib
import math
import time
from dataclasses import dataclass, field
from typing import (
    Any,
    Callable,
    Dict,
    Iterable,
    Iterator,
    List,
    Mapping,
    Optional,
    Sequence,
    Set,
    Tuple,
    Union,
)

from spark_core.errors import RunStopped, SparkError
from spark_core.graphs.observers import GraphObserver, RunInfo

__all__ = [
    "PlanStep",
    "MissionPlan",
    "PlanManager",
    "PlanValidationError",
    "Guardrails",
    "BudgetGuardrail",
    "BudgetGuardrailConfig",
    "GuardrailBreachError",
    "MissionControl",
    "STEP_STATUSES",
    "misspelt_node",
]

PENDING = "pending"
IN_PROGRESS = "in_progress"
COMPLETED = "completed"
BLOCKED = "blocked"
FAILED = "failed"
STEP_STATUSES = (PENDING, IN_PROGRESS, COMPLETED, BLOCKED, FAILED)
_MARKS = {
    PENDING: "[ ]",
    IN_PROGRESS: "[>]",
    COMPLETED: "[x]",
    BLOCKED: "[-]",
    FAILED: "[!]",
}


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="milliseconds")


class PlanValidationError(SparkError, ValueError):
    """A mission plan is invalid (duplicate, unknown or cyclic step ids, bad status)."""


class GuardrailBreachError(RunStopped):
    """A guardrail limit was exceeded; the run is stopped (never retried).

    Attributes:
        limit: Name of the limit, e.g. ``"max_cost_usd"``.
        value: The measured value that breached it.
        threshold: The configured limit.
        node_id: The node being run when the breach was detected, if any.
    """

    def __init__(
        self,
        limit: str,
        value: float,
        threshold: float,
        *,
        node_id: Optional[str] = None,
        run_id: Optional[str] = None,
    ) -> None:
        self.limit = limit
        self.value = value
        self.threshold = threshold
        self.node_id = node_id
        where = f" at node {node_id!r}" if node_id else ""
        super().__init__(
            f"guardrail {limit} breached{where}: measured {_fmt(value)} > limit {_fmt(threshold)}"
        )
        self.run_id = run_id

    def stop_event(self) -> Optional[Tuple[str, Dict[str, Any]]]:
        """Telemetry's ``guardrail.breach`` event: the limit, value, threshold and node.

        Returns:
            The event name and its attributes.
        """
        return "guardrail.breach", {
            "limit": self.limit,
            "value": self.value,
            "threshold": self.threshold,
            "node_id": self.node_id,
        }


def _fmt(value: float) -> str:
    if isinstance(value, float) and not value.is_integer():
        return f"{value:.6g}"
    return str(int(value)) if isinstance(value, float) else str(value)


def misspelt_node(step_id: str, unmapped_nodes: Iterable[str]) -> Optional[str]:
    """The node a plan step's id looks like a misspelling of (``upper`` for ``Upper``).

    Spec validation applies the same rule as :meth:`PlanManager.check_graph`, so a mission
    that validates also attaches.

    Args:
        step_id: The id of a step mapped to no node explicitly and named after none.
        unmapped_nodes: The graph's node ids that no plan step covers.

    Returns:
        The node id meant, or ``None`` when the id resembles none of them.
    """
    close = difflib.get_close_matches(step_id, list(unmapped_nodes), n=1, cutoff=0.8)
    return close[0] if close else None


@dataclass
class PlanStep:
    """One step of a mission plan.

    Attributes:
        id: Step id (by default also the id of the node that performs it).
        description: What the step does.
        depends_on: Ids of steps that must complete first.
        status: ``pending``, ``in_progress``, ``completed``, ``blocked`` or ``failed``.
        nodes: Node ids performing this step (default: ``[id]``).
        started_at: ISO time the step went in progress.
        completed_at: ISO time the step completed (or failed).
    """

    id: str
    description: str = ""
    depends_on: List[str] = field(default_factory=list)
    status: str = PENDING
    nodes: List[str] = field(default_factory=list)
    started_at: Optional[str] = None
    completed_at: Optional[str] = None

    def __post_init__(self) -> None:
        if not isinstance(self.id, str) or not self.id:
            raise PlanValidationError(
                f"plan step id must be a non-empty string: {self.id!r}"
            )
        if isinstance(self.depends_on, str) or not isinstance(
            self.depends_on, (list, tuple)
        ):
            raise PlanValidationError(
                f"step {self.id!r}: depends_on must be a list of step ids"
            )
        self.depends_on = list(self.depends_on)
        self.nodes = list(self.nodes or [])
        if self.status not in STEP_STATUSES:
            raise PlanValidationError(
                f"step {self.id!r}: unknown status {self.status!r}; expected {STEP_STATUSES}"
            )

    def to_dict(self) -> Dict[str, Any]:
        """Return the JSON form used in snapshots."""
        out: Dict[str, Any] = {
            "id": self.id,
            "description": self.description,
            "depends_on": list(self.depends_on),
            "status": self.status,
        }
        if self.nodes:
            out["nodes"] = list(self.nodes)
        if self.started_at:
            out["started_at"] = self.started_at
        if self.completed_at:
            out["completed_at"] = self.completed_at
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> PlanStep:
        """Build a step from a snapshot entry (or a spec's step dict).

        Raises:
            PlanValidationError: The entry is not a mapping or lacks an id.
        """
        if not isinstance(data, Mapping) or "id" not in data:
            raise PlanValidationError(
                f"plan step must be a mapping with an 'id': {data!r}"
            )
        return cls(
            id=data["id"],
            description=data.get("description", "") or "",
            depends_on=list(data.get("depends_on") or []),
            status=data.get("status", PENDING) or PENDING,
            nodes=list(data.get("nodes") or []),
            started_at=data.get("started_at"),
            completed_at=data.get("completed_at"),
        )


class MissionPlan:
    """Validated steps with dependencies.

    Args:
        steps: PlanStep objects (or their dict form).

    Raises:
        PlanValidationError: Duplicate ids, unknown dependencies, or a dependency cycle
            (the message shows the cycle).
    """

    def __init__(
        self, steps: Iterable[Union[PlanStep, Mapping[str, Any]]] = ()
    ) -> None:
        self._steps: Dict[str, PlanStep] = {}
        for item in steps:
            step = item if isinstance(item, PlanStep) else PlanStep.from_dict(item)
            if step.id in self._steps:
                raise PlanValidationError(f"duplicate plan step id {step.id!r}")
            self._steps[step.id] = step
        for step in self._steps.values():
            unknown = [d for d in step.depends_on if d not in self._steps]
            if unknown:
                raise PlanValidationError(
                    f"step {step.id!r} depends on unknown step(s) {unknown}"
                )
        cycle = self._find_cycle()
        if cycle:
            raise PlanValidationError(
                "plan has a dependency cycle (step -> its dependency): "
                + " -> ".join(cycle)
            )
        self.refresh()

    def _find_cycle(self) -> Optional[List[str]]:
        colour: Dict[str, int] = {}  # 1 = on the stack, 2 = done
        for root in self._steps:
            if colour.get(root):
                continue
            stack: List[Tuple[str, Iterator[str]]] = [
                (root, iter(self._steps[root].depends_on))
            ]
            colour[root] = 1
            while stack:
                sid, deps = stack[-1]
                nxt = next(deps, None)
                if nxt is None:
                    colour[sid] = 2
                    stack.pop()
                elif colour.get(nxt) == 1:
                    path = [s for s, _ in stack]
                    return path[path.index(nxt) :] + [nxt]
                elif not colour.get(nxt):
                    colour[nxt] = 1
                    stack.append((nxt, iter(self._steps[nxt].depends_on)))
        return None

    @property
    def steps(self) -> List[PlanStep]:
        """The steps, in the order given."""
        return list(self._steps.values())

    def __iter__(self) -> Iterator[PlanStep]:
        return iter(list(self._steps.values()))

    def __len__(self) -> int:
        return len(self._steps)

    def get(self, step_id: str) -> PlanStep:
        """Return a step by id.

        Raises:
            PlanValidationError: No such step.
        """
        try:
            return self._steps[step_id]
        except KeyError:
            raise PlanValidationError(f"no plan step {step_id!r}") from None

    def set_status(self, step_id: str, status: str) -> PlanStep:
        """Set one step's status (and its timestamps), then refresh blocked/pending.

        Raises:
            PlanValidationError: Unknown step or status.
        """
        if status not in STEP_STATUSES:
            raise PlanValidationError(
                f"unknown status {status!r}; expected {STEP_STATUSES}"
            )
        step = self.get(step_id)
        step.status = status
        if status == IN_PROGRESS and not step.started_at:
            step.started_at = _now()
        if status in (COMPLETED, FAILED):
            step.completed_at = _now()
        self.refresh()
        return step

    def refresh(self) -> None:
        """Mark pending steps with unfinished dependencies ``blocked`` and unblock ready ones."""
        for step in self._steps.values():
            if step.status in (PENDING, BLOCKED):
                done = all(self._steps[d].status == COMPLETED for d in step.depends_on)
                step.status = PENDING if done else BLOCKED

    def reset(self) -> None:
        """Put every step back to pending/blocked and clear timestamps."""
        for step in self._steps.values():
            step.status = PENDING
            step.started_at = step.completed_at = None
        self.refresh()

    def ready_steps(self) -> List[PlanStep]:
        """Steps that are pending with every dependency completed."""
        return [s for s in self._steps.values() if s.status == PENDING]

    def topological_order(self) -> List[str]:
        """Step ids so that every step comes after its dependencies (stable)."""
        order: List[str] = []
        placed: Set[str] = set()
        remaining = list(self._steps.values())
        while remaining:
            for step in remaining:
                if all(d in placed for d in step.depends_on):
                    order.append(step.id)
                    placed.add(step.id)
                    remaining.remove(step)
                    break
        return order

    @property
    def is_complete(self) -> bool:
        """True when every step is completed."""
        return all(s.status == COMPLETED for s in self._steps.values())

    def progress(self) -> Tuple[int, int]:
        """Return (completed steps, total steps)."""
        done = sum(1 for s in self._steps.values() if s.status == COMPLETED)
        return done, len(self._steps)

    def render_text(self) -> str:
        """Return a human-readable checklist, one line per step in dependency order."""
        done, total = self.progress()
        width = max((len(s) for s in self._steps), default=0)
        lines = [f"Mission plan: {done}/{total} steps completed"]
        for sid in self.topological_order():
            step = self._steps[sid]
            line = f"{_MARKS[step.status]} {step.id.ljust(width)}  {step.description}".rstrip()
            if step.depends_on:
                line += f"  (after: {', '.join(step.depends_on)})"
            if step.status not in (PENDING, COMPLETED):
                line += f"  <{step.status}>"
            lines.append(line)
        return "\n".join(lines)

    def snapshot(self) -> Dict[str, Any]:
        """Return a JSON-serialisable snapshot: ``{"steps": [...]}``."""
        return {"steps": [s.to_dict() for s in self._steps.values()]}

    @classmethod
    def from_snapshot(
        cls, data: Union[Mapping[str, Any], Sequence[Any]]
    ) -> MissionPlan:
        """Rebuild a plan from :meth:`snapshot` output or from a plain list of step dicts.

        Raises:
            PlanValidationError: The snapshot is malformed or describes an invalid plan.
        """
        if isinstance(data, Mapping):
            steps = data.get("steps")
        else:
            steps = data
        if not isinstance(steps, (list, tuple)):
            raise PlanValidationError(
                "plan snapshot must be a list of steps or {'steps': [...]}"
            )
        return cls(steps)

    def __repr__(self) -> str:
        done, total = self.progress()
        return f"MissionPlan(steps={total}, completed={done})"


class PlanManager(GraphObserver):
    """Keeps a MissionPlan in step with a graph run and stores it in graph state.

    Args:
        plan: The plan (its statuses are updated in place).
        state_key: Graph-state key for the snapshot.
        auto_advance: Update statuses from node events; if False, only ``advance`` does.
        step_nodes: Optional ``{step_id: node_id | [node_ids]}`` mapping.
    """

    def __init__(
        self,
        plan: MissionPlan,
        state_key: str = "mission_plan",
        auto_advance: bool = True,
        step_nodes: Optional[Mapping[str, Union[str, Sequence[str]]]] = None,
    ) -> None:
        if not isinstance(plan, MissionPlan):
            raise PlanValidationError(
                f"PlanManager needs a MissionPlan, got {type(plan).__name__}"
            )
        self.plan = plan
        self.state_key = state_key
        self.auto_advance = auto_advance
        self._node_steps: Dict[str, List[str]] = {}
        self._step_nodes: Dict[str, List[str]] = {}
        mapping = dict(step_nodes or {})
        for sid in mapping:
            plan.get(sid)  # unknown step -> PlanValidationError
        for step in plan:
            raw = mapping.get(step.id, step.nodes or [step.id])
            nodes = [raw] if isinstance(raw, str) else list(raw)
            self._step_nodes[step.id] = nodes
            for nid in nodes:
                self._node_steps.setdefault(nid, []).append(step.id)
        self._graph: Any = None
        self._run_id: Optional[str] = None
        self._done_nodes: Dict[str, Set[str]] = {}

    def attach(self, graph: Any) -> PlanManager:
        """Register with ``graph`` (as an observer); returns self.

        Raises:
            PlanValidationError: See :meth:`check_graph`.
        """
        self.check_graph(graph)
        graph.add_observer(self)
        self._graph = graph
        return self

    def check_graph(self, graph: Any) -> None:
        """Check the plan's node mapping against ``graph``.

        A step mapped explicitly (``PlanStep(nodes=[...])``, ``step_nodes``) must name nodes
        of the graph. A step named after no node is one a person advances (``advance``),
        unless its id looks like a misspelling of a node no step covers.

        Raises:
            PlanValidationError: A mapped node is missing, or a step id looks misspelt.
        """
        nodes = getattr(graph, "nodes", None)
        if not isinstance(nodes, Mapping):
            raise PlanValidationError(
                f"PlanManager attaches to a Graph, got {type(graph).__name__}"
            )
        graph_id = getattr(graph, "graph_id", "?")
        unmapped = sorted(set(nodes) - set(self._node_steps))
        for sid, wanted in self._step_nodes.items():
            missing = [nid for nid in wanted if nid not in nodes]
            if not missing:
                continue
            if wanted != [sid]:
                raise PlanValidationError(
                    f"plan step {sid!r} maps to node(s) {missing} that graph {graph_id!r} "
                    f"does not have (its nodes: {sorted(nodes)})"
                )
            meant = misspelt_node(sid, unmapped)
            if meant is not None:
                raise PlanValidationError(
                    f"plan step {sid!r} names no node of graph {graph_id!r}: did you mean "
                    f"{meant!r}? (map a step to other nodes with step_nodes or "
                    "PlanStep(nodes=[...]))"
                )

    def _snapshot(self) -> Dict[str, Any]:
        snap = self.plan.snapshot()
        snap["run_id"] = self._run_id
        # Nodes already done for steps that need several: a resumed run needs them too.
        snap["done_nodes"] = {
            sid: sorted(nodes)
            for sid, nodes in self._done_nodes.items()
            if nodes and self.plan._steps[sid].status != COMPLETED
        }
        return snap

    async def _save(self, run: RunInfo) -> None:
        await run.graph.state.set(self.state_key, self._snapshot())

    async def on_run_start(self, run: RunInfo) -> None:
        """Restore the stored plan when resuming this run, else start it afresh."""
        stored = await run.graph.state.get(self.state_key, None)
        if (
            run.resumed
            and isinstance(stored, Mapping)
            and stored.get("run_id") == run.run_id
        ):
            for item in stored.get("steps", []):
                sid = item.get("id") if isinstance(item, Mapping) else None
                if sid in self.plan._steps:
                    step = self.plan._steps[sid]
                    step.status = item.get("status", step.status)
                    step.started_at = item.get("started_at")
                    step.completed_at = item.get("completed_at")
            self.plan.refresh()
            done = stored.get("done_nodes")
            self._done_nodes = {
                sid: set(nodes)
                for sid, nodes in (done.items() if isinstance(done, Mapping) else ())
                if sid in self._step_nodes and isinstance(nodes, list)
            }
        else:
            self.plan.reset()
            self._done_nodes = {}
        self._run_id = run.run_id
        await self._save(run)

    async def on_node_start(self, run: RunInfo, node: Any, context: Any) -> None:
        """Mark the node's steps in progress."""
        steps = self._node_steps.get(node.id)
        if not steps or not self.auto_advance:
            return
        for sid in steps:
            if self.plan._steps[sid].status != COMPLETED:
                self.plan.set_status(sid, IN_PROGRESS)
        await self._save(run)

    async def on_node_end(
        self, run: RunInfo, node: Any, context: Any, output: Any
    ) -> None:
        """Complete steps whose nodes have all completed."""
        steps = self._node_steps.get(node.id)
        if not steps or not self.auto_advance:
            return
        for sid in steps:
            done = self._done_nodes.setdefault(sid, set())
            done.add(node.id)
            if (
                done >= set(self._step_nodes[sid])
                and self.plan._steps[sid].status != COMPLETED
            ):
                # Its work is done: it waits for its dependencies, and _settle completes it.
                self.plan.set_status(sid, BLOCKED)
        self._settle()
        await self._save(run)

    def _settle(self) -> None:
        """Complete every step whose nodes are done once its dependencies are completed."""
        steps = self.plan._steps
        changed = True
        while changed:
            changed = False
            for sid, step in steps.items():
                if (
                    step.status in (PENDING, BLOCKED)
                    and self._done_nodes.get(sid, set()) >= set(self._step_nodes[sid])
                    and all(steps[d].status == COMPLETED for d in step.depends_on)
                ):
                    self.plan.set_status(sid, COMPLETED)
                    changed = True

    async def on_node_error(
        self, run: RunInfo, node: Any, context: Any, error: Any
    ) -> None:
        """Mark the node's steps failed."""
        steps = self._node_steps.get(node.id)
        if not steps or not self.auto_advance:
            return
        for sid in steps:
            self.plan.set_status(sid, FAILED)
        await self._save(run)

    async def advance(self, step_id: str, status: str = COMPLETED) -> PlanStep:
        """Set a step's status by hand and store the snapshot (needs an attached graph).

        Raises:
            PlanValidationError: Unknown step or status.
        """
        step = self.plan.set_status(step_id, status)
        self._settle()
        if self._graph is not None:  # with the run id, so a resumed run keeps it
            await self._graph.state.set(self.state_key, self._snapshot())
        return step


@dataclass(frozen=True)
class BudgetGuardrailConfig:
    """Limits for :class:`BudgetGuardrail` (None = unlimited).

    Attributes:
        max_iterations: Node executions over the run (resumptions included; a node cut short
            by a pause or stop is not counted, it runs again on resume).
        max_cost_usd: Total cost reported with ``context.report_cost``.
        max_runtime_seconds: Seconds spent running (time paused between a stop and the
            resumption does not count).
        max_tokens: Total tokens reported with ``context.report_cost(..., tokens=...)``.
    """

    max_iterations: Optional[int] = None
    max_cost_usd: Optional[float] = None
    max_runtime_seconds: Optional[float] = None
    max_tokens: Optional[int] = None

    def __post_init__(self) -> None:
        for name in (
            "max_iterations",
            "max_cost_usd",
            "max_runtime_seconds",
            "max_tokens",
        ):
            value = getattr(self, name)
            if value is None:
                continue
            if (
                isinstance(value, bool)
                or not isinstance(value, (int, float))
                or not math.isfinite(value)
                or value < 0
            ):
                raise PlanValidationError(
                    f"guardrail {name} must be a non-negative number or None, got {value!r}"
                )


_USAGE_KEY = "spark.guardrails"
# Graph-state key of the usage of unfinished runs: {run_id: {"iterations", "cost_usd",
# "tokens", "runtime_s"}}. Usage is a property of the run, not of one guardrail, so several
# guardrails share a run's entry; a completed run's entry is dropped.
USAGE_STATE_KEY = "_spark_guardrails"
_MEASURES = ("iterations", "cost_usd", "tokens", "runtime_s")


class Guardrails(GraphObserver):
    """Stop a run that exceeds iteration, runtime, cost or token limits.

    Args:
        max_iterations: Node executions over the run, resumptions included (a node cut short
            by a pause or stop is not counted: it runs again on resume).
        max_runtime_seconds: Seconds spent running (paused time does not count), checked
            between nodes.
        max_cost: USD reported through ``context.report_cost``.
        max_tokens: Tokens reported through ``context.report_cost(..., tokens=...)``.
        clock: Monotonic clock in seconds (tests pass a fake one).

    Raises:
        PlanValidationError: A limit is negative or not a number.
    """

    _cost_name = "max_cost"

    def __init__(
        self,
        max_iterations: Optional[int] = None,
        max_runtime_seconds: Optional[float] = None,
        max_cost: Optional[float] = None,
        max_tokens: Optional[int] = None,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.clock = clock
        self.config = BudgetGuardrailConfig(
            max_iterations=max_iterations,
            max_cost_usd=max_cost,
            max_runtime_seconds=max_runtime_seconds,
            max_tokens=max_tokens,
        )
        self.last_usage: Dict[str, Any] = {}

    def attach(self, graph: Any) -> Guardrails:
        """Register with ``graph`` (as an observer); returns self."""
        graph.add_observer(self)
        return self

    def _usage(self, run: RunInfo) -> Dict[str, Any]:
        per_run = run.attrs.setdefault(_USAGE_KEY, {})
        usage: Optional[Dict[str, Any]] = per_run.get(id(self))
        if usage is None:
            usage = {
                "iterations": 0,
                "cost_usd": 0.0,
                "tokens": 0,
                "t0": self.clock(),
                "in_flight": 0,
            }
            per_run[id(self)] = usage
            self.last_usage = usage
        return usage

    @staticmethod
    async def _stored(run: RunInfo) -> Dict[str, Any]:
        stored = await run.graph.state.get(USAGE_STATE_KEY, None)
        return dict(stored) if isinstance(stored, Mapping) else {}

    async def _save(self, run: RunInfo, usage: Dict[str, Any]) -> None:
        """Store the run's usage so far; nodes still in flight will run again on resume."""
        usage["runtime_s"] = self.clock() - usage["t0"]
        all_runs = await self._stored(run)
        previous = all_runs.get(run.run_id)
        previous = previous if isinstance(previous, Mapping) else {}
        mine = dict(usage, iterations=usage["iterations"] - usage["in_flight"])
        # Several guardrails measure the same run; each value only grows, so keep the largest.
        all_runs[run.run_id] = {
            k: max(mine[k], previous.get(k) or 0) for k in _MEASURES
        }
        await run.graph.state.set(USAGE_STATE_KEY, all_runs)

    def _check(
        self, run: RunInfo, usage: Dict[str, Any], node_id: Optional[str]
    ) -> None:
        cfg = self.config
        usage["runtime_s"] = self.clock() - usage["t0"]
        checks = (
            ("max_iterations", usage["iterations"], cfg.max_iterations),
            (self._cost_name, usage["cost_usd"], cfg.max_cost_usd),
            ("max_tokens", usage["tokens"], cfg.max_tokens),
            ("max_runtime_seconds", usage["runtime_s"], cfg.max_runtime_seconds),
        )
        for name, value, limit in checks:
            if limit is not None and value > limit:
                raise GuardrailBreachError(
                    name, value, limit, node_id=node_id, run_id=run.run_id
                )

    async def on_run_start(self, run: RunInfo) -> None:
        """Start counting: from the stored usage when resuming, else from zero."""
        run.attrs.setdefault(_USAGE_KEY, {}).pop(id(self), None)
        usage = self._usage(run)
        all_runs = await self._stored(run)
        stored = all_runs.get(run.run_id)
        if not run.resumed and stored is not None:  # a fresh run reusing an old run id
            del all_runs[run.run_id]
            await run.graph.state.set(USAGE_STATE_KEY, all_runs)
        elif isinstance(stored, Mapping):
            usage["iterations"] = int(stored.get("iterations") or 0)
            usage["cost_usd"] = float(stored.get("cost_usd") or 0.0)
            usage["tokens"] = int(stored.get("tokens") or 0)
            usage["t0"] -= float(stored.get("runtime_s") or 0.0)

    async def on_node_start(self, run: RunInfo, node: Any, context: Any) -> None:
        """Count the execution and check every limit before the node runs."""
        usage = self._usage(run)
        usage["iterations"] += 1
        usage["in_flight"] += 1
        self._check(run, usage, node.id)

    async def on_attempt_end(
        self, run: RunInfo, node: Any, context: Any, output: Any, error: Any
    ) -> None:
        """Check cost and time right after each attempt (costs are delivered by then)."""
        self._check(run, self._usage(run), node.id)

    async def on_node_end(
        self, run: RunInfo, node: Any, context: Any, output: Any
    ) -> None:
        """Store the usage (committed with the node's step)."""
        await self._node_done(run)

    async def on_node_error(
        self, run: RunInfo, node: Any, context: Any, error: Any
    ) -> None:
        """Store the usage; the failed execution counts."""
        await self._node_done(run)

    async def _node_done(self, run: RunInfo) -> None:
        usage = self._usage(run)
        usage["in_flight"] = max(0, usage["in_flight"] - 1)
        if run.graph.state.backend.durable:  # else on_run_end's save is all that lasts
            await self._save(run, usage)

    async def on_event(
        self, run: RunInfo, node: Any, name: str, data: Dict[str, Any]
    ) -> None:
        """Add reported cost and tokens; stop at once when a limit is crossed."""
        if name != "cost":
            return
        usage = self._usage(run)
        usage["cost_usd"] += float(data.get("usd") or 0.0)
        usage["tokens"] += int(data.get("tokens") or 0)
        self._check(run, usage, getattr(node, "id", None))

    async def on_run_end(
        self, run: RunInfo, result: Any, error: Optional[BaseException]
    ) -> None:
        """Keep the usage of a run that can be resumed; forget a completed run's."""
        usage = self._usage(run)
        if result is not None and getattr(result, "status", None) == "completed":
            all_runs = await self._stored(run)
            if all_runs.pop(run.run_id, None) is not None:
                await run.graph.state.set(USAGE_STATE_KEY, all_runs)
            usage["runtime_s"] = self.clock() - usage["t0"]
        else:
            await self._save(run, usage)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.config})"


class BudgetGuardrail(Guardrails):
    """Guardrails configured with a :class:`BudgetGuardrailConfig` (cost limit named
    ``max_cost_usd`` in breach errors).

    Args:
        config: The limits.
        clock: Monotonic clock in seconds (tests pass a fake one).
    """

    _cost_name = "max_cost_usd"

    def __init__(
        self,
        config: Optional[BudgetGuardrailConfig] = None,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        cfg = config if config is not None else BudgetGuardrailConfig()
        if not isinstance(cfg, BudgetGuardrailConfig):
            raise PlanValidationError(
                f"BudgetGuardrail needs a BudgetGuardrailConfig, got {type(cfg).__name__}"
            )
        super().__init__(
            max_iterations=cfg.max_iterations,
            max_runtime_seconds=cfg.max_runtime_seconds,
            max_cost=cfg.max_cost_usd,
            max_tokens=cfg.max_tokens,
            clock=clock,
        )


class MissionControl:
    """A plan manager plus guardrails, attached to a graph together.

    Args:
        plan: Optional MissionPlan tracked by a :class:`PlanManager`.
        guardrails: Guardrails / BudgetGuardrail objects (any GraphObserver works).
        state_key: Graph-state key of the plan snapshot.
        auto_advance: Passed to the PlanManager.
        step_nodes: Passed to the PlanManager.
    """

    def __init__(
        self,
        plan: Optional[MissionPlan] = None,
        guardrails: Sequence[GraphObserver] = (),
        *,
        state_key: str = "mission_plan",
        auto_advance: bool = True,
        step_nodes: Optional[Mapping[str, Union[str, Sequence[str]]]] = None,
    ) -> None:
        self.plan = plan
        self.plan_manager = (
            PlanManager(plan, state_key, auto_advance, step_nodes)
            if plan is not None
            else None
        )
        self.guardrails = list(guardrails)
        for g in self.guardrails:
            if not isinstance(g, GraphObserver):
                raise PlanValidationError(
                    f"guardrails must be Guardrails/BudgetGuardrail objects, got {type(g).__name__}"
                )

    def attach(self, graph: Any) -> MissionControl:
        """Add the guardrails, then the plan manager, to ``graph``; returns self.

        Raises:
            PlanValidationError: The plan does not fit the graph (see
                :meth:`PlanManager.check_graph`); nothing is attached then.
        """
        if self.plan_manager is not None:
            self.plan_manager.check_graph(graph)
        for g in self.guardrails:
            graph.add_observer(g)
        if self.plan_manager is not None:
            self.plan_manager.attach(graph)
        return self
