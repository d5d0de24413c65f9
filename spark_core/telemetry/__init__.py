"""Tracing for spark_core: traces, nested spans, events, sampling, SQLite storage, queries.

Public names: :class:`TelemetryConfig`, :class:`TelemetryManager`, :class:`Trace`,
:class:`Span`, :class:`TelemetryObserver` (graph instrumentation), :func:`node_span` and
:func:`current_node_span` (child spans of the running node; these three are imported lazily),
:func:`redact`, :class:`RedactingFilter` (logging), the backends, and :class:`TelemetryConfigError`.
"""

from __future__ import annotations

from typing import Any

from spark_core.telemetry.backends import (
    MemoryTelemetryBackend,
    SQLiteTelemetryBackend,
    TelemetryBackend,
)
from spark_core.telemetry.config import TelemetryConfig, TelemetryConfigError
from spark_core.telemetry.manager import Span, SpanScope, TelemetryManager, Trace
from spark_core.telemetry.redaction import RedactingFilter, redact

__all__ = [
    "TelemetryConfig",
    "TelemetryConfigError",
    "TelemetryManager",
    "Trace",
    "Span",
    "SpanScope",
    "TelemetryBackend",
    "MemoryTelemetryBackend",
    "SQLiteTelemetryBackend",
    "TelemetryObserver",
    "node_span",
    "current_node_span",
    "redact",
    "RedactingFilter",
]


def __getattr__(name: str) -> Any:
    # The observer imports the graph package; load it only when asked for.
    if name in ("TelemetryObserver", "node_span", "current_node_span"):
        from spark_core.telemetry import instrument

        return getattr(instrument, name)
    raise AttributeError(f"module 'spark_core.telemetry' has no attribute {name!r}")
