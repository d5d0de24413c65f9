"""LocalSpine on its own: registry forms, persistence, lifecycle, agents, notebooks."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any, Iterator, List

import pytest

from ai_spine.exceptions import (
    AISpineError,
    ExecutionError,
    NotFoundError,
    ServerError,
    ValidationError,
)
from ai_spine.local import LocalSpine
from ai_spine.local.records import Done
from spark_core.graphs import Graph
from spark_core.nodes import ExecutionContext, Node
from tests.local.flows import Echo, Hooks, make_flows


def finish(spine: LocalSpine, flow_id: str, data: Any) -> Any:
    return spine.wait_for_execution(
        spine.execute_flow(flow_id, data)["execution_id"], 10
    )


class Counter(Node):
    """Counts its runs in the graph state (to show whether runs share a graph)."""

    async def process(self, context: ExecutionContext) -> Any:
        assert context.graph_state is not None
        async with context.graph_state.lock():
            seen = (await context.graph_state.get("seen", 0)) + 1
            await context.graph_state.set("seen", seen)
        return {"seen": seen, "run_id": context.run_id}


def test_a_factory_gives_every_execution_a_fresh_graph() -> None:
    with LocalSpine({"count": lambda: Graph(Counter("count"))}) as spine:
        outputs = [finish(spine, "count", {})["result"] for _ in range(3)]
    assert [o["seen"] for o in outputs] == [1, 1, 1]


def test_a_graph_instance_runs_once_per_execution_with_the_execution_id() -> None:
    with LocalSpine({"count": Graph(Counter("count"))}) as spine:
        done = [finish(spine, "count", {}) for _ in range(3)]
    assert [d["result"]["run_id"] for d in done] == [d["execution_id"] for d in done]


def test_register_flow_rejects_bad_sources_and_taken_ids() -> None:
    with LocalSpine() as spine:
        with pytest.raises(ValidationError, match="expected a spark_core Graph"):
            spine.register_flow("bad", 42)  # type: ignore[arg-type]
        with pytest.raises(
            ValidationError, match="the factory failed: ZeroDivisionError"
        ):
            spine.register_flow("bad", lambda: 1 / 0)  # type: ignore[arg-type,return-value]
        with pytest.raises(ValidationError, match="factory returned str"):
            spine.register_flow("bad", lambda: "not a graph")  # type: ignore[arg-type,return-value]
        definition = spine.register_flow(
            "echo",
            lambda: Graph(Echo("echo")),
            name="Echo",
            description="Returns input",
        )
        assert definition["name"] == "Echo"
        assert definition["description"] == "Returns input"
        with pytest.raises(ValidationError, match="already exists"):
            spine.register_flow("echo", lambda: Graph(Echo("echo")))
        spine.register_flow("echo", lambda: Graph(Echo("again")), replace=True)
        assert [n["id"] for n in spine.get_flow("echo")["nodes"]] == ["again"]
        assert spine.unregister_flow("echo") is True
        with pytest.raises(NotFoundError):
            spine.unregister_flow("echo")


@pytest.mark.parametrize("bad", ["my flow", "a/b", " echo", "../x", "", 7])
def test_register_flow_refuses_ids_no_client_could_reach(bad: Any) -> None:
    with LocalSpine() as spine:
        with pytest.raises(ValidationError, match="flow_id") as info:
            spine.register_flow(bad, lambda: Graph(Echo("echo")))
        assert info.value.body["detail"][0]["loc"] == ["body", "flow_id"]
        assert spine.list_flows() == []
        with pytest.raises(ValidationError, match="flow_id"):
            spine.unregister_flow(bad)


GREET_SPEC = {
    "id": "greet",
    "start": "hello",
    "description": "Greets by name",
    "nodes": [
        {"id": "hello", "type": "template", "params": {"template": "Hello, {name}!"}},
        {"id": "out", "type": "echo"},
    ],
    "edges": [{"source": "hello", "target": "out"}],
}


def test_a_graph_spec_dict_is_loaded_and_run() -> None:
    with LocalSpine() as spine:
        definition = spine.register_flow("greet", GREET_SPEC)
        assert definition["metadata"]["source"] == "spec"
        assert definition["description"] == "Greets by name"
        assert [n["id"] for n in definition["nodes"]] == ["hello", "out"]
        done = finish(spine, "greet", {"name": "Ada"})
    assert done["result"]["text"] == "Hello, Ada!"


def test_spec_flows_share_the_spines_one_spec_loader(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from spark_core.kit import loader

    built: List[Any] = []
    init = loader.SpecLoader.__init__

    def counting(self: Any, *args: Any, **kwargs: Any) -> None:
        built.append(self)
        init(self, *args, **kwargs)

    monkeypatch.setattr(loader.SpecLoader, "__init__", counting)
    with LocalSpine() as spine:
        spine.register_flow("greet", GREET_SPEC)
        spine.register_flow("again", GREET_SPEC)
        for name in ("Ada", "Bob", "Cy"):
            assert finish(spine, "greet", {"name": name})["status"] == "completed"
    assert len(built) == 1  # built with the spine, not per flow or per execution


def test_a_bad_spec_names_its_flow_however_it_is_registered() -> None:
    bad = {"id": "x", "start": "x", "nodes": []}
    with pytest.raises(ValidationError, match=r"^flow 'bad': .*at least one node"):
        LocalSpine({"bad": bad})
    with LocalSpine() as spine:
        for register in (spine.register_flow, spine.update_flow):
            with pytest.raises(ValidationError) as info:
                register("bad", bad)
            assert info.value.message.startswith("flow 'bad': ")
            assert info.value.message.count("flow 'bad'") == 1
            assert info.value.body["detail"][0]["loc"] == ["body", "spec"]


TOOL_NODE = {
    "id": "find",
    "type": "tool_call",
    "params": {"tool": "count", "input_keys": ["query"]},
}
TOOL_SPEC = {
    "id": "lookup",
    "start": "pass",
    "nodes": [{"id": "pass", "type": "tests.local.flows:Echo"}, TOOL_NODE],
    "edges": [{"source": "pass", "target": "find"}],
    "tools": [{"name": "count", "reference": "tests.local.flows:count_chars"}],
}


def test_spec_flows_import_nodes_and_tools_only_from_allowed_modules() -> None:
    tool_only = dict(TOOL_SPEC, start="find", nodes=[TOOL_NODE], edges=[])
    with LocalSpine() as spine:
        for spec, kind in ((TOOL_SPEC, "node"), (tool_only, "tool")):
            with pytest.raises(ValidationError) as info:
                spine.register_flow("lookup", spec)
            assert f"{kind} reference 'tests.local.flows:" in str(info.value)
            assert "module 'tests.local.flows' is not allowed" in str(info.value)
        assert spine.list_flows() == []
    with LocalSpine(allow_modules=["tests.local"]) as spine:
        spine.register_flow("lookup", TOOL_SPEC)
        done = finish(spine, "lookup", {"query": "abc"})
        assert done["result"] == {"query": "abc", "result": {"chars": 3}}
    with pytest.raises(ValidationError, match="not a dotted module name"):
        LocalSpine(allow_modules=["tests..local"])
    with pytest.raises(ValidationError, match="not a str"):
        LocalSpine(allow_modules="tests")  # type: ignore[arg-type]


def test_an_invalid_spec_is_refused_and_registers_nothing() -> None:
    with LocalSpine() as spine:
        with pytest.raises(ValidationError, match="at least one node") as info:
            spine.register_flow("bad", {"id": "bad", "start": "x", "nodes": []})
        assert info.value.body["detail"][0]["loc"] == ["body", "spec"]
        assert spine.list_flows() == []


def test_inputs_are_copied_so_callers_cannot_change_a_run() -> None:
    data = {"items": [1, 2]}
    with LocalSpine({"echo": lambda: Graph(Echo("echo"))}) as spine:
        started = spine.execute_flow("echo", data)
        data["items"].append(3)
        done = spine.wait_for_execution(started["execution_id"], 10)
    assert done["input_data"] == {"items": [1, 2]}
    assert done["result"] == {"items": [1, 2]}


class Unserialisable(Node):
    async def process(self, context: ExecutionContext) -> Any:
        return {"value": object()}


def test_an_output_that_is_not_json_fails_the_execution_clearly() -> None:
    with LocalSpine({"bad": lambda: Graph(Unserialisable("bad"))}) as spine:
        with pytest.raises(ExecutionError, match="not JSON-serialisable"):
            finish(spine, "bad", {})


def test_the_execution_timeout_fails_a_slow_run(hooks: Hooks) -> None:
    with LocalSpine(make_flows(hooks)) as spine:
        started = spine.execute_flow("block", {}, timeout=1)
        with pytest.raises(ExecutionError, match="timed out after 1 s"):
            spine.wait_for_execution(started["execution_id"], 10)
        assert hooks.cancelled.wait(10)


def test_max_concurrency_keeps_extra_executions_pending(hooks: Hooks) -> None:
    with LocalSpine(make_flows(hooks), max_concurrency=1) as spine:
        first = spine.execute_flow("block", {})
        assert hooks.started.wait(10)
        second = spine.execute_flow("echo", {"n": 2})
        assert spine.get_execution(second["execution_id"])["status"] == "pending"
        hooks.release.set()
        assert (
            spine.wait_for_execution(first["execution_id"], 10)["status"] == "completed"
        )
        assert spine.wait_for_execution(second["execution_id"], 10)["result"] == {
            "n": 2
        }
    with pytest.raises(ValidationError):
        LocalSpine(max_concurrency=0)


def test_executions_persist_across_restarts(tmp_path: Path, hooks: Hooks) -> None:
    db = str(tmp_path / "executions.sqlite")
    first = LocalSpine(make_flows(hooks), db=db)
    done = finish(first, "echo", {"kept": True})
    key_run = first.execute_flow("echo", {"k": 1}, idempotency_key="once")
    first.wait_for_execution(key_run["execution_id"], 10)
    running = first.execute_flow("block", {})
    assert hooks.started.wait(10)
    # A second process opening the same file sees the first one's rows; the run that was
    # still going is reported failed, as after a crash.
    second = LocalSpine(make_flows(Hooks()), db=db)
    try:
        assert second.get_execution(done["execution_id"]) == done
        interrupted = second.get_execution(running["execution_id"])
        assert interrupted["status"] == "failed"
        assert "interrupted" in str(interrupted["error_message"])
        again = second.execute_flow("echo", {"k": 1}, idempotency_key="once")
        assert again["execution_id"] == key_run["execution_id"]
        assert second.get_metrics()["total_executions"] == 3
    finally:
        hooks.release.set()
        first.close()
        second.close()


def test_close_lets_running_work_finish_then_marks_the_rest(hooks: Hooks) -> None:
    spine = LocalSpine(make_flows(hooks))
    started = spine.execute_flow("block", {})
    assert hooks.started.wait(10)
    assert spine.close(timeout=0.05) == 1  # one execution was still running
    execution = spine.get_execution(started["execution_id"])
    assert execution["status"] == "failed"
    assert "closed" in str(execution["error_message"])
    with pytest.raises(ServerError, match="closed") as refused:
        spine.execute_flow("echo", {})
    assert refused.value.status_code == 503  # what a server shutting down answers
    assert spine.close() == 0  # twice is fine


def test_wait_rejects_bad_timeouts() -> None:
    with LocalSpine({"echo": lambda: Graph(Echo("echo"))}) as spine:
        started = spine.execute_flow("echo", {})
        with pytest.raises(ValidationError):
            spine.wait_for_execution(started["execution_id"], 0)
        seen: List[str] = []
        spine.wait_for_execution(
            started["execution_id"], 10, on_progress=lambda e: seen.append(e["status"])
        )
        assert seen[-1] == "completed"


def test_wait_wakes_on_completion_without_polling(
    hooks: Hooks, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: List[str] = []

    def progress(execution: Any) -> None:
        seen.append(execution["status"])
        hooks.release.set()  # the run finishes once the wait has begun

    def no_sleep(seconds: float) -> None:
        raise AssertionError(f"wait_for_execution polled: time.sleep({seconds})")

    waits: List[float] = []
    wait = Done.wait

    def one_wait(self: Done, timeout: float) -> bool:
        waits.append(timeout)
        return wait(self, timeout)

    with LocalSpine(make_flows(hooks)) as spine:
        started = spine.execute_flow("block", {})
        monkeypatch.setattr(time, "sleep", no_sleep)
        monkeypatch.setattr(Done, "wait", one_wait)
        done = spine.wait_for_execution(
            started["execution_id"], timeout=3600, interval=100, on_progress=progress
        )
        monkeypatch.undo()
    assert done["result"] == {"released": True}
    assert waits == [3600]  # one wait for the whole timeout, not one per interval
    # Told once when the wait began and once when it woke: no look per interval.
    assert len(seen) == 2 and seen[0] in ("pending", "running")
    assert seen[1] == "completed"


def test_every_waiter_of_an_execution_wakes(hooks: Hooks) -> None:
    arrived = threading.Semaphore(0)
    statuses: List[str] = []

    def waiter(execution_id: str) -> None:
        done = spine.wait_for_execution(
            execution_id, 30, on_progress=lambda e: arrived.release()
        )
        statuses.append(done["status"])

    with LocalSpine(make_flows(hooks)) as spine:
        execution_id = spine.execute_flow("block", {})["execution_id"]
        threads = [
            threading.Thread(target=waiter, args=(execution_id,)) for _ in range(3)
        ]
        for thread in threads:
            thread.start()
        for _ in threads:  # each waiter has begun its wait
            assert arrived.acquire(timeout=10)
        hooks.release.set()
        for thread in threads:
            thread.join(30)
    assert statuses == ["completed"] * 3


def test_a_wait_longer_than_the_platform_timeout_is_accepted(hooks: Hooks) -> None:
    with LocalSpine(make_flows(hooks)) as spine:
        started = spine.execute_flow("block", {})
        # Released once the wait has begun, so the long wait really blocks.
        done = spine.wait_for_execution(
            started["execution_id"],
            timeout=1e10,
            on_progress=lambda e: hooks.release.set(),
        )
        assert done["result"] == {"released": True}


def test_a_batch_wait_timeout_longer_than_the_platform_allows_is_accepted(
    hooks: Hooks,
) -> None:
    class ReleaseOnWait(threading.Condition):
        def wait(self, timeout: Any = None) -> bool:
            hooks.release.set()  # the batch is waiting: let the blocked item finish
            return super().wait(timeout)

    with LocalSpine(make_flows(hooks)) as spine:
        spine._changed = ReleaseOnWait(threading.Lock())
        results = spine.execute_batch([("block", {})], wait_timeout=1e300)
        assert [r.result for r in results] == [{"block": {"released": True}}]


def test_it_works_from_inside_a_running_event_loop() -> None:
    # What a notebook cell does: the caller's thread already runs a loop.
    async def cell() -> Any:
        with LocalSpine({"echo": lambda: Graph(Echo("echo"))}) as spine:
            return finish(spine, "echo", {"from": "notebook"})["result"]

    assert asyncio.run(cell()) == {"from": "notebook"}


def test_results_include_per_node_outcomes() -> None:
    with LocalSpine(make_flows(Hooks())) as spine:
        done = finish(spine, "shout", {"text": "a"})
        results = spine.get_execution_results(done["execution_id"])
    assert results["output_data"] == {"exclaim": {"text": "A!"}}
    assert set(results["node_results"]) == {"upper", "exclaim"}
    assert results["node_results"]["upper"]["status"] == "completed"


def test_handler_agents_can_be_invoked() -> None:
    with LocalSpine() as spine:
        spine.create_agent(
            {
                "agent_id": "doubler",
                "name": "Doubler",
                "handler": lambda data: {"value": data["value"] * 2},
            }
        )
        assert spine.get_agent("doubler")["endpoint"] == "local://doubler"
        assert spine.invoke_agent("doubler", {"value": 21}) == {"value": 42}
        spine.create_agent(
            {"agent_id": "broken", "name": "B", "handler": lambda d: 1 / 0}
        )
        with pytest.raises(ExecutionError, match="ZeroDivisionError"):
            spine.invoke_agent("broken", {})
        with pytest.raises(NotFoundError):
            spine.invoke_agent("missing", {})


@pytest.fixture
def agent_endpoint() -> Iterator[str]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            data = json.dumps({"echoed": body}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: Any) -> None:
            pass

    httpd = HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/agent"
    httpd.shutdown()
    httpd.server_close()


def test_endpoint_agents_are_called_over_http(agent_endpoint: str) -> None:
    with LocalSpine() as spine:
        spine.create_agent(
            {"agent_id": "remote", "name": "R", "endpoint": agent_endpoint}
        )
        assert spine.invoke_agent("remote", {"q": 1}) == {"echoed": {"q": 1}}


def test_repr_shows_no_internals() -> None:
    with LocalSpine({"echo": lambda: Graph(Echo("echo"))}) as spine:
        assert repr(spine) == "LocalSpine(flows=1, executions=0, db=None)"


@pytest.mark.slow
def test_a_durable_run_killed_mid_way_is_resumed_on_restart(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = {
        "SPINE_DB": str(tmp_path / "executions.sqlite"),
        "SPINE_STATE_DB": str(tmp_path / "state.sqlite"),
        "SPINE_COUNT_FILE": str(tmp_path / "count.txt"),
    }
    root = Path(__file__).resolve().parents[2]
    child = subprocess.Popen(
        [sys.executable, "-m", "tests.local.durable_flow"],
        cwd=str(root),
        env={**os.environ, **env, "SPINE_BLOCK": "1"},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert child.stdout is not None
    # The id (main thread) and "blocked" (the node, on the loop thread) come in any order.
    lines = {child.stdout.readline().strip(), child.stdout.readline().strip()}
    if "blocked" not in lines:
        child.kill()
        raise AssertionError(f"child: {lines!r} {child.communicate()}")
    (execution_id,) = lines - {"blocked"}
    child.kill()  # SIGKILL: nothing gets to clean up
    child.wait(timeout=10)
    child.stdout.close()
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("SPINE_BLOCK", "0")
    from tests.local.durable_flow import flows

    with LocalSpine(flows(), db=env["SPINE_DB"]) as spine:
        done = spine.wait_for_execution(execution_id, 20)
    assert done["result"] == {"finished": 42}
    # The committed first step was not run again.
    assert Path(env["SPINE_COUNT_FILE"]).read_text().splitlines() == ["prepare"]


@pytest.fixture
def durable_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    """The durable test flow's files under tmp_path; returns the executions db path."""
    monkeypatch.setenv("SPINE_STATE_DB", str(tmp_path / "state.sqlite"))
    monkeypatch.setenv("SPINE_COUNT_FILE", str(tmp_path / "count.txt"))
    monkeypatch.setenv("SPINE_BLOCK", "1")
    return str(tmp_path / "executions.sqlite")


def test_close_leaves_a_durable_run_to_resume_at_the_next_start(
    durable_env: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    from tests.local.durable_flow import flows

    spine = LocalSpine(flows(), db=durable_env)
    execution_id = spine.execute_flow("durable", {"x": 21})["execution_id"]
    out = ""
    while "blocked" not in out:  # the second node runs: the first one is committed
        out += capsys.readouterr().out
        time.sleep(0.01)
    # No execution ended, so waiters elsewhere have no ending to see.
    assert spine.close(timeout=0.05) == 0
    kept = spine.get_execution(execution_id)
    assert kept["status"] == "running"  # not failed: it is not over
    assert "resumes when a LocalSpine opens this db again" in kept["error_message"]
    with pytest.raises(ExecutionError, match="durable state backend keeps the run"):
        spine.wait_for_execution(execution_id, 10)
    monkeypatch.setenv("SPINE_BLOCK", "0")
    with LocalSpine(flows(), db=durable_env) as again:
        done = again.wait_for_execution(execution_id, 20)
    assert done["result"] == {"finished": 42}
    assert (tmp_path / "count.txt").read_text().splitlines() == ["prepare"]


def test_shutdown_does_not_linger_when_every_unfinished_run_is_kept(
    durable_env: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from types import SimpleNamespace

    from ai_spine.server import stdlib as server_module
    from ai_spine.server import SpineServer
    from tests.local.durable_flow import flows

    spine = LocalSpine(flows(), db=durable_env)
    srv = SpineServer(spine).start()
    spine.execute_flow("durable", {"x": 1})
    out = ""
    while "blocked" not in out:  # running, its first node committed
        out += capsys.readouterr().out
        time.sleep(0.01)
    slept: List[float] = []
    fake_time = SimpleNamespace(sleep=slept.append, monotonic=time.monotonic)
    monkeypatch.setattr(server_module, "time", fake_time)
    srv.shutdown(close_spine=True, grace=0.05)
    # Pollers would only see it still running: no poll interval to wait for them.
    assert slept == []


def test_a_resumed_run_gets_what_is_left_of_its_timeout(
    durable_env: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # "timeout" is a deadline fixed when the run starts: a resumed run gets the time that
    # is left (time the process was down counts), not its full timeout over again.
    from tests.local.durable_flow import flows

    spine = LocalSpine(flows(), db=durable_env)
    started = spine.execute_flow("durable", {"x": 1}, timeout=3600)
    out = ""
    while "blocked" not in out:  # running: its hour started
        out += capsys.readouterr().out
        time.sleep(0.01)
    spine.close(timeout=0)
    assert spine.get_execution(started["execution_id"])["status"] == "running"
    later = time.time() + 3599  # restarted 59 min 59 s later
    # Still blocking after the restart: about a second of its hour is left, not an hour.
    with LocalSpine(flows(), db=durable_env, clock=lambda: later) as again:
        with pytest.raises(ExecutionError, match=r"timed out after 3600 s\b"):
            again.wait_for_execution(started["execution_id"], 30)


def test_a_durable_run_that_never_started_is_started_at_the_next_start(
    durable_env: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.local.durable_flow import flows

    spine = LocalSpine(flows(), db=durable_env, max_concurrency=1)
    spine.execute_flow("durable", {"x": 1})  # holds the only slot: it blocks
    queued = spine.execute_flow("durable", {"x": 5})["execution_id"]
    spine.close(timeout=0)
    assert spine.get_execution(queued)["status"] == "pending"
    monkeypatch.setenv("SPINE_BLOCK", "0")
    with LocalSpine(flows(), db=durable_env) as again:
        done = again.wait_for_execution(queued, 20)
    assert done["result"] == {"finished": 10}


def test_a_store_written_before_timeouts_were_kept_is_upgraded(
    tmp_path: Path,
) -> None:
    import sqlite3

    from ai_spine.local import journal

    db = str(tmp_path / "old.sqlite")
    old_schema = journal._SCHEMA.replace(
        ",\n    timeout REAL,\n    timeout_at REAL", ""
    )
    assert old_schema != journal._SCHEMA
    conn = sqlite3.connect(db)
    conn.executescript(old_schema)
    conn.close()
    with LocalSpine({"echo": lambda: Graph(Echo("echo"))}, db=db) as spine:
        done = finish(spine, "echo", {"new": 1})
    with LocalSpine({"echo": lambda: Graph(Echo("echo"))}, db=db) as spine:
        assert spine.get_execution(done["execution_id"])["result"] == {"new": 1}


def test_metrics_time_a_cancelled_run_as_a_restart_does(
    tmp_path: Path, hooks: Hooks
) -> None:
    db = str(tmp_path / "executions.sqlite")
    with LocalSpine(make_flows(hooks), db=db) as spine:
        started = spine.execute_flow("block", {})
        assert hooks.started.wait(10)
        spine.cancel_execution(started["execution_id"])
        live = spine.get_metrics()
    with LocalSpine(make_flows(Hooks()), db=db) as again:
        reopened = again.get_metrics()
    assert live["max_execution_time"] > 0
    for key in ("average_execution_time", "max_execution_time"):
        assert live[key] == reopened[key]


def test_memory_keeps_only_the_newest_finished_executions(hooks: Hooks) -> None:
    with LocalSpine(make_flows(hooks), max_executions=2) as spine:
        running = spine.execute_flow("block", {})["execution_id"]
        assert hooks.started.wait(10)
        ids = [finish(spine, "echo", {"i": i})["execution_id"] for i in range(4)]
        # The two oldest finished ones are forgotten; the running one is always kept.
        assert [e["execution_id"] for e in spine.list_executions()] == [
            ids[3],
            ids[2],
            running,
        ]
        with pytest.raises(NotFoundError):
            spine.get_execution(ids[0])
        metrics = spine.get_metrics()
        assert metrics["total_executions"] == 5  # the metrics still count every one
        assert metrics["executions_by_status"]["completed"] == 4
        assert repr(spine).startswith("LocalSpine(flows=4, executions=3,")
        hooks.release.set()
        spine.wait_for_execution(running, 10)
    with pytest.raises(ValidationError, match="max_executions"):
        LocalSpine(max_executions=0)
    with LocalSpine(
        make_flows(Hooks()), max_executions=None, max_memory=None
    ) as unbounded:
        for i in range(3):
            finish(unbounded, "echo", {"i": i})
        assert len(unbounded.list_executions()) == 3


def test_with_a_db_executions_that_left_memory_are_read_back(
    tmp_path: Path, hooks: Hooks
) -> None:
    db = str(tmp_path / "executions.sqlite")
    with LocalSpine(make_flows(hooks), db=db, max_executions=2) as spine:
        keyed = spine.execute_flow("echo", {"k": 1}, idempotency_key="k-1")
        first = spine.wait_for_execution(keyed["execution_id"], 10)
        with pytest.raises(ExecutionError):
            finish(spine, "fail", {})
        ids = [finish(spine, "echo", {"i": i})["execution_id"] for i in range(3)]
        # Out of memory, but get, wait, results, cancel and the key still answer from the file.
        assert spine.get_execution(first["execution_id"]) == first
        assert spine.wait_for_execution(first["execution_id"], 1) == first
        results = spine.get_execution_results(first["execution_id"])
        assert results["node_results"]["echo"]["status"] == "completed"
        with pytest.raises(NotFoundError, match="not found or not running"):
            spine.cancel_execution(first["execution_id"])
        again = spine.execute_flow("echo", {"k": 1}, idempotency_key="k-1")
        assert again["execution_id"] == first["execution_id"]
        with pytest.raises(ValidationError):
            spine.execute_flow("echo", {"k": 2}, idempotency_key="k-1")
        listed = [e["execution_id"] for e in spine.list_executions(limit=10)]
        assert listed[:3] == ids[::-1]
        assert listed[4] == first["execution_id"]
        assert len(listed) == 5
        assert spine.list_executions(limit=1, offset=4)[0] == first
        failed = spine.list_executions(status="failed")
        assert [e["status"] for e in failed] == ["failed"]
        assert spine.get_metrics()["total_executions"] == 5
    # Reopened with a smaller bound: the newest finished rows are read, totals cover all.
    with LocalSpine(make_flows(Hooks()), db=db, max_executions=1) as reopened:
        assert repr(reopened).startswith("LocalSpine(flows=4, executions=1,")
        metrics = reopened.get_metrics()
        assert metrics["total_executions"] == 5
        assert metrics["executions_by_status"]["failed"] == 1
        assert [e["execution_id"] for e in reopened.list_executions(limit=2)] == [
            ids[2],
            ids[1],
        ]
        assert reopened.get_execution(first["execution_id"]) == first


def test_the_store_keeps_the_latest_state_when_two_saves_race(
    tmp_path: Path, hooks: Hooks, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A cancel saved while the loop thread saves "running" must not be overwritten."""
    from ai_spine.local.records import ExecutionRecord as _Record

    db = str(tmp_path / "executions.sqlite")
    real_row = _Record.row
    racers: List[threading.Thread] = []

    def row(rec: Any) -> Any:
        values = real_row(rec)
        if values[2] == "running" and not racers:
            racers.append(
                threading.Thread(target=spine.cancel_execution, args=(values[0],))
            )
            racers[0].start()
            racers[0].join(1)  # the cancel's save may land now, before this one
        return values

    monkeypatch.setattr(_Record, "row", row)
    spine = LocalSpine(make_flows(hooks), db=db)
    try:
        started = spine.execute_flow("block", {})
        with pytest.raises(ExecutionError):
            spine.wait_for_execution(started["execution_id"], 10)
        racers[0].join(10)
    finally:
        spine.close()
    monkeypatch.setattr(_Record, "row", real_row)
    with LocalSpine(make_flows(Hooks()), db=db) as reopened:
        assert reopened.get_execution(started["execution_id"])["status"] == "cancelled"


class Pause(Node):
    async def process(self, context: ExecutionContext) -> Any:
        from spark_core.errors import RunPaused

        raise RunPaused("waiting for an approval of 'deploy'")


class Weird:
    """A duck-typed graph whose run ends in a status spark_core would raise for."""

    nodes: dict = {}
    edges: list = []

    async def run(self, inputs: Any = None, *, run_id: Any = None) -> Any:
        class Result:
            status = "stopped"

        return Result()


def test_a_run_that_does_not_complete_fails_saying_how_it_ended() -> None:
    with LocalSpine(
        {"pause": lambda: Graph(Pause("pause")), "weird": Weird()}
    ) as spine:
        for flow_id, expected in (
            ("pause", "the run paused (waiting for an approval of 'deploy')"),
            ("weird", "the run ended stopped"),
        ):
            started = spine.execute_flow(flow_id, {})
            with pytest.raises(ExecutionError) as info:
                spine.wait_for_execution(started["execution_id"], 10)
            assert info.value.execution["error_message"] == expected


def test_a_batch_stopped_by_its_caller_leaves_no_waiting_threads(hooks: Hooks) -> None:
    def stop(done: int, total: int, result: Any) -> None:
        raise KeyboardInterrupt  # what Ctrl-C in on_progress (or anywhere) looks like

    with LocalSpine(make_flows(hooks)) as spine:
        with pytest.raises(KeyboardInterrupt):
            spine.execute_batch(
                [("echo", {}), ("block", {}), ("block", {})],
                concurrency=3,
                on_progress=stop,
            )
        waiting = [t.name for t in threading.enumerate() if t.name == "ai-spine-batch"]
        assert waiting == []
        hooks.release.set()


def test_a_batch_item_still_running_at_wait_timeout_times_out(hooks: Hooks) -> None:
    with LocalSpine(make_flows(hooks)) as spine:
        results = spine.execute_batch(
            [("block", {}), ("echo", {"n": 1})], concurrency=1, wait_timeout=0.2
        )
        hooks.release.set()
    assert [r.ok for r in results] == [False, True]
    error = results[0].error
    assert isinstance(error, AISpineError) and isinstance(error, TimeoutError)
    assert "not finished after 0.2s (last status: running)" in str(error)
    assert results[0].execution is not None
    assert results[0].execution["status"] == "running"
    assert results[1].result == {"echo": {"n": 1}}


def test_an_unusable_store_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(AISpineError, match="cannot open execution store"):
        LocalSpine(db=str(tmp_path))  # a directory, not a file


def test_agent_answers_must_be_json_objects() -> None:
    with LocalSpine() as spine:
        spine.create_agent({"agent_id": "none", "name": "N", "handler": lambda d: None})
        spine.create_agent({"agent_id": "list", "name": "L", "handler": lambda d: [1]})
        assert spine.invoke_agent("none", {}) == {}
        with pytest.raises(
            ExecutionError, match="returned list, expected a JSON object"
        ):
            spine.invoke_agent("list", {})
        with pytest.raises(ValidationError, match="handler must be callable"):
            spine.create_agent({"agent_id": "x", "name": "X", "handler": 3})


def test_a_bad_flow_given_to_the_constructor_closes_the_store(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from ai_spine.local.journal import SQLiteJournal as _Journal

    closed: List[str] = []
    real_close = _Journal.close

    def close(journal: Any) -> None:
        closed.append(journal.path)
        real_close(journal)

    monkeypatch.setattr(_Journal, "close", close)
    db = str(tmp_path / "executions.sqlite")
    with pytest.raises(ValidationError, match="expected a spark_core Graph"):
        LocalSpine({"bad": 42}, db=db)  # type: ignore[dict-item]
    assert closed == [db]


def test_a_closed_spine_with_a_store_still_answers_reads_and_refuses_work(
    tmp_path: Path,
) -> None:
    spine = LocalSpine(
        make_flows(Hooks()), db=str(tmp_path / "x.sqlite"), max_executions=1
    )
    ids = [finish(spine, "echo", {"i": i})["execution_id"] for i in range(2)]
    spine.close()
    with pytest.raises(AISpineError, match="LocalSpine is closed"):
        spine.execute_flow("echo", {}, idempotency_key="after-close")
    assert [e["execution_id"] for e in spine.list_executions()] == [ids[1]]
    with pytest.raises(NotFoundError):
        spine.get_execution(ids[0])  # left memory, and the store is closed


def test_a_batch_larger_than_the_memory_bound_reports_every_item(hooks: Hooks) -> None:
    hooks.release.set()  # the block flow returns at once
    with LocalSpine(make_flows(hooks), max_executions=1) as spine:
        items = [("echo", {"i": i}) for i in range(6)] + [("fail", {}), ("block", {})]
        results = spine.execute_batch(items, concurrency=8)
    assert [r.ok for r in results] == [True] * 6 + [False, True]
    assert [r.result for r in results[:6]] == [{"echo": {"i": i}} for i in range(6)]
    assert isinstance(results[6].error, ExecutionError)
    assert "boom" in str(results[6].error)
    assert results[6].execution is not None
    assert results[6].execution["status"] == "failed"
