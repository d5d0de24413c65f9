"""The scheduler: one run of a graph, from its frontier to its result.

The story of one step:

1. **Frontier.** Pending work is a frontier of entries ``(node id, inputs)``,
   in the order they were added. While exactly one entry is ready and nothing else runs (a
   linear chain), its node is awaited inline, without creating a task; otherwise every
   ready entry becomes a task and the loop takes tasks as they finish.
2. **Execute** (:meth:`Scheduler.execute`). The node gets its ``ExecutionContext`` and a
   :class:`~spark_core.graphs.transaction.StepTransaction` for its state writes, and the
   node runner (:func:`~spark_core.nodes.runner.run_node`) runs it: attempts,
   capabilities, output check, and the edge conditions that say where the output goes.
   If the node fails or stops, its writes are undone and the run ends there.
3. **Complete** (:meth:`Scheduler.complete`). The output is recorded and sent along every
   fired edge: to a join's buffer, or as a new frontier entry. Then the step commits: its
   state writes, and with a durable backend its output and the new frontier too, in one
   backend transaction (``commit_step``), so a killed run resumes right after it.
4. **Joins.** A :class:`~spark_core.nodes.JoinNode` runs when one message from each
   parent arrived; when nothing else can run, the first partly filled join runs with what
   it has (a branch not taken never delivers).
5. **End.** With nothing pending and no join holding messages the run completes: its
   result is the output of the end node latest in graph order. Failed, stopped, paused
   or cancelled, it is saved with that status, at the last committed position.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from typing import (
    TYPE_CHECKING,
    Any,
    Deque,
    Dict,
    List,
    Optional,
    Tuple,
)

from spark_core.errors import (
    MaxStepsExceededError,
    RunPaused,
    RunStopped,
    SparkError,
)
from spark_core.graphs.observers import NodeRunInfo, RunResult
from spark_core.graphs.run import Run
from spark_core.graphs.transaction import StepTransaction
from spark_core.nodes.base import JoinNode, Node
from spark_core.nodes.context import ExecutionContext, Inputs
from spark_core.nodes.runner import failure, run_node

if TYPE_CHECKING:  # pragma: no cover
    from spark_core.graphs.graph import Graph

logger = logging.getLogger("spark_core.graph")

# Default bound of a run: how many times one node may complete in it (a loop-free graph of
# any size never reaches it; a loop that does not end stops after this many rounds).
MAX_RUNS_PER_NODE = 1000


# What a node execution hands to Scheduler.complete: its output, the targets of the
# edges that fired, and its step transaction (to commit with the step).
Done = Tuple[Any, List[Node], StepTransaction]


class Scheduler:
    """Runs one :class:`Run` of a graph to its end (see the module docstring)."""

    def __init__(self, graph: "Graph", run: Run) -> None:
        self.graph = graph
        self.run = run
        self.nodes = graph.nodes
        self.routes = graph.topology.routes
        self.observers = graph._observers
        self.state = graph.state
        self.backend = graph.state.backend
        self.max_steps = graph.max_steps
        self.max_runs = (
            MAX_RUNS_PER_NODE if graph.max_steps is None else graph.max_steps
        )

    async def drive(self) -> RunResult:
        """Run the loop with the observers' run hooks and the final save.

        Returns:
            The completed run's result.
        """
        run, graph = self.run, self.graph
        info = run.info
        observers = self.observers
        self.ledger = self.state.begin_run()
        try:
            for observer in observers:
                await observer.on_run_start(info)
            await self.loop()
            result = run.result("completed")
            self.finish("completed", None)
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
            if graph._current is run:  # not yet saved (an on_run_end hook may raise)
                self.finish(status, exc)
                for observer in observers:
                    try:
                        await observer.on_run_end(info, None, exc)
                    except Exception:
                        logger.exception("observer %r failed in on_run_end", observer)
            raise
        finally:
            self.state.end_run()

    def finish(self, status: str, error: Optional[BaseException]) -> None:
        """Save the run record with ``status`` (at the committed position if durable)."""
        run, graph = self.run, self.graph
        graph._current = None
        graph._last = run
        record = run.record(graph.graph_id, status, error)
        stored = run.committed
        if stored.step is not None:  # durable: the stored position, not one past it
            record["frontier"], record["joins"] = stored.frontier, stored.joins
            record["step"], record["last_node"] = stored.step, stored.last_node
        else:
            record["outputs"] = run.outputs
        self.ledger.save_run(self.backend, record)  # with the writes made outside nodes

    async def loop(self) -> None:  # noqa: C901 - the frontier loop, in one place
        """Run the frontier until nothing is left (see the module docstring)."""
        run = self.run
        ready: Deque[int] = deque(run.pending)
        running: Dict["asyncio.Task[Any]", int] = {}
        finished: Deque["asyncio.Task[Any]"] = deque()
        wake = asyncio.Event()
        aloop = asyncio.get_running_loop()
        paused: Optional[RunPaused] = None

        def on_done(task: "asyncio.Task[Any]") -> None:
            finished.append(task)
            wake.set()

        try:
            while True:
                if not running and paused is None:
                    if len(ready) == 1:  # a linear chain: no task, no wait
                        seq = ready.popleft()
                        node_id, inputs = run.pending[seq]
                        done = await self.execute(node_id, inputs)
                        self.complete(seq, node_id, done, ready)
                        continue
                    if not ready and not self.release_join(ready):
                        break
                    if len(ready) == 1:
                        continue
                if paused is None:
                    while ready:
                        seq = ready.popleft()
                        entry = run.pending[seq]
                        task = aloop.create_task(self.execute(*entry))
                        task.add_done_callback(on_done)
                        running[task] = seq
                if not running:
                    break
                while not finished:
                    wake.clear()
                    await wake.wait()
                failed: Optional[BaseException] = None
                while finished:
                    task = finished.popleft()
                    seq = running.pop(task)
                    if task.cancelled():
                        failed = failed or asyncio.CancelledError()
                        continue
                    error = task.exception()
                    if error is None:
                        if failed is None:
                            node_id = run.pending[seq][0]
                            self.complete(seq, node_id, task.result(), ready)
                    elif isinstance(error, RunPaused) and not isinstance(
                        failed, Exception
                    ):
                        paused = paused or error
                    elif failed is None:
                        failed = error
                if failed is not None:
                    raise failed
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

    async def execute(self, node_id: str, inputs: Any) -> Done:
        """Run one node in its own step transaction; record what happened to it.

        Args:
            node_id: The node.
            inputs: Its ``inputs.content``.

        Returns:
            Its output and the targets of the edges that fired.

        Raises:
            NodeExecutionError: The node failed (its writes are undone).
            MaxStepsExceededError: The node already completed ``max_runs`` times.
        """
        run = self.run
        result = run.node_results.get(node_id)
        runs = result.runs if result is not None else 0
        if runs >= self.max_runs:  # by default, a node runs at most 1,000 times
            raise MaxStepsExceededError(None, node_id, runs)
        node = self.nodes[node_id]
        snapshot = node.state.context_snapshot
        info = run.info
        graph = self.graph
        ctx = ExecutionContext(
            Inputs(inputs),
            node.state,
            self.state,
            {
                "node_id": node_id,
                "run_id": info.run_id,
                "attempt": 1,
                "graph_id": graph.graph_id,
                "step": run.step + 1,
            },
            graph,
            info.run_id,
            info,
            node,
            self.observers,
        )
        step = ctx.transaction = StepTransaction(self.ledger)
        started = time.perf_counter()
        try:
            # The node's edge conditions are part of its execution (route): one that
            # raises fails the node before it is reported done.
            output, targets = await run_node(
                node,
                ctx,
                self.routes[node_id],
                info,
                self.observers,
                node.config.executor or graph.executor,
            )
        except BaseException as exc:
            # Whatever stopped the node, it runs again from its start on resume (a paused
            # one too): what it wrote is taken back, so it is not applied twice.
            node.state.context_snapshot = snapshot
            step.undo()
            if isinstance(exc, RunPaused):
                status = "paused"
            elif isinstance(exc, RunStopped) or not isinstance(exc, Exception):
                status = (
                    "cancelled"  # also CancelledError, KeyboardInterrupt, SystemExit
                )
            else:
                status = "failed"
            run.node_results[node_id] = NodeRunInfo(
                status,
                ctx.metadata["attempt"],
                time.perf_counter() - started,
                None if status != "failed" else str(exc),
                runs,
            )
            if status == "failed":
                raise failure(node, exc)  # its __cause__ is exc (or it is exc)
            raise
        duration = time.perf_counter() - started
        if result is None:
            run.node_results[node_id] = NodeRunInfo(
                "completed", ctx.metadata["attempt"], duration, None, 1
            )
        else:  # a loop runs the node again: update its record in place
            result.status, result.attempts = "completed", ctx.metadata["attempt"]
            result.duration_s, result.error, result.runs = duration, None, runs + 1
        return output, targets, step  # complete() commits the step

    def complete(self, seq: int, node_id: str, done: Done, ready: Deque[int]) -> None:
        """Record a finished node, send its output along the fired edges, commit the step.

        Args:
            seq: Its frontier entry.
            node_id: The node.
            done: What :meth:`execute` returned.
            ready: The entries ready to run (new ones are appended).
        """
        output, targets, step = done
        run = self.run
        del run.pending[seq]
        run.step += 1
        run.info.step = run.step
        run.outputs[node_id] = output
        rank = self.graph.topology.rank
        if not targets and (  # a path ends here: the latest such node is the result
            run.last_node is None or rank[node_id] >= rank.get(run.last_node, -1)
        ):
            run.last_node = node_id
        for target in targets:
            if isinstance(target, JoinNode):
                run.joins_dirty = True
                join_id = target._id
                if self.buffer_join(node_id, join_id, output):
                    ready.append(run.add(join_id, run.joins[join_id].pop(0)))
                    if not run.joins[join_id]:
                        del run.joins[join_id]
            else:  # run.add, inline: once per step
                run.seq += 1
                run.pending[run.seq] = (target._id, output)
                ready.append(run.seq)
        # The node's own writes are committed with its step, never with another's.
        backend = self.backend
        if backend.durable:
            frontier = run.frontier()
            joins_changed, run.joins_dirty = run.joins_dirty, False
            step.commit_step(
                backend,
                run.info.run_id,
                run.step,
                node_id,
                output,
                frontier,
                run.joins if joins_changed else None,
                run.last_node,
            )
            run.stored(frontier, joins_changed)
        elif step.log or self.ledger.outside:
            step.commit(backend)
        limit = self.max_steps
        if limit is not None and run.step >= limit and run.pending:
            results = run.node_results
            busiest = max(results, key=lambda nid: results[nid].runs)
            raise MaxStepsExceededError(limit, busiest, results[busiest].runs)

    def buffer_join(self, parent: str, join_id: str, output: Any) -> bool:
        """Add a parent's message to the join's first round that lacks it; True when full.

        Args:
            parent: The parent node.
            join_id: The join node.
            output: The parent's output.

        Returns:
            True when the join's first round has every parent's message.
        """
        rounds = self.run.joins.setdefault(join_id, [])
        for round_ in rounds:
            if parent not in round_:
                round_[parent] = output
                break
        else:
            rounds.append({parent: output})
        return len(rounds[0]) == len(self.graph.topology.parents[join_id])

    def release_join(self, ready: Deque[int]) -> bool:
        """When nothing else can run, let the first partly filled join run.

        Args:
            ready: The entries ready to run.

        Returns:
            True when a join was released.
        """
        run = self.run
        for join_id, rounds in list(run.joins.items()):
            if rounds:
                run.joins_dirty = True
                ready.append(run.add(join_id, rounds.pop(0)))
                if not rounds:
                    del run.joins[join_id]
                return True
        return False


__all__ = ["Scheduler", "MAX_RUNS_PER_NODE"]
