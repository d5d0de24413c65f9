"""The executions a LocalSpine holds: in memory within bounds, backed by an optional journal.

Pending and running executions always stay in memory. Finished ones stay while there are at
most ``max_executions`` of them taking at most ``max_memory`` bytes (the newest always
stays); older ones leave memory, and are read back from the journal when there is one. The
status counts of those that left are kept, so metrics count every execution.

Locking: the owning LocalSpine's lock guards every record and this object's maps. Methods
say whether the caller holds it (``_locked``) or they take it themselves.
"""

from __future__ import annotations

import threading
import time
from collections import Counter, deque
from typing import Any, Callable, Deque, Dict, List, Optional, Tuple, TypeVar

from ai_spine.constants import TERMINAL_STATUSES
from ai_spine.exceptions import ServerError
from ai_spine.local.journal import JournalError, JournalStore, Totals
from ai_spine.local.records import ExecutionRecord

__all__ = ["ExecutionMemory"]

_T = TypeVar("_T")


class ExecutionMemory:
    """Executions by id and idempotency key, bounded, read through to a journal.

    Args:
        lock: The owning LocalSpine's lock.
        journal: Where every execution is saved, or None.
        max_executions: Finished executions kept in memory at most (None: no bound).
        max_memory: Bytes of finished executions kept in memory at most (None: no bound).
        max_page_bytes: Bytes one page of :meth:`page` holds at most (None: no bound).
    """

    def __init__(
        self,
        lock: threading.Lock,
        journal: Optional[JournalStore],
        max_executions: Optional[int],
        max_memory: Optional[int],
        max_page_bytes: Optional[int],
    ) -> None:
        self.journal = journal
        self.max_executions = max_executions
        self.max_memory = max_memory
        self.max_page_bytes = max_page_bytes
        self._lock = lock
        self._records: Dict[str, ExecutionRecord] = {}
        self._keys: Dict[str, Tuple[str, str]] = (
            {}
        )  # key -> (execution id, fingerprint)
        # Finished executions in memory, in the order they finished (evicted from the left),
        # their bytes, and the status counts of those evicted (or never loaded).
        self._finished_ids: Deque[str] = deque()
        self._finished_bytes = 0
        self.evicted: "Counter[str]" = Counter()

    def __len__(self) -> int:
        return len(self._records)

    def load(self) -> Totals:
        """Read what the journal says memory holds; return its execution time totals.

        Raises:
            JournalError: The journal cannot be read.
        """
        assert self.journal is not None
        records, self.evicted, totals = self.journal.load(
            self.max_executions, self.max_memory
        )
        for rec in records:
            self._records[rec.execution_id] = rec
            if rec.status in TERMINAL_STATUSES:
                self._finished_ids.append(rec.execution_id)
                self._finished_bytes += rec.size
        return totals

    def all_locked(self) -> List[ExecutionRecord]:
        """Every record in memory, oldest first (the caller holds the lock)."""
        return list(self._records.values())

    def counts_locked(self) -> "Counter[str]":
        """Executions by status, those that left memory included (caller holds the lock)."""
        counts = Counter(self.evicted)
        counts.update(rec.status for rec in self._records.values())
        return counts

    def in_memory(self, execution_id: str) -> Optional[ExecutionRecord]:
        """The execution if memory holds it, else None (the journal is not read)."""
        return self._records.get(execution_id)

    def get(self, execution_id: str) -> Optional[ExecutionRecord]:
        """The execution in memory, else from the journal; None when neither has it."""
        rec = self._records.get(execution_id)
        if rec is None and self.journal is not None:
            rec = self._read(self.journal.get, execution_id)
        return rec

    def stored_key(self, key: str) -> Optional[Tuple[str, str]]:
        """(execution id, fingerprint) for a key only the journal remembers, or None."""
        if self.journal is None or key in self._keys:
            return None
        return self._read(self.journal.find_key, key)

    def key_locked(self, key: str) -> Optional[Tuple[str, str]]:
        """(execution id, fingerprint) for a key in memory (the caller holds the lock)."""
        return self._keys.get(key)

    def add_locked(self, rec: ExecutionRecord, fingerprint: str) -> None:
        """Hold a new execution (and its idempotency key); the caller holds the lock."""
        self._records[rec.execution_id] = rec
        if rec.idempotency_key is not None:
            self._keys[rec.idempotency_key] = (rec.execution_id, fingerprint)

    def journal_new(
        self, rec: ExecutionRecord, fingerprint: str
    ) -> Optional[Tuple[str, str]]:
        """Save a new execution with its key; if the journal refuses it, forget it, raise 500.

        Returns:
            None when saved; else (execution id, fingerprint) of the execution another
            process sharing the journal started with the same idempotency key first (this
            one is forgotten: it must not run).

        Raises:
            ServerError: The journal refused it (nothing of it is kept).
        """
        if self.journal is None:
            return None
        try:
            winner = self.journal.save_new(rec, rec.idempotency_key, fingerprint)
        except JournalError as exc:
            self._forget(rec)
            msg = f"the execution store refused the execution: {exc}"
            raise ServerError(msg, status_code=500, body={"detail": msg}) from None
        if winner is not None:
            self._forget(rec)
        return winner

    def _forget(self, rec: ExecutionRecord) -> None:
        with self._lock:
            self._records.pop(rec.execution_id, None)
            if rec.idempotency_key is not None:
                self._keys.pop(rec.idempotency_key, None)

    def save(self, rec: ExecutionRecord) -> None:
        """Save a record's new state to the journal, if any (a closed one is ignored)."""
        if self.journal is not None:
            try:
                self.journal.save(rec)
            except JournalError:  # pragma: no cover - a closed store during shutdown
                pass

    def retire(self, rec: ExecutionRecord) -> None:
        """Note a finished (and saved) execution; evict the oldest beyond the bounds.

        Called after the final state is saved, so an evicted execution reads back final.
        """
        if self.max_executions is None and self.max_memory is None:
            return  # no bound: nothing to track
        with self._lock:
            if rec.execution_id not in self._records:
                return  # another process's execution, read from a shared journal
            self._finished_ids.append(rec.execution_id)
            self._finished_bytes += rec.size
            count, memory = self.max_executions, self.max_memory
            while len(self._finished_ids) > 1 and (
                (count is not None and len(self._finished_ids) > count)
                or (memory is not None and self._finished_bytes > memory)
            ):
                gone = self._records.pop(self._finished_ids.popleft(), None)
                if gone is not None:
                    self._finished_bytes -= gone.size
                    self.evicted[gone.status] += 1
                    if gone.idempotency_key is not None:
                        self._keys.pop(gone.idempotency_key, None)

    def poll_final(
        self, rec: ExecutionRecord, timeout: float, interval: float
    ) -> ExecutionRecord:
        """Re-read an execution another process runs until it is final or ``timeout`` passes.

        Returns:
            The newest record read (final unless the time ran out).
        """
        deadline = time.monotonic() + timeout
        while not rec.done.is_set():
            left = deadline - time.monotonic()
            if left <= 0:
                break
            time.sleep(min(interval, left))
            rec = self.get(rec.execution_id) or rec
        return rec

    def page(
        self, limit: int, offset: int, status: Optional[str]
    ) -> Tuple[List[Dict[str, Any]], int]:
        """Executions newest first (their contexts) and how many match ``status`` in all.

        From the journal once some executions live only there (fresher state from memory);
        a page ends early, after at least one execution, past ``max_page_bytes``.
        """
        if self.journal is not None and (self.evicted or self.journal.shared):
            page = self._read(
                self.journal.page, limit, offset, status, self.max_page_bytes
            )
            if page is not None:
                rows, total = page
                with self._lock:
                    return [
                        self._records.get(r.execution_id, r).context() for r in rows
                    ], total
        with self._lock:
            records = list(reversed(self._records.values()))
            if status is not None:
                records = [r for r in records if r.status == status]
            chosen: List[Dict[str, Any]] = []
            held = 0
            for rec in records[offset : offset + limit]:
                held += rec.size
                if chosen and self.max_page_bytes is not None:
                    if held > self.max_page_bytes:
                        break
                chosen.append(rec.context())
            return chosen, len(records)

    def close(self) -> None:
        """Close the journal (reads then answer from memory only)."""
        if self.journal is not None:
            try:
                self.journal.close()
            except JournalError:  # pragma: no cover - closed by someone else
                pass

    @staticmethod
    def _read(read: Callable[..., _T], *args: Any) -> Optional[_T]:
        """Call a journal read; None once it is closed (what memory holds answers)."""
        try:
            return read(*args)
        except JournalError:
            return None
