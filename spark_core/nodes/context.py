"""What a node's ``process(context)`` receives."""

from __future__ import annotations

import inspect
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any, Dict, List, Optional, Sequence, Tuple

from spark_core.errors import SparkError

if TYPE_CHECKING:  # pragma: no cover
    from spark_core.graphs.graph import Graph
    from spark_core.graphs.observers import GraphObserver, RunInfo
    from spark_core.graphs.state import GraphState
    from spark_core.graphs.transaction import StepTransaction
    from spark_core.nodes.base import Node


# The step transaction (``spark_core.graphs.transaction.StepTransaction``) of the node
# execution running in this context, or ``None`` outside nodes: the node runner sets it
# around ``process`` (worker threads get a copy), and a ``GraphState`` records a write in
# the innermost transaction of its own (a graph run inside a node links the outer node's
# as ``outer``).
CURRENT_STEP: "ContextVar[Optional[StepTransaction]]" = ContextVar(
    "spark_current_step", default=None
)


class Inputs:
    """A node's input.

    Attributes:
        content: The previous node's output, or the run's input (``{}`` when there is none).
            A :class:`~spark_core.nodes.JoinNode` receives ``{parent id: parent output}``.
    """

    __slots__ = ("content",)

    def __init__(self, content: Any = None) -> None:
        self.content: Any = {} if content is None else content

    def __repr__(self) -> str:
        return f"Inputs(content={self.content!r})"


class NodeState:
    """A node's own state, kept across its executions.

    Attributes:
        context_snapshot: The node's previous output (``None`` before its first success).
    """

    __slots__ = ("context_snapshot",)

    def __init__(self, context_snapshot: Optional[Dict[str, Any]] = None) -> None:
        self.context_snapshot = context_snapshot

    def __repr__(self) -> str:
        return f"NodeState(context_snapshot={self.context_snapshot!r})"


class ExecutionContext:
    """Everything a node sees while it runs.

    Attributes:
        inputs: The node's input (``inputs.content``).
        state: The node's own state (``state.context_snapshot`` is its previous output).
        graph_state: The graph's shared :class:`~spark_core.graphs.GraphState`, or ``None``
            when the node runs alone.
        metadata: ``node_id``, ``run_id``, ``attempt`` (1-based), ``graph_id``, ``step``.
        graph: The graph running the node, or ``None``.
        run_id: The run's id, or ``None`` when the node runs alone.
        transaction: The step transaction that records this execution's graph-state
            writes (set by the scheduler; ``None`` when the node runs alone).
    """

    __slots__ = (
        "inputs",
        "state",
        "graph_state",
        "metadata",
        "graph",
        "run_id",
        "_run",
        "_node",
        "_observers",
        "_events",
        "transaction",
    )

    def __init__(
        self,
        inputs: Inputs,
        state: NodeState,
        graph_state: Optional["GraphState"] = None,
        metadata: Optional[Dict[str, Any]] = None,
        graph: Optional["Graph"] = None,
        run_id: Optional[str] = None,
        run: Optional["RunInfo"] = None,
        node: Optional["Node"] = None,
        observers: Sequence["GraphObserver"] = (),
    ) -> None:
        self.inputs = inputs
        self.state = state
        self.graph_state = graph_state
        self.metadata: Dict[str, Any] = {} if metadata is None else metadata
        self.graph = graph
        self.run_id = run_id
        self._run = run
        self._node = node
        self._observers = observers
        self._events: Optional[List[Tuple[str, Dict[str, Any]]]] = None
        self.transaction: Optional["StepTransaction"] = None

    def __repr__(self) -> str:
        return f"ExecutionContext(node_id={self.metadata.get('node_id')!r}, run_id={self.run_id!r})"

    async def call_tool(self, name: str, /, **arguments: Any) -> Any:
        """Call a tool through the graph's governed tool executor.

        Args:
            name: The tool's name.
            **arguments: The tool's arguments.

        Returns:
            Whatever the tool returns.

        Raises:
            SparkError: The node runs outside a graph or the graph has no tools.
        """
        executor = self.graph.tool_executor if self.graph is not None else None
        if executor is None:
            raise SparkError(
                f"cannot call tool {name!r}: the graph has no tools (pass Graph(tools=[...]))"
            )
        await self.flush_events()
        result = executor.call(name, arguments, self)
        if inspect.isawaitable(result):
            result = await result
        return result

    def report_cost(
        self, usd: float, *, tokens: Optional[int] = None, source: Optional[str] = None
    ) -> None:
        """Report money (and tokens) this node spent; observers get a ``"cost"`` event.

        Safe to call from a plain ``def`` node running in a worker thread: the event is
        queued and delivered before the attempt ends (or at the next ``emit``/``call_tool``).

        Args:
            usd: Cost in US dollars (>= 0).
            tokens: Tokens used, if known.
            source: What incurred the cost (a model id, a tool name, ...).

        Raises:
            ValueError: ``usd`` or ``tokens`` is negative or not a number.
        """
        if isinstance(usd, bool) or not isinstance(usd, (int, float)) or usd < 0:
            raise ValueError(f"usd must be a number >= 0, got {usd!r}")
        if tokens is not None and (not isinstance(tokens, int) or tokens < 0):
            raise ValueError(f"tokens must be an int >= 0, got {tokens!r}")
        if not self._observers:
            return
        if self._events is None:
            self._events = []
        self._events.append(
            ("cost", {"usd": float(usd), "tokens": tokens, "source": source})
        )

    async def emit(self, name: str, **data: Any) -> None:
        """Send a custom event to the run's observers (their ``on_event`` hook).

        Args:
            name: Event name.
            **data: Event payload.
        """
        if not self._observers:
            return
        await self.flush_events()
        await self._deliver(name, data)

    async def flush_events(self) -> None:
        """Deliver queued events (``report_cost``) to the observers now."""
        while self._events:
            name, data = self._events.pop(0)
            await self._deliver(name, data)

    async def _deliver(self, name: str, data: Dict[str, Any]) -> None:
        if self._run is None or self._node is None:
            return
        for observer in self._observers:
            await observer.on_event(self._run, self._node, name, data)


__all__ = ["ExecutionContext", "Inputs", "NodeState", "CURRENT_STEP"]
