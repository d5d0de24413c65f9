"""SpineApp is a plain request -> response function: no socket, no server loop."""

from __future__ import annotations

import json
from typing import Iterator, List

import pytest

from ai_spine.local import LocalSpine
from ai_spine.server import Request, SpineApp
from tests.local.flows import Hooks, make_flows


@pytest.fixture
def spine() -> Iterator[LocalSpine]:
    local = LocalSpine(make_flows(Hooks()))
    yield local
    local.close(timeout=2)


def test_the_app_answers_a_request_without_a_server(spine: LocalSpine) -> None:
    app = SpineApp(spine)
    body = json.dumps({"flow_id": "echo", "input_data": {"a": 1}}).encode()
    response = app(
        Request(
            "POST",
            "/api/v1/flows/execute",
            {"content-type": "application/json"},
            lambda: body,
        )
    )
    assert response.status == 200 and not response.close
    assert ("Content-Type", "application/json") in response.headers
    started = json.loads(response.body)
    assert spine.wait_for_execution(started["execution_id"], 10)["result"] == {"a": 1}


def test_the_body_is_read_only_after_the_key_is_checked(spine: LocalSpine) -> None:
    reads: List[int] = []

    def read() -> bytes:
        reads.append(1)
        return b"{}"

    app = SpineApp(spine, api_key="app-key-not-secret")
    response = app(Request("POST", "/api/v1/flows/execute", {}, read))
    assert response.status == 401 and reads == []
    keyed = {
        "authorization": "Bearer app-key-not-secret",
        "content-type": "application/json",
    }
    assert app(Request("POST", "/api/v1/flows/execute", keyed, read)).status == 422
    assert reads == [1]


def test_a_bug_in_a_handler_is_a_500_without_internals(
    spine: LocalSpine, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken() -> None:
        raise RuntimeError("secret internals")

    monkeypatch.setattr(spine, "get_metrics", broken)
    response = SpineApp(spine)(Request("GET", "/metrics", {}, lambda: b""))
    assert response.status == 500
    assert json.loads(response.body) == {"detail": "Internal Server Error"}
