"""``Graph``: nodes reachable from a start node, their shared state, and how to run them.

This module builds the graph (nodes found by following edges, ids settled, each node's
edge conditions compiled into a router) and holds the public entry points: ``run``,
``resume``, ``checkpoint_state`` and ``resume_from``. Running is the scheduler's job
(:mod:`spark_core.graphs.scheduler`, which tells the story of one step), running one node
the node runner's (:mod:`spark_core.nodes.runner`). Telemetry, guardrails and policies plug
in as observers (:mod:`spark_core.graphs.plugins`).
"""

from __future__ import annotations

import contextlib
import threading
import time
import uuid
from typing import (
    Any,
    Dict,
    Iterator,
    List,
    Optional,
    Sequence,
    Tuple,
)

from spark_core.errors import GraphDefinitionError, RunNotFoundError, SparkError
from spark_core.graphs import plugins
from spark_core.graphs.backends import StateBackend
from spark_core.graphs.checkpoint import (
    CHECKPOINT_VERSION,
    make_checkpoint,
    restore_checkpoint,
)
from spark_core.graphs.mermaid import mimebundle, to_mermaid
from spark_core.graphs.observers import GraphObserver, RunInfo, RunResult
from spark_core.graphs.run import Run, run_from_record
from spark_core.graphs.scheduler import MAX_RUNS_PER_NODE, Scheduler
from spark_core.graphs.state import GraphState
from spark_core.graphs.topology import Topology
from spark_core.nodes.base import Node, NodeRef, as_node
from spark_core.nodes.edges import Edge
from spark_core.nodes.executors import NodeExecutor
from spark_core.utils import arun


class Graph:
    """A graph of nodes reachable from ``start``, with shared state and observers.

    A ``Graph`` runs one run at a time (a second ``run``/``resume`` while one is in
    progress raises ``SparkError``): runs of one graph share its state, its nodes' own
    state and its run bookkeeping. For concurrent runs build one graph per run.

    Attributes:
        start: The start node.
        nodes: Node id -> node, discovered from ``start`` by following edges.
        edges: Every edge, in discovery order.
        state: The graph's shared :class:`GraphState` (persists across runs).
        max_steps: Node executions one run may make in total before it fails, or ``None``
            (the default): then no total applies, and each node may complete at most
            ``MAX_RUNS_PER_NODE`` (1,000) times per run (a resumption counts afresh), so a
            loop that does not end stops, whatever the size of the graph.
        graph_id: The graph's id (defaults to the start node's id).
        last_run_id: The id of the most recent run or resumption.
    """

    def __init__(
        self,
        start: NodeRef,
        *,
        state_backend: Optional[StateBackend] = None,
        state_schema: Any = None,
        max_steps: Optional[int] = None,
        tools: Optional[Sequence[Any]] = None,
        policy_set: Any = None,
        telemetry: Any = None,
        observers: Sequence[GraphObserver] = (),
        graph_id: Optional[str] = None,
        initial_state: Optional[Dict[str, Any]] = None,
        executor: Optional[NodeExecutor] = None,
    ) -> None:
        """Build the graph from ``start`` by following its edges.

        Args:
            start: The node every run starts at (or an object with ``as_node()``, such
                as an ``Agent``).
            state_backend: Where state and run records live (in memory by default).
            state_schema: A ``MissionStateModel`` subclass or pydantic model for the state.
            max_steps: Node executions one run may make in total; ``None``: each node may
                complete at most 1,000 times per run instead, so only a loop reaches it.
            tools: Tools for ``context.call_tool`` (run through the governance executor).
            policy_set: A governance ``PolicySet``; also checks ``node:execute`` per node.
            telemetry: A ``TelemetryManager``, a ``TelemetryConfig`` or ``True`` (the shared
                manager) adds its observer; ``None`` or ``False``: no telemetry.
            observers: Observers, called in order after the telemetry and policy ones.
            graph_id: The graph's id (defaults to the start node's id).
            initial_state: State values for keys the backend does not hold yet.
            executor: Where the nodes' ``process`` runs (a ``NodeExecutor``; a node's
                ``NodeConfig.executor`` wins); ``None``: in this process, as always.

        Raises:
            GraphDefinitionError: ``start`` is not a node, ids collide, ``max_steps`` < 1,
                or ``state_backend`` / ``tools`` / ``observers`` are not what they must be.
            StateValidationError: The schema or initial state is invalid.
            TelemetryConfigError: ``telemetry`` is not one of the accepted values.
        """
        start = as_node(start)  # an Agent stands for its node
        if not isinstance(start, Node):
            raise GraphDefinitionError(f"start must be a Node, got {start!r}")
        _require(
            max_steps is None or (type(max_steps) is int and max_steps >= 1),
            f"max_steps must be an int >= 1, got {max_steps!r}",
        )
        for name, value, kind in (
            ("state_backend", state_backend, StateBackend),
            ("executor", executor, NodeExecutor),
        ):
            _require(
                value is None or isinstance(value, kind),
                f"{name} must be a {kind.__name__}, got {type(value).__name__}",
            )
        for i, observer in enumerate(observers):
            _require(
                isinstance(observer, GraphObserver),
                f"observers[{i}] must be a GraphObserver, got {type(observer).__name__}",
            )
        for i, item in enumerate(tools or ()):
            _require(  # a Tool is callable too
                callable(item),
                f"tools[{i}] must be a Tool or a callable, got {type(item).__name__}",
            )
        self.start = start
        self.topology = Topology(start)
        self.nodes: Dict[str, Node] = self.topology.nodes
        self.edges: List[Edge] = self.topology.edges
        self.max_steps: Optional[int] = max_steps
        self.executor = executor
        self.graph_id = graph_id if graph_id is not None else start.id
        self.state = GraphState(state_backend, state_schema, initial_state)
        self._observers: List[GraphObserver] = []
        self._tools = list(tools) if tools is not None else None
        self._policy_set = policy_set
        self._tool_executor: Any = None
        self._approvals: Any = None
        # Held from a run's start until its state is settled (after on_run_end).
        self._running = threading.Lock()
        self._current: Optional[Run] = None
        self._last: Optional[Run] = None
        self.last_run_id: Optional[str] = None
        # Plug-ins, built by the packages that registered them (see graphs.plugins).
        if telemetry is not None and telemetry is not False:
            self.add_observer(plugins.factory("telemetry")(telemetry))
        if policy_set is not None:
            self.add_observer(plugins.factory("policy_set")(policy_set))
        for observer in observers:
            self.add_observer(observer)

    # --------------------------------------------------------------- plug-ins
    def add_observer(self, observer: GraphObserver) -> None:
        """Add an observer; observers are called in the order they were added.

        Args:
            observer: The observer.
        """
        self._observers.append(observer)

    @property
    def observers(self) -> List[GraphObserver]:
        """The observers, in call order (a copy)."""
        return list(self._observers)

    @property
    def tools(self) -> Tuple[Any, ...]:
        """The tools given to the graph (read-only; empty when there are none)."""
        return tuple(self._tools or ())

    @property
    def tool_executor(self) -> Any:
        """The governed tool executor, or ``None`` when the graph has no tools/policies."""
        if self._tool_executor is None and (
            self._tools is not None or self._policy_set
        ):
            build = plugins.factory("tool_executor")
            self._tool_executor = build(self._tools or [], self._policy_set)
        return self._tool_executor

    @property
    def approvals(self) -> Any:
        """The approval store (``spark_core.governance.approvals.ApprovalStore``)."""
        if self._approvals is None:
            self._approvals = plugins.factory("approvals")(self.state)
        return self._approvals

    def __repr__(self) -> str:
        return f"<Graph {self.graph_id!r}: {len(self.nodes)} nodes, {len(self.edges)} edges>"

    # ----------------------------------------------------------------- running
    async def run(
        self, inputs: Any = None, *, run_id: Optional[str] = None
    ) -> RunResult:
        """Run the graph from its start node.

        Args:
            inputs: The start node's ``inputs.content``.
            run_id: An id for the run (a new uuid by default); with a durable backend,
                ``resume(run_id)`` continues it after a crash.

        Returns:
            The :class:`RunResult` (status ``"completed"``).

        Raises:
            NodeExecutionError: A node failed (the run is saved as ``"failed"``).
            MaxStepsExceededError: The run made more than ``max_steps`` node executions
                (by default: a node was about to complete a 1,001st time).
            RunStopped: A node or observer stopped the run (``RunPaused``: paused).
            SparkError: ``run_id`` is already used (use :meth:`resume`), or the graph is
                running another run.
            RunClaimedError: Another process is running this run (shared backends).
        """
        with self._claim():
            backend = self.state.backend
            if run_id is None:
                run_id = uuid.uuid4().hex
            elif not isinstance(run_id, str) or not run_id:
                raise SparkError(f"run_id must be a non-empty string, got {run_id!r}")
            elif backend.load_run(run_id) is not None:
                raise SparkError(
                    f"run {run_id!r} already exists: use graph.resume({run_id!r})"
                )
            if backend.durable:
                self.state.reload()  # another process may have changed it
            info = RunInfo(run_id, self, time.time(), inputs=inputs)
            run = Run(info)
            run.add(self.start.id, inputs)
            # The backend's run claim: one process at a time runs a run (StateBackend.claim_run)
            with backend.claimed(run_id):
                if backend.durable:
                    backend.save_run(run.record(self.graph_id, "running"))
                    run.stored(run.frontier())
                return await self._drive(run)

    def run_sync(self, inputs: Any = None, **kwargs: Any) -> RunResult:
        """Run the graph from synchronous code (also inside a notebook's running loop).

        Args:
            inputs: The start node's input.
            **kwargs: Passed to :meth:`run` (``run_id``).

        Returns:
            The run's result.
        """
        return arun(self.run(inputs, **kwargs))

    async def resume(self, run_id: str) -> RunResult:
        """Continue a stored run (paused, failed, cancelled or killed) where it stopped.

        Committed nodes are not run again; the pending frontier (including a node that
        paused the run) runs. A completed run returns its stored result.

        Args:
            run_id: The run's id.

        Returns:
            The run's result.

        Raises:
            RunNotFoundError: The backend has no such run.
            SparkError: The graph is running another run.
            RunClaimedError: Another process is running this run (shared backends).
        """
        # The backend's run claim is taken before the record is read (StateBackend.claim_run)
        with self._claim(), self.state.backend.claimed(run_id):
            backend = self.state.backend
            record = backend.load_run(run_id)
            if record is None:
                raise RunNotFoundError(run_id)
            if backend.durable:
                self.state.reload()
            run = run_from_record(self, record)
            # A node's previous output is its last one in this run (as resume_from restores
            # from a checkpoint); a new process would otherwise start every node at None.
            for node_id, output in run.outputs.items():
                if node_id in self.nodes:
                    self.nodes[node_id].state.context_snapshot = output
            if record.get("status") == "completed":
                return run.result("completed")
            if backend.durable:
                run.stored(run.frontier())
            return await self._drive(run)

    def resume_sync(self, run_id: str) -> RunResult:
        """Synchronous :meth:`resume` (notebook-safe).

        Args:
            run_id: The run's id.

        Returns:
            The run's result.
        """
        return arun(self.resume(run_id))

    @contextlib.contextmanager
    def _claim(self) -> Iterator[None]:
        """Hold the graph for one run (or resumption) until its state is settled."""
        # Runs of one graph share its state and bookkeeping: a second one at the same time
        # would commit the first one's writes with its steps. The lock is checked and taken
        # in one step (two threads cannot both pass) and let go after the run's last state
        # write, when on_run_end has returned.
        if not self._running.acquire(blocking=False):
            current = self._current
            what = f"run {current.info.run_id!r}" if current is not None else "a run"
            raise SparkError(
                f"graph {self.graph_id!r} is already running {what}: a Graph runs one "
                "run at a time (build one Graph per concurrent run)"
            )
        try:
            yield
        finally:
            self._running.release()

    async def _drive(self, run: Run) -> RunResult:
        self._current = run
        self.last_run_id = run.info.run_id
        return await Scheduler(self, run).drive()

    # ------------------------------------------------------------------- state
    async def checkpoint_state(self) -> Dict[str, Any]:
        """Return a JSON-serialisable checkpoint of the state and the run position.

        The position is the frontier of the run in progress or the last run (its pending
        nodes and their inputs, join buffers, outputs); for a graph that never ran it is
        the start node.

        Returns:
            The checkpoint (a plain dict).

        Raises:
            StateValidationError: Something in the run is not JSON-serialisable.
        """
        return make_checkpoint(self, self._current, self._last)

    async def resume_from(self, checkpoint: Dict[str, Any]) -> RunResult:
        """Restore a checkpoint (state and position) and continue the run from it.

        The saved frontier runs (not the start node); a checkpoint of a completed run
        restores the state and returns that run's result without running anything.

        Args:
            checkpoint: A dict from :meth:`checkpoint_state` (possibly via JSON).

        Returns:
            The run's result.

        Raises:
            StateValidationError: The checkpoint is malformed or its state fails the schema
                (nothing is restored then).
            GraphDefinitionError: The checkpoint names nodes this graph does not have.
            SparkError: The graph is running another run.
        """
        with self._claim():
            run = restore_checkpoint(self, checkpoint)
            if not run.pending and not run.joins:
                run.info.step = run.step
                self._last = run
                return run.result("completed")
            backend = self.state.backend
            backend.save_run(
                {**run.record(self.graph_id, "running"), "outputs": run.outputs}
            )
            if backend.durable:
                run.stored(run.frontier())
            return await self._drive(run)

    async def reset_state(self) -> None:
        """Clear the graph state (back to schema defaults) and every node's own state."""
        await self.state.clear()
        for node in self.nodes.values():
            node.state.context_snapshot = None

    # --------------------------------------------------------------- rendering
    def to_mermaid(self) -> str:
        """Return a Mermaid ``flowchart`` of the graph (conditions label the edges).

        Returns:
            The diagram's text (the start node is rounded, joins are hexagons).
        """
        return to_mermaid(self)

    def _repr_mimebundle_(
        self, include: Any = None, exclude: Any = None
    ) -> Dict[str, str]:
        """Render the graph in Jupyter as a Mermaid diagram.

        JupyterLab (4.1+) draws ``text/vnd.mermaid`` and Mermaid blocks in
        ``text/markdown``; other front-ends show the Markdown or the plain text. There is no
        HTML on purpose: front-ends prefer it, and it would hide the diagram.

        Args:
            include: MIME types asked for (IPython's protocol; all are always given).
            exclude: MIME types not wanted (ignored likewise).

        Returns:
            MIME type -> content.
        """
        return mimebundle(self)


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise GraphDefinitionError(message)


__all__ = ["Graph", "MAX_RUNS_PER_NODE", "CHECKPOINT_VERSION"]
