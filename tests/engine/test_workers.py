"""The worker threads that run plain ``def`` nodes."""

from __future__ import annotations

import asyncio
import contextvars
import threading
import time
from typing import Any, Dict, List

import pytest

from spark_core.graphs import Graph
from spark_core.nodes import ExecutionContext, Node
from spark_core.nodes._workers import WorkerPool

REQUEST_ID: contextvars.ContextVar[str] = contextvars.ContextVar("request_id")


def _until(condition: Any, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.005)
    return True


def test_results_errors_and_context_variables_reach_the_caller() -> None:
    pool = WorkerPool()

    def work(x: int) -> Dict[str, Any]:
        if x < 0:
            raise ValueError("negative")
        return {"x": x, "request": REQUEST_ID.get(), "thread": threading.get_ident()}

    async def main() -> Dict[str, Any]:
        REQUEST_ID.set("r-1")
        with pytest.raises(ValueError, match="negative"):
            await pool.run(work, -1)
        return await pool.run(work, 2)  # type: ignore[no-any-return]

    out = asyncio.run(main())
    assert out["x"] == 2 and out["request"] == "r-1"
    assert out["thread"] != threading.get_ident()
    pool.close()


class _Where(Node):
    def process(self, context: ExecutionContext) -> Dict[str, Any]:
        seen = context.inputs.content.get("threads", [])
        return {"threads": seen + [threading.get_ident()]}


def test_a_chain_of_plain_nodes_runs_on_one_warm_thread_off_the_loop() -> None:
    nodes = [_Where(name=f"n{i}") for i in range(20)]
    for left, right in zip(nodes, nodes[1:]):
        left >> right
    threads = Graph(start=nodes[0]).run_sync().content["threads"]
    assert len(threads) == 20
    assert len(set(threads)) == 1
    assert threading.get_ident() not in threads


def test_jobs_beyond_max_workers_wait_in_a_backlog() -> None:
    pool = WorkerPool(max_workers=2)
    lock = threading.Lock()
    active: List[int] = [0]
    most: List[int] = [0]
    pairs = threading.Barrier(2)

    def work(i: int) -> int:
        with lock:
            active[0] += 1
            most[0] = max(most[0], active[0])
        pairs.wait(timeout=5)  # two jobs at a time can pass; more would raise "most"
        with lock:
            active[0] -= 1
        return i

    async def main() -> List[int]:
        return list(await asyncio.gather(*(pool.run(work, i) for i in range(8))))

    assert asyncio.run(main()) == list(range(8))
    assert most[0] == 2
    assert pool.threads <= 2
    pool.close()
    assert _until(lambda: pool.threads == 0)


def test_a_cancelled_call_drops_its_result_and_the_worker_stays_usable() -> None:
    pool = WorkerPool()
    release = threading.Event()

    async def main() -> int:
        waiting = pool.run(lambda _: release.wait(5), None)
        await asyncio.sleep(0)
        waiting.cancel()
        release.set()
        assert _until(lambda: pool._idle)  # the worker finished the dropped call
        return await pool.run(lambda x: x + 1, 1)  # type: ignore[no-any-return]

    assert asyncio.run(main()) == 2
    assert pool.threads == 1
    pool.close()


def test_a_result_for_a_closed_loop_is_dropped() -> None:
    pool = WorkerPool()
    release = threading.Event()
    done = threading.Event()

    def slow(_: Any) -> int:
        release.wait(5)
        done.set()
        return 1

    async def leave_early() -> None:
        pool.run(slow, None)  # the loop closes before the result arrives

    asyncio.run(leave_early())
    release.set()
    assert done.wait(5) and _until(lambda: pool._idle)

    async def again() -> int:
        return await pool.run(lambda x: x * 3, 2)  # type: ignore[no-any-return]

    assert asyncio.run(again()) == 6
    assert pool.threads == 1
    pool.close()


def test_idle_workers_exit_after_the_idle_timeout_and_on_close() -> None:
    pool = WorkerPool(idle_timeout=0.01)

    async def main() -> int:
        return await pool.run(lambda x: x, 5)  # type: ignore[no-any-return]

    assert asyncio.run(main()) == 5
    assert _until(lambda: pool.threads == 0)
    assert asyncio.run(main()) == 5  # a new worker starts on demand

    closing = WorkerPool()
    assert asyncio.run(_run_in(closing)) == 5
    assert closing.threads == 1
    closing.close()
    assert closing.threads == 0
    assert asyncio.run(_run_in(closing)) == 5  # still usable; the worker then leaves
    assert _until(lambda: closing.threads == 0)


async def _run_in(pool: WorkerPool) -> int:
    return await pool.run(lambda x: x, 5)  # type: ignore[no-any-return]
