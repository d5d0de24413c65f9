"""Agent spans (``llm_call``, ``tool_call``) inside the graph run's telemetry trace.

They are the telemetry package's public :func:`~spark_core.telemetry.instrument.node_span`:
children of the running node's span. Outside a graph, or without telemetry, or when the
trace is not sampled, nothing is recorded. The telemetry package is imported only when an
agent runs inside a graph, so ``import spark_core.agents`` does not pay for it.
"""

from __future__ import annotations

from typing import Any, AsyncContextManager, Dict, Optional


def agent_span(
    context: Any, name: str, attributes: Dict[str, Any]
) -> AsyncContextManager[Optional[Any]]:
    """Open a span named ``name`` under the node's span for the duration of the block.

    Args:
        context: The node's execution context (or None).
        name: ``llm_call`` or ``tool_call``.
        attributes: Span attributes (redacted by the telemetry manager).

    Returns:
        An async context manager yielding the span (``set_attribute`` / ``set_status`` work
        on it), or None when not recording.
    """
    if getattr(context, "graph", None) is None:
        return _NO_SPAN
    from spark_core.telemetry.instrument import node_span

    return node_span(context, name, attributes)


class _NoSpan:
    """Stands for a span outside a graph (``contextlib.nullcontext`` is async on 3.10+ only)."""

    async def __aenter__(self) -> None:
        return None

    async def __aexit__(self, *exc: Any) -> None:
        return None


_NO_SPAN = _NoSpan()
