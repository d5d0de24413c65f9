"""Where telemetry records go: :class:`MemoryTelemetryBackend` and
:class:`SQLiteTelemetryBackend` here; PostgreSQL in :mod:`spark_core.telemetry.postgres` and
OTLP export in :mod:`spark_core.telemetry.otlp` (optional extras, loaded by
:func:`open_backend` only when a config names them).

Backends receive batches of ``(kind, record)`` pairs, ``kind`` being ``"trace"``, ``"span"``
or ``"event"`` and ``record`` a plain dict or an object with ``to_record()`` (ended spans and
traces are handed over as they are, and turned into dicts only when stored or queried), and
answer queries with plain dicts. The
manager hands batches to the SQLite backend on a background writer thread, so the graph's
hot path only appends to a list.
"""

from __future__ import annotations

import json
import operator
import os
import sqlite3
import threading
from collections import deque
from typing import Any, Deque, Dict, List, Optional, Sequence, Tuple

from spark_core.telemetry.config import TelemetryConfig, TelemetryConfigError

__all__ = [
    "open_backend",
    "TelemetryBackend",
    "MemoryTelemetryBackend",
    "SQLiteTelemetryBackend",
    "Record",
]

Record = Tuple[str, Any]


def as_dict(record: Any) -> Dict[str, Any]:
    """Return the dict form of a record (a dict, or an object with ``to_record()``)."""
    if isinstance(record, dict):
        return record
    result: Dict[str, Any] = record.to_record()
    return result


_TABLES = {"trace": "traces", "span": "spans", "event": "events"}
_FILTERS = {
    "traces": ("trace_id", "name", "status"),
    "spans": ("trace_id", "span_id", "parent_id", "name", "status", "kind"),
    "events": ("trace_id", "span_id", "name"),
}
_ORDER = {"traces": "start_time", "spans": "start_time", "events": "timestamp"}


class TelemetryBackend:
    """Interface of telemetry storage. Subclasses implement every method."""

    #: True when writes do I/O and should run on the manager's writer thread.
    blocking = False

    def write(self, batch: Sequence[Record]) -> None:
        """Store a batch of records (atomically when the storage allows it)."""
        raise NotImplementedError

    def query(
        self, table: str, filters: Dict[str, Any], limit: Optional[int] = None
    ) -> List[Dict[str, Any]]:
        """Return records of ``table`` (traces, spans, events) equal on ``filters``, oldest
        first, at most ``limit``."""
        raise NotImplementedError

    def node_stats(self, trace_id: Optional[str] = None) -> List[Dict[str, Any]]:
        """Per node-span name: ``count``, ``errors``, ``total_ms``, ``max_ms``."""
        stats: Dict[str, Dict[str, Any]] = {}
        filters: Dict[str, Any] = {"kind": "node"}
        if trace_id is not None:
            filters["trace_id"] = trace_id
        for span in self.query("spans", filters):
            s = stats.setdefault(
                span["name"],
                {
                    "name": span["name"],
                    "count": 0,
                    "errors": 0,
                    "total_ms": 0.0,
                    "max_ms": 0.0,
                },
            )
            s["count"] += 1
            s["errors"] += 1 if span["status"] == "error" else 0
            ms = float(span.get("duration_ms") or 0.0)
            s["total_ms"] += ms
            s["max_ms"] = max(s["max_ms"], ms)
        return list(stats.values())

    def close(self) -> None:
        """Release resources."""


def _table(name: str) -> str:
    if name not in _FILTERS:
        raise TelemetryConfigError(f"unknown telemetry table {name!r}")
    return name


def select_query(
    table: str,
    filters: Dict[str, Any],
    limit: Optional[int],
    mark: str,
    qualified: Optional[str] = None,
) -> Tuple[str, List[Any]]:
    """The SELECT of :meth:`query` for a SQL backend (equality filters, oldest first).

    Args:
        table: A checked table name.
        filters: Column -> value (``None`` matches NULL).
        limit: At most this many rows, or ``None``.
        mark: The driver's parameter placeholder (``?`` or ``%s``).
        qualified: The table's name in the SQL (e.g. with a schema); default ``table``.

    Returns:
        The statement and its parameters.

    Raises:
        TelemetryConfigError: A filter names a column that cannot be filtered.
    """
    where: List[str] = []
    params: List[Any] = []
    for key, value in filters.items():
        if key not in _FILTERS[table]:
            raise TelemetryConfigError(f"cannot filter {table} by {key!r}")
        if value is None:
            where.append(f"{key} IS NULL")
        else:
            where.append(f"{key} = {mark}")
            params.append(value)
    sql = f"SELECT {', '.join(_COLUMNS[table])} FROM {qualified or table}"
    if where:
        sql += " WHERE " + " AND ".join(where)
    sql += f" ORDER BY {_ORDER[table]}"
    if limit is not None:
        sql += f" LIMIT {mark}"
        params.append(int(limit))
    return sql, params


def query_records(table: str, rows: List[Any]) -> List[Dict[str, Any]]:
    """Rows of :func:`select_query` as records (``attributes`` decoded from JSON).

    Args:
        table: The table queried.
        rows: The rows, in ``_COLUMNS[table]`` order.

    Returns:
        One dict per row.
    """
    out = []
    for row in rows:
        record = dict(zip(_COLUMNS[table], row))
        record["attributes"] = json.loads(record["attributes"] or "{}")
        out.append(record)
    return out


class MemoryTelemetryBackend(TelemetryBackend):
    """Keeps records in memory (development and tests).

    Args:
        max_records: Keep at most this many records per kind; the oldest are dropped.
    """

    def __init__(self, max_records: int = 100_000) -> None:
        if (
            isinstance(max_records, bool)
            or not isinstance(max_records, int)
            or max_records < 1
        ):
            raise TelemetryConfigError(
                f"max_records must be a positive integer: {max_records!r}"
            )
        self._rows: Dict[str, Deque[Any]] = {
            t: deque(maxlen=max_records) for t in _FILTERS
        }
        self._lock = threading.Lock()

    def write(self, batch: Sequence[Record]) -> None:
        """Append the records."""
        with self._lock:
            for kind, record in batch:
                self._rows[_TABLES[kind]].append(record)

    def query(
        self, table: str, filters: Dict[str, Any], limit: Optional[int] = None
    ) -> List[Dict[str, Any]]:
        """Filter the stored records by equality."""
        with self._lock:
            rows = [as_dict(r) for r in self._rows[_table(table)]]
        order = _ORDER[table]
        out = [
            dict(r)
            for r in sorted(rows, key=lambda r: r.get(order) or 0.0)
            if all(r.get(k) == v for k, v in filters.items())
        ]
        return out[:limit] if limit is not None else out

    def clear(self) -> None:
        """Forget every record."""
        with self._lock:
            for rows in self._rows.values():
                rows.clear()


_SCHEMA = """
CREATE TABLE IF NOT EXISTS traces (
    trace_id TEXT PRIMARY KEY, name TEXT, start_time REAL, end_time REAL,
    duration_ms REAL, status TEXT, attributes TEXT);
CREATE TABLE IF NOT EXISTS spans (
    span_id TEXT PRIMARY KEY, trace_id TEXT, parent_id TEXT, name TEXT, kind TEXT,
    start_time REAL, end_time REAL, duration_ms REAL, status TEXT, error TEXT,
    attributes TEXT);
CREATE INDEX IF NOT EXISTS spans_trace ON spans(trace_id);
CREATE INDEX IF NOT EXISTS spans_name ON spans(name);
CREATE TABLE IF NOT EXISTS events (
    event_id TEXT PRIMARY KEY, trace_id TEXT, span_id TEXT, name TEXT, timestamp REAL,
    attributes TEXT);
CREATE INDEX IF NOT EXISTS events_trace ON events(trace_id);
"""
_COLUMNS = {
    "traces": (
        "trace_id",
        "name",
        "start_time",
        "end_time",
        "duration_ms",
        "status",
        "attributes",
    ),
    "spans": (
        "span_id",
        "trace_id",
        "parent_id",
        "name",
        "kind",
        "start_time",
        "end_time",
        "duration_ms",
        "status",
        "error",
        "attributes",
    ),
    "events": ("event_id", "trace_id", "span_id", "name", "timestamp", "attributes"),
}


_GETTERS = {t: operator.itemgetter(*c) for t, c in _COLUMNS.items()}
_ENCODE = json.JSONEncoder(default=str, separators=(",", ":")).encode


class SQLiteTelemetryBackend(TelemetryBackend):
    """Stores records in a SQLite file (tables ``traces``, ``spans``, ``events``).

    Args:
        path: Database file (created with its tables if missing); ``":memory:"`` works too.

    Raises:
        TelemetryConfigError: The file cannot be opened.
    """

    blocking = True

    def __init__(self, path: str) -> None:
        self.path = path
        parent = os.path.dirname(os.path.abspath(path)) if path != ":memory:" else ""
        if parent and not os.path.isdir(parent):
            raise TelemetryConfigError(
                f"telemetry database directory does not exist: {parent}"
            )
        try:
            self._conn = sqlite3.connect(
                path, check_same_thread=False, isolation_level=None
            )
            if path != ":memory:":
                self._conn.execute("PRAGMA journal_mode=WAL")
                self._conn.execute("PRAGMA synchronous=NORMAL")
            self._conn.executescript(_SCHEMA)
        except sqlite3.Error as exc:
            raise TelemetryConfigError(
                f"cannot open telemetry database {path}: {exc}"
            ) from exc
        self._lock = threading.Lock()
        self._sql = {
            t: f"INSERT OR REPLACE INTO {t} ({', '.join(c)}) VALUES ({', '.join('?' * len(c))})"
            for t, c in _COLUMNS.items()
        }

    def write(self, batch: Sequence[Record]) -> None:
        """Insert the whole batch in one transaction."""
        grouped: Dict[str, List[List[Any]]] = {t: [] for t in _COLUMNS}
        for kind, record in batch:
            table = _TABLES[kind]
            row = list(_GETTERS[table](as_dict(record)))
            row[-1] = _ENCODE(row[-1] or {})  # attributes is the last column
            grouped[table].append(row)
        with self._lock:
            self._conn.execute("BEGIN")
            try:
                for table, rows in grouped.items():
                    if rows:
                        self._conn.executemany(self._sql[table], rows)
                self._conn.execute("COMMIT")
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise

    def query(
        self, table: str, filters: Dict[str, Any], limit: Optional[int] = None
    ) -> List[Dict[str, Any]]:
        """Select by equality on indexed columns."""
        table = _table(table)
        sql, params = select_query(table, filters, limit, "?")
        with self._lock:
            rows = self._conn.execute(sql, params).fetchall()
        return query_records(table, rows)

    def node_stats(self, trace_id: Optional[str] = None) -> List[Dict[str, Any]]:
        """Aggregate node spans in SQL."""
        sql = (
            "SELECT name, COUNT(*), SUM(status = 'error'), SUM(duration_ms), MAX(duration_ms)"
            " FROM spans WHERE kind = 'node'"
        )
        params: List[Any] = []
        if trace_id is not None:
            sql += " AND trace_id = ?"
            params.append(trace_id)
        sql += " GROUP BY name"
        with self._lock:
            rows = self._conn.execute(sql, params).fetchall()
        return [
            {
                "name": n,
                "count": c,
                "errors": e or 0,
                "total_ms": t or 0.0,
                "max_ms": m or 0.0,
            }
            for n, c, e, t, m in rows
        ]

    def close(self) -> None:
        """Close the connection."""
        with self._lock:
            self._conn.close()


def open_backend(config: TelemetryConfig) -> TelemetryBackend:
    """Make the backend ``config.backend`` names, with ``config.backend_config``.

    Args:
        config: The telemetry settings.

    Returns:
        A new backend.

    Raises:
        TelemetryConfigError: The backend cannot be opened (file, database, missing extra).
    """
    options = config.backend_config
    if config.backend == "sqlite":
        return SQLiteTelemetryBackend(str(options["path"]))
    if config.backend == "postgresql":
        from spark_core.telemetry.postgres import PostgresTelemetryBackend

        return PostgresTelemetryBackend(
            str(options["dsn"]), schema=options.get("schema", "spark_telemetry")
        )
    if config.backend == "otlp":
        from spark_core.telemetry.otlp import OTLPTelemetryBackend

        return OTLPTelemetryBackend(**options)
    return MemoryTelemetryBackend(options.get("max_records", 100_000))
