"""The server's edge paths, in process: bodies no route read, odd headers, limits, 500s."""

from __future__ import annotations

import http.client
import json
from typing import Any, Dict, Iterator, List, Optional, Tuple

import pytest

from ai_spine.local import LocalSpine
from ai_spine.server import SpineServer
from tests.local.flows import Hooks, make_flows

KEY = "edge-key-not-secret"


@pytest.fixture
def keyed() -> Iterator[SpineServer]:
    spine = LocalSpine(make_flows(Hooks()))
    with SpineServer(spine, api_key=KEY, max_body=4096) as srv:
        yield srv
    spine.close()


@pytest.fixture
def conn(keyed: SpineServer) -> Iterator[http.client.HTTPConnection]:
    """One keep-alive connection to ``keyed``."""
    connection = http.client.HTTPConnection(keyed.host, keyed.port, timeout=10)
    yield connection
    connection.close()


def exchange(
    conn: http.client.HTTPConnection,
    method: str,
    path: str,
    body: Optional[bytes] = None,
    headers: Optional[Dict[str, str]] = None,
) -> Tuple[int, Dict[str, str], Any]:
    conn.request(method, path, body=body, headers=headers or {})
    response = conn.getresponse()
    raw = response.read()
    return (
        response.status,
        dict(response.getheaders()),
        json.loads(raw) if raw else None,
    )


AUTH = {"Authorization": f"Bearer {KEY}"}
# A body that is itself a valid request: if the server left it in the stream, it would answer
# it as the next request on the connection.
SMUGGLED = b"GET /nope HTTP/1.1\r\nHost: localhost\r\n\r\n"


@pytest.mark.parametrize(
    "method, path, headers",
    [
        ("POST", "/api/v1/flows/execute", {}),  # 401 before the body is read
        ("POST", "/api/v1/nowhere", AUTH),  # 404 before the body is read
        ("GET", "/api/v1/flows", AUTH),  # a GET never reads its body
    ],
)
def test_a_body_no_route_read_is_not_parsed_as_the_next_request(
    conn: http.client.HTTPConnection,
    method: str,
    path: str,
    headers: Dict[str, str],
) -> None:
    sent = dict(headers, **{"Content-Type": "application/json"})
    first = exchange(conn, method, path, SMUGGLED, sent)[0]
    assert first in (200, 401, 404)
    status, _, body = exchange(conn, "GET", "/health")
    assert status == 200
    assert body["status"] == "healthy"


def test_put_and_patch_are_method_not_allowed(conn: http.client.HTTPConnection) -> None:
    for method in ("PUT", "PATCH"):
        status, _, body = exchange(conn, method, "/api/v1/flows", b"{}", AUTH)
        assert (status, body) == (405, {"detail": "Method Not Allowed"})


@pytest.mark.parametrize(
    "headers, status, detail",
    [
        ({"Transfer-Encoding": "chunked"}, 411, "Chunked bodies are not accepted"),
        ({"Content-Length": "ten"}, 400, "Invalid Content-Length header"),
        ({"Content-Length": "-1"}, 400, "Invalid Content-Length header"),
        ({"Content-Length": str(10**9)}, 413, "Request body too large"),
    ],
)
def test_unusable_body_headers_are_refused_and_close_the_connection(
    keyed: SpineServer, headers: Dict[str, str], status: int, detail: str
) -> None:
    # Raw socket: http.client would fix up or refuse these headers itself.
    import socket

    head = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    request = (
        "POST /api/v1/flows/execute HTTP/1.1\r\nHost: localhost\r\n"
        f"Authorization: Bearer {KEY}\r\nContent-Type: application/json\r\n{head}\r\n"
    ).encode()
    with socket.create_connection((keyed.host, keyed.port), timeout=10) as sock:
        sock.sendall(request)
        answer = b""
        while chunk := sock.recv(65536):  # ends only because the server closes
            answer += chunk
    top, _, body = answer.partition(b"\r\n\r\n")
    assert top.startswith(f"HTTP/1.1 {status}".encode())
    assert b"Connection: close" in top
    assert detail in json.loads(body)["detail"]


@pytest.mark.parametrize(
    "headers, status",
    [
        ({"Transfer-Encoding": "chunked"}, 411),  # refused whatever the route
        ({"Content-Length": "ten"}, 400),
        ({"Content-Length": str(10**9)}, 200),  # a GET route never reads it
    ],
)
def test_an_unread_body_that_cannot_be_skipped_closes_the_connection(
    keyed: SpineServer, headers: Dict[str, str], status: int
) -> None:
    import socket

    head = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    request = f"GET /health HTTP/1.1\r\nHost: localhost\r\n{head}\r\n".encode()
    with socket.create_connection((keyed.host, keyed.port), timeout=10) as sock:
        sock.sendall(request)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    assert answer.startswith(f"HTTP/1.1 {status}".encode())
    assert b"Connection: close" in answer


def test_errors_without_a_status_map_to_their_http_status(
    conn: http.client.HTTPConnection,
) -> None:
    url = "/api/v1/flows/execute"
    headers = dict(AUTH, **{"Content-Type": "application/json"})
    body = json.dumps({"flow_id": "echo", "input_data": {}}).encode()
    # LocalSpine's own argument checks carry no status code: a ValidationError is a 422.
    bad_key = dict(headers, **{"Idempotency-Key": "not a valid key"})
    status, _, answer = exchange(conn, "POST", url, body, bad_key)
    assert status == 422
    assert "idempotency_key" in answer["detail"]
    # An id no client could send is caught by the body check, so it is named in the list.
    odd_id = json.dumps({"flow_id": "a b", "input_data": {}}).encode()
    status, _, answer = exchange(conn, "POST", url, odd_id, headers)
    assert status == 422
    assert answer["detail"][0]["loc"] == ["body", "flow_id"]
    assert "'a b' is malformed" in answer["detail"][0]["msg"]


def test_a_bug_in_a_route_is_a_bare_500_and_logged(
    keyed: SpineServer,
    conn: http.client.HTTPConnection,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    def broken() -> Any:
        raise RuntimeError("internal detail /secret/path")

    monkeypatch.setattr(keyed.spine, "get_metrics", broken)
    with caplog.at_level("ERROR", logger="ai_spine.server"):
        status, headers, body = exchange(conn, "GET", "/metrics?x=1", None, AUTH)
    assert (status, body) == (500, {"detail": "Internal Server Error"})
    assert len(headers["X-Request-ID"]) == 32
    assert "unhandled error for GET /metrics" in caplog.text
    assert "?x=1" not in caplog.text
    assert exchange(conn, "GET", "/health")[0] == 200  # the connection still serves


def test_flow_creation_checks_its_body(conn: http.client.HTTPConnection) -> None:
    headers = dict(AUTH, **{"Content-Type": "application/json"})
    status, _, body = exchange(conn, "POST", "/api/v1/flows", b"[1]", headers)
    assert (status, body["detail"][0]["loc"]) == (422, ["body"])
    bad = {"flow_id": "x", "spec": "text", "name": 3, "description": []}
    status, _, body = exchange(
        conn, "POST", "/api/v1/flows", json.dumps(bad).encode(), headers
    )
    assert status == 422
    assert [d["loc"] for d in body["detail"]] == [
        ["body", "spec"],
        ["body", "name"],
        ["body", "description"],
    ]


def test_active_agents_lists_only_active_ones(
    keyed: SpineServer, conn: http.client.HTTPConnection
) -> None:
    for agent_id, active in (("on", True), ("off", False)):
        keyed.spine.create_agent(
            {
                "agent_id": agent_id,
                "name": agent_id,
                "endpoint": "http://127.0.0.1:9/x",
                "is_active": active,
            }
        )
    status, _, body = exchange(conn, "GET", "/api/v1/agents/active", None, AUTH)
    assert status == 200
    assert [a["agent_id"] for a in body["agents"]] == ["on"]
    assert body["count"] == 1
    status, _, body = exchange(conn, "DELETE", "/api/v1/agents/off", None, AUTH)
    assert (status, body["success"]) == (200, True)


def test_an_empty_api_key_is_refused() -> None:
    from ai_spine.exceptions import ValidationError

    with LocalSpine() as spine:
        with pytest.raises(ValidationError, match="api_key"):
            SpineServer(spine, api_key="")


def test_serve_forever_in_the_callers_thread_and_shutdown_closing_the_spine() -> None:
    import threading

    spine = LocalSpine(make_flows(Hooks()))
    srv = SpineServer(spine)
    thread = threading.Thread(target=srv.serve_forever)
    thread.start()
    try:
        conn = http.client.HTTPConnection(srv.host, srv.port, timeout=10)
        assert exchange(conn, "GET", "/health")[0] == 200
        conn.close()
    finally:
        srv.shutdown(close_spine=True)  # from another thread than the serving one
        thread.join(10)
    assert not thread.is_alive()
    assert spine.health_check()["status"] == "stopping"


def test_an_execute_that_races_shutdown_gets_503() -> None:
    # shutdown(close_spine=True) closes the spine while reads are still served; an execute
    # that got past routing meanwhile is refused by the closed spine itself.
    spine = LocalSpine(make_flows(Hooks()))
    with SpineServer(spine) as srv:
        spine.close()
        conn = http.client.HTTPConnection(srv.host, srv.port, timeout=10)
        body = json.dumps({"flow_id": "echo", "input_data": {}}).encode()
        status, _, answer = exchange(
            conn,
            "POST",
            "/api/v1/flows/execute",
            body,
            {"Content-Type": "application/json"},
        )
        conn.close()
    assert status == 503
    assert "LocalSpine is closed (shutting down)" in answer["detail"]


def test_shutdown_ends_idle_keep_alive_connections() -> None:
    import threading

    spine = LocalSpine()
    srv = SpineServer(spine).start()
    conn = http.client.HTTPConnection(srv.host, srv.port, timeout=10)
    try:
        assert exchange(conn, "GET", "/health")[0] == 200
        handlers = [t for t in threading.enumerate() if t.name == "ai-spine-conn"]
        assert len(handlers) == 1  # waiting for this connection's next request
        srv.shutdown(close_spine=True)
        assert not handlers[0].is_alive()
        assert conn.sock is not None
        assert conn.sock.recv(1) == b""  # the server closed its end
    finally:
        conn.close()


def test_shutdown_lets_a_request_being_answered_finish(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import threading

    spine = LocalSpine()
    srv = SpineServer(spine).start()
    inside, release = threading.Event(), threading.Event()
    real = spine.get_metrics

    def slow_metrics() -> Any:
        inside.set()
        release.wait(10)
        return real()

    monkeypatch.setattr(spine, "get_metrics", slow_metrics)
    answers: List[Any] = []

    def request() -> None:
        conn = http.client.HTTPConnection(srv.host, srv.port, timeout=10)
        answers.append(exchange(conn, "GET", "/metrics"))
        conn.close()

    real_close = srv._httpd.close_connections

    def close_then_release(timeout: float) -> None:
        real_close(0)  # read sides shut while the answer is still being computed
        release.set()
        real_close(timeout)

    monkeypatch.setattr(srv._httpd, "close_connections", close_then_release)
    client = threading.Thread(target=request)
    client.start()
    assert inside.wait(10)
    stopper = threading.Thread(target=srv.shutdown, kwargs={"close_spine": True})
    stopper.start()
    stopper.join(10)
    client.join(10)
    assert answers[0][0] == 200
    assert answers[0][2]["total_executions"] == 0


def test_a_client_that_stops_sending_its_body_gets_408_and_frees_the_thread() -> None:
    import socket

    spine = LocalSpine(make_flows(Hooks()))
    with SpineServer(spine, body_timeout=0.3) as srv:
        request = (
            b"POST /api/v1/flows/execute HTTP/1.1\r\nHost: localhost\r\n"
            b"Content-Type: application/json\r\nContent-Length: 100\r\n\r\n"
            b'{"flow_id": '  # ...and nothing more
        )
        with socket.create_connection((srv.host, srv.port), timeout=10) as sock:
            sock.sendall(request)
            answer = b""
            while chunk := sock.recv(65536):  # ends because the server closes
                answer += chunk
        top, _, body = answer.partition(b"\r\n\r\n")
        assert top.startswith(b"HTTP/1.1 408")
        assert b"Connection: close" in top
        assert json.loads(body) == {"detail": "Request body not received within 0.3s"}
        assert spine.list_executions() == []
    spine.close()


def test_every_bad_execute_field_is_named_in_one_422(
    conn: http.client.HTTPConnection,
) -> None:
    headers = dict(AUTH, **{"Content-Type": "application/json"})
    bad = {
        "flow_id": "  ",
        "input_data": {},
        "metadata": [1],
        "priority": 11,
        "timeout": -1,
    }
    status, _, body = exchange(
        conn, "POST", "/api/v1/flows/execute", json.dumps(bad).encode(), headers
    )
    assert status == 422
    assert [d["loc"][-1] for d in body["detail"]] == [
        "flow_id",
        "metadata",
        "priority",
        "timeout",
    ]
    status, _, body = exchange(conn, "POST", "/api/v1/flows/execute", b"[]", headers)
    assert (status, body["detail"][0]["type"]) == (422, "dict_type")


def test_agent_definitions_are_checked_field_by_field(
    conn: http.client.HTTPConnection,
) -> None:
    headers = dict(AUTH, **{"Content-Type": "application/json"})
    bad = {"agent_id": "", "endpoint": "ftp://x", "capabilities": "all"}
    status, _, body = exchange(
        conn, "POST", "/api/v1/agents", json.dumps(bad).encode(), headers
    )
    assert status == 422
    assert [d["loc"][-1] for d in body["detail"]] == [
        "agent_id",
        "name",
        "endpoint",
        "capabilities",
    ]
    status, _, body = exchange(conn, "POST", "/api/v1/agents", b"[]", headers)
    assert (status, body["detail"][0]["loc"]) == (422, ["body"])
