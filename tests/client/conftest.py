"""Fixtures for the HTTP client tests: a mocked backend, pinned sleeps, a fault server."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Dict, Iterator, List

import pytest
import responses

from ai_spine import AISpine, api
from tests.client.fault_server import FaultServer

BASE = "https://api.test"
V1 = BASE + "/api/v1"
FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "responses.json"


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests never pick up a developer's real key or URL."""
    monkeypatch.delenv("AI_SPINE_API_KEY", raising=False)
    monkeypatch.delenv("AI_SPINE_BASE_URL", raising=False)


@pytest.fixture
def payloads() -> Dict[str, Any]:
    """The backend answers stored in tests/fixtures/responses.json."""
    data: Dict[str, Any] = json.loads(FIXTURES.read_text())
    return data


@pytest.fixture
def sleeps(monkeypatch: pytest.MonkeyPatch) -> List[float]:
    """Record the waits between retries instead of sleeping."""
    recorded: List[float] = []
    monkeypatch.setattr(api, "_sleep", recorded.append)
    return recorded


@pytest.fixture
def mocked() -> Iterator[responses.RequestsMock]:
    """A `responses` mock that fails the test on any unplanned request."""
    with responses.RequestsMock(assert_all_requests_are_fired=True) as mock:
        yield mock


@pytest.fixture
def client(sleeps: List[float]) -> Iterator[AISpine]:
    """A client for the mocked backend, with no real waits between retries."""
    with AISpine(base_url=BASE) as spine:
        yield spine


@pytest.fixture
def server() -> Iterator[FaultServer]:
    """A fault-injection server on 127.0.0.1, stopped after the test."""
    with FaultServer() as fault_server:
        yield fault_server
