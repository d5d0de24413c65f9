"""Fixtures for the agent and model tests."""

from __future__ import annotations

from typing import Iterator

import pytest

from tests.agents.fake_openai import FakeOpenAIServer

SECRET_KEY = "sk-test-SECRET-0123456789abcdef"


@pytest.fixture
def fake_openai() -> Iterator[FakeOpenAIServer]:
    """A running fake OpenAI-compatible server, stopped after the test."""
    with FakeOpenAIServer() as server:
        yield server


@pytest.fixture(autouse=True)
def _no_real_openai_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Never pick up a developer's real key or endpoint."""
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    monkeypatch.delenv("SPARK_MODEL", raising=False)


@pytest.fixture(autouse=True)
def _reset_tool_calls() -> Iterator[None]:
    """Each test starts with an empty record of tool calls."""
    from tests.agents.helpers import CALLS

    CALLS.clear()
    yield
    CALLS.clear()
