"""Fixtures: the same test flows behind LocalSpine directly and behind AISpine + a server."""

from __future__ import annotations

import signal
import threading
from pathlib import Path
from typing import Dict, Iterator, cast

import pytest

from ai_spine import AISpine, AsyncAISpine
from ai_spine.local import LocalSpine
from ai_spine.protocol import AsyncSpine, Spine
from ai_spine.local_async import AsyncLocalSpine
from ai_spine.server import SpineServer
from tests.local.async_bridge import SyncBridge
from tests.local.flows import FileHooks, Hooks, make_flows
from tests.local.serve_process import ServeProcess

#: The API key of the contract suite's keyed ``ai-spine serve`` (a test value).
CONTRACT_KEY = "contract-key"


def _spine_param(request: pytest.FixtureRequest) -> str:
    callspec = getattr(request.node, "callspec", None)
    if callspec is None:
        return "local"
    return str(
        callspec.params.get("spine", callspec.params.get("async_spine", "local"))
    )


@pytest.fixture
def hooks(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Hooks]:
    """Events of the blocking test flow; released at teardown so no run lingers.

    File-backed when the test's ``spine`` is a server in another process.
    """
    in_process = _spine_param(request).startswith("local")
    h = Hooks() if in_process else FileHooks(tmp_path)
    yield h
    h.release.set()


@pytest.fixture
def local_spine(hooks: Hooks) -> Iterator[LocalSpine]:
    """A LocalSpine with the test flows."""
    spine = LocalSpine(make_flows(hooks))
    yield spine
    hooks.release.set()
    spine.close(timeout=2)


@pytest.fixture
def server(local_spine: LocalSpine) -> Iterator[SpineServer]:
    """``local_spine`` served on a free loopback port, in this process."""
    with SpineServer(local_spine) as srv:
        yield srv


@pytest.fixture(scope="module")
def served() -> Iterator[Dict[str, ServeProcess]]:
    """Real ``ai-spine serve`` processes on free loopback ports, without and with a key.

    Started once per test module (the suite stays fast) and stopped at its end.
    """
    args = ["--flows", "tests.local.flows:contract_flows", "--grace", "2"]
    processes: Dict[str, ServeProcess] = {}
    try:
        processes["http"] = ServeProcess(args)
        processes["http+auth"] = ServeProcess(args + ["--api-key", CONTRACT_KEY])
        yield processes
    finally:
        for process in processes.values():
            code, _, err = process.stop(signal.SIGTERM)
            assert code == 0, err


@pytest.fixture(
    params=[
        "local",
        "http",
        "http+auth",
        "local-async",
        "http-async",
        "http+auth-async",
    ]
)
def spine(request: pytest.FixtureRequest) -> Iterator[Spine]:
    """The contract subject: LocalSpine itself, or AISpine talking to ``ai-spine serve``.

    ``http+auth`` serves with an API key and gives the client that key. The ``-async``
    variants run the same calls through AsyncLocalSpine and AsyncAISpine, awaited on an
    event loop (``SyncBridge``).
    """
    kind, is_async = request.param.replace("-async", ""), request.param.endswith(
        "-async"
    )
    if kind == "local":
        local = request.getfixturevalue("local_spine")
        if not is_async:
            yield local
            return
        bridge = SyncBridge(lambda: AsyncLocalSpine(local))
        yield cast(Spine, bridge)
        bridge.close()
        return
    process = request.getfixturevalue("served")[kind]
    key = CONTRACT_KEY if kind == "http+auth" else None
    if is_async:
        bridge = SyncBridge(
            lambda: AsyncAISpine(
                api_key=key, base_url=process.url, max_retries=0, timeout=10
            )
        )
        yield cast(Spine, bridge)
        bridge.close()
        return
    with AISpine(
        api_key=key, base_url=process.url, max_retries=0, timeout=10
    ) as client:
        yield client


@pytest.fixture(params=["local-async", "http-async", "http+auth-async"])
def async_spine(request: pytest.FixtureRequest) -> AsyncSpine:
    """An AsyncSpine itself: AsyncLocalSpine over ``local_spine``, or AsyncAISpine talking to
    ``ai-spine serve`` (made outside any loop: it binds to the loop of its first call).
    """
    if request.param == "local-async":
        return AsyncLocalSpine(request.getfixturevalue("local_spine"))
    kind = request.param.replace("-async", "")
    process = request.getfixturevalue("served")[kind]
    key = CONTRACT_KEY if kind == "http+auth" else None
    return AsyncAISpine(api_key=key, base_url=process.url, max_retries=0, timeout=10)


@pytest.fixture(autouse=True)
def no_leaked_threads() -> Iterator[None]:
    """Every ai_spine thread a test starts (loop, server, connections, batch) ends with it.

    Process-wide threads are not counted: other libraries' pools (the engine's worker
    threads) and the client's one watchdog thread, started at its first request.
    """
    before = set(threading.enumerate())
    yield
    leaked = []
    for thread in set(threading.enumerate()) - before:
        if thread.name == "ai-spine-deadline":
            continue
        if thread.name.startswith("ai-spine") or "process_request" in thread.name:
            thread.join(5)
            if thread.is_alive():
                leaked.append(thread.name)
    assert not leaked, f"threads left running: {leaked}"
