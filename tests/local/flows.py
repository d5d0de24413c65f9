"""Flows the local tests run, and the threading hooks that let tests see inside them."""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path
from typing import Any, Callable, Dict, Optional, Union

from spark_core.graphs import Graph
from spark_core.nodes import ExecutionContext, Node


class Hooks:
    """Events a blocking flow sets, so tests synchronise without sleeping."""

    def __init__(self) -> None:
        self.started: Any = threading.Event()
        self.cancelled: Any = threading.Event()
        self.release: Any = threading.Event()

    @property
    def input(self) -> Dict[str, Any]:
        """The ``input_data`` that makes the ``block`` flow use these hooks."""
        return {}


class FileEvent:
    """A ``threading.Event`` look-alike shared between processes: set = the file exists."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def set(self) -> None:
        """Set the event."""
        self.path.touch()

    def is_set(self) -> bool:
        """Whether it is set."""
        return self.path.exists()

    def wait(self, timeout: Optional[float] = None) -> bool:
        """Wait until it is set (or ``timeout`` passed); True when set."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self.is_set():
            if deadline is not None and time.monotonic() >= deadline:
                return False
            time.sleep(0.005)
        return True


class FileHooks(Hooks):
    """Hooks a ``block`` run in another process (``ai-spine serve``) uses via files.

    Args:
        directory: Where the event files live (one directory per test).
    """

    def __init__(self, directory: Union[str, Path]) -> None:
        self.directory = Path(directory)
        self.started = FileEvent(self.directory / "started")
        self.cancelled = FileEvent(self.directory / "cancelled")
        self.release = FileEvent(self.directory / "release")

    @property
    def input(self) -> Dict[str, Any]:
        """The ``input_data`` that makes the ``block`` flow use these hooks."""
        return {"hooks_dir": str(self.directory)}


class Echo(Node):
    """Returns its input."""

    async def process(self, context: ExecutionContext) -> Any:
        return dict(context.inputs.content)


class Upper(Node):
    """Upper-cases ``text``."""

    async def process(self, context: ExecutionContext) -> Any:
        return {"text": str(context.inputs.content["text"]).upper()}


class Exclaim(Node):
    """Appends ``!`` to ``text``."""

    def process(self, context: ExecutionContext) -> Any:  # a plain def runs in a thread
        return {"text": context.inputs.content["text"] + "!"}


class Fail(Node):
    """Always fails with a clear message."""

    async def process(self, context: ExecutionContext) -> Any:
        raise ValueError("boom: this flow always fails")


class Block(Node):
    """Signals ``started``, then waits for ``release`` (records cancellation)."""

    def __init__(self, hooks: Hooks) -> None:
        super().__init__("block")
        self.hooks = hooks

    async def process(self, context: ExecutionContext) -> Any:
        content = context.inputs.content
        hooks = self.hooks
        if isinstance(content, dict) and "hooks_dir" in content:
            hooks = FileHooks(content["hooks_dir"])  # the test runs in another process
        hooks.started.set()
        try:
            while not hooks.release.is_set():
                await asyncio.sleep(0.005)
        except asyncio.CancelledError:
            hooks.cancelled.set()
            raise
        return {"released": True}


def make_flows(hooks: Hooks) -> Dict[str, Callable[[], Graph]]:
    """Return the test flows: echo, shout (two nodes), fail, block."""

    def shout() -> Graph:
        first = Upper("upper")
        first >> Exclaim("exclaim")
        return Graph(first)

    return {
        "echo": lambda: Graph(Echo("echo")),
        "shout": shout,
        "fail": lambda: Graph(Fail("fail")),
        "block": lambda: Graph(Block(hooks)),
    }


class Sleep(Node):
    """Sleeps ``seconds`` (for shutdown tests across processes)."""

    async def process(self, context: ExecutionContext) -> Any:
        await asyncio.sleep(float(context.inputs.content["seconds"]))
        return {"slept": context.inputs.content["seconds"]}


def served_flows() -> Dict[str, Callable[[], Graph]]:
    """What ``ai-spine serve --flows tests.local.flows:served_flows`` serves."""
    flows = {
        name: make for name, make in make_flows(Hooks()).items() if name != "block"
    }
    flows["sleep"] = lambda: Graph(Sleep("sleep"))
    return flows


def contract_flows() -> Dict[str, Callable[[], Graph]]:
    """What the contract suite's ``ai-spine serve`` serves: the ``make_flows`` set.

    Its ``block`` runs are driven through :class:`FileHooks` (``input_data.hooks_dir``).
    """
    return make_flows(Hooks())


def served_spine() -> Any:
    """What ``--flows tests.local.flows:served_spine`` gives: a ready LocalSpine."""
    from ai_spine.local import LocalSpine

    return LocalSpine({"echo": make_flows(Hooks())["echo"]})


def count_chars(query: str) -> Dict[str, Any]:
    """A tool spec flows reference as ``tests.local.flows:count_chars``."""
    return {"chars": len(query)}
