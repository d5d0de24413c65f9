"""State backends: where a graph's state and its run records live.

A backend stores two things: the graph state (JSON values by key) and run records (status,
the frontier of pending nodes with their inputs, join buffers, outputs of completed nodes,
step count). ``InMemoryStateBackend`` keeps them in dicts; ``SQLiteStateBackend`` keeps them
in one SQLite file (WAL mode) and commits each completed step in ONE transaction, so a run
killed at any moment resumes exactly where its last committed step left it.

The public methods are synchronous and cheap, so other processes (e.g. a CLI resolving
approvals) can open the same SQLite file and use ``load_state`` / ``load_keys`` /
``save_state_keys``.

:class:`StateBackend` is the contract a new backend implements: its docstrings say what
each method guarantees (atomicity included), and a backend that keeps those guarantees
can stand in for the built-in ones.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
import time
from contextlib import contextmanager
from typing import Any, Dict, Iterable, Iterator, List, Optional, TypedDict, Union

from spark_core.errors import StateBackendError, StateValidationError


class RunRecord(TypedDict, total=False):
    """A stored run, as ``save_run`` takes it and ``load_run`` returns it (a plain dict).

    Attributes:
        run_id: The run's id.
        graph_id: The id of the graph it ran on.
        status: ``"running"``, ``"completed"``, ``"failed"``, ``"paused"`` or
            ``"cancelled"``.
        inputs: The run's input (JSON).
        frontier: The pending ``[node_id, inputs]`` entries.
        joins: Join node id -> list of rounds, each ``{parent id: output}``.
        step: Node executions committed so far.
        last_node: The node whose output is the run's result so far, or ``None``.
        error: ``"ErrorClass: message"`` of the error that ended the run, or ``None``.
        outputs: Node id -> its last committed output (``load_run`` always has it;
            ``save_run`` replaces the stored outputs only when the key is present).
    """

    run_id: str
    graph_id: Optional[str]
    status: str
    inputs: Any
    frontier: List[Any]
    joins: Dict[str, Any]
    step: int
    last_node: Optional[str]
    error: Optional[str]
    outputs: Dict[str, Any]


class RunSummary(TypedDict):
    """One run as ``list_runs`` lists it."""

    run_id: str
    graph_id: Optional[str]
    status: str
    step: int


class _Deleted:
    def __repr__(self) -> str:
        return "DELETED"


# In the ``state_changes`` of ``save_run``/``commit_step``: the key was deleted.
DELETED: Any = _Deleted()


def _dumps(value: Any, what: str) -> str:
    try:
        return json.dumps(value, separators=(",", ":"), allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise StateValidationError(f"{what} is not JSON-serialisable: {exc}") from None


def _loads(text: Optional[str]) -> Any:
    return json.loads(text) if text is not None else None


def _copy_record(record: RunRecord) -> RunRecord:
    # Shallow copies: the graph hands over fresh containers, and deep-copying every output
    # of a long run would dominate the cost of an in-memory run.
    copied = record.copy()
    copied["outputs"] = dict(record.get("outputs") or {})
    return copied


class StateBackend:
    """The contract of state backends: where a graph's state and run records live.

    Subclass it to store state elsewhere. Every method is synchronous; the engine calls
    them from the event loop's thread, other processes (a CLI resolving approvals) may call
    them on another instance over the same store. What every backend guarantees:

    * **Atomic writes.** ``save_state_keys``, ``delete_state_keys``, ``clear_state``,
      ``save_run``, ``commit_step`` and ``delete_run`` each apply all of their changes or
      none: when one raises (a value that is not JSON, a full disk, a lost connection),
      nothing it was given is stored, and the backend stays usable.
    * **JSON in, JSON out.** Values are stored as JSON; what a load returns is a fresh
      copy (a tuple comes back as a list), never an object the caller passed in. A value
      that is not JSON-serialisable raises :class:`~spark_core.errors.StateValidationError`.
    * **Failures are typed.** A store that fails raises
      :class:`~spark_core.errors.StateBackendError` (never the driver's own exception).
    * **Durability.** When ``durable`` is true, whatever a write method returned from is
      there for every later load, in this process or another, after a crash too; the graph
      then commits every step with ``commit_step`` and ``Graph.resume`` continues a killed
      run from the last one. A non-durable backend gets the run record once, when the run
      stops (``save_run``).

    ``DELETED`` as a value in ``values`` / ``state_changes`` removes that key.

    The contract every backend keeps (``tests/backends/test_contract.py`` checks it on each
    one; a new backend proves itself by passing it):

    * state values and run records come back equal to what was written (JSON data, key
      order kept); ``load_keys`` leaves out keys that are not set; ``DELETED`` as a value
      removes the key; a loaded record is a copy;
    * ``save_run`` replaces the whole record (its ``outputs`` too, when given; kept when
      the key is absent) and writes its state changes with it; ``commit_step`` stores the
      node's output, the frontier, the step, the join buffers when given and the last node
      when given, with the step's state changes;
    * a durable backend (``durable = True``) writes each ``save_state_keys`` /
      ``save_run`` / ``commit_step`` in one transaction: when it raises (a value is not
      JSON data, the database failed), nothing of it is stored, and another handle on the
      same storage sees every call that returned;
    * ``list_runs`` is oldest first; ``delete_run`` forgets the record and its outputs;
    * ``claim_run`` / ``release_run``: optional, exclusive across processes where a backend
      implements them (PostgreSQL), no-ops otherwise.

    Attributes:
        durable: True when committed data survives the process (see above).
    """

    durable = False

    def load_state(self) -> Dict[str, Any]:
        """Return a copy of the whole graph state.

        Returns:
            Key -> value (a new dict; changing it changes nothing stored).
        """
        raise NotImplementedError

    def load_keys(self, keys: Iterable[str]) -> Dict[str, Any]:
        """Return the values of ``keys`` (a key that is not set is left out).

        Reads one consistent state (the keys come from the same committed state). The
        default reads the whole state with :meth:`load_state`; backends that can read
        single keys override it.

        Args:
            keys: The keys to read (duplicates are allowed).

        Returns:
            Key -> value, for the keys that are set.
        """
        state = self.load_state()
        return {key: state[key] for key in keys if key in state}

    def save_state_keys(self, values: Dict[str, Any]) -> None:
        """Upsert ``values`` into the graph state in one transaction (all or nothing).

        Args:
            values: Keys and JSON-serialisable values (a value of ``DELETED`` removes the
                key).
        """
        raise NotImplementedError

    def delete_state_keys(self, keys: Iterable[str]) -> None:
        """Remove keys from the graph state in one transaction.

        Args:
            keys: The keys to remove (missing keys are ignored).
        """
        raise NotImplementedError

    def clear_state(self) -> None:
        """Remove every key of the graph state in one transaction (run records are kept)."""
        raise NotImplementedError

    def save_run(
        self, record: RunRecord, state_changes: Optional[Dict[str, Any]] = None
    ) -> None:
        """Insert or replace a run record, and write state changes, in ONE transaction.

        The record replaces the stored one field by field (``run_id`` is the key). Its
        ``outputs``, when the key is present, replace the run's stored outputs; when absent,
        the stored outputs are kept (the engine saves the final record of a durable run
        without them: its steps already committed each output).

        Args:
            record: ``run_id``, ``graph_id``, ``status``, ``inputs``, ``frontier``,
                ``joins``, ``step``, ``last_node``, ``error`` and ``outputs`` (node id ->
                output; when the key is absent the stored outputs are kept).
            state_changes: State keys to upsert in the same transaction (a value of
                ``DELETED`` removes the key).
        """
        raise NotImplementedError

    def commit_step(
        self,
        run_id: str,
        step: int,
        node_id: str,
        output: Any,
        frontier: List[Any],
        joins: Optional[Dict[str, Any]],
        state_changes: Optional[Dict[str, Any]] = None,
        last_node: Optional[str] = None,
    ) -> None:
        """Commit one completed step in ONE transaction: all of it is stored, or none.

        After it returns, ``load_run(run_id)`` has ``outputs[node_id] == output``, this
        ``frontier`` and ``step``, ``status == "running"``, ``joins`` (unchanged when
        ``None`` is given) and ``last_node`` (unchanged when ``None``), and the state has
        ``state_changes`` applied. A run killed right after resumes from exactly this
        position; killed before, from the previous one. The run record exists already
        (``save_run`` stored it when the run started).

        Args:
            run_id: The run.
            step: The run's step count after this step.
            node_id: The node that completed.
            output: Its output.
            frontier: The pending ``[node_id, inputs]`` entries after this step.
            joins: The join buffers, or ``None`` when they did not change.
            state_changes: State keys written by this step (a value of ``DELETED``
                removes the key).
            last_node: The node whose output is the run's result so far (``None``:
                unchanged).
        """
        raise NotImplementedError

    def load_run(self, run_id: str) -> Optional[RunRecord]:
        """Return the run record with its ``outputs``, or ``None`` when unknown.

        The record and its outputs are read from one committed state (never a step's
        output without that step's frontier).

        Args:
            run_id: The run.

        Returns:
            The record (a new dict), or ``None``.
        """
        raise NotImplementedError

    def list_runs(self) -> List[RunSummary]:
        """Return a summary of every stored run, oldest first.

        Returns:
            ``{run_id, graph_id, status, step}`` per run.
        """
        raise NotImplementedError

    def delete_run(self, run_id: str) -> None:
        """Forget a run record and its outputs (an unknown run is not an error).

        Args:
            run_id: The run.
        """
        raise NotImplementedError

    def claim_run(self, run_id: str) -> None:
        """Take the exclusive right to run ``run_id`` (optional; a no-op by default).

        Backends shared by several processes (PostgreSQL) implement it with a lease: the
        claim holds while its holder renews it and expires when the holder dies, so the run
        can be resumed elsewhere. Claiming a run this backend already holds succeeds.
        In-process backends need no claim: the graph already runs one run at a time.

        Args:
            run_id: The run (it need not be stored yet).

        Raises:
            RunClaimedError: Another process holds the claim.
        """

    def release_run(self, run_id: str) -> None:
        """Give up a claim taken with :meth:`claim_run` (a no-op by default).

        Args:
            run_id: The run.
        """

    @contextmanager
    def claimed(self, run_id: str) -> Iterator[None]:
        """Hold the claim on ``run_id`` for the duration of a ``with`` block.

        Args:
            run_id: The run.

        Yields:
            Nothing; the claim is released when the block ends.

        Raises:
            RunClaimedError: Another process holds the claim.
        """
        self.claim_run(run_id)
        try:
            yield
        finally:
            self.release_run(run_id)

    def close(self) -> None:
        """Release resources (no-op by default); the backend is not used afterwards."""


class InMemoryStateBackend(StateBackend):
    """Keeps state and run records in this process's memory (the default backend)."""

    durable = False

    def __init__(self, initial: Optional[Dict[str, Any]] = None) -> None:
        """Create an empty backend, optionally with initial state.

        Args:
            initial: Initial state values.
        """
        self._state: Dict[str, Any] = dict(initial or {})
        self._runs: Dict[str, RunRecord] = {}

    def load_state(self) -> Dict[str, Any]:
        """Return a shallow copy of the state.

        Returns:
            Key -> value.
        """
        return dict(self._state)

    def load_keys(self, keys: Iterable[str]) -> Dict[str, Any]:
        """Return the values of ``keys`` that are set.

        Args:
            keys: The keys to read.

        Returns:
            Key -> value.
        """
        state = self._state
        return {key: state[key] for key in keys if key in state}

    def save_state_keys(self, values: Dict[str, Any]) -> None:
        """Upsert ``values``.

        Args:
            values: Keys and values (``DELETED`` removes the key).
        """
        self._apply(values)

    def delete_state_keys(self, keys: Iterable[str]) -> None:
        """Remove keys.

        Args:
            keys: The keys to remove.
        """
        for key in keys:
            self._state.pop(key, None)

    def clear_state(self) -> None:
        """Remove every state key."""
        self._state.clear()

    def save_run(
        self, record: RunRecord, state_changes: Optional[Dict[str, Any]] = None
    ) -> None:
        """Store a copy of the run record.

        Args:
            record: The run record.
            state_changes: State keys to upsert.
        """
        stored = self._runs.get(record["run_id"])
        copied = _copy_record(record)
        if "outputs" not in record and stored is not None:  # as durable backends do
            copied["outputs"] = stored["outputs"]
        self._runs[record["run_id"]] = copied
        self._apply(state_changes)

    def commit_step(
        self,
        run_id: str,
        step: int,
        node_id: str,
        output: Any,
        frontier: List[Any],
        joins: Optional[Dict[str, Any]],
        state_changes: Optional[Dict[str, Any]] = None,
        last_node: Optional[str] = None,
    ) -> None:
        """Record one step (used when the graph is asked to commit every step).

        Args:
            run_id: The run.
            step: Step count.
            node_id: The node that completed.
            output: Its output.
            frontier: Pending entries.
            joins: Join buffers or ``None``.
            state_changes: State keys to upsert.
            last_node: The run's result node so far (``None``: unchanged).
        """
        record = self._runs.setdefault(run_id, {"run_id": run_id, "outputs": {}})
        record["outputs"][node_id] = output
        record["step"], record["frontier"], record["status"] = step, frontier, "running"
        if last_node is not None:
            record["last_node"] = last_node
        if joins is not None:
            record["joins"] = joins
        self._apply(state_changes)

    def _apply(self, changes: Optional[Dict[str, Any]]) -> None:
        for key, value in (changes or {}).items():
            if value is DELETED:
                self._state.pop(key, None)
            else:
                self._state[key] = value

    def load_run(self, run_id: str) -> Optional[RunRecord]:
        """Return a copy of the run record, or ``None``.

        Args:
            run_id: The run.

        Returns:
            The record, or ``None``.
        """
        record = self._runs.get(run_id)
        return _copy_record(record) if record is not None else None

    def list_runs(self) -> List[RunSummary]:
        """Return a summary of every run.

        Returns:
            ``{run_id, graph_id, status, step}`` per run.
        """
        return [
            RunSummary(
                run_id=r["run_id"],
                graph_id=r.get("graph_id"),
                status=r.get("status", "running"),
                step=r.get("step", 0),
            )
            for r in self._runs.values()
        ]

    def delete_run(self, run_id: str) -> None:
        """Forget a run.

        Args:
            run_id: The run.
        """
        self._runs.pop(run_id, None)


_KEYS_PER_QUERY = 500  # SQLite before 3.32 allows 999 parameters per statement
_SCHEMA = """
CREATE TABLE IF NOT EXISTS spark_state (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS spark_runs (
    run_id TEXT PRIMARY KEY, graph_id TEXT, status TEXT NOT NULL, inputs TEXT,
    frontier TEXT NOT NULL, joins TEXT NOT NULL, step INTEGER NOT NULL, last_node TEXT,
    error TEXT, created REAL NOT NULL, updated REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS spark_outputs (
    run_id TEXT NOT NULL, node_id TEXT NOT NULL, step INTEGER NOT NULL, output TEXT,
    PRIMARY KEY (run_id, node_id)
);
"""


class SQLiteStateBackend(StateBackend):
    """Keeps state and run records in a SQLite file (WAL mode, ``synchronous=NORMAL``).

    Each completed step is committed in one transaction (the node's output, the new frontier
    and the state keys written since the last step), so ``graph.resume(run_id)`` continues
    a killed run without re-running committed nodes. Several processes may open the same
    file; SQLite serialises their writes. When SQLite fails (disk full, database locked
    past ``timeout``, not a database, closed), every method raises
    :class:`~spark_core.errors.StateBackendError`; a failed write writes nothing.
    """

    durable = True

    def __init__(
        self, path: Union[str, "os.PathLike[str]"], *, timeout: float = 30.0
    ) -> None:
        """Open (and create if needed) the database.

        Args:
            path: The database file (``":memory:"`` for a private in-memory database).
            timeout: Seconds to wait for another process's write lock.

        Raises:
            StateBackendError: The file cannot be opened or is not a database.
        """
        self.path = os.fspath(path)
        self._lock = threading.RLock()
        try:
            self._conn = sqlite3.connect(
                self.path,
                timeout=timeout,
                isolation_level=None,
                check_same_thread=False,
            )
        except sqlite3.Error as exc:
            raise self._error(exc) from exc
        try:
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute("PRAGMA synchronous=NORMAL")
            self._conn.executescript(_SCHEMA)
        except BaseException as exc:  # e.g. not a database: do not leak the connection
            self._conn.close()
            if isinstance(exc, sqlite3.Error):
                raise self._error(exc) from exc
            raise

    def __repr__(self) -> str:
        return f"SQLiteStateBackend({self.path!r})"

    def _error(self, exc: sqlite3.Error) -> StateBackendError:
        return StateBackendError(f"SQLite state backend {self.path!r}: {exc}")

    def _write(self, statements: List[Any]) -> None:
        """Run ``(sql, params)`` pairs in one transaction (all or nothing)."""
        with self._lock:
            try:
                cur = self._conn.cursor()
                cur.execute("BEGIN IMMEDIATE")
                try:
                    for sql, params in statements:
                        cur.execute(sql, params)
                    cur.execute("COMMIT")
                except BaseException:
                    # Also when COMMIT itself fails (disk full, I/O error): a transaction
                    # left open would make every later write fail.
                    if self._conn.in_transaction:
                        cur.execute("ROLLBACK")
                    raise
            except sqlite3.Error as exc:
                raise self._error(exc) from exc

    def _read(self, sql: str, params: Any = ()) -> List[Any]:
        with self._lock:
            try:
                return self._conn.execute(sql, params).fetchall()
            except sqlite3.Error as exc:
                raise self._error(exc) from exc

    @staticmethod
    def _state_rows(values: Optional[Dict[str, Any]]) -> List[Any]:
        if not values:
            return []
        return [
            (
                ("DELETE FROM spark_state WHERE key = ?", (key,))
                if value is DELETED
                else (
                    "INSERT OR REPLACE INTO spark_state (key, value) VALUES (?, ?)",
                    (key, _dumps(value, f"state key {key!r}")),
                )
            )
            for key, value in values.items()
        ]

    def load_state(self) -> Dict[str, Any]:
        """Return the whole graph state.

        Returns:
            Key -> value.

        Raises:
            StateBackendError: The database cannot be read.
        """
        rows = self._read("SELECT key, value FROM spark_state")
        return {key: json.loads(value) for key, value in rows}

    def load_keys(self, keys: Iterable[str]) -> Dict[str, Any]:
        """Return the values of ``keys`` that are set, reading only those rows.

        Args:
            keys: The keys to read.

        Returns:
            Key -> value.

        Raises:
            StateBackendError: The database cannot be read.
        """
        wanted = list(dict.fromkeys(keys))
        rows: List[Any] = []
        for start in range(0, len(wanted), _KEYS_PER_QUERY):
            chunk = wanted[start : start + _KEYS_PER_QUERY]
            rows += self._read(
                "SELECT key, value FROM spark_state WHERE key IN "
                f"({', '.join('?' * len(chunk))})",
                chunk,
            )
        return {key: json.loads(value) for key, value in rows}

    def save_state_keys(self, values: Dict[str, Any]) -> None:
        """Upsert ``values`` in one transaction (nothing is written if one value is bad).

        Args:
            values: Keys and JSON-serialisable values (``DELETED`` removes the key).

        Raises:
            StateValidationError: A value is not JSON-serialisable.
            StateBackendError: SQLite failed (nothing is written).
        """
        rows = self._state_rows(values)
        if rows:
            self._write(rows)

    def delete_state_keys(self, keys: Iterable[str]) -> None:
        """Remove keys in one transaction.

        Args:
            keys: The keys to remove.
        """
        self._write([("DELETE FROM spark_state WHERE key = ?", (key,)) for key in keys])

    def clear_state(self) -> None:
        """Remove every state key."""
        self._write([("DELETE FROM spark_state", ())])

    def save_run(
        self, record: RunRecord, state_changes: Optional[Dict[str, Any]] = None
    ) -> None:
        """Insert or replace a run record (and its outputs) in one transaction.

        Args:
            record: The run record.
            state_changes: State keys to upsert in the same transaction.
        """
        run_id = record["run_id"]
        now = time.time()
        statements: List[Any] = [
            (
                "INSERT INTO spark_runs (run_id, graph_id, status, inputs, frontier, joins, "
                "step, last_node, error, created, updated) VALUES (?,?,?,?,?,?,?,?,?,?,?) "
                "ON CONFLICT(run_id) DO UPDATE SET graph_id=excluded.graph_id, "
                "status=excluded.status, inputs=excluded.inputs, frontier=excluded.frontier, "
                "joins=excluded.joins, step=excluded.step, last_node=excluded.last_node, "
                "error=excluded.error, updated=excluded.updated",
                (
                    run_id,
                    record.get("graph_id"),
                    record.get("status", "running"),
                    _dumps(record.get("inputs"), "run inputs"),
                    _dumps(record.get("frontier", []), "run frontier"),
                    _dumps(record.get("joins", {}), "join buffers"),
                    int(record.get("step", 0)),
                    record.get("last_node"),
                    record.get("error"),
                    now,
                    now,
                ),
            )
        ]
        if "outputs" in record:
            statements.append(("DELETE FROM spark_outputs WHERE run_id = ?", (run_id,)))
            for node_id, output in record["outputs"].items():
                statements.append(
                    (
                        "INSERT INTO spark_outputs (run_id, node_id, step, output) "
                        "VALUES (?, ?, ?, ?)",
                        (
                            run_id,
                            node_id,
                            0,
                            _dumps(output, f"output of node {node_id!r}"),
                        ),
                    )
                )
        self._write(statements + self._state_rows(state_changes))

    def commit_step(
        self,
        run_id: str,
        step: int,
        node_id: str,
        output: Any,
        frontier: List[Any],
        joins: Optional[Dict[str, Any]],
        state_changes: Optional[Dict[str, Any]] = None,
        last_node: Optional[str] = None,
    ) -> None:
        """Commit one completed step in one transaction.

        Args:
            run_id: The run.
            step: Step count after this step.
            node_id: The node that completed.
            output: Its output.
            frontier: Pending ``[node_id, inputs]`` entries.
            joins: Join buffers, or ``None`` when unchanged.
            state_changes: State keys written by this step.
            last_node: The run's result node so far (``None``: unchanged).

        Raises:
            StateValidationError: Something is not JSON-serialisable (nothing is written).
            StateBackendError: SQLite failed (nothing is written).
        """
        statements: List[Any] = [
            (
                "INSERT OR REPLACE INTO spark_outputs (run_id, node_id, step, output) "
                "VALUES (?, ?, ?, ?)",
                (run_id, node_id, step, _dumps(output, f"output of node {node_id!r}")),
            )
        ]
        # The join buffers are rewritten only when they changed.
        sets, params = ["frontier=?"], [_dumps(frontier, "run frontier")]
        if joins is not None:
            sets.append("joins=?")
            params.append(_dumps(joins, "join buffers"))
        statements.append(
            (
                f"UPDATE spark_runs SET {', '.join(sets)}, step=?, "
                "last_node=COALESCE(?, last_node), status='running', updated=? "
                "WHERE run_id=?",
                (*params, step, last_node, time.time(), run_id),
            )
        )
        self._write(statements + self._state_rows(state_changes))

    def load_run(self, run_id: str) -> Optional[RunRecord]:
        """Return the run record with its ``outputs``, or ``None``.

        Args:
            run_id: The run.

        Returns:
            The record, or ``None``.

        Raises:
            StateBackendError: The database cannot be read.
        """
        with self._lock:  # both reads see the same commits
            rows = self._read(
                "SELECT graph_id, status, inputs, frontier, joins, step, last_node, error "
                "FROM spark_runs WHERE run_id = ?",
                (run_id,),
            )
            if not rows:
                return None
            outputs = self._read(
                "SELECT node_id, output FROM spark_outputs WHERE run_id = ? ORDER BY step",
                (run_id,),
            )
        graph_id, status, inputs, frontier, joins, step, last_node, error = rows[0]
        return RunRecord(
            run_id=run_id,
            graph_id=graph_id,
            status=status,
            inputs=_loads(inputs),
            frontier=_loads(frontier),
            joins=_loads(joins),
            step=step,
            last_node=last_node,
            error=error,
            outputs={node_id: json.loads(out) for node_id, out in outputs},
        )

    def list_runs(self) -> List[RunSummary]:
        """Return a summary of every run, oldest first.

        Returns:
            ``{run_id, graph_id, status, step}`` per run.

        Raises:
            StateBackendError: The database cannot be read.
        """
        rows = self._read(
            "SELECT run_id, graph_id, status, step FROM spark_runs ORDER BY created"
        )
        return [
            RunSummary(run_id=run_id, graph_id=graph_id, status=status, step=step)
            for run_id, graph_id, status, step in rows
        ]

    def delete_run(self, run_id: str) -> None:
        """Forget a run and its outputs.

        Args:
            run_id: The run.
        """
        self._write(
            [
                ("DELETE FROM spark_outputs WHERE run_id = ?", (run_id,)),
                ("DELETE FROM spark_runs WHERE run_id = ?", (run_id,)),
            ]
        )

    def close(self) -> None:
        """Close the database connection."""
        with self._lock:
            self._conn.close()


__all__ = [
    "StateBackend",
    "InMemoryStateBackend",
    "SQLiteStateBackend",
    "RunRecord",
    "RunSummary",
    "DELETED",
]
