"""Benchmark spark_core's engine against LangGraph and PocketFlow, in one process.

Run:  pip install -r bench/requirements.txt && python bench/engine.py [--quick]

Everything runs in this one process, with the garbage collector paused while a run is timed
(as ``timeit`` does). Measures (median of several runs; this is a benchmark, not a test):

* a linear chain of N nodes in memory: microseconds per node (async nodes; spark_core's
  plain ``def`` nodes, which run in a worker thread, are reported too);
* the same chain with a SQLite checkpoint committed after every step: microseconds per node;
* a fan-out of B branches that each ``await asyncio.sleep(0.02)``: wall milliseconds.

Peers that are not installed are reported as "n/a".
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import operator
import os
import platform
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Annotated, Any, Awaitable, Callable, Dict, List, Optional, TypedDict

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from spark_core.graphs import Graph, SQLiteStateBackend  # noqa: E402
from spark_core.nodes import ExecutionContext, Node  # noqa: E402

SLEEP_S = 0.02


def _median_of(runs: int, once: Callable[[], float]) -> float:
    # Like timeit: collect garbage first and keep the collector off while timing, so one
    # framework's leftover heap does not slow down the next one's measurements.
    samples = []
    for _ in range(runs):
        gc.collect()
        gc.disable()
        try:
            samples.append(once())
        finally:
            gc.enable()
    return statistics.median(samples)


def _timed(factory: Callable[[], Awaitable[Any]]) -> float:
    async def main() -> float:
        started = time.perf_counter()
        await factory()
        return time.perf_counter() - started

    return asyncio.run(main())


# --------------------------------------------------------------------------- spark_core
class _Inc(Node):
    async def process(self, context: ExecutionContext) -> Dict[str, Any]:
        return {"n": context.inputs.content.get("n", 0) + 1}


class _SyncInc(Node):
    def process(self, context: ExecutionContext) -> Dict[str, Any]:
        return {"n": context.inputs.content.get("n", 0) + 1}


class _Sleep(Node):
    async def process(self, context: ExecutionContext) -> Dict[str, Any]:
        await asyncio.sleep(SLEEP_S)
        return {"done": True}


def _spark_chain(n: int, cls: type = _Inc, backend: Any = None) -> Graph:
    nodes = [cls(name=f"n{i}") for i in range(n)]
    for left, right in zip(nodes, nodes[1:]):
        left >> right
    return Graph(start=nodes[0], state_backend=backend)


def spark_chain_memory(n: int, runs: int, sync: bool = False) -> float:
    """spark_core chain of ``n`` nodes in memory: µs per node (``sync``: plain def nodes)."""
    graph = _spark_chain(n, _SyncInc if sync else _Inc)
    asyncio.run(graph.run())  # warm-up
    return _median_of(runs, lambda: _timed(graph.run)) / n * 1e6


def spark_chain_sqlite(n: int, runs: int, tmp: Path) -> float:
    """spark_core chain with a SQLite commit per step, fresh database per run: µs per node."""

    def once() -> float:
        path = Path(tempfile.mkdtemp(dir=tmp)) / "spark.db"
        graph = _spark_chain(n, backend=SQLiteStateBackend(path))
        return _timed(graph.run)

    once()
    return _median_of(runs, once) / n * 1e6


def spark_fanout(branches: int, runs: int) -> float:
    """spark_core fan-out of ``branches`` sleeping nodes: wall ms."""
    start = Node(name="start")
    start >> [_Sleep(name=f"b{i}") for i in range(branches)]
    graph = Graph(start=start)
    asyncio.run(graph.run())
    return _median_of(runs, lambda: _timed(graph.run)) * 1e3


def asyncio_fanout_floor(branches: int, runs: int) -> float:
    """The same sleeps under a bare ``asyncio.gather``, no framework: wall ms (the floor)."""

    async def sleeper() -> Dict[str, Any]:
        await asyncio.sleep(SLEEP_S)
        return {"done": True}

    async def fan() -> None:
        await asyncio.gather(*(sleeper() for _ in range(branches)))

    return _median_of(runs, lambda: _timed(fan)) * 1e3


# ---------------------------------------------------------------------------- LangGraph
class _ChainState(TypedDict):
    n: int


class _FanState(TypedDict):
    hits: Annotated[List[int], operator.add]


def _lg_chain(n: int, asynchronous: bool) -> Any:
    from langgraph.graph import END, START, StateGraph

    builder = StateGraph(_ChainState)

    async def inc_async(state: _ChainState) -> Dict[str, Any]:
        return {"n": state["n"] + 1}

    def inc_sync(state: _ChainState) -> Dict[str, Any]:
        return {"n": state["n"] + 1}

    for i in range(n):
        builder.add_node(f"n{i}", inc_async if asynchronous else inc_sync)
    builder.add_edge(START, "n0")
    for i in range(n - 1):
        builder.add_edge(f"n{i}", f"n{i + 1}")
    builder.add_edge(f"n{n - 1}", END)
    return builder


def langgraph_chain_memory(n: int, runs: int) -> float:
    """LangGraph chain of ``n`` async nodes, no checkpointer: µs per node."""
    graph = _lg_chain(n, True).compile()
    config = {"recursion_limit": n + 10}
    asyncio.run(graph.ainvoke({"n": 0}, config))
    return (
        _median_of(runs, lambda: _timed(lambda: graph.ainvoke({"n": 0}, config)))
        / n
        * 1e6
    )


def langgraph_chain_sqlite(n: int, runs: int, tmp: Path) -> float:
    """LangGraph chain with ``SqliteSaver``, fresh database per run: µs per node."""
    from langgraph.checkpoint.sqlite import SqliteSaver

    builder = _lg_chain(n, False)

    def once() -> float:
        path = Path(tempfile.mkdtemp(dir=tmp)) / "lg.db"
        conn = sqlite3.connect(path, check_same_thread=False)
        graph = builder.compile(checkpointer=SqliteSaver(conn))
        config = {"recursion_limit": n + 10, "configurable": {"thread_id": "t"}}
        started = time.perf_counter()
        graph.invoke({"n": 0}, config)
        elapsed = time.perf_counter() - started
        conn.close()
        return elapsed

    return _median_of(runs, once) / n * 1e6


def langgraph_fanout(branches: int, runs: int) -> float:
    """LangGraph fan-out of ``branches`` sleeping nodes from START: wall ms."""
    from langgraph.graph import END, START, StateGraph

    async def sleeper(state: _FanState) -> Dict[str, Any]:
        await asyncio.sleep(SLEEP_S)
        return {"hits": [1]}

    builder = StateGraph(_FanState)
    for i in range(branches):
        builder.add_node(f"b{i}", sleeper)
        builder.add_edge(START, f"b{i}")
        builder.add_edge(f"b{i}", END)
    graph = builder.compile()
    asyncio.run(graph.ainvoke({"hits": []}))
    return _median_of(runs, lambda: _timed(lambda: graph.ainvoke({"hits": []}))) * 1e3


# --------------------------------------------------------------------------- PocketFlow
def pocketflow_chain_memory(n: int, runs: int) -> float:
    """PocketFlow ``AsyncFlow`` chain of ``n`` async nodes: µs per node."""
    from pocketflow import AsyncFlow, AsyncNode  # type: ignore[import-untyped]

    class Inc(AsyncNode):  # type: ignore[misc]
        async def prep_async(self, shared: Dict[str, Any]) -> int:
            return int(shared["n"])

        async def exec_async(self, value: int) -> int:
            return value + 1

        async def post_async(
            self, shared: Dict[str, Any], prep: Any, result: int
        ) -> None:
            shared["n"] = result

    nodes = [Inc() for _ in range(n)]
    for left, right in zip(nodes, nodes[1:]):
        left >> right
    flow = AsyncFlow(start=nodes[0])
    asyncio.run(flow.run_async({"n": 0}))
    return _median_of(runs, lambda: _timed(lambda: flow.run_async({"n": 0}))) / n * 1e6


def pocketflow_fanout(branches: int, runs: int) -> float:
    """PocketFlow ``AsyncParallelBatchNode`` over ``branches`` sleeping items: wall ms."""
    from pocketflow import AsyncParallelBatchNode

    class Fan(AsyncParallelBatchNode):  # type: ignore[misc]
        async def prep_async(self, shared: Dict[str, Any]) -> List[int]:
            return list(range(branches))

        async def exec_async(self, item: int) -> int:
            await asyncio.sleep(SLEEP_S)
            return item

    node = Fan()
    asyncio.run(node.run_async({}))
    return _median_of(runs, lambda: _timed(lambda: node.run_async({}))) * 1e3


# -------------------------------------------------------------------------------- table
def _try(fn: Callable[[], float]) -> Optional[float]:
    try:
        return fn()
    except ImportError:
        return None


def _fmt(value: Optional[float], unit: str) -> str:
    return "n/a" if value is None else f"{value:,.1f} {unit}"


def _ratio(peer: Optional[float], ours: Optional[float]) -> str:
    if peer is None or ours is None or ours == 0:
        return "n/a"
    return f"{peer / ours:,.1f}x"


def main(argv: Optional[List[str]] = None) -> int:
    """Run every benchmark and print a markdown table.

    Args:
        argv: Command-line arguments (``--quick`` for a fast smoke run).

    Returns:
        The process exit code.
    """
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=1000)
    parser.add_argument("--branches", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--sqlite-runs", type=int, default=3)
    parser.add_argument(
        "--quick", action="store_true", help="small sizes, one run each"
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.nodes, args.branches, args.runs, args.sqlite_runs = 100, 100, 1, 1
    n, b = args.nodes, args.branches
    with tempfile.TemporaryDirectory() as tmp_dir:
        tmp = Path(tmp_dir)
        rows = [
            (
                f"linear chain, in memory, async nodes, per node (N={n})",
                "µs",
                _try(lambda: langgraph_chain_memory(n, args.runs)),
                _try(lambda: pocketflow_chain_memory(n, args.runs)),
                spark_chain_memory(n, args.runs),
            ),
            (
                f"linear chain, in memory, plain def nodes (thread), per node (N={n})",
                "µs",
                None,
                None,
                spark_chain_memory(n, args.runs, sync=True),
            ),
            (
                f"linear chain, SQLite commit every step, per node (N={n})",
                "µs",
                _try(lambda: langgraph_chain_sqlite(n, args.sqlite_runs, tmp)),
                None,
                spark_chain_sqlite(n, args.sqlite_runs, tmp),
            ),
            (
                f"fan-out {b} branches x {SLEEP_S * 1000:.0f} ms async sleep, wall",
                "ms",
                _try(lambda: langgraph_fanout(b, args.runs)),
                _try(lambda: pocketflow_fanout(b, args.runs)),
                spark_fanout(b, args.runs),
            ),
        ]
        floor = asyncio_fanout_floor(b, args.runs)
    print(
        f"Python {platform.python_version()} on {platform.machine()}, {os.cpu_count()} CPUs; "
        f"median of {args.runs} runs ({args.sqlite_runs} for SQLite)\n"
    )
    print(
        "| work | LangGraph | PocketFlow | spark_core | LangGraph / spark | PocketFlow / spark |"
    )
    print("|---|---|---|---|---|---|")
    for name, unit, lg, pf, ours in rows:
        print(
            f"| {name} | {_fmt(lg, unit)} | {_fmt(pf, unit)} | {_fmt(ours, unit)} | "
            f"{_ratio(lg, ours)} | {_ratio(pf, ours)} |"
        )
    print(
        f"\nFan-out floor on this machine: a bare asyncio.gather of the same {b} sleeps "
        f"takes {floor:,.1f} ms."
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
