"""The HTTP server itself: routes, status codes, FastAPI-shaped errors, auth, limits, CLI."""

from __future__ import annotations

import json
import socket
import uuid
from typing import Iterator

import pytest

from ai_spine import AISpine
from ai_spine.exceptions import AuthenticationError, ExecutionError
from ai_spine.local import LocalSpine
from ai_spine.server import SpineServer, serve_main
from tests.local.flows import Hooks, make_flows
from tests.local.http_util import call
from tests.local.test_local_spine import GREET_SPEC

KEY = "test-key-not-secret"


@pytest.fixture
def keyed() -> Iterator[SpineServer]:
    spine = LocalSpine(make_flows(Hooks()))
    with SpineServer(spine, api_key=KEY) as srv:
        yield srv
    spine.close()


def test_execute_and_read_back_over_raw_http(server: SpineServer) -> None:
    status, headers, body = call(
        "POST",
        server.url + "/api/v1/flows/execute",
        json_body={"flow_id": "echo", "input_data": {"q": 1}},
    )
    assert status == 200
    assert body["status"] == "pending"
    assert headers["Content-Type"] == "application/json"
    assert len(headers["X-Request-ID"]) == 32
    server.spine.wait_for_execution(body["execution_id"], 10)
    status, _, got = call(
        "GET", f"{server.url}/api/v1/executions/{body['execution_id']}"
    )
    assert status == 200
    assert got["result"] == {"q": 1}
    status, _, results = call(
        "GET", f"{server.url}/api/v1/executions/{body['execution_id']}/results"
    )
    assert results["node_results"]["echo"]["status"] == "completed"


def test_an_unknown_flow_answers_200_with_the_zero_uuid(server: SpineServer) -> None:
    status, _, body = call(
        "POST",
        server.url + "/api/v1/flows/execute",
        json_body={"flow_id": "ghost", "input_data": {}},
    )
    assert status == 200
    assert body == {
        "execution_id": "00000000-0000-0000-0000-000000000000",
        "status": "failed",
        "result": None,
        "error": "Flow 'ghost' not found",
        "execution_time": None,
    }


def test_validation_errors_are_fastapi_shaped(server: SpineServer) -> None:
    status, _, body = call(
        "POST", server.url + "/api/v1/flows/execute", json_body={"input_data": []}
    )
    assert status == 422
    # As pydantic: a missing field's input is the object that lacks it.
    assert {
        "loc": ["body", "flow_id"],
        "msg": "Field required",
        "type": "missing",
        "input": {"input_data": []},
    } in body["detail"]
    assert any(
        d["loc"] == ["body", "input_data"] and d["input"] == [] for d in body["detail"]
    )
    status, _, body = call("GET", server.url + "/api/v1/executions/123")
    assert status == 422
    assert body["detail"][0]["loc"] == ["path", "execution_id"]
    assert body["detail"][0]["type"] == "uuid_parsing"
    assert body["detail"][0]["input"] == "123"
    assert "error" in body["detail"][0]["ctx"]
    missing = uuid.uuid4()
    status, _, body = call("GET", f"{server.url}/api/v1/executions/{missing}")
    assert (status, body) == (404, {"detail": f"Execution '{missing}' not found"})
    status, _, body = call("GET", server.url + "/api/v1/executions?limit=abc")
    assert status == 422
    assert body["detail"][0]["loc"] == ["query", "limit"]
    assert body["detail"][0]["input"] == "abc"
    status, _, body = call("GET", server.url + "/api/v1/executions?limit=0")
    assert (body["detail"][0]["input"], body["detail"][0]["ctx"]) == ("0", {"ge": 1})
    status, _, body = call("GET", server.url + "/api/v1/executions?status=odd")
    assert body["detail"][0]["ctx"]["expected"].startswith("'pending', 'running'")


def test_execute_timeout_and_priority_are_json_integers(
    server: SpineServer, hooks: Hooks
) -> None:
    url = server.url + "/api/v1/flows/execute"
    for field, value in (("timeout", 1.5), ("priority", 2.5), ("timeout", "5")):
        body = {"flow_id": "echo", "input_data": {}, field: value}
        status, _, answer = call("POST", url, json_body=body)
        assert status == 422, (field, value)
        assert answer["detail"] == [
            {
                "loc": ["body", field],
                "msg": "Input should be a valid integer",
                "type": "int_type",
                "input": value,
            }
        ]
    # 1.0 is an integer in JSON: accepted, and the run times out after 1 s.
    body = {"flow_id": "block", "input_data": {}, "timeout": 1.0, "priority": 3.0}
    status, _, started = call("POST", url, json_body=body)
    assert status == 200, started
    assert hooks.started.wait(10)
    with pytest.raises(ExecutionError, match=r"timed out after 1 s\b"):
        server.spine.wait_for_execution(started["execution_id"], 10)


def test_unknown_routes_and_methods(server: SpineServer) -> None:
    assert call("GET", server.url + "/nope")[0::2] == (404, {"detail": "Not Found"})
    assert call("DELETE", server.url + "/health")[0::2] == (
        405,
        {"detail": "Method Not Allowed"},
    )


def test_bodies_must_be_json_and_small(server: SpineServer) -> None:
    url = server.url + "/api/v1/flows/execute"
    status, _, body = call(
        "POST", url, b'{"flow_id": ', {"Content-Type": "application/json"}
    )
    assert status == 422
    assert body["detail"][0]["type"] == "json_invalid"
    status, _, body = call("POST", url, b"flow_id=echo", {"Content-Type": "text/plain"})
    assert status == 415
    assert "application/json" in body["detail"]
    big = b'{"flow_id": "echo", "input_data": {"x": "' + b"a" * (1024 * 1024) + b'"}}'
    status, headers, body = call("POST", url, big, {"Content-Type": "application/json"})
    assert status == 413
    assert "too large" in body["detail"]
    assert headers["Connection"] == "close"


def test_flows_and_agents_lists_are_wrapped_with_counts(server: SpineServer) -> None:
    status, _, body = call("GET", server.url + "/api/v1/flows")
    assert status == 200
    assert body["count"] == 4 == len(body["flows"])
    status, _, body = call("GET", server.url + "/api/v1/agents")
    assert body == {"agents": [], "count": 0}
    status, _, body = call(
        "POST",
        server.url + "/api/v1/agents",
        json_body={"agent_id": "a", "handler": "x"},
    )
    assert status == 422


def test_a_flow_can_be_created_from_a_spec(server: SpineServer) -> None:
    url = server.url + "/api/v1/flows"
    payload = {
        "flow_id": "greet",
        "name": "Greeter",
        "description": "hi",
        "spec": GREET_SPEC,
    }
    status, _, body = call("POST", url, json_body=payload)
    assert status == 201
    assert body["flow_id"] == "greet"
    assert body["name"] == "Greeter"
    assert call("POST", url, json_body=payload)[0::2] == (
        409,
        {"detail": "Flow 'greet' already exists"},
    )
    bad = dict(payload, flow_id="bad", spec={"id": "bad", "start": "x", "nodes": []})
    status, _, body = call("POST", url, json_body=bad)
    assert status == 422
    assert "at least one node" in body["detail"][0]["msg"]
    status, _, body = call("POST", url, json_body={"flow_id": "x"})
    assert status == 422
    assert body["detail"][0]["loc"] == ["body", "spec"]
    with AISpine(base_url=server.url, max_retries=0) as client:
        started = client.execute_flow("greet", {"name": "Bo"})
        done = client.wait_for_execution(started["execution_id"], 10, 0.01)
    assert (done["result"] or {})["text"] == "Hello, Bo!"
    assert call("DELETE", url + "/greet")[0] == 200
    assert call("GET", url + "/greet")[0] == 404


def test_a_spec_flow_is_updated_with_put_and_python_flows_are_not(
    server: SpineServer,
) -> None:
    url = server.url + "/api/v1/flows"
    payload = {"flow_id": "greet", "spec": GREET_SPEC}
    created = call("POST", url, json_body=payload)[2]
    hi = json.loads(json.dumps(GREET_SPEC).replace("Hello, {name}!", "Hi, {name}!"))
    status, _, updated = call("PUT", url + "/greet", json_body={"spec": hi})
    assert status == 200, updated
    assert updated["flow_id"] == "greet"
    assert updated["created_at"] == created["created_at"]
    assert updated["updated_at"] >= created["updated_at"]
    done = server.spine.wait_for_execution(
        server.spine.execute_flow("greet", {"name": "Bo"})["execution_id"], 10
    )
    assert done["result"]["text"] == "Hi, Bo!"
    broken = {"spec": {"id": "greet", "start": "x", "nodes": []}}
    status, _, body = call("PUT", url + "/greet", json_body=broken)
    assert status == 422 and "at least one node" in body["detail"][0]["msg"]
    assert server.spine.get_flow("greet")["nodes"] == updated["nodes"]  # unchanged
    status, _, body = call(
        "PUT", url + "/greet", json_body={"flow_id": "other", "spec": hi}
    )
    assert (status, body["detail"][0]["loc"]) == (422, ["body", "flow_id"])
    status, _, body = call("PUT", url + "/echo", json_body={"spec": hi})
    assert status == 409 and "defined in Python" in body["detail"]
    status, _, body = call("PUT", url + "/ghost", json_body={"spec": hi})
    assert (status, body) == (404, {"detail": "Flow 'ghost' not found"})


def test_my_flows_and_my_agents_are_every_local_one(server: SpineServer) -> None:
    """Fixed paths are not read as ids ("Flow 'my-flows' not found")."""
    flows = call("GET", server.url + "/api/v1/flows")[2]
    assert call("GET", server.url + "/api/v1/flows/my-flows")[0::2] == (200, flows)
    server.spine.create_agent(
        {"agent_id": "mine", "name": "Mine", "endpoint": "http://127.0.0.1:9/x"}
    )
    status, _, agents = call("GET", server.url + "/api/v1/agents/my-agents")
    assert status == 200
    assert [a["agent_id"] for a in agents["agents"]] == ["mine"]
    assert agents["count"] == 1


def test_users_me_is_the_local_user_in_the_backend_shape(
    server: SpineServer,
) -> None:
    status, _, user = call("GET", server.url + "/api/v1/users/me")
    assert status == 200
    # UserInfo's required fields in the backend's OpenAPI description.
    assert set(user) == {"id", "email", "name", "organization", "credits", "rate_limit"}
    assert isinstance(user["credits"], int) and isinstance(user["rate_limit"], int)


def test_execution_messages_are_its_node_outcomes(server: SpineServer) -> None:
    spine = server.spine
    done = spine.wait_for_execution(
        spine.execute_flow("shout", {"text": "a"})["execution_id"], 10
    )
    base = f"{server.url}/api/v1/executions/{done['execution_id']}/messages"
    status, _, body = call("GET", base)
    assert status == 200
    assert [m["node_id"] for m in body["messages"]] == ["upper", "exclaim"]
    assert {m["status"] for m in body["messages"]} == {"completed"}
    assert (body["count"], body["total"], body["limit"]) == (2, 2, 100)
    page = call("GET", base + "?limit=1&offset=1")[2]
    assert [m["node_id"] for m in page["messages"]] == ["exclaim"]
    assert call("GET", base + "?limit=0")[0] == 422
    pending = spine.execute_flow("block", {})["execution_id"]
    listed = call("GET", f"{server.url}/api/v1/executions/{pending}/messages")[2]
    assert listed["messages"] == []  # nothing ran to the end yet
    assert call("GET", f"{server.url}/api/v1/executions/nope/messages")[0] == 422
    unknown = f"{server.url}/api/v1/executions/{uuid.uuid4()}/messages"
    assert call("GET", unknown)[0] == 404


def test_both_paged_routes_refuse_a_bad_page_alike(server: SpineServer) -> None:
    done = server.spine.wait_for_execution(
        server.spine.execute_flow("echo", {})["execution_id"], 10
    )
    details = []
    for route in (
        "/api/v1/executions",
        f"/api/v1/executions/{done['execution_id']}/messages",
    ):
        status, _, body = call("GET", f"{server.url}{route}?limit=0&offset=-1")
        assert status == 422
        details.append(body["detail"])
    assert details[0] == details[1]
    assert [d["loc"] for d in details[0]] == [["query", "limit"], ["query", "offset"]]


def test_head_and_options_answer_405_as_fastapi_does(server: SpineServer) -> None:
    status, headers, body = call("HEAD", server.url + "/health")
    assert (status, headers["Allow"], body) == (405, "GET", None)  # HEAD: no body
    status, headers, body = call("OPTIONS", server.url + "/health")
    assert (status, headers["Allow"]) == (405, "GET")
    assert body == {"detail": "Method Not Allowed"}
    assert call("HEAD", server.url + "/nope")[0::2] == (404, None)


def test_idempotency_key_header_returns_the_same_execution(server: SpineServer) -> None:
    url = server.url + "/api/v1/flows/execute"
    payload = {"flow_id": "echo", "input_data": {"n": 1}}
    headers = {"Idempotency-Key": "abc-123"}
    first = call("POST", url, headers=headers, json_body=payload)[2]
    second = call("POST", url, headers=headers, json_body=payload)[2]
    assert first["execution_id"] == second["execution_id"]
    assert len(server.spine.list_executions()) == 1


def test_auth_requires_the_bearer_key_except_for_health(keyed: SpineServer) -> None:
    url = keyed.url + "/api/v1/flows"
    status, headers, body = call("GET", url)
    assert (status, body) == (401, {"detail": "Missing API key"})
    assert headers["WWW-Authenticate"] == "Bearer"
    status, _, body = call("GET", url, headers={"Authorization": "Bearer wrong"})
    assert (status, body) == (401, {"detail": "Invalid API key"})
    status, _, body = call("GET", url, headers={"Authorization": f"Basic {KEY}"})
    assert status == 401
    assert call("GET", url, headers={"Authorization": f"Bearer {KEY}"})[0] == 200
    assert call("GET", keyed.url + "/health")[0] == 200
    assert call("GET", keyed.url + "/metrics")[0] == 401


def test_the_client_gets_authentication_errors_without_leaking_the_key(
    keyed: SpineServer,
) -> None:
    with AISpine(base_url=keyed.url, api_key="wrong-key", max_retries=0) as client:
        with pytest.raises(AuthenticationError) as info:
            client.list_flows()
    assert "Invalid API key" in str(info.value)
    assert "wrong-key" not in str(info.value) + repr(info.value)
    with AISpine(base_url=keyed.url, api_key=KEY, max_retries=0) as client:
        assert len(client.list_flows()) == 4


def test_keep_alive_serves_many_requests_on_one_connection(server: SpineServer) -> None:
    with AISpine(base_url=server.url, max_retries=0) as client:
        for _ in range(20):
            assert client.health_check()["status"] == "healthy"


def test_serve_main_rejects_bad_arguments_with_one_line(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert serve_main(["--port", "99999"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--port" in err
    assert serve_main(["--bogus"]) == 2
    assert capsys.readouterr().err.startswith("ai-spine serve: error: unrecognized")
    assert serve_main(["--flows", "no_such_module_xyz:flows"]) == 2
    assert "cannot import" in capsys.readouterr().err
    assert serve_main(["--flows", "tests.local.flows:Hooks"]) == 2
    assert "expected a LocalSpine or a dict" in capsys.readouterr().err


def test_serve_main_reports_a_port_in_use(capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        assert serve_main(["--port", str(port)]) == 2
    err = capsys.readouterr().err
    assert "cannot listen on 127.0.0.1" in err and "Traceback" not in err


def test_malformed_requests_get_json_errors(server: SpineServer) -> None:
    with socket.create_connection((server.host, server.port), timeout=10) as sock:
        sock.sendall(b"BREW /pot HTTP/1.1\r\nHost: localhost\r\n\r\n")
        answer = b""
        while chunk := sock.recv(4096):
            answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 501")
    assert b"Content-Type: application/json" in head
    assert json.loads(body) == {"detail": "Unsupported method ('BREW')"}
