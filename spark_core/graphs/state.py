"""``GraphState``: the state a graph's nodes share, kept across the graph's runs."""

from __future__ import annotations

import asyncio
import json
from typing import Any, Dict, Optional, Set, Tuple

from spark_core.errors import StateValidationError
from spark_core.graphs.backends import DELETED, InMemoryStateBackend, StateBackend
from spark_core.graphs.state_schema import (
    check_schema,
    from_model,
    schema_defaults,
    to_model,
    validate_values,
)


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


class GraphState:
    """Shared, JSON-valued state of a graph; it persists across runs until reset.

    Values must be JSON-serialisable. Keys starting with ``_spark_`` are reserved for the
    library (approvals, audit trail) and are never checked against the schema. With a schema,
    every write of a declared field is type-checked and missing fields start at their defaults.

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
        self._dirty: Optional[Set[str]] = None
        self._lock: Optional[Tuple[Any, asyncio.Lock]] = None
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
            self._check(missing)
            self._data.update(missing)
            self.backend.save_state_keys(missing)

    def _check(self, values: Dict[str, Any]) -> None:
        for key, value in values.items():
            if not isinstance(key, str):
                raise StateValidationError(f"state keys must be strings, got {key!r}")
            try:
                json.dumps(value, allow_nan=False)
            except (TypeError, ValueError) as exc:
                raise StateValidationError(
                    f"state key {key!r}: value is not JSON-serialisable ({exc})"
                ) from None
        validate_values(self.schema, self._data, values)

    def _write(self, values: Dict[str, Any]) -> None:
        self._check(values)
        self._data.update(values)
        if self._dirty is not None:
            self._dirty.update(values)
        else:
            self.backend.save_state_keys(values)

    # Buffering, used by the graph: during a durable run, writes are committed together with
    # the step that made them.
    def _begin_buffering(self) -> None:
        if self._dirty is None:
            self._dirty = set()

    def _take_changes(self) -> Optional[Dict[str, Any]]:
        if not self._dirty:
            return None
        changes = {key: self._data.get(key, DELETED) for key in self._dirty}
        self._dirty = set()
        return changes

    def _end_buffering(self) -> None:
        changes = self._take_changes()
        self._dirty = None
        if changes:
            self.backend.save_state_keys(changes)

    def _reload(self) -> None:
        self._data = self.backend.load_state()

    async def get(self, key: str, default: Any = None) -> Any:
        """Return the value of ``key``, or ``default``.

        Args:
            key: The key.
            default: Returned when the key is not set.
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
        self._data.pop(key, None)
        if self._dirty is not None:
            self._dirty.add(key)  # committed with the step, like a write
        else:
            self.backend.delete_state_keys([key])

    # Synchronous access for plain ``def`` nodes, which run in worker threads.
    def get_sync(self, key: str, default: Any = None) -> Any:
        """Synchronous :meth:`get`, usable from a plain ``def`` node.

        Args:
            key: The key.
            default: Returned when the key is not set.
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
        loop = self._loop
        if loop is not None and loop.is_running():
            try:
                in_loop = asyncio.get_running_loop() is loop
            except RuntimeError:
                in_loop = False
            if not in_loop:
                asyncio.run_coroutine_threadsafe(self.update(values), loop).result()
                return
        self._write(values)

    def lock(self) -> asyncio.Lock:
        """Return the lock that guards read-modify-write sequences.

        Use ``async with graph_state.lock(): ...`` around a get followed by a set.
        """
        loop = asyncio.get_running_loop()
        if self._lock is None or self._lock[0] is not loop:
            self._lock = (loop, asyncio.Lock())
        return self._lock[1]

    def transaction(self) -> _Transaction:
        """Return an async context manager holding :meth:`lock` (``async with``)."""
        return _Transaction(self.lock())

    async def snapshot(self) -> Dict[str, Any]:
        """Return an independent deep copy of the whole state."""
        return json.loads(json.dumps(self._data))  # type: ignore[no-any-return]

    async def get_typed(self) -> Any:
        """Return the state as an instance of the schema.

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
        if self._dirty is not None:
            self._dirty = set()
        self._fill_defaults(None)


def _as_dict(values: Any) -> Dict[str, Any]:
    """A copy of the ``update()`` argument, which must be a dict."""
    if not isinstance(values, dict):
        raise StateValidationError(
            f"update() needs a dict, got {type(values).__name__}"
        )
    return dict(values)


__all__ = ["GraphState"]
