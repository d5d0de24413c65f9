"""Nodes and flows the Dask tests send to workers (importable there: ``tests`` is on the
workers' path, which they inherit from the test process)."""

from __future__ import annotations

import asyncio
import os
import time
from typing import Any, Dict, Optional

from spark_core.graphs import Graph
from spark_core.nodes import ExecutionContext, JoinNode, Node, NodeConfig


class Pid(Node):
    """A plain ``def`` node: reports the process it ran in, adds one to state ``count``."""

    def process(self, context: ExecutionContext) -> Dict[str, Any]:
        gs = context.graph_state
        assert gs is not None
        gs.set_sync("count", gs.get_sync("count", 0) + 1)
        return {"pid": os.getpid(), "seen": context.inputs.content}


class AsyncPid(Node):
    """An ``async def`` node: reports its process, deletes state ``gone``."""

    async def process(self, context: ExecutionContext) -> Dict[str, Any]:
        gs = context.graph_state
        assert gs is not None
        await gs.delete("gone")
        await asyncio.sleep(0)
        return {"pid": os.getpid(), "before": context.inputs.content}


class Sleep(Node):
    """Sleeps ``seconds`` (a CPU-free stand-in for work), reports its process."""

    def __init__(
        self, seconds: float, name: str, config: Optional[NodeConfig] = None
    ) -> None:
        super().__init__(name=name, config=config)
        self.seconds = seconds

    def process(self, context: ExecutionContext) -> Dict[str, Any]:
        time.sleep(self.seconds)
        return {"pid": os.getpid()}


class Pids(JoinNode):
    """Collects the parents' process ids."""

    def process(self, context: ExecutionContext) -> Dict[str, Any]:
        return {"pids": sorted(out["pid"] for out in context.inputs.content.values())}


class FlakyWriter(Node):
    """Writes state ``attempt_<n>`` each attempt; fails the first (the retry re-submits)."""

    def process(self, context: ExecutionContext) -> Dict[str, Any]:
        gs = context.graph_state
        assert gs is not None
        attempt = context.metadata["attempt"]
        gs.set_sync(f"attempt_{attempt}", os.getpid())
        if attempt == 1:
            raise ValueError("first attempt fails")
        return {"attempt": attempt}


class Broken(Node):
    """Always fails on the worker."""

    def process(self, context: ExecutionContext) -> Dict[str, Any]:
        raise RuntimeError("remote failure")


class BadOutput(Node):
    """Returns something that cannot be pickled."""

    def process(self, context: ExecutionContext) -> Dict[str, Any]:
        return {"generator": (i for i in range(3))}


class Logged(Node):
    """Appends ``<node id> <pid>`` to a file on each execution; ``Slow`` variants wait."""

    def __init__(self, path: str, name: str, wait: float = 0.0) -> None:
        super().__init__(name=name)
        self.path = path
        self.wait = wait

    def process(self, context: ExecutionContext) -> Dict[str, Any]:
        with open(self.path, "a", encoding="utf-8") as log:
            log.write(f"{self.id} {os.getpid()}\n")
        time.sleep(self.wait)
        with open(self.path + ".end", "a", encoding="utf-8") as ends:
            ends.write(f"{self.id}\n")
        return {"last": self.id}


def durable_flow(dsn: str, path: str) -> Graph:
    """first -> slow (waits, long enough to be killed) -> last, on PostgreSQL."""
    from spark_core.graphs.postgres import PostgresStateBackend

    first = Logged(path, "first")
    slow = Logged(path, "slow", wait=1.5)
    last = Logged(path, "last")
    first >> slow >> last
    return Graph(start=first, state_backend=PostgresStateBackend(dsn, lease=1.0))


def pid_flow() -> Graph:
    """One plain node that reports its process (a flow for ``ai-spine serve --dask``)."""
    return Graph(start=Pid(name="pid"))


FLOWS = {"pid": pid_flow}


def slow_flow(path: str) -> Graph:
    """first -> slow (waits 1.5 s) -> last, in memory."""
    first = Logged(path, "first")
    slow = Logged(path, "slow", wait=1.5)
    last = Logged(path, "last")
    first >> slow >> last
    return Graph(start=first)
