"""The telemetry manager: traces, nested spans, events, sampling, batching, queries.

::

    manager = TelemetryManager.get_instance(TelemetryConfig(backend="sqlite",
                                                            backend_config={"path": "t.db"}))
    trace = manager.start_trace("my_workflow")
    async with manager.start_span("step_1", trace.trace_id) as span:
        span.set_attribute("user_id", "123")
        async with manager.start_span("step_1a") as child:   # parent_id = span.span_id
            manager.record_event("process_started", trace_id=trace.trace_id)
    manager.end_trace(trace.trace_id)
    await manager.flush()
    manager.query_spans(trace_id=trace.trace_id)

``TelemetryManager.get_instance(config)`` returns the process-wide manager;
``TelemetryManager(config)`` makes an independent one (tests, several graphs).

Records are appended to an in-process buffer; every ``buffer_size`` records a batch goes to the
backend. For SQLite that happens on a background thread, started with the first record, which
also writes a partial batch within ``export_interval`` seconds. ``flush()`` writes everything
now; the query methods flush first. Sampling is decided once per trace: spans and events of an
unsampled trace cost almost nothing and are not stored. Attribute values are redacted (see
:mod:`spark_core.telemetry.redaction`).
"""

from __future__ import annotations

import asyncio
import atexit
import contextvars
import itertools
import logging
import queue
import random
import threading
import time
import types
import uuid
import weakref
from typing import Any, Dict, List, Optional, Type

from spark_core.telemetry.backends import _COLUMNS as _STORED_COLUMNS
from spark_core.telemetry.backends import Record, TelemetryBackend, open_backend
from spark_core.telemetry.config import TelemetryConfig
from spark_core.telemetry.redaction import redact, redact_value, scrub_text

__all__ = ["TelemetryManager", "Trace", "Span", "SpanScope"]

_SPAN_FIELDS = _STORED_COLUMNS["spans"]
_log = logging.getLogger("spark_core.telemetry")
_current_span: contextvars.ContextVar[Optional[Span]] = contextvars.ContextVar(
    "spark_current_span", default=None
)
_current_trace: contextvars.ContextVar[Optional[str]] = contextvars.ContextVar(
    "spark_current_trace", default=None
)
_managers: "weakref.WeakSet[TelemetryManager]" = weakref.WeakSet()


_id_prefix = "%08x" % random.getrandbits(32)
_id_counter = itertools.count(1)


def _new_id() -> str:
    # A per-process random prefix and a counter: unique, and cheaper than a random draw.
    return f"{_id_prefix}{next(_id_counter):08x}"


class Trace:
    """One trace (e.g. one graph run).

    Attributes:
        trace_id: Unique id.
        name: Trace name (queryable).
        start_time: ``time.time()`` at start.
        end_time: ``time.time()`` at end (None while running).
        status: ``running``, then ``ok`` / ``error`` / anything ``end_trace`` was given.
        attributes: Redacted attributes.
        sampled: False when sampling dropped this trace (nothing of it is stored).
    """

    __slots__ = (
        "trace_id",
        "name",
        "start_time",
        "end_time",
        "status",
        "attributes",
        "sampled",
        "_t0",
    )

    def __init__(self, name: str, attributes: Dict[str, Any], sampled: bool) -> None:
        self.trace_id = uuid.uuid4().hex
        self.name = name
        self.start_time = time.time()
        self._t0 = time.perf_counter()
        self.end_time: Optional[float] = None
        self.status = "running"
        self.attributes = attributes
        self.sampled = sampled

    def to_record(self) -> Dict[str, Any]:
        """Return the stored form."""
        end = self.end_time if self.end_time is not None else time.time()
        return {
            "trace_id": self.trace_id,
            "name": self.name,
            "start_time": self.start_time,
            "end_time": end,
            "duration_ms": (end - self.start_time) * 1000.0,
            "status": self.status,
            "attributes": self.attributes,
        }

    def __repr__(self) -> str:
        return f"Trace(name={self.name!r}, trace_id={self.trace_id!r}, status={self.status!r})"


class Span:
    """A timed operation inside a trace; spans nest through ``parent_id``.

    Attributes:
        span_id, trace_id, parent_id, name, kind: Identity (``kind`` is ``node`` for graph
            node attempts, ``internal`` otherwise).
        start_time, end_time, duration_ms: Timing.
        status: ``unset`` while open, then ``ok`` or ``error`` (or what ``set_status`` set).
        error: Error text (credentials scrubbed), if any.
        attributes: Redacted attributes.
    """

    # The stored fields are the backends' span columns, so the two cannot drift apart.
    __slots__ = _SPAN_FIELDS + ("_t0", "_manager", "_ended")

    def __init__(
        self,
        manager: Optional[TelemetryManager],
        name: str,
        trace_id: str,
        parent_id: Optional[str],
        attributes: Dict[str, Any],
        kind: str = "internal",
    ) -> None:
        self._manager = manager  # None: not sampled, nothing is recorded
        self.span_id = _new_id()
        self.trace_id = trace_id
        self.parent_id = parent_id
        self.name = name
        self.kind = kind
        self.attributes = attributes
        self.start_time = time.time()
        self._t0 = time.perf_counter()
        self.end_time: Optional[float] = None
        self.duration_ms: Optional[float] = None
        self.status = "unset"
        self.error: Optional[str] = None
        self._ended = False

    @property
    def recording(self) -> bool:
        """False for spans of unsampled traces (their data is dropped)."""
        return self._manager is not None

    @property
    def manager(self) -> Optional[TelemetryManager]:
        """The manager recording this span (None when not recording)."""
        return self._manager

    def set_attribute(self, key: str, value: Any) -> None:
        """Set one attribute (credential-looking keys are stored as ``[REDACTED]``)."""
        if self._manager is not None:
            cfg = self._manager.config
            self.attributes[str(key)] = redact_value(
                key, value, extra=cfg.redact_keys, max_length=cfg.max_attribute_length
            )

    def set_attributes(self, attributes: Dict[str, Any]) -> None:
        """Set several attributes."""
        for key, value in attributes.items():
            self.set_attribute(key, value)

    def set_status(self, status: str, error: Optional[str] = None) -> None:
        """Set the status (``ok``, ``error``, ...) and optionally an error text."""
        self.status = status
        if error is not None:
            self.error = scrub_text(str(error), 2048)

    def record_error(self, exc: BaseException) -> None:
        """Mark the span failed with ``exc`` (type and scrubbed message)."""
        self.set_status("error", f"{type(exc).__name__}: {exc}")

    def end(self, status: Optional[str] = None) -> None:
        """End the span (once) and hand it to the manager."""
        if self._ended:
            return
        self._ended = True
        self.duration_ms = (time.perf_counter() - self._t0) * 1000.0
        self.end_time = self.start_time + self.duration_ms / 1000.0
        if status is not None:
            self.status = status
        elif self.status == "unset":
            self.status = "ok"
        if self._manager is not None:
            self._manager._push(("span", self))  # turned into a dict off the hot path

    def to_record(self) -> Dict[str, Any]:
        """Return the stored form."""
        return {name: getattr(self, name) for name in _SPAN_FIELDS}

    def __repr__(self) -> str:
        return f"Span(name={self.name!r}, span_id={self.span_id!r}, status={self.status!r})"


class SpanScope:
    """What :meth:`TelemetryManager.start_span` returns: ``async with`` (or ``with``) it.

    Entering makes the span current (children nest under it); leaving ends it, with status
    ``error`` and the error text if an exception escaped.
    """

    def __init__(
        self,
        manager: TelemetryManager,
        name: str,
        trace_id: Optional[str],
        parent_id: Optional[str],
        attributes: Optional[Dict[str, Any]],
    ) -> None:
        self._manager = manager
        self._args = (name, trace_id, parent_id, attributes)
        self._span: Optional[Span] = None
        self._token: Optional[contextvars.Token[Optional[Span]]] = None
        self._own_trace: Optional[str] = None

    def __enter__(self) -> Span:
        name, trace_id, parent_id, attributes = self._args
        current = _current_span.get()
        if trace_id is None:
            if current is not None:
                trace_id = current.trace_id
            else:
                trace_id = _current_trace.get()
        if trace_id is None:  # a root span with no trace: give it its own trace
            trace = self._manager._open_trace(name, {}, set_current=False)
            trace_id = self._own_trace = trace.trace_id
        if parent_id is None and current is not None and current.trace_id == trace_id:
            parent_id = current.span_id
        span = self._manager.begin_span(
            name, trace_id, parent_id=parent_id, attributes=attributes
        )
        self._span = span
        self._token = _current_span.set(span)
        return span

    def __exit__(
        self,
        exc_type: Optional[Type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[types.TracebackType],
    ) -> None:
        span = self._span
        assert span is not None
        if self._token is not None:
            _current_span.reset(self._token)
        if exc is not None and span.status in ("unset", "ok"):
            span.record_error(exc)
        span.end()
        if self._own_trace is not None:
            self._manager.end_trace(
                self._own_trace, "error" if exc is not None else "ok"
            )

    async def __aenter__(self) -> Span:
        return self.__enter__()

    async def __aexit__(
        self,
        exc_type: Optional[Type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[types.TracebackType],
    ) -> None:
        self.__exit__(exc_type, exc, tb)


class _Writer(threading.Thread):
    """Writes batches to a blocking backend off the caller's thread."""

    def __init__(self, manager: TelemetryManager) -> None:
        super().__init__(name="spark-telemetry-writer", daemon=True)
        self._manager_ref = weakref.ref(manager)
        self.queue: "queue.Queue[Optional[List[Record]]]" = queue.Queue()
        self.backend = manager.backend
        self.interval = manager.config.export_interval

    def run(self) -> None:
        while True:
            try:
                batch = self.queue.get(timeout=self.interval)
            except queue.Empty:
                manager = self._manager_ref()
                if manager is None:
                    return
                # Through the queue, taken and queued under the manager's lock: a flush
                # that finds nothing pending then waits for this batch (queue.join).
                with manager._lock:
                    pending, manager._pending = manager._pending, []
                    if pending:
                        self.queue.put(pending)
                del manager
                continue
            try:
                if batch is None:
                    return
                self._write(batch)
            finally:
                self.queue.task_done()

    def _write(self, batch: List[Record]) -> None:
        try:
            self.backend.write(batch)
        except Exception as exc:  # noqa: BLE001 - telemetry must never break the app
            _log.warning(
                "telemetry: dropped %d records: %s", len(batch), type(exc).__name__
            )


class TelemetryManager:
    """Records traces, spans and events and answers queries about them.

    Args:
        config: Settings (defaults: enabled, in-memory backend, everything sampled).
        backend: Use this backend instead of the one ``config`` names.
    """

    _instance: Optional[TelemetryManager] = None
    _instance_lock = threading.Lock()

    def __init__(
        self,
        config: Optional[TelemetryConfig] = None,
        *,
        backend: Optional[TelemetryBackend] = None,
    ) -> None:
        self.config = config if config is not None else TelemetryConfig()
        if backend is None:
            backend = open_backend(self.config)
        self.backend = backend
        self._pending: List[Record] = []
        self._lock = threading.Lock()
        self._traces: Dict[str, Trace] = {}
        self._writer: Optional[_Writer] = None
        self._rng = random.Random()
        self._closed = False
        _managers.add(self)

    # -- instances ---------------------------------------------------------------------
    @classmethod
    def get_instance(cls, config: Optional[TelemetryConfig] = None) -> TelemetryManager:
        """Return the process-wide manager, creating it (or replacing it when ``config``
        differs from the current one's: the old one is flushed and stays usable by whoever
        still holds it)."""
        with cls._instance_lock:
            current = cls._instance
            if current is not None and (config is None or config == current.config):
                return current
            if current is not None:
                current.flush_sync()
            cls._instance = cls(config)
            return cls._instance

    @classmethod
    def reset_instance(cls) -> None:
        """Close and forget the process-wide manager (tests)."""
        with cls._instance_lock:
            if cls._instance is not None:
                cls._instance.close()
            cls._instance = None

    @property
    def enabled(self) -> bool:
        """True when the config enables recording."""
        return self.config.enabled

    # -- recording ---------------------------------------------------------------------
    def _sample(self) -> bool:
        rate = self.config.sampling_rate
        return self.config.enabled and (rate >= 1.0 or self._rng.random() < rate)

    def _open_trace(
        self, name: str, attributes: Dict[str, Any], *, set_current: bool
    ) -> Trace:
        sampled = self._sample()
        trace = Trace(name, self._redact(attributes) if sampled else {}, sampled)
        self._traces[trace.trace_id] = trace
        if set_current:
            _current_trace.set(trace.trace_id)
        return trace

    def start_trace(
        self, name: str, attributes: Optional[Dict[str, Any]] = None
    ) -> Trace:
        """Start a trace (sampling is decided here); it becomes the current trace.

        Args:
            name: Trace name.
            attributes: Attributes (redacted).

        Returns:
            The Trace; ``trace.sampled`` tells whether it will be stored.
        """
        return self._open_trace(name, dict(attributes or {}), set_current=True)

    def end_trace(self, trace_id: str, status: str = "ok") -> Optional[Trace]:
        """End a trace and store it (if sampled). Unknown ids are ignored.

        Returns:
            The ended trace, or None if the id is unknown.
        """
        trace = self._traces.pop(trace_id, None)
        if trace is None:
            return None
        trace.end_time = trace.start_time + (time.perf_counter() - trace._t0)
        trace.status = status
        if _current_trace.get() == trace_id:
            _current_trace.set(None)
        if trace.sampled:
            self._push(("trace", trace))
        return trace

    def get_trace(self, trace_id: str) -> Optional[Trace]:
        """Return a trace that is still open."""
        return self._traces.get(trace_id)

    def begin_span(
        self,
        name: str,
        trace_id: str,
        *,
        parent_id: Optional[str] = None,
        attributes: Optional[Dict[str, Any]] = None,
        kind: str = "internal",
    ) -> Span:
        """Open a span without a ``with`` block; call ``span.end()`` yourself.

        Args:
            name: Span name.
            trace_id: Its trace.
            parent_id: Parent span id, if nested.
            attributes: Attributes (redacted).
            kind: ``internal`` or ``node``.

        Returns:
            The span (a non-recording one when the trace is not sampled).
        """
        trace = self._traces.get(trace_id)
        recording = trace.sampled if trace is not None else self._sample()
        if not recording:
            return Span(None, name, trace_id, parent_id, {}, kind)
        return Span(self, name, trace_id, parent_id, self._redact(attributes), kind)

    def _trusted_span(
        self, name: str, trace_id: str, attributes: Dict[str, Any], kind: str
    ) -> Span:
        """Open a recording span whose attributes are known to be safe (instrumentation)."""
        return Span(self, name, trace_id, None, attributes, kind)

    def start_span(
        self,
        name: str,
        trace_id: Optional[str] = None,
        *,
        parent_id: Optional[str] = None,
        attributes: Optional[Dict[str, Any]] = None,
    ) -> SpanScope:
        """Return a scope for ``async with`` / ``with`` that yields a new span.

        Args:
            name: Span name.
            trace_id: Trace id; default: the current span's or current trace's; a root
                span without any trace gets its own trace.
            parent_id: Parent span id; default: the current span (same trace).
            attributes: Attributes (redacted).
        """
        return SpanScope(self, name, trace_id, parent_id, attributes)

    def record_event(
        self,
        name: str,
        *,
        trace_id: Optional[str] = None,
        span_id: Optional[str] = None,
        attributes: Optional[Dict[str, Any]] = None,
    ) -> Optional[Dict[str, Any]]:
        """Record a point-in-time event.

        Args:
            name: Event name.
            trace_id: Its trace (default: the current span's / trace's).
            span_id: Its span (default: the current span, when in the same trace).
            attributes: Attributes (redacted).

        Returns:
            The stored record, or None when the trace is not sampled or telemetry is off.
        """
        current = _current_span.get()
        if trace_id is None:
            trace_id = current.trace_id if current is not None else _current_trace.get()
        if span_id is None and current is not None and current.trace_id == trace_id:
            span_id = current.span_id
        trace = self._traces.get(trace_id) if trace_id is not None else None
        if trace is not None and not trace.sampled:
            return None
        if not self.config.enabled:
            return None
        record = {
            "event_id": _new_id(),
            "trace_id": trace_id,
            "span_id": span_id,
            "name": name,
            "timestamp": time.time(),
            "attributes": self._redact(attributes),
        }
        self._push(("event", record))
        return record

    def _redact(self, attributes: Optional[Dict[str, Any]]) -> Dict[str, Any]:
        cfg = self.config
        return redact(
            attributes, extra=cfg.redact_keys, max_length=cfg.max_attribute_length
        )

    # -- buffering -----------------------------------------------------------------------
    def _push(self, record: Record) -> None:
        with self._lock:
            self._pending.append(record)
            if len(self._pending) == 1 and self.backend.blocking:
                self._live_writer()  # it writes this new batch within export_interval
            if len(self._pending) < self.config.buffer_size:
                return
            batch, self._pending = self._pending, []
        self._dispatch(batch)

    def _live_writer(self) -> _Writer:
        """The running writer thread, started anew if there is none or it ended (call with
        ``self._lock`` held)."""
        writer = self._writer
        if writer is None or not writer.is_alive():
            writer = self._writer = _Writer(self)
            writer.start()
        return writer

    def _take_pending(self) -> List[Record]:
        with self._lock:
            batch, self._pending = self._pending, []
        return batch

    def _dispatch(self, batch: List[Record]) -> None:
        if not self.backend.blocking:
            self.backend.write(batch)
            return
        with self._lock:
            writer = self._live_writer()
        writer.queue.put(batch)

    def flush_sync(self) -> None:
        """Write every buffered record now and wait until the backend has it."""
        batch = self._take_pending()
        if batch:
            self._dispatch(batch)
        writer = self._writer
        if writer is not None and writer.is_alive():
            writer.queue.join()

    async def flush(self) -> None:
        """Write every buffered record now (without blocking the event loop)."""
        if self.backend.blocking:
            await asyncio.to_thread(self.flush_sync)
        else:
            self.flush_sync()

    def close(self) -> None:
        """Flush, stop the writer thread and close the backend (idempotent)."""
        if self._closed:
            return
        self.flush_sync()
        self._closed = True
        writer = self._writer
        if writer is not None and writer.is_alive():
            writer.queue.put(None)
            writer.join(timeout=5)
        self.backend.close()

    # -- queries ---------------------------------------------------------------------------
    def _query(
        self, table: str, limit: Optional[int], **filters: Any
    ) -> List[Dict[str, Any]]:
        self.flush_sync()
        wanted = {k: v for k, v in filters.items() if v is not None}
        return self.backend.query(table, wanted, limit)

    def query_traces(
        self,
        name: Optional[str] = None,
        *,
        status: Optional[str] = None,
        limit: Optional[int] = None,
    ) -> List[Dict[str, Any]]:
        """Return stored traces (plain dicts), oldest first, filtered by name/status."""
        return self._query("traces", limit, name=name, status=status)

    def query_spans(
        self,
        trace_id: Optional[str] = None,
        *,
        name: Optional[str] = None,
        status: Optional[str] = None,
        kind: Optional[str] = None,
        limit: Optional[int] = None,
    ) -> List[Dict[str, Any]]:
        """Return stored spans (plain dicts), oldest first."""
        return self._query(
            "spans", limit, trace_id=trace_id, name=name, status=status, kind=kind
        )

    def query_events(
        self,
        trace_id: Optional[str] = None,
        *,
        name: Optional[str] = None,
        limit: Optional[int] = None,
    ) -> List[Dict[str, Any]]:
        """Return stored events (plain dicts), oldest first."""
        return self._query("events", limit, trace_id=trace_id, name=name)

    def slowest_nodes(
        self, limit: int = 10, *, trace_id: Optional[str] = None
    ) -> List[Dict[str, Any]]:
        """Node spans grouped by node: ``name``, ``count``, ``avg_ms``, ``max_ms``,
        ``total_ms``; slowest average first."""
        self.flush_sync()
        rows = []
        for s in self.backend.node_stats(trace_id):
            rows.append(
                {
                    "name": s["name"],
                    "count": s["count"],
                    "avg_ms": s["total_ms"] / s["count"] if s["count"] else 0.0,
                    "max_ms": s["max_ms"],
                    "total_ms": s["total_ms"],
                }
            )
        rows.sort(key=lambda r: r["avg_ms"], reverse=True)
        return rows[:limit]

    def error_rates(
        self, *, trace_id: Optional[str] = None
    ) -> Dict[str, Dict[str, Any]]:
        """Per node: ``attempts``, ``errors`` and ``error_rate`` (errors / attempts)."""
        self.flush_sync()
        return {
            s["name"]: {
                "attempts": s["count"],
                "errors": s["errors"],
                "error_rate": s["errors"] / s["count"] if s["count"] else 0.0,
            }
            for s in self.backend.node_stats(trace_id)
        }

    def __repr__(self) -> str:
        cfg = self.config
        return (
            f"TelemetryManager(backend={cfg.backend!r}, enabled={cfg.enabled}, "
            f"sampling_rate={cfg.sampling_rate})"
        )


@atexit.register
def _flush_all() -> None:  # pragma: no cover - runs at interpreter exit
    for manager in list(_managers):
        try:
            manager.close()
        except Exception:  # noqa: BLE001
            pass
