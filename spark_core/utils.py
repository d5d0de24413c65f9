"""Helpers for running spark_core's async API from synchronous code."""

from __future__ import annotations

import asyncio
import contextvars
import threading
from typing import Any, Awaitable, Coroutine, Optional, TypeVar, Union

T = TypeVar("T")


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


__all__ = ["arun"]
