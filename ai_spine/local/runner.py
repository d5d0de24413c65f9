"""The background runner: one event loop in a daemon thread, where executions run.

LocalSpine's methods are synchronous and may be called from any thread (or a notebook whose
loop is already running); each execution becomes a task on this loop, at most
``max_concurrency`` of them running at once.
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any, Callable, Dict, Optional, Tuple

from ai_spine.local.records import ExecutionRecord

__all__ = ["LoopRunner", "run_graph", "node_results", "describe_error"]


class LoopRunner:
    """An asyncio loop in a daemon thread, started on first use.

    Args:
        max_concurrency: Tasks that may hold :attr:`slots` at once.
        name: The thread's name.
    """

    def __init__(self, max_concurrency: int, name: str = "ai-spine-local") -> None:
        self.max_concurrency = max_concurrency
        self.name = name
        self.loop: Optional[asyncio.AbstractEventLoop] = None
        self.slots: Optional[asyncio.Semaphore] = None
        self._thread: Optional[threading.Thread] = None

    def start(self) -> asyncio.AbstractEventLoop:
        """Start the loop thread unless it runs already; return the loop.

        Not thread-safe: the caller serialises calls (LocalSpine holds its lock).
        """
        if self.loop is not None:
            return self.loop
        loop = asyncio.new_event_loop()
        ready = threading.Event()
        thread = threading.Thread(
            target=self._run, args=(loop, ready), name=self.name, daemon=True
        )
        thread.start()
        ready.wait()
        self._thread = thread
        self.loop = loop
        return loop

    def call(self, callback: Callable[..., Any], *args: Any) -> None:
        """Run ``callback(*args)`` on the loop thread, soon.

        Raises:
            RuntimeError: The loop is stopped or was never started.
        """
        if self.loop is None:
            raise RuntimeError("the runner's loop is not started")
        self.loop.call_soon_threadsafe(callback, *args)

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the loop (its unfinished tasks are cancelled) and join its thread."""
        loop, thread = self.loop, self._thread
        if loop is None or thread is None:
            return
        try:
            loop.call_soon_threadsafe(loop.stop)
        except RuntimeError:  # closed already
            pass
        thread.join(timeout=timeout)

    def _run(self, loop: asyncio.AbstractEventLoop, ready: threading.Event) -> None:
        asyncio.set_event_loop(loop)
        self.slots = asyncio.Semaphore(self.max_concurrency)
        loop.call_soon(ready.set)
        try:
            loop.run_forever()
        finally:
            tasks = [t for t in asyncio.all_tasks(loop) if not t.done()]
            for t in tasks:
                t.cancel()
            if tasks:
                loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))
            loop.close()


async def run_graph(
    graph: Any,
    rec: ExecutionRecord,
    resume: bool,
    clock: Callable[[], float],
    remote: Optional[Tuple[Any, Callable[[], Any]]] = None,
) -> Any:
    """Run (or resume) ``rec``'s graph, failing with asyncio.TimeoutError at its deadline.

    Args:
        graph: The graph to run (``None`` with ``remote``).
        rec: The execution (its id is the run id; ``timeout_at`` its deadline, if any).
        resume: Resume the stored run instead of starting one.
        clock: The wall clock ``timeout_at`` is measured on.
        remote: ``(executor, graph factory)``: run it as one task of the executor's
            cluster, which resumes a stored run itself (see :func:`node_results`).

    Returns:
        What the graph's run returns.
    """
    if remote is not None:
        coro = _run_remotely(remote[0], remote[1], rec)
    elif resume:
        coro = graph.resume(rec.execution_id)
    else:
        coro = graph.run(rec.input_data, run_id=rec.execution_id)
    if rec.timeout_at is None:
        return await coro
    left = rec.timeout_at - clock()
    if left <= 0:  # ran out while the process was down
        coro.close()
        raise asyncio.TimeoutError()
    return await asyncio.wait_for(coro, left)


async def _run_remotely(
    executor: Any, factory: Callable[[], Any], rec: ExecutionRecord
) -> Any:
    return await executor.run_graph(factory, rec.execution_id, rec.input_data)


def node_results(result: Any) -> Dict[str, Any]:
    """Each node's outcome in a run's result, as JSON (status, attempts, duration, error).

    A run on a cluster (a ``RemoteRun``) also tells, for each node, the ``worker`` that
    finished the run and whether it ``resumed`` it (its first worker died).
    """
    out: Dict[str, Any] = {}
    where = {}
    if hasattr(result, "worker") and hasattr(result, "resumed"):
        where = {"worker": result.worker, "resumed": bool(result.resumed)}
    for nid, info in (getattr(result, "node_results", None) or {}).items():
        out[str(nid)] = {
            "status": getattr(info, "status", None),
            "attempts": getattr(info, "attempts", None),
            "duration_s": getattr(info, "duration_s", None),
            "error": getattr(info, "error", None),
            **where,
        }
    return out


def describe_error(exc: BaseException) -> str:
    """The error message an execution that raised ``exc`` reports."""
    text = str(exc)
    if type(exc).__module__.startswith("spark_core"):
        from spark_core.errors import RunPaused  # loaded already: a graph raised this

        if isinstance(exc, RunPaused):  # LocalSpine does not resume paused runs
            return f"the run paused ({text or 'e.g. waiting for an approval'})"
        if text:
            return text  # the engine's messages already name the node and the cause
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
