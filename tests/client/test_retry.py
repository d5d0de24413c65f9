"""The Retry policy value and the retry loop (mocked HTTP, pinned sleeps)."""

from __future__ import annotations

import email.utils
import time
from typing import Any, Dict, List, Optional

import pytest
import requests
import responses
from responses import matchers

from ai_spine import (
    AISpine,
    AISpineError,
    NetworkError,
    NotFoundError,
    RateLimitError,
    Retry,
    ServerError,
    TimeoutError,
)
from ai_spine import api, call, retry
from ai_spine.exceptions import ValidationError
from ai_spine.retry import RequestHistory, parse_retry_after
from tests.client.conftest import BASE, V1

NOW = 1_700_000_000.0


# -- parse_retry_after ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value, expected",
    [
        ("120", 120.0),
        ("1.5", 1.5),
        (" 3 ", 3.0),
        ("0", 0.0),
        ("-5", 0.0),
        (None, None),
        ("", None),
        ("soon", None),
        ("nan", None),
        ("inf", None),
        (email.utils.formatdate(NOW + 30, usegmt=True), 30.0),
        (email.utils.formatdate(NOW - 30, usegmt=True), 0.0),
        ("Tue, 14 Nov 2023 22:14:20 -0000", 60.0),  # "-0000": UTC, no zone
    ],
)
def test_parse_retry_after_header(
    value: Optional[str], expected: Optional[float]
) -> None:
    assert parse_retry_after(value, now=NOW) == expected


def test_parse_retry_after_uses_the_clock_by_default() -> None:
    far = email.utils.formatdate(4_000_000_000, usegmt=True)  # year 2096
    seconds = parse_retry_after(far)
    assert seconds is not None and seconds > 3600


# -- the Retry value --------------------------------------------------------------------------


def test_increment_returns_a_new_value_with_history() -> None:
    policy = Retry(total=2)
    one = policy.increment("GET", "u", status=503)
    two = one.increment("GET", "u", error="read")
    assert policy.history == () and policy.retries_taken == 0
    assert one.history == (RequestHistory("GET", "u", 503, None),)
    assert two.history[1] == RequestHistory("GET", "u", None, "read")
    assert not two.is_exhausted()
    assert two.increment("GET", "u").is_exhausted()
    with pytest.raises(AttributeError):
        policy.total = 5  # type: ignore[misc]


def test_backoff_grows_and_is_capped(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(retry, "jitter", lambda delay: delay)
    policy = Retry(total=10, backoff_factor=0.5, backoff_max=3)
    delays = []
    for _ in range(6):
        policy = policy.increment("GET", "u")
        delays.append(policy.get_backoff())
    assert delays == [0.5, 1.0, 2.0, 3, 3, 3]
    assert Retry().get_backoff() == 0.0
    assert Retry(backoff_factor=0).increment("GET", "u").get_backoff() == 0.0


def test_jitter_stays_between_half_and_full() -> None:
    for _ in range(200):
        assert 0.5 <= retry.jitter(1.0) <= 1.0


def test_retry_after_wins_but_is_capped() -> None:
    policy = Retry(retry_after_max=60).increment("GET", "u")
    assert policy.get_delay(5) == 5
    assert policy.get_delay(60) == 60
    assert policy.get_delay(3600) is None


@pytest.mark.parametrize(
    "method, kwargs, expected",
    [
        ("GET", {"error": "read"}, True),
        ("GET", {"error": "timeout"}, True),
        ("GET", {"status": 500}, True),
        ("DELETE", {"status": 502}, True),
        ("GET", {"status": 404}, False),
        ("GET", {"status": 400}, False),
        ("GET", {}, False),
        ("POST", {"error": "connect"}, True),
        ("POST", {"error": "read"}, False),
        ("POST", {"error": "timeout"}, False),
        ("POST", {"status": 429}, True),
        ("POST", {"status": 503}, False),
        ("POST", {"status": 503, "has_retry_after": True}, True),
        ("POST", {"status": 500, "has_retry_after": True}, False),
        ("POST", {"status": 502}, False),
        ("POST", {"status": 502, "idempotent": True}, True),
        ("POST", {"error": "read", "idempotent": True}, True),
        ("POST", {"status": 422, "idempotent": True}, False),
    ],
)
def test_retry_rules(method: str, kwargs: Dict[str, Any], expected: bool) -> None:
    assert Retry().is_retryable(method, **kwargs) is expected


@pytest.mark.parametrize(
    "kwargs",
    [
        {"total": -1},
        {"total": 1.5},
        {"total": True},
        {"backoff_factor": -1},
        {"backoff_max": "x"},
    ],
)
def test_retry_rejects_bad_values(kwargs: Dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        Retry(**kwargs)


# -- the retry loop ---------------------------------------------------------------------------


@pytest.fixture
def pinned(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(retry, "jitter", lambda delay: delay)


def test_get_retries_5xx_then_succeeds(
    client: AISpine, mocked: responses.RequestsMock, sleeps: List[float], pinned: None
) -> None:
    mocked.get(BASE + "/health", status=503, json={"detail": "busy"})
    mocked.get(BASE + "/health", status=502, body="<html>bad gateway</html>")
    mocked.get(BASE + "/health", json={"status": "healthy"})
    assert client.health_check() == {"status": "healthy"}
    assert sleeps == [0.5, 1.0]


def test_exhausted_retries_keep_the_real_class(
    mocked: responses.RequestsMock, sleeps: List[float]
) -> None:
    mocked.get(
        BASE + "/health",
        status=429,
        json={"detail": "slow down"},
        headers={"Retry-After": "2"},
    )
    mocked.get(BASE + "/status", status=503, json={"detail": "maintenance"})
    with AISpine(base_url=BASE, max_retries=2) as client:
        with pytest.raises(RateLimitError) as limited:
            client.health_check()
        with pytest.raises(ServerError) as failed:
            client.get_status()
    assert limited.value.retry_after == 2.0 and limited.value.status_code == 429
    assert failed.value.status_code == 503
    assert len(mocked.calls) == 6
    assert sleeps[:2] == [2.0, 2.0]


def test_retry_after_given_only_in_a_429_body_is_waited_for(
    client: AISpine, mocked: responses.RequestsMock, sleeps: List[float]
) -> None:
    mocked.get(BASE + "/health", status=429, json={"detail": "slow", "retry_after": 7})
    mocked.get(BASE + "/health", status=429, json={"retry_after": 7200})
    with pytest.raises(RateLimitError) as info:
        client.health_check()
    # The first was waited for like a header (it got the computed backoff before); the
    # second asked for longer than the cap, so it was raised at once.
    assert sleeps == [7.0] and info.value.retry_after == 7200


def test_retry_after_is_read_once_per_answer(
    client: AISpine,
    mocked: responses.RequestsMock,
    sleeps: List[float],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    read: List[Optional[str]] = []

    def spy(value: Optional[str], **kwargs: Any) -> Optional[float]:
        read.append(value)
        return parse_retry_after(value, **kwargs)

    monkeypatch.setattr(call, "parse_retry_after", spy)
    mocked.get(BASE + "/health", status=429, json={"detail": "slow"})
    mocked.get(BASE + "/health", status=503, headers={"Retry-After": "1"})
    mocked.get(BASE + "/health", status=429, headers={"Retry-After": "2"})
    mocked.get(BASE + "/health", json={"status": "healthy"})
    client.health_check()
    assert read == [None, "1", "2"]  # each error answer's header, once
    assert sleeps[1:] == [1.0, 2.0]


def test_http_date_retry_after_is_honoured(
    client: AISpine, mocked: responses.RequestsMock, sleeps: List[float]
) -> None:
    later = email.utils.formatdate(time.time() + 5, usegmt=True)
    mocked.get(BASE + "/health", status=503, headers={"Retry-After": later})
    mocked.get(BASE + "/health", json={"status": "healthy"})
    client.health_check()
    assert len(sleeps) == 1 and 3 < sleeps[0] <= 5


def test_hours_of_retry_after_are_not_waited(
    client: AISpine, mocked: responses.RequestsMock, sleeps: List[float]
) -> None:
    mocked.get(BASE + "/health", status=429, headers={"Retry-After": "7200"})
    with pytest.raises(RateLimitError) as info:
        client.health_check()
    assert info.value.retry_after == 7200
    assert sleeps == [] and len(mocked.calls) == 1


def test_4xx_is_never_retried(
    client: AISpine, mocked: responses.RequestsMock, sleeps: List[float]
) -> None:
    mocked.get(V1 + "/flows/x", status=404, json={"detail": "Flow not found"})
    mocked.get(V1 + "/flows/y", status=422, json={"detail": "bad"})
    with pytest.raises(NotFoundError):
        client.get_flow("x")
    with pytest.raises(ValidationError):
        client.get_flow("y")
    assert len(mocked.calls) == 2 and sleeps == []


@pytest.mark.parametrize(
    "answer, cls, status",
    [
        ({"status": 500, "json": {"detail": "boom"}}, ServerError, 500),
        ({"status": 502, "body": "<html>bad gateway</html>"}, ServerError, 502),
        ({"status": 503, "json": {"detail": "busy"}}, ServerError, 503),
        ({"status": 504, "json": {"detail": "gateway timeout"}}, ServerError, 504),
        (
            {"body": requests.exceptions.ConnectionError("connection reset by peer")},
            NetworkError,
            None,
        ),
        (
            {"body": requests.exceptions.ReadTimeout("read timed out")},
            TimeoutError,
            None,
        ),
    ],
)
def test_execute_post_is_not_resent_when_the_server_may_have_acted(
    client: AISpine,
    mocked: responses.RequestsMock,
    sleeps: List[float],
    answer: Dict[str, Any],
    cls: type,
    status: Optional[int],
) -> None:
    mocked.post(V1 + "/flows/execute", **answer)
    with pytest.raises(AISpineError) as info:
        client.execute_flow("f", {"x": 1})
    assert type(info.value) is cls and info.value.status_code == status
    assert len(mocked.calls) == 1 and sleeps == []


@pytest.mark.parametrize(
    "first",
    [
        {"status": 429, "json": {"detail": "slow down"}},
        {"status": 503, "json": {"detail": "busy"}, "headers": {"Retry-After": "1"}},
        {"body": requests.exceptions.ConnectTimeout("connect timed out")},
    ],
)
def test_execute_post_is_resent_when_the_server_cannot_have_acted(
    client: AISpine,
    mocked: responses.RequestsMock,
    sleeps: List[float],
    first: Dict[str, Any],
) -> None:
    mocked.post(V1 + "/flows/execute", **first)
    mocked.post(V1 + "/flows/execute", json={"execution_id": "e1", "status": "pending"})
    assert client.execute_flow("f", {})["execution_id"] == "e1"
    assert len(mocked.calls) == 2 and len(sleeps) == 1


def test_idempotency_key_makes_post_retryable_with_the_same_key(
    client: AISpine, mocked: responses.RequestsMock, sleeps: List[float]
) -> None:
    key = matchers.header_matcher({"Idempotency-Key": "job-7"})
    mocked.post(V1 + "/flows/execute", status=502, body="bad gateway", match=[key])
    mocked.post(
        V1 + "/flows/execute",
        body=requests.exceptions.ConnectionError("reset"),
        match=[key],
    )
    mocked.post(
        V1 + "/flows/execute",
        json={"execution_id": "e1", "status": "pending"},
        match=[key],
    )
    assert client.execute_flow("f", {}, idempotency_key="job-7")["execution_id"] == "e1"
    assert len(mocked.calls) == 3


def test_custom_retry_policy_and_zero_retries(
    mocked: responses.RequestsMock, sleeps: List[float]
) -> None:
    mocked.get(BASE + "/health", status=500, json={"detail": "x"})
    with AISpine(base_url=BASE, retry=Retry(total=0)) as client:
        with pytest.raises(ServerError):
            client.health_check()
    assert client.max_retries == 0 and sleeps == []


def test_deadline_stops_retries_with_the_last_real_error(
    mocked: responses.RequestsMock, sleeps: List[float]
) -> None:
    mocked.get(
        BASE + "/health",
        status=503,
        json={"detail": "busy"},
        headers={"Retry-After": "30"},
    )
    with AISpine(base_url=BASE, max_retries=5, deadline=10) as client:
        with pytest.raises(ServerError):
            client.health_check()
    assert len(mocked.calls) == 1 and sleeps == []


def test_deadline_already_spent_is_a_timeout(
    monkeypatch: pytest.MonkeyPatch, mocked: responses.RequestsMock
) -> None:
    clock = iter([100.0, 200.0])
    monkeypatch.setattr(api, "_monotonic", lambda: next(clock))
    with AISpine(base_url=BASE, deadline=5) as client:
        with pytest.raises(TimeoutError, match="deadline of 5s exceeded"):
            client.health_check()
    assert len(mocked.calls) == 0


def test_a_transport_failure_at_the_deadline_says_the_deadline_passed(
    mocked: responses.RequestsMock,
    monkeypatch: pytest.MonkeyPatch,
    sleeps: List[float],
) -> None:
    now = [0.0]
    monkeypatch.setattr(api, "_monotonic", lambda: now[0])

    def answer(request: Any) -> Any:
        now[0] = 10.0  # the attempt used all the time that was left
        raise requests.exceptions.ReadTimeout("read timed out")

    mocked.add_callback("GET", BASE + "/health", callback=answer)
    with AISpine(base_url=BASE, deadline=5) as client:
        # It said "no answer within 5s (ReadTimeout)", as if the timeout were 5 s.
        with pytest.raises(TimeoutError, match="deadline of 5s exceeded") as info:
            client.health_check()
    assert isinstance(info.value.__cause__, TimeoutError)
    assert len(mocked.calls) == 1 and sleeps == []


def test_an_answer_the_deadline_cut_is_not_used(
    mocked: responses.RequestsMock, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A body cut by the watchdog can end early yet look whole (no error from the read).
    monkeypatch.setattr(api._WATCHDOG, "disarm", lambda entry: True)
    mocked.get(BASE + "/health", json={"status": "heal"})
    with AISpine(base_url=BASE, deadline=5) as client:
        with pytest.raises(TimeoutError, match="deadline of 5s exceeded"):
            client.health_check()


def _record_attempt_timeouts(
    client: AISpine, monkeypatch: pytest.MonkeyPatch
) -> List[Any]:
    """Spy on the session: the per-attempt timeout of every request sent, in order."""
    seen: List[Any] = []
    original = client.session.request

    def spy(*args: Any, **kwargs: Any) -> Any:
        seen.append(kwargs["timeout"])
        return original(*args, **kwargs)

    monkeypatch.setattr(client.session, "request", spy)
    return seen


def test_per_attempt_timeout_is_shortened_by_the_deadline(
    mocked: responses.RequestsMock, monkeypatch: pytest.MonkeyPatch
) -> None:
    mocked.get(BASE + "/health", json={})
    with AISpine(base_url=BASE, timeout=30, deadline=2) as client:
        seen = _record_attempt_timeouts(client, monkeypatch)
        client.health_check()
    assert 0 < seen[0] <= 2


def test_deadline_must_be_positive() -> None:
    with pytest.raises(ValidationError):
        AISpine(base_url=BASE, deadline=-1)


def test_client_deadline_still_bounds_a_longer_call_budget(
    mocked: responses.RequestsMock, monkeypatch: pytest.MonkeyPatch
) -> None:
    mocked.get(BASE + "/health", json={})
    with AISpine(base_url=BASE, timeout=30, deadline=2) as client:
        seen = _record_attempt_timeouts(client, monkeypatch)
        client._api.request("GET", "/health", deadline=100)
        client._api.request("GET", "/health", deadline=1)
    assert 0 < seen[0] <= 2 and 0 < seen[1] <= 1
