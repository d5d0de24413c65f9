"""Models: the OpenAI-compatible HTTP model against a fake server, and the offline models."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import re
import threading
from typing import Any, Iterator, List

import pytest

from spark_core.errors import SparkError
from spark_core.models import (
    EchoModel,
    Message,
    Model,
    ModelAuthenticationError,
    ModelBadRequestError,
    ModelConfigError,
    ModelConnectionError,
    ModelRateLimitError,
    ModelResponse,
    ModelResponseError,
    ModelResponseTooLargeError,
    ModelServerError,
    ModelTimeoutError,
    ScriptedModel,
    ScriptExhaustedError,
    ToolCall,
    Usage,
    estimate_cost,
    register_pricing,
)
from spark_core.models.openai import DEFAULT_BASE_URL, OpenAIModel
from spark_core.models.retry import RETRY_STATUSES, RetryPolicy, parse_retry_after
from tests.agents.conftest import SECRET_KEY
from tests.agents.fake_openai import (
    FakeOpenAIServer,
    PacedServer,
    error,
    http_answer,
    raw,
    reply,
    slow,
)

USER = [{"role": "user", "content": "hi"}]


def run(coro: Any) -> Any:
    return asyncio.run(coro)


def make_model(server: FakeOpenAIServer, **kw: Any) -> OpenAIModel:
    kw.setdefault("backoff_factor", 0.0)
    return OpenAIModel(
        "gpt-4o-mini", api_key=SECRET_KEY, base_url=server.base_url, **kw
    )


# --------------------------------------------------------------------------- OpenAIModel


def test_text_reply_and_usage(fake_openai: FakeOpenAIServer) -> None:
    fake_openai.add(reply("Hello!", prompt_tokens=12, completion_tokens=3))
    model = make_model(fake_openai)
    out = run(model.complete(USER, temperature=0.2))
    assert out.text == "Hello!"
    assert out.tool_calls == []
    assert out.usage == Usage(12, 3)
    assert out.finish_reason == "stop"
    sent = fake_openai.requests[0]
    assert sent["path"] == "/v1/chat/completions"
    assert sent["body"]["model"] == "gpt-4o-mini"
    assert sent["body"]["messages"] == [{"role": "user", "content": "hi"}]
    assert sent["body"]["temperature"] == 0.2
    assert sent["headers"]["Authorization"] == f"Bearer {SECRET_KEY}"
    assert "tools" not in sent["body"]


def test_tool_calls_are_parsed_and_tools_sent(fake_openai: FakeOpenAIServer) -> None:
    fake_openai.add(
        reply(
            None,
            [
                {"id": "c1", "name": "add", "arguments": {"a": 1, "b": 2}},
                {"id": "c2", "name": "bad", "arguments": "{not json"},
            ],
        )
    )
    schema = {
        "type": "function",
        "function": {"name": "add", "parameters": {"type": "object"}},
    }
    out = run(make_model(fake_openai).complete(USER, tools=[schema]))
    assert out.text is None
    assert out.tool_calls[0] == ToolCall("c1", "add", {"a": 1, "b": 2})
    assert out.tool_calls[1].name == "bad" and out.tool_calls[1].error is not None
    assert fake_openai.requests[0]["body"]["tools"] == [schema]


def test_tool_calls_without_ids_get_distinct_ones(
    fake_openai: FakeOpenAIServer,
) -> None:
    calls = [
        {"type": "function", "function": {"name": "add", "arguments": '{"a": 1}'}},
        {"type": "function", "function": {"name": "add", "arguments": '{"a": 2}'}},
    ]
    message = {"role": "assistant", "content": None, "tool_calls": calls}
    fake_openai.add(raw({"choices": [{"message": message}]}))
    fake_openai.add(raw({"choices": [{"message": dict(message, tool_calls=["x"])}]}))
    model = make_model(fake_openai)
    out = run(model.complete(USER))
    assert [(c.id, c.arguments) for c in out.tool_calls] == [
        ("call_0", {"a": 1}),
        ("call_1", {"a": 2}),
    ]
    with pytest.raises(ModelResponseError, match="tool call is not an object"):
        run(model.complete(USER))


def test_messages_round_trip_wire_format() -> None:
    msg = Message.assistant(None, [ToolCall("c1", "add", {"a": 1})])
    assert Message.from_dict(msg.to_dict()) == msg
    tool = Message.tool("c1", "add", "3")
    assert tool.to_dict() == {
        "role": "tool",
        "content": "3",
        "tool_call_id": "c1",
        "name": "add",
    }
    with pytest.raises(ValueError, match="role"):
        Message("robot", "x")


def test_env_defaults(
    monkeypatch: pytest.MonkeyPatch, fake_openai: FakeOpenAIServer
) -> None:
    assert OpenAIModel("gpt-4o").base_url == DEFAULT_BASE_URL
    monkeypatch.setenv("OPENAI_API_KEY", SECRET_KEY)
    monkeypatch.setenv("OPENAI_BASE_URL", fake_openai.base_url + "/")
    model = OpenAIModel("m")
    assert model.base_url == fake_openai.base_url
    assert model.has_api_key
    fake_openai.add(reply("ok"))
    run(model.complete(USER))
    assert fake_openai.requests[0]["headers"]["Authorization"] == f"Bearer {SECRET_KEY}"


def test_no_key_sends_no_authorization(fake_openai: FakeOpenAIServer) -> None:
    fake_openai.add(reply("ok"))
    run(OpenAIModel("local", base_url=fake_openai.base_url).complete(USER))
    assert "Authorization" not in fake_openai.requests[0]["headers"]


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"base_url": "ftp://x"}, "base_url"),
        ({"base_url": 8080}, "base_url must be a string or None, got int"),
        ({"api_key": 1234}, "api_key must be a string or None, got int"),
        ({"timeout": 0}, "timeout"),
        ({"timeout": "5"}, "timeout must be a number > 0 seconds, got '5'"),
        ({"timeout": float("nan")}, "timeout"),
        ({"max_retries": -1}, "max_retries"),
        ({"max_retries": "2"}, "max_retries must be an int >= 0, got '2'"),
        ({"max_retries": 1.5}, "max_retries"),
        ({"backoff_factor": "0.5"}, "backoff_factor must be a number >= 0"),
        ({"max_retry_after": -1}, "max_retry_after"),
        ({"pricing": (1.0,)}, r"pricing must be \(input, output\)"),
        ({"pricing": 5}, r"pricing must be \(input, output\)"),
        ({"pricing": ("a", "b")}, "token prices must be numbers >= 0"),
        ({"default_options": ["temperature"]}, "default_options must be a mapping"),
        ({"headers": "X-Key: 1"}, "headers must be a mapping"),
        ({"deadline": 0}, "deadline must be None or a number > 0 seconds, got 0"),
        ({"deadline": float("inf")}, "deadline"),
        ({"deadline": True}, "deadline"),
        ({"deadline": "5"}, "deadline"),
        ({"max_response_bytes": 0}, "max_response_bytes must be an int > 0, got 0"),
        ({"max_response_bytes": 1.5}, "max_response_bytes"),
        ({"max_response_bytes": True}, "max_response_bytes"),
    ],
)
def test_bad_configuration(kwargs: Any, match: str) -> None:
    with pytest.raises(ModelConfigError, match=match):
        OpenAIModel("m", **kwargs)
    with pytest.raises(ModelConfigError, match="model_id"):
        OpenAIModel("")


def test_bad_api_key_type_is_not_shown() -> None:
    secret = SECRET_KEY.encode()  # bytes instead of str
    with pytest.raises(ModelConfigError) as info:
        OpenAIModel("m", api_key=secret)  # type: ignore[arg-type]
    assert SECRET_KEY not in str(info.value)


def test_timeout_and_max_retries_are_accepted_positionally() -> None:
    model = OpenAIModel("m", None, "http://127.0.0.1:1/v1", 5, 1)
    assert (model.timeout, model.max_retries, model.retry.max_retries) == (5.0, 1, 1)


@pytest.fixture
def sleeps(monkeypatch: pytest.MonkeyPatch) -> List[float]:
    """Record the delays the model sleeps between attempts (without sleeping)."""
    delays: List[float] = []

    async def fake_sleep(delay: float) -> None:
        delays.append(delay)

    monkeypatch.setattr("spark_core.models.openai.asyncio.sleep", fake_sleep)
    return delays


def test_retry_after_is_waited_for(
    fake_openai: FakeOpenAIServer, sleeps: List[float]
) -> None:
    fake_openai.add(
        error(429, "slow down", {"Retry-After": "1"}),
        error(503, "busy", {"retry-after-ms": "300"}),
        error(500, "oops", {"Retry-After": "2", "retry-after-ms": "250"}),
        reply("finally"),
    )
    # backoff_factor=0: any non-zero wait can only come from the headers.
    out = run(make_model(fake_openai, max_retries=3).complete(USER))
    assert out.text == "finally"
    assert sleeps == [1.0, 0.3, 0.25]  # retry-after-ms (finer) wins over Retry-After


def test_retry_after_up_to_the_cap_is_waited_for_and_longer_is_not(
    fake_openai: FakeOpenAIServer, sleeps: List[float]
) -> None:
    fake_openai.add(error(429, "wait", {"Retry-After": "2"}), reply("ok"))
    model = make_model(fake_openai, max_retries=3, max_retry_after=2.0)
    assert run(model.complete(USER)).text == "ok"
    assert sleeps == [2.0]
    fake_openai.add(error(429, "wait longer", {"Retry-After": "2.5"}))
    with pytest.raises(ModelRateLimitError) as info:
        run(model.complete(USER))
    assert info.value.retry_after == 2.5
    assert sleeps == [2.0] and len(fake_openai.requests) == 3  # no wait, no new attempt


def test_backoff_doubles_without_retry_after(
    fake_openai: FakeOpenAIServer, sleeps: List[float]
) -> None:
    fake_openai.add(error(500), error(502), error(504), reply("ok"))
    model = make_model(fake_openai, max_retries=3, backoff_factor=0.5)
    model.retry = dataclasses.replace(model.retry, rng=lambda: 1.0)  # the full delay
    run(model.complete(USER))
    assert sleeps == [0.5, 1.0, 2.0]


def test_408_is_retried_then_a_timeout_error(
    fake_openai: FakeOpenAIServer, sleeps: List[float]
) -> None:
    fake_openai.add(error(408, "request timeout"), error(408, "request timeout"))
    with pytest.raises(ModelTimeoutError) as info:
        run(make_model(fake_openai, max_retries=1).complete(USER))
    assert info.value.status_code == 408 and len(fake_openai.requests) == 2


def test_409_is_not_retried(fake_openai: FakeOpenAIServer) -> None:
    fake_openai.add(error(409, "conflict"), reply("not reached"))
    with pytest.raises(ModelBadRequestError, match="conflict"):
        run(make_model(fake_openai, max_retries=2).complete(USER))
    assert len(fake_openai.requests) == 1


def test_retry_rules_are_the_clients() -> None:
    from ai_spine import constants
    from ai_spine import retry as client_retry

    # 408 is the one documented addition (spark_core.models.retry explains why).
    assert RETRY_STATUSES - {408} == constants.RETRY_STATUSES
    ours, theirs = RetryPolicy(), client_retry.Retry()
    assert (ours.backoff_factor, ours.backoff_max, ours.max_retry_after) == (
        theirs.backoff_factor,
        theirs.backoff_max,
        theirs.retry_after_max,
    )
    for value in ("3", "1.5", "-2", "nan", "inf", "soon", ""):
        assert parse_retry_after({"Retry-After": value}) == (
            client_retry.parse_retry_after(value)
        ), value


@pytest.mark.parametrize("draw, factor", [(0.0, 0.5), (0.5, 0.75), (0.999, 0.9995)])
def test_jitter_spreads_between_half_and_all_of_the_delay(
    draw: float, factor: float
) -> None:
    policy = RetryPolicy(backoff_factor=4.0, rng=lambda: draw).increment("HTTP 500")
    assert policy.delay() == pytest.approx(4.0 * factor)


def test_429_then_500_are_retried(fake_openai: FakeOpenAIServer) -> None:
    fake_openai.add(
        error(429, "slow down", {"Retry-After": "0"}),
        error(500, "oops"),
        reply("finally"),
    )
    out = run(make_model(fake_openai, max_retries=2).complete(USER))
    assert out.text == "finally"
    assert len(fake_openai.requests) == 3


def test_retries_exhausted_raise_typed_errors(fake_openai: FakeOpenAIServer) -> None:
    fake_openai.add(error(503, "down"), error(503, "still down"))
    with pytest.raises(ModelServerError) as info:
        run(make_model(fake_openai, max_retries=1).complete(USER))
    assert info.value.status_code == 503
    assert "still down" in str(info.value)
    assert info.value.request_id == "req-2"
    assert isinstance(info.value, SparkError)
    fake_openai.add(error(429, "limit", {"Retry-After": "0"}))
    with pytest.raises(ModelRateLimitError) as limited:
        run(make_model(fake_openai, max_retries=0).complete(USER))
    assert limited.value.retry_after == 0.0


def test_too_long_retry_after_fails_fast(fake_openai: FakeOpenAIServer) -> None:
    fake_openai.add(error(429, "come back tomorrow", {"Retry-After": "86400"}))
    with pytest.raises(ModelRateLimitError) as info:
        run(make_model(fake_openai, max_retries=5).complete(USER))
    assert info.value.retry_after == 86400.0
    assert len(fake_openai.requests) == 1


def test_client_errors_are_not_retried(fake_openai: FakeOpenAIServer) -> None:
    fake_openai.add(error(400, "bad tools"))
    with pytest.raises(ModelBadRequestError, match="bad tools"):
        run(make_model(fake_openai).complete(USER))
    fake_openai.add(error(401, "Incorrect API key provided: " + SECRET_KEY))
    with pytest.raises(ModelAuthenticationError) as info:
        run(make_model(fake_openai).complete(USER))
    assert SECRET_KEY not in str(info.value)
    assert SECRET_KEY not in repr(info.value.body)
    assert len(fake_openai.requests) == 2


def test_connection_refused_is_retried_then_typed() -> None:
    server = FakeOpenAIServer().start()
    url = server.base_url
    server.stop()  # nothing listens on that port any more
    model = OpenAIModel(
        "m", api_key=SECRET_KEY, base_url=url, max_retries=1, backoff_factor=0
    )
    with pytest.raises(ModelConnectionError) as info:
        run(model.complete(USER))
    assert SECRET_KEY not in str(info.value)


def test_timeouts_are_retried_then_typed(fake_openai: FakeOpenAIServer) -> None:
    fake_openai.add(slow(reply("late"), 2.0), slow(reply("late"), 2.0))
    model = make_model(fake_openai, timeout=0.2, max_retries=1)
    with pytest.raises(ModelTimeoutError) as info:
        run(model.complete(USER))
    assert isinstance(info.value, TimeoutError)
    assert "did not answer within 0.2s" in str(info.value)
    assert len(fake_openai.requests) == 2


COMPLETION = json.dumps(
    {"choices": [{"message": {"content": "late"}, "finish_reason": "stop"}]}
).encode()


def trickled_body() -> Iterator[bytes]:
    """Headers at once, then the body one byte per pause."""
    body = COMPLETION.ljust(200)  # trailing spaces: still valid JSON
    yield http_answer(b"", length=len(body))
    yield from (body[i : i + 1] for i in range(len(body)))


def trickled_headers() -> Iterator[bytes]:
    """The whole answer, status line and headers included, one byte per pause."""
    answer = http_answer(COMPLETION, length=len(COMPLETION))
    yield from (answer[i : i + 1] for i in range(len(answer)))


@pytest.mark.parametrize("answer", [trickled_body, trickled_headers])
def test_timeout_bounds_each_attempt_not_each_read(answer: Any) -> None:
    # Each byte comes well within the timeout; the whole answer would take ten seconds.
    # 2 s, not less: on a loaded machine the server must get to send its first bytes.
    with PacedServer(answer, pause=0.05) as server:
        model = OpenAIModel("m", base_url=server.base_url, timeout=2, max_retries=0)
        with pytest.raises(ModelTimeoutError, match="did not answer within 2s"):
            run(model.complete(USER))
        server.wait()
    assert server.finished == [False]  # the client hung up mid-answer
    assert 0 < server.sent[0] < sum(len(piece) for piece in answer())


def test_a_pooled_connection_outlives_its_attempts_timer() -> None:
    with FakeOpenAIServer(keep_alive=True) as server:
        server.add(reply("one"), reply("two"))
        model = make_model(server, timeout=0.3)
        assert run(model.complete(USER)).text == "one"
        # Past the first attempt's timeout: its timer must not have cut the pooled socket.
        threading.Event().wait(0.5)
        assert run(model.complete(USER)).text == "two"
        model.close()
    first, second = (r["client"] for r in server.requests)
    assert first == second  # one connection, reused


def test_deadline_bounds_the_call_across_retries() -> None:
    with PacedServer(trickled_body, pause=0.05) as server:
        model = OpenAIModel(
            "m",
            base_url=server.base_url,
            timeout=30,
            max_retries=3,
            backoff_factor=0,
            deadline=0.5,
        )
        with pytest.raises(ModelTimeoutError, match="deadline of 0.5s exceeded"):
            run(model.complete(USER))
        server.wait()
    # One attempt, cut at the deadline; no retry was started after it.
    assert server.finished == [False]


def test_a_backoff_past_the_deadline_raises_the_last_error(
    fake_openai: FakeOpenAIServer, sleeps: List[float]
) -> None:
    fake_openai.add(error(503, "busy"), reply("not reached"))
    model = make_model(fake_openai, max_retries=3, backoff_factor=10, deadline=5)
    model.retry = dataclasses.replace(model.retry, rng=lambda: 1.0)  # the full 10 s
    with pytest.raises(ModelServerError, match="busy"):
        run(model.complete(USER))
    assert sleeps == [] and len(fake_openai.requests) == 1


def test_a_deadline_lets_a_quick_call_through(fake_openai: FakeOpenAIServer) -> None:
    fake_openai.add(error(500), reply("ok"))
    model = make_model(fake_openai, max_retries=1, deadline=30)
    assert run(model.complete(USER)).text == "ok"
    assert model.deadline == 30.0


MIB = 1024 * 1024
PADDING = 64  # MiB of spaces after a valid completion: still valid JSON


def huge_answer(status: str = "200 OK", announce: bool = False) -> Any:
    """An answer of 64 MiB and more, made as it is sent (the test never holds it whole)."""
    size = len(COMPLETION) + PADDING * MIB

    def answer() -> Iterator[bytes]:
        yield http_answer(b"", length=size if announce else None, status=status)
        yield COMPLETION
        for _ in range(PADDING * 16):
            yield b" " * (MIB // 16)

    return answer


@pytest.mark.parametrize("announce", [False, True], ids=["streamed", "announced"])
def test_a_body_over_the_size_limit_is_refused_unread(announce: bool) -> None:
    with PacedServer(huge_answer(announce=announce)) as server:
        model = OpenAIModel(
            "m", base_url=server.base_url, max_retries=0, max_response_bytes=MIB
        )
        with pytest.raises(ModelResponseTooLargeError) as info:
            run(model.complete(USER))
        server.wait()
    assert isinstance(info.value, ModelResponseError)
    assert info.value.limit == MIB and "over 1048576 bytes" in str(info.value)
    assert info.value.status_code == 200
    # The client stopped reading and hung up long before the end.
    assert server.finished == [False] and server.sent[0] < PADDING * MIB // 2


def test_an_error_body_over_the_limit_keeps_the_status_class() -> None:
    with PacedServer(huge_answer("500 Internal Server Error")) as server:
        model = OpenAIModel(
            "m", base_url=server.base_url, max_retries=0, max_response_bytes=MIB
        )
        with pytest.raises(ModelServerError, match="over 1048576 bytes"):
            run(model.complete(USER))
        server.wait()
    assert server.finished == [False]


def test_the_size_limit_has_a_safe_default(fake_openai: FakeOpenAIServer) -> None:
    assert OpenAIModel("m").max_response_bytes == 32 * MIB
    fake_openai.add(reply("x" * 1000))
    model = make_model(fake_openai, max_response_bytes=2000)
    assert (
        run(model.complete(USER)).text == "x" * 1000
    )  # under the limit: read as usual


def test_malformed_answers_are_typed(fake_openai: FakeOpenAIServer) -> None:
    fake_openai.add(
        raw("<html>proxy error</html>"),
        raw({"choices": []}),
        raw({"choices": [{"message": {"content": 42}}]}),
    )
    model = make_model(fake_openai)
    with pytest.raises(ModelResponseError, match="not JSON"):
        run(model.complete(USER))
    with pytest.raises(ModelResponseError, match="no choices"):
        run(model.complete(USER))
    with pytest.raises(ModelResponseError, match="not text"):
        run(model.complete(USER))


DEEP = "[" * 100_000 + "]" * 100_000  # valid JSON, deeper than any recursion limit
# Decodable, but deep enough to break whoever serialises it next (state, checkpoints).
SHALLOWER = '{"a": ' + "[" * 500 + "]" * 500 + "}"


def _completion(message: Any, **extra: Any) -> Any:
    return {"choices": [{"message": message, "finish_reason": "stop"}], **extra}


def _call(arguments: Any) -> Any:
    function = {"name": "lookup", "arguments": arguments}
    return {"id": "c1", "type": "function", "function": function}


@pytest.mark.parametrize(
    "body, match",
    [
        (DEEP, "not JSON"),
        (
            '{"choices": [{"message": {"content": "hi"}}], "x": ' + DEEP + "}",
            "not JSON",
        ),
        (_completion({"content": None, "tool_calls": [_call(DEEP)]}), "arguments"),
        (
            '{"choices": [{"message": {"content": "hi"}}], "x": ' + SHALLOWER + "}",
            r"not JSON \(nested deeper than 128 levels\)",
        ),
        (
            _completion({"content": None, "tool_calls": [_call(SHALLOWER)]}),
            "arguments are nested deeper than 128 levels",
        ),
        (_completion({"content": "hi"}, usage="lots"), "usage"),
        (_completion({"content": "hi"}, usage=[1, 2]), "usage"),
        (_completion({"content": "hi"}, usage=7), "usage"),
        (_completion({"content": [{"type": "text", "text": 5}]}), "content"),
        (_completion({"content": None, "tool_calls": 3}), "tool_calls"),
        (_completion({"content": None, "tool_calls": {"a": 1}}), "tool_calls"),
    ],
)
def test_hostile_answers_are_response_errors(
    fake_openai: FakeOpenAIServer, body: Any, match: Any
) -> None:
    fake_openai.add(raw(body))
    with pytest.raises(ModelResponseError, match=match):
        run(make_model(fake_openai).complete(USER))


def test_a_deep_error_body_keeps_the_status_class(
    fake_openai: FakeOpenAIServer,
) -> None:
    fake_openai.add(raw(DEEP, status=400), raw(DEEP, status=503))
    with pytest.raises(ModelBadRequestError):
        run(make_model(fake_openai).complete(USER))
    with pytest.raises(ModelServerError):
        run(make_model(fake_openai, max_retries=0).complete(USER))


def test_openai_model_is_exported_lazily() -> None:
    import spark_core.models as models

    assert models.OpenAIModel is OpenAIModel
    with pytest.raises(AttributeError, match="no attribute 'Nope'"):
        getattr(models, "Nope")


def test_key_never_in_logs_or_repr(
    fake_openai: FakeOpenAIServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    fake_openai.add(error(500, "x"), error(401, f"bad key {SECRET_KEY}"))
    model = make_model(fake_openai)
    with pytest.raises(ModelAuthenticationError):
        run(model.complete(USER))
    assert caplog.records, "the model logs its calls at DEBUG"
    assert SECRET_KEY not in caplog.text
    assert SECRET_KEY not in repr(model)
    assert "api_key=set" in repr(model)


def test_credentials_in_the_url_are_not_shown(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    server = FakeOpenAIServer().start()
    port = server.base_url.split(":")[2].split("/")[0]
    server.stop()
    url = f"http://bob:hunter2@127.0.0.1:{port}/v1?token=t0ps3cret"
    model = OpenAIModel("m", base_url=url, max_retries=0)
    with pytest.raises(ModelConnectionError) as info:
        run(model.complete(USER))
    shown = repr(model) + str(info.value) + caplog.text
    assert "hunter2" not in shown and "t0ps3cret" not in shown
    assert f"http://127.0.0.1:{port}/v1" in shown


def test_parse_retry_after() -> None:
    assert parse_retry_after({"Retry-After": "3"}) == 3.0
    assert parse_retry_after({"retry-after-ms": "250"}) == 0.25
    assert (
        parse_retry_after(
            {"Retry-After": "Wed, 21 Oct 2015 07:28:10 GMT"}, now=1445412480
        )
        == 10
    )
    assert parse_retry_after({"Retry-After": "soon"}) is None
    assert parse_retry_after({"Retry-After": "nan"}) is None
    assert parse_retry_after({"retry-after-ms": "inf", "Retry-After": "2"}) == 2.0
    assert parse_retry_after({}) is None


def test_retry_policy_backoff() -> None:
    no_jitter = RetryPolicy(
        max_retries=3, backoff_factor=1.0, backoff_max=3.0, rng=lambda: 1.0
    )
    policy = no_jitter
    delays = []
    for _ in range(3):
        policy = policy.increment("HTTP 500")
        delays.append(policy.delay())
    assert delays == [1.0, 2.0, 3.0]
    assert not policy.is_exhausted()
    assert policy.increment("HTTP 500").is_exhausted()
    assert policy.delay(retry_after=0.5) == 0.5
    with pytest.raises(ValueError):
        RetryPolicy(max_retries=-1)


def test_pricing() -> None:
    model = OpenAIModel("gpt-4o-2024-08-06")
    assert model.estimate_cost(Usage(1_000_000, 0)) == pytest.approx(2.5)
    assert estimate_cost("no-such-model", Usage(10, 10)) == 0.0
    register_pricing("my-local", 1.0, 2.0)
    assert estimate_cost("my-local-7b", Usage(1_000_000, 1_000_000)) == pytest.approx(
        3.0
    )
    assert (
        OpenAIModel("x", pricing=(0.0, 1.0)).estimate_cost(Usage(5, 1_000_000)) == 1.0
    )


@pytest.mark.parametrize("pricing", [5, (1.0,), (1, 2, 3), ("a", "b"), (-1, 0)])
def test_every_model_reads_pricing_alike(pricing: Any) -> None:
    from spark_core.agents.factory import model_from_spec

    with pytest.raises(
        ValueError, match="pricing must be|token prices must be"
    ) as info:
        ScriptedModel([], pricing=pricing)
    with pytest.raises(ModelConfigError, match=re.escape(str(info.value))):
        OpenAIModel("m", pricing=pricing)
    spec = {"provider": "openai", "model_id": "m", "pricing": pricing}
    with pytest.raises(ModelConfigError):
        model_from_spec(spec)
    # A JSON list is a pair too.
    assert ScriptedModel([], pricing=[1, 2]).estimate_cost(Usage(10**6, 0)) == 1.0


# --------------------------------------------------------------------------- offline models


def test_echo_model() -> None:
    model = EchoModel(prefix="echo: ")
    out = run(model.complete([Message.system("s"), Message.user("ping")]))
    assert out.text == "echo: ping"
    assert out.usage.completion_tokens > 0
    assert model.calls == 1
    assert isinstance(model, Model)


def test_scripted_model_plays_and_records() -> None:
    model = ScriptedModel(
        [
            {"tool_calls": [{"name": "add", "arguments": {"a": 1}}]},
            lambda msgs: f"saw {len(msgs)} messages",
            ModelResponse(text="ready-made"),
        ]
    )
    first = run(model.complete(USER, tools=[{"type": "function"}]))
    assert first.tool_calls[0].name == "add" and first.tool_calls[0].arguments == {
        "a": 1
    }
    assert run(model.complete(USER + USER)).text == "saw 2 messages"
    assert run(model.complete(USER)).text == "ready-made"
    assert model.requests[0]["tools"] == [{"type": "function"}]
    with pytest.raises(
        ScriptExhaustedError, match="ran out of replies: the script has 3"
    ):
        run(model.complete(USER))


def test_scripted_model_loop_and_validation() -> None:
    model = ScriptedModel(["a", "b"], loop=True)
    texts = [run(model.complete(USER)).text for _ in range(3)]
    assert texts == ["a", "b", "a"]
    with pytest.raises(ValueError, match="step 0"):
        ScriptedModel([42])


def test_every_model_satisfies_the_protocol() -> None:
    models: List[Model] = [
        OpenAIModel("x"),
        EchoModel(),
        ScriptedModel([]),
    ]  # mypy checks
    assert all(isinstance(m, Model) for m in models)
