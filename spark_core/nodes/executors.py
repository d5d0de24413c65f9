"""The executor seam: where a node's ``process`` runs.

The node runner hands every attempt's ``process(context)`` call to an executor. The default
(no executor given anywhere) is :class:`LocalExecutor`'s behaviour, which the runner inlines:
an ``async def process`` is awaited on the graph's event loop; a plain ``def`` runs in a
worker thread so it never blocks the loop (the built-in pass-through ``process`` of
``Node`` and ``JoinNode`` is called directly). ``Graph(executor=...)`` sets one for every
node of a graph, ``NodeConfig(executor=...)`` for one node (it wins over the graph's).

Writing an executor (e.g. one that ships ``process`` to a cluster): subclass
:class:`NodeExecutor` and implement :meth:`~NodeExecutor.run`. It is awaited inside the
node's attempt, on the graph's event loop, with the node's step transaction current, so:

* what it returns is the attempt's output (a dict or ``None``; the runner checks it);
* what it raises is the attempt's error (retried, timed out, reported like any other);
* graph-state writes the node made elsewhere are applied by awaiting
  ``context.graph_state.update(...)`` / ``delete(...)`` before ``run`` returns: they then
  belong to this attempt (undone if it fails, committed with its step);
* ``context.inputs.content``, ``context.metadata``, ``context.state.context_snapshot``
  (the node's previous output) and the node object itself are what a remote worker needs;
  cancellation of the awaitable (a timeout) should cancel the remote work when it can.
"""

from __future__ import annotations

import inspect
from typing import TYPE_CHECKING, Any

from spark_core.nodes._workers import run_in_worker

if TYPE_CHECKING:  # pragma: no cover
    from spark_core.nodes.base import Node
    from spark_core.nodes.context import ExecutionContext


class NodeExecutor:
    """Decides where a node's ``process`` runs (see the module docstring)."""

    async def run(self, node: "Node", context: "ExecutionContext") -> Any:
        """Run ``node.process(context)`` once and return what it returned.

        Args:
            node: The node.
            context: Its execution context for this attempt.

        Returns:
            The output of ``process`` (checked by the runner: a dict or ``None``).
        """
        raise NotImplementedError


class LocalExecutor(NodeExecutor):
    """In this process: coroutines on the event loop, plain ``def`` in a worker thread."""

    async def run(self, node: "Node", context: "ExecutionContext") -> Any:
        """Await an ``async`` ``process``; run a plain ``def`` one in a worker thread.

        Args:
            node: The node.
            context: Its execution context.

        Returns:
            The output of ``process``.
        """
        if node._is_async:
            return await node.process(context)
        return await run_sync_process(node, context)


async def run_sync_process(node: "Node", context: "ExecutionContext") -> Any:
    """Run a plain ``def process`` off the event loop (the built-in ones inline).

    Args:
        node: The node.
        context: Its execution context.

    Returns:
        The output (awaited too, for a ``def`` that returns an awaitable).
    """
    if node._inline:
        return node.process(context)
    output = await run_in_worker(node.process, context)
    if inspect.isawaitable(output):
        output = await output
    return output


__all__ = ["NodeExecutor", "LocalExecutor", "run_sync_process"]
