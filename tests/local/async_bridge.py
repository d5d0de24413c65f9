"""Run the sync contract suite over an ``AsyncSpine``: each call is awaited on a loop thread."""

from __future__ import annotations

import asyncio
import threading
from typing import Any, Callable, Coroutine

from ai_spine.protocol import AsyncSpine, Spine

#: The methods every Spine has.
METHODS = [name for name in vars(Spine) if not name.startswith("_")]


class SyncBridge:
    """A ``Spine`` whose every method awaits the same method of an ``AsyncSpine``.

    The coroutines run on one event loop in a thread of its own, as they would in an
    application, while the test calls them as plain functions.

    Args:
        make: Builds the async spine (called inside the loop, as aiohttp expects).
    """

    def __init__(self, make: Callable[[], AsyncSpine]) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="bridge-loop", daemon=True
        )
        self._thread.start()

        async def build() -> AsyncSpine:
            return make()

        self.spine = self._run(build())
        # Set on the instance: the protocol's isinstance check does not see __getattr__.
        for name in METHODS:
            setattr(self, name, self._bridged(getattr(self.spine, name)))

    def _run(self, coro: Coroutine[Any, Any, Any]) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout=60)

    def _bridged(self, method: Callable[..., Any]) -> Callable[..., Any]:
        def call(*args: Any, **kwargs: Any) -> Any:
            return self._run(method(*args, **kwargs))

        return call

    def close(self) -> None:
        """Close the async spine (when it has ``close``) and stop the loop thread."""
        closer = getattr(self.spine, "close", None)
        if closer is not None:
            self._run(closer())
        self._run(self._loop.shutdown_default_executor())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()
