"""A small agent mission used by the restart test: ``python -m tests.agents.restart_app DB``.

Run as a script it starts the mission on a SQLite state file (or PostgreSQL, when DB is a
DSN), which pauses for a human
approval of ``write_file``; it prints ``{"run_id", "request_id", "calls"}`` as JSON and exits.
The test then resolves the approval like the CLI would and resumes in another process.
"""

from __future__ import annotations

import asyncio
import json
import sys
from typing import Any, List

from spark_core.agents import Agent, AgentConfig, AgentNode
from spark_core.governance import ApprovalPendingError
from spark_core.graphs import Graph, SQLiteStateBackend
from spark_core.models import ScriptedModel
from tests.agents.helpers import CALLS, add, fs_policy, write_file

#: The whole conversation: two tool calls (one needs approval), then the final answer.
SCRIPT: List[Any] = [
    {
        "text": "Thought: compute, then save.",
        "tool_calls": [
            {"id": "c-add", "name": "add", "arguments": {"a": 20, "b": 22}},
            {
                "id": "c-write",
                "name": "write_file",
                "arguments": {"path": "answer.txt", "content": "42"},
            },
        ],
    },
    "Final Answer: saved 42 to answer.txt",
]


def build_graph(db_path: str, model: ScriptedModel) -> Graph:
    """The mission: one agent node, state in SQLite (or PostgreSQL for a DSN)."""
    agent = Agent(
        config=AgentConfig(
            model=model,
            tools=[add, write_file],
            policy_set=fs_policy(),
            name="writer",
        )
    )
    if db_path.startswith("postgresql://"):
        from spark_core.graphs.postgres import PostgresStateBackend

        return Graph(AgentNode(agent), state_backend=PostgresStateBackend(db_path))
    return Graph(AgentNode(agent), state_backend=SQLiteStateBackend(db_path))


async def _first_half(db_path: str) -> None:
    graph = build_graph(db_path, ScriptedModel(SCRIPT[:1]))
    try:
        await graph.run(
            {"prompt": "Add 20 and 22 and save the result"}, run_id="mission-1"
        )
    except ApprovalPendingError as exc:
        print(
            json.dumps(
                {"run_id": exc.run_id, "request_id": exc.request_id, "calls": CALLS}
            )
        )
        return
    raise SystemExit("the run did not pause")


if __name__ == "__main__":
    asyncio.run(_first_half(sys.argv[1]))
