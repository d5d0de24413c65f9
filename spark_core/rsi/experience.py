"""The experience database: what runs of each graph version did.

One :class:`RunRecord` per run (inputs, output, status, duration, error, cost, tokens, an
optional score) with one :class:`NodeAttempt` per node attempt (latency, status, error kind,
timeout, cost, tokens). Records arrive three ways:

* automatically, from :class:`ExperienceObserver` (``Graph(observers=[db.observer(...)])``);
* from an existing telemetry database (:meth:`ExperienceDatabase.import_telemetry`), which
  has timings, errors and costs but no inputs or outputs;
* from RSI's own A/B runs (``source="ab_test"``), kept apart from production runs.

Storage sits behind :class:`ExperienceStore`, a small synchronous interface (SQLite here:
:class:`SQLiteExperienceStore`), so another backend only implements that class and passes
the contract tests in ``tests/rsi/test_store_contract.py``.
"""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
import threading
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Dict, List, Optional, Sequence, Union

from spark_core.errors import NodeTimeoutError
from spark_core.graphs.observers import GraphObserver, RunInfo, RunResult
from spark_core.rsi.errors import ExperienceStoreError

__all__ = [
    "NodeAttempt",
    "RunRecord",
    "ExperienceStore",
    "SQLiteExperienceStore",
    "ExperienceDatabase",
    "ExperienceObserver",
    "Scorer",
]

#: A scoring function: (run inputs, run output) -> a number (higher is better).
Scorer = Callable[[Any, Any], float]


@dataclass
class NodeAttempt:
    """One attempt of one node in a run.

    Attributes:
        node_id: The node.
        attempt: 1-based attempt number (2 and more are retries).
        duration_ms: How long the attempt took.
        status: ``"ok"`` or ``"error"``.
        error_kind: The error's class name (e.g. ``"NodeTimeoutError"``), if it failed.
        error: The error text, if it failed.
        timed_out: Whether the attempt hit its timeout.
        cost_usd: Money the attempt reported (``context.report_cost``).
        tokens: Tokens the attempt reported.
    """

    node_id: str
    attempt: int = 1
    duration_ms: float = 0.0
    status: str = "ok"
    error_kind: Optional[str] = None
    error: Optional[str] = None
    timed_out: bool = False
    cost_usd: float = 0.0
    tokens: int = 0


@dataclass
class RunRecord:
    """One run of a graph version.

    Attributes:
        run_id: The run's id.
        graph_id: The graph (or mission) id.
        graph_version: The version that ran.
        status: ``"completed"``, ``"failed"``, ``"paused"`` or ``"cancelled"``.
        started_at: ``time.time()`` at the start.
        duration_ms: Wall time of the run.
        inputs: The run input (None when imported from telemetry).
        output: The final output (None when it failed or was imported).
        error: The error text of a run that did not complete.
        cost_usd: Total cost reported by its nodes.
        tokens: Total tokens reported by its nodes.
        score: The scoring function's value, when one was given.
        source: ``"observer"``, ``"telemetry"`` or ``"ab_test"``.
        attempts: Its node attempts, in order.
    """

    run_id: str
    graph_id: str
    graph_version: str
    status: str
    started_at: float
    duration_ms: float = 0.0
    inputs: Any = None
    output: Any = None
    error: Optional[str] = None
    cost_usd: float = 0.0
    tokens: int = 0
    score: Optional[float] = None
    source: str = "observer"
    attempts: List[NodeAttempt] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """Whether the run completed."""
        return self.status == "completed"

    def to_dict(self) -> Dict[str, Any]:
        """Return the record as JSON-ready data.

        Returns:
            A dict with every attribute (attempts as dicts).
        """
        return asdict(self)


# ----------------------------------------------------------------------------- storage
class ExperienceStore:
    """Where experience lives: a small synchronous interface every backend implements.

    Implementations must be safe to call from several threads.
    """

    def initialize(self) -> None:
        """Create the tables if they are missing (idempotent)."""
        raise NotImplementedError

    def add_run(self, record: RunRecord) -> None:
        """Store a run and its attempts in one transaction (a run id stored twice replaces)."""
        raise NotImplementedError

    def runs(
        self,
        graph_id: str,
        graph_version: Optional[str] = None,
        *,
        since: Optional[float] = None,
        until: Optional[float] = None,
        sources: Optional[Sequence[str]] = None,
        limit: Optional[int] = None,
    ) -> List[RunRecord]:
        """Return runs of ``graph_id`` (and version), oldest first, within the time window."""
        raise NotImplementedError

    def add_rsi_run(
        self, graph_id: str, created_at: float, summary: Dict[str, Any]
    ) -> int:
        """Store an RSI summary (JSON data); return its sequence number."""
        raise NotImplementedError

    def rsi_runs(
        self, graph_id: Optional[str] = None, limit: Optional[int] = None
    ) -> List[Dict[str, Any]]:
        """Return stored RSI summaries, newest first: ``{"id", "graph_id", "created_at",
        "summary"}``."""
        raise NotImplementedError

    def close(self) -> None:
        """Release resources."""


_SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    run_id TEXT PRIMARY KEY, graph_id TEXT NOT NULL, graph_version TEXT NOT NULL,
    status TEXT NOT NULL, started_at REAL NOT NULL, duration_ms REAL, inputs TEXT,
    output TEXT, error TEXT, cost_usd REAL, tokens INTEGER, score REAL, source TEXT);
CREATE INDEX IF NOT EXISTS runs_graph ON runs(graph_id, graph_version, started_at);
CREATE TABLE IF NOT EXISTS attempts (
    run_id TEXT NOT NULL, seq INTEGER NOT NULL, node_id TEXT NOT NULL, attempt INTEGER,
    duration_ms REAL, status TEXT, error_kind TEXT, error TEXT, timed_out INTEGER,
    cost_usd REAL, tokens INTEGER, PRIMARY KEY (run_id, seq));
CREATE TABLE IF NOT EXISTS rsi_runs (
    id INTEGER PRIMARY KEY AUTOINCREMENT, graph_id TEXT NOT NULL, created_at REAL NOT NULL,
    summary TEXT NOT NULL);
"""
_RUN_COLUMNS = (
    "run_id",
    "graph_id",
    "graph_version",
    "status",
    "started_at",
    "duration_ms",
    "inputs",
    "output",
    "error",
    "cost_usd",
    "tokens",
    "score",
    "source",
)
_ATTEMPT_COLUMNS = (
    "node_id",
    "attempt",
    "duration_ms",
    "status",
    "error_kind",
    "error",
    "timed_out",
    "cost_usd",
    "tokens",
)


def _dumps(value: Any) -> str:
    return json.dumps(value, default=str, allow_nan=False)


class SQLiteExperienceStore(ExperienceStore):
    """Experience in a SQLite file (tables ``runs``, ``attempts``, ``rsi_runs``).

    Args:
        path: The database file (``":memory:"`` works too); its folder must exist.
        connect: Opens the connection (``sqlite3.connect``'s signature); a seam for tests.
    """

    def __init__(
        self, path: str, *, connect: Callable[..., sqlite3.Connection] = sqlite3.connect
    ) -> None:
        self.path = path
        self._connect = connect
        self._conn: Optional[sqlite3.Connection] = None
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"SQLiteExperienceStore({self.path!r})"

    def _db(self) -> sqlite3.Connection:
        if self._conn is None:
            raise ExperienceStoreError(
                f"experience database {self.path} is not initialized: "
                "call initialize() first"
            )
        return self._conn

    def initialize(self) -> None:
        """Open the file and create the tables (idempotent)."""
        with self._lock:
            if self._conn is not None:
                return
            folder = os.path.dirname(os.path.abspath(self.path))
            if self.path != ":memory:" and not os.path.isdir(folder):
                raise ExperienceStoreError(
                    f"cannot open experience database {self.path}: "
                    f"folder {folder} does not exist"
                )
            try:
                conn = self._connect(
                    self.path, check_same_thread=False, isolation_level=None
                )
                if self.path != ":memory:":  # cheap commits: one per recorded run
                    conn.execute("PRAGMA journal_mode=WAL")
                    conn.execute("PRAGMA synchronous=NORMAL")
                conn.executescript(_SCHEMA)
            except sqlite3.Error as exc:
                raise ExperienceStoreError(
                    f"cannot open experience database {self.path}: {exc}"
                ) from None
            self._conn = conn

    def _write(self, statements: Sequence[Any]) -> None:
        with self._lock:
            db = self._db()
            try:
                db.execute("BEGIN IMMEDIATE")
                for sql, params in statements:
                    if params and isinstance(params[0], (list, tuple)):
                        db.executemany(sql, params)
                    else:
                        db.execute(sql, params)
                db.execute("COMMIT")
            except sqlite3.Error as exc:
                if db.in_transaction:
                    db.execute("ROLLBACK")
                raise ExperienceStoreError(
                    f"cannot write experience database {self.path}: {exc}"
                ) from None

    def add_run(self, record: RunRecord) -> None:
        """Store a run and its attempts in one transaction."""
        row = [getattr(record, c) for c in _RUN_COLUMNS]
        row[6], row[7] = _dumps(record.inputs), _dumps(record.output)
        attempts = [
            [record.run_id, seq]
            + [getattr(a, c) for c in _ATTEMPT_COLUMNS[:6]]
            + [int(a.timed_out), a.cost_usd, a.tokens]
            for seq, a in enumerate(record.attempts)
        ]
        statements: List[Any] = [
            (
                f"INSERT OR REPLACE INTO runs ({', '.join(_RUN_COLUMNS)}) "
                f"VALUES ({', '.join('?' * len(_RUN_COLUMNS))})",
                row,
            ),
            ("DELETE FROM attempts WHERE run_id = ?", [record.run_id]),
        ]
        if attempts:
            columns = ("run_id", "seq") + _ATTEMPT_COLUMNS
            statements.append(
                (
                    f"INSERT INTO attempts ({', '.join(columns)}) "
                    f"VALUES ({', '.join('?' * len(columns))})",
                    attempts,
                )
            )
        self._write(statements)

    def _read(self, sql: str, params: Sequence[Any]) -> List[Any]:
        with self._lock:
            try:
                return self._db().execute(sql, list(params)).fetchall()
            except sqlite3.Error as exc:
                raise ExperienceStoreError(
                    f"cannot read experience database {self.path}: {exc}"
                ) from None

    def runs(
        self,
        graph_id: str,
        graph_version: Optional[str] = None,
        *,
        since: Optional[float] = None,
        until: Optional[float] = None,
        sources: Optional[Sequence[str]] = None,
        limit: Optional[int] = None,
    ) -> List[RunRecord]:
        """Return runs of ``graph_id`` (and version), oldest first, within the window."""
        where, params = ["graph_id = ?"], [graph_id]  # type: List[str], List[Any]
        if graph_version is not None:
            where.append("graph_version = ?")
            params.append(graph_version)
        if since is not None:
            where.append("started_at >= ?")
            params.append(since)
        if until is not None:
            where.append("started_at <= ?")
            params.append(until)
        if sources:
            where.append(f"source IN ({', '.join('?' * len(sources))})")
            params.extend(sources)
        sql = (
            f"SELECT {', '.join(_RUN_COLUMNS)} FROM runs WHERE {' AND '.join(where)} "
            "ORDER BY started_at, run_id"
        )
        if limit is not None:
            sql += " LIMIT ?"
            params.append(int(limit))
        records = []
        for row in self._read(sql, params):
            data = dict(zip(_RUN_COLUMNS, row))
            data["inputs"] = json.loads(data["inputs"] or "null")
            data["output"] = json.loads(data["output"] or "null")
            data["cost_usd"] = data["cost_usd"] or 0.0
            data["tokens"] = data["tokens"] or 0
            records.append(RunRecord(**data))
        if records:
            self._attach_attempts(records)
        return records

    def _attach_attempts(self, records: List[RunRecord]) -> None:
        by_id = {r.run_id: r for r in records}
        ids = list(by_id)
        for start in range(0, len(ids), 500):  # SQLite bounds the number of parameters
            chunk = ids[start : start + 500]
            rows = self._read(
                f"SELECT run_id, {', '.join(_ATTEMPT_COLUMNS)} FROM attempts "
                f"WHERE run_id IN ({', '.join('?' * len(chunk))}) ORDER BY run_id, seq",
                chunk,
            )
            for row in rows:
                data = dict(zip(_ATTEMPT_COLUMNS, row[1:]))
                data["timed_out"] = bool(data["timed_out"])
                by_id[row[0]].attempts.append(NodeAttempt(**data))

    def add_rsi_run(
        self, graph_id: str, created_at: float, summary: Dict[str, Any]
    ) -> int:
        """Store an RSI summary; return its sequence number."""
        text = _dumps(summary)
        with self._lock:
            db = self._db()
            try:
                cursor = db.execute(
                    "INSERT INTO rsi_runs (graph_id, created_at, summary) VALUES (?, ?, ?)",
                    (graph_id, created_at, text),
                )
            except sqlite3.Error as exc:
                raise ExperienceStoreError(
                    f"cannot write experience database {self.path}: {exc}"
                ) from None
            return int(cursor.lastrowid or 0)

    def rsi_runs(
        self, graph_id: Optional[str] = None, limit: Optional[int] = None
    ) -> List[Dict[str, Any]]:
        """Return stored RSI summaries, newest first."""
        sql = "SELECT id, graph_id, created_at, summary FROM rsi_runs"
        params: List[Any] = []
        if graph_id is not None:
            sql += " WHERE graph_id = ?"
            params.append(graph_id)
        sql += " ORDER BY id DESC"
        if limit is not None:
            sql += " LIMIT ?"
            params.append(int(limit))
        return [
            {"id": i, "graph_id": g, "created_at": c, "summary": json.loads(s)}
            for i, g, c, s in self._read(sql, params)
        ]

    def close(self) -> None:
        """Close the connection (initialize() opens it again)."""
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None


# ----------------------------------------------------------------------------- facade
class ExperienceDatabase:
    """Runs of graph versions, queried by graph id, version and time window.

    Example (the seed's)::

        experience_db = ExperienceDatabase("experience.db")
        await experience_db.initialize()
        graph = Graph(start, observers=[experience_db.observer("support", "1.0")])

    Args:
        store: A SQLite file path, or any :class:`ExperienceStore`.
        clock: Returns the current time in seconds (``time.time``); a seam for tests.
    """

    def __init__(
        self,
        store: Union[str, "os.PathLike[str]", ExperienceStore] = "experience.db",
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if isinstance(store, ExperienceStore):
            self.store: ExperienceStore = store
        elif isinstance(store, (str, os.PathLike)):
            self.store = SQLiteExperienceStore(os.fspath(store))
        else:
            raise ExperienceStoreError(
                "ExperienceDatabase needs a file path or an ExperienceStore, "
                f"got {type(store).__name__}"
            )
        self.clock = clock

    def __repr__(self) -> str:
        return f"ExperienceDatabase({self.store!r})"

    async def initialize(self) -> None:
        """Create the tables if they are missing (idempotent)."""
        self.store.initialize()

    def initialize_sync(self) -> None:
        """Synchronous :meth:`initialize`."""
        self.store.initialize()

    async def record_run(self, record: RunRecord) -> None:
        """Store one run (in a worker thread: the graph's event loop does not wait on I/O).

        Args:
            record: The run.
        """
        await asyncio.get_running_loop().run_in_executor(
            None, self.store.add_run, record
        )

    def query_runs(
        self,
        graph_id: str,
        graph_version: Optional[str] = None,
        *,
        window_hours: Optional[float] = None,
        since: Optional[float] = None,
        until: Optional[float] = None,
        sources: Optional[Sequence[str]] = None,
        limit: Optional[int] = None,
    ) -> List[RunRecord]:
        """Return runs of a graph (version), oldest first.

        Args:
            graph_id: The graph.
            graph_version: Only this version (None: all).
            window_hours: Only runs started in the last this many hours.
            since: Only runs started at or after this time (wins over ``window_hours``).
            until: Only runs started at or before this time.
            sources: Only these sources (``observer``, ``telemetry``, ``ab_test``).
            limit: At most this many.

        Returns:
            The runs.
        """
        if since is None and window_hours is not None:
            since = self.clock() - float(window_hours) * 3600.0
        return self.store.runs(
            graph_id,
            graph_version,
            since=since,
            until=until,
            sources=sources,
            limit=limit,
        )

    def observer(
        self,
        graph_id: str,
        graph_version: str,
        *,
        scorer: Optional[Scorer] = None,
        source: str = "observer",
    ) -> ExperienceObserver:
        """Return a graph observer that records every run into this database.

        Args:
            graph_id: The id runs are stored under.
            graph_version: The version runs are stored under.
            scorer: Optional ``scorer(inputs, output) -> float`` stored as the run's score.
            source: The records' source.

        Returns:
            The observer (pass it to ``Graph(observers=[...])``).
        """
        return ExperienceObserver(
            self, graph_id, graph_version, scorer=scorer, source=source
        )

    def import_telemetry(
        self,
        telemetry: Any,
        graph_id: str,
        graph_version: str,
        *,
        trace_name: Optional[str] = None,
    ) -> int:
        """Copy graph runs recorded by telemetry into the database.

        Each trace named ``trace_name`` (default: ``graph_id``) becomes a run; its node spans
        become attempts, its ``cost`` events their cost. Telemetry keeps no inputs or
        outputs, so those stay None. Importing twice replaces, never duplicates.

        Args:
            telemetry: A ``TelemetryManager``, a telemetry backend, or the path of a
                telemetry SQLite file.
            graph_id: The id runs are stored under.
            graph_version: The version runs are stored under.
            trace_name: The traces' name (the graph id they were recorded with).

        Returns:
            How many runs were imported.

        Raises:
            ExperienceStoreError: The telemetry source cannot be read.
        """
        from spark_core.telemetry import SQLiteTelemetryBackend, TelemetryManager
        from spark_core.telemetry.config import TelemetryConfigError

        owned = None
        if isinstance(telemetry, (str, os.PathLike)):
            path = os.fspath(telemetry)
            if not os.path.isfile(path):
                raise ExperienceStoreError(f"no telemetry database at {path}")
            try:
                telemetry = owned = SQLiteTelemetryBackend(path)
            except TelemetryConfigError as exc:
                raise ExperienceStoreError(str(exc)) from None

        def query(table: str, **filters: Any) -> List[Dict[str, Any]]:
            if isinstance(telemetry, TelemetryManager):
                method = getattr(telemetry, f"query_{table}")
                return list(method(**filters))
            return list(telemetry.query(table, filters))

        try:
            count = 0
            for trace in query("traces", name=trace_name or graph_id):
                record = _record_from_trace(
                    trace,
                    query("spans", trace_id=trace["trace_id"]),
                    query("events", trace_id=trace["trace_id"]),
                    graph_id,
                    graph_version,
                )
                self.store.add_run(record)
                count += 1
            return count
        except (sqlite3.Error, TelemetryConfigError) as exc:
            raise ExperienceStoreError(f"cannot read telemetry: {exc}") from None
        finally:
            if owned is not None:
                owned.close()

    async def add_rsi_run(self, graph_id: str, summary: Dict[str, Any]) -> int:
        """Store an RSI summary (``RSISummary.to_dict()``).

        Args:
            graph_id: The improved graph.
            summary: The summary's JSON data.

        Returns:
            Its sequence number.
        """
        return self.store.add_rsi_run(graph_id, self.clock(), summary)

    def rsi_history(
        self, graph_id: Optional[str] = None, limit: Optional[int] = None
    ) -> List[Dict[str, Any]]:
        """Return stored RSI summaries, newest first.

        Args:
            graph_id: Only this graph's.
            limit: At most this many.

        Returns:
            ``{"id", "graph_id", "created_at", "summary"}`` items.
        """
        return self.store.rsi_runs(graph_id, limit)

    def close(self) -> None:
        """Close the store."""
        self.store.close()


_RUN_STATUS = {"ok": "completed", "error": "failed", "paused": "paused"}


def _record_from_trace(
    trace: Dict[str, Any],
    spans: List[Dict[str, Any]],
    events: List[Dict[str, Any]],
    graph_id: str,
    graph_version: str,
) -> RunRecord:
    attrs = trace.get("attributes") or {}
    by_span: Dict[str, NodeAttempt] = {}
    attempts = []
    for span in spans:
        if span.get("kind") != "node":
            continue
        span_attrs = span.get("attributes") or {}
        error = span.get("error")
        kind = None
        if span.get("status") == "error":
            kind = str(error).split(":", 1)[0] if error else "Error"
        attempt = NodeAttempt(
            node_id=str(span_attrs.get("node_id") or span["name"]),
            attempt=int(span_attrs.get("attempt") or 1),
            duration_ms=float(span.get("duration_ms") or 0.0),
            status="error" if span.get("status") == "error" else "ok",
            error_kind=kind,
            error=error,
            timed_out=bool(error) and "timed out" in str(error).lower(),
        )
        by_span[span["span_id"]] = attempt
        attempts.append(attempt)
    cost, tokens = 0.0, 0
    for event in events:
        if event.get("name") != "cost":
            continue
        data = event.get("attributes") or {}
        usd, used = float(data.get("usd") or 0.0), int(data.get("tokens") or 0)
        cost, tokens = cost + usd, tokens + used
        owner = by_span.get(event.get("span_id") or "")
        if owner is not None:
            owner.cost_usd += usd
            owner.tokens += used
    failed = next((a for a in reversed(attempts) if a.status == "error"), None)
    status = _RUN_STATUS.get(str(trace.get("status")), "cancelled")
    return RunRecord(
        run_id=str(attrs.get("run_id") or trace["trace_id"]),
        graph_id=graph_id,
        graph_version=graph_version,
        status=status,
        started_at=float(trace.get("start_time") or 0.0),
        duration_ms=float(trace.get("duration_ms") or 0.0),
        error=failed.error if status == "failed" and failed is not None else None,
        cost_usd=cost,
        tokens=tokens,
        source="telemetry",
        attempts=attempts,
    )


# ----------------------------------------------------------------------------- observer
_STATE = "spark.rsi.experience"


def _safe_json(value: Any) -> Any:
    """A JSON copy with credential-looking values redacted (inputs may carry secrets)."""
    from spark_core.telemetry.redaction import redact_value

    try:
        return json.loads(
            json.dumps(redact_value("value", value, max_length=None), default=str)
        )
    except (TypeError, ValueError):
        return None


def _error_text(error: BaseException) -> str:
    """The error's text with credential-looking parts scrubbed, at most 2,000 characters."""
    from spark_core.telemetry.redaction import scrub_text

    return scrub_text(str(error), 2000)


def _error_kind(error: BaseException) -> str:
    cause = getattr(error, "cause", None)
    if cause is not None and not isinstance(error, NodeTimeoutError):
        return type(cause).__name__
    return type(error).__name__


def _timed_out(error: BaseException) -> bool:
    cause = getattr(error, "cause", None)
    return isinstance(error, (NodeTimeoutError, TimeoutError)) or isinstance(
        cause, TimeoutError
    )


class ExperienceObserver(GraphObserver):
    """Records each run of a graph into an :class:`ExperienceDatabase`.

    Args:
        database: Where to record.
        graph_id: The id runs are stored under.
        graph_version: The version runs are stored under.
        scorer: Optional ``scorer(inputs, output) -> float`` for completed runs (a scorer
            that raises gives no score; the run is still recorded).
        source: The records' source.
    """

    def __init__(
        self,
        database: ExperienceDatabase,
        graph_id: str,
        graph_version: str,
        *,
        scorer: Optional[Scorer] = None,
        source: str = "observer",
    ) -> None:
        self.database = database
        self.graph_id = graph_id
        self.graph_version = graph_version
        self.scorer = scorer
        self.source = source
        #: The records of the last run, for callers that want them without a query.
        self.last_record: Optional[RunRecord] = None

    async def on_run_start(self, run: RunInfo) -> None:
        """Start collecting the run's attempts."""
        run.attrs[_STATE] = {"t0": time.perf_counter(), "attempts": [], "open": {}}

    async def on_attempt_start(self, run: RunInfo, node: Any, context: Any) -> None:
        """Note when the attempt started."""
        state = run.attrs.get(_STATE)
        if state is None:
            return
        attempt = NodeAttempt(
            node_id=str(node.id), attempt=int(context.metadata.get("attempt", 1))
        )
        state["open"][id(context)] = (attempt, time.perf_counter())
        state["attempts"].append(attempt)

    async def on_attempt_end(
        self,
        run: RunInfo,
        node: Any,
        context: Any,
        output: Any,
        error: Optional[BaseException],
    ) -> None:
        """Close the attempt with its latency and error."""
        state = run.attrs.get(_STATE)
        opened = state["open"].pop(id(context), None) if state else None
        if opened is None:
            return
        attempt, t0 = opened
        attempt.duration_ms = (time.perf_counter() - t0) * 1000.0
        if error is not None:
            attempt.status = "error"
            attempt.error_kind = _error_kind(error)
            attempt.error = _error_text(error)
            attempt.timed_out = _timed_out(error)

    async def on_event(
        self, run: RunInfo, node: Any, name: str, data: Dict[str, Any]
    ) -> None:
        """Add reported cost and tokens to the node's running attempt."""
        state = run.attrs.get(_STATE)
        if state is None or name != "cost":
            return
        node_id = str(getattr(node, "id", ""))
        owner = next(
            (a for a in reversed(state["attempts"]) if a.node_id == node_id), None
        )
        if owner is not None:
            owner.cost_usd += float(data.get("usd") or 0.0)
            owner.tokens += int(data.get("tokens") or 0)

    async def on_run_end(
        self, run: RunInfo, result: Optional[RunResult], error: Optional[BaseException]
    ) -> None:
        """Store the run."""
        state = run.attrs.pop(_STATE, None)
        if state is None:
            return
        status = result.status if result is not None else "failed"
        if error is not None:
            status = str(getattr(error, "run_status", None) or "failed")
        output = result.content if result is not None else None
        score = None
        if self.scorer is not None and status == "completed":
            try:
                score = float(self.scorer(run.inputs, output))
            except Exception:  # a broken scorer must not lose the run's record
                score = None
        attempts: List[NodeAttempt] = state["attempts"]
        record = RunRecord(
            run_id=run.run_id,
            graph_id=self.graph_id,
            graph_version=self.graph_version,
            status=status,
            started_at=run.started_at,
            duration_ms=(time.perf_counter() - state["t0"]) * 1000.0,
            inputs=_safe_json(run.inputs),
            output=_safe_json(output),
            error=None if error is None else _error_text(error),
            cost_usd=sum(a.cost_usd for a in attempts),
            tokens=sum(a.tokens for a in attempts),
            score=score,
            source=self.source,
            attempts=attempts,
        )
        self.last_record = record
        await self.database.record_run(record)
