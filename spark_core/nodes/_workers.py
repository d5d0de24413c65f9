"""The worker threads that run plain ``def`` nodes off the event loop.

``asyncio.to_thread`` costs ~45 µs per call on a small VM (a ``concurrent.futures`` future,
its condition, the executor's bookkeeping, then ``wrap_future`` chaining back to the loop);
in a chain of plain ``def`` nodes that hop is the whole cost of a node. This pool hands a
job straight to an idle worker's own queue and the worker settles the asyncio future with
one ``call_soon_threadsafe``: ~40 % less per node. The most recently idle worker is reused
first, so a chain keeps running on one warm thread.

Like the default executor: at most ``min(32, cpus + 4)`` threads (more jobs wait in a
backlog), the caller's context variables are copied into the job, and at interpreter exit
running jobs finish before the process ends. Idle workers exit after a while.
"""

from __future__ import annotations

import asyncio
import contextvars
import os
import queue
import threading
from collections import deque
from typing import Any, Callable, Deque, List, Optional, Tuple

# (loop, future, context, function, argument)
_Job = Tuple[
    asyncio.AbstractEventLoop,
    "asyncio.Future[Any]",
    contextvars.Context,
    Callable[[Any], Any],
    Any,
]
_Inbox = queue.SimpleQueue[Optional[_Job]]

IDLE_TIMEOUT_S = 30.0


def _settle(
    future: "asyncio.Future[Any]", result: Any, error: Optional[BaseException]
) -> None:
    if future.done():  # the awaiting node was cancelled (e.g. timed out)
        return
    if error is None:
        future.set_result(result)
    else:
        future.set_exception(error)


class WorkerPool:
    """Threads that run blocking calls for the event loop (see the module docstring)."""

    def __init__(
        self, max_workers: Optional[int] = None, idle_timeout: float = IDLE_TIMEOUT_S
    ) -> None:
        """Create an empty pool (threads start on demand).

        Args:
            max_workers: Most threads at once (default ``min(32, cpus + 4)``).
            idle_timeout: Seconds an idle thread waits for work before it exits.
        """
        self.max_workers = max_workers or min(32, (os.cpu_count() or 1) + 4)
        self.idle_timeout = idle_timeout
        self._reset()

    def _reset(self) -> None:
        # Also called in a forked child, whose copy of the pool has no threads.
        self._lock = threading.Lock()
        self._idle: List[_Inbox] = (
            []
        )  # inboxes of idle workers; the last one is the warmest
        self._backlog: Deque[_Job] = deque()
        self._threads = 0
        self._closed = False

    @property
    def threads(self) -> int:
        """How many worker threads are alive (busy or idle)."""
        return self._threads

    def run(self, func: Callable[[Any], Any], arg: Any) -> "asyncio.Future[Any]":
        """Run ``func(arg)`` in a worker thread; await the returned future for its result.

        Must be called from a running event loop. Cancelling the future does not stop the
        call (a thread cannot be interrupted); its result is then dropped.

        Args:
            func: The blocking function.
            arg: Its one argument.

        Returns:
            A future of the loop that gets ``func``'s result or exception.
        """
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        job: _Job = (loop, future, contextvars.copy_context(), func, arg)
        with self._lock:
            if self._idle:
                inbox: Optional[_Inbox] = self._idle.pop()
            elif self._threads < self.max_workers:
                self._threads += 1
                inbox = None
            else:
                self._backlog.append(job)
                return future
        if inbox is None:
            inbox = queue.SimpleQueue()
            try:
                threading.Thread(
                    target=self._work,
                    args=(inbox,),
                    name="spark-node-worker",
                    daemon=_DAEMON,
                ).start()
            except BaseException:
                with self._lock:
                    self._threads -= 1
                raise
        inbox.put(job)
        return future

    def _work(self, inbox: _Inbox) -> None:
        job = inbox.get()
        while job is not None:
            job, idle = self._run_job(inbox, job)
            if idle:
                job = self._wait(inbox)

    def _run_job(self, inbox: _Inbox, job: _Job) -> Tuple[Optional[_Job], bool]:
        """Run one job; return the next job (from the backlog) and whether to go idle."""
        loop, future, context, func, arg = job
        result, error = None, None
        try:
            result = context.run(func, arg)
        except BaseException as exc:  # delivered to the awaiting coroutine
            error = exc
        following: Optional[_Job] = None
        idle = False
        with self._lock:
            if self._backlog:
                following = self._backlog.popleft()
            elif self._closed:
                self._threads -= 1
            else:
                # Idle BEFORE the result is delivered, so the node that runs next reuses
                # this thread instead of starting another one.
                self._idle.append(inbox)
                idle = True
        try:
            loop.call_soon_threadsafe(_settle, future, result, error)
        except RuntimeError:  # the loop was closed meanwhile: nobody is waiting
            pass
        return following, idle

    def _wait(self, inbox: _Inbox) -> Optional[_Job]:
        try:
            return inbox.get(timeout=self.idle_timeout)
        except queue.Empty:
            with self._lock:
                if inbox in self._idle:  # nobody took this worker: retire it
                    self._idle.remove(inbox)
                    self._threads -= 1
                    return None
            return inbox.get()  # taken just now: its job is on the way

    def close(self) -> None:
        """Let idle workers exit; busy ones exit after their job (and the backlog)."""
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, []
            self._threads -= len(idle)
        for inbox in idle:
            inbox.put(None)


_pool = WorkerPool()


def run_in_worker(func: Callable[[Any], Any], arg: Any) -> "asyncio.Future[Any]":
    """Run ``func(arg)`` in the shared worker pool (see :meth:`WorkerPool.run`).

    Args:
        func: The blocking function.
        arg: Its one argument.

    Returns:
        A future of the running loop.
    """
    return _pool.run(func, arg)


def _reinit_after_fork() -> None:
    _pool._reset()


# Interpreter exit: idle workers leave at once, running jobs finish first (the non-daemon
# threads are joined) -- what concurrent.futures does for asyncio.to_thread. Should a
# Python lack that hook, the workers are daemon threads so an idle one never delays exit.
_register_atexit = getattr(threading, "_register_atexit", None)
_DAEMON = _register_atexit is None
if _register_atexit is not None:
    _register_atexit(_pool.close)
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reinit_after_fork)

__all__ = ["WorkerPool", "run_in_worker"]
