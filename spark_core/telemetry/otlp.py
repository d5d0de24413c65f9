"""``OTLPTelemetryBackend``: export traces to any OpenTelemetry collector over OTLP/HTTP.

Records become OpenTelemetry spans and go through the OpenTelemetry SDK's OTLP/HTTP exporter
(extra ``ai-spine-sdk[otlp]``, imported lazily), so Jaeger, Grafana Tempo, Honeycomb or
Datadog receive what the SQLite backend would have stored:

* a trace (e.g. one graph run) becomes the trace's root span: its name, attributes and
  status, the same 128-bit trace id, and a span id taken from the trace id's second half;
* a span keeps its name, 64-bit span id, start and end, attributes, and its parent: its
  ``parent_id``, or the trace's root span for a top-level span (a node attempt);
  ``status`` ``ok`` / ``error`` become OTLP's OK / ERROR (with the error text), any other
  status (``paused``, ``stopped``) is UNSET with the attribute ``spark.status``;
* an event is attached to its span when that span has not been exported yet, else (and
  when it names no span) to the trace's root span, with ``spark.span_id`` saying where it
  was recorded; an event outside any trace is kept for queries but not exported.

Attribute values arrive already redacted by the manager; values OTLP cannot carry (mappings,
mixed lists) are sent as JSON text. The endpoint and headers come from ``backend_config``
(``endpoint``: the full traces URL, ``headers``) or, as the SDK reads them, from
``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`` / ``OTEL_EXPORTER_OTLP_ENDPOINT`` and
``OTEL_EXPORTER_OTLP_HEADERS``; the service name from ``service_name`` or
``OTEL_SERVICE_NAME``. A copy of the records is kept in memory, so the manager's queries work
too.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from typing import Any, Dict, List, Mapping, Optional, Sequence

from spark_core.telemetry.backends import (
    _ENCODE,
    MemoryTelemetryBackend,
    Record,
    TelemetryBackend,
    as_dict,
)
from spark_core.telemetry.config import TelemetryConfigError

__all__ = ["OTLPTelemetryBackend"]

_log = logging.getLogger("spark_core.telemetry")
_NS = 1_000_000_000
_PRIMITIVES = (str, bool, int, float)
_MAX_WAITING = (
    10_000  # events waiting for their span; the oldest are attached to the root
)


def _otel() -> Dict[str, Any]:
    try:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import (
            OTLPSpanExporter,
        )
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import Event, ReadableSpan
        from opentelemetry.sdk.trace.export import SpanExportResult
        from opentelemetry.sdk.util.instrumentation import InstrumentationScope
        from opentelemetry.trace import SpanContext, TraceFlags
        from opentelemetry.trace.status import Status, StatusCode
    except ImportError:
        raise TelemetryConfigError(
            "the otlp telemetry backend needs the OpenTelemetry SDK: "
            "pip install 'ai-spine-sdk[otlp]'"
        ) from None
    return dict(
        OTLPSpanExporter=OTLPSpanExporter,
        Resource=Resource,
        Event=Event,
        ReadableSpan=ReadableSpan,
        SpanExportResult=SpanExportResult,
        InstrumentationScope=InstrumentationScope,
        SpanContext=SpanContext,
        TraceFlags=TraceFlags,
        Status=Status,
        StatusCode=StatusCode,
    )


def _attribute(value: Any) -> Any:
    if isinstance(value, _PRIMITIVES):
        return value
    if isinstance(value, (list, tuple)) and value:
        first = type(value[0])
        if first in _PRIMITIVES and all(type(v) is first for v in value):
            return list(value)
    return _ENCODE(value)


def _attributes(values: Optional[Mapping[str, Any]], **extra: Any) -> Dict[str, Any]:
    out = {str(k): _attribute(v) for k, v in (values or {}).items() if v is not None}
    out.update({k: v for k, v in extra.items() if v is not None})
    return out


def root_span_id(trace_id: str) -> str:
    """The span id of a trace's root span in OTLP: the second half of the trace id.

    Args:
        trace_id: A 32-hex-digit trace id.

    Returns:
        16 hex digits.
    """
    return trace_id[16:32]


class OTLPTelemetryBackend(TelemetryBackend):
    """Exports traces, spans and events as OTLP spans (and keeps them for queries).

    Args:
        endpoint: The OTLP/HTTP traces URL (default: from the ``OTEL_EXPORTER_OTLP_*``
            environment, else the SDK's default local collector).
        headers: HTTP headers for the collector, e.g. an API key (never logged or shown).
        service_name: The ``service.name`` resource attribute (default:
            ``OTEL_SERVICE_NAME``, else ``spark_core``).
        timeout: Seconds per export request.
        max_records: Records kept in memory for queries, per kind.
        exporter: A span exporter to use instead of the OTLP/HTTP one (tests).

    Raises:
        TelemetryConfigError: The OpenTelemetry SDK is not installed.
    """

    blocking = True

    def __init__(
        self,
        endpoint: Optional[str] = None,
        *,
        headers: Optional[Mapping[str, str]] = None,
        service_name: Optional[str] = None,
        timeout: Optional[float] = None,
        max_records: int = 100_000,
        exporter: Any = None,
    ) -> None:
        self._otel = otel = _otel()
        self.endpoint = endpoint
        self._exporter = exporter or otel["OTLPSpanExporter"](
            endpoint=endpoint,
            headers=dict(headers) if headers is not None else None,
            timeout=timeout,
        )
        attributes = {"service.name": service_name} if service_name else {}
        resource = otel["Resource"].create(attributes)
        if not service_name and resource.attributes.get("service.name", "").startswith(
            "unknown_service"
        ):
            resource = resource.merge(otel["Resource"]({"service.name": "spark_core"}))
        self._resource = resource
        from spark_core import __name__ as scope_name

        self._scope = otel["InstrumentationScope"](scope_name)
        self._memory = MemoryTelemetryBackend(max_records)
        self._lock = threading.Lock()
        # Events waiting for their span, or for their trace's root span; spans exported
        # while their trace is still open (span id -> trace id).
        self._by_span: "OrderedDict[str, List[Dict[str, Any]]]" = OrderedDict()
        self._by_trace: "OrderedDict[str, List[Dict[str, Any]]]" = OrderedDict()
        self._exported: "OrderedDict[str, str]" = OrderedDict()

    def __repr__(self) -> str:
        return f"OTLPTelemetryBackend(endpoint={self.endpoint!r})"

    # -- mapping ---------------------------------------------------------------------
    def _context(self, trace_id: str, span_id: str) -> Any:
        otel = self._otel
        return otel["SpanContext"](
            trace_id=int(trace_id, 16),
            span_id=int(span_id, 16),
            is_remote=False,
            trace_flags=otel["TraceFlags"](otel["TraceFlags"].SAMPLED),
        )

    def _status(self, status: Optional[str], error: Optional[str]) -> Any:
        otel = self._otel
        code = otel["StatusCode"]
        if status == "error":
            return otel["Status"](code.ERROR, error or None)
        if status == "ok":
            return otel["Status"](code.OK)
        return otel["Status"](code.UNSET)

    def _event(self, record: Dict[str, Any], moved: bool) -> Any:
        extra = {"spark.span_id": record.get("span_id")} if moved else {}
        return self._otel["Event"](
            record["name"],
            _attributes(record.get("attributes"), **extra),
            int(float(record["timestamp"]) * _NS),
        )

    def _span(
        self,
        *,
        name: str,
        trace_id: str,
        span_id: str,
        parent_id: Optional[str],
        start: float,
        end: Optional[float],
        status: Optional[str],
        error: Optional[str],
        attributes: Dict[str, Any],
        events: List[Any],
    ) -> Any:
        otel = self._otel
        return otel["ReadableSpan"](
            name=name,
            context=self._context(trace_id, span_id),
            parent=self._context(trace_id, parent_id) if parent_id else None,
            resource=self._resource,
            attributes=attributes,
            events=events,
            status=self._status(status, error),
            start_time=int(float(start) * _NS),
            end_time=int(float(end if end is not None else start) * _NS),
            instrumentation_scope=self._scope,
        )

    def _convert(self, batch: Sequence[Record]) -> List[Any]:
        dicts = [(kind, as_dict(record)) for kind, record in batch]
        by_span, by_trace, exported = self._by_span, self._by_trace, self._exported
        for kind, record in dicts:
            if kind != "event":
                continue
            span_id, trace_id = record.get("span_id"), record.get("trace_id")
            if span_id and span_id not in exported:
                by_span.setdefault(span_id, []).append(record)
            elif trace_id:
                by_trace.setdefault(trace_id, []).append(record)
            # an event outside any trace has no place in OTLP's span model: not exported
        for waiting in (by_span, by_trace):
            while len(waiting) > _MAX_WAITING:  # their spans or traces never ended
                waiting.popitem(last=False)
        spans = []
        for kind, record in dicts:
            if kind == "span":
                span_id, trace_id = record["span_id"], record["trace_id"]
                exported[span_id] = trace_id
                spans.append(
                    self._span(
                        name=record["name"],
                        trace_id=trace_id,
                        span_id=span_id,
                        parent_id=record.get("parent_id") or root_span_id(trace_id),
                        start=record["start_time"],
                        end=record.get("end_time"),
                        status=record.get("status"),
                        error=record.get("error"),
                        attributes=_attributes(
                            record.get("attributes"),
                            **{"spark.kind": record.get("kind")},
                            **_status_attribute(record.get("status")),
                        ),
                        events=[
                            self._event(e, False) for e in by_span.pop(span_id, [])
                        ],
                    )
                )
        for kind, record in dicts:
            if kind == "trace":
                trace_id = record["trace_id"]
                mine = by_trace.pop(trace_id, [])
                for span_id in [s for s, t in exported.items() if t == trace_id]:
                    del exported[span_id]
                for span_id in [
                    s
                    for s, evs in by_span.items()
                    if evs[0].get("trace_id") == trace_id
                ]:
                    mine.extend(by_span.pop(span_id))  # their span was never exported
                mine.sort(key=lambda e: float(e["timestamp"]))
                spans.append(
                    self._span(
                        name=record["name"],
                        trace_id=trace_id,
                        span_id=root_span_id(trace_id),
                        parent_id=None,
                        start=record["start_time"],
                        end=record.get("end_time"),
                        status=record.get("status"),
                        error=None,
                        attributes=_attributes(
                            record.get("attributes"),
                            **{"spark.kind": "trace"},
                            **_status_attribute(record.get("status")),
                        ),
                        events=[self._event(e, bool(e.get("span_id"))) for e in mine],
                    )
                )
        while len(exported) > _MAX_WAITING:
            exported.popitem(last=False)
        return spans

    # -- backend ---------------------------------------------------------------------
    def write(self, batch: Sequence[Record]) -> None:
        """Keep the records for queries and export them (on the manager's writer thread)."""
        self._memory.write(batch)
        with self._lock:
            spans = self._convert(batch)
        if not spans:
            return
        result = self._exporter.export(spans)
        if result != self._otel["SpanExportResult"].SUCCESS:
            _log.warning(
                "telemetry: the OTLP collector did not take %d spans", len(spans)
            )

    def query(
        self, table: str, filters: Dict[str, Any], limit: Optional[int] = None
    ) -> List[Dict[str, Any]]:
        """Query the records kept in memory."""
        return self._memory.query(table, filters, limit)

    def close(self) -> None:
        """Shut the exporter down."""
        self._exporter.shutdown()


def _status_attribute(status: Optional[str]) -> Dict[str, Any]:
    return {} if status in ("ok", "error", None) else {"spark.status": status}
