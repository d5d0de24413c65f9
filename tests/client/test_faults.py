"""The client against a real misbehaving server on 127.0.0.1.

Every case ends in the right result or the documented exception, and the server's own count
shows that an execute POST the server may have acted on was never sent twice.
"""

from __future__ import annotations

import email.utils
import json
import threading
import time
from typing import Any, Dict, Iterator, List

import pytest
import requests
import responses

from ai_spine import (
    AISpine,
    AuthenticationError,
    FlowNotFoundError,
    NetworkError,
    RateLimitError,
    Retry,
    ServerError,
    TimeoutError,
    ValidationError,
    api,
)
from tests.client.conftest import BASE
from tests.client.fault_server import (
    EXECUTE,
    FaultServer,
    drip,
    drip_head,
    execute,
    free_port,
    raw,
    reply,
    reset,
    slow,
)

pytestmark = pytest.mark.timeout(30)

HEALTH = "/health"
OLD_DATE = "Wed, 21 Oct 2015 07:28:00 GMT"


@pytest.fixture
def spine(server: FaultServer) -> Iterator[AISpine]:
    """A client with quick retries (no backoff) and a short per-attempt timeout."""
    with AISpine(
        base_url=server.url, timeout=1.0, retry=Retry(total=3, backoff_factor=0)
    ) as client:
        yield client


def accepted_executes(server: FaultServer) -> int:
    """Execute POSTs the server answered 2xx: executions it really started."""
    return sum(
        1 for r in server.seen("POST", EXECUTE) if r.answered and r.answered < 300
    )


def test_happy_path_over_real_sockets(server: FaultServer, spine: AISpine) -> None:
    server.plan("POST", EXECUTE, then=execute())
    started = spine.execute_flow("echo", {"text": "hi"}, {"who": "test"})
    assert started["status"] == "pending"
    (request,) = server.seen("POST", EXECUTE)
    assert json.loads(request.body) == {
        "flow_id": "echo",
        "input_data": {"text": "hi"},
        "metadata": {"who": "test"},
    }
    assert request.headers["User-Agent"].startswith("ai-spine-sdk-python/")
    assert "Authorization" not in request.headers


def test_connection_reset_on_get_is_retried(
    server: FaultServer, spine: AISpine
) -> None:
    server.plan("GET", HEALTH, reset(), reset(), then=reply(200, {"status": "healthy"}))
    assert spine.health_check() == {"status": "healthy"}
    assert server.count("GET", HEALTH) == 3


def test_connection_reset_on_execute_is_not_resent(
    server: FaultServer, spine: AISpine
) -> None:
    server.plan("POST", EXECUTE, reset(), then=execute())
    with pytest.raises(NetworkError, match="connection failed"):
        spine.execute_flow("echo", {"n": 1})
    assert server.count("POST", EXECUTE) == 1
    assert server.executions == []


def test_reset_with_idempotency_key_is_resent_with_the_same_key(
    server: FaultServer, spine: AISpine
) -> None:
    server.plan("POST", EXECUTE, reset(), then=execute())
    started = spine.execute_flow("echo", {"n": 1}, idempotency_key="order-1")
    seen = server.seen("POST", EXECUTE)
    assert len(seen) == 2
    assert {r.headers["Idempotency-Key"] for r in seen} == {"order-1"}
    assert server.executions == [started["execution_id"]]


def test_slow_get_times_out_after_its_retries(server: FaultServer) -> None:
    server.plan("GET", HEALTH, then=slow(10))
    with AISpine(
        base_url=server.url, timeout=0.2, retry=Retry(total=1, backoff_factor=0)
    ) as c:
        with pytest.raises(TimeoutError, match="no answer within 0.2s") as info:
            c.health_check()
    assert isinstance(info.value, TimeoutError)
    assert server.count("GET", HEALTH) == 2


def test_slow_execute_times_out_without_a_second_post(server: FaultServer) -> None:
    server.plan("POST", EXECUTE, then=slow(10, execute()))
    with AISpine(
        base_url=server.url, timeout=0.2, retry=Retry(total=3, backoff_factor=0)
    ) as c:
        with pytest.raises(TimeoutError):
            c.execute_flow("echo", {})
    assert server.count("POST", EXECUTE) == 1


def test_deadline_bounds_the_retries_of_a_slow_server(server: FaultServer) -> None:
    server.plan("GET", HEALTH, then=slow(10))
    retry_policy = Retry(total=50, backoff_factor=0)
    with AISpine(
        base_url=server.url, timeout=0.2, retry=retry_policy, deadline=0.5
    ) as c:
        with pytest.raises(TimeoutError, match="deadline of 0.5s exceeded"):
            c.health_check()
    assert 1 <= server.count("GET", HEALTH) <= 4  # 0.5 s of 0.2 s attempts, never 51


@pytest.mark.parametrize("callers_session", [False, True])
def test_a_trickled_body_cannot_outlast_the_deadline(
    server: FaultServer, callers_session: bool
) -> None:
    # Each byte arrives well within the socket timeout, so only the deadline can stop it;
    # before bodies were read in pieces, this call returned the body after ~2.5 s. A
    # caller's session has no watchdog: the piecewise read alone stops it.
    server.plan("GET", HEALTH, then=drip(0.05, {"status": "healthy", "pad": "x" * 30}))
    with requests.Session() as session, AISpine(
        base_url=server.url,
        timeout=5,
        retry=Retry(total=5, backoff_factor=0),
        deadline=0.5,
        session=session if callers_session else None,
    ) as c:
        with pytest.raises(TimeoutError, match="deadline of 0.5s exceeded"):
            c.health_check()
    assert server.count("GET", HEALTH) == 1


@pytest.mark.parametrize("total", [0, 5])
def test_trickled_headers_cannot_outlast_the_deadline(
    server: FaultServer, total: int
) -> None:
    # Each header byte arrives well within the socket timeout; before the deadline cut the
    # socket, this call (deadline 0.5 s) took the ~8 s the headers took.
    server.plan("GET", HEALTH, then=drip_head(0.05, {"status": "healthy"}))
    with AISpine(
        base_url=server.url,
        timeout=5,
        retry=Retry(total=total, backoff_factor=0),
        deadline=0.5,
    ) as c:
        with pytest.raises(TimeoutError, match="deadline of 0.5s exceeded"):
            c.health_check()
    (seen,) = server.seen("GET", HEALTH)  # the deadline also ended the retries
    assert not seen.headers_sent  # the client left while they were still arriving


def test_the_deadline_also_cuts_a_connection_through_a_proxy(
    server: FaultServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The fault server plays an HTTP proxy: requests sends it the absolute URL.
    monkeypatch.setenv("HTTP_PROXY", server.url)
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    target = "http://backend.invalid"
    server.plan("GET", target + HEALTH, then=drip_head(0.05, {"status": "healthy"}))
    with AISpine(base_url=target, timeout=5, max_retries=0, deadline=0.5) as c:
        with pytest.raises(TimeoutError, match="deadline of 0.5s exceeded"):
            c.health_check()
    (seen,) = server.seen("GET", target + HEALTH)
    assert not seen.headers_sent  # the client left while they were still arriving


@pytest.mark.parametrize("callers_session", [False, True])
def test_timeout_bounds_each_attempt_of_a_trickled_body_without_a_deadline(
    server: FaultServer, callers_session: bool
) -> None:
    # Each byte comes well within the socket timeout: with timeout bounding each read, one
    # GET was held as long as the server kept trickling (102 s in the report).
    server.plan("GET", HEALTH, then=drip(0.05, {"status": "healthy", "pad": "x" * 200}))
    with requests.Session() as session, AISpine(
        base_url=server.url,
        timeout=0.3,
        retry=Retry(total=1, backoff_factor=0),
        session=session if callers_session else None,
    ) as c:
        with pytest.raises(TimeoutError, match="no answer within 0.3s") as info:
            c.health_check()
    assert info.value.status_code is None
    assert (
        server.count("GET", HEALTH) == 2
    )  # a timed-out GET is retried once, as allowed


def test_timeout_bounds_an_attempt_whose_headers_trickle(server: FaultServer) -> None:
    server.plan("GET", HEALTH, then=drip_head(0.05, {"status": "healthy"}))
    with AISpine(base_url=server.url, timeout=0.3, max_retries=0) as c:
        with pytest.raises(TimeoutError, match="no answer within 0.3s"):
            c.health_check()
    (seen,) = server.seen("GET", HEALTH)
    assert not seen.headers_sent  # cut while they were still arriving


def test_a_trickled_execute_times_out_and_is_never_resent(server: FaultServer) -> None:
    server.plan(
        "POST",
        EXECUTE,
        then=drip(0.05, {"execution_id": "x" * 100, "status": "pending"}),
    )
    with AISpine(
        base_url=server.url, timeout=0.3, retry=Retry(total=3, backoff_factor=0)
    ) as c:
        with pytest.raises(TimeoutError, match="no answer within 0.3s"):
            c.execute_flow("echo", {})
    assert server.count("POST", EXECUTE) == 1


def test_a_deadline_cut_connection_is_not_reused(server: FaultServer) -> None:
    server.plan("GET", HEALTH, drip_head(0.05, {"status": "healthy"}))
    server.plan("GET", "/status", then=reply(200, {"ok": True}))
    with AISpine(base_url=server.url, timeout=5, deadline=0.3) as c:
        with pytest.raises(TimeoutError, match="deadline"):
            c.health_check()
        assert c.get_status() == {"ok": True}
    (cut,) = server.seen("GET", HEALTH)
    (after,) = server.seen("GET", "/status")
    assert not cut.headers_sent and after.port != cut.port


def test_a_deadline_passing_after_release_cannot_cut_another_threads_request(
    server: FaultServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The calls share one session (as execute_batch's threads do). Call A has read its
    # answer and handed its connection back to the pool; call B takes that connection;
    # then A's deadline passes. It used to shut down B's socket mid-request.
    server.plan("GET", HEALTH, then=reply(200, {"status": "healthy"}))
    server.plan("GET", "/status", then=slow(0.3, reply(200, {"ok": True})))
    read_body = api._read_body
    other: Dict[str, Any] = {}

    with AISpine(base_url=server.url, timeout=60, max_retries=0) as c:

        def call_b() -> None:
            try:
                other["answer"] = c._api.request("GET", "/status")  # no deadline
            except Exception as exc:  # the assertion below shows it
                other["error"] = exc

        def read_then_b_then_deadline(response: Any, ends_at: Any, limit: int) -> bytes:
            content: bytes = read_body(response, ends_at, limit)  # A's conn is pooled
            entry = api._current.watch
            thread = threading.Thread(target=call_b)
            thread.start()
            for _ in range(500):  # until B's request (on A's old connection) is in
                if server.count("GET", "/status"):
                    break
                time.sleep(0.01)
            with api._WATCHDOG._cond:
                api._WATCHDOG._fire(entry)  # A's deadline passes now
            other["thread"] = thread
            return content

        monkeypatch.setattr(api, "_read_body", read_then_b_then_deadline)
        with pytest.raises(TimeoutError, match="deadline"):
            c._api.request("GET", HEALTH, deadline=30)
        monkeypatch.undo()
        other["thread"].join(10)
    assert other.get("answer") == {"ok": True}, other.get("error")
    (b,) = server.seen("GET", "/status")
    assert b.port == server.seen("GET", HEALTH)[0].port  # B did reuse A's connection


def test_deadlines_share_one_watchdog_thread(
    mocked: responses.RequestsMock, monkeypatch: pytest.MonkeyPatch
) -> None:
    mocked.get(f"{BASE}/health", json={"status": "healthy"})
    monkeypatch.setattr(api, "_WATCHDOG", api._Watchdog())
    started: List[str] = []
    start = threading.Thread.start

    def record(thread: threading.Thread) -> None:
        started.append(thread.name)
        start(thread)

    monkeypatch.setattr(threading.Thread, "start", record)
    with AISpine(base_url=BASE, deadline=30) as c:
        for _ in range(5):
            c.health_check()
        c._api.request("GET", "/health", deadline=10)
    assert started == ["ai-spine-deadline"]  # once, not once per call


def test_disarmed_deadlines_do_not_pile_up_in_the_watchdog() -> None:
    watchdog = api._Watchdog()
    for _ in range(1000):  # calls much shorter than their deadlines
        assert watchdog.disarm(watchdog.arm(60)) is False
    assert len(watchdog._heap) <= 130  # dead entries are dropped, not kept for 60 s


def test_a_sooner_deadline_is_cut_while_the_watchdog_waits_for_a_later_one(
    server: FaultServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(api, "_WATCHDOG", api._Watchdog())
    later = api._WATCHDOG.arm(20)
    for _ in range(500):  # until the thread waits 20 s for it
        if api._WATCHDOG._cond._waiters:  # type: ignore[attr-defined]
            break
        time.sleep(0.01)
    server.plan("GET", HEALTH, then=drip_head(0.05, {"status": "healthy"}))
    try:
        with AISpine(base_url=server.url, timeout=5, deadline=0.5) as c:
            with pytest.raises(TimeoutError, match="deadline of 0.5s exceeded"):
                c.health_check()
    finally:
        api._WATCHDOG.disarm(later)
    (seen,) = server.seen("GET", HEALTH)
    assert not seen.headers_sent  # cut at 0.5 s, not when the headers were done (~10 s)


def test_a_body_that_stalls_is_a_timeout_and_its_connection_dropped(
    server: FaultServer,
) -> None:
    server.plan("GET", HEALTH, drip(5, {"status": "healthy"}))
    server.plan("GET", "/status", then=reply(200, {"ok": True}))
    with AISpine(
        base_url=server.url, timeout=0.2, retry=Retry(total=0, backoff_factor=0)
    ) as c:
        with pytest.raises(TimeoutError, match="no answer within 0.2s"):
            c.health_check()
        assert c.get_status() == {"ok": True}
    (stalled,) = server.seen("GET", HEALTH)
    (after,) = server.seen("GET", "/status")
    assert after.port != stalled.port  # the half-read connection was not reused


def test_a_trickled_body_within_the_deadline_is_read_whole(
    server: FaultServer,
) -> None:
    server.plan("GET", HEALTH, drip(0.01, {"status": "healthy"}))
    with AISpine(base_url=server.url, timeout=1.0, deadline=5) as c:
        assert c.health_check() == {"status": "healthy"}


def test_connections_are_kept_alive_between_calls(
    server: FaultServer, spine: AISpine
) -> None:
    server.plan("GET", HEALTH, then=reply(200, {"status": "healthy"}))
    for _ in range(3):
        spine.health_check()
    assert len({r.port for r in server.seen("GET", HEALTH)}) == 1


def test_burst_of_503_on_get_then_success(server: FaultServer, spine: AISpine) -> None:
    busy = reply(503, {"detail": "Service Unavailable"})
    server.plan("GET", HEALTH, busy, busy, busy, then=reply(200, {"status": "healthy"}))
    assert spine.health_check()["status"] == "healthy"
    assert server.count("GET", HEALTH) == 4


def test_burst_of_503_longer_than_the_retries_stays_server_error(
    server: FaultServer, spine: AISpine
) -> None:
    server.plan("GET", HEALTH, then=reply(503, {"detail": "Service Unavailable"}))
    with pytest.raises(ServerError) as info:
        spine.health_check()
    assert info.value.status_code == 503
    assert "Service Unavailable" in str(info.value)
    assert server.count("GET", HEALTH) == 4


def test_503_without_retry_after_on_execute_is_not_resent(
    server: FaultServer, spine: AISpine
) -> None:
    server.plan("POST", EXECUTE, reply(503, {"detail": "busy"}), then=execute())
    with pytest.raises(ServerError):
        spine.execute_flow("echo", {})
    assert server.count("POST", EXECUTE) == 1 and server.executions == []


@pytest.mark.parametrize("retry_after", ["0", OLD_DATE])
def test_503_with_retry_after_on_execute_is_resent_once_accepted(
    server: FaultServer, spine: AISpine, retry_after: str
) -> None:
    busy = reply(503, {"detail": "busy"}, **{"Retry-After": retry_after})
    server.plan("POST", EXECUTE, busy, busy, then=execute())
    started = spine.execute_flow("echo", {"n": 1})
    assert server.count("POST", EXECUTE) == 3
    assert accepted_executes(server) == 1
    assert server.executions == [started["execution_id"]]


@pytest.mark.parametrize("retry_after", ["0", OLD_DATE])
def test_burst_of_429_then_success(
    server: FaultServer, spine: AISpine, retry_after: str
) -> None:
    limited = reply(
        429, {"detail": "Too Many Requests"}, **{"Retry-After": retry_after}
    )
    server.plan("POST", EXECUTE, limited, limited, limited, then=execute())
    spine.execute_flow("echo", {})
    assert server.count("POST", EXECUTE) == 4
    assert accepted_executes(server) == 1


def test_burst_of_429_longer_than_the_retries_stays_rate_limit(
    server: FaultServer, spine: AISpine
) -> None:
    server.plan(
        "POST",
        EXECUTE,
        then=reply(429, {"detail": "slow down"}, **{"Retry-After": "0"}),
    )
    with pytest.raises(RateLimitError) as info:
        spine.execute_flow("echo", {})
    assert info.value.retry_after == 0.0
    assert server.count("POST", EXECUTE) == 4 and accepted_executes(server) == 0


def test_429_asking_for_an_hour_is_reported_at_once(
    server: FaultServer, spine: AISpine
) -> None:
    in_an_hour = email.utils.formatdate(
        email.utils.mktime_tz(email.utils.parsedate_tz(email.utils.formatdate()))
        + 3600,
        usegmt=True,
    )
    server.plan(
        "GET",
        HEALTH,
        then=reply(429, {"detail": "quota"}, **{"Retry-After": in_an_hour}),
    )
    with pytest.raises(RateLimitError) as info:
        spine.health_check()
    assert info.value.retry_after is not None and info.value.retry_after > 3000
    assert server.count("GET", HEALTH) == 1


def test_truncated_json_body_on_get_is_retried(
    server: FaultServer, spine: AISpine
) -> None:
    cut = raw(200, b'{"status": "heal', "application/json", content_length=40)
    server.plan("GET", HEALTH, cut, then=reply(200, {"status": "healthy"}))
    assert spine.health_check() == {"status": "healthy"}
    assert server.count("GET", HEALTH) == 2


def test_truncated_json_body_on_execute_is_a_network_error(
    server: FaultServer, spine: AISpine
) -> None:
    cut = raw(200, b'{"execution_id": "3f2b', "application/json", content_length=80)
    server.plan("POST", EXECUTE, cut, then=execute())
    with pytest.raises(NetworkError):
        spine.execute_flow("echo", {})
    assert server.count("POST", EXECUTE) == 1


def test_malformed_json_with_honest_length_is_a_server_error(
    server: FaultServer, spine: AISpine
) -> None:
    server.plan(
        "POST", EXECUTE, raw(200, b'{"execution_id": "3f2b', "application/json")
    )
    with pytest.raises(ServerError, match="expected JSON"):
        spine.execute_flow("echo", {})
    assert server.count("POST", EXECUTE) == 1


def test_html_bodies(server: FaultServer, spine: AISpine) -> None:
    page = b"<html><head><title>502 Bad Gateway</title></head><body>nginx</body></html>"
    server.plan("GET", HEALTH, then=raw(502, page, "text/html"))
    server.plan(
        "GET", "/status", then=raw(200, b"<html>maintenance</html>", "text/html")
    )
    with pytest.raises(ServerError) as bad_gateway:
        spine.health_check()
    assert bad_gateway.value.status_code == 502
    assert "non-JSON body (text/html)" in str(bad_gateway.value)
    assert server.count("GET", HEALTH) == 4
    with pytest.raises(ServerError, match="expected JSON"):
        spine.get_status()


def test_401_and_422_details(server: FaultServer) -> None:
    server.plan("GET", "/api/v1/flows", then=reply(401, {"detail": "Invalid API key"}))
    detail = [
        {
            "loc": ["path", "execution_id"],
            "msg": "value is not a valid uuid",
            "type": "x",
        },
    ]
    server.plan("GET", "/api/v1/executions/abc", then=reply(422, {"detail": detail}))
    with AISpine(base_url=server.url, api_key="sk-wrong-key") as client:
        with pytest.raises(AuthenticationError, match="Invalid API key") as auth:
            client.list_flows()
        with pytest.raises(
            ValidationError, match="path.execution_id: value is not a valid uuid"
        ):
            client.get_execution("abc")
    assert "sk-wrong-key" not in str(auth.value)
    assert (
        server.seen("GET", "/api/v1/flows")[0].headers["Authorization"]
        == "Bearer sk-wrong-key"
    )
    assert server.count("GET", "/api/v1/flows") == 1  # 4xx is never retried


def test_unknown_flow_answer(server: FaultServer, spine: AISpine) -> None:
    answer = {
        "execution_id": "00000000-0000-0000-0000-000000000000",
        "status": "failed",
        "result": None,
        "error": "Flow 'nope' not found",
        "execution_time": None,
    }
    server.plan("POST", EXECUTE, then=reply(200, answer))
    with pytest.raises(FlowNotFoundError, match="Flow 'nope' not found"):
        spine.execute_flow("nope", {})


def test_connection_refused_is_retried_then_network_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from ai_spine import api

    waits: list = []
    monkeypatch.setattr(api, "_sleep", waits.append)
    url = f"http://127.0.0.1:{free_port()}"
    with AISpine(base_url=url, retry=Retry(total=2)) as client:
        with pytest.raises(NetworkError, match="could not connect to 127.0.0.1"):
            client.execute_flow("echo", {})  # safe: nothing reached a server
    assert len(waits) == 2


def test_wait_for_execution_is_bounded_by_a_slow_poll(server: FaultServer) -> None:
    execution_id = "3f2b8c1e-8a4d-4c57-9a51-2b7c9e0d4f11"
    server.plan("GET", f"/api/v1/executions/{execution_id}", then=slow(10))
    with AISpine(
        base_url=server.url, timeout=5, retry=Retry(total=5, backoff_factor=0)
    ) as c:
        with pytest.raises(TimeoutError) as info:
            c.wait_for_execution(execution_id, timeout=0.3, interval=0.05)
    assert info.value.execution_id == execution_id
    assert info.value.last_status is None
    assert "last poll: GET" in str(info.value)
