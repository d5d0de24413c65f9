"""Step transactions: what one node execution wrote to the graph state, kept or taken back.

While a run is in progress its :class:`~spark_core.graphs.GraphState` records every write in
a :class:`RunWrites` ledger, numbered in the order they happen (the newest write of a key
wins). A write belongs to the :class:`StepTransaction` of the node execution that made it
(the node runner makes it current around ``process``, through the context variable
:data:`~spark_core.nodes.context.CURRENT_STEP`, which worker threads inherit), or, when no
node of that state is
running (an observer, the library's reserved ``_spark_`` keys), to the run itself.

A step transaction then ends one of two ways:

* :meth:`StepTransaction.undo`: the attempt failed, the node stopped or it is retried; its
  writes that nobody overwrote since are taken back;
* :meth:`StepTransaction.commit_step` (:meth:`~StepTransaction.commit` for a backend that
  is not durable): the node completed; the newest value of every key it wrote, with the
  run-level writes, goes to the backend with the step's position in one transaction
  (``StateBackend.commit_step``), and counts as committed only once that returned.

:meth:`RunWrites.close` ends the run: the remaining run-level writes are stored, and every
key whose newest write no completed step committed goes back to its stored value.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Dict, List, NamedTuple, Optional

from spark_core.graphs.backends import DELETED, StateBackend
from spark_core.graphs.state_schema import RESERVED_PREFIX
from spark_core.nodes.context import CURRENT_STEP

if TYPE_CHECKING:  # pragma: no cover
    from spark_core.graphs.state import GraphState

ABSENT: Any = object()  # "the key was not set" in a write entry


class WriteEntry(NamedTuple):
    """One key in a step's write log."""

    seq: int  # number of the step's newest write of the key
    value: Any  # that write's value (``DELETED``: the key was deleted)
    before: (
        Any  # the value before the step's first write of the key (``ABSENT``: unset)
    )
    before_seq: int  # the number of the write that value came from (0: stored before)


class StepTransaction:
    """The graph-state writes of one node execution (see the module docstring).

    Attributes:
        ledger: The run's ledger (``ledger.state`` is the graph state written to).
        log: Key -> :class:`WriteEntry`, for the keys this step wrote.
        outer: The transaction current where this one began (for a graph run inside a
            node: the outer node's), or ``None``.
    """

    __slots__ = ("ledger", "log", "outer")

    def __init__(self, ledger: "RunWrites") -> None:
        self.ledger = ledger
        self.log: Dict[str, WriteEntry] = {}
        self.outer: Optional[StepTransaction] = CURRENT_STEP.get()

    def undo(self) -> None:
        """Take back this step's writes that nobody overwrote since; the log is emptied."""
        if self.log:
            self.ledger.undo(self.log)

    def commit(self, backend: StateBackend) -> None:
        """Store this step's writes and the run-level ones (``save_state_keys``), if any.

        For a backend that is not durable: its run record is saved when the run stops.

        Args:
            backend: The state backend.

        Raises:
            StateValidationError: A value is not JSON-serialisable (nothing is stored,
                and the writes stay pending for a later commit).
            StateBackendError: The backend failed (likewise).
        """
        ledger, log = self.ledger, self.log
        changes = ledger.pending(log) if log or ledger.outside else None
        if changes:
            backend.save_state_keys(changes)
            ledger.committed_now(log)

    def commit_step(
        self,
        backend: StateBackend,
        run_id: str,
        step: int,
        node_id: str,
        output: Any,
        frontier: List[Any],
        joins: Optional[Dict[str, Any]],
        last_node: Optional[str],
    ) -> None:
        """Commit the step's position with its writes in ONE backend transaction.

        ``StateBackend.commit_step`` with ``state_changes`` = this step's writes plus the
        run-level ones: all of it is stored, or none (then the writes stay pending).

        Args:
            backend: The (durable) state backend.
            run_id: The run.
            step: The run's step count after this step.
            node_id: The node that completed.
            output: Its output.
            frontier: The pending ``[node_id, inputs]`` entries after this step.
            joins: The join buffers, or ``None`` when unchanged since the last commit.
            last_node: The node whose output is the run's result so far.

        Raises:
            StateValidationError: Something is not JSON-serialisable (nothing is stored).
            StateBackendError: The backend failed (nothing is stored).
        """
        ledger, log = self.ledger, self.log
        changes = ledger.pending(log) if log or ledger.outside else None
        backend.commit_step(
            run_id, step, node_id, output, frontier, joins, changes, last_node
        )
        if changes:
            ledger.committed_now(log)


class RunWrites:
    """The ledger of a run's graph-state writes (see the module docstring).

    Attributes:
        state: The graph state.
        outside: Run-level writes (made outside a node of this state): key -> (seq, value).
    """

    __slots__ = ("state", "data", "outside", "seq", "latest", "committed")

    def __init__(self, state: "GraphState", data: Dict[str, Any]) -> None:
        self.state = state
        self.data = data  # the state's values, which writes update in place
        self.outside: Dict[str, Any] = {}
        self.seq = 0
        self.latest: Dict[str, int] = {}  # key -> seq of its newest write
        self.committed: Dict[str, int] = {}  # key -> seq of its newest committed write

    def record(
        self, values: Dict[str, Any], log: Optional[Dict[str, WriteEntry]]
    ) -> None:
        """Apply validated ``values`` to the state and record them (in ``log`` if given).

        Args:
            values: Keys and values (``DELETED`` removes the key).
            log: The writing step's log, or ``None`` for a run-level write. Reserved
                ``_spark_`` keys are always run-level.
        """
        data, latest = self.data, self.latest
        for key, value in values.items():
            self.seq += 1
            if log is not None and not key.startswith(RESERVED_PREFIX):
                entry = log.get(key)
                if entry is None:  # remember what to restore if the step is undone
                    before, before_seq = data.get(key, ABSENT), latest.get(key, 0)
                else:
                    before, before_seq = entry.before, entry.before_seq
                log[key] = WriteEntry(self.seq, value, before, before_seq)
            else:
                self.outside[key] = (self.seq, value)
            latest[key] = self.seq
            if value is DELETED:
                data.pop(key, None)
            else:
                data[key] = value

    def undo(self, log: Dict[str, WriteEntry]) -> None:
        """Take back the writes of ``log`` that nobody overwrote since, and empty it.

        Args:
            log: A step's write log.
        """
        data, latest = self.data, self.latest
        for key, entry in log.items():
            if latest.get(key) == entry.seq:
                if entry.before is ABSENT:
                    data.pop(key, None)
                else:
                    data[key] = entry.before
                latest[key] = entry.before_seq
        log.clear()

    def pending(
        self, log: Optional[Dict[str, WriteEntry]] = None
    ) -> Optional[Dict[str, Any]]:
        """Return what a commit would store now: run-level writes plus ``log``'s.

        Args:
            log: A completed step's write log.

        Returns:
            Key -> newest uncommitted value (``DELETED`` for a deletion), or ``None``.
        """
        if not log and not self.outside:
            return None
        changes: Dict[str, Any] = {}
        newest: Dict[str, int] = {}
        committed = self.committed
        for writes in (self.outside, log):
            for key, entry in (writes or {}).items():
                seq = entry[0]
                if seq > committed.get(key, 0) and seq > newest.get(key, 0):
                    changes[key] = entry[1]
                    newest[key] = seq
        return changes or None

    def save_run(self, backend: StateBackend, record: Any) -> None:
        """Save a run record with the pending run-level writes, in one transaction.

        Args:
            backend: The state backend.
            record: The run record (``StateBackend.save_run``).
        """
        changes = self.pending()
        backend.save_run(record, changes)
        if changes:
            self.committed_now(None)

    def committed_now(self, log: Optional[Dict[str, WriteEntry]]) -> None:
        """The backend stored what :meth:`pending` returned for ``log``: mark it committed.

        Args:
            log: The committed step's write log (``None``: run-level writes only).
        """
        committed = self.committed
        for writes in (self.outside, log):
            for key, entry in (writes or {}).items():
                if entry[0] > committed.get(key, 0):
                    committed[key] = entry[0]
        self.outside.clear()

    def settled(self, backend: StateBackend) -> Dict[str, Any]:
        """The state as stored plus the run-level writes (not the writes of running nodes).

        Args:
            backend: The state backend.

        Returns:
            Key -> value.
        """
        settled = backend.load_state()
        for key, (_, value) in self.outside.items():
            if value is DELETED:
                settled.pop(key, None)
            else:
                settled[key] = value
        return settled

    def close(self, backend: StateBackend) -> None:
        """End the run: store the run-level writes, drop what no completed step kept.

        Args:
            backend: The state backend.
        """
        try:
            changes = self.pending()
            if changes:
                backend.save_state_keys(changes)
                self.committed_now(None)
        finally:
            committed = self.committed
            dropped = [k for k, seq in self.latest.items() if seq > committed.get(k, 0)]
            if dropped:
                stored = backend.load_keys(dropped)
                for key in dropped:
                    if key in stored:
                        self.data[key] = stored[key]
                    else:
                        self.data.pop(key, None)


__all__ = ["StepTransaction", "RunWrites", "WriteEntry"]
