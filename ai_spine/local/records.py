"""One execution's state as LocalSpine keeps it: :class:`ExecutionRecord` and its wake-up."""

from __future__ import annotations

import json
import threading
from datetime import datetime, timezone
from typing import Any, Dict, Mapping, Optional, Sequence, Tuple

from ai_spine.constants import TERMINAL_STATUSES

__all__ = [
    "Done",
    "ExecutionRecord",
    "utcnow_iso",
    "exit_outputs",
    "CANCELLED_MESSAGE",
    "CLOSED_MESSAGE",
    "KEPT_MESSAGE",
    "INTERRUPTED_MESSAGE",
]

#: An execution cancelled by ``cancel_execution``: the backend's text.
CANCELLED_MESSAGE = "Execution cancelled by user"
CLOSED_MESSAGE = "stopped: LocalSpine was closed before the execution finished"
KEPT_MESSAGE = (
    "stopped: LocalSpine was closed before the execution finished; its durable state "
    "backend keeps the run, which resumes when a LocalSpine opens this db again"
)
INTERRUPTED_MESSAGE = (
    "interrupted: the process running this execution stopped before it finished "
    "(marked failed when the execution store was reopened)"
)
#: Bytes counted for a record besides its JSON fields (ids, timestamps, the object itself).
RECORD_OVERHEAD = 1024


def utcnow_iso() -> str:
    """Return the current UTC time as a naive ISO 8601 string, as the backend writes it."""
    # Cutting "+00:00" is cheaper than replace(tzinfo=None) (three calls per execution).
    return datetime.now(timezone.utc).isoformat()[:-6]


class Done:
    """A one-shot event, cheaper than ``threading.Event`` (one lock, no Condition).

    The lock is held until :meth:`set` releases it; each waiter takes it and hands it on.
    ``set`` runs under the owning LocalSpine's ``_changed`` lock, so it releases only once.
    """

    __slots__ = ("_lock", "_set")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._lock.acquire()
        self._set = False

    def set(self) -> None:
        """Mark it done and wake every waiter."""
        if not self._set:
            self._set = True
            self._lock.release()

    def is_set(self) -> bool:
        """Whether it is done."""
        return self._set

    def wait(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for it to be done; True when it is."""
        if not self._set and self._lock.acquire(timeout=timeout):
            self._lock.release()
        return self._set


class ExecutionRecord:
    """One execution's mutable state; guarded by the owning LocalSpine's lock.

    ``done`` is set exactly once, when the status becomes final, so waiters wake without
    polling. ``size`` estimates the bytes it holds (its JSON fields), so memory can be
    bounded by size as well as by count.
    """

    __slots__ = (
        "execution_id",
        "flow_id",
        "status",
        "input_data",
        "output_data",
        "error_message",
        "metadata",
        "created_at",
        "updated_at",
        "completed_at",
        "execution_time",
        "started",
        "done",
        "task",
        "node_results",
        "idempotency_key",
        "timeout",
        "timeout_at",
        "durable",
        "kept",
        "size",
    )

    def __init__(
        self,
        execution_id: str,
        flow_id: str,
        input_data: Dict[str, Any],
        metadata: Optional[Dict[str, Any]],
        created_at: str,
        size: int = 0,
    ) -> None:
        self.execution_id = execution_id
        self.flow_id = flow_id
        self.status = "pending"
        self.input_data = input_data
        self.output_data: Dict[str, Any] = {}
        self.error_message: Optional[str] = None
        self.metadata: Dict[str, Any] = metadata or {}
        self.created_at = created_at
        self.updated_at = created_at
        self.completed_at: Optional[str] = None
        self.execution_time: Optional[float] = None
        self.started = 0.0
        self.done = Done()
        self.task: Any = None
        self.node_results: Dict[str, Any] = {}
        self.idempotency_key: Optional[str] = None  # forgotten with the record
        self.timeout: Optional[float] = None  # seconds the run may take
        # When it runs out (wall clock), fixed when the run first starts: a resumed run
        # gets what is left, and time the process was down counts.
        self.timeout_at: Optional[float] = None
        self.durable = False  # its flow keeps runs in a durable state backend
        self.kept = False  # left unfinished by close() for the next start to resume
        self.size = RECORD_OVERHEAD + size

    def result(self) -> Any:
        """The graph's own output: that of the node where the run ended, or None.

        ``output_data`` keeps that node's key last (see :func:`exit_outputs`).
        """
        if self.status != "completed" or not self.output_data:
            return None
        return next(reversed(list(self.output_data.values())))

    def context(self) -> Dict[str, Any]:
        """Return the backend's ``ExecutionContextResponse`` shape (a fresh dict).

        Plus ``result``, the graph's own output (the backend's ``ExecutionResponse`` name).
        """
        return {
            "execution_id": self.execution_id,
            "flow_id": self.flow_id,
            "status": self.status,
            "input_data": self.input_data,
            "output_data": self.output_data,
            "error_message": self.error_message,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
            "completed_at": self.completed_at,
            "result": self.result(),
        }

    def response(self) -> Dict[str, Any]:
        """Return the backend's ``ExecutionResponse`` shape (a fresh dict)."""
        return {
            "execution_id": self.execution_id,
            "status": self.status,
            "result": self.result(),
            "error": self.error_message,
            "execution_time": self.execution_time,
        }

    def row(self) -> Tuple[Any, ...]:
        """Return the journal row for this record (JSON fields as text)."""
        return (
            self.execution_id,
            self.flow_id,
            self.status,
            json.dumps(self.input_data),
            json.dumps(self.output_data),
            self.error_message,
            json.dumps(self.metadata),
            self.created_at,
            self.updated_at,
            self.completed_at,
            self.execution_time,
            json.dumps(self.node_results),
            self.timeout,
            self.timeout_at,
        )

    @classmethod
    def from_row(cls, row: Tuple[Any, ...]) -> "ExecutionRecord":
        """Rebuild a record from a row written by :meth:`row`."""
        size = sum(len(row[i] or "") for i in (3, 4, 6, 11))
        rec = cls(row[0], row[1], json.loads(row[3]), json.loads(row[6]), row[7], size)
        rec.status = row[2]
        rec.output_data = json.loads(row[4])
        rec.error_message = row[5]
        rec.updated_at = row[8]
        rec.completed_at = row[9]
        rec.execution_time = row[10]
        rec.node_results = json.loads(row[11] or "{}")
        rec.timeout, rec.timeout_at = row[12], row[13]
        if rec.status in TERMINAL_STATUSES:
            rec.done.set()
        return rec


def exit_outputs(
    exits: Sequence[str], outputs: Mapping[str, Any], content: Any
) -> Dict[str, Any]:
    """A completed run's ``output_data`` as the backend's orchestrator builds it.

    One key per exit node (a node without outgoing edges) that ran, with its output. The
    node where the run ended (whose output is the run's ``content``) comes last, also when
    it is not an exit (a loop that stopped on a condition), so the graph's own output is
    the last value (:meth:`ExecutionRecord.result`).

    Args:
        exits: The flow's exit node ids, in graph order.
        outputs: Each node's last output in the run.
        content: The run's own output.

    Returns:
        ``{node_id: output}``.
    """
    ran = [nid for nid in exits if nid in outputs]
    ended = [nid for nid in ran if outputs[nid] is content]
    if not ended and content is not None:
        ended = [nid for nid, out in outputs.items() if out is content]
    end = ended[-1] if ended else None
    if end is None and content is not None:  # a graph that reports no node outputs
        end = exits[-1] if exits else "result"
    out = {nid: outputs[nid] for nid in ran if nid != end}
    if end is not None:
        out[end] = content
    return out
