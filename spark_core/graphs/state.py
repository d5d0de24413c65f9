"""``GraphState``: the state a graph's nodes share, kept across the graph's runs."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from typing import Any, Dict, Iterator, Optional

from spark_core.errors import StateLockError, StateValidationError
from spark_core.graphs.backends import DELETED, InMemoryStateBackend, StateBackend
from spark_core.graphs.state_schema import (
    RESERVED_PREFIX,
    check_schema,
    from_model,
    schema_defaults,
    to_model,
    validate_values,
)
from spark_core.nodes.context import NODE_WRITES
from spark_core.utils import PLAIN_JSON, LoopLock, json_copy


class _Transaction:
    """``async with state.transaction():`` (also ``async with await state.transaction():``)."""

    __slots__ = ("_lock",)

    def __init__(self, lock: asyncio.Lock) -> None:
        self._lock = lock

    def __await__(self) -> Any:
        if False:  # pragma: no cover - makes this a generator without suspending
            yield
        return self

    async def __aenter__(self) -> "_Transaction":
        await self._lock.acquire()
        return self

    async def __aexit__(self, *exc: Any) -> None:
        self._lock.release()


# A node's write log (NODE_WRITES) maps key -> (seq, value, value before, seq before).
_ABSENT: Any = object()  # "the key was not set" in a log entry


class GraphState:
    """Shared, JSON-valued state of a graph; it persists across runs until reset.

    Values must be JSON-serialisable; what is stored is the JSON form of the value (a tuple
    becomes a list, the object passed in is copied), validated by the schema. Keys starting
    with ``_spark_`` are reserved for the library (approvals, audit trail) and are never
    checked against the schema. With a schema, every write of a declared field is
    type-checked and missing fields start at their defaults.

    During a run, a node's writes are kept only if the node completes: they are committed
    together with its step (with a durable backend, in the step's transaction), a failed
    attempt's writes are undone before a retry, and when the run fails, is cancelled or
    pauses the state goes back to what completed steps committed (a paused node runs
    again from its start on resume, so its writes are undone too). Reads see every write
    at once, also the writes of siblings still running (so ``async with state.lock():``
    read-modify-writes across branches add up); a value that a still-running sibling
    wrote is committed by the node that builds on it.
    Reserved ``_spark_`` keys and writes made outside nodes (observers) are committed with
    the next step whatever happens to the node.

    Attributes:
        backend: Where the state is stored.
        schema: The state schema class, or ``None``.
    """

    def __init__(
        self,
        backend: Optional[StateBackend] = None,
        schema: Any = None,
        initial: Optional[Dict[str, Any]] = None,
    ) -> None:
        """Load the state from ``backend`` and fill in defaults.

        Args:
            backend: The backend (a new ``InMemoryStateBackend`` by default).
            schema: A ``MissionStateModel`` subclass or a pydantic model class.
            initial: Values for keys the backend does not hold yet.

        Raises:
            StateValidationError: The schema or an initial value is invalid.
        """
        check_schema(schema)
        self.backend: StateBackend = (
            backend if backend is not None else InMemoryStateBackend()
        )
        self.schema = schema
        self._data: Dict[str, Any] = self.backend.load_state()
        # While a run is in progress: writes made outside nodes, key -> (seq, value).
        self._run_writes: Optional[Dict[str, Any]] = None
        self._seq = 0  # numbers every write of a run, to commit only the newest value
        self._latest: Dict[str, int] = {}  # key -> seq of its newest write
        self._committed: Dict[str, int] = {}  # key -> seq of its newest committed write
        self._taken: Dict[str, int] = {}  # key -> seq, of the last _take_changes
        self._lock = LoopLock()
        self._thread_lock = threading.Lock()  # lock_sync() when no run is in progress
        self._loop: Optional[asyncio.AbstractEventLoop] = (
            None  # the loop of the last run
        )
        self._fill_defaults(initial)

    def __repr__(self) -> str:
        return f"GraphState(keys={sorted(self._data)!r}, backend={type(self.backend).__name__})"

    def _fill_defaults(self, initial: Optional[Dict[str, Any]]) -> None:
        missing = {
            k: v
            for k, v in {**schema_defaults(self.schema), **(initial or {})}.items()
            if k not in self._data
        }
        if missing:
            missing = self._check(missing)
            self._data.update(missing)
            self.backend.save_state_keys(missing)

    def _check(self, values: Dict[str, Any]) -> Dict[str, Any]:
        """Validate ``values``; return them as they will be stored (JSON form, schema's)."""
        stored = {}
        for key, value in values.items():
            if not isinstance(key, str):
                raise StateValidationError(f"state keys must be strings, got {key!r}")
            # What a durable backend would give back: a tuple becomes a list, and later
            # changes to the caller's object do not leak into the state.
            try:
                stored[key] = value if type(value) in PLAIN_JSON else json_copy(value)
            except (TypeError, ValueError, RecursionError) as exc:
                raise StateValidationError(
                    f"state key {key!r}: value is not JSON-serialisable ({exc})"
                ) from None
        return validate_values(self.schema, self._data, stored)

    def _write(self, values: Dict[str, Any], log: Any = _ABSENT) -> None:
        values = self._check(values)
        self._apply(values, self._node_log() if log is _ABSENT else log)

    def _node_log(self) -> Optional[Dict[str, Any]]:
        """The write log of this state's node running in this context, if any."""
        entry = NODE_WRITES.get()
        while entry is not None:
            if entry[0] is self:
                return entry[1]
            entry = entry[2]
        return None

    def _apply(self, values: Dict[str, Any], log: Optional[Dict[str, Any]]) -> None:
        """Write validated values (``DELETED`` removes a key) into the state."""
        run_writes = self._run_writes
        if run_writes is None:  # no run in progress: straight to the backend
            for key, value in values.items():
                if value is DELETED:
                    self._data.pop(key, None)
                else:
                    self._data[key] = value
            self.backend.save_state_keys(values)
            return
        data, latest = self._data, self._latest
        for key, value in values.items():
            self._seq += 1
            if log is not None and not key.startswith(RESERVED_PREFIX):
                entry = log.get(key)
                if entry is None:  # remember what to restore if the attempt fails
                    entry = (0, None, data.get(key, _ABSENT), latest.get(key, 0))
                log[key] = (self._seq, value, entry[2], entry[3])
            else:
                run_writes[key] = (self._seq, value)
            latest[key] = self._seq
            if value is DELETED:
                data.pop(key, None)
            else:
                data[key] = value

    # Used by the graph while it runs (see the class docstring).
    def _begin_run(self) -> None:
        self._run_writes = {}
        self._latest = {}
        self._committed = {}

    def _take_changes(
        self, log: Optional[Dict[str, Any]] = None
    ) -> Optional[Dict[str, Any]]:
        """Return what to commit now: run-level writes plus ``log`` (a completed node's).

        They count as committed once :meth:`_stored` is called: a commit that fails (disk
        full, a node output that is not JSON) leaves them to a later commit.
        """
        taken = self._taken = {}
        run_writes = self._run_writes
        if not log and not run_writes:
            return None
        changes: Dict[str, Any] = {}
        committed = self._committed
        for writes in (run_writes, log):
            for key, entry in (writes or {}).items():
                seq = entry[0]
                if seq > committed.get(key, 0) and seq > taken.get(key, 0):
                    changes[key] = entry[1]  # newer than what is stored
                    taken[key] = seq
        return changes or None

    def _stored(self) -> None:
        """The backend stored what :meth:`_take_changes` returned last."""
        self._committed.update(self._taken)
        self._taken = {}
        if self._run_writes:
            self._run_writes.clear()

    def _undo(self, log: Dict[str, Any]) -> None:
        """Take back the writes of an attempt that did not complete (those nobody
        overwrote since)."""
        for key, (seq, _, before, before_seq) in log.items():
            if self._latest.get(key) == seq:
                if before is _ABSENT:
                    self._data.pop(key, None)
                else:
                    self._data[key] = before
                self._latest[key] = before_seq
        log.clear()

    def _end_run(self) -> None:
        """Store the remaining run-level writes, then drop what no completed step kept."""
        try:
            changes = self._take_changes()
            if changes:
                self.backend.save_state_keys(changes)
                self._stored()
        finally:
            self._run_writes = None
            self._drop_uncommitted()

    def _drop_uncommitted(self) -> None:
        """Put back the stored value of every key whose newest write was not committed."""
        committed = self._committed
        dropped = [k for k, seq in self._latest.items() if seq > committed.get(k, 0)]
        if dropped:
            stored = self.backend.load_keys(dropped)
            for key in dropped:
                if key in stored:
                    self._data[key] = stored[key]
                else:
                    self._data.pop(key, None)

    def _settled(self) -> Dict[str, Any]:
        """The state without the writes of nodes still running (for checkpoints)."""
        if self._run_writes is None:
            return self._data
        settled = self.backend.load_state()
        for key, (_, value) in self._run_writes.items():
            if value is DELETED:
                settled.pop(key, None)
            else:
                settled[key] = value
        return settled

    def _reload(self) -> None:
        self._data = self.backend.load_state()

    async def get(self, key: str, default: Any = None) -> Any:
        """Return the value of ``key``, or ``default``.

        Args:
            key: The key.
            default: Returned when the key is not set.

        Returns:
            The stored value (also a running sibling's latest write), or ``default``.
        """
        return self._data.get(key, default)

    async def set(self, key: str, value: Any) -> None:
        """Set one key (validated: JSON-serialisable, matches the schema).

        Args:
            key: The key.
            value: The new value.

        Raises:
            StateValidationError: The value is invalid (nothing is written).
        """
        self._write({key: value})

    async def update(self, values: Dict[str, Any]) -> None:
        """Set several keys at once; all are validated before any is written.

        Args:
            values: Keys and values.

        Raises:
            StateValidationError: A value is invalid (nothing is written).
        """
        self._write(_as_dict(values))

    async def delete(self, key: str) -> None:
        """Remove ``key`` (no error when it is not set).

        Args:
            key: The key.
        """
        self._apply({key: DELETED}, self._node_log())  # kept like a write

    # Synchronous access for plain ``def`` nodes, which run in worker threads.
    def get_sync(self, key: str, default: Any = None) -> Any:
        """Synchronous :meth:`get`, usable from a plain ``def`` node.

        Args:
            key: The key.
            default: Returned when the key is not set.

        Returns:
            The stored value, or ``default``.
        """
        return self._data.get(key, default)

    def set_sync(self, key: str, value: Any) -> None:
        """Synchronous :meth:`set`, usable from a plain ``def`` node (a worker thread).

        Args:
            key: The key.
            value: The new value.

        Raises:
            StateValidationError: The value is invalid (nothing is written).
        """
        self.update_sync({key: value})

    def update_sync(self, values: Dict[str, Any]) -> None:
        """Synchronous :meth:`update`, usable from a plain ``def`` node (a worker thread).

        From a worker thread the write is handed to the run's event loop and this call
        waits for it, so it is ordered with the loop's own writes and commits.

        Args:
            values: Keys and values.

        Raises:
            StateValidationError: A value is invalid (nothing is written).
        """
        values = _as_dict(values)
        log = self._node_log()  # the calling node's (copied into its worker thread)
        loop = self._loop
        if loop is not None and loop.is_running():
            try:
                in_loop = asyncio.get_running_loop() is loop
            except RuntimeError:
                in_loop = False
            if not in_loop:
                future = asyncio.run_coroutine_threadsafe(
                    self._write_async(values, log), loop
                )
                future.result()
                return
        self._write(values, log)

    async def _write_async(self, values: Dict[str, Any], log: Any) -> None:
        self._write(values, log)

    def lock(self) -> asyncio.Lock:
        """Return the lock that guards read-modify-write sequences.

        Use ``async with graph_state.lock(): ...`` around a get followed by a set.

        Returns:
            The asyncio lock of the running event loop.

        Raises:
            StateLockError: No event loop runs in this thread (a plain ``def`` node's worker
                thread: use :meth:`lock_sync`).
        """
        try:
            return self._lock.current()
        except RuntimeError:
            raise StateLockError(
                "graph_state.lock() is an asyncio lock and needs a running event loop: "
                "in a plain def node use `with graph_state.lock_sync():`"
            ) from None

    @contextlib.contextmanager
    def lock_sync(self) -> Iterator[None]:
        """Hold :meth:`lock` from a plain ``def`` node (a worker thread).

        ``with graph_state.lock_sync():`` around ``get_sync`` and ``set_sync`` makes the
        read-modify-write exclusive with the other sync and async holders of the lock.

        Returns:
            A context manager holding the lock while its block runs.

        Raises:
            StateLockError: Called on the event loop's own thread, which it would block
                (use ``async with graph_state.lock():`` there).
        """
        loop = self._loop
        if loop is None or not loop.is_running():  # no run: only threads to exclude
            with self._thread_lock:
                yield
            return
        try:
            on_loop = asyncio.get_running_loop() is loop
        except RuntimeError:
            on_loop = False
        if on_loop:
            raise StateLockError(
                "graph_state.lock_sync() would block the event loop: in async code use "
                "`async with graph_state.lock():`"
            )

        async def acquire() -> asyncio.Lock:
            lock = self.lock()
            await lock.acquire()
            return lock

        lock = asyncio.run_coroutine_threadsafe(acquire(), loop).result()
        try:
            yield
        finally:
            loop.call_soon_threadsafe(
                lock.release
            )  # asyncio locks belong to their loop

    def transaction(self) -> _Transaction:
        """Return an async context manager holding :meth:`lock` (``async with``).

        Returns:
            The context manager (also awaitable, for ``async with await ...``).

        Raises:
            StateLockError: No event loop runs in this thread (use :meth:`lock_sync`).
        """
        return _Transaction(self.lock())

    async def snapshot(self) -> Dict[str, Any]:
        """Return an independent deep copy of the whole state.

        Returns:
            Key -> value.
        """
        return json_copy(self._data)  # type: ignore[no-any-return]

    async def get_typed(self) -> Any:
        """Return the state as an instance of the schema.

        Returns:
            The schema instance.

        Raises:
            StateValidationError: The graph has no schema, or the state does not fit it.
        """
        if self.schema is None:
            raise StateValidationError("get_typed() needs a state_schema on the graph")
        return to_model(self.schema, self._data)

    async def set_from_model(self, model: Any) -> None:
        """Write every field of a schema instance into the state.

        Args:
            model: A ``MissionStateModel`` or pydantic model instance.

        Raises:
            StateValidationError: ``model`` is not a model or has invalid values.
        """
        _, data = from_model(model)
        self._write(data)

    async def clear(self) -> None:
        """Remove every key, then restore the schema defaults."""
        self.backend.clear_state()
        self._data = {}
        if self._run_writes is not None:
            self._run_writes.clear()
        self._fill_defaults(None)


def _as_dict(values: Any) -> Dict[str, Any]:
    """A copy of the ``update()`` argument, which must be a dict."""
    if not isinstance(values, dict):
        raise StateValidationError(
            f"update() needs a dict, got {type(values).__name__}"
        )
    return dict(values)


__all__ = ["GraphState"]
