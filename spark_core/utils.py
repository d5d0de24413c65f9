"""Small helpers: running spark_core's async API from synchronous code, a lock per event
loop, copying JSON data."""

from __future__ import annotations

import asyncio
import contextvars
import math
import threading
from typing import Any, Awaitable, Coroutine, Optional, Tuple, TypeVar, Union

T = TypeVar("T")
# Types of JSON values that are immutable: a value of one of these is its own copy.
PLAIN_JSON = frozenset((str, int, bool, type(None)))


def _running_loop() -> Optional[asyncio.AbstractEventLoop]:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


async def _await(awaitable: Awaitable[T]) -> T:
    return await awaitable


def arun(awaitable: Union[Awaitable[T], Coroutine[Any, Any, T]]) -> T:
    """Run an awaitable to completion from synchronous code and return its result.

    Works in a plain script (a fresh event loop) and also where an event loop is already
    running, such as a Jupyter notebook cell: there the awaitable runs on a fresh loop in a
    helper thread while the caller waits, so the notebook's loop is never re-entered.

    Args:
        awaitable: A coroutine or other awaitable.

    Returns:
        Whatever the awaitable returns.

    Raises:
        Exception: Whatever the awaitable raises, unchanged.
    """
    coro = awaitable if asyncio.iscoroutine(awaitable) else _await(awaitable)
    if _running_loop() is None:
        return asyncio.run(coro)
    box: dict[str, Any] = {}
    ctx = contextvars.copy_context()

    def target() -> None:
        try:
            box["value"] = ctx.run(asyncio.run, coro)
        except BaseException as exc:  # re-raised in the caller's thread
            box["error"] = exc

    thread = threading.Thread(target=target, name="spark-arun", daemon=True)
    thread.start()
    thread.join()
    if "error" in box:
        raise box["error"]
    return box["value"]  # type: ignore[no-any-return]


class LoopLock:
    """An ``asyncio.Lock`` per running event loop, for an object that outlives its loops.

    An asyncio lock belongs to the loop it is first used on, and an object may see several
    loops in its life (each ``run_sync`` / ``arun`` call starts a fresh one): ``current()``
    gives the lock of the loop running now, made on first use in that loop (a new loop
    replaces the previous loop's lock).
    """

    __slots__ = ("_held",)

    def __init__(self) -> None:
        """Create the holder; no lock is made before :meth:`current` is called."""
        self._held: Optional[Tuple[asyncio.AbstractEventLoop, asyncio.Lock]] = None

    def current(self) -> asyncio.Lock:
        """Return the lock of the event loop running in this thread.

        Returns:
            The lock (the same one for every call in that loop).

        Raises:
            RuntimeError: No event loop runs in this thread.
        """
        loop = asyncio.get_running_loop()
        held = self._held
        if held is None or held[0] is not loop:
            held = self._held = (loop, asyncio.Lock())
        return held[1]


def json_copy(value: Any) -> Any:
    """Return what ``json.loads(json.dumps(value, allow_nan=False))`` returns, in one pass.

    A deep copy in JSON types: tuples become lists, dict keys strings (``1`` -> ``"1"``,
    ``True`` -> ``"true"``, ``None`` -> ``"null"``), subclasses of ``str``/``int``/``float``/
    ``dict``/``list`` their base type. About twice as fast as the round trip through text.

    Args:
        value: The value.

    Returns:
        The copy.

    Raises:
        TypeError: Something in ``value`` is not a JSON type (or a dict key is not one of
            ``str``, ``int``, ``float``, ``bool``, ``None``).
        ValueError: A float is NaN or infinite.
        RecursionError: ``value`` contains itself (or is nested too deeply).
    """
    kind = type(value)
    if kind is dict:
        return {
            key if type(key) is str else _json_key(key): (
                item if type(item) in PLAIN_JSON else json_copy(item)
            )
            for key, item in value.items()
        }
    if kind is list or kind is tuple:
        return [item if type(item) in PLAIN_JSON else json_copy(item) for item in value]
    if kind in PLAIN_JSON:
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"{value!r} is not a JSON number")
        return float.__float__(value)
    if isinstance(value, str):
        return str.__str__(value)
    if isinstance(value, int):  # bool is final: an int subclass here is an int
        return int.__int__(value)
    if isinstance(value, dict):
        return json_copy(dict(value.items()))
    if isinstance(value, (list, tuple)):
        return json_copy(list(value))
    raise TypeError(f"{kind.__name__} is not a JSON type")


def _json_key(key: Any) -> str:
    """A dict key as JSON writes it."""
    if isinstance(key, str):
        return str.__str__(key)
    if key is None:
        return "null"
    if key is True or key is False:
        return "true" if key else "false"
    if isinstance(key, float):
        if not math.isfinite(key):
            raise ValueError(f"{key!r} is not a JSON number")
        return float.__repr__(key)
    if isinstance(key, int):
        return int.__repr__(key)
    raise TypeError(
        f"dict keys must be str, int, float, bool or None, not {type(key).__name__}"
    )


__all__ = ["arun", "LoopLock", "json_copy"]
