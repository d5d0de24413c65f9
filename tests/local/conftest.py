"""Fixtures: the same test flows behind LocalSpine directly and behind AISpine + a server."""

from __future__ import annotations

import threading
from typing import Iterator

import pytest

from ai_spine import AISpine
from ai_spine.local import LocalSpine
from ai_spine.protocol import Spine
from ai_spine.server import SpineServer
from tests.local.flows import Hooks, make_flows


@pytest.fixture
def hooks() -> Iterator[Hooks]:
    """Events of the blocking test flow; released at teardown so no run lingers."""
    h = Hooks()
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
    """``local_spine`` served on a free loopback port."""
    with SpineServer(local_spine) as srv:
        yield srv


@pytest.fixture(params=["local", "http", "http+auth"])
def spine(request: pytest.FixtureRequest, local_spine: LocalSpine) -> Iterator[Spine]:
    """The contract subject: LocalSpine itself, or AISpine talking to it over HTTP.

    ``http+auth`` serves with an API key and gives the client that key.
    """
    if request.param == "local":
        yield local_spine
        return
    key = "contract-key" if request.param == "http+auth" else None
    with SpineServer(local_spine, api_key=key) as srv:
        with AISpine(
            api_key=key, base_url=srv.url, max_retries=0, timeout=10
        ) as client:
            yield client


@pytest.fixture(autouse=True)
def no_leaked_threads() -> Iterator[None]:
    """Every ai_spine thread a test starts (loop, server, connections, batch) ends with it.

    Process-wide pools of other libraries (the engine's worker threads) are not counted.
    """
    before = set(threading.enumerate())
    yield
    leaked = []
    for thread in set(threading.enumerate()) - before:
        if thread.name.startswith("ai-spine") or "process_request" in thread.name:
            thread.join(5)
            if thread.is_alive():
                leaked.append(thread.name)
    assert not leaked, f"threads left running: {leaked}"
