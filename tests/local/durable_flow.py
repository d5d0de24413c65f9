"""A two-step flow on a durable (SQLite) state backend, and a script that runs it then hangs.

Run as a script (``python -m tests.local.durable_flow``) it starts one execution in a
LocalSpine journaled to ``$SPINE_DB``, prints the execution id, and the second node hangs
(``$SPINE_BLOCK=1``) so the test can kill the process mid-run.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from typing import Any, Callable, Dict

from ai_spine.local import LocalSpine
from spark_core.graphs import Graph, SQLiteStateBackend
from spark_core.nodes import ExecutionContext, Node


def _say(line: str) -> None:
    # One write per line: the main thread and the loop thread both print.
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


class Prepare(Node):
    """Counts its runs in ``$SPINE_COUNT_FILE`` (one line per run)."""

    async def process(self, context: ExecutionContext) -> Any:
        with open(os.environ["SPINE_COUNT_FILE"], "a") as counter:
            counter.write("prepare\n")
        return {"prepared": context.inputs.content["x"]}


class Finish(Node):
    """Hangs when ``$SPINE_BLOCK`` is 1 (so the process can be killed here)."""

    async def process(self, context: ExecutionContext) -> Any:
        if os.environ.get("SPINE_BLOCK") == "1":
            _say("blocked")
            await asyncio.sleep(3600)
        return {"finished": context.inputs.content["prepared"] * 2}


def flows() -> Dict[str, Callable[[], Graph]]:
    """The ``durable`` flow, its state in ``$SPINE_STATE_DB``."""

    def build() -> Graph:
        start = Prepare("prepare")
        start >> Finish("finish")
        return Graph(
            start, state_backend=SQLiteStateBackend(os.environ["SPINE_STATE_DB"])
        )

    return {"durable": build}


if __name__ == "__main__":
    spine = LocalSpine(flows(), db=os.environ["SPINE_DB"])
    _say(spine.execute_flow("durable", {"x": 21})["execution_id"])
    while True:  # until killed
        time.sleep(1)
