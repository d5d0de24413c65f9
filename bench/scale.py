"""Benchmark scaling out (prints figures; not a test).

Side by side, in one run:

1. Per-node overhead: a chain of trivial ``async def`` nodes run inline (this process)
   against the same chain on a Dask ``LocalCluster`` (``DaskExecutor``, one worker
   process): microseconds per node.
2. CPU-bound speed-up: 200 fan-out branches that each burn 50 ms of CPU in pure Python,
   on a cluster of 1 and of 2 single-threaded worker processes (and inline, where the
   GIL serialises them): wall seconds and the 2-worker speed-up.

Executions per second through one ``ai-spine serve`` against gunicorn with 2 workers on one
PostgreSQL journal are measured by ``bench/servers.py``.

The load average is printed first: on a busy machine the speed-up falls short of what
the cores allow.

Usage::

    python bench/scale.py [--quick]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from typing import Any, Dict, List

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from spark_core.graphs import Graph  # noqa: E402
from spark_core.nodes import ExecutionContext, JoinNode, Node  # noqa: E402


class Step(Node):
    """A trivial node: adds one to its input."""

    async def process(self, context: ExecutionContext) -> Dict[str, Any]:
        return {"n": context.inputs.content.get("n", 0) + 1}


class Burn(Node):
    """Burns ``loops`` iterations of pure-Python arithmetic (about 50 ms of CPU)."""

    def __init__(self, loops: int, name: str) -> None:
        super().__init__(name=name)
        self.loops = loops

    def process(self, context: ExecutionContext) -> Dict[str, Any]:
        return {"sum": burn(self.loops)}


class Count(JoinNode):
    """Counts its parents."""

    def process(self, context: ExecutionContext) -> Dict[str, Any]:
        return {"branches": len(context.inputs.content)}


def burn(loops: int) -> int:
    """Pure-Python CPU work (holds the GIL)."""
    total = 0
    for i in range(loops):
        total += i * i % 7
    return total


def loops_for(seconds: float) -> int:
    """How many :func:`burn` iterations take ``seconds`` of CPU here (best of three)."""
    probe = 200_000
    best = min(_timed(lambda: burn(probe)) for _ in range(3))
    return max(1, int(probe * seconds / best))


def _timed(call: Any) -> float:
    started = time.perf_counter()
    call()
    return time.perf_counter() - started


def chain(length: int, executor: Any = None) -> Graph:
    """A chain of ``length`` :class:`Step` nodes."""
    nodes = [Step(name=f"s{i}") for i in range(length)]
    for left, right in zip(nodes, nodes[1:]):
        left >> right
    return Graph(start=nodes[0], executor=executor, max_steps=length + 1)


def fan_out(branches: int, loops: int, executor: Any = None) -> Graph:
    """A start node, ``branches`` :class:`Burn` nodes and a join."""
    start, join = Node(name="start"), Count(name="join")
    work = [Burn(loops, f"b{i}") for i in range(branches)]
    start >> work
    work >> join
    return Graph(start=start, executor=executor, max_steps=branches + 2)


def per_node_us(graph: Graph, length: int, repeats: int) -> float:
    """Median microseconds per node of running ``graph`` (a chain of ``length``)."""
    times = sorted(_timed(graph.run_sync) for _ in range(repeats))
    return times[len(times) // 2] / length * 1e6


def cluster(workers: int) -> Any:
    """A LocalCluster of ``workers`` single-threaded processes on 127.0.0.1, its client."""
    from distributed import Client, LocalCluster

    lc = LocalCluster(
        processes=True,
        n_workers=workers,
        threads_per_worker=1,
        host="127.0.0.1",
        dashboard_address="127.0.0.1:0",  # None still serves one on :8787
    )
    return lc, Client(lc, set_as_default=False)


def main() -> None:
    """Run the benchmarks and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes")
    args = parser.parse_args()
    from spark_core.distributed import DaskExecutor

    length, remote_length = (200, 20) if args.quick else (1000, 100)
    branches = 40 if args.quick else 200
    repeats = 3 if args.quick else 5
    print(
        f"load average: {' '.join(f'{x:.2f}' for x in os.getloadavg())}, "
        f"{os.cpu_count()} CPUs"
    )

    inline = per_node_us(chain(length), length, repeats)
    lc, client = cluster(1)
    try:
        on_dask = per_node_us(
            chain(remote_length, DaskExecutor(client)), remote_length, repeats
        )
    finally:
        client.close()
        lc.close()
    print("\nper-node overhead (trivial async node)")
    print(f"  inline                 {inline:10.1f} us/node")
    print(f"  Dask, 1 worker process {on_dask:10.1f} us/node")

    loops = loops_for(0.05)
    rounds = 2 if args.quick else 3
    print(
        f"\n{branches} CPU-bound nodes of ~50 ms each (fan-out, then a join), "
        f"{rounds} interleaved rounds: best / median"
    )
    clusters = {workers: cluster(workers) for workers in (1, 2)}
    walls: Dict[int, List[float]] = {1: [], 2: []}
    try:
        graphs = {
            workers: fan_out(branches, loops, DaskExecutor(client))
            for workers, (_, client) in clusters.items()
        }
        for graph in graphs.values():
            graph.run_sync()  # warm the workers (imports, the node classes)
        for _ in range(rounds):  # interleaved: a burst of load hits both sides
            for workers, graph in graphs.items():
                walls[workers].append(_timed(graph.run_sync))
    finally:
        for lc, client in clusters.values():
            client.close()
            lc.close()
    for workers, times in walls.items():
        times.sort()
        print(
            f"  Dask, {workers} worker process(es) {times[0]:8.2f} s "
            f"/ {times[len(times) // 2]:6.2f} s"
        )
    serial = _timed(fan_out(branches, loops).run_sync)
    print(f"  inline (threads, one GIL)     {serial:8.2f} s")
    print(
        f"  speed-up 2 vs 1 workers       {walls[1][0] / walls[2][0]:8.2f}x (best) "
        f"{walls[1][len(walls[1]) // 2] / walls[2][len(walls[2]) // 2]:5.2f}x (median)"
    )
    print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
