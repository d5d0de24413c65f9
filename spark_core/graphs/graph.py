"""``Graph``: runs nodes along their edges, concurrently where branches fan out.

The run loop is deliberately small. Pending work is a *frontier* of ``(node id, inputs)``
entries. While exactly one entry is ready and nothing else runs (a linear chain), the node is
awaited inline, without creating a task; otherwise every ready entry becomes a task and the
loop handles tasks as they finish. Completing a node fires every edge whose condition holds;
a :class:`~spark_core.nodes.JoinNode` collects one message per parent before it runs. With a
durable backend every completed step (output + frontier + that node's state writes) is
committed in one transaction, so :meth:`Graph.resume` continues a killed run without redoing
committed nodes.
Telemetry, guardrails and policies plug in as observers.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import threading
import time
import uuid
from collections import deque
from typing import (
    Any,
    Callable,
    Deque,
    Dict,
    Iterator,
    List,
    Optional,
    Sequence,
    Tuple,
)

from spark_core.errors import (
    GraphDefinitionError,
    MaxStepsExceededError,
    RunNotFoundError,
    RunPaused,
    RunStopped,
    SparkError,
    StateValidationError,
)
from spark_core.graphs.backends import DELETED, StateBackend
from spark_core.graphs.edges import Edge
from spark_core.graphs.observers import GraphObserver, NodeRunInfo, RunInfo, RunResult
from spark_core.graphs.state import GraphState
from spark_core.nodes.base import (
    JoinNode,
    Node,
    NodeRef,
    _attempt,
    _failure,
    as_node,
    execute_node,
)
from spark_core.nodes.context import ExecutionContext, Inputs

logger = logging.getLogger("spark_core.graph")

CHECKPOINT_VERSION = 1
# Default bound of a run: how many times one node may complete in it (a loop-free graph of
# any size never reaches it; a loop that does not end stops after this many rounds).
MAX_RUNS_PER_NODE = 1000
Entry = Tuple[str, Any]  # (node id, inputs)
# What a node execution hands to _complete: output, targets of fired edges, its write log.
Done = Tuple[Any, List[Node], Dict[str, Any]]


class _Run:
    """Mutable bookkeeping of one run (or resumption)."""

    __slots__ = (
        "info",
        "pending",
        "seq",
        "joins",
        "outputs",
        "node_results",
        "last_node",
        "step",
        "committed",
        "joins_dirty",
    )

    def __init__(self, info: RunInfo) -> None:
        self.info = info
        self.pending: Dict[int, Entry] = {}
        self.seq = 0
        self.joins: Dict[str, List[Dict[str, Any]]] = {}
        self.outputs: Dict[str, Any] = {}
        # node id -> [status, attempts, duration_s, error, runs]; NodeRunInfo objects are
        # only built for the result (cheaper on the hot path).
        self.node_results: Dict[str, List[Any]] = {}
        self.last_node: Optional[str] = None
        self.step = 0
        # The position (frontier, joins, step, last_node) a durable backend last stored:
        # the run record is saved with it, so it never points past what was committed.
        self.committed: Optional[Tuple[List[Any], Dict[str, Any], int, Any]] = None
        self.joins_dirty = False  # join buffers changed since the last commit

    def add(self, node_id: str, inputs: Any) -> int:
        self.seq += 1
        self.pending[self.seq] = (node_id, inputs)
        return self.seq

    def frontier(self) -> List[Any]:
        return [[node_id, inputs] for node_id, inputs in self.pending.values()]

    def stored(self, frontier: List[Any], joins_changed: bool = True) -> None:
        """Remember the position a durable backend now holds (see ``committed``)."""
        joins = (
            {
                join_id: [dict(r) for r in rounds]
                for join_id, rounds in self.joins.items()
            }
            if joins_changed or self.committed is None
            else self.committed[1]
        )
        self.committed = (frontier, joins, self.step, self.last_node)

    def result(self, status: str) -> RunResult:
        content = (
            self.outputs.get(self.last_node) if self.last_node is not None else None
        )
        return RunResult(
            run_id=self.info.run_id,
            status=status,
            content=content,
            outputs=dict(self.outputs),
            node_results={k: NodeRunInfo(*v) for k, v in self.node_results.items()},
            steps=self.step,
        )


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

        Raises:
            GraphDefinitionError: ``start`` is not a node, ids collide, ``max_steps`` < 1,
                or ``state_backend`` / ``tools`` / ``observers`` are not what they must be.
            StateValidationError: The schema or initial state is invalid.
            TelemetryConfigError: ``telemetry`` is not one of the accepted values.
        """
        start = as_node(start)  # an Agent stands for its node
        if not isinstance(start, Node):
            raise GraphDefinitionError(f"start must be a Node, got {start!r}")
        if max_steps is not None and (
            isinstance(max_steps, bool)
            or not isinstance(max_steps, int)
            or max_steps < 1
        ):
            raise GraphDefinitionError(
                f"max_steps must be an int >= 1, got {max_steps!r}"
            )
        if state_backend is not None and not isinstance(state_backend, StateBackend):
            raise GraphDefinitionError(
                f"state_backend must be a StateBackend, got {type(state_backend).__name__}"
            )
        for i, observer in enumerate(observers):
            if not isinstance(observer, GraphObserver):
                raise GraphDefinitionError(
                    f"observers[{i}] must be a GraphObserver, got {type(observer).__name__}"
                )
        if tools is not None:
            for i, item in enumerate(tools):
                if not callable(item):  # a Tool is callable too
                    raise GraphDefinitionError(
                        f"tools[{i}] must be a Tool or a callable, got {type(item).__name__}"
                    )
        self.start = start
        self.nodes: Dict[str, Node] = {}
        self.edges: List[Edge] = []
        self._parents: Dict[str, List[str]] = {}
        # node id -> output -> targets of the edges that fire (see _router)
        self._routes: Dict[str, Callable[[Any], List[Node]]] = {}
        self._discover()
        # Graph order (breadth-first from start) picks the final output among end nodes.
        self._rank = {node_id: i for i, node_id in enumerate(self.nodes)}
        self.max_steps: Optional[int] = max_steps
        self._max_runs = MAX_RUNS_PER_NODE if max_steps is None else max_steps
        self.graph_id = graph_id if graph_id is not None else start.id
        self.state = GraphState(state_backend, state_schema, initial_state)
        self._observers: List[GraphObserver] = []
        self._tools = list(tools) if tools is not None else None
        self._policy_set = policy_set
        self._tool_executor: Any = None
        self._approvals: Any = None
        # Held from a run's start until its state is settled (after on_run_end).
        self._running = threading.Lock()
        self._current: Optional[_Run] = None
        self._last: Optional[_Run] = None
        self.last_run_id: Optional[str] = None
        if telemetry is not None and telemetry is not False:
            from spark_core.telemetry.instrument import TelemetryObserver

            self.add_observer(TelemetryObserver(telemetry))
        if policy_set is not None:
            from spark_core.governance.executor import NodePolicyObserver

            self.add_observer(NodePolicyObserver(policy_set))
        for observer in observers:
            self.add_observer(observer)

    # --------------------------------------------------------------- structure
    def _discover(self) -> None:
        seen: Dict[int, Node] = {}
        order: List[Node] = []
        queue: Deque[Node] = deque([self.start])
        while queue:
            node = queue.popleft()
            if id(node) in seen:
                continue
            if not hasattr(node, "_links"):
                raise GraphDefinitionError(
                    f"{type(node).__name__}.__init__ must call super().__init__()"
                )
            seen[id(node)] = node
            order.append(node)
            queue.extend(target for target, _, _ in node._links)
        counts: Dict[str, int] = {}
        for node in order:
            if node._auto_id:
                base = node.name
                counts[base] = counts.get(base, 0) + 1
                node._id = base if counts[base] == 1 else f"{base}_{counts[base]}"
        for node in order:
            if node.id in self.nodes:
                raise GraphDefinitionError(
                    f"two different nodes have the id {node.id!r}: give them distinct names"
                )
            self.nodes[node.id] = node
        for node in order:
            links = []
            for target, kind, value in node._links:
                edge = Edge(node.id, target.id, kind, value)
                self.edges.append(edge)
                links.append((edge, target))
                parents = self._parents.setdefault(target.id, [])
                if node.id not in parents:
                    parents.append(node.id)
            self._routes[node.id] = _router(links)

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
            from spark_core.governance.executor import ToolExecutor

            self._tool_executor = ToolExecutor(self._tools or [], self._policy_set)
        return self._tool_executor

    @property
    def approvals(self) -> Any:
        """The approval store (``spark_core.governance.approvals.ApprovalStore``)."""
        if self._approvals is None:
            from spark_core.governance.approvals import ApprovalStore

            self._approvals = ApprovalStore(self.state)
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
                self.state._reload()
            run = _Run(
                RunInfo(
                    run_id=run_id, graph=self, started_at=time.time(), inputs=inputs
                )
            )
            run.add(self.start.id, inputs)
            # The backend's run claim: one process at a time runs a run (StateBackend.claim_run)
            with backend.claimed(run_id):
                if backend.durable:
                    backend.save_run(self._record(run, "running"))
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
        from spark_core.utils import arun

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
                self.state._reload()
            run = self._run_from_record(record)
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
        from spark_core.utils import arun

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

    def _run_from_record(self, record: Dict[str, Any]) -> _Run:
        info = RunInfo(
            run_id=record["run_id"],
            graph=self,
            started_at=time.time(),
            step=int(record.get("step") or 0),
            inputs=record.get("inputs"),
            resumed=True,
        )
        run = _Run(info)
        for entry in record.get("frontier") or []:
            node_id, inputs = entry
            self._require_node(node_id)
            run.add(node_id, inputs)
        for join_id in record.get("joins") or {}:
            self._require_node(join_id)
        run.joins = {k: list(v) for k, v in (record.get("joins") or {}).items()}
        run.outputs = dict(record.get("outputs") or {})
        run.last_node = record.get("last_node")
        run.step = info.step
        return run

    def _require_node(self, node_id: Any) -> None:
        if node_id not in self.nodes:
            raise GraphDefinitionError(
                f"the stored run refers to node {node_id!r}, which this graph does not have"
            )

    def _record(
        self, run: _Run, status: str, error: Optional[BaseException] = None
    ) -> Dict[str, Any]:
        return {
            "run_id": run.info.run_id,
            "graph_id": self.graph_id,
            "status": status,
            "inputs": run.info.inputs,
            "frontier": run.frontier(),
            "joins": run.joins,
            "step": run.step,
            "last_node": run.last_node,
            "error": f"{type(error).__name__}: {error}" if error is not None else None,
        }

    async def _drive(self, run: _Run) -> RunResult:
        """Run the loop with observers, status bookkeeping and the final save."""
        info = run.info
        observers = self._observers
        state = self.state
        state._begin_run()
        state._loop = (
            asyncio.get_running_loop()
        )  # for *_sync writes from worker threads
        self._current = run
        self.last_run_id = info.run_id
        try:
            for observer in observers:
                await observer.on_run_start(info)
            await self._loop(run)
            result = run.result("completed")
            self._finish(run, "completed", None)
            for observer in observers:
                await observer.on_run_end(info, result, None)
            return result
        except BaseException as exc:
            if isinstance(exc, RunPaused):
                status = "paused"
            elif isinstance(
                exc, (RunStopped, asyncio.CancelledError, KeyboardInterrupt)
            ):
                # A stop says how the run ended (a policy violation: "failed").
                status = exc.run_status if isinstance(exc, RunStopped) else "cancelled"
            else:
                status = "failed"
            if isinstance(exc, SparkError):
                exc.run_id = info.run_id
            if (
                self._current is run
            ):  # not yet saved (an on_run_end hook may have raised)
                self._finish(run, status, exc)
                for observer in observers:
                    try:
                        await observer.on_run_end(info, None, exc)
                    except Exception:
                        logger.exception("observer %r failed in on_run_end", observer)
            raise
        finally:
            state._end_run()

    def _finish(self, run: _Run, status: str, error: Optional[BaseException]) -> None:
        self._current = None
        self._last = run
        state = self.state
        record = self._record(run, status, error)
        if run.committed is not None:  # durable: the stored position, not one past it
            position = zip(("frontier", "joins", "step", "last_node"), run.committed)
            record.update(position)
        else:
            record["outputs"] = run.outputs
        changes = state._take_changes()  # writes outside nodes
        state.backend.save_run(record, changes)
        if changes:
            state._stored()

    async def _loop(
        self, run: _Run
    ) -> None:  # noqa: C901 - the scheduler, in one place
        ready: Deque[int] = deque(run.pending)
        running: Dict["asyncio.Task[Any]", int] = {}
        finished: Deque["asyncio.Task[Any]"] = deque()
        wake = asyncio.Event()
        loop = asyncio.get_running_loop()
        paused: Optional[RunPaused] = None

        def on_done(task: "asyncio.Task[Any]") -> None:
            finished.append(task)
            wake.set()

        try:
            while True:
                if not running and paused is None:
                    if len(ready) == 1:  # linear fast path: no task, no wait
                        seq = ready.popleft()
                        node_id, inputs = run.pending[seq]
                        done = await self._exec(run, node_id, inputs)
                        self._complete(run, seq, node_id, done, ready)
                        continue
                    if not ready and not self._release_join(run, ready):
                        break
                    if len(ready) == 1:
                        continue
                if paused is None:
                    while ready:
                        seq = ready.popleft()
                        node_id, inputs = run.pending[seq]
                        task = loop.create_task(self._exec(run, node_id, inputs))
                        task.add_done_callback(on_done)
                        running[task] = seq
                if not running:
                    break
                while not finished:
                    wake.clear()
                    await wake.wait()
                failure: Optional[BaseException] = None
                while finished:
                    task = finished.popleft()
                    seq = running.pop(task)
                    if task.cancelled():
                        failure = failure or asyncio.CancelledError()
                        continue
                    error = task.exception()
                    if error is None:
                        if failure is None:
                            self._complete(
                                run, seq, run.pending[seq][0], task.result(), ready
                            )
                    elif isinstance(error, RunPaused) and not isinstance(
                        failure, Exception
                    ):
                        paused = paused or error
                    elif failure is None:
                        failure = error
                if failure is not None:
                    raise failure
            if paused is not None:
                raise paused
        finally:
            if running:
                for task in running:
                    task.cancel()
                await asyncio.wait(list(running))
                for task in running:  # consume the errors of cancelled siblings
                    if not task.cancelled():
                        task.exception()

    async def _exec(self, run: _Run, node_id: str, inputs: Any) -> Done:
        """Run one node; return its output, the targets of the fired edges, its writes."""
        previous = run.node_results.get(node_id)
        runs = previous[4] if previous is not None else 0
        if runs >= self._max_runs:  # by default, a node runs at most 1,000 times
            raise MaxStepsExceededError(None, node_id, runs)
        node = self.nodes[node_id]
        snapshot = node.state.context_snapshot
        info = run.info
        ctx = ExecutionContext(
            Inputs(inputs),
            node.state,
            self.state,
            {
                "node_id": node_id,
                "run_id": info.run_id,
                "attempt": 1,
                "graph_id": self.graph_id,
                "step": run.step + 1,
            },
            self,
            info.run_id,
            info,
            node,
            self._observers,
        )
        writes = ctx._writes = {}
        # The node's edge conditions are part of its execution (route): one that raises
        # fails the node before it is reported done, and the run stays where it was.
        route = self._routes[node_id]
        observers = self._observers
        started = time.perf_counter()
        try:
            if observers or node.config.has_capabilities():
                output, targets = await execute_node(node, ctx, info, observers, route)
            else:  # nothing runs around the node: its one attempt, without the loop
                output, targets = await _attempt(node, ctx, route)
                node.state.context_snapshot = output
        except BaseException as exc:
            # Whatever stopped the node, it runs again from its start on resume (a paused
            # one too): what it wrote is taken back, so it is not applied twice.
            node.state.context_snapshot = snapshot
            self.state._undo(writes)
            if isinstance(exc, RunPaused):
                status = "paused"
            elif isinstance(exc, RunStopped) or not isinstance(exc, Exception):
                # Cancellation, KeyboardInterrupt, SystemExit: propagate as they are.
                status = "cancelled"
            else:
                status = "failed"
            run.node_results[node_id] = [
                status,
                ctx.metadata["attempt"],
                time.perf_counter() - started,
                None if status != "failed" else str(exc),
                runs,
            ]
            if status == "failed":
                raise _failure(node, exc)  # its __cause__ is exc (or it is exc)
            raise
        run.node_results[node_id] = [
            "completed",
            ctx.metadata["attempt"],
            time.perf_counter() - started,
            None,
            runs + 1,
        ]
        return output, targets, writes

    def _complete(
        self, run: _Run, seq: int, node_id: str, done: Done, ready: Deque[int]
    ) -> None:
        """Record a finished node, send its output along the fired edges, commit the step."""
        output, targets, writes = done
        del run.pending[seq]
        run.step += 1
        run.info.step = run.step
        run.outputs[node_id] = output
        if not targets and (  # a path ends here: the latest such node is the result
            run.last_node is None
            or self._rank[node_id] >= self._rank.get(run.last_node, -1)
        ):
            run.last_node = node_id
        for target in targets:
            if isinstance(target, JoinNode):
                run.joins_dirty = True
                if self._buffer_join(run, node_id, target.id, output):
                    ready.append(run.add(target.id, run.joins[target.id].pop(0)))
                    if not run.joins[target.id]:
                        del run.joins[target.id]
            else:
                ready.append(run.add(target.id, output))
        state = self.state
        backend = state.backend
        # The node's own writes are committed with its step, never with another's.
        changes = state._take_changes(writes) if writes or state._run_writes else None
        if backend.durable:
            frontier = run.frontier()
            joins_changed, run.joins_dirty = run.joins_dirty, False
            backend.commit_step(
                run.info.run_id,
                run.step,
                node_id,
                output,
                frontier,
                run.joins if joins_changed else None,
                changes,
                run.last_node,
            )
            run.stored(frontier, joins_changed)
        elif changes:
            backend.save_state_keys(changes)
        if changes:
            state._stored()
        limit = self.max_steps
        if limit is not None and run.step >= limit and run.pending:
            busiest = max(run.node_results, key=lambda nid: run.node_results[nid][4])
            raise MaxStepsExceededError(limit, busiest, run.node_results[busiest][4])

    def _buffer_join(self, run: _Run, parent: str, join_id: str, output: Any) -> bool:
        """Add a parent's message to the join's first round that lacks it; True when full."""
        rounds = run.joins.setdefault(join_id, [])
        for round_ in rounds:
            if parent not in round_:
                round_[parent] = output
                break
        else:
            rounds.append({parent: output})
        return len(rounds[0]) == len(self._parents[join_id])

    def _release_join(self, run: _Run, ready: Deque[int]) -> bool:
        """When nothing else can run, let the first partially filled join run."""
        for join_id, rounds in list(run.joins.items()):
            if rounds:
                run.joins_dirty = True
                ready.append(run.add(join_id, rounds.pop(0)))
                if not rounds:
                    del run.joins[join_id]
                return True
        return False

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
        run = self._current or self._last
        if run is None:
            run = _Run(
                RunInfo(run_id=uuid.uuid4().hex, graph=self, started_at=time.time())
            )
            run.add(self.start.id, None)
            status = "pending"
        elif run is self._current:
            status = "running"
        else:
            stored = self.state.backend.load_run(run.info.run_id)
            status = (stored or {}).get("status", "completed")
        checkpoint = {
            "version": CHECKPOINT_VERSION,
            "graph_id": self.graph_id,
            "run_id": run.info.run_id,
            "status": status,
            "inputs": run.info.inputs,
            "state": self.state._settled(),  # not the writes of nodes still running
            "frontier": run.frontier(),
            "joins": run.joins,
            "outputs": run.outputs,
            "step": run.step,
            "last_node": run.last_node,
            "node_snapshots": {
                nid: n.state.context_snapshot for nid, n in self.nodes.items()
            },
        }
        try:
            return json.loads(json.dumps(checkpoint, allow_nan=False))  # type: ignore
        except (TypeError, ValueError) as exc:
            raise StateValidationError(
                f"the checkpoint is not JSON-serialisable: {exc}"
            ) from None

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
            record = self._check_checkpoint(checkpoint)
            state = self.state
            new_state = state._check(dict(checkpoint["state"]))
            backend = state.backend
            # One transaction: a crash leaves the old state or the new one, never none.
            changes = {
                key: DELETED for key in backend.load_state() if key not in new_state
            }
            changes.update(new_state)
            backend.save_state_keys(changes)
            state._reload()
            for node_id, snapshot in (checkpoint.get("node_snapshots") or {}).items():
                if node_id in self.nodes:
                    self.nodes[node_id].state.context_snapshot = snapshot
            run = self._run_from_record(record)
            if not run.pending and not run.joins:
                run.info.step = run.step
                self._last = run
                return run.result("completed")
            backend.save_run({**self._record(run, "running"), "outputs": run.outputs})
            if backend.durable:
                run.stored(run.frontier())
            return await self._drive(run)

    def _check_checkpoint(self, checkpoint: Any) -> Dict[str, Any]:
        if not isinstance(checkpoint, dict):
            raise StateValidationError(
                f"a checkpoint must be a dict, got {type(checkpoint)}"
            )
        if checkpoint.get("version") != CHECKPOINT_VERSION:
            raise StateValidationError(
                f"unsupported checkpoint version {checkpoint.get('version')!r}"
            )
        expected = {
            "run_id": str,
            "state": dict,
            "frontier": list,
            "joins": dict,
            "outputs": dict,
            "step": int,
        }
        for key, kind in expected.items():
            if not isinstance(checkpoint.get(key), kind):
                raise StateValidationError(
                    f"checkpoint field {key!r} must be a {kind.__name__}"
                )
        for entry in checkpoint["frontier"]:
            if not (
                isinstance(entry, list)
                and len(entry) == 2
                and isinstance(entry[0], str)
            ):
                raise StateValidationError(
                    f"bad frontier entry in checkpoint: {entry!r}"
                )
            self._require_node(entry[0])
        for join_id in checkpoint["joins"]:
            self._require_node(join_id)
        return {
            k: checkpoint.get(k)
            for k in (
                "run_id",
                "inputs",
                "frontier",
                "joins",
                "outputs",
                "step",
                "last_node",
            )
        }

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
        alias = {node_id: f"n{i}" for i, node_id in enumerate(self.nodes)}
        lines = ["flowchart TD"]
        for node_id, node in self.nodes.items():
            text = _mermaid_text(node_id)
            if node is self.start:
                shape = f'(["{text}"])'
            elif isinstance(node, JoinNode):
                shape = f'{{{{"{text}"}}}}'
            else:
                shape = f'["{text}"]'
            lines.append(f"    {alias[node_id]}{shape}")
        for edge in self.edges:
            label = edge.label()
            arrow = f'-->|"{_mermaid_text(label)}"|' if label else "-->"
            lines.append(f"    {alias[edge.source]} {arrow} {alias[edge.target]}")
        return "\n".join(lines)

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
        mermaid = self.to_mermaid()
        return {
            "text/vnd.mermaid": mermaid,
            "text/markdown": f"```mermaid\n{mermaid}\n```",
            "text/plain": f"{self!r}\n{mermaid}",
        }


def _router(links: List[Tuple[Edge, Node]]) -> Callable[[Any], List[Node]]:
    """Return the function from a node's output to the targets of its edges that fire."""
    if all(edge.kind == "always" for edge, _ in links):  # no condition to check
        targets = [target for _, target in links]
        return lambda output: targets
    return lambda output: [target for edge, target in links if edge.matches(output)]


def _mermaid_text(text: str) -> str:
    return text.replace('"', "#quot;").replace("\n", " ")


__all__ = ["Graph"]
