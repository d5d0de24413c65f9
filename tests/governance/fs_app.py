"""A small governed graph used by the approval tests, in-process and as a subprocess.

``python -m tests.governance.fs_app DB OUT run|resume|crash|deny|resume-deny [RUN_ID]`` runs
(or resumes, or resumes and dies inside the approved call) the graph on the SQLite state file
DB (or the PostgreSQL database, when DB is a DSN); the ``write_file`` tool appends one line to
OUT per call, so a test can count how many times the approved call really ran. ``deny`` /
``resume-deny`` run the graph whose second node calls the denied ``delete_file``. The last
stdout line is JSON.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from typing import Any, Dict, Optional

from spark_core.governance import (
    ApprovalPendingError,
    PolicyEffect,
    PolicyRule,
    PolicySet,
    PolicyViolationError,
    Tool,
    tool,
)
from spark_core.graphs import Graph, SQLiteStateBackend
from spark_core.nodes import ExecutionContext, Node

FS_POLICY = PolicySet(
    name="fs_safety",
    rules=[
        PolicyRule(
            name="block_delete",
            effect=PolicyEffect.DENY,
            actions=["tool:execute"],
            resources=["tool://delete_file"],
            description="Prevent agents from deleting files",
        ),
        PolicyRule(
            name="require_approval_write",
            effect=PolicyEffect.REQUIRE_APPROVAL,
            actions=["tool:execute"],
            resources=["tool://write_file"],
            description="Require human approval to write files",
        ),
    ],
)


@tool
def read_file(path: str) -> str:
    """Read a text file."""
    with open(path, encoding="utf-8") as fh:
        return fh.read()


@tool
def write_file(path: str, content: str) -> str:
    """Append a line to a text file."""
    with open(path, "a", encoding="utf-8") as fh:
        fh.write(content + "\n")
    return f"wrote {len(content)} chars"


@tool
def delete_file(path: str) -> str:
    """Delete a file (always denied by FS_POLICY)."""
    raise AssertionError("a denied tool must never run")


class Prepare(Node):
    """Pass the target path on."""

    async def process(self, context: ExecutionContext) -> Dict[str, Any]:
        return {"path": context.inputs.content["path"]}


class Writer(Node):
    """Write through the governed tool."""

    async def process(self, context: ExecutionContext) -> Dict[str, Any]:
        path = context.inputs.content["path"]
        result = await context.call_tool(
            "write_file", path=path, content="approved line"
        )
        return {"path": path, "result": result}


class Deleter(Node):
    """Try a denied tool."""

    async def process(self, context: ExecutionContext) -> Dict[str, Any]:
        await context.call_tool("delete_file", path=context.inputs.content["path"])
        return {}


def build(backend: Any = None, *, deleter: bool = False) -> Graph:
    """Prepare >> Writer (or Deleter), governed by FS_POLICY."""
    start = Prepare()
    start >> (Deleter() if deleter else Writer())
    return Graph(
        start,
        state_backend=backend,
        tools=[read_file, write_file, delete_file],
        policy_set=FS_POLICY,
    )


def open_state(db: str) -> Any:
    """The state backend for DB: PostgreSQL for a DSN, else a SQLite file."""
    if db.startswith("postgresql://"):
        from spark_core.graphs.postgres import PostgresStateBackend

        return PostgresStateBackend(db)
    return SQLiteStateBackend(db)


def _write_then_die(path: str, content: str) -> str:
    write_file.func(path, content)
    os._exit(3)  # the process dies after the side effect, before its step commits


async def _main(db: str, out: str, mode: str, run_id: Optional[str]) -> Dict[str, Any]:
    graph = build(open_state(db), deleter=mode in ("deny", "resume-deny"))
    if mode == "crash":  # resume, but die inside the approved call
        graph.tool_executor.tools["write_file"] = Tool(
            _write_then_die, name="write_file"
        )
    try:
        if mode in ("run", "deny"):
            result = await graph.run({"path": out})
        else:
            assert run_id is not None
            result = await graph.resume(run_id)
        return {
            "status": result.status,
            "run_id": result.run_id,
            "content": result.content,
        }
    except ApprovalPendingError as exc:
        return {"status": "paused", "run_id": exc.run_id, "request_id": exc.request_id}
    except PolicyViolationError as exc:
        return {"status": "violation", "run_id": exc.run_id, "message": str(exc)}


if __name__ == "__main__":
    args = sys.argv[1:]
    outcome = asyncio.run(
        _main(args[0], args[1], args[2], args[3] if len(args) > 3 else None)
    )
    print(json.dumps(outcome))


def resolve_worker(
    db: str, request_id: str, reviewer: str, barrier: Any, results: Any
) -> None:
    """Resolve one request from a separate process (used to race two operators)."""
    from spark_core.governance import ApprovalAlreadyResolvedError, ApprovalStore

    store = ApprovalStore.open(db)
    barrier.wait()
    try:
        store.resolve_sync(request_id, "approved", reviewer=reviewer)
        results.put((reviewer, "resolved"))
    except ApprovalAlreadyResolvedError:
        results.put((reviewer, "already"))


def racing_resume_worker(
    db: str, out: str, run_id: str, entered: Any, went_by: Any, results: Any
) -> None:
    """Resume a run from a separate process, racing another process doing the same.

    The approved write does not finish until the other process has either entered it too
    (the approval ran twice) or finished its resume without it.
    """

    def gated_write(path: str, content: str) -> str:
        with entered.get_lock():
            entered.value += 1
            if entered.value > 1:
                went_by.set()
        went_by.wait(timeout=60)
        return str(write_file.func(path, content))

    try:
        graph = build(SQLiteStateBackend(db))
        graph.tool_executor.tools["write_file"] = Tool(gated_write, name="write_file")
        outcome = asyncio.run(_resume(graph, run_id))
    except BaseException as exc:  # report it: the test would only see a missing answer
        outcome = f"error: {exc!r}"
    finally:
        went_by.set()
    results.put(outcome)


async def _resume(graph: Graph, run_id: str) -> str:
    try:
        return (await graph.resume(run_id)).status
    except ApprovalPendingError:
        return "paused"
