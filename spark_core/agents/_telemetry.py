"""Agent spans (``llm_call``, ``tool_call``) inside the graph run's telemetry trace.

The graph's :class:`~spark_core.telemetry.instrument.TelemetryObserver` (found among
``graph.observers``; it holds the manager) keeps the run's trace
and the running node's span in the run's scratch attributes; an agent running in that node
opens its spans as children of the node span. Outside a graph, or without telemetry, or when
the trace is not sampled, nothing is recorded and nothing is paid.
"""

from __future__ import annotations

import contextlib
from typing import Any, AsyncIterator, Dict, Optional


def _run_trace(context: Any) -> Any:
    graph = getattr(context, "graph", None)
    run = getattr(context, "_run", None)
    attrs = getattr(run, "attrs", None)
    if graph is None or not isinstance(attrs, dict):
        return None, None, None
    try:
        from spark_core.telemetry import instrument
    except ImportError:  # pragma: no cover - telemetry package absent
        return None, None, None
    observer = next(
        (
            o
            for o in getattr(graph, "observers", ())
            if isinstance(o, instrument.TelemetryObserver)
        ),
        None,
    )
    manager = getattr(observer, "manager", None)
    if manager is None:
        return None, None, None
    trace = attrs.get(getattr(instrument, "_TRACE", ""))
    spans = attrs.get(getattr(instrument, "_SPANS", ""))
    if trace is None:
        return None, None, None
    node_id = (getattr(context, "metadata", None) or {}).get("node_id")
    parent = spans.get(node_id) if isinstance(spans, dict) else None
    return manager, trace, parent


@contextlib.asynccontextmanager
async def agent_span(
    context: Any, name: str, attributes: Dict[str, Any]
) -> AsyncIterator[Optional[Any]]:
    """Open a span named ``name`` under the node's span for the duration of the block.

    Args:
        context: The node's execution context (or None).
        name: ``llm_call`` or ``tool_call``.
        attributes: Span attributes (redacted by the telemetry manager).

    Yields:
        The span (``set_attribute`` / ``set_status`` work on it), or None when not recording.
    """
    manager, trace, parent = (
        _run_trace(context) if context is not None else (None, None, None)
    )
    if manager is None or trace is None:
        yield None
        return
    span = manager.begin_span(
        name,
        trace.trace_id,
        parent_id=getattr(parent, "span_id", None),
        attributes=dict(attributes),
    )
    try:
        yield span
    except BaseException as exc:
        span.record_error(exc)
        raise
    finally:
        span.end()
