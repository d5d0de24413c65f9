"""Subprocess used by test_kill_resume: runs (or resumes) a durable run, slowly.

Usage: ``python -m tests.engine.kill_worker DB SIDE_FILE RUN_ID``. Every node appends its id
to SIDE_FILE when it starts working, so the test can count executions. DB is a SQLite file
or a PostgreSQL DSN (tests/backends runs the same kill test on PostgreSQL).
"""

from __future__ import annotations

import asyncio
import os
import random
import sys
from typing import Any, Dict, List

from spark_core.graphs import Graph, SQLiteStateBackend, StateBackend
from spark_core.nodes import ExecutionContext, JoinNode, Node

CHAIN = 10
BRANCHES = 4
TAIL = 4


class Work(Node):
    """Logs its id, counts its own run, sleeps, adds its id to the path, bumps a counter.

    The per-node count is written BEFORE the sleep, so a kill often lands while a branch
    holds a write that its step has not committed yet (a sibling's commit must not take it
    along: the resumed branch would count twice).
    """

    def __init__(self, name: str, side_file: str) -> None:
        super().__init__(name=name)
        self.side_file = side_file

    async def process(self, context: ExecutionContext) -> Dict[str, Any]:
        fd = os.open(self.side_file, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
        try:
            os.write(fd, f"{self.id}\n".encode())
        finally:
            os.close(fd)
        state = context.graph_state
        assert state is not None
        key = f"runs:{self.id}"
        await state.set(key, (await state.get(key, 0)) + 1)
        await asyncio.sleep(random.uniform(0.005, 0.03))
        async with state.lock():
            await state.set("executed", (await state.get("executed", 0)) + 1)
        return {"path": list(context.inputs.content.get("path", [])) + [self.id]}


class Merge(JoinNode):
    async def process(self, context: ExecutionContext) -> Dict[str, Any]:
        paths = [out["path"] for _, out in sorted(context.inputs.content.items())]
        return {"path": paths[0][:CHAIN] + sorted(p[-1] for p in paths)}


def build(db: str, side_file: str) -> Graph:
    """The graph: a chain, a fan-out to parallel branches, a join and a tail chain."""
    nodes: List[Node] = [Work(f"c{i}", side_file) for i in range(CHAIN)]
    for left, right in zip(nodes, nodes[1:]):
        left >> right
    branches = [Work(f"b{i}", side_file) for i in range(BRANCHES)]
    nodes[-1] >> branches
    merge = Merge(name="merge")
    branches >> merge
    tail: List[Node] = [merge] + [Work(f"t{i}", side_file) for i in range(TAIL)]
    for left, right in zip(tail, tail[1:]):
        left >> right
    return Graph(start=nodes[0], state_backend=open_backend(db))


def open_backend(db: str) -> StateBackend:
    """The backend for DB: PostgreSQL for a DSN, else a SQLite file.

    On PostgreSQL every worker uses one claim owner name, as a restarted service would, so
    the next worker resumes at once instead of waiting for the killed one's lease to expire.
    """
    if db.startswith("postgresql://"):
        from spark_core.graphs.postgres import PostgresStateBackend

        return PostgresStateBackend(db, owner="kill-worker")
    return SQLiteStateBackend(db)


def node_ids() -> List[str]:
    """Every node id of the graph."""
    return (
        [f"c{i}" for i in range(CHAIN)]
        + [f"b{i}" for i in range(BRANCHES)]
        + ["merge"]
        + [f"t{i}" for i in range(TAIL)]
    )


async def main(db: str, side_file: str, run_id: str) -> None:
    graph = build(db, side_file)
    if graph.state.backend.load_run(run_id) is None:
        await graph.run({"path": []}, run_id=run_id)
    else:
        await graph.resume(run_id)


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:4]))
