"""Node work and whole runs on a Dask cluster (``pip install "ai-spine-sdk[dask]"``).

:class:`DaskExecutor` is a :class:`~spark_core.nodes.executors.NodeExecutor` that runs a
node's ``process`` on a ``dask.distributed`` worker. ``dask`` is imported only when one is
built, so ``import spark_core`` stays cheap.

The wire format is pickle (cloudpickle, which ships with dask), never JSON:

* to the worker: a copy of the node without its edges and capabilities (a node class from
  an importable module travels by reference, so the worker must be able to import it), its
  input, its metadata, its previous output and a snapshot of the graph state;
* back: the output, the graph-state writes the node made (its write log) and where it ran.

Both are pickled by this module before they travel, so something unpicklable is refused
with :class:`UnpicklableError` naming the node, and a worker that cannot import the node's
code raises :class:`WorkerImportError` naming the module and the worker.

State: the worker's node reads the snapshot and writes into a local copy whose writes are
logged; the executor applies the log to the graph's state before ``run`` returns, inside
the attempt's step transaction, so the writes are undone when the attempt fails and
committed with the step, as for a node run locally. A sibling's writes made while the node
runs remotely are not seen by it (its snapshot was taken when it started).

Capabilities stay in the graph's process: a timeout (or a cancelled run) cancels the remote
task, a retry submits it again, a circuit breaker counts remote failures, and the branches
of a fan-out are separate tasks, which the scheduler spreads across workers. Tools
(``context.call_tool``) and observers' events are not available to a node on a worker.

Whole runs: :meth:`DaskExecutor.run_graph` runs a graph built by a factory on a worker as
one task. With a durable backend (PostgreSQL) a task whose worker dies is run again by the
scheduler on another worker, which resumes the run from its last committed step. Cancelling
the awaiting coroutine (a cancelled execution, its timeout) sets a Dask ``Event`` the
worker watches, which cancels the run there (a node already running finishes its thread,
as a cancelled local run's plain ``def`` node does, but no further node starts).
"""

from __future__ import annotations

import asyncio
import copy
import inspect
import os
import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Dict, List, Optional, Tuple

from spark_core.errors import RunClaimedError, SparkError
from spark_core.graphs.backends import DELETED, InMemoryStateBackend
from spark_core.nodes.executors import NodeExecutor

if TYPE_CHECKING:  # pragma: no cover
    from spark_core.nodes.base import Node
    from spark_core.nodes.context import ExecutionContext


# How long a rescheduled whole run waits for the claim of the worker that ran it before
# (a dead worker's lease expires within its ``lease``; a live holder keeps renewing it).
CLAIM_WAIT = 300.0


class DistributedError(SparkError):
    """Base of the errors of running work on a cluster."""


class SchedulerUnreachableError(DistributedError, ConnectionError):
    """The Dask scheduler at ``address`` could not be reached.

    Attributes:
        address: The scheduler's address.
    """

    def __init__(self, address: str, reason: str = "") -> None:
        self.address = address
        self.reason = reason
        detail = f": {reason}" if reason else ""
        super().__init__(f"cannot reach the Dask scheduler at {address}{detail}")

    def __reduce__(self) -> Any:
        return (type(self), (self.address, self.reason))


class UnpicklableError(DistributedError, TypeError):
    """What a node needs (or returned) cannot be pickled to travel to or from a worker.

    Attributes:
        node_id: The node (``""``: a whole run's graph factory or input).
        what: What could not be pickled (e.g. ``"its input"``, ``"its output"``).
    """

    def __init__(self, node_id: str, what: str, reason: str) -> None:
        self.node_id = node_id
        self.what = what
        self.reason = reason
        super().__init__(
            f"{_subject(node_id)}: {what} cannot be pickled to travel to or from a Dask "
            f"worker ({reason})"
        )

    def __reduce__(self) -> Any:
        return (type(self), (self.node_id, self.what, self.reason))


class WorkerImportError(DistributedError, ImportError):
    """A worker cannot import the code of the node (or graph) it was sent.

    Attributes:
        node_id: The node (``""``: a whole run's graph factory).
        module: The module the worker could not import.
        worker: Where: the worker's address and process id.
    """

    def __init__(self, node_id: str, module: str, worker: str) -> None:
        self.node_id = node_id
        self.module = module
        self.worker = worker
        super().__init__(
            f"{_subject(node_id)}: module {module!r} is not importable on the Dask worker "
            f"{worker}; install it (or put it on PYTHONPATH) on every worker"
        )

    def __reduce__(self) -> Any:
        return (type(self), (self.node_id, self.module, self.worker))


def _subject(node_id: str) -> str:
    return f"node {node_id!r}" if node_id else "the graph factory"


@dataclass
class NodeOutcome:
    """One node's outcome in a run that ran on a worker (what ``RunResult`` reports)."""

    status: str
    attempts: int
    duration_s: float
    error: Optional[str]


@dataclass
class RemoteRun:
    """What :meth:`DaskExecutor.run_graph` returns: the run's result as it ended remotely.

    Attributes:
        status: The run's status (``"completed"``).
        content: The run's output.
        node_results: Node id -> :class:`NodeOutcome`.
        worker: The worker that finished the run (address and process id).
        resumed: The run was resumed from a stored position (its first worker died).
    """

    status: str
    content: Any
    node_results: Dict[str, NodeOutcome] = field(default_factory=dict)
    worker: str = ""
    resumed: bool = False


def _import_dask() -> Any:
    try:
        import distributed
    except ImportError:
        raise DistributedError(
            'DaskExecutor needs dask.distributed: pip install "ai-spine-sdk[dask]"'
        ) from None
    return distributed


def _dumps(value: Any) -> bytes:
    import cloudpickle  # type: ignore[import-untyped]

    return cloudpickle.dumps(value)  # type: ignore[no-any-return]


def _where() -> str:
    """This worker's address and process id (for error messages and records)."""
    try:
        from distributed import get_worker

        address = str(get_worker().address)
    except (ImportError, ValueError):  # not on a worker (a test calling the function)
        address = "(no worker)"
    return f"{address} (pid {os.getpid()})"


class _LoggedBackend(InMemoryStateBackend):
    """A worker's copy of the graph state that keeps a log of the node's writes."""

    def __init__(self, initial: Dict[str, Any]) -> None:
        super().__init__(initial)
        self.writes: Dict[str, Any] = {}  # key -> newest value (DELETED: deleted)

    def save_state_keys(self, changes: Dict[str, Any]) -> None:
        """Store ``changes`` and log them (``DELETED`` removes a key).

        Args:
            changes: Key -> value.
        """
        super().save_state_keys(changes)
        self.writes.update(changes)


def _loads(node_id: str, blob: bytes) -> Any:
    import pickle

    try:
        return pickle.loads(blob)
    except ImportError as exc:  # ModuleNotFoundError: the node's code is not here
        raise WorkerImportError(node_id, exc.name or str(exc), _where()) from None


def run_node_remotely(node_id: str, blob: bytes) -> bytes:
    """Run a pickled node on this worker (the function :class:`DaskExecutor` submits).

    Args:
        node_id: The node's id (for errors raised before the node is unpickled).
        blob: The pickled ``(node, input, metadata, previous output, state snapshot)``.

    Returns:
        The pickled ``(output, writes, deleted keys, worker)``.

    Raises:
        WorkerImportError: The node's module is not importable here.
        UnpicklableError: The node's output cannot be pickled.
    """
    from spark_core.graphs.state import GraphState
    from spark_core.nodes.context import ExecutionContext, Inputs, NodeState

    node, content, metadata, previous, snapshot = _loads(node_id, blob)
    backend = _LoggedBackend(snapshot)
    ctx = ExecutionContext(
        Inputs(content),
        NodeState(previous),
        GraphState(backend),
        metadata,
        run_id=metadata.get("run_id"),
    )
    output = node.process(ctx)
    if inspect.isawaitable(output):
        output = asyncio.run(_awaited(output))
    writes = {k: v for k, v in backend.writes.items() if v is not DELETED}
    deleted = [k for k, v in backend.writes.items() if v is DELETED]
    try:
        return _dumps((output, writes, deleted, _where()))
    except Exception as exc:
        raise UnpicklableError(node_id, "its output", f"{type(exc).__name__}: {exc}")


async def _awaited(awaitable: Any) -> Any:
    return await awaitable


def run_graph_remotely(blob: bytes) -> RemoteRun:
    """Run (or resume) a whole run on this worker (what :meth:`run_graph` submits).

    A durable backend that already holds the run (its previous worker died) resumes it
    from its last committed step; a claim still held by the dead worker is waited out
    (for at most :data:`CLAIM_WAIT` seconds, then ``RunClaimedError`` fails the task).

    Args:
        blob: The pickled ``(graph factory, run id, input)``.

    Returns:
        The run's result.
    """
    factory, run_id, input_data = _loads("", blob)
    graph = factory()
    backend = graph.state.backend
    distributed = _import_dask()
    stop = distributed.Event(_stop_event(run_id), client=distributed.get_client())
    give_up = time.monotonic() + CLAIM_WAIT
    try:
        while True:
            resumed = bool(getattr(backend, "durable", False)) and (
                backend.load_run(run_id) is not None
            )
            try:
                result = asyncio.run(
                    _stoppable(graph, run_id, input_data, resumed, stop)
                )
                break
            except RunClaimedError as exc:  # the dead worker's lease has not expired
                if time.monotonic() > give_up:  # a live holder: it runs the run
                    raise
                time.sleep(min(max(exc.expires_in, 0.05), 5.0))
    finally:
        close = getattr(backend, "close", None)
        if close is not None:
            close()
    outcomes = {
        str(node_id): NodeOutcome(
            info.status, info.attempts, info.duration_s, info.error
        )
        for node_id, info in (result.node_results or {}).items()
    }
    return RemoteRun(result.status, result.content, outcomes, _where(), resumed)


def _stop_event(run_id: str) -> str:
    """The name of the Dask event that stops a whole run (set when its caller cancels)."""
    return f"spark-stop-{run_id}"


async def _stoppable(
    graph: Any, run_id: str, input_data: Any, resume: bool, event: Any
) -> Any:
    """Run the graph; cancel it when the caller sets ``event`` (a Dask ``Event``)."""
    loop = asyncio.get_running_loop()
    task = asyncio.current_task()
    assert task is not None
    finished = threading.Event()

    def watch() -> None:  # a thread: Event.wait blocks
        while not finished.is_set():
            if event.wait(timeout=0.5):
                try:
                    loop.call_soon_threadsafe(task.cancel)
                except RuntimeError:  # the run ended and its loop closed meanwhile
                    pass
                return

    watcher = threading.Thread(target=watch, name="spark-stop-watch", daemon=True)
    watcher.start()
    try:
        if resume:
            return await graph.resume(run_id)
        return await graph.run(input_data, run_id=run_id)
    finally:
        finished.set()


class DaskExecutor(NodeExecutor):
    """Runs nodes' ``process`` (and whole runs) on a Dask cluster (module docstring).

    Args:
        address_or_client: The scheduler's address (``"tcp://host:8786"``) or a
            ``distributed.Client`` (sync). An address is connected to at once; the
            executor then owns that client (:meth:`close` closes it).
        resources: Dask worker resources each node task needs, e.g. ``{"GPU": 1}``.
        connect_timeout: Seconds to wait for the scheduler.

    Raises:
        SchedulerUnreachableError: No scheduler answers at the address.
        DistributedError: dask.distributed is not installed.
    """

    def __init__(
        self,
        address_or_client: Any,
        resources: Optional[Dict[str, float]] = None,
        *,
        connect_timeout: float = 10.0,
    ) -> None:
        distributed = _import_dask()
        self.resources = dict(resources) if resources else None
        if isinstance(address_or_client, distributed.Client):
            self.client = address_or_client
            self.address = str(address_or_client.scheduler.address)
            self._owned = False
            return
        if not isinstance(address_or_client, str) or not address_or_client:
            raise DistributedError(
                "DaskExecutor needs a scheduler address or a distributed.Client, "
                f"got {address_or_client!r}"
            )
        self.address = address_or_client
        try:
            self.client = distributed.Client(
                address_or_client,
                timeout=connect_timeout,
                set_as_default=False,
            )
        except (OSError, asyncio.TimeoutError) as exc:
            raise SchedulerUnreachableError(address_or_client, str(exc)) from None
        self._owned = True

    def __repr__(self) -> str:
        return f"DaskExecutor(address={self.address!r})"

    def close(self) -> None:
        """Close the client if this executor opened it."""
        if self._owned:
            self.client.close()

    async def _submit(self, function: Callable[..., Any], *args: Any, name: str) -> Any:
        """Submit a task, await its result; cancelling the await cancels the task."""
        future = self.client.submit(
            function, *args, pure=False, resources=self.resources, key=name
        )
        loop = asyncio.get_running_loop()
        done: "asyncio.Future[None]" = loop.create_future()

        def finished(_: Any) -> None:  # on the client's thread
            try:
                loop.call_soon_threadsafe(_settle, done)
            except RuntimeError:  # the loop closed: nobody waits any more
                pass

        future.add_done_callback(finished)
        try:
            await done
        except BaseException:
            future.cancel()
            raise
        return future.result()

    async def run(self, node: "Node", context: "ExecutionContext") -> Any:
        """Run ``node.process`` on a worker; apply its state writes to this attempt.

        Args:
            node: The node.
            context: Its execution context for this attempt.

        Returns:
            The node's output.

        Raises:
            UnpicklableError: The node, its input or its output cannot be pickled.
            WorkerImportError: The worker cannot import the node's module.
        """
        state = context.graph_state
        snapshot = {} if state is None else await state.snapshot()
        blob = _pickle_payload(
            node, context.inputs.content, dict(context.metadata), snapshot
        )
        name = f"spark-node-{node.id}-{os.urandom(6).hex()}"
        reply = await self._submit(run_node_remotely, node.id, blob, name=name)
        output, writes, deleted, _ = _loads(node.id, reply)
        if state is not None:
            if writes:
                await state.update(writes)
            for key in deleted:
                await state.delete(key)
        return output

    async def run_graph(
        self, factory: Callable[[], Any], run_id: str, input_data: Any
    ) -> RemoteRun:
        """Run a whole run on a worker as one task (see the module docstring).

        Args:
            factory: Builds the graph on the worker (picklable: a module-level function).
            run_id: The run's id (a durable backend resumes it if it holds it).
            input_data: The run's input.

        Returns:
            The run's result.

        Raises:
            UnpicklableError: The factory or the input cannot be pickled.
        """
        try:
            blob = _dumps((factory, run_id, input_data))
        except Exception as exc:
            raise UnpicklableError("", "it or the run's input", str(exc)) from None
        try:
            result: RemoteRun = await self._submit(
                run_graph_remotely, blob, name=f"spark-run-{run_id}"
            )
        except asyncio.CancelledError:  # cancelled or timed out: stop the remote run
            _import_dask().Event(_stop_event(run_id), client=self.client).set()
            raise
        return result


def _settle(done: "asyncio.Future[None]") -> None:
    if not done.done():
        done.set_result(None)


def _pickle_payload(
    node: "Node", content: Any, metadata: Dict[str, Any], snapshot: Dict[str, Any]
) -> bytes:
    """Pickle what the worker needs; name the part that cannot be pickled."""
    from spark_core.nodes.base import NodeConfig

    shipped = copy.copy(node)  # without edges (the rest of the graph) or capabilities
    shipped._links = []
    shipped.config = NodeConfig(
        description=node.config.description, metadata=dict(node.config.metadata)
    )
    previous = node.state.context_snapshot
    parts: List[Tuple[str, Any]] = [
        ("the node object", shipped),
        ("its input", content),
        ("its metadata", metadata),
        ("its previous output", previous),
        ("the graph state", snapshot),
    ]
    try:
        return _dumps(tuple(value for _, value in parts))
    except Exception as exc:
        for what, value in parts:
            try:
                _dumps(value)
            except Exception:
                raise UnpicklableError(
                    node.id, what, f"{type(exc).__name__}: {exc}"
                ) from None
        raise UnpicklableError(node.id, "its payload", str(exc)) from None


__all__ = [
    "DaskExecutor",
    "DistributedError",
    "SchedulerUnreachableError",
    "UnpicklableError",
    "WorkerImportError",
    "RemoteRun",
    "NodeOutcome",
    "run_node_remotely",
    "run_graph_remotely",
]
