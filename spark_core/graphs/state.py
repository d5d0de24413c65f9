"""``GraphState``: the state a graph's nodes share, kept across the graph's runs."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from typing import Any, Dict, Iterator, Optional

from spark_core.errors import StateLockError, StateValidationError
from spark_core.graphs.backends import DELETED, InMemoryStateBackend, StateBackend
from spark_core.graphs.state_schema import (
    check_schema,
    from_model,
    schema_defaults,
    to_model,
    validate_values,
)
from spark_core.graphs.transaction import RunWrites, WriteEntry
from spark_core.nodes.context import CURRENT_STEP
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


_CURRENT: Any = object()  # _write's default: the log of the step running here


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
    the next step whatever happens to the node. (How: :mod:`spark_core.graphs.transaction`.)

    Attributes:
        backend: Where the state is stored.
        schema: The state schema class, or ``None``.
        run_writes: The ledger of the run in progress (``None`` between runs).
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
        # While a run is in progress: the ledger of its writes (see graphs.transaction).
        self.run_writes: Optional[RunWrites] = None
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

    def _write(self, values: Dict[str, Any], log: Any = _CURRENT) -> None:
        values = self._check(values)
        self._apply(values, self._step_log() if log is _CURRENT else log)

    def _step_log(self) -> Optional[Dict[str, WriteEntry]]:
        """The write log of this state's node step running in this context, if any."""
        step = CURRENT_STEP.get()
        while step is not None:
            if step.ledger.state is self:
                return step.log
            step = step.outer
        return None

    def _apply(
        self, values: Dict[str, Any], log: Optional[Dict[str, WriteEntry]]
    ) -> None:
        """Write validated values (``DELETED`` removes a key) into the state."""
        ledger = self.run_writes
        if ledger is not None:  # a run is in progress: its ledger keeps the write
            ledger.record(values, log)
            return
        for key, value in values.items():
            if value is DELETED:
                self._data.pop(key, None)
            else:
                self._data[key] = value
        self.backend.save_state_keys(values)

    # ------------------------------------------------------ used by the engine
    def begin_run(self) -> RunWrites:
        """Start recording a run's writes (the scheduler calls this when a run starts).

        Returns:
            The run's ledger (``StepTransaction(ledger)`` begins a node's step).
        """
        self.run_writes = RunWrites(self, self._data)
        self._loop = asyncio.get_running_loop()  # for *_sync writes from worker threads
        return self.run_writes

    def end_run(self) -> None:
        """Store the run-level writes and drop what no completed step kept (run's end)."""
        ledger, self.run_writes = self.run_writes, None
        if ledger is not None:
            ledger.close(self.backend)

    def reload(self) -> None:
        """Read the whole state again from the backend (another process may have run)."""
        stored = self.backend.load_state()
        self._data.clear()
        self._data.update(stored)

    def settled(self) -> Dict[str, Any]:
        """The state without the writes of nodes still running (for checkpoints).

        Returns:
            Key -> value (the live mapping when no run is in progress).
        """
        ledger = self.run_writes
        return self._data if ledger is None else ledger.settled(self.backend)

    def restore(self, values: Dict[str, Any]) -> None:
        """Replace the whole state with ``values`` in one backend transaction.

        Args:
            values: Key -> value (validated first: nothing changes when one is bad).

        Raises:
            StateValidationError: A value is invalid.
        """
        new_state = self._check(dict(values))
        # One transaction: a crash leaves the old state or the new one, never none.
        changes = {
            key: DELETED for key in self.backend.load_state() if key not in new_state
        }
        changes.update(new_state)
        self.backend.save_state_keys(changes)
        self.reload()

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
        self._apply({key: DELETED}, self._step_log())  # kept like a write

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
        log = self._step_log()  # the calling node's (copied into its worker thread)
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
        self._data.clear()
        if self.run_writes is not None:
            self.run_writes.outside.clear()
        self._fill_defaults(None)


def _as_dict(values: Any) -> Dict[str, Any]:
    """A copy of the ``update()`` argument, which must be a dict."""
    if not isinstance(values, dict):
        raise StateValidationError(
            f"update() needs a dict, got {type(values).__name__}"
        )
    return dict(values)


__all__ = ["GraphState"]
