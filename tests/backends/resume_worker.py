"""Subprocess used by the two-resumers test: resumes one run whose gate node waits.

Usage: ``python -m tests.backends.resume_worker DSN RUN_ID FOLDER``. The ``gate`` node
appends to FOLDER/ran and waits for FOLDER/go; the process exits 0 when the run completed,
3 with the error on stderr when another process holds the run's claim.
"""

from __future__ import annotations

import os
import sys
import time
from typing import Any, Dict

from spark_core.errors import RunClaimedError
from spark_core.graphs import Graph
from spark_core.graphs.postgres import PostgresStateBackend
from spark_core.nodes import ExecutionContext, Node


class Gate(Node):
    """Records that it ran, then waits until the test opens the gate."""

    def __init__(self, folder: str) -> None:
        super().__init__(name="gate")
        self.folder = folder

    def process(self, context: ExecutionContext) -> Dict[str, Any]:
        with open(os.path.join(self.folder, "ran"), "a") as fh:
            fh.write(f"{os.getpid()}\n")
        deadline = time.monotonic() + 60
        while not os.path.exists(os.path.join(self.folder, "go")):
            if time.monotonic() > deadline:
                raise TimeoutError("the test never opened the gate")
            time.sleep(0.01)
        return {"through": True}


class Done(Node):
    async def process(self, context: ExecutionContext) -> Dict[str, Any]:
        return {"done": context.inputs.content["through"]}


def build(dsn: str, folder: str) -> Graph:
    """``gate >> done`` on the PostgreSQL backend."""
    gate = Gate(folder)
    gate >> Done(name="done")
    return Graph(start=gate, state_backend=PostgresStateBackend(dsn))


def main(dsn: str, run_id: str, folder: str) -> int:
    graph = build(dsn, folder)
    try:
        graph.resume_sync(run_id)
    except RunClaimedError as exc:
        print(exc, file=sys.stderr)
        return 3
    finally:
        graph.state.backend.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:4]))
