"""``ai-spine serve`` against hostile clients: framing, slow and idle connections, limits.

Real servers on 127.0.0.1, raw sockets where a well-behaved client could not send the
request. Each test is one defect of issue 14 and failed before it was fixed.
"""

from __future__ import annotations

import json
import socket
from pathlib import Path
from typing import Callable, Iterator, List, Optional, Tuple

import pytest

from ai_spine.local import JournalError, LocalSpine, SQLiteJournal
from ai_spine.local.records import ExecutionRecord
from ai_spine.server import SpineServer
from tests.local.flows import Hooks, make_flows

# A body that is itself a request: a server that left it in the stream would answer it too.
SMUGGLED = b"GET /api/v1/flows HTTP/1.1\r\nHost: localhost\r\n\r\n"


@pytest.fixture
def spine() -> Iterator[LocalSpine]:
    local = LocalSpine(make_flows(Hooks()))
    yield local
    local.close(timeout=2)


def exchange(srv: SpineServer, data: bytes) -> List[Tuple[int, bytes]]:
    """Send ``data``, close the sending side, and return every (status, head) answered."""
    with socket.create_connection((srv.host, srv.port), timeout=10) as sock:
        sock.sendall(data)
        sock.shutdown(socket.SHUT_WR)
        received = b""
        while chunk := sock.recv(65536):
            received += chunk
    answers = []
    for part in received.split(b"HTTP/1.1 ")[1:]:
        answers.append((int(part[:3]), part.partition(b"\r\n\r\n")[0]))
    return answers


def read_until_closed(sock: socket.socket) -> bytes:
    received = b""
    while chunk := sock.recv(65536):
        received += chunk
    return received


# ---------------------------------------------------------------- 3. request desync
@pytest.mark.parametrize(
    "framing",
    [
        b"Transfer-Encoding: gzip, chunked\r\n",
        b"Transfer-Encoding: Chunked \r\n",
        b"Transfer-Encoding: x\r\n",
        b"Transfer-Encoding: chunked\r\nTransfer-Encoding: identity\r\n",
        b"Content-Length: 2\r\nContent-Length: 2\r\n",
        b"Content-Length: 2\r\nContent-Length: 40\r\n",
        b"Content-Length: +2\r\n",
        b"Content-Length : 2\r\n",
    ],
)
def test_ambiguous_body_framing_is_refused_and_the_connection_closed(
    spine: LocalSpine, framing: bytes
) -> None:
    body = b"{}" + SMUGGLED
    request = (
        b"POST /api/v1/flows/execute HTTP/1.1\r\nHost: localhost\r\n"
        b"Content-Type: application/json\r\n" + framing + b"\r\n" + body
    )
    with SpineServer(spine) as srv:
        answers = exchange(srv, request)
    assert [status for status, _ in answers] == [400]  # one answer: nothing smuggled
    assert b"Connection: close" in answers[0][1]


def test_exactly_chunked_is_still_411_and_closes(spine: LocalSpine) -> None:
    request = (
        b"POST /api/v1/flows/execute HTTP/1.1\r\nHost: localhost\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n" + SMUGGLED
    )
    with SpineServer(spine) as srv:
        assert [status for status, _ in exchange(srv, request)] == [411]


# ---------------------------------------------------------------- 2. slow, idle, too many
def test_a_connection_that_never_finishes_its_headers_is_answered_408_and_closed(
    spine: LocalSpine,
) -> None:
    with SpineServer(spine, header_timeout=0.2) as srv:
        with socket.create_connection((srv.host, srv.port), timeout=10) as sock:
            sock.sendall(b"GET /health HTTP/1.1\r\nHost: localhost\r\n")  # no end
            answer = read_until_closed(sock)
        assert answer.startswith(b"HTTP/1.1 408")
        assert srv.open_connections == 0 or _eventually_no_connections(srv)


def test_headers_trickled_a_byte_at_a_time_still_meet_the_header_deadline(
    spine: LocalSpine,
) -> None:
    # A per-read timeout would be reset by every byte; the deadline covers them all.
    import time

    with SpineServer(spine, header_timeout=0.3) as srv:
        with socket.create_connection((srv.host, srv.port), timeout=10) as sock:
            sent = 0
            try:
                for byte in b"GET /health HTTP/1.1\r\n" + b"X-Pad: a\r\n" * 1000:
                    sock.send(bytes([byte]))
                    sent += 1
                    time.sleep(0.01)
            except OSError:  # the server closed while we were still sending
                pass
            answer = read_until_closed(sock)
    assert answer.startswith(b"HTTP/1.1 408")
    assert sent < 5000


def test_an_idle_keep_alive_connection_is_closed_after_the_idle_timeout(
    spine: LocalSpine,
) -> None:
    with SpineServer(spine, idle_timeout=0.2) as srv:
        with socket.create_connection((srv.host, srv.port), timeout=10) as sock:
            sock.sendall(b"GET /health HTTP/1.1\r\nHost: localhost\r\n\r\n")
            answer = read_until_closed(sock)  # one answer, then the server closes
    assert answer.startswith(b"HTTP/1.1 200")
    assert answer.count(b"HTTP/1.1 ") == 1


def test_connections_past_the_cap_get_503_and_are_closed(spine: LocalSpine) -> None:
    with SpineServer(spine, max_connections=2, header_timeout=30) as srv:
        held = [
            socket.create_connection((srv.host, srv.port), timeout=10) for _ in "ab"
        ]
        try:
            for sock in held:  # each holds a thread, half a request sent
                sock.sendall(b"GET /health HTTP/1.1\r\n")
            _eventually(lambda: srv.open_connections == 2)
            with socket.create_connection((srv.host, srv.port), timeout=10) as extra:
                answer = read_until_closed(extra)
            head, _, body = answer.partition(b"\r\n\r\n")
            assert head.startswith(b"HTTP/1.1 503")
            assert b"Connection: close" in head
            assert "Too many connections" in json.loads(body)["detail"]
        finally:
            for sock in held:
                sock.close()
        _eventually(lambda: srv.open_connections == 0)
        answers = exchange(srv, b"GET /health HTTP/1.1\r\nHost: localhost\r\n\r\n")
        assert [status for status, _ in answers] == [200]


def _eventually(check: Callable[[], bool]) -> None:
    import time

    for _ in range(500):
        if check():
            return
        time.sleep(0.01)
    raise AssertionError("condition not reached")


def _eventually_no_connections(srv: SpineServer) -> bool:
    _eventually(lambda: srv.open_connections == 0)
    return True


# ---------------------------------------------------------------- 4. deep JSON
def post_json(srv: SpineServer, path: str, body: bytes) -> Tuple[int, object]:
    import http.client

    conn = http.client.HTTPConnection(srv.host, srv.port, timeout=10)
    try:
        conn.request("POST", path, body, {"Content-Type": "application/json"})
        response = conn.getresponse()
        return response.status, json.loads(response.read())
    finally:
        conn.close()


@pytest.mark.parametrize("depth", [101, 990, 100_000])
def test_deeply_nested_json_is_422_json_invalid_without_a_traceback(
    spine: LocalSpine, depth: int
) -> None:
    nested = b"[" * depth + b"]" * depth
    body = b'{"flow_id": "echo", "input_data": {"x": ' + nested + b"}}"
    with SpineServer(spine) as srv:
        status, answer = post_json(srv, "/api/v1/flows/execute", body)
    assert status == 422
    assert isinstance(answer, dict)
    (error,) = answer["detail"]
    assert error["type"] == "json_invalid" and "nested deeper" in error["msg"]
    assert "Traceback" not in json.dumps(answer)


def test_json_nested_within_the_limit_is_accepted(spine: LocalSpine) -> None:
    nested = b"[" * 90 + b"]" * 90
    body = b'{"flow_id": "echo", "input_data": {"x": ' + nested + b"}}"
    with SpineServer(spine) as srv:
        status, answer = post_json(srv, "/api/v1/flows/execute", body)
    assert status == 200 and isinstance(answer, dict)
    spine.wait_for_execution(answer["execution_id"], 10)


def test_local_spine_refuses_a_too_deep_input_with_a_typed_error() -> None:
    from ai_spine.exceptions import ValidationError

    deep: dict = {}
    for _ in range(100_000):
        deep = {"x": deep}
    with LocalSpine(make_flows(Hooks())) as local:
        with pytest.raises(ValidationError, match="nested too deeply"):
            local.execute_flow("echo", deep)


# ---------------------------------------------------------------- 5. huge integers
def get_json(srv: SpineServer, path: str) -> Tuple[int, object]:
    import http.client

    conn = http.client.HTTPConnection(srv.host, srv.port, timeout=10)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        return response.status, json.loads(response.read())
    finally:
        conn.close()


def test_integers_beyond_sqlite_range_are_422_and_leave_nothing_behind(
    tmp_path: Path,
) -> None:
    db = str(tmp_path / "executions.sqlite")
    local = LocalSpine(make_flows(Hooks()), db=db, max_executions=1)
    with SpineServer(local) as srv:
        for body in (
            {"flow_id": "echo", "input_data": {}, "timeout": 10**19},
            {"flow_id": "echo", "input_data": {}, "timeout": 2**63},
        ):
            status, answer = post_json(
                srv, "/api/v1/flows/execute", json.dumps(body).encode()
            )
            assert status == 422, answer
            assert "timeout" in json.dumps(answer)
        for _ in range(2):  # older executions now live only in the store
            local.wait_for_execution(local.execute_flow("echo", {})["execution_id"], 10)
        for query in ("offset=9223372036854775808", "offset=99999999999999999999999"):
            status, answer = get_json(srv, "/api/v1/executions?" + query)
            assert status == 422, answer
            assert "offset" in json.dumps(answer)
        status, answer = get_json(srv, "/api/v1/executions?offset=9223372036854775807")
        assert status == 200 and isinstance(answer, dict) and answer["executions"] == []
        srv.shutdown(close_spine=True, grace=0.1)
    assert local.get_metrics()["executions_by_status"]["pending"] == 0


def test_the_largest_timeout_is_accepted_and_one_more_refused() -> None:
    from ai_spine.exceptions import ValidationError

    with LocalSpine(make_flows(Hooks())) as local:
        run = local.execute_flow("echo", {}, timeout=2**63 - 1)
        assert (
            local.wait_for_execution(run["execution_id"], 10)["status"] == "completed"
        )
        with pytest.raises(ValidationError, match="timeout"):
            local.execute_flow("echo", {}, timeout=2**63)


class RefusingJournal(SQLiteJournal):
    """A SQLite journal that refuses to save while ``refuse`` is set."""

    refuse = False

    def save(self, rec: ExecutionRecord) -> None:
        if self.refuse:
            raise JournalError("disk full (test)")
        super().save(rec)

    def save_new(
        self, rec: ExecutionRecord, key: Optional[str], fingerprint: str
    ) -> Optional[Tuple[str, str]]:
        if self.refuse:
            raise JournalError("disk full (test)")
        return super().save_new(rec, key, fingerprint)


def test_an_execution_the_store_refuses_is_not_kept_in_memory(tmp_path: Path) -> None:
    from ai_spine.exceptions import ServerError

    journal = RefusingJournal(str(tmp_path / "executions.sqlite"))
    with LocalSpine(make_flows(Hooks()), journal=journal) as local:
        journal.refuse = True
        with pytest.raises(ServerError, match="refused") as info:
            local.execute_flow("echo", {}, idempotency_key="k-1")
        assert info.value.status_code == 500
        assert local.list_executions() == []
        assert local.get_metrics()["total_executions"] == 0
        journal.refuse = False  # the key was not taken by the refused execution
        run = local.execute_flow("echo", {}, idempotency_key="k-1")
        assert (
            local.wait_for_execution(run["execution_id"], 10)["status"] == "completed"
        )


# ---------------------------------------------------------------- 6. memory by size
MIB = 1024 * 1024


def run_big(local: LocalSpine, count: int) -> List[str]:
    """Run ``count`` echo executions of about 1 MiB in and 1 MiB out; return their ids."""
    ids = []
    for i in range(count):
        run = local.execute_flow("echo", {"blob": str(i) * MIB})
        ids.append(local.wait_for_execution(run["execution_id"], 30)["execution_id"])
    return ids


def test_finished_executions_in_memory_are_bounded_by_bytes() -> None:
    from ai_spine.exceptions import NotFoundError

    with LocalSpine(make_flows(Hooks()), max_memory=5 * MIB) as local:
        ids = run_big(local, 8)
        kept = [e["execution_id"] for e in local.list_executions(limit=1000)]
        assert kept == ids[::-1][: len(kept)] and 1 <= len(kept) <= 3
        with pytest.raises(NotFoundError):
            local.get_execution(ids[0])
        assert local.get_metrics()["executions_by_status"]["completed"] == 8


def test_the_newest_execution_stays_even_when_larger_than_the_bound() -> None:
    with LocalSpine(make_flows(Hooks()), max_memory=1024) as local:
        (only,) = run_big(local, 1)
        assert local.get_execution(only)["status"] == "completed"


@pytest.mark.parametrize("with_db", [False, True])
def test_listings_are_paged_by_size(tmp_path: Path, with_db: bool) -> None:
    db = str(tmp_path / "executions.sqlite") if with_db else None
    local = LocalSpine(
        make_flows(Hooks()),
        db=db,
        max_executions=1 if with_db else None,  # with a db: list from the store
        max_page_bytes=3 * MIB,
    )
    with SpineServer(local) as srv:
        ids = run_big(local, 4)
        seen: List[str] = []
        while len(seen) < 4:
            status, page = get_json(
                srv, f"/api/v1/executions?limit=1000&offset={len(seen)}"
            )
            assert status == 200 and isinstance(page, dict)
            assert page["count"] == 1 and page["total"] == 4  # ~2 MiB each: one a page
            seen += [e["execution_id"] for e in page["executions"]]
        assert seen == ids[::-1]
        srv.shutdown(close_spine=True, grace=0.1)


# ---------------------------------------------------------------- 9. open to the network
def test_serving_a_non_loopback_address_without_a_key_is_refused(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from ai_spine.serve_cli import serve_main

    assert serve_main(["--host", "0.0.0.0", "--port", "0", "--demo"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "without --api-key" in err and "--allow-unauthenticated" in err


@pytest.mark.parametrize(
    "extra", [["--allow-unauthenticated"], ["--api-key", "k-not-secret"]]
)
def test_a_key_or_the_explicit_flag_lets_a_non_loopback_address_through(
    capsys: pytest.CaptureFixture[str], extra: List[str]
) -> None:
    from ai_spine.serve_cli import serve_main

    # 192.0.2.1 (TEST-NET-1) is no interface here: past the check, binding fails.
    assert serve_main(["--host", "192.0.2.1", "--port", "0", *extra]) == 2
    err = capsys.readouterr().err
    assert "cannot listen on 192.0.2.1" in err and "without --api-key" not in err


# ---------------------------------------------------------------- 1. listen backlog
def queued_connections(srv: SpineServer, count: int) -> int:
    """Open ``count`` connections to a server not accepting; how many the kernel took."""
    import select
    import time

    socks = []
    try:
        for _ in range(count):
            sock = socket.socket()
            sock.setblocking(False)
            sock.connect_ex((srv.host, srv.port))
            socks.append(sock)
        connected: set = set()
        ends = time.monotonic() + 0.5  # a dropped SYN is only sent again after 1 s
        while len(connected) < count and time.monotonic() < ends:
            waiting = [s for s in socks if s not in connected]
            _, ready, _ = select.select([], waiting, [], 0.05)
            connected.update(
                s for s in ready if not s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            )
        return len(connected)
    finally:
        for sock in socks:
            sock.close()


def test_a_burst_of_connections_is_queued_by_the_default_backlog(
    spine: LocalSpine,
) -> None:
    srv = SpineServer(spine)  # not serving: every connection waits in the queue
    try:
        assert queued_connections(srv, 60) == 60
    finally:
        srv.shutdown()


def test_the_backlog_is_an_option(spine: LocalSpine) -> None:
    srv = SpineServer(spine, backlog=4)
    try:
        assert queued_connections(srv, 20) < 20
    finally:
        srv.shutdown()


# ---------------------------------------------------------------- 7. malformed target
@pytest.mark.parametrize(
    "target", [b"http://[::1/health", b"health", b"*", b"http://[x]:99999/health"]
)
def test_a_malformed_request_target_is_400(spine: LocalSpine, target: bytes) -> None:
    with SpineServer(spine) as srv:
        answers = exchange(
            srv, b"GET " + target + b" HTTP/1.1\r\nHost: localhost\r\n\r\n"
        )
    assert [status for status, _ in answers] == [400]


# ---------------------------------------------------------------- 8. Python-defined flows
ECHO_SPEC = {"id": "x", "start": "out", "nodes": [{"id": "out", "type": "echo"}]}


def test_a_flow_defined_in_python_cannot_be_deleted_over_http(
    spine: LocalSpine,
) -> None:
    import http.client

    with SpineServer(spine) as srv:
        conn = http.client.HTTPConnection(srv.host, srv.port, timeout=10)
        try:
            conn.request("DELETE", "/api/v1/flows/echo")
            response = conn.getresponse()
            answer = json.loads(response.read())
        finally:
            conn.close()
        assert response.status == 409
        assert "defined in Python" in answer["detail"]
        assert "echo" in [f["flow_id"] for f in spine.list_flows()]
        body = json.dumps({"flow_id": "echo", "spec": ECHO_SPEC}).encode()
        assert post_json(srv, "/api/v1/flows", body)[0] == 409  # still taken
    assert spine.unregister_flow("echo") is True  # the Python side still can


def test_a_spec_flow_can_still_be_deleted_over_http(spine: LocalSpine) -> None:
    import http.client

    spine.register_flow("mine", ECHO_SPEC)
    with SpineServer(spine) as srv:
        conn = http.client.HTTPConnection(srv.host, srv.port, timeout=10)
        try:
            conn.request("DELETE", "/api/v1/flows/mine")
            assert conn.getresponse().status == 200
        finally:
            conn.close()
    assert "mine" not in [f["flow_id"] for f in spine.list_flows()]


# ---------------------------------------------------------------- 10. access log
def test_the_access_log_redacts_secret_query_values_and_escapes_controls(
    spine: LocalSpine, caplog: pytest.LogCaptureFixture
) -> None:
    secret = "sk-live-not-a-real-key-123"
    with caplog.at_level("DEBUG", logger="ai_spine.server"):
        with SpineServer(spine) as srv:
            for target in (
                f"/health?api_key={secret}&page=2",
                f"/health?Token={secret}&access_token={secret}&password={secret}",
                "/nope\x1b[2J\x07?x=\x1b]0;owned\x07",
            ):
                exchange(
                    srv,
                    f"GET {target} HTTP/1.1\r\nHost: localhost\r\n\r\n".encode(
                        "latin-1"
                    ),
                )
    text = "\n".join(r.getMessage() for r in caplog.records)
    assert secret not in text
    assert "GET /health?api_key=***&page=2 HTTP/1.1" in text
    assert "\x1b" not in text and "\x07" not in text
    assert "\\x1b[2J" in text


# ---------------------------------------------------------------- 11. auth first, Host
KEY = "hostile-key-not-secret"


@pytest.mark.parametrize(
    "method, path",
    [("GET", "/nope"), ("HEAD", "/api/v1/flows"), ("OPTIONS", "/api/v1/flows")],
)
def test_the_key_is_checked_before_the_route(
    spine: LocalSpine, method: str, path: str
) -> None:
    request = f"{method} {path} HTTP/1.1\r\nHost: localhost\r\n"
    with SpineServer(spine, api_key=KEY) as srv:
        anonymous = exchange(srv, (request + "\r\n").encode())
        keyed = exchange(
            srv, (request + f"Authorization: Bearer {KEY}\r\n\r\n").encode()
        )
    assert [status for status, _ in anonymous] == [401]
    assert [status for status, _ in keyed] == [404 if method == "GET" else 405]


@pytest.mark.parametrize(
    "host, status",
    [
        ("localhost", 200),
        ("localhost:8000", 200),
        ("127.0.0.1:8000", 200),
        ("[::1]:8000", 200),
        ("LOCALHOST", 200),
        ("attacker.example", 400),
        ("attacker.example:8000", 400),
        ("127.0.0.1.attacker.example", 400),
        ("[::1", 400),
    ],
)
def test_a_keyless_loopback_server_answers_loopback_host_names_only(
    spine: LocalSpine, host: str, status: int
) -> None:
    with SpineServer(spine) as srv:
        answers = exchange(
            srv, f"GET /api/v1/flows HTTP/1.1\r\nHost: {host}\r\n\r\n".encode()
        )
    assert [s for s, _ in answers] == [status]


def test_the_host_check_is_off_with_a_key_or_when_told(spine: LocalSpine) -> None:
    request = b"GET /health HTTP/1.1\r\nHost: my-box.internal\r\n\r\n"
    with SpineServer(spine, api_key=KEY) as keyed:
        assert [s for s, _ in exchange(keyed, request)] == [200]
    with SpineServer(spine, check_host=False) as told:
        assert [s for s, _ in exchange(told, request)] == [200]


@pytest.mark.parametrize("value", ["+-5", "5_0", "٥", "1e3", " "])
def test_a_query_integer_that_is_not_plain_digits_is_422(
    spine: LocalSpine, value: str
) -> None:
    from urllib.parse import quote

    with SpineServer(spine) as srv:
        status, answer = get_json(srv, "/api/v1/executions?limit=" + quote(value))
    assert status == 422, answer
