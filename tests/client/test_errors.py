"""Error mapping: every status family, FastAPI details, bodies that are not JSON, redaction."""

from __future__ import annotations

import builtins
import logging
import subprocess
import sys
from typing import Any, Dict, List, Type

import pytest
import requests
import responses
import urllib3

from ai_spine import (
    AISpine,
    AISpineError,
    APIError,
    AuthenticationError,
    NetworkError,
    NotFoundError,
    RateLimitError,
    ServerError,
    TimeoutError,
    ValidationError,
)
from ai_spine.exceptions import ExecutionError, FlowNotFoundError
from tests.client.conftest import BASE, V1

EXEC_ID = "3f2b8c1e-8a4d-4c57-9a51-2b7c9e0d4f11"


@pytest.mark.parametrize(
    "status, cls",
    [
        (400, ValidationError),
        (401, AuthenticationError),
        (403, AuthenticationError),
        (404, NotFoundError),
        (409, APIError),
        (422, ValidationError),
        (429, RateLimitError),
        (500, ServerError),
        (501, ServerError),
        (502, ServerError),
        (503, ServerError),
        (504, ServerError),
    ],
)
def test_status_maps_to_its_class(
    mocked: responses.RequestsMock,
    sleeps: List[float],
    status: int,
    cls: Type[APIError],
) -> None:
    mocked.get(BASE + "/status", status=status, json={"detail": f"said {status}"})
    with AISpine(base_url=BASE, max_retries=0) as client:
        with pytest.raises(cls) as info:
            client.get_status()
    err = info.value
    assert type(err) is cls
    assert err.status_code == status
    assert err.body == {"detail": f"said {status}"}
    assert str(err) == f"GET /status failed: said {status} (HTTP {status})"


def test_fastapi_detail_list_is_joined(
    client: AISpine, mocked: responses.RequestsMock, payloads: Dict[str, Any]
) -> None:
    mocked.get(
        f"{V1}/executions/not-a-uuid", status=422, json=payloads["detail_list_422"]
    )
    with pytest.raises(ValidationError) as info:
        client.get_execution("not-a-uuid")
    assert info.value.message == (
        "GET /api/v1/executions/not-a-uuid failed: "
        "path.execution_id: value is not a valid uuid; body.input_data: field required"
    )
    assert info.value.body == payloads["detail_list_422"]


@pytest.mark.parametrize("key", ["missing_key_401", "invalid_key_401"])
def test_auth_errors_carry_the_server_message(
    client: AISpine, mocked: responses.RequestsMock, payloads: Dict[str, Any], key: str
) -> None:
    mocked.get(V1 + "/flows", status=401, json=payloads[key])
    with pytest.raises(AuthenticationError) as info:
        client.list_flows()
    assert payloads[key]["detail"] in str(info.value)


@pytest.mark.parametrize(
    "body, expected",
    [
        ({"message": "custom message"}, "custom message"),
        ({"error": "custom error"}, "custom error"),
        ({"detail": {"code": 7}}, '{"code": 7}'),
        ({"other": 1}, '{"other": 1}'),
        ({"detail": ["plain", {"msg": "no loc"}]}, "plain; no loc"),
    ],
)
def test_other_error_body_shapes(
    client: AISpine, mocked: responses.RequestsMock, body: Any, expected: str
) -> None:
    mocked.get(V1 + "/flows/x", status=400, json=body)
    with pytest.raises(ValidationError) as info:
        client.get_flow("x")
    assert info.value.message == f"GET /api/v1/flows/x failed: {expected}"


def test_html_error_page_is_a_typed_error(
    client: AISpine, mocked: responses.RequestsMock
) -> None:
    page = "<html><body><h1>404 Not Found</h1>\n  nginx</body></html>"
    mocked.get(V1 + "/flows/x", status=404, body=page, content_type="text/html")
    with pytest.raises(NotFoundError) as info:
        client.get_flow("x")
    assert "non-JSON body (text/html)" in str(info.value)
    assert "<h1>404 Not Found</h1> nginx" in str(info.value)
    assert info.value.body == page


def test_empty_error_body(client: AISpine, mocked: responses.RequestsMock) -> None:
    mocked.get(V1 + "/flows/x", status=404, body="")
    with pytest.raises(NotFoundError, match="empty body"):
        client.get_flow("x")


@pytest.mark.parametrize(
    "body, content_type",
    [
        ('{"execution_id": "abc", "sta', "application/json"),
        ("<html>maintenance</html>", "text/html"),
        ("plain words", "text/plain"),
    ],
)
def test_success_status_with_bad_body_is_server_error(
    client: AISpine, mocked: responses.RequestsMock, body: str, content_type: str
) -> None:
    mocked.post(V1 + "/flows/execute", body=body, content_type=content_type)
    with pytest.raises(ServerError) as info:
        client.execute_flow("f", {})
    assert "expected JSON" in str(info.value)
    assert not isinstance(info.value, ValueError)
    assert info.value.status_code == 200


def test_request_id_is_kept(client: AISpine, mocked: responses.RequestsMock) -> None:
    mocked.get(
        V1 + "/flows/x",
        status=404,
        json={"detail": "Flow not found"},
        headers={"X-Request-ID": "req-123"},
    )
    with pytest.raises(NotFoundError) as info:
        client.get_flow("x")
    assert info.value.request_id == "req-123"
    assert str(info.value).endswith("[request id req-123]")


@pytest.mark.parametrize(
    "headers, body, expected",
    [
        ({"Retry-After": "7"}, {"detail": "slow down"}, 7.0),
        ({}, {"detail": "slow down", "retry_after": 12}, 12.0),
        ({}, {"detail": "slow down", "retryAfter": "3"}, 3.0),
        ({}, {"detail": "slow down"}, None),
        ({"Retry-After": "soon"}, {"detail": "x"}, None),
    ],
)
def test_rate_limit_retry_after_from_header_or_body(
    mocked: responses.RequestsMock,
    headers: Dict[str, str],
    body: Dict[str, Any],
    expected: Any,
) -> None:
    mocked.get(BASE + "/health", status=429, json=body, headers=headers)
    with AISpine(base_url=BASE, max_retries=0) as client:
        with pytest.raises(RateLimitError) as info:
            client.health_check()
    assert info.value.retry_after == expected


@pytest.mark.parametrize(
    "exc, cls",
    [
        (requests.exceptions.ConnectTimeout("connect timed out"), NetworkError),
        (requests.exceptions.ReadTimeout("read timed out"), TimeoutError),
        (requests.exceptions.ConnectionError("reset by peer"), NetworkError),
        (requests.exceptions.ChunkedEncodingError("truncated"), NetworkError),
        (requests.exceptions.SSLError("bad cert"), NetworkError),
    ],
)
def test_transport_failures_are_typed(
    mocked: responses.RequestsMock, exc: Exception, cls: Type[AISpineError]
) -> None:
    mocked.get(BASE + "/health", body=exc)
    with AISpine(base_url=BASE, max_retries=0) as client:
        with pytest.raises(cls) as info:
            client.health_check()
    assert "GET /health" in str(info.value)
    assert not isinstance(info.value, requests.RequestException)


class _BrokenBody:
    """A streamed body whose first read fails, as urllib3 reports it."""

    def __init__(self, error: BaseException) -> None:
        self.error = error
        self.closed = False

    def read1(self, amt: int, decode_content: bool) -> bytes:
        raise self.error

    def close(self) -> None:
        self.closed = True

    def release_conn(self) -> None:
        pass


@pytest.mark.parametrize(
    "error, mapped",
    [
        (
            urllib3.exceptions.ReadTimeoutError(None, "/", "read timed out"),
            "ReadTimeout",
        ),
        (urllib3.exceptions.ProtocolError("truncated"), "ChunkedEncodingError"),
        (urllib3.exceptions.DecodeError("bad gzip"), "ContentDecodingError"),
        (urllib3.exceptions.SSLError("bad record"), "SSLError"),
        (RuntimeError("not a transport error"), "RuntimeError"),
    ],
)
def test_a_body_failing_mid_read_is_mapped_and_its_connection_closed(
    error: BaseException, mapped: str
) -> None:
    from ai_spine.api import _read_body

    response = requests.Response()
    response.raw = _BrokenBody(error)
    with pytest.raises(BaseException) as info:
        _read_body(response, None, 1 << 20)
    assert type(info.value).__name__ == mapped
    assert response.raw.closed  # never handed back to the pool half-read


def test_undecodable_gzip_body_is_a_typed_error(mocked: responses.RequestsMock) -> None:
    mocked.get(
        BASE + "/health",
        body=b"this is not gzip",
        headers={"Content-Encoding": "gzip"},
        content_type="application/json",
    )
    with AISpine(base_url=BASE, max_retries=0) as client:
        with pytest.raises(NetworkError, match="ContentDecodingError"):
            client.health_check()


def test_sdk_timeout_is_also_the_builtin() -> None:
    err = TimeoutError("late", execution_id="e", last_status="running")
    assert isinstance(err, builtins.TimeoutError)
    assert isinstance(err, AISpineError)
    with pytest.raises(builtins.TimeoutError):
        raise err


def test_exception_reprs_and_properties() -> None:
    err = FlowNotFoundError("Flow 'x' not found", flow_id="x")
    assert repr(err) == "FlowNotFoundError(\"Flow 'x' not found\", status_code=None)"
    assert err.execution == {} and err.execution_id is None and err.status is None
    assert ExecutionError("e", execution={"flow_id": "f"}).flow_id == "f"


SECRET = "sk-live-TOPSECRET-0123456789"


@pytest.fixture
def restore_logger() -> Any:
    """debug=True configures the process-wide `ai_spine` logger; undo it after the test."""
    from ai_spine.api import logger

    level, handlers = logger.level, list(logger.handlers)
    yield logger
    logger.setLevel(level)
    logger.handlers[:] = handlers


def test_key_never_appears_in_errors_logs_or_repr(
    restore_logger: Any,
    mocked: responses.RequestsMock,
    sleeps: List[float],
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # A misbehaving proxy echoes the Authorization header back in its error page.
    mocked.get(
        BASE + "/health",
        status=502,
        body=f"<html>bad gateway; Authorization: Bearer {SECRET}</html>",
        content_type="text/html",
    )
    mocked.post(
        V1 + "/flows/execute",
        status=400,
        json={"detail": f"key {SECRET} is not allowed"},
    )
    caplog.set_level(logging.DEBUG, logger="ai_spine")
    with AISpine(api_key=SECRET, base_url=BASE, max_retries=1, debug=True) as client:
        with pytest.raises(ServerError) as first:
            client.health_check()
        with pytest.raises(ValidationError) as second:
            client.execute_flow("f", {"api_key": SECRET})
        text = " ".join(
            [str(first.value), repr(first.value), str(second.value), repr(client)]
            + [str(first.value.body), str(second.value.body)]  # .body was kept raw
        )
    assert "Authorization: ***" in str(first.value)
    logged = caplog.text
    assert (
        "Authorization" in logged and "'***'" in logged
    )  # headers were logged, redacted
    captured = capsys.readouterr()
    for output in (text, logged, captured.out, captured.err):
        assert SECRET not in output


def test_base_url_credentials_are_sent_but_never_shown(
    restore_logger: Any,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from tests.client.fault_server import FaultServer, free_port

    password = "pw-s3cret-99"
    caplog.set_level(logging.DEBUG, logger="ai_spine")
    with FaultServer() as server:
        url = server.url.replace("//", f"//alice:{password}@")
        with AISpine(base_url=url, debug=True) as client:
            client.health_check()
            shown = [repr(client), client.base_url]
        (seen,) = server.seen("GET", "/health")
    assert seen.headers["Authorization"].startswith("Basic ")  # still sent
    refused = f"http://alice:{password}@127.0.0.1:{free_port()}"
    with AISpine(base_url=refused, max_retries=0) as client:
        with pytest.raises(NetworkError) as network:
            client.health_check()
    with pytest.raises(ValidationError) as invalid:
        AISpine(base_url=f"http://alice:{password}@host:99999")
    shown += [str(network.value), str(invalid.value), caplog.text]
    shown += list(capsys.readouterr())
    assert "***@127.0.0.1" in shown[0] and "***@host:99999" in str(invalid.value)
    for output in shown:
        assert password not in output


@pytest.mark.parametrize(
    "password", ["s3cr#t99", "s3cr?t99", "s3cr/t99", "s3cr@t99", "123/t99", "s3cr\nt99"]
)
def test_a_password_a_url_parser_would_end_early_is_still_hidden(password: str) -> None:
    # "#", "?" and "/" end the authority for a URL parser, so the URL is refused (or, for
    # "123/...", read as host "bob" port 123); "@" makes the first one part of the userinfo.
    url = f"https://bob:{password}@api.example.com"
    try:
        with AISpine(base_url=url, max_retries=0) as client:
            shown = [repr(client), client.base_url]
    except ValidationError as exc:
        shown = [str(exc), repr(exc)]
    for output in shown:
        assert "t99" not in output, output
        assert "***@api.example.com" in output


def test_redaction_filter_covers_any_ai_spine_log_line(
    caplog: pytest.LogCaptureFixture,
) -> None:
    from ai_spine.api import logger

    caplog.set_level(logging.INFO, logger="ai_spine")
    logger.info(
        "calling with %s", {"Authorization": "Bearer abc.def", "api_key": "k-1234"}
    )
    logger.info("api_key=%s token: %s", "plainkey99", "tok-77")
    assert "abc.def" not in caplog.text and "k-1234" not in caplog.text
    assert "plainkey99" not in caplog.text and "tok-77" not in caplog.text


def test_import_is_cheap() -> None:
    code = (
        "import sys, ai_spine; "
        "print(sorted(m for m in sys.modules if m.startswith('spark_core') "
        "or m in ('ai_spine.local', 'ai_spine.server', 'ai_spine.nodes')))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "[]"
