"""The execution journal in PostgreSQL, shared by several LocalSpine processes.

Several ``ai-spine serve`` processes (or gunicorn workers) opening one
:class:`PostgresJournal` share one list of executions and idempotency keys:

* **Idempotency keys** are claimed in the transaction that inserts the execution
  (:meth:`PostgresJournal.save_new`): the key's primary key decides, so of two processes
  given one key at once exactly one starts an execution; the other answers with it.
* **Ownership**: every row names the process that runs it (``owner``), and that process
  holds a session-level advisory lock named after itself for as long as it lives. A process
  takes over the unfinished rows of owners whose lock is free (they died) when it opens the
  journal and every ``takeover_every`` seconds after, and resumes or fails them, as a
  restart does with SQLite; rows of live owners are left alone. The lock lives on the
  listening connection: a process cut off from the server for longer than
  ``takeover_every`` may see its running executions taken over (failed, or resumed where a
  durable backend's run claim decides who runs); its own later saves of them are refused,
  as a final status is kept.
* **Cancel from another process**: the process that answers a cancel writes the final
  ``cancelled`` status (a final status is never overwritten, so the runner's later save
  cannot undo it) and ``NOTIFY``\\ s the execution id in the same statement. Each process
  ``LISTEN``\\ s on a connection of its own and stops the run when it holds it; after a
  lost listening connection it reconnects and rescans its cancelled rows, so a missed
  notification is still seen.

psycopg 3 is imported lazily (extra ``ai-spine-sdk[postgres]``); every failure is a
:class:`~ai_spine.local.journal.JournalError` naming the DSN with its password hidden.
"""

from __future__ import annotations

import logging
import os
import re
import socket
import threading
import time
import uuid
from collections import Counter
from typing import Any, Callable, List, Optional, Tuple, TypeVar

from spark_core.pgconnect import connect, describe_error, import_psycopg, redact_dsn

from ai_spine.local.journal import JournalError, Totals
from ai_spine.local.records import ExecutionRecord

__all__ = ["PostgresJournal"]

logger = logging.getLogger(__name__)

_T = TypeVar("_T")
_SCHEMA_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
_FINAL = "('completed', 'failed', 'cancelled')"
_COLUMNS = (
    "execution_id, flow_id, status, input_data, output_data, error_message, metadata,"
    " created_at, updated_at, completed_at, execution_time, node_results, timeout,"
    " timeout_at"
)
_SIZE = (
    "length(input_data) + length(output_data) + length(metadata)"
    " + COALESCE(length(node_results), 0)"
)


def _tables(s: str) -> str:
    return f"""
CREATE SCHEMA IF NOT EXISTS {s};
CREATE TABLE IF NOT EXISTS {s}.executions (
    seq BIGSERIAL PRIMARY KEY,
    execution_id TEXT UNIQUE NOT NULL,
    flow_id TEXT NOT NULL,
    status TEXT NOT NULL,
    input_data TEXT NOT NULL,
    output_data TEXT NOT NULL,
    error_message TEXT,
    metadata TEXT NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    completed_at TEXT,
    execution_time DOUBLE PRECISION,
    node_results TEXT,
    timeout DOUBLE PRECISION,
    timeout_at DOUBLE PRECISION,
    owner TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS executions_status ON {s}.executions (status, seq);
CREATE INDEX IF NOT EXISTS executions_owner ON {s}.executions (owner)
    WHERE status NOT IN {_FINAL};
CREATE TABLE IF NOT EXISTS {s}.idempotency_keys (
    key TEXT PRIMARY KEY,
    execution_id TEXT NOT NULL,
    fingerprint TEXT NOT NULL
);
"""


class PostgresJournal:
    """A :class:`~ai_spine.local.journal.JournalStore` in PostgreSQL, shared by processes.

    Args:
        dsn: A libpq URL, e.g. ``postgresql://user:pw@host/db``.
        schema: The PostgreSQL schema holding the tables (one per independent journal).
        owner: This process's name in the ``owner`` column (default: host, pid and a
            random tag).
        connect_timeout: Seconds to wait for the server when (re)connecting.
        takeover_every: Seconds between looks for executions of processes that died
            (taken over and resumed or failed here, see :meth:`watch`).

    Raises:
        JournalError: psycopg is missing, the server cannot be reached or refuses the login,
            or the schema name is not an SQL identifier (the password is never shown).
    """

    #: Other processes write the same journal: lists are read from it, not from memory.
    shared = True

    def __init__(
        self,
        dsn: str,
        *,
        schema: str = "ai_spine",
        owner: Optional[str] = None,
        connect_timeout: float = 10.0,
        takeover_every: float = 5.0,
    ) -> None:
        if not isinstance(schema, str) or not _SCHEMA_NAME.match(schema):
            raise JournalError(
                f"schema must be a lower-case SQL identifier, got {schema!r}"
            )
        self._dsn = dsn
        self.path = redact_dsn(dsn)
        self.schema = schema
        self.owner = owner or (
            f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        )
        if (
            isinstance(takeover_every, bool)
            or not isinstance(takeover_every, (int, float))
            or not takeover_every > 0
        ):
            raise JournalError(
                f"takeover_every must be a positive number, got {takeover_every!r}"
            )
        self.takeover_every = float(takeover_every)
        self._connect_timeout = connect_timeout
        self._psycopg = import_psycopg(JournalError, f"execution store {self.path}")
        self._lock = threading.Lock()
        self._conn: Any = None
        self._listener: Any = None
        self._closed = False
        self._stop = threading.Event()
        self._on_cancel: Optional[Callable[[str], None]] = None
        self._on_taken_over: Optional[Callable[[List[ExecutionRecord]], None]] = None
        self._watcher: Optional[threading.Thread] = None
        self._channel = f"{schema}_cancel"
        s = schema
        self._sql = {
            "select": f"SELECT {_COLUMNS} FROM {s}.executions",
            # A final status is never overwritten (a cancel from another process wins over
            # the runner's later save); a cancelled row wakes the process running it.
            "upsert": f"WITH saved AS (INSERT INTO {s}.executions AS e ({_COLUMNS}, owner)"
            " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
            " ON CONFLICT (execution_id) DO UPDATE SET status = excluded.status,"
            " output_data = excluded.output_data, error_message = excluded.error_message,"
            " updated_at = excluded.updated_at, completed_at = excluded.completed_at,"
            " execution_time = excluded.execution_time,"
            " node_results = excluded.node_results, timeout_at = excluded.timeout_at"
            f" WHERE e.status NOT IN {_FINAL} RETURNING e.execution_id, e.status)"
            " SELECT pg_notify(%s, execution_id) FROM saved WHERE status = 'cancelled'",
        }
        try:
            self._call(lambda conn: self._create(conn))
            self._listener = self._listen()
        except JournalError:
            self._close_connections()
            raise

    def __repr__(self) -> str:
        return f"PostgresJournal({self.path!r}, schema={self.schema!r})"

    # ------------------------------------------------------------ connection
    def _error(self, exc: BaseException) -> JournalError:
        return JournalError(
            f"execution store {self.path}: {describe_error(self._dsn, exc)}"
        )

    def _connect(self) -> Any:
        return connect(
            self._dsn,
            JournalError,
            "execution store",
            connect_timeout=self._connect_timeout,
        )

    def _call(self, work: Callable[[Any], _T]) -> _T:
        """Run ``work(connection)`` under the store's lock; driver errors become JournalError.

        A lost connection fails the call that saw it; the next call reconnects.
        """
        with self._lock:
            if self._closed:
                raise JournalError(f"execution store {self.path}: closed")
            if self._conn is None or self._conn.closed:
                self._conn = self._connect()
            try:
                return work(self._conn)
            except self._psycopg.Error as exc:
                raise self._error(exc) from None

    def _create(self, conn: Any) -> None:
        with conn.transaction():
            # Two processes creating the tables at once would collide in the catalogue.
            conn.execute(
                "SELECT pg_advisory_xact_lock(hashtext(%s))",
                ("ai_spine:" + self.schema,),
            )
            conn.execute(_tables(self.schema))

    def _lock_key(self, owner: str) -> str:
        return f"ai_spine:{self.schema}:owner:{owner}"

    def _listen(self) -> Any:
        """Open the listening connection: it holds the owner lock for this process's life."""
        conn = self._connect()
        try:
            conn.execute(
                "SELECT pg_advisory_lock(hashtextextended(%s, 0))",
                (self._lock_key(self.owner),),
            )
            conn.execute(f"LISTEN {self._channel}")
        except self._psycopg.Error as exc:
            conn.close()
            raise self._error(exc) from None
        return conn

    # ------------------------------------------------------------ cancels
    def watch(
        self,
        on_cancel: Callable[[str], None],
        on_taken_over: Callable[[List[ExecutionRecord]], None],
    ) -> None:
        """Report cancels from any process, and executions taken over from dead ones.

        ``on_cancel(execution_id)`` is called whenever any process cancels an execution (the
        callback ignores those it does not run); every ``takeover_every`` seconds the
        unfinished executions of owners that died are claimed and handed to
        ``on_taken_over``. Both are called from a thread of the store's, started by the
        first call.
        """
        self._on_cancel = on_cancel
        self._on_taken_over = on_taken_over
        if self._watcher is None:
            self._watcher = threading.Thread(
                target=self._watch, name="ai-spine-journal", daemon=True
            )
            self._watcher.start()

    def _watch(self) -> None:
        rescan = False
        sweep_at = time.monotonic() + self.takeover_every
        while not self._stop.is_set():
            try:
                conn = self._listener
                if conn is None or conn.closed:
                    conn = self._listener = self._listen()
                    rescan = True
                if rescan:  # notifications sent while not listening are lost: look
                    rescan = False
                    for (execution_id,) in self._call(
                        lambda c: c.execute(
                            f"SELECT execution_id FROM {self.schema}.executions"
                            " WHERE owner = %s AND status = 'cancelled'",
                            (self.owner,),
                        ).fetchall()
                    ):
                        self._notify(str(execution_id))
                for note in conn.notifies(timeout=0.5):
                    self._notify(note.payload)
                if time.monotonic() >= sweep_at:
                    sweep_at = time.monotonic() + self.takeover_every
                    self._hand_over(self._call(self._take_over))
            except (self._psycopg.Error, JournalError) as exc:
                if self._stop.is_set():
                    return
                logger.warning(
                    "execution store %s: listening for cancels: %s",
                    self.path,
                    describe_error(self._dsn, exc),
                )
                rescan = True
                self._drop_listener()
                self._stop.wait(1.0)

    def _notify(self, execution_id: str) -> None:
        callback = self._on_cancel
        if callback is not None:
            try:
                callback(execution_id)
            except (
                Exception
            ):  # pragma: no cover - a bug in the callback: keep listening
                logger.exception("execution store: cancel callback failed")

    def _hand_over(self, rows: List[Any]) -> None:
        callback = self._on_taken_over
        if rows and callback is not None:
            try:
                callback([ExecutionRecord.from_row(tuple(r)) for r in rows])
            except Exception:  # pragma: no cover - a bug in the callback: keep watching
                logger.exception("execution store: take-over callback failed")

    def _drop_listener(self) -> None:
        conn, self._listener = self._listener, None
        if conn is not None:
            try:
                conn.close()
            except self._psycopg.Error:  # pragma: no cover - already broken
                pass

    # ------------------------------------------------------------ JournalStore
    def load(
        self, keep: Optional[int], keep_bytes: Optional[int]
    ) -> Tuple[List[ExecutionRecord], "Counter[str]", Totals]:
        """See :meth:`JournalStore.load`.

        Shared, the journal is read per request, so memory takes only this process's
        unfinished executions: those of owners that died, taken over now. ``keep`` and
        ``keep_bytes`` bound nothing here (no finished execution is read).
        """
        s = self.schema

        def work(conn: Any) -> Tuple[List[Any], List[Any], Any]:
            self._take_over(conn)
            rows = conn.execute(
                self._sql["select"]
                + f" WHERE owner = %s AND status NOT IN {_FINAL} ORDER BY seq",
                (self.owner,),
            ).fetchall()
            totals = conn.execute(
                f"SELECT status, COUNT(*) FROM {s}.executions GROUP BY status"
            ).fetchall()
            times = conn.execute(
                "SELECT COUNT(execution_time), COALESCE(SUM(execution_time), 0),"
                f" COALESCE(MAX(execution_time), 0) FROM {s}.executions"
            ).fetchone()
            return rows, totals, times

        rows, totals, times = self._call(work)
        records = [ExecutionRecord.from_row(tuple(r)) for r in rows]
        not_read: "Counter[str]" = Counter({k: int(v) for k, v in totals})
        not_read.subtract(rec.status for rec in records)
        return records, +not_read, (int(times[0]), float(times[1]), float(times[2]))

    def _take_over(self, conn: Any) -> List[Any]:
        """Claim the unfinished rows of owners that died; return them, oldest first."""
        s = self.schema
        owners = conn.execute(
            f"SELECT DISTINCT owner FROM {s}.executions"
            f" WHERE status NOT IN {_FINAL} AND owner <> %s",
            (self.owner,),
        ).fetchall()
        claimed: List[Any] = []
        for (owner,) in owners:
            with conn.transaction():
                # Free only when its process (and connection) is gone; held until commit,
                # so two processes cannot both take the rows over.
                (free,) = conn.execute(
                    "SELECT pg_try_advisory_xact_lock(hashtextextended(%s, 0))",
                    (self._lock_key(owner),),
                ).fetchone()
                if free:
                    claimed += conn.execute(
                        f"UPDATE {s}.executions SET owner = %s WHERE owner = %s"
                        f" AND status NOT IN {_FINAL} RETURNING seq, {_COLUMNS}",
                        (self.owner, owner),
                    ).fetchall()
        return [r[1:] for r in sorted(claimed, key=lambda r: int(r[0]))]

    def get(self, execution_id: str) -> Optional[ExecutionRecord]:
        """See :meth:`JournalStore.get`."""
        row = self._call(
            lambda conn: conn.execute(
                self._sql["select"] + " WHERE execution_id = %s", (execution_id,)
            ).fetchone()
        )
        return ExecutionRecord.from_row(tuple(row)) if row is not None else None

    def page(
        self, limit: int, offset: int, status: Optional[str], max_bytes: Optional[int]
    ) -> Tuple[List[ExecutionRecord], int]:
        """See :meth:`JournalStore.page`."""
        s = self.schema
        where, params = (
            ("", ()) if status is None else (" WHERE status = %s", (status,))
        )

        def work(conn: Any) -> Tuple[List[Any], int]:
            seqs: List[int] = []
            held = 0
            for seq, size in conn.execute(
                f"SELECT seq, {_SIZE} FROM {s}.executions{where}"
                " ORDER BY seq DESC LIMIT %s OFFSET %s",
                params + (limit, offset),
            ).fetchall():
                held += size
                if seqs and max_bytes is not None and held > max_bytes:
                    break
                seqs.append(seq)
            rows = conn.execute(
                f"SELECT seq, {_COLUMNS} FROM {s}.executions WHERE seq = ANY(%s)"
                " ORDER BY seq DESC",
                (seqs,),
            ).fetchall()
            (total,) = conn.execute(
                f"SELECT COUNT(*) FROM {s}.executions{where}", params
            ).fetchone()
            return [r[1:] for r in rows], int(total)

        rows, total = self._call(work)
        return [ExecutionRecord.from_row(tuple(r)) for r in rows], total

    def find_key(self, key: str) -> Optional[Tuple[str, str]]:
        """See :meth:`JournalStore.find_key`."""
        row = self._call(
            lambda conn: conn.execute(
                f"SELECT execution_id, fingerprint FROM {self.schema}.idempotency_keys"
                " WHERE key = %s",
                (key,),
            ).fetchone()
        )
        return (str(row[0]), str(row[1])) if row is not None else None

    def save(self, rec: ExecutionRecord) -> None:
        """See :meth:`JournalStore.save` (a final status, once saved, is kept)."""
        self._call(
            lambda conn: conn.execute(
                self._sql["upsert"], rec.row() + (self.owner, self._channel)
            )
        )

    def save_new(
        self, rec: ExecutionRecord, key: Optional[str], fingerprint: str
    ) -> Optional[Tuple[str, str]]:
        """See :meth:`JournalStore.save_new`."""

        def work(conn: Any) -> Optional[Tuple[str, str]]:
            with conn.transaction():
                if key is not None:
                    taken = conn.execute(
                        f"INSERT INTO {self.schema}.idempotency_keys VALUES (%s, %s, %s)"
                        " ON CONFLICT (key) DO NOTHING RETURNING key",
                        (key, rec.execution_id, fingerprint),
                    ).fetchone()
                    if taken is None:  # another process's execution has it
                        row = conn.execute(
                            "SELECT execution_id, fingerprint FROM"
                            f" {self.schema}.idempotency_keys WHERE key = %s",
                            (key,),
                        ).fetchone()
                        return (str(row[0]), str(row[1]))
                conn.execute(
                    self._sql["upsert"], rec.row() + (self.owner, self._channel)
                )
            return None

        return self._call(work)

    def save_key(self, key: str, execution_id: str, fingerprint: str) -> None:
        """See :meth:`JournalStore.save_key`."""
        self._call(
            lambda conn: conn.execute(
                f"INSERT INTO {self.schema}.idempotency_keys VALUES (%s, %s, %s)"
                " ON CONFLICT (key) DO NOTHING",
                (key, execution_id, fingerprint),
            )
        )

    def close(self) -> None:
        """See :meth:`JournalStore.close` (releases this process's owner lock)."""
        with self._lock:
            if self._closed:
                raise JournalError(f"execution store {self.path}: closed")
            self._closed = True
        self._stop.set()
        if self._watcher is not None:
            self._watcher.join(5.0)
        self._close_connections()

    def _close_connections(self) -> None:
        self._drop_listener()
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                conn.close()
            except self._psycopg.Error:  # pragma: no cover - already broken
                pass
