"""``PostgresTelemetryBackend``: traces, spans and events in PostgreSQL.

The tables and columns are the SQLite backend's (``traces``, ``spans``, ``events``), in a
schema of their own (``spark_telemetry`` by default), so the manager's ``query_traces`` /
``query_spans`` / ``query_events`` / ``slowest_nodes`` answer the same on both. Several
processes may write to one database. psycopg 3 is imported lazily (extra
``ai-spine-sdk[postgres]``); a lost connection drops that batch (telemetry never breaks the
application) and the next batch reconnects.
"""

from __future__ import annotations

import re
import threading
from typing import Any, Dict, List, Optional, Sequence

from spark_core.pgconnect import connect, describe_error, import_psycopg, redact_dsn
from spark_core.telemetry.backends import (
    _COLUMNS,
    _ENCODE,
    _GETTERS,
    _TABLES,
    Record,
    TelemetryBackend,
    _table,
    as_dict,
    query_records,
    select_query,
)
from spark_core.telemetry.config import TelemetryConfigError

__all__ = ["PostgresTelemetryBackend"]

_SCHEMA_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
_KEYS = {"traces": "trace_id", "spans": "span_id", "events": "event_id"}


def _tables(schema: str) -> str:
    return f"""
CREATE SCHEMA IF NOT EXISTS {schema};
CREATE TABLE IF NOT EXISTS {schema}.traces (
    trace_id TEXT PRIMARY KEY, name TEXT, start_time DOUBLE PRECISION,
    end_time DOUBLE PRECISION, duration_ms DOUBLE PRECISION, status TEXT, attributes TEXT);
CREATE TABLE IF NOT EXISTS {schema}.spans (
    span_id TEXT PRIMARY KEY, trace_id TEXT, parent_id TEXT, name TEXT, kind TEXT,
    start_time DOUBLE PRECISION, end_time DOUBLE PRECISION, duration_ms DOUBLE PRECISION,
    status TEXT, error TEXT, attributes TEXT);
CREATE INDEX IF NOT EXISTS spans_trace ON {schema}.spans (trace_id);
CREATE INDEX IF NOT EXISTS spans_name ON {schema}.spans (name);
CREATE TABLE IF NOT EXISTS {schema}.events (
    event_id TEXT PRIMARY KEY, trace_id TEXT, span_id TEXT, name TEXT,
    timestamp DOUBLE PRECISION, attributes TEXT);
CREATE INDEX IF NOT EXISTS events_trace ON {schema}.events (trace_id);
"""


class PostgresTelemetryBackend(TelemetryBackend):
    """Stores telemetry records in PostgreSQL (one transaction per batch).

    Args:
        dsn: A libpq connection string.
        schema: The PostgreSQL schema holding the tables.
        connect_timeout: Seconds to wait for the server.

    Raises:
        TelemetryConfigError: psycopg is not installed, the server cannot be reached or
            refuses the login (the message names the DSN with its password hidden), or
            ``schema`` is not a lower-case SQL identifier.
    """

    blocking = True

    def __init__(
        self,
        dsn: str,
        *,
        schema: str = "spark_telemetry",
        connect_timeout: float = 10.0,
    ) -> None:
        if not isinstance(schema, str) or not _SCHEMA_NAME.match(schema):
            raise TelemetryConfigError(
                f"schema must be a lower-case SQL identifier, got {schema!r}"
            )
        self._dsn = dsn
        self.schema = schema
        self._connect_timeout = connect_timeout
        self._psycopg = import_psycopg(
            TelemetryConfigError, f"PostgreSQL telemetry {redact_dsn(dsn)}"
        )
        self._lock = threading.Lock()
        self._conn: Any = None
        self._sql = {
            t: f"INSERT INTO {schema}.{t} ({', '.join(c)}) "
            f"VALUES ({', '.join(['%s'] * len(c))}) ON CONFLICT ({_KEYS[t]}) DO UPDATE SET "
            + ", ".join(f"{col} = excluded.{col}" for col in c if col != _KEYS[t])
            for t, c in _COLUMNS.items()
        }
        with self._lock:
            conn = self._connection()
            try:
                with conn.transaction():
                    conn.execute(
                        "SELECT pg_advisory_xact_lock(hashtext(%s))",
                        ("spark_telemetry:" + schema,),
                    )
                    conn.execute(_tables(schema))
            except self._psycopg.Error as exc:
                raise self._error(exc) from exc

    def __repr__(self) -> str:
        return f"PostgresTelemetryBackend({redact_dsn(self._dsn)!r}, schema={self.schema!r})"

    def _error(self, exc: BaseException) -> TelemetryConfigError:
        return TelemetryConfigError(
            f"PostgreSQL telemetry {redact_dsn(self._dsn)}: {describe_error(self._dsn, exc)}"
        )

    def _connection(self) -> Any:
        if self._conn is None or self._conn.closed:
            self._conn = connect(
                self._dsn,
                TelemetryConfigError,
                "PostgreSQL telemetry",
                connect_timeout=self._connect_timeout,
            )
        return self._conn

    def write(self, batch: Sequence[Record]) -> None:
        """Upsert the whole batch in one transaction.

        Raises:
            TelemetryConfigError: PostgreSQL failed (nothing of the batch is stored).
        """
        grouped: Dict[str, List[List[Any]]] = {t: [] for t in _COLUMNS}
        for kind, record in batch:
            table = _TABLES[kind]
            row = list(_GETTERS[table](as_dict(record)))
            row[-1] = _ENCODE(row[-1] or {})  # attributes is the last column
            grouped[table].append(row)
        with self._lock:
            conn = self._connection()
            try:
                with conn.transaction():
                    cur = conn.cursor()
                    for table, rows in grouped.items():
                        if rows:
                            cur.executemany(self._sql[table], rows)
            except self._psycopg.Error as exc:
                raise self._error(exc) from exc

    def _select(self, sql: str, params: List[Any]) -> List[Any]:
        with self._lock:
            conn = self._connection()
            try:
                rows: List[Any] = conn.execute(sql, params).fetchall()
                return rows
            except self._psycopg.Error as exc:
                raise self._error(exc) from exc

    def query(
        self, table: str, filters: Dict[str, Any], limit: Optional[int] = None
    ) -> List[Dict[str, Any]]:
        """Select by equality, oldest first (as the SQLite backend does)."""
        table = _table(table)
        sql, params = select_query(
            table, filters, limit, "%s", f"{self.schema}.{table}"
        )
        return query_records(table, self._select(sql, params))

    def node_stats(self, trace_id: Optional[str] = None) -> List[Dict[str, Any]]:
        """Aggregate node spans in SQL."""
        sql = (
            "SELECT name, COUNT(*), COUNT(*) FILTER (WHERE status = 'error'), "
            f"SUM(duration_ms), MAX(duration_ms) FROM {self.schema}.spans "
            "WHERE kind = 'node'"
        )
        params: List[Any] = []
        if trace_id is not None:
            sql += " AND trace_id = %s"
            params.append(trace_id)
        sql += " GROUP BY name"
        return [
            {
                "name": n,
                "count": c,
                "errors": e or 0,
                "total_ms": t or 0.0,
                "max_ms": m or 0.0,
            }
            for n, c, e, t, m in self._select(sql, params)
        ]

    def close(self) -> None:
        """Close the connection."""
        with self._lock:
            if self._conn is not None:
                self._conn.close()
