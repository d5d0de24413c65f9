"""Typed errors raised by spark_core.

Every error the engine raises derives from :class:`SparkError`. A failing node ends a run with
:class:`NodeExecutionError`, which names the node and chains the original exception as its
``__cause__``. :class:`RunStopped` (and its subclass :class:`RunPaused`) are control-flow
signals: they are never retried, never wrapped, and propagate out of ``graph.run`` as they are.
"""

from __future__ import annotations

from typing import Any, Dict, Optional, Tuple


class SparkError(Exception):
    """Base class of every spark_core error.

    Attributes:
        run_id: The id of the graph run the error ended, when it ended one (set by the graph).
    """

    run_id: Optional[str] = None


class NodeExecutionError(SparkError):
    """A node failed for good (after its retries); the run that executed it failed.

    Attributes:
        node_id: The id of the node that failed.
        cause: The exception the node raised (also chained as ``__cause__``).
    """

    def __init__(
        self,
        node_id: str,
        cause: Optional[BaseException] = None,
        message: Optional[str] = None,
    ) -> None:
        self.node_id = node_id
        self.cause = cause
        if message is None:
            detail = (
                f"{type(cause).__name__}: {cause}" if cause is not None else "failed"
            )
            message = f"node {node_id!r} failed: {detail}"
        super().__init__(message)
        if cause is not None:
            self.__cause__ = cause


class NodeTimeoutError(NodeExecutionError):
    """A node attempt ran longer than its ``TimeoutCapability`` allows."""


class CircuitOpenError(NodeExecutionError):
    """A node's circuit breaker is open, so the node was not called."""


class MaxStepsExceededError(SparkError):
    """A run made more node executions than its graph allows.

    That is more than the graph's ``max_steps`` in total or, when ``max_steps`` is ``None``
    (the default), a node was about to complete more than 1,000 times in one run.

    Attributes:
        max_steps: The total limit, or ``None`` when the per-node limit stopped the run.
        node_id: The node that ran most often, when known.
        runs: How many times it ran.
    """

    def __init__(
        self, max_steps: Optional[int], node_id: Optional[str] = None, runs: int = 0
    ) -> None:
        self.max_steps = max_steps
        self.node_id = node_id
        self.runs = runs
        if max_steps is None:
            message = (
                f"node {node_id!r} ran {runs} times in this run, the most one node may: "
                "a loop that did not terminate? (pass Graph(max_steps=...) to bound the "
                "run's node executions in total instead)"
            )
        else:
            # Only a node that ran again points to a loop; otherwise the graph is just big.
            why = (
                f": node {node_id!r} ran {runs} times, a loop that did not terminate?"
                if runs > 1
                else ""
            )
            message = (
                f"run exceeded max_steps={max_steps} node executions{why} "
                "(raise max_steps if the graph really needs more steps)"
            )
        super().__init__(message)


class StateValidationError(SparkError, ValueError):
    """A graph-state write or a checkpoint does not match the schema or is not JSON data."""


class StateBackendError(SparkError):
    """The state backend failed to read or write (SQLite: disk full, database locked, not a
    database, closed; PostgreSQL: unreachable, wrong password, connection lost, extra not
    installed); the backend's own error is the ``__cause__``. A failed write wrote
    nothing. The message names the database, never its password."""


class RunClaimedError(SparkError):
    """Another process holds the claim on this run (it is running it right now).

    Attributes:
        run_id: The run.
        owner: Who holds the claim (host, pid and a random tag).
        expires_in: Seconds until that claim's lease expires unless its holder renews it;
            a claim held by a dead process expires, and the run can be resumed then.
    """

    def __init__(self, run_id: str, owner: str, expires_in: float) -> None:
        self.run_id = run_id
        self.owner = owner
        self.expires_in = expires_in
        super().__init__(
            f"run {run_id!r} is claimed by {owner} (lease expires in {expires_in:.1f} s "
            "unless renewed): another process is running it"
        )


class StateLockError(SparkError, RuntimeError):
    """The graph-state lock was used from the wrong kind of code (``lock()`` is for async
    code on the run's event loop, ``lock_sync()`` for plain ``def`` nodes' threads)."""


class GraphDefinitionError(SparkError, ValueError):
    """The graph (nodes, edges, expressions, configuration) is not valid."""


class ExpressionError(GraphDefinitionError):
    """An edge expression is not valid in the safe expression language."""


class EdgeConditionError(SparkError):
    """Evaluating an edge condition raised an error at run time.

    In a run it is the ``__cause__`` of the source node's :class:`NodeExecutionError`: the
    conditions are evaluated as part of the node's execution, so the node counts as failed
    everywhere (observers see its attempt fail, its circuit breaker counts a failure, it is
    not retried) and the run stays where it was (nothing of that step is recorded).
    """


class ExpressionLimitError(ExpressionError, EdgeConditionError):
    """Evaluating an expression would go past a bound of the language.

    Numbers of :data:`~spark_core.expr.MAX_INT_DIGITS` digits or more, ``round()``
    to as many digits, texts and lists beyond :data:`~spark_core.expr.MAX_SIZE`,
    ``%`` formatting or ``*`` on texts: refused instead of computed, so every expression
    runs in bounded time and memory. It is an :class:`ExpressionError` (what the expression
    asks is outside the language) and an :class:`EdgeConditionError` (it is found at run
    time, from the values the expression reads).
    """


class RunNotFoundError(SparkError, KeyError):
    """No run with the given id is stored in the state backend."""

    def __init__(self, run_id: str) -> None:
        self.run_id = run_id
        super().__init__(f"no run with id {run_id!r} in the state backend")

    def __str__(self) -> str:
        return str(self.args[0])


class RunStopped(SparkError):
    """Stop the run now (raised by a node or an observer: guardrails, policies).

    Never retried and never wrapped: it propagates out of ``graph.run`` as is. The run is
    saved with the status in ``run_status`` (``"cancelled"`` unless a subclass says
    otherwise: a policy violation is ``"failed"``).
    """

    run_status: str = "cancelled"

    def stop_event(self) -> Optional[Tuple[str, Dict[str, Any]]]:
        """The event a run's telemetry records when this stop ends it, if any.

        Returns:
            ``(event name, attributes)``, or ``None`` (the base class records none).
        """
        return None


class RunPaused(RunStopped):
    """Pause the run (e.g. waiting for a human approval).

    The run is saved with status ``"paused"``; the node that raised this stays pending, and
    ``graph.resume(run_id)`` runs that node again.
    """


__all__ = [
    "SparkError",
    "NodeExecutionError",
    "NodeTimeoutError",
    "CircuitOpenError",
    "MaxStepsExceededError",
    "StateValidationError",
    "StateBackendError",
    "RunClaimedError",
    "StateLockError",
    "GraphDefinitionError",
    "ExpressionError",
    "EdgeConditionError",
    "ExpressionLimitError",
    "RunNotFoundError",
    "RunStopped",
    "RunPaused",
]
