"""Every AISpine method against a mocked backend (`responses`)."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from typing import Any, Dict, List

import pytest
import requests
import responses
from responses import matchers

import ai_spine
from ai_spine import (
    AISpine,
    BatchResult,
    ExecutionError,
    FlowNotFoundError,
    NotFoundError,
    ServerError,
    TimeoutError,
    ValidationError,
)
from ai_spine.__version__ import __version__
from ai_spine.constants import DEFAULT_BASE_URL
from tests.client.conftest import BASE, V1

EXEC_ID = "3f2b8c1e-8a4d-4c57-9a51-2b7c9e0d4f11"


def test_defaults_come_from_environment(
    monkeypatch: pytest.MonkeyPatch, mocked: responses.RequestsMock
) -> None:
    monkeypatch.setenv("AI_SPINE_BASE_URL", "http://env.example:9000/")
    monkeypatch.setenv("AI_SPINE_API_KEY", "sk-from-env")
    mocked.get("http://env.example:9000/health", json={"status": "healthy"})
    with AISpine() as client:
        assert client.base_url == "http://env.example:9000"
        client.health_check()
    sent = mocked.calls[0].request.headers
    assert sent["Authorization"] == "Bearer sk-from-env"


def test_production_url_is_the_last_default() -> None:
    client = AISpine()
    assert client.base_url == DEFAULT_BASE_URL
    assert client.timeout == 30
    assert client.max_retries == 3


def test_headers_name_the_sdk_and_send_bearer_only_with_key(
    mocked: responses.RequestsMock,
) -> None:
    mocked.get(BASE + "/health", json={"status": "healthy"})
    with AISpine(api_key="sk-abc", base_url=BASE) as client:
        client.health_check()
    sent = mocked.calls[0].request.headers
    assert sent["Authorization"] == "Bearer sk-abc"
    assert sent["User-Agent"] == f"ai-spine-sdk-python/{__version__}"
    assert sent["Accept"] == "application/json"


def test_repr_hides_the_key() -> None:
    client = AISpine(api_key="sk-very-secret", base_url=BASE, timeout=5, max_retries=1)
    text = repr(client)
    assert "sk-very-secret" not in text
    assert (
        text
        == "AISpine(base_url='https://api.test', api_key=<set>, timeout=5, max_retries=1)"
    )
    assert "api_key=<none>" in repr(AISpine(base_url=BASE))


def test_context_manager_closes_the_session(monkeypatch: pytest.MonkeyPatch) -> None:
    closed: List[bool] = []
    with AISpine(base_url=BASE) as client:
        monkeypatch.setattr(client.session, "close", lambda: closed.append(True))
    assert closed == [True]


def test_a_session_passed_in_is_used_and_left_open(
    monkeypatch: pytest.MonkeyPatch, mocked: responses.RequestsMock
) -> None:
    mocked.get(BASE + "/health", json={"status": "healthy"})
    own = requests.Session()
    closed: List[bool] = []
    monkeypatch.setattr(own, "close", lambda: closed.append(True))
    with AISpine(base_url=BASE, session=own) as client:
        assert client.session is own
        assert client.health_check() == {"status": "healthy"}
    assert closed == []  # the caller's session: closing it is the caller's call


@pytest.mark.parametrize(
    "kwargs",
    [
        {"base_url": "ftp://x"},
        {"base_url": "not a url"},
        {"base_url": "http://[bad"},  # was a bare ValueError from urlsplit
        {"base_url": "http://host:99999"},  # was a retried NetworkError on every call
        {"base_url": "http://exa mple.com"},
        {"base_url": "http://:8000"},
        {"base_url": "http://%zz"},  # was a retried NetworkError (requests' InvalidURL)
        # requests replaced the Bearer header with Basic auth from the URL.
        {"base_url": "http://u:p@api.test", "api_key": "sk-abc"},
        {"timeout": 0},
        {"timeout": -1},
        {"max_retries": -1},
        {"max_retries": 1.5},
        {"api_key": "  "},
        {"deadline": 0},
    ],
)
def test_bad_constructor_arguments_are_validation_errors(
    kwargs: Dict[str, Any],
) -> None:
    with pytest.raises(ValidationError):
        AISpine(**kwargs)


@pytest.mark.parametrize(
    "key", ["sk-secret123\n", "sk-secret123\r\n", "sk-se cret123", "sk-\u20acuro123"]
)
def test_a_key_no_header_can_carry_is_refused_without_echoing_it(key: str) -> None:
    # Before: a trailing newline made every call a retried NetworkError, and a non-latin-1
    # character escaped as a bare UnicodeEncodeError from http.client.
    with pytest.raises(ValidationError, match="trailing newline") as info:
        AISpine(api_key=key, base_url=BASE)
    assert "secret" not in str(info.value) and "uro" not in str(info.value)


@pytest.mark.parametrize(
    "refusal",
    [
        requests.exceptions.InvalidHeader("bad header value"),
        requests.exceptions.InvalidURL("bad url"),
        requests.exceptions.MissingSchema("no schema"),
    ],
)
def test_requests_refusing_to_build_a_request_is_a_validation_error_not_retried(
    client: AISpine,
    mocked: responses.RequestsMock,
    sleeps: List[float],
    refusal: Exception,
) -> None:
    # Was classified as a read error: a GET was retried and ended as a NetworkError.
    mocked.get(BASE + "/health", body=refusal)
    with pytest.raises(ValidationError, match=type(refusal).__name__) as info:
        client.health_check()
    assert info.value.status_code is None
    assert len(mocked.calls) == 1 and sleeps == []


def test_a_host_urllib3_cannot_encode_is_a_validation_error(
    sleeps: List[float],
) -> None:
    # "a..b" passes requests' URL checks; urllib3 then raised a bare LocationParseError.
    with AISpine(base_url="http://a..b") as client:
        with pytest.raises(ValidationError, match="LocationParseError"):
            client.health_check()
    assert sleeps == []


def test_execute_flow_posts_the_body(
    client: AISpine, mocked: responses.RequestsMock, payloads: Dict[str, Any]
) -> None:
    mocked.post(
        V1 + "/flows/execute",
        json=payloads["execute_pending"],
        match=[
            matchers.json_params_matcher(
                {
                    "flow_id": "credit_analysis",
                    "input_data": {"amount": 50000},
                    "metadata": {"source": "test"},
                    "priority": 5,
                    "timeout": 60,
                }
            ),
            matchers.header_matcher({"Idempotency-Key": "order-42"}),
        ],
    )
    result = client.execute_flow(
        "credit_analysis",
        {"amount": 50000},
        {"source": "test"},
        idempotency_key="order-42",
        priority=5,
        timeout=60,
    )
    assert result["execution_id"] == EXEC_ID
    assert result["status"] == "pending"


def test_unknown_flow_raises_flow_not_found(
    client: AISpine, mocked: responses.RequestsMock, payloads: Dict[str, Any]
) -> None:
    mocked.post(V1 + "/flows/execute", json=payloads["execute_unknown_flow"])
    with pytest.raises(FlowNotFoundError) as info:
        client.execute_flow("no_such_flow", {})
    err = info.value
    assert isinstance(err, ExecutionError) and isinstance(err, NotFoundError)
    assert str(err) == "Flow 'no_such_flow' not found"
    assert err.flow_id == "no_such_flow"
    assert err.execution["execution_id"] == "00000000-0000-0000-0000-000000000000"
    assert err.status == "failed"
    assert err.status_code is None


def test_unknown_flow_as_404_is_also_flow_not_found(
    client: AISpine, mocked: responses.RequestsMock
) -> None:
    mocked.post(V1 + "/flows/execute", status=404, json={"detail": "Not Found"})
    with pytest.raises(FlowNotFoundError) as info:
        client.execute_flow("ghost", {"a": 1})
    assert info.value.status_code == 404
    # The server's detail stays: a 404 here is as likely a wrong base_url as a missing flow.
    assert str(info.value) == (
        "Flow 'ghost' not found (POST /api/v1/flows/execute failed: Not Found) (HTTP 404)"
    )


def test_other_immediate_failures_are_returned(
    client: AISpine, mocked: responses.RequestsMock
) -> None:
    answer = {"execution_id": EXEC_ID, "status": "failed", "error": "agent crashed"}
    mocked.post(V1 + "/flows/execute", json=answer)
    assert client.execute_flow("f", {})["error"] == "agent crashed"


def test_a_real_execution_failing_on_another_flows_name_is_returned(
    client: AISpine, mocked: responses.RequestsMock
) -> None:
    # Was a FlowNotFoundError saying "Flow 'f' not found" about a flow that exists.
    error = "node 'call' failed: Flow 'sub' not found"
    answer = {"execution_id": EXEC_ID, "status": "failed", "error": error}
    mocked.post(V1 + "/flows/execute", json=answer)
    assert client.execute_flow("f", {})["error"] == error


@pytest.mark.parametrize(
    "flow_id, input_data, extra",
    [
        ("", {}, {}),
        ("a/b", {}, {}),
        ("../admin", {}, {}),
        ("has space", {}, {}),
        (None, {}, {}),
        ("x" * 300, {}, {}),
        ("ok", [1, 2], {}),
        ("ok", "text", {}),
        ("ok", {"when": object()}, {}),
        ("ok", {"nan": float("nan")}, {}),
        ("ok", {1: "int key"}, {}),
        ("ok", {}, {"metadata": "not a dict"}),
        ("ok", {}, {"priority": 11}),
        ("ok", {}, {"priority": True}),
        ("ok", {}, {"timeout": 0}),
        ("ok", {}, {"idempotency_key": "bad key"}),
        ("ok", {}, {"idempotency_key": "key\n"}),  # match + $ accepted it
        ("ok", {}, {"idempotency_key": "key\r\nX-Evil: 1"}),
        ("ok", {}, {"idempotency_key": "key\x00"}),
        ("ok\n", {}, {}),
    ],
)
def test_execute_flow_validates_before_sending(
    client: AISpine,
    mocked: responses.RequestsMock,
    flow_id: Any,
    input_data: Any,
    extra: Dict[str, Any],
) -> None:
    with pytest.raises(ValidationError) as info:
        client.execute_flow(flow_id, input_data, **extra)
    assert info.value.status_code is None
    assert len(mocked.calls) == 0


def test_get_execution(
    client: AISpine, mocked: responses.RequestsMock, payloads: Dict[str, Any]
) -> None:
    mocked.get(f"{V1}/executions/{EXEC_ID}", json=payloads["execution_completed"])
    execution = client.get_execution(EXEC_ID)
    assert execution["status"] == "completed"
    assert execution["output_data"] == {"approved": True, "score": 0.82}


@pytest.mark.parametrize("bad", ["", "x/y", "a?b=c", 42, "abc\n", "abc\r\n"])
def test_ids_are_validated_everywhere(
    client: AISpine, mocked: responses.RequestsMock, bad: Any
) -> None:
    calls = [
        client.get_execution,
        client.cancel_execution,
        client.wait_for_execution,
        client.get_flow,
        client.get_agent,
        client.delete_agent,
    ]
    for call in calls:
        with pytest.raises(ValidationError):
            call(bad)
    assert len(mocked.calls) == 0


def test_wait_for_execution_polls_until_completed(
    client: AISpine, mocked: responses.RequestsMock, payloads: Dict[str, Any]
) -> None:
    url = f"{V1}/executions/{EXEC_ID}"
    mocked.get(url, json={**payloads["execution_running"], "status": "pending"})
    mocked.get(url, json=payloads["execution_running"])
    mocked.get(url, json=payloads["execution_completed"])
    seen: List[str] = []
    result = client.wait_for_execution(
        EXEC_ID,
        timeout=30,
        interval=0.001,
        on_progress=lambda e: seen.append(e["status"]),
    )
    assert result["status"] == "completed"
    assert seen == ["pending", "running", "completed"]


@pytest.mark.parametrize("final", ["failed", "cancelled"])
def test_wait_for_execution_raises_on_failure(
    client: AISpine,
    mocked: responses.RequestsMock,
    payloads: Dict[str, Any],
    final: str,
) -> None:
    mocked.get(
        f"{V1}/executions/{EXEC_ID}",
        json={**payloads["execution_failed"], "status": final},
    )
    with pytest.raises(ExecutionError) as info:
        client.wait_for_execution(EXEC_ID, interval=0.001)
    err = info.value
    assert err.status == final
    assert err.execution_id == EXEC_ID
    assert err.flow_id == "credit_analysis"
    assert err.execution["error_message"] == "agent credit_scorer timed out"
    assert f"execution {EXEC_ID} {final}: agent credit_scorer timed out" == str(err)


def test_wait_for_execution_times_out_naming_id_and_status(
    client: AISpine, mocked: responses.RequestsMock, payloads: Dict[str, Any]
) -> None:
    mocked.get(f"{V1}/executions/{EXEC_ID}", json=payloads["execution_running"])
    with pytest.raises(TimeoutError) as info:
        client.wait_for_execution(EXEC_ID, timeout=0.05, interval=0.01)
    err = info.value
    assert isinstance(err, builtins_timeout())
    assert err.execution_id == EXEC_ID
    assert err.last_status == "running"
    assert EXEC_ID in str(err) and "running" in str(err)


def test_wait_for_execution_whose_deadline_stops_a_poll_retry_is_a_timeout(
    client: AISpine, mocked: responses.RequestsMock, sleeps: List[float]
) -> None:
    # The 503's Retry-After outlasts the wait: the wait's own deadline stops the retry. It
    # ended with the poll's ServerError before.
    url = f"{V1}/executions/{EXEC_ID}"
    mocked.get(url, json={"execution_id": EXEC_ID, "status": "running"})
    mocked.get(url, status=503, json={"detail": "busy"}, headers={"Retry-After": "30"})
    with pytest.raises(TimeoutError) as info:
        client.wait_for_execution(EXEC_ID, timeout=5, interval=0.001)
    err = info.value
    assert err.execution_id == EXEC_ID and err.last_status == "running"
    assert "busy" in str(err)
    assert isinstance(err.__cause__, TimeoutError)
    assert isinstance(err.__cause__.__cause__, ServerError)  # the poll's real error
    assert len(mocked.calls) == 2


def builtins_timeout() -> type:
    import builtins

    return builtins.TimeoutError


@pytest.mark.parametrize(
    "kwargs", [{"timeout": 0}, {"interval": -1}, {"interval": "2"}]
)
def test_wait_for_execution_validates_numbers(
    client: AISpine, mocked: responses.RequestsMock, kwargs: Dict[str, Any]
) -> None:
    with pytest.raises(ValidationError):
        client.wait_for_execution(EXEC_ID, **kwargs)


def test_cancel_execution(client: AISpine, mocked: responses.RequestsMock) -> None:
    mocked.post(f"{V1}/executions/{EXEC_ID}/cancel", json={"status": "cancelled"})
    assert client.cancel_execution(EXEC_ID) == {"status": "cancelled"}


def test_list_executions_unwraps_and_sends_paging(
    client: AISpine, mocked: responses.RequestsMock, payloads: Dict[str, Any]
) -> None:
    mocked.get(
        V1 + "/executions",
        json=payloads["executions"],
        match=[
            matchers.query_param_matcher(
                {"limit": "5", "offset": "10", "status": "running"}
            )
        ],
    )
    items = client.list_executions(5, 10, status="running")
    assert [e["flow_id"] for e in items] == ["sentiment"]


def test_list_executions_filters_when_the_backend_ignores_status(
    client: AISpine, mocked: responses.RequestsMock
) -> None:
    # The backend accepts ?status= and sends every run back regardless.
    runs = [
        {"execution_id": "a", "status": "completed"},
        {"execution_id": "b", "status": "failed"},
        {"execution_id": "c", "status": "completed"},
    ]
    mocked.get(V1 + "/executions", json={"executions": runs, "count": 3})
    mocked.get(V1 + "/executions", json={"executions": runs, "count": 3})
    done = client.list_executions(status="completed")
    assert [e["execution_id"] for e in done] == ["a", "c"]
    assert len(client.list_executions()) == 3  # no status: the page as sent


@pytest.mark.parametrize(
    "args, kwargs", [((0, 0), {}), ((5, -1), {}), ((5, 0), {"status": "done"})]
)
def test_list_executions_validates(
    client: AISpine, mocked: responses.RequestsMock, args: Any, kwargs: Any
) -> None:
    with pytest.raises(ValidationError):
        client.list_executions(*args, **kwargs)


def test_flows(
    client: AISpine, mocked: responses.RequestsMock, payloads: Dict[str, Any]
) -> None:
    mocked.get(V1 + "/flows", json=payloads["flows"])
    mocked.get(V1 + "/flows/credit_analysis", json=payloads["flows"]["flows"][0])
    assert [f["flow_id"] for f in client.list_flows()] == [
        "credit_analysis",
        "sentiment",
    ]
    assert client.get_flow("credit_analysis")["entry_point"] == "scorer"


def test_bare_lists_are_accepted_and_wrong_shapes_are_server_errors(
    client: AISpine, mocked: responses.RequestsMock
) -> None:
    mocked.get(V1 + "/agents", json=[{"agent_id": "a"}])
    mocked.get(V1 + "/flows", json={"unexpected": True})
    mocked.get(BASE + "/health", json=["not", "a", "dict"])
    assert client.list_agents() == [{"agent_id": "a"}]
    with pytest.raises(ServerError, match="expected a list under 'flows'"):
        client.list_flows()
    with pytest.raises(ServerError, match="expected a JSON object"):
        client.health_check()


def test_agents(
    client: AISpine, mocked: responses.RequestsMock, payloads: Dict[str, Any]
) -> None:
    agent = payloads["agents"]["agents"][0]
    mocked.get(V1 + "/agents", json=payloads["agents"])
    mocked.get(V1 + "/agents/credit_scorer", json=agent)
    mocked.post(V1 + "/agents", json=agent, match=[matchers.json_params_matcher(agent)])
    mocked.delete(V1 + "/agents/credit_scorer", json={"message": "deleted"})
    assert client.list_agents()[0]["agent_id"] == "credit_scorer"
    assert client.get_agent("credit_scorer")["agent_type"] == "processor"
    assert client.create_agent(agent)["name"] == "Credit scorer"
    assert client.delete_agent("credit_scorer") is True


def test_delete_agent_with_empty_body(
    client: AISpine, mocked: responses.RequestsMock
) -> None:
    mocked.delete(V1 + "/agents/a1", status=204)
    assert client.delete_agent("a1") is True


def test_delete_missing_agent_raises_not_found(
    client: AISpine, mocked: responses.RequestsMock
) -> None:
    mocked.delete(V1 + "/agents/a1", status=404, json={"detail": "Agent a1 not found"})
    with pytest.raises(NotFoundError, match="Agent a1 not found"):
        client.delete_agent("a1")


@pytest.mark.parametrize("config", [{}, [], {"x": {1, 2}}, None])
def test_create_agent_validates(
    client: AISpine, mocked: responses.RequestsMock, config: Any
) -> None:
    with pytest.raises(ValidationError):
        client.create_agent(config)


def test_system_endpoints(
    client: AISpine, mocked: responses.RequestsMock, payloads: Dict[str, Any]
) -> None:
    mocked.get(BASE + "/health", json=payloads["health"])
    mocked.get(BASE + "/metrics", json=payloads["metrics"])
    mocked.get(BASE + "/status", json=payloads["status"])
    assert client.health_check()["status"] == "healthy"
    assert client.get_metrics()["total_executions"] == 120
    assert client.get_status()["system_status"] == "operational"


def _batch_backend(mocked: responses.RequestsMock) -> None:
    """Execute answers per flow: `ok` completes, `bad` fails, `ghost` is unknown."""

    def execute(request: Any) -> Any:
        body = json.loads(request.body)
        flow = body["flow_id"]
        if flow == "ghost":
            answer = {
                "execution_id": "00000000-0000-0000-0000-000000000000",
                "status": "failed",
                "error": "Flow 'ghost' not found",
            }
        else:
            answer = {
                "execution_id": f"{flow}-{body['input_data']['n']}",
                "status": "pending",
            }
        return 200, {}, json.dumps(answer)

    def get(request: Any) -> Any:
        execution_id = request.url.rsplit("/", 1)[1]
        flow, n = execution_id.split("-")
        status = "completed" if flow == "ok" else "failed"
        body = {
            "execution_id": execution_id,
            "flow_id": flow,
            "status": status,
            "output_data": {"n": int(n)} if status == "completed" else {},
            "error_message": None if status == "completed" else "boom",
        }
        return 200, {}, json.dumps(body)

    mocked.add_callback(responses.POST, V1 + "/flows/execute", callback=execute)
    mocked.add_callback(
        responses.GET,
        matchers_re(V1 + "/executions/"),
        callback=get,
    )


def matchers_re(prefix: str) -> Any:
    import re

    return re.compile(re.escape(prefix) + r"[\w-]+$")


def test_execute_batch_keeps_order_and_isolates_failures(
    client: AISpine, mocked: responses.RequestsMock
) -> None:
    _batch_backend(mocked)
    items: List[Any] = [{"flow_id": "ok", "input_data": {"n": i}} for i in range(6)]
    items.insert(2, ("bad", {"n": 99}))
    items.insert(4, {"flow_id": "ghost", "input_data": {"n": 0}})
    items.insert(5, {"input_data": {}})  # malformed item
    items.insert(6, ("ok", "not a dict"))
    progress: List[int] = []
    results = client.execute_batch(
        items,
        concurrency=3,
        on_progress=lambda done, total, result: progress.append(done),
        interval=0.001,
    )
    assert [r.index for r in results] == list(range(len(items)))
    assert progress == list(range(1, len(items) + 1))
    ok = [r for r in results if r.ok]
    assert [r.result for r in ok] == [{"n": i} for i in range(6)]
    assert all(r.execution_id and r.execution_id.startswith("ok-") for r in ok)
    assert isinstance(results[2].error, ExecutionError)
    assert results[2].execution_id == "bad-99"
    assert isinstance(results[4].error, FlowNotFoundError)
    assert isinstance(results[5].error, ValidationError) and results[5].flow_id is None
    assert isinstance(results[6].error, ValidationError)
    assert isinstance(results[0], BatchResult)


def test_execute_batch_accepts_a_generator_and_empty_input(
    client: AISpine, mocked: responses.RequestsMock
) -> None:
    _batch_backend(mocked)
    mocked.assert_all_requests_are_fired = False
    assert client.execute_batch(iter([])) == []
    results = client.execute_batch((("ok", {"n": i}) for i in range(3)), concurrency=1)
    assert [r.result for r in results] == [{"n": 0}, {"n": 1}, {"n": 2}]


def test_execute_batch_skips_waiting_when_already_completed(
    client: AISpine, mocked: responses.RequestsMock
) -> None:
    mocked.post(
        V1 + "/flows/execute", json={"execution_id": "e1", "status": "completed"}
    )
    (result,) = client.execute_batch([("f", {})])
    assert result.ok and result.execution_id == "e1"


def test_execute_batch_stops_its_waits_when_the_caller_stops(
    client: AISpine, mocked: responses.RequestsMock
) -> None:
    # "quick" completes at once; "slow" stays running. When on_progress raises (as a Ctrl-C
    # would), the batch must not sit in the pool until "slow" reaches its wait_timeout.
    def execute(request: Any) -> Any:
        flow = json.loads(request.body)["flow_id"]
        status = "completed" if flow == "quick" else "pending"
        return 200, {}, json.dumps({"execution_id": f"{flow}-1", "status": status})

    polls: List[int] = []
    polling = threading.Event()

    def poll(request: Any) -> Any:
        polls.append(1)
        polling.set()
        return 200, {}, json.dumps({"execution_id": "slow-1", "status": "running"})

    def stop(done: int, total: int, result: BatchResult) -> None:
        polling.wait(5)  # let "slow" reach its wait before stopping
        raise RuntimeError("caller stopped")

    mocked.add_callback("POST", V1 + "/flows/execute", callback=execute)
    mocked.add_callback("GET", V1 + "/executions/slow-1", callback=poll)
    with pytest.raises(RuntimeError, match="caller stopped"):
        client.execute_batch(
            [("quick", {}), ("slow", {})],
            concurrency=2,
            on_progress=stop,
            wait_timeout=5,
            interval=0.01,
        )
    # Stopped at its next poll; running on to wait_timeout would be hundreds of polls.
    assert 1 <= len(polls) < 100


@pytest.mark.parametrize(
    "items, kwargs",
    [
        ("text", {}),
        ({"flow_id": "x"}, {}),
        (42, {}),
        ([], {"concurrency": 0}),
        ([], {"wait_timeout": 0}),
    ],
)
def test_execute_batch_validates(
    client: AISpine, items: Any, kwargs: Dict[str, Any]
) -> None:
    with pytest.raises(ValidationError):
        client.execute_batch(items, **kwargs)


def test_lazy_names_are_not_imported_eagerly() -> None:
    # A fresh interpreter: this one imported ai_spine.local long ago.
    code = (
        "import sys, ai_spine\n"
        "assert 'ai_spine.local' not in sys.modules, 'imported eagerly'\n"
        "assert 'LocalSpine' not in vars(ai_spine)\n"
        "from ai_spine.local import LocalSpine\n"
        "assert ai_spine.LocalSpine is LocalSpine\n"
        "print('lazy')\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60
    )
    assert done.stdout.strip() == "lazy", done.stderr
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        ai_spine.nope  # noqa: B018


def test_zero_uuid_with_another_error_text_keeps_it(
    client: AISpine, mocked: responses.RequestsMock
) -> None:
    answer = {
        "execution_id": "00000000-0000-0000-0000-000000000000",
        "status": "failed",
        "error": "no such flow registered",
    }
    mocked.post(V1 + "/flows/execute", json=answer)
    with pytest.raises(
        FlowNotFoundError, match="Flow 'f' not found: no such flow registered"
    ):
        client.execute_flow("f", {})


def test_batch_item_of_the_wrong_type_is_reported(client: AISpine) -> None:
    (result,) = client.execute_batch([42])
    assert isinstance(result.error, ValidationError)
    assert "got int" in str(result.error)


def test_lazy_names_import_their_module_on_first_use(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import sys
    import types

    fake = types.ModuleType("ai_spine.protocol")
    fake.Spine = object  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "ai_spine.protocol", fake)
    namespace = vars(ai_spine)
    original = namespace.pop("Spine", None)
    try:
        assert ai_spine.Spine is object
        assert namespace["Spine"] is object  # cached after the first lookup
    finally:
        namespace.pop("Spine", None)
        if original is not None:
            namespace["Spine"] = original


def test_cancel_with_empty_body(
    client: AISpine, mocked: responses.RequestsMock
) -> None:
    mocked.post(f"{V1}/executions/{EXEC_ID}/cancel", status=204)
    assert client.cancel_execution(EXEC_ID) == {}
