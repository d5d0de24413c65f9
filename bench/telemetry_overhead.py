"""Telemetry overhead on a 1,000-node linear chain (not a test: prints figures).

Runs the same chain with telemetry off, with the in-memory backend, and with the SQLite
backend (batched writes on a background thread), and prints microseconds per node and the
overhead against "off". For SQLite it also prints the cost including ``flush()``, i.e. with
every record on disk.

Usage: python bench/telemetry_overhead.py [--nodes 1000] [--runs 20]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from typing import Any, Dict, List, Optional

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from spark_core.graphs import Graph  # noqa: E402
from spark_core.nodes import ExecutionContext, Node  # noqa: E402
from spark_core.telemetry import TelemetryConfig, TelemetryManager  # noqa: E402


class Step(Node):
    """A trivial async node: passes a counter on."""

    async def process(self, context: ExecutionContext) -> Dict[str, Any]:
        content = context.inputs.content or {}
        return {"i": content.get("i", 0) + 1}


def chain(n: int, telemetry: Optional[TelemetryManager]) -> Graph:
    """Build an ``n``-node chain."""
    nodes = [Step(name=f"n{i}") for i in range(n)]
    for a, b in zip(nodes, nodes[1:]):
        a >> b
    return Graph(nodes[0], telemetry=telemetry)


class Case:
    """One configuration: a graph (and its telemetry manager)."""

    def __init__(
        self, label: str, n: int, manager: Optional[TelemetryManager], flush: bool
    ) -> None:
        self.label, self.n, self.manager, self.flush = label, n, manager, flush
        self.graph = chain(n, manager)
        self.samples: List[float] = []

    async def run_once(self) -> float:
        """Run the chain once; return µs per node."""
        t0 = time.perf_counter()
        result = await self.graph.run({"i": 0})
        if self.flush and self.manager is not None:
            await self.manager.flush()
        elapsed = time.perf_counter() - t0
        assert result.content == {"i": self.n}
        return elapsed * 1e6 / self.n


async def measure(cases: List[Case], runs: int) -> None:
    """Warm up, then run the cases round-robin so machine noise hits them alike."""
    for case in cases:
        await case.run_once()
    for _ in range(runs):
        for case in cases:
            case.samples.append(await case.run_once())


def main(argv: Optional[List[str]] = None) -> int:
    """Run the benchmark and print a table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=20)
    args = parser.parse_args(argv)
    n, runs = args.nodes, args.runs

    with tempfile.TemporaryDirectory() as tmp:

        def sqlite(name: str, **kw: Any) -> TelemetryManager:
            path = os.path.join(tmp, name)
            return TelemetryManager(
                TelemetryConfig(backend="sqlite", backend_config={"path": path}, **kw)
            )

        cases = [
            Case("off", n, None, False),
            Case(
                "memory", n, TelemetryManager(TelemetryConfig(backend="memory")), False
            ),
            Case("sqlite (hot path)", n, sqlite("a.db"), False),
            Case("sqlite (+ flush to disk)", n, sqlite("b.db"), True),
            Case("sqlite, sampling 10%", n, sqlite("c.db", sampling_rate=0.1), True),
        ]
        try:
            asyncio.run(measure(cases, runs))
        finally:
            for case in cases:
                if case.manager is not None:
                    case.manager.close()

    base = min(cases[0].samples)
    print(
        f"telemetry overhead: {n}-node chain, {runs} runs each, round-robin (µs per node)"
    )
    print(f"{'case':<28}{'best':>8}{'median':>9}{'overhead (best)':>18}")
    for case in cases:
        best, med = min(case.samples), statistics.median(case.samples)
        overhead = (best - base) / base * 100
        print(f"{case.label:<28}{best:>8.2f}{med:>9.2f}{overhead:>17.0f}%")
    print(f"python {sys.version.split()[0]}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
