"""Automatic instrumentation of graph runs: :class:`TelemetryObserver`.

``Graph(..., telemetry=manager)`` attaches it. Per run it records:

* one trace (name: the graph id; attributes ``run_id``, ``graph_id``, ``resumed``; status
  ``ok``, ``error`` (also a policy violation, stored as a failed run), ``paused`` or
  ``stopped``);
* one span per node attempt (name: the node id, ``kind="node"``; attributes ``node_id``,
  ``attempt``, ``node_type``; status ``ok`` / ``error`` with the error text);
* events: ``node.retry`` (attempt, delay, error type), ``node.failed``, every event nodes
  emit (``cost``, and the governance events ``policy.decision``, ``approval.requested``,
  ``approval.used``, ``approval.rejected``), and at the end ``guardrail.breach`` (limit,
  value, threshold), ``policy.violation`` or ``approval.pending`` when one stopped the run.

A run whose trace is not sampled records nothing and costs a dictionary lookup per hook.

The node attempt's span is the current span while the node runs, so
``manager.start_span(name)`` (no ids) inside a node nests under it, in the run's trace, and
``manager.record_event(name)`` lands on it. Code running inside a node (e.g. an agent) can
also use :func:`node_span`, which yields None (and records nothing) outside a graph,
without telemetry, or when the run is not sampled::

    async with node_span(context, "llm_call", {"model": "gpt-4o"}) as span:
        if span is not None:
            span.set_attribute("tokens", 12)

:func:`current_node_span` returns the node attempt's span itself.
"""

from __future__ import annotations

import contextlib
import contextvars
from typing import Any, AsyncIterator, Dict, Optional, Tuple

from spark_core.errors import RunPaused, RunStopped
from spark_core.graphs import plugins
from spark_core.graphs.observers import GraphObserver, RunInfo, RunResult
from spark_core.telemetry.config import TelemetryConfig, TelemetryConfigError
from spark_core.telemetry.manager import Span, TelemetryManager, Trace, _current_span

__all__ = ["TelemetryObserver", "current_node_span", "node_span"]

_TRACE = "spark.telemetry.trace"
# Running attempts: context key -> (span, token to put back the current span it replaced).
_SPANS = "spark.telemetry.spans"
_Running = Tuple[Span, "contextvars.Token[Optional[Span]]"]


class TelemetryObserver(GraphObserver):
    """Graph observer that writes runs to a :class:`TelemetryManager`.

    Args:
        manager: Where to record: a TelemetryManager; a TelemetryConfig (a new manager is
            made from it); or None / True for ``TelemetryManager.get_instance()``.

    Raises:
        TelemetryConfigError: ``manager`` is none of those.
    """

    def __init__(self, manager: Any = None) -> None:
        if manager is None or manager is True:
            manager = TelemetryManager.get_instance()
        elif isinstance(manager, TelemetryConfig):
            manager = TelemetryManager(manager)
        if not isinstance(manager, TelemetryManager):
            raise TelemetryConfigError(
                "telemetry must be a TelemetryManager, a TelemetryConfig or True, "
                f"got {type(manager).__name__}"
            )
        self.manager: TelemetryManager = manager

    async def on_run_start(self, run: RunInfo) -> None:
        """Open the run's trace (sampling is decided here)."""
        graph_id = getattr(run.graph, "graph_id", None) or "graph"
        trace = self.manager._open_trace(
            str(graph_id),
            {"run_id": run.run_id, "graph_id": graph_id, "resumed": bool(run.resumed)},
            set_current=False,
        )
        if trace.sampled:
            run.attrs[_TRACE] = trace
            run.attrs[_SPANS] = {}
        else:
            self.manager._traces.pop(trace.trace_id, None)

    async def on_attempt_start(self, run: RunInfo, node: Any, context: Any) -> None:
        """Open a span for the attempt."""
        trace: Optional[Trace] = run.attrs.get(_TRACE)
        if trace is None:
            return
        attempt = context.metadata.get("attempt", 1) if context is not None else 1
        span = self.manager._trusted_span(
            str(node.id),
            trace.trace_id,
            {"node_id": node.id, "attempt": attempt, "node_type": type(node).__name__},
            "node",
        )
        # Keyed by the execution's context: one node can run twice at once (two branches
        # reaching it), and each execution has its own context.
        # Current for the node's task, so manager.start_span / record_event without ids
        # inside the node nest under this attempt.
        run.attrs[_SPANS][_span_key(node, context)] = (span, _current_span.set(span))

    async def on_attempt_end(
        self,
        run: RunInfo,
        node: Any,
        context: Any,
        output: Any,
        error: Optional[BaseException],
    ) -> None:
        """Close the attempt's span with its status."""
        spans: Optional[Dict[Any, _Running]] = run.attrs.get(_SPANS)
        running = spans.pop(_span_key(node, context), None) if spans else None
        if running is None:
            return
        span, token = running
        _restore(token)
        if error is not None:
            span.record_error(error)
        span.end()

    async def on_retry(
        self,
        run: RunInfo,
        node: Any,
        context: Any,
        error: BaseException,
        delay_s: float,
    ) -> None:
        """Record a ``node.retry`` event."""
        trace: Optional[Trace] = run.attrs.get(_TRACE)
        if trace is None:
            return
        attempt = context.metadata.get("attempt", 1) if context is not None else None
        self.manager.record_event(
            "node.retry",
            trace_id=trace.trace_id,
            attributes={
                "node_id": node.id,
                "attempt": attempt,
                "delay_s": delay_s,
                "error_type": type(error).__name__,
            },
        )

    async def on_node_error(
        self, run: RunInfo, node: Any, context: Any, error: Any
    ) -> None:
        """Record a ``node.failed`` event."""
        trace: Optional[Trace] = run.attrs.get(_TRACE)
        if trace is None:
            return
        cause = getattr(error, "cause", None) or error
        self.manager.record_event(
            "node.failed",
            trace_id=trace.trace_id,
            attributes={"node_id": node.id, "error_type": type(cause).__name__},
        )

    async def on_event(
        self, run: RunInfo, node: Any, name: str, data: Dict[str, Any]
    ) -> None:
        """Record an event emitted by a node (cost, policy decisions, approvals, custom)."""
        trace: Optional[Trace] = run.attrs.get(_TRACE)
        if trace is None:
            return
        node_id = getattr(node, "id", None)
        # Events carry no context: any running attempt of the node is their span.
        span = next(
            (s for s, _ in run.attrs[_SPANS].values() if s.name == node_id), None
        )
        attributes = dict(data)
        attributes.setdefault("node_id", node_id)
        self.manager.record_event(
            name,
            trace_id=trace.trace_id,
            span_id=span.span_id if span is not None else None,
            attributes=attributes,
        )

    async def on_run_end(
        self, run: RunInfo, result: Optional[RunResult], error: Optional[BaseException]
    ) -> None:
        """Record why a stopped run stopped, then close the trace."""
        trace: Optional[Trace] = run.attrs.pop(_TRACE, None)
        if trace is None:
            return
        status = "ok"
        if error is not None:
            status = self._record_stop(trace, error)
        elif result is not None and result.status != "completed":
            status = {"failed": "error"}.get(result.status, result.status)
        # Attempts cut short by a stop (which skips on_attempt_end).
        for span, token in run.attrs.pop(_SPANS, {}).values():
            _restore(token)
            span.end("paused" if status == "paused" else "cancelled")
        self.manager.end_trace(trace.trace_id, status)

    def _record_stop(self, trace: Trace, error: BaseException) -> str:
        # Each kind of stop (guardrail breach, policy violation, pending approval) names
        # its own event, so telemetry needs to know none of the packages that raise them.
        event = error.stop_event() if isinstance(error, RunStopped) else None
        if event is not None:
            name, attributes = event
            self.manager.record_event(
                name, trace_id=trace.trace_id, attributes=attributes
            )
        if isinstance(error, RunPaused):
            return "paused"
        if isinstance(
            error, RunStopped
        ):  # a policy violation is stored as a failed run
            return "error" if error.run_status == "failed" else "stopped"
        return "error"


def _span_key(node: Any, context: Any) -> Any:
    return context if context is not None else node.id


def _restore(token: Optional[contextvars.Token[Optional[Span]]]) -> None:
    """Put back the current span an attempt replaced, if in that attempt's context."""
    if token is None:
        return
    try:
        _current_span.reset(token)
    except (ValueError, RuntimeError):
        pass  # set in another task's context (a branch), which ended with it


def current_node_span(context: Any) -> Optional[Span]:
    """Return the recording span of the node attempt ``context`` belongs to.

    Args:
        context: A node's ExecutionContext (anything else gives None).

    Returns:
        The span, or None outside a graph, without telemetry, or when the run's trace is
        not sampled.
    """
    run = getattr(context, "_run", None)
    attrs = getattr(run, "attrs", None)
    if not isinstance(attrs, dict):
        return None
    spans = attrs.get(_SPANS)
    running = spans.get(context) if isinstance(spans, dict) else None
    span = running[0] if running is not None else None
    return span if isinstance(span, Span) and span.recording else None


@contextlib.asynccontextmanager
async def node_span(
    context: Any, name: str, attributes: Optional[Dict[str, Any]] = None
) -> AsyncIterator[Optional[Span]]:
    """Open a span under the running node attempt's span for the duration of the block.

    The span nests under the innermost span this helper (or ``start_span``) opened in the
    same node, else directly under the node attempt's span. It is current inside the block,
    so ``manager.record_event(...)`` without ids lands on it. An exception escaping the block
    marks it ``error`` (type and scrubbed message) and propagates.

    Args:
        context: The node's ExecutionContext (anything else records nothing).
        name: Span name, e.g. ``llm_call`` or ``tool_call``.
        attributes: Span attributes (credential-looking keys are redacted).

    Yields:
        The span, or None outside a graph, without telemetry, or when the run's trace is
        not sampled; the block runs either way.
    """
    parent = current_node_span(context)
    if parent is None:
        yield None
        return
    manager = parent.manager
    assert manager is not None  # current_node_span returns recording spans only
    current = _current_span.get()
    if (
        current is not None
        and current.trace_id == parent.trace_id
        and current.recording
    ):
        parent_id = current.span_id
    else:
        parent_id = parent.span_id
    async with manager.start_span(
        name, parent.trace_id, parent_id=parent_id, attributes=attributes
    ) as span:
        yield span


plugins.register("telemetry", TelemetryObserver)
