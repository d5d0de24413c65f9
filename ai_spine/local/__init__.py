"""LocalSpine: the AISpine methods, answered by spark_core graphs running in this process.

``LocalSpine`` keeps a registry of flows (spark_core graphs, graph factories or GraphSpec dicts)
and runs each execution on a background event loop that it owns, so it works the same in a
script, a test or a notebook cell. Every method has the name, arguments, JSON shapes and
exceptions of :class:`ai_spine.AISpine`; moving a script between local and remote is one line::

    spine = LocalSpine({"echo": make_echo_graph})        # or: AISpine(base_url=...)
    started = spine.execute_flow("echo", {"text": "hi"})
    done = spine.wait_for_execution(started["execution_id"])

Executions live in memory, the newest finished ones up to ``max_executions`` and
``max_memory`` bytes (pending and running ones always); with ``db="file.sqlite"`` every
execution is also journaled to SQLite, read back from there once it has left memory, and
listed again after a restart. Executions that were still running when the process died are
resumed when their flow (passed to the constructor) keeps runs in a durable state backend
(``SQLiteStateBackend``: committed nodes are not run again, and the run gets what is left of
its ``timeout``), and marked ``failed`` otherwise. ``close()`` leaves such durable runs
unfinished in the file too, so the next start resumes them.

The package, by job:

* :mod:`~ai_spine.local.records`: one execution's state (:class:`ExecutionRecord`);
* :mod:`~ai_spine.local.journal`: the execution store interface and its SQLite store;
* :mod:`~ai_spine.local.memory`: the executions held in memory, bounded, read through to
  the journal;
* :mod:`~ai_spine.local.flows` / :mod:`~ai_spine.local.agents`: the two registries;
* :mod:`~ai_spine.local.runner`: the event loop thread executions run on;
* :mod:`~ai_spine.local.spine`: :class:`LocalSpine`, the facade over them.
"""

from __future__ import annotations

from ai_spine.local.flows import FlowSource
from ai_spine.local.journal import JournalError, JournalStore, SQLiteJournal
from ai_spine.local.spine import (
    DEFAULT_MAX_EXECUTIONS,
    DEFAULT_MAX_MEMORY,
    DEFAULT_MAX_PAGE_BYTES,
    LocalSpine,
)
from ai_spine.validation import validate_execute_request, validate_page_request

__all__ = [
    "LocalSpine",
    "FlowSource",
    "JournalStore",
    "JournalError",
    "SQLiteJournal",
    "DEFAULT_MAX_EXECUTIONS",
    "DEFAULT_MAX_MEMORY",
    "DEFAULT_MAX_PAGE_BYTES",
    "validate_execute_request",
    "validate_page_request",
]
