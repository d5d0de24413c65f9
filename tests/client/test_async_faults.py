"""AsyncAISpine against a real misbehaving server on 127.0.0.1, and against ``ai-spine serve``.

The same rules as the sync client: typed errors, retries only where the server cannot have
acted (the server's own count shows an execute POST never sent twice), Retry-After, per-attempt
timeouts and deadlines, the body cap, and cancellation that closes the request.
"""

from __future__ import annotations

import asyncio
import gzip
import logging
import signal
import threading
from typing import Any, Awaitable, Callable, Iterator, TypeVar

import pytest

from ai_spine import (
    AISpine,
    AsyncAISpine,
    AuthenticationError,
    ExecutionError,
    FlowNotFoundError,
    NetworkError,
    RateLimitError,
    ResponseTooLargeError,
    Retry,
    ServerError,
    TimeoutError,
    ValidationError,
)
from tests.client.fault_server import (
    EXECUTE,
    Action,
    FaultServer,
    drip,
    drip_head,
    execute,
    free_port,
    reply,
    reset,
    slow,
)
from tests.local.serve_process import ServeProcess

pytestmark = pytest.mark.timeout(30)

HEALTH = "/health"
EXEC_ID = "3f2b8c1e-8a4d-4c57-9a51-2b7c9e0d4f11"
T = TypeVar("T")


def run(make: Callable[[], Awaitable[T]]) -> T:
    """Run one coroutine in a fresh event loop, as an application's asyncio.run would."""

    async def main() -> T:
        return await make()

    return asyncio.run(main())


def quick(server: FaultServer, **kwargs: Any) -> AsyncAISpine:
    """A client with no backoff, a short per-attempt timeout and three retries."""
    options: dict = {"timeout": 1.0, "retry": Retry(total=3, backoff_factor=0)}
    options.update(kwargs)
    return AsyncAISpine(base_url=server.url, **options)


def test_happy_path_and_the_context_manager_closes_the_session(
    server: FaultServer,
) -> None:
    server.plan("POST", EXECUTE, then=execute())

    async def main() -> Any:
        async with quick(server, api_key="sk-async-key") as client:
            started = await client.execute_flow("echo", {"text": "hi"}, {"who": "t"})
            session = client.session
        return started, session

    started, session = run(main)
    assert started["status"] == "pending"
    assert session is not None and session.closed
    (request,) = server.seen("POST", EXECUTE)
    assert request.headers["Authorization"] == "Bearer sk-async-key"
    assert request.headers["User-Agent"].startswith("ai-spine-sdk-python/")


def test_a_reset_get_is_retried_and_a_reset_execute_is_not_resent(
    server: FaultServer,
) -> None:
    server.plan("GET", HEALTH, reset(), reset(), then=reply(200, {"status": "ok"}))
    server.plan("POST", EXECUTE, reset(), then=execute())

    async def main() -> Any:
        async with quick(server) as client:
            health = await client.health_check()
            with pytest.raises(NetworkError, match="connection failed"):
                await client.execute_flow("echo", {"n": 1})
            return health

    assert run(main) == {"status": "ok"}
    assert server.count("GET", HEALTH) == 3
    assert server.count("POST", EXECUTE) == 1 and server.executions == []


def test_an_idempotency_key_makes_a_reset_execute_safe_to_resend(
    server: FaultServer,
) -> None:
    server.plan("POST", EXECUTE, reset(), then=execute())

    async def main() -> Any:
        async with quick(server) as client:
            return await client.execute_flow("echo", {}, idempotency_key="order-1")

    started = run(main)
    seen = server.seen("POST", EXECUTE)
    assert [r.headers["Idempotency-Key"] for r in seen] == ["order-1", "order-1"]
    assert server.executions == [started["execution_id"]]


def test_a_slow_get_times_out_after_its_retries_and_a_slow_execute_once(
    server: FaultServer,
) -> None:
    server.plan("GET", HEALTH, then=slow(10))
    server.plan("POST", EXECUTE, then=slow(10, execute()))

    async def main() -> None:
        async with quick(server, timeout=0.2, retry=Retry(1, backoff_factor=0)) as c:
            with pytest.raises(TimeoutError, match="no answer within 0.2s"):
                await c.health_check()
            with pytest.raises(TimeoutError, match="no answer within 0.2s") as info:
                await c.execute_flow("echo", {})
            assert isinstance(info.value, TimeoutError)

    run(main)
    assert server.count("GET", HEALTH) == 2
    assert server.count("POST", EXECUTE) == 1


@pytest.mark.parametrize("trickle", [drip, drip_head])
def test_timeout_bounds_each_attempt_however_slowly_bytes_come(
    server: FaultServer, trickle: Callable[[float, Any], Action]
) -> None:
    # Every byte comes well within any per-read timeout.
    server.plan("GET", HEALTH, then=trickle(0.05, {"status": "ok", "pad": "x" * 200}))

    async def main() -> None:
        async with quick(server, timeout=0.3, retry=Retry(1, backoff_factor=0)) as c:
            with pytest.raises(TimeoutError, match="no answer within 0.3s"):
                await c.health_check()

    run(main)
    assert server.count("GET", HEALTH) == 2
    assert all(not r.answered for r in server.seen("GET", HEALTH))


def test_the_deadline_bounds_the_retries(server: FaultServer) -> None:
    server.plan("GET", HEALTH, then=slow(10))

    async def main() -> None:
        async with quick(
            server, timeout=0.2, retry=Retry(50, backoff_factor=0), deadline=0.5
        ) as c:
            with pytest.raises(TimeoutError, match="deadline of 0.5s exceeded"):
                await c.health_check()

    run(main)
    assert 1 <= server.count("GET", HEALTH) <= 4  # 0.5 s of 0.2 s attempts, never 51


def test_a_trickled_body_cannot_outlast_the_deadline(server: FaultServer) -> None:
    server.plan("GET", HEALTH, then=drip(0.05, {"status": "ok", "pad": "x" * 30}))

    async def main() -> None:
        async with quick(server, timeout=5, deadline=0.5) as c:
            with pytest.raises(TimeoutError, match="deadline of 0.5s exceeded"):
                await c.health_check()

    run(main)
    assert server.count("GET", HEALTH) == 1


@pytest.mark.parametrize("retry_after", ["0", "Wed, 21 Oct 2015 07:28:00 GMT"])
def test_503_with_retry_after_resends_an_execute_and_without_it_does_not(
    server: FaultServer, retry_after: str
) -> None:
    busy = reply(503, {"detail": "busy"}, **{"Retry-After": retry_after})
    server.plan("POST", EXECUTE, busy, busy, then=execute())
    server.plan("POST", "/api/v1/executions/" + EXEC_ID + "/cancel", reply(503, {}))

    async def main() -> Any:
        async with quick(server) as client:
            started = await client.execute_flow("echo", {})
            with pytest.raises(ServerError):
                await client.cancel_execution(EXEC_ID)
            return started

    started = run(main)
    assert server.count("POST", EXECUTE) == 3
    assert server.executions == [started["execution_id"]]
    assert server.count("POST", "/api/v1/executions/" + EXEC_ID + "/cancel") == 1


def test_retry_after_wins_over_the_backoff(server: FaultServer) -> None:
    # A backoff of a minute would time the test out: only the header's 0.05 s lets it pass.
    limited = reply(429, {"detail": "slow down"}, **{"Retry-After": "0.05"})
    server.plan("POST", EXECUTE, limited, limited, then=execute())

    async def main() -> Any:
        async with quick(server, retry=Retry(3, backoff_factor=60)) as client:
            return await client.execute_flow("echo", {})

    run(main)
    assert server.count("POST", EXECUTE) == 3 and len(server.executions) == 1


def test_a_429_asking_for_an_hour_is_reported_at_once(server: FaultServer) -> None:
    server.plan(
        "GET", HEALTH, then=reply(429, {"detail": "quota"}, **{"Retry-After": "3600"})
    )

    async def main() -> None:
        async with quick(server) as client:
            with pytest.raises(RateLimitError) as info:
                await client.health_check()
            assert info.value.retry_after == 3600

    run(main)
    assert server.count("GET", HEALTH) == 1


def test_errors_carry_the_server_words_and_never_the_key(server: FaultServer) -> None:
    server.plan("GET", "/api/v1/flows", then=reply(401, {"detail": "Invalid API key"}))
    answer = {
        "execution_id": "00000000-0000-0000-0000-000000000000",
        "status": "failed",
        "error": "Flow 'nope' not found",
    }
    server.plan("POST", EXECUTE, then=reply(200, answer))

    async def main() -> None:
        async with quick(server, api_key="sk-secret-async") as client:
            assert "sk-secret-async" not in repr(client)
            with pytest.raises(AuthenticationError, match="Invalid API key") as auth:
                await client.list_flows()
            assert "sk-secret-async" not in str(auth.value)
            with pytest.raises(FlowNotFoundError, match="Flow 'nope' not found"):
                await client.execute_flow("nope", {})

    run(main)
    assert server.count("GET", "/api/v1/flows") == 1  # 4xx is never retried


def test_debug_logs_are_redacted(
    server: FaultServer, caplog: pytest.LogCaptureFixture
) -> None:
    server.plan("GET", HEALTH, then=reply(200, {"token": "sk-echoed-back"}))

    async def main() -> None:
        async with AsyncAISpine(base_url=server.url, api_key="sk-echoed-back") as c:
            await c.health_check()

    with caplog.at_level(logging.DEBUG, logger="ai_spine"):
        run(main)
    assert "GET" in caplog.text
    assert "sk-echoed-back" not in caplog.text


def test_connection_refused_is_retried_then_a_network_error() -> None:
    url = f"http://127.0.0.1:{free_port()}"

    async def main() -> None:
        retry = Retry(total=2, backoff_factor=0)
        async with AsyncAISpine(base_url=url, retry=retry) as client:
            with pytest.raises(NetworkError, match="could not connect to 127.0.0.1"):
                await client.execute_flow("echo", {})  # safe: nothing reached a server

    run(main)


def test_a_body_past_max_body_size_is_refused_packed_or_not(
    server: FaultServer,
) -> None:
    server.plan("GET", HEALTH, then=reply(200, {"pad": "x" * 5000}))
    packed = gzip.compress(b'{"pad": "' + b"x" * 100_000 + b'"}')
    headers = {"Content-Type": "application/json", "Content-Encoding": "gzip"}
    server.plan("GET", "/metrics", then=Action("raw", body=packed, headers=headers))
    server.plan("GET", "/status", then=reply(200, {"ok": True}))

    async def main() -> None:
        async with quick(server, max_body_size=4096) as client:
            with pytest.raises(ResponseTooLargeError) as info:
                await client.health_check()
            assert info.value.limit == 4096
            with pytest.raises(ResponseTooLargeError):
                await client.get_metrics()  # 4096 is more than its packed length
            assert await client.get_status() == {"ok": True}

    run(main)
    assert server.count("GET", HEALTH) == 1  # never retried


def test_cancelling_the_awaiting_task_closes_the_request(server: FaultServer) -> None:
    server.plan("GET", HEALTH, slow(10))
    server.plan("POST", EXECUTE, slow(10, execute()))
    server.plan("GET", "/status", then=reply(200, {"ok": True}))

    async def cancel_when_sent(client: AsyncAISpine, call: Awaitable[Any]) -> None:
        task = asyncio.ensure_future(call)
        for _ in range(500):
            if len(server.requests) > len(cancelled):
                break
            await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        cancelled.append(task)

    cancelled: list = []

    async def main() -> Any:
        async with quick(server) as client:
            await cancel_when_sent(client, client.health_check())
            await cancel_when_sent(client, client.execute_flow("echo", {}))
            status = await client.get_status()  # the client goes on working
            others = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            return status, others

    status, others = run(main)
    assert status == {"ok": True} and others == []
    assert server.count("GET", HEALTH) == 1 and server.count("POST", EXECUTE) == 1
    (after,) = server.seen("GET", "/status")
    cut = {r.port for r in server.requests if r.path != "/status"}
    assert after.port not in cut  # the cancelled requests' connections were not reused


def test_wait_for_execution_sleeps_between_polls_and_names_the_last_status(
    server: FaultServer,
) -> None:
    path = f"/api/v1/executions/{EXEC_ID}"
    server.plan(
        "GET", path, then=reply(200, {"execution_id": EXEC_ID, "status": "running"})
    )
    ticks = []

    async def main() -> None:
        async def beat() -> None:
            while True:  # runs only while the waiter sleeps: the loop is never blocked
                ticks.append(1)
                await asyncio.sleep(0.01)

        beating = asyncio.ensure_future(beat())
        async with quick(server) as client:
            with pytest.raises(TimeoutError) as info:
                await client.wait_for_execution(EXEC_ID, timeout=0.3, interval=0.05)
        beating.cancel()
        assert info.value.last_status == "running"
        assert info.value.execution_id == EXEC_ID

    run(main)
    assert server.count("GET", path) >= 2 and len(ticks) >= 5


def test_cancelling_a_batch_cancels_its_items(server: FaultServer) -> None:
    server.plan("POST", EXECUTE, then=slow(10, execute()))

    async def main() -> None:
        async with quick(server) as client:
            batch = asyncio.ensure_future(
                client.execute_batch([("a", {}), ("b", {}), ("c", {})], concurrency=2)
            )
            for _ in range(500):
                if server.count("POST", EXECUTE) == 2:
                    break
                await asyncio.sleep(0.01)
            batch.cancel()
            with pytest.raises(asyncio.CancelledError):
                await batch
            others = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            assert others == []

    run(main)
    assert server.count("POST", EXECUTE) == 2  # the semaphore held the third back


def test_a_client_follows_a_new_loop_but_refuses_two_live_ones(
    server: FaultServer,
) -> None:
    server.plan("GET", HEALTH, then=reply(200, {"status": "ok"}))
    client = quick(server)
    assert asyncio.run(client.health_check()) == {"status": "ok"}
    assert asyncio.run(client.health_check()) == {
        "status": "ok"
    }  # the first loop ended
    errors: list = []

    def other_loop() -> None:
        try:
            asyncio.run(client.health_check())
        except Exception as exc:
            errors.append(exc)

    async def main() -> None:
        await client.health_check()
        thread = threading.Thread(target=other_loop)
        thread.start()
        await asyncio.to_thread(thread.join, 10)
        await client.close()

    asyncio.run(main())
    assert len(errors) == 1 and "another running event loop" in str(errors[0])


@pytest.mark.parametrize(
    "kwargs",
    [
        {"base_url": "ftp://x"},
        {"base_url": "http://h", "api_key": "bad key\n"},
        {"base_url": "http://h", "timeout": 0},
        {"base_url": "http://h", "max_body_size": 0},
        {"base_url": "http://h", "deadline": -1},
    ],
)
def test_bad_arguments_are_refused_at_construction(kwargs: Any) -> None:
    with pytest.raises(ValidationError):
        AsyncAISpine(**kwargs)


@pytest.fixture(scope="module")
def served() -> Iterator[ServeProcess]:
    """A real ``ai-spine serve --demo`` on a free loopback port."""
    process = ServeProcess(["--demo", "--grace", "2"])
    yield process
    code, _, err = process.stop(signal.SIGTERM)
    assert code == 0, err


def test_the_same_answers_as_the_sync_client_from_ai_spine_serve(
    served: ServeProcess,
) -> None:
    with AISpine(base_url=served.url) as sync:
        flows = sync.list_flows()

    async def main() -> Any:
        async with AsyncAISpine(base_url=served.url) as client:
            started = await client.execute_flow("echo", {"text": "hi"})
            done = await client.wait_for_execution(started["execution_id"], 10, 0.02)
            listed = await client.list_executions(status="completed", limit=100)
            with pytest.raises(ExecutionError):
                failed = await client.execute_flow("no-such-flow", {})
                await client.wait_for_execution(failed["execution_id"], 10, 0.02)
            return started, done, listed, await client.list_flows()

    started, done, listed, async_flows = run(main)
    assert done["status"] == "completed" and done["input_data"] == {"text": "hi"}
    assert started["execution_id"] in [e["execution_id"] for e in listed]
    assert async_flows == flows


def test_a_callers_session_is_used_and_left_open(server: FaultServer) -> None:
    import aiohttp

    server.plan("GET", HEALTH, then=reply(200, {"status": "ok"}))

    async def main() -> bool:
        async with aiohttp.ClientSession() as session:
            async with AsyncAISpine(base_url=server.url, session=session) as client:
                assert client.session is session
                assert await client.health_check() == {"status": "ok"}
            return session.closed

    assert run(main) is False  # closing the client left the caller's session open
    assert server.count("GET", HEALTH) == 1


def test_wait_for_execution_is_bounded_by_a_slow_poll(server: FaultServer) -> None:
    server.plan("GET", f"/api/v1/executions/{EXEC_ID}", then=slow(10))

    async def main() -> None:
        async with quick(server, timeout=5, retry=Retry(5, backoff_factor=0)) as c:
            with pytest.raises(TimeoutError) as info:
                await c.wait_for_execution(EXEC_ID, timeout=0.3, interval=0.05)
        assert info.value.execution_id == EXEC_ID
        assert info.value.last_status is None
        assert "last poll: GET /api/v1/executions/" in str(info.value)

    run(main)
    assert server.count("GET", f"/api/v1/executions/{EXEC_ID}") == 1
