"""The execution journal: where LocalSpine writes every execution and idempotency key.

:class:`JournalStore` is the interface a store implements (another database can take
SQLite's place); :class:`SQLiteJournal` is the one that ships. A store:

* saves an execution's row whenever its state changes (:meth:`JournalStore.save`: insert or
  update, the later call wins) and remembers idempotency keys;
* reads back what LocalSpine keeps in memory when it opens (:meth:`JournalStore.load`), single
  executions and pages of them once they have left memory;
* raises :class:`JournalError` for every failure of its own (a closed store included), never
  its driver's exceptions, and checks nothing: LocalSpine validates before it saves.
"""

from __future__ import annotations

import sqlite3
import threading
from collections import Counter
from typing import Any, Callable, List, Optional, Protocol, Tuple, TypeVar

from ai_spine.local.records import ExecutionRecord

__all__ = ["JournalError", "JournalStore", "SQLiteJournal", "Totals", "open_journal"]

_T = TypeVar("_T")
#: ``(count, sum, max)`` of the execution times of every execution in a store.
Totals = Tuple[int, float, float]


class JournalError(Exception):
    """A journal store failed (or was closed); the message says what happened."""


class JournalStore(Protocol):
    """What LocalSpine needs from an execution journal."""

    #: Where the journal lives (shown in ``repr(LocalSpine)``; never a password).
    path: str
    #: Whether other processes write it too: lists are then read from it, never from
    #: memory, and what other processes do is reported to :meth:`watch`.
    shared: bool

    def load(
        self, keep: Optional[int], keep_bytes: Optional[int]
    ) -> Tuple[List[ExecutionRecord], "Counter[str]", Totals]:
        """Read what a LocalSpine keeps in memory when it opens, and totals of every row.

        Args:
            keep: How many finished executions to read at most (the newest); None: all.
                Pending and running ones are always read.
            keep_bytes: How many bytes of finished executions to read at most (as
                :attr:`ExecutionRecord.size` counts them); None: no bound.

        Returns:
            The records (oldest first), the status counts of the rows not read, and the
            execution time totals of every row.
        """

    def get(self, execution_id: str) -> Optional[ExecutionRecord]:
        """Read one execution, or None."""

    def page(
        self, limit: int, offset: int, status: Optional[str], max_bytes: Optional[int]
    ) -> Tuple[List[ExecutionRecord], int]:
        """Read executions newest first, and how many match ``status`` (None: all) in all.

        The page stops early, after at least one execution, once the next one would take it
        past ``max_bytes`` (None: no bound).
        """

    def find_key(self, key: str) -> Optional[Tuple[str, str]]:
        """Return (execution id, request fingerprint) for an idempotency key, or None."""

    def save(self, rec: ExecutionRecord) -> None:
        """Insert or update one execution (atomically; a later save wins)."""

    def save_key(self, key: str, execution_id: str, fingerprint: str) -> None:
        """Remember an idempotency key (the first one saved for a key stays)."""

    def save_new(
        self, rec: ExecutionRecord, key: Optional[str], fingerprint: str
    ) -> Optional[Tuple[str, str]]:
        """Save a new execution and claim its idempotency key, in one transaction.

        Returns:
            None when it was saved; (execution id, fingerprint) of the execution that
            already holds ``key`` otherwise (then nothing was saved).
        """

    def watch(
        self,
        on_cancel: Callable[[str], None],
        on_taken_over: Callable[[List[ExecutionRecord]], None],
    ) -> None:
        """Report what other processes sharing the store do.

        ``on_cancel(execution_id)``: another process cancelled an execution.
        ``on_taken_over(records)``: unfinished executions of a process that died, now this
        process's to resume or fail. A store only this process writes calls neither.
        """

    def close(self) -> None:
        """Release the store; later calls raise JournalError."""


def open_journal(db: str) -> JournalStore:
    """Open the journal ``db`` names: a PostgreSQL URL or a SQLite file.

    Args:
        db: ``postgresql://...`` / ``postgres://...`` (a :class:`PostgresJournal`, shared by
            every process that opens it; needs ``ai-spine-sdk[postgres]``), else a file path.

    Returns:
        The open store.

    Raises:
        JournalError: It cannot be opened (a DSN's password is never shown).
    """
    from spark_core.pgconnect import is_dsn

    if is_dsn(db):
        from ai_spine.local.pg_journal import PostgresJournal

        return PostgresJournal(db)
    return SQLiteJournal(db)


_SCHEMA = """
CREATE TABLE IF NOT EXISTS executions (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
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
    execution_time REAL,
    node_results TEXT,
    timeout REAL,
    timeout_at REAL
);
CREATE TABLE IF NOT EXISTS idempotency_keys (
    key TEXT PRIMARY KEY,
    execution_id TEXT NOT NULL,
    fingerprint TEXT NOT NULL
);
"""

_SELECT = (
    "SELECT execution_id, flow_id, status, input_data, output_data, error_message,"
    " metadata, created_at, updated_at, completed_at, execution_time, node_results,"
    " timeout, timeout_at FROM executions"
)

_SELECT_SEQ = _SELECT.replace("SELECT ", "SELECT seq, ", 1)

_UPSERT = """
INSERT INTO executions (execution_id, flow_id, status, input_data, output_data, error_message,
    metadata, created_at, updated_at, completed_at, execution_time, node_results, timeout,
    timeout_at)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT(execution_id) DO UPDATE SET status = excluded.status,
    output_data = excluded.output_data, error_message = excluded.error_message,
    updated_at = excluded.updated_at, completed_at = excluded.completed_at,
    execution_time = excluded.execution_time, node_results = excluded.node_results,
    timeout_at = excluded.timeout_at
"""

_FINAL = "('completed', 'failed', 'cancelled')"


class SQLiteJournal:
    """A :class:`JournalStore` in one SQLite file (WAL mode), safe to share across threads.

    Args:
        path: The database file (created if missing; a store written by an older version
            gets the columns it lacks).

    Raises:
        JournalError: The file cannot be opened as a journal.
    """

    shared = False

    def __init__(self, path: str) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._conn: Optional[sqlite3.Connection] = None
        try:
            self._call(self._open)
        except JournalError:
            if self._conn is not None:
                self._conn.close()
            raise

    def _open(self) -> None:
        conn = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self._conn = conn
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.executescript(_SCHEMA)
        columns = {r[1] for r in conn.execute("PRAGMA table_info(executions)")}
        for column in (
            "timeout",
            "timeout_at",
        ):  # a store written before they were kept
            if column not in columns:
                conn.execute(f"ALTER TABLE executions ADD COLUMN {column} REAL")

    def _call(self, work: Callable[[], _T]) -> _T:
        """Run ``work`` under the store's lock; sqlite3's errors become JournalError."""
        with self._lock:
            try:
                return work()
            except (sqlite3.Error, OverflowError) as exc:
                raise JournalError(f"execution store {self.path!r}: {exc}") from None

    @property
    def _db(self) -> sqlite3.Connection:
        if self._conn is None:  # pragma: no cover - _open failed, the caller got it
            raise sqlite3.ProgrammingError("not open")
        return self._conn

    def load(
        self, keep: Optional[int], keep_bytes: Optional[int]
    ) -> Tuple[List[ExecutionRecord], "Counter[str]", Totals]:
        """See :meth:`JournalStore.load`."""

        def work() -> Tuple[List[Any], List[Any], Any]:
            db = self._db
            if keep is None and keep_bytes is None:
                rows = db.execute(_SELECT + " ORDER BY seq").fetchall()
            else:
                # Newest finished first, until either bound is reached.
                wanted: List[int] = []
                held = 0
                for seq, size in db.execute(
                    "SELECT seq, length(input_data) + length(output_data)"
                    " + length(metadata) + COALESCE(length(node_results), 0)"
                    f" FROM executions WHERE status IN {_FINAL} ORDER BY seq DESC"
                ):
                    held += size
                    if (keep is not None and len(wanted) >= keep) or (
                        keep_bytes is not None and held > keep_bytes
                    ):
                        break
                    wanted.append(seq)
                numbered = db.execute(
                    _SELECT_SEQ + f" WHERE status NOT IN {_FINAL}"
                ).fetchall()
                for start in range(0, len(wanted), 500):
                    chunk = wanted[start : start + 500]
                    marks = ",".join("?" * len(chunk))
                    numbered += db.execute(
                        _SELECT_SEQ + f" WHERE seq IN ({marks})", chunk
                    ).fetchall()
                rows = [r[1:] for r in sorted(numbered, key=lambda r: int(r[0]))]
            totals = db.execute(
                "SELECT status, COUNT(*) FROM executions GROUP BY status"
            ).fetchall()
            times = db.execute(
                "SELECT COUNT(execution_time), COALESCE(SUM(execution_time), 0),"
                " COALESCE(MAX(execution_time), 0) FROM executions"
            ).fetchone()
            return rows, totals, times

        rows, totals, times = self._call(work)
        records = [ExecutionRecord.from_row(tuple(r)) for r in rows]
        not_read: "Counter[str]" = Counter(dict(totals))
        not_read.subtract(rec.status for rec in records)
        return records, +not_read, (int(times[0]), float(times[1]), float(times[2]))

    def get(self, execution_id: str) -> Optional[ExecutionRecord]:
        """See :meth:`JournalStore.get`."""
        row = self._call(
            lambda: self._db.execute(
                _SELECT + " WHERE execution_id = ?", (execution_id,)
            ).fetchone()
        )
        return ExecutionRecord.from_row(tuple(row)) if row is not None else None

    def page(
        self, limit: int, offset: int, status: Optional[str], max_bytes: Optional[int]
    ) -> Tuple[List[ExecutionRecord], int]:
        """See :meth:`JournalStore.page`."""
        where, params = ("", ()) if status is None else (" WHERE status = ?", (status,))

        def work() -> Tuple[List[Any], int]:
            db = self._db
            seqs: List[int] = []
            held = 0
            for seq, size in db.execute(
                "SELECT seq, length(input_data) + length(output_data)"
                " + length(metadata) + COALESCE(length(node_results), 0)"
                " FROM executions" + where + " ORDER BY seq DESC LIMIT ? OFFSET ?",
                params + (limit, offset),
            ):
                held += size
                if seqs and max_bytes is not None and held > max_bytes:
                    break
                seqs.append(seq)
            rows: List[Any] = []
            for start in range(0, len(seqs), 500):
                chunk = seqs[start : start + 500]
                marks = ",".join("?" * len(chunk))
                rows += db.execute(
                    _SELECT_SEQ + f" WHERE seq IN ({marks})", chunk
                ).fetchall()
            rows.sort(key=lambda r: -int(r[0]))
            (total,) = db.execute(
                "SELECT COUNT(*) FROM executions" + where, params
            ).fetchone()
            return [r[1:] for r in rows], int(total)

        rows, total = self._call(work)
        return [ExecutionRecord.from_row(tuple(r)) for r in rows], total

    def find_key(self, key: str) -> Optional[Tuple[str, str]]:
        """See :meth:`JournalStore.find_key`."""
        row = self._call(
            lambda: self._db.execute(
                "SELECT execution_id, fingerprint FROM idempotency_keys WHERE key = ?",
                (key,),
            ).fetchone()
        )
        return (str(row[0]), str(row[1])) if row is not None else None

    def save(self, rec: ExecutionRecord) -> None:
        """See :meth:`JournalStore.save`.

        The row is read from the record under the store's lock, so when two threads save the
        same record the later save writes the later state (never an older snapshot).
        """
        self._call(lambda: self._db.execute(_UPSERT, rec.row()))

    def save_key(self, key: str, execution_id: str, fingerprint: str) -> None:
        """See :meth:`JournalStore.save_key`."""
        self._call(
            lambda: self._db.execute(
                "INSERT OR IGNORE INTO idempotency_keys VALUES (?, ?, ?)",
                (key, execution_id, fingerprint),
            )
        )

    def save_new(
        self, rec: ExecutionRecord, key: Optional[str], fingerprint: str
    ) -> Optional[Tuple[str, str]]:
        """See :meth:`JournalStore.save_new`."""

        def work() -> Optional[Tuple[str, str]]:
            db = self._db
            db.execute("BEGIN IMMEDIATE")  # another process may share the file
            try:
                if key is not None:
                    row = db.execute(
                        "SELECT execution_id, fingerprint FROM idempotency_keys"
                        " WHERE key = ?",
                        (key,),
                    ).fetchone()
                    if row is not None:
                        db.execute("ROLLBACK")
                        return (str(row[0]), str(row[1]))
                    db.execute(
                        "INSERT INTO idempotency_keys VALUES (?, ?, ?)",
                        (key, rec.execution_id, fingerprint),
                    )
                db.execute(_UPSERT, rec.row())
                db.execute("COMMIT")
            except BaseException:
                if db.in_transaction:
                    db.execute("ROLLBACK")
                raise
            return None

        return self._call(work)

    def watch(
        self,
        on_cancel: Callable[[str], None],
        on_taken_over: Callable[[List[ExecutionRecord]], None],
    ) -> None:
        """See :meth:`JournalStore.watch` (one process writes it: neither is called)."""

    def close(self) -> None:
        """See :meth:`JournalStore.close`."""
        self._call(self._db.close)
