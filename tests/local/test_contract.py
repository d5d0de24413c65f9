"""One contract, two implementations: every test runs on LocalSpine and on AISpine + server.

The server is a real ``ai-spine serve`` process on a free loopback port (one without and one
with an API key, started once for this module; see ``conftest.served``).
"""

from __future__ import annotations

import builtins
import uuid
from typing import Any, Dict, List

import pytest

from ai_spine import AISpine
from ai_spine.constants import ZERO_UUID
from ai_spine.exceptions import (
    AuthenticationError,
    ExecutionError,
    FlowNotFoundError,
    NotFoundError,
    TimeoutError,
    ValidationError,
)
from ai_spine.local import LocalSpine
from ai_spine.models import BatchResult
from ai_spine.protocol import Spine
from ai_spine.server import SpineServer
from tests.local.flows import Hooks
from tests.local.serve_process import ServeProcess

FAST = 0.01  # polling interval for the HTTP client; LocalSpine does not poll
CONTEXT_KEYS = {
    "execution_id",
    "flow_id",
    "status",
    "input_data",
    "output_data",
    "error_message",
    "created_at",
    "updated_at",
    "completed_at",
}


def run(spine: Spine, flow_id: str, data: Dict[str, Any]) -> Dict[str, Any]:
    started = spine.execute_flow(flow_id, data)
    return dict(spine.wait_for_execution(started["execution_id"], 10, FAST))


def test_execute_returns_pending_with_the_backend_shape(spine: Spine) -> None:
    started = spine.execute_flow("echo", {"text": "hi"})
    assert set(started) == {
        "execution_id",
        "status",
        "result",
        "error",
        "execution_time",
    }
    assert started["status"] == "pending"
    assert str(uuid.UUID(started["execution_id"])) == started["execution_id"]
    spine.wait_for_execution(started["execution_id"], 10, FAST)


def test_wait_returns_the_completed_execution(spine: Spine) -> None:
    done = run(spine, "shout", {"text": "hello"})
    assert set(done) >= CONTEXT_KEYS
    assert done["status"] == "completed"
    assert done["flow_id"] == "shout"
    assert done["input_data"] == {"text": "hello"}
    assert done["result"] == {"text": "HELLO!"}
    assert done["error_message"] is None
    assert done["completed_at"] is not None
    assert done["created_at"] <= done["updated_at"] == done["completed_at"]


def test_get_execution_matches_what_wait_returned(spine: Spine) -> None:
    done = run(spine, "echo", {"n": 1})
    assert dict(spine.get_execution(done["execution_id"])) == done


def test_a_failing_flow_raises_execution_error_with_the_message(spine: Spine) -> None:
    started = spine.execute_flow("fail", {})
    with pytest.raises(ExecutionError) as info:
        spine.wait_for_execution(started["execution_id"], 10, FAST)
    assert info.value.status == "failed"
    assert info.value.execution_id == started["execution_id"]
    assert "boom: this flow always fails" in str(info.value)
    assert "boom" in info.value.execution["error_message"]
    assert spine.get_execution(started["execution_id"])["status"] == "failed"


def test_an_unknown_flow_raises_flow_not_found(spine: Spine) -> None:
    with pytest.raises(FlowNotFoundError) as info:
        spine.execute_flow("no-such-flow", {"x": 1})
    assert isinstance(info.value, NotFoundError)
    assert info.value.flow_id == "no-such-flow"
    assert info.value.execution["execution_id"] == ZERO_UUID
    assert "Flow 'no-such-flow' not found" in str(info.value)


def test_a_non_uuid_execution_id_is_a_validation_error(spine: Spine) -> None:
    with pytest.raises(ValidationError) as info:
        spine.get_execution("not-a-uuid")
    assert info.value.status_code == 422
    assert "valid UUID" in str(info.value)


def test_an_unknown_execution_is_not_found(spine: Spine) -> None:
    with pytest.raises(NotFoundError) as info:
        spine.get_execution(str(uuid.uuid4()))
    assert info.value.status_code == 404


def test_bad_arguments_are_validation_errors(spine: Spine) -> None:
    with pytest.raises(ValidationError):
        spine.execute_flow("echo", ["not", "a", "dict"])  # type: ignore[arg-type]
    with pytest.raises(ValidationError):
        spine.execute_flow("echo", {"x": object()})
    with pytest.raises(ValidationError):
        spine.execute_flow("", {})
    with pytest.raises(ValidationError):
        spine.execute_flow("echo", {}, priority=11)
    for metadata in ([], "x", {1: "a"}, {"n": float("nan")}):
        with pytest.raises(ValidationError, match="metadata"):
            spine.execute_flow("echo", {}, metadata)  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match="input_data keys must all be strings"):
        spine.execute_flow("echo", {1: "a"})  # type: ignore[dict-item]


def test_cancel_really_stops_the_running_graph(spine: Spine, hooks: Hooks) -> None:
    started = spine.execute_flow("block", hooks.input)
    assert hooks.started.wait(10)
    assert spine.get_execution(started["execution_id"])["status"] == "running"
    answer = spine.cancel_execution(started["execution_id"])
    assert answer["status"] == "cancelled"
    assert hooks.cancelled.wait(10), "the node's task was not cancelled"
    with pytest.raises(ExecutionError) as info:
        spine.wait_for_execution(started["execution_id"], 10, FAST)
    assert info.value.status == "cancelled"
    hooks.release.set()
    assert spine.get_execution(started["execution_id"])["status"] == "cancelled"


def test_cancelling_a_finished_execution_is_refused(spine: Spine) -> None:
    done = run(spine, "echo", {})
    with pytest.raises(NotFoundError) as info:  # the backend's 404
        spine.cancel_execution(done["execution_id"])
    assert info.value.status_code == 404
    assert f"Execution '{done['execution_id']}' not found or not running" in str(
        info.value
    )
    assert spine.get_execution(done["execution_id"])["status"] == "completed"


def test_wait_timeout_raises_the_sdk_timeout_error(spine: Spine, hooks: Hooks) -> None:
    started = spine.execute_flow("block", hooks.input)
    assert hooks.started.wait(10)
    with pytest.raises(TimeoutError) as info:
        spine.wait_for_execution(started["execution_id"], 0.2, FAST)
    assert isinstance(info.value, builtins.TimeoutError)
    assert info.value.execution_id == started["execution_id"]
    assert info.value.last_status == "running"
    hooks.release.set()
    assert run_status(spine, started["execution_id"]) == "completed"


def run_status(spine: Spine, execution_id: str) -> str:
    return str(spine.wait_for_execution(execution_id, 10, FAST)["status"])


def test_list_executions_newest_first_with_paging_and_filter(spine: Spine) -> None:
    ids = [run(spine, "echo", {"i": i})["execution_id"] for i in range(3)]
    failed = spine.execute_flow("fail", {})["execution_id"]
    with pytest.raises(ExecutionError):
        spine.wait_for_execution(failed, 10, FAST)
    listed = [e["execution_id"] for e in spine.list_executions(limit=10)]
    assert listed[:4] == [failed] + ids[::-1]
    assert [e["execution_id"] for e in spine.list_executions(limit=2, offset=1)] == [
        ids[2],
        ids[1],
    ]
    only_failed = spine.list_executions(status="failed", limit=1000)
    assert only_failed[0]["execution_id"] == failed
    assert {e["status"] for e in only_failed} == {"failed"}
    with pytest.raises(ValidationError):
        spine.list_executions(status="sleeping")


def test_flows_are_listed_with_nodes_derived_from_the_graph(spine: Spine) -> None:
    flows = {f["flow_id"]: f for f in spine.list_flows()}
    assert set(flows) == {"echo", "shout", "fail", "block"}
    shout = spine.get_flow("shout")
    assert shout == flows["shout"]
    assert [(n["id"], n["depends_on"]) for n in shout["nodes"]] == [
        ("upper", []),
        ("exclaim", ["upper"]),
    ]
    assert shout["entry_point"] == "upper"
    assert shout["exit_points"] == ["exclaim"]
    with pytest.raises(NotFoundError):
        spine.get_flow("nope")


def test_agents_can_be_created_listed_and_deleted(spine: Spine) -> None:
    config = {
        "agent_id": "summariser",
        "name": "Summariser",
        "description": "Summarises text",
        "endpoint": "http://127.0.0.1:9/summarise",
        "capabilities": ["summarise"],
        "agent_type": "processor",
    }
    created = spine.create_agent(config)
    assert created["agent_id"] == "summariser"
    assert created["is_active"] is True
    assert [a["agent_id"] for a in spine.list_agents()] == ["summariser"]
    assert spine.get_agent("summariser")["endpoint"] == config["endpoint"]
    # A taken id is overwritten, as the backend's registry does.
    renamed = spine.create_agent(dict(config, name="Renamed"))
    assert renamed["name"] == "Renamed"
    assert [a["name"] for a in spine.list_agents()] == ["Renamed"]
    with pytest.raises(ValidationError):
        spine.create_agent({"agent_id": "x", "name": "X", "agent_type": "wizard"})
    assert spine.delete_agent("summariser") is True
    assert spine.list_agents() == []
    with pytest.raises(NotFoundError):
        spine.delete_agent("summariser")
    with pytest.raises(NotFoundError):
        spine.get_agent("summariser")


def test_health_metrics_and_status_count_real_executions(spine: Spine) -> None:
    health = spine.health_check()
    assert health["status"] == "healthy" and health["startup_complete"] is True
    assert isinstance(health["timestamp"], float) and health["message"]
    before = spine.get_metrics()
    run(spine, "echo", {})
    with pytest.raises(ExecutionError):
        run(spine, "fail", {})
    after = spine.get_metrics()
    assert after["total_executions"] == before["total_executions"] + 2
    by_status = after["executions_by_status"]
    assert by_status["completed"] == before["executions_by_status"]["completed"] + 1
    assert by_status["failed"] == before["executions_by_status"]["failed"] + 1
    assert after["average_execution_time"] > 0
    # The backend's Metrics fields.
    assert after["successful_executions"] == by_status["completed"]
    assert after["failed_executions"] == by_status["failed"]
    assert after["cancelled_executions"] == by_status["cancelled"]
    assert after["running_executions"] == by_status["running"]
    assert after["total_execution_time"] >= after["average_execution_time"]
    assert isinstance(after["last_execution"], str)  # when the newest one was created
    status = spine.get_status()
    assert status["status"] == "operational"
    assert status["flows"] == {"total": 4}
    assert status["agents"] == {"total": 0, "active": 0}
    assert set(status["components"]) == {
        "registry",
        "communication",
        "memory",
        "orchestrator",
    }
    assert status["executions"] == by_status


def test_execute_batch_keeps_order_and_isolates_failures(spine: Spine) -> None:
    progress: List[int] = []
    results = spine.execute_batch(
        [
            {"flow_id": "echo", "input_data": {"i": 0}},
            ("fail", {}),
            ("no-such-flow", {}),
            ("shout", {"text": "ok"}),
            "garbage",  # type: ignore[list-item]
            (42, {}),  # type: ignore[list-item]
        ],
        concurrency=2,
        on_progress=lambda done, total, result: progress.append(done),
        interval=FAST,
    )
    assert all(isinstance(r, BatchResult) for r in results)
    assert [r.index for r in results] == [0, 1, 2, 3, 4, 5]
    assert [r.ok for r in results] == [True, False, False, True, False, False]
    assert results[0].result == {"echo": {"i": 0}}  # output_data
    assert results[3].result == {"exclaim": {"text": "OK!"}}
    assert isinstance(results[1].error, ExecutionError)
    assert isinstance(results[2].error, FlowNotFoundError)
    assert isinstance(results[4].error, ValidationError)
    assert isinstance(results[5].error, ValidationError)
    assert "flow_id must be a string" in str(results[5].error)
    assert progress == [1, 2, 3, 4, 5, 6]


def test_an_idempotency_key_returns_the_same_execution(spine: Spine) -> None:
    key = (
        f"order-{uuid.uuid4().hex}"  # a server outlives one test: keys must not repeat
    )
    first = spine.execute_flow("echo", {"a": 1}, idempotency_key=key)
    again = spine.execute_flow("echo", {"a": 1}, idempotency_key=key)
    assert again["execution_id"] == first["execution_id"]
    with pytest.raises(ValidationError):
        spine.execute_flow("echo", {"a": 2}, idempotency_key=key)
    assert run_status(spine, first["execution_id"]) == "completed"
    run(spine, "echo", {})
    ids = [e["execution_id"] for e in spine.list_executions(limit=100)]
    assert ids.count(first["execution_id"]) == 1


def raised(call: Any) -> BaseException:
    with pytest.raises(Exception) as info:
        call()
    return info.value


def test_wait_raises_the_same_errors_locally_and_over_http(
    local_spine: LocalSpine, server: SpineServer, hooks: Hooks
) -> None:
    """The same executions waited on through LocalSpine and through AISpine + server.

    Both sides must see the same executions, so this one serves ``local_spine`` in-process.
    """
    with AISpine(base_url=server.url, max_retries=0, timeout=10) as remote:
        waits = {
            "local": lambda i, t=10.0: local_spine.wait_for_execution(i, t, FAST),
            "http": lambda i, t=10.0: remote.wait_for_execution(i, t, FAST),
        }
        done = local_spine.execute_flow("echo", {"v": 1})["execution_id"]
        answers = {k: dict(w(done)) for k, w in waits.items()}
        assert answers["local"] == answers["http"]

        failed = local_spine.execute_flow("fail", {})["execution_id"]
        blocked = local_spine.execute_flow("block", {})["execution_id"]
        assert hooks.started.wait(10)
        timeouts = {k: raised(lambda: w(blocked, 0.05)) for k, w in waits.items()}
        local_spine.cancel_execution(blocked)
        cases = {
            "failed": failed,
            "cancelled": blocked,
            "unknown": str(uuid.uuid4()),
            "not a uuid": "not-a-uuid",
        }
        for case, execution_id in cases.items():
            errors = {k: raised(lambda: w(execution_id)) for k, w in waits.items()}
            assert type(errors["local"]) is type(errors["http"]), case
            if isinstance(errors["local"], ExecutionError):
                local, http = errors["local"], errors["http"]
                assert isinstance(http, ExecutionError)
                assert str(local) == str(http)
                assert local.execution == http.execution
                assert (local.status, local.flow_id, local.execution_id) == (
                    http.status,
                    http.flow_id,
                    http.execution_id,
                )
            else:
                assert getattr(errors["local"], "status_code") == getattr(
                    errors["http"], "status_code"
                ), case
        local_timeout, http_timeout = timeouts["local"], timeouts["http"]
        assert type(local_timeout) is type(http_timeout) is TimeoutError
        assert isinstance(local_timeout, TimeoutError)
        assert isinstance(http_timeout, TimeoutError)
        # The HTTP client may add why its last poll ended ("; last poll: ...").
        assert str(http_timeout).startswith(str(local_timeout).rstrip(")"))
        assert (local_timeout.execution_id, local_timeout.last_status) == (
            http_timeout.execution_id,
            http_timeout.last_status,
        )


@pytest.mark.parametrize("bad", ["a/b", " echo", "my flow", "echo\n", ""])
def test_malformed_ids_are_validation_errors_on_both_sides(
    spine: Spine, bad: str
) -> None:
    for call in (spine.get_flow, spine.get_agent, spine.delete_agent):
        with pytest.raises(ValidationError) as info:
            call(bad)
        assert info.value.status_code is None  # refused before any lookup or request
        assert "agent_id" in str(info.value) or "flow_id" in str(info.value)
    agent = {"agent_id": bad, "name": "X", "endpoint": "http://127.0.0.1:9/x"}
    with pytest.raises(ValidationError, match="agent_id"):
        spine.create_agent(agent)
    assert spine.list_agents() == []


def test_infinite_or_nan_waits_are_refused_on_both_sides(spine: Spine) -> None:
    started = spine.execute_flow("echo", {})
    for bad in (float("inf"), float("nan")):
        with pytest.raises(ValidationError, match="timeout must be finite"):
            spine.wait_for_execution(started["execution_id"], bad, FAST)
    assert run_status(spine, started["execution_id"]) == "completed"


def test_the_keyed_server_refuses_a_client_without_the_key(
    served: Dict[str, ServeProcess],
) -> None:
    with AISpine(base_url=served["http+auth"].url, max_retries=0) as anonymous:
        assert anonymous.health_check()["status"] == "healthy"  # /health stays public
        with pytest.raises(AuthenticationError, match="Missing API key"):
            anonymous.list_flows()
    with AISpine(
        api_key="wrong", base_url=served["http+auth"].url, max_retries=0
    ) as wrong:
        with pytest.raises(AuthenticationError, match="Invalid API key") as info:
            wrong.execute_flow("echo", {})
        assert "wrong" not in str(info.value)
