"""Rough edges found against the real backend, each fixed in both clients' shared rules."""

from __future__ import annotations

import gzip
import json
from typing import Any, Dict, Iterator

import pytest
import requests
import responses

from ai_spine import (
    AISpine,
    ResponseTooLargeError,
    ServerError,
    ValidationError,
)
from tests.client.conftest import BASE, V1
from tests.client.fault_server import EXECUTE, FaultServer, execute, reply

EXEC_ID = "3f2b8c1e-8a4d-4c57-9a51-2b7c9e0d4f11"
AGENT = {
    "agent_id": "scorer",
    "name": "Scorer",
    "description": "Scores credit",
    "endpoint": "http://127.0.0.1:9/score",
    "capabilities": ["credit_analysis"],
    "agent_type": "processor",
}


@pytest.fixture
def real(server: FaultServer) -> Iterator[AISpine]:
    """A client of the fault server, without retries."""
    with AISpine(base_url=server.url, max_retries=0, timeout=5) as client:
        yield client


@pytest.mark.parametrize(
    "call, route",
    [
        (lambda c: c.get_agent("active"), "/agents/active"),
        (lambda c: c.get_agent("my-agents"), "/agents/my-agents"),
        (lambda c: c.get_flow("my-flows"), "/flows/my-flows"),
        (lambda c: c.get_flow("execute"), "/flows/execute"),
        (lambda c: c.create_agent({**AGENT, "agent_id": "active"}), "/agents/active"),
    ],
)
def test_ids_naming_fixed_routes_are_refused_before_sending(
    client: AISpine, mocked: responses.RequestsMock, call: Any, route: str
) -> None:
    # GET /api/v1/agents/active is the list of active agents, not the agent "active".
    with pytest.raises(ValidationError, match="fixed route") as info:
        call(client)
    assert f"/api/v1{route}" in str(info.value)
    assert info.value.status_code is None


def test_an_agent_named_active_can_still_be_deleted(
    client: AISpine, mocked: responses.RequestsMock
) -> None:
    mocked.delete(V1 + "/agents/active", json={"message": "deleted"})
    assert client.delete_agent("active") is True


@pytest.mark.parametrize(
    "change, words",
    [
        ({"name": None}, "name must be a string"),
        ({"description": None}, "description must be a string"),
        ({"endpoint": 3}, "endpoint must be a string"),
        ({"capabilities": "chat"}, "capabilities must be a list of strings"),
        ({"agent_type": "wizard"}, "agent_type must be one of input, processor"),
        ({"agent_type": None}, "got None"),
        ({"is_active": "yes"}, "is_active must be true or false"),
    ],
)
def test_create_agent_checks_what_the_backend_requires(
    client: AISpine, mocked: responses.RequestsMock, change: Dict[str, Any], words: str
) -> None:
    config = {k: v for k, v in {**AGENT, **change}.items() if v is not None}
    with pytest.raises(ValidationError, match=words):
        client.create_agent(config)  # nothing sent: `mocked` fails any request


def test_create_agent_names_every_missing_field_at_once(
    client: AISpine, mocked: responses.RequestsMock
) -> None:
    # The backend answered this with a bare 500 "'name'".
    with pytest.raises(ValidationError) as info:
        client.create_agent({"agent_id": "x"})
    for field in ("name", "description", "endpoint", "capabilities", "agent_type"):
        assert field in str(info.value)


def test_a_session_whose_response_hook_reads_the_body_works(
    server: FaultServer,
) -> None:
    server.plan("GET", "/health", then=reply(200, {"status": "healthy"}))
    server.plan("POST", EXECUTE, then=execute())
    seen = []
    with requests.Session() as session:
        session.hooks["response"].append(lambda r, *a, **k: seen.append(r.json()))
        with AISpine(base_url=server.url, session=session, max_retries=0) as c:
            assert c.health_check() == {"status": "healthy"}
            started = c.execute_flow("echo", {})
    assert started["execution_id"] == server.executions[0]
    assert seen[0] == {"status": "healthy"}


def test_a_batch_item_that_times_out_holds_the_last_poll(
    client: AISpine, mocked: responses.RequestsMock
) -> None:
    mocked.post(
        V1 + "/flows/execute", json={"execution_id": EXEC_ID, "status": "pending"}
    )
    mocked.get(
        f"{V1}/executions/{EXEC_ID}",
        json={"execution_id": EXEC_ID, "status": "running"},
    )
    (result,) = client.execute_batch([("slow", {})], wait_timeout=0.2, interval=0.01)
    assert result.error is not None and "not finished" in str(result.error)
    assert result.execution is not None
    assert result.execution["status"] == "running"  # not the start answer's "pending"


@pytest.mark.parametrize(
    "answer, words",
    [
        ({"status": "pending"}, "no execution_id"),
        ({"execution_id": 7, "status": "pending"}, "no execution_id"),
        ({"execution_id": EXEC_ID, "status": 3}, "status is not a string"),
        ({"execution_id": EXEC_ID}, "status is not a string"),
        ([1, 2], "expected a JSON object"),
    ],
)
def test_an_execute_answer_of_the_wrong_shape_is_a_server_error(
    client: AISpine, mocked: responses.RequestsMock, answer: Any, words: str
) -> None:
    mocked.post(V1 + "/flows/execute", json=answer)
    with pytest.raises(ServerError, match=words) as info:
        client.execute_flow("echo", {})
    assert str(info.value).startswith("POST /api/v1/flows/execute: ")


def test_shape_errors_name_the_full_path(
    client: AISpine, mocked: responses.RequestsMock
) -> None:
    mocked.get(V1 + "/flows", json={"nope": 1})
    mocked.get(V1 + "/agents", json="x")
    mocked.get(V1 + "/executions", json=3)
    with pytest.raises(ServerError, match="^GET /api/v1/flows: "):
        client.list_flows()
    with pytest.raises(ServerError, match="^GET /api/v1/agents: "):
        client.list_agents()
    with pytest.raises(ServerError, match="^GET /api/v1/executions: "):
        client.list_executions()


def test_a_body_longer_than_max_body_size_is_refused(server: FaultServer) -> None:
    big = {"status": "healthy", "pad": "x" * 5000}
    server.plan("GET", "/health", then=reply(200, big))
    server.plan("GET", "/status", then=reply(200, {"ok": True}))
    with AISpine(base_url=server.url, max_body_size=4096) as c:
        with pytest.raises(ResponseTooLargeError) as info:
            c.health_check()
        assert c.get_status() == {"ok": True}  # the client stays usable
    assert isinstance(info.value, ServerError)
    assert info.value.limit == 4096 and info.value.status_code == 200
    assert "max_body_size (4096 bytes)" in str(info.value)
    assert server.count("GET", "/health") == 1  # never retried: it would come again


def test_a_compressed_body_is_capped_at_its_unpacked_size(
    mocked: responses.RequestsMock,
) -> None:
    packed = gzip.compress(b'{"pad": "' + b"x" * 100_000 + b'"}')
    assert len(packed) < 10_000  # its Content-Length alone would pass
    mocked.get(
        BASE + "/health",
        body=packed,
        headers={"Content-Encoding": "gzip"},
        content_type="application/json",
    )
    with AISpine(base_url=BASE, max_body_size=10_000) as c:
        with pytest.raises(ResponseTooLargeError):
            c.health_check()


def test_max_body_size_is_checked(client: AISpine) -> None:
    for bad in (0, -1, 1.5, "big"):
        with pytest.raises(ValidationError, match="max_body_size"):
            AISpine(base_url=BASE, max_body_size=bad)  # type: ignore[arg-type]


def test_error_bodies_are_capped_too(server: FaultServer) -> None:
    server.plan("GET", "/health", then=reply(500, {"detail": "x" * 5000}))
    with AISpine(base_url=server.url, max_body_size=1024, max_retries=0) as c:
        with pytest.raises(ResponseTooLargeError) as info:
            c.health_check()
    assert info.value.status_code == 500
    assert json.dumps(info.value.body or "") == '""'
