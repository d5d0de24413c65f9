"""Run records and the observer hooks the graph calls while it runs.

Observers are how telemetry, guardrails, node policies and mission plans plug into a run:
subclass :class:`GraphObserver`, override the hooks you need, and pass it to
``Graph(observers=[...])`` or ``graph.add_observer(...)``. Observers are called in the order
they were added and their exceptions propagate, which is how a guardrail stops a run (raise
:class:`~spark_core.errors.RunStopped` or :class:`~spark_core.errors.RunPaused`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Dict, Optional

if TYPE_CHECKING:  # pragma: no cover
    from spark_core.graphs.graph import Graph
    from spark_core.nodes.base import Node
    from spark_core.nodes.context import ExecutionContext


@dataclass
class NodeRunInfo:
    """What happened to one node in a run (its last execution).

    Attributes:
        status: ``"completed"``, ``"failed"``, ``"paused"`` or ``"cancelled"``.
        attempts: Attempts made by the last execution (1 + retries).
        duration_s: Seconds the last execution took (including retries).
        error: The error text when it failed, else ``None``.
        runs: How many times the node completed in this run (loops run a node again).
    """

    status: str = "completed"
    attempts: int = 1
    duration_s: float = 0.0
    error: Optional[str] = None
    runs: int = 1


@dataclass
class RunResult:
    """The result of a graph run.

    Attributes:
        run_id: The run's id.
        status: ``"completed"``, ``"failed"``, ``"paused"`` or ``"cancelled"``.
        content: The final output: that of the node where the run ended (its completion
            fired no edge). With several such end nodes (branches without a join), the
            one latest in graph order (breadth-first from the start node, so for
            ``start >> [a, b]`` it is ``b``); ``outputs`` holds every node's.
        outputs: Node id -> that node's last output.
        node_results: Node id -> :class:`NodeRunInfo`.
        steps: Node executions the run made (over all its resumptions).
    """

    run_id: str
    status: str
    content: Any = None
    outputs: Dict[str, Any] = field(default_factory=dict)
    node_results: Dict[str, NodeRunInfo] = field(default_factory=dict)
    steps: int = 0


@dataclass
class RunInfo:
    """Information about the run in progress, passed to every observer hook.

    Attributes:
        run_id: The run's id.
        graph: The graph being run.
        started_at: ``time.time()`` when this run (or resumption) started.
        step: Node executions so far.
        inputs: The run's input.
        attrs: Free scratch space for observers (e.g. a telemetry trace id).
        resumed: True when the run continues a stored run or a checkpoint.
    """

    run_id: str
    graph: "Graph"
    started_at: float
    step: int = 0
    inputs: Any = None
    attrs: Dict[str, Any] = field(default_factory=dict)
    resumed: bool = False


class GraphObserver:
    """Base class of run observers: every hook is an async no-op; override what you need."""

    async def on_run_start(self, run: RunInfo) -> None:
        """Called when a run (or a resumption) starts.

        Args:
            run: The run.
        """

    async def on_run_end(
        self, run: RunInfo, result: Optional[RunResult], error: Optional[BaseException]
    ) -> None:
        """Called when a run ends, successfully (``result``) or not (``error``).

        Args:
            run: The run.
            result: The result (``None`` when the run raised).
            error: The exception that ended the run, or ``None``.
        """

    async def on_node_start(
        self, run: RunInfo, node: "Node", context: "ExecutionContext"
    ) -> None:
        """Called once per node execution, before its first attempt.

        Raising here stops the node: ``RunStopped``/``RunPaused`` propagate as they are.

        Args:
            run: The run.
            node: The node about to run.
            context: Its execution context.
        """

    async def on_attempt_start(
        self, run: RunInfo, node: "Node", context: "ExecutionContext"
    ) -> None:
        """Called before every attempt (``context.metadata["attempt"]`` is 1-based).

        Args:
            run: The run.
            node: The node.
            context: Its execution context.
        """

    async def on_attempt_end(
        self,
        run: RunInfo,
        node: "Node",
        context: "ExecutionContext",
        output: Any,
        error: Optional[BaseException],
    ) -> None:
        """Called after every attempt with its output or its error.

        Args:
            run: The run.
            node: The node.
            context: Its execution context.
            output: What the attempt returned (``None`` on error).
            error: The exception the attempt raised, or ``None``.
        """

    async def on_node_end(
        self, run: RunInfo, node: "Node", context: "ExecutionContext", output: Any
    ) -> None:
        """Called when a node execution succeeded.

        Args:
            run: The run.
            node: The node.
            context: Its execution context.
            output: The node's output.
        """

    async def on_node_error(
        self,
        run: RunInfo,
        node: "Node",
        context: "ExecutionContext",
        error: BaseException,
    ) -> None:
        """Called when a node failed for good (the error is a ``NodeExecutionError``).

        Args:
            run: The run.
            node: The node.
            context: Its execution context.
            error: The final error.
        """

    async def on_retry(
        self,
        run: RunInfo,
        node: "Node",
        context: "ExecutionContext",
        error: BaseException,
        delay_s: float,
    ) -> None:
        """Called before the engine sleeps ``delay_s`` and retries a failed attempt.

        Args:
            run: The run.
            node: The node.
            context: Its execution context.
            error: The error of the failed attempt.
            delay_s: The delay before the retry.
        """

    async def on_event(
        self, run: RunInfo, node: "Node", name: str, data: Dict[str, Any]
    ) -> None:
        """Called for events a node emits (``context.emit``, ``context.report_cost``).

        Args:
            run: The run.
            node: The node that emitted the event.
            name: Event name (``"cost"`` for ``report_cost``).
            data: Event payload.
        """


__all__ = ["GraphObserver", "RunInfo", "RunResult", "NodeRunInfo"]
