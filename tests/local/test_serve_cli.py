"""The README's first command, for real: ``ai-spine serve --demo`` in a subprocess, curled."""

from __future__ import annotations

import signal
import time
from pathlib import Path
from typing import Any, Dict

import pytest

from ai_spine import AISpine
from ai_spine.exceptions import ServerError
from tests.local.http_util import call
from tests.local.serve_process import ServeProcess


def wait_done(url: str, execution_id: str) -> Dict[str, Any]:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        _, _, body = call("GET", f"{url}/api/v1/executions/{execution_id}")
        if body["status"] in ("completed", "failed", "cancelled"):
            return dict(body)
        time.sleep(0.02)  # polling the HTTP API, as curl users do
    raise AssertionError(f"execution {execution_id} did not finish")


@pytest.mark.slow
def test_serve_demo_answers_curl_and_stops_cleanly_on_sigterm() -> None:
    server = ServeProcess(["--demo"])
    try:
        assert "flows: echo, sentiment, word_stats" in server.banner
        status, _, health = call("GET", server.url + "/health")
        assert (status, health["status"]) == (200, "healthy")
        flows = call("GET", server.url + "/api/v1/flows")[2]
        assert [f["flow_id"] for f in flows["flows"]] == [
            "echo",
            "sentiment",
            "word_stats",
        ]
        runs = {
            "echo": {"message": "hi"},
            "sentiment": {"text": "I love it, it is great"},
            "word_stats": {"text": "to be or not to be"},
        }
        outputs = {}
        for flow_id, data in runs.items():
            _, _, started = call(
                "POST",
                server.url + "/api/v1/flows/execute",
                json_body={"flow_id": flow_id, "input_data": data},
            )
            assert started["status"] == "pending"
            outputs[flow_id] = wait_done(server.url, started["execution_id"])[
                "output_data"
            ]
        # Keyed by the exit node that ran, as the backend's output_data.
        assert outputs["echo"] == {"echo": {"message": "hi"}}
        assert outputs["sentiment"]["thank"]["label"] == "positive"
        assert outputs["sentiment"]["thank"]["action"] == "thank the customer"
        assert list(outputs["word_stats"]) == ["merge"]
        assert outputs["word_stats"]["merge"]["word_count"] == 6
        assert outputs["word_stats"]["merge"]["most_common"][:2] == [
            ["to", 2],
            ["be", 2],
        ]
    finally:
        code, out, err = server.stop(signal.SIGTERM)
    assert code == 0
    assert "shutting down" in out
    assert "Traceback" not in err


@pytest.mark.slow
def test_serve_with_db_and_key_keeps_executions_across_restarts(tmp_path: Path) -> None:
    db = str(tmp_path / "spine.sqlite")
    auth = {"Authorization": "Bearer k3y"}
    args = ["--demo", "--db", db, "--api-key", "k3y"]
    first = ServeProcess(args)
    try:
        assert "API key required" in first.banner
        assert call("GET", first.url + "/api/v1/executions")[0] == 401
        _, _, started = call(
            "POST",
            first.url + "/api/v1/flows/execute",
            headers=auth,
            json_body={"flow_id": "echo", "input_data": {"keep": 1}},
        )
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            got = call(
                "GET",
                f"{first.url}/api/v1/executions/{started['execution_id']}",
                None,
                auth,
            )
            if got[2]["status"] == "completed":
                break
            time.sleep(0.02)
    finally:
        assert first.stop(signal.SIGINT)[0] == 0
    second = ServeProcess(args)
    try:
        _, _, listed = call("GET", second.url + "/api/v1/executions", headers=auth)
        assert [e["execution_id"] for e in listed["executions"]] == [
            started["execution_id"]
        ]
        assert listed["executions"][0]["result"] == {"keep": 1}
    finally:
        assert second.stop()[0] == 0


@pytest.mark.slow
def test_serve_flows_module_object_registers_those_flows() -> None:
    server = ServeProcess(["--flows", "tests.local.flows:served_flows", "--verbose"])
    try:
        assert "flows: echo, shout, fail, sleep" in server.banner
        _, _, started = call(
            "POST",
            server.url + "/api/v1/flows/execute",
            json_body={"flow_id": "shout", "input_data": {"text": "cli"}},
        )
        assert wait_done(server.url, started["execution_id"])["result"] == {
            "text": "CLI!"
        }
    finally:
        code, _, err = server.stop()
    assert code == 0
    assert '"POST /api/v1/flows/execute HTTP/1.1" 200' in err  # --verbose access log


@pytest.mark.slow
def test_sigterm_lets_short_runs_finish_and_marks_the_rest(tmp_path: Path) -> None:
    db = str(tmp_path / "spine.sqlite")
    args = ["--flows", "tests.local.flows:served_flows", "--db", db, "--grace", "1.5"]
    server = ServeProcess(args)
    ids = {}
    try:
        for name, seconds in (("short", 0.3), ("long", 60)):
            _, _, started = call(
                "POST",
                server.url + "/api/v1/flows/execute",
                json_body={"flow_id": "sleep", "input_data": {"seconds": seconds}},
            )
            ids[name] = started["execution_id"]
        for execution_id in ids.values():  # both running before the signal
            deadline = time.monotonic() + 20
            while (
                call("GET", f"{server.url}/api/v1/executions/{execution_id}")[2][
                    "status"
                ]
                != "running"
            ):
                assert time.monotonic() < deadline
                time.sleep(0.01)
    finally:
        code, out, err = server.stop(signal.SIGTERM)
    assert code == 0, err
    again = ServeProcess(args)
    try:
        short = call("GET", f"{again.url}/api/v1/executions/{ids['short']}")[2]
        long = call("GET", f"{again.url}/api/v1/executions/{ids['long']}")[2]
    finally:
        again.stop()
    assert short["status"] == "completed"
    assert short["result"] == {"slept": 0.3}
    assert long["status"] == "failed"
    assert "closed before the execution finished" in long["error_message"]


@pytest.mark.slow
def test_serve_with_db_resumes_a_durable_run_killed_mid_way(tmp_path: Path) -> None:
    env = {
        "SPINE_STATE_DB": str(tmp_path / "state.sqlite"),
        "SPINE_COUNT_FILE": str(tmp_path / "count.txt"),
    }
    args = ["--flows", "tests.local.durable_flow:flows", "--db"]
    args.append(str(tmp_path / "executions.sqlite"))
    first = ServeProcess(args, env={**env, "SPINE_BLOCK": "1"})
    try:
        _, _, started = call(
            "POST",
            first.url + "/api/v1/flows/execute",
            json_body={"flow_id": "durable", "input_data": {"x": 21}},
        )
        assert first.proc.stdout is not None
        # The second node prints this once the first one is committed, then hangs.
        assert first.proc.stdout.readline().strip() == "blocked"
    finally:
        first.stop(signal.SIGKILL)  # nothing gets to clean up or mark the run
    second = ServeProcess(args, env={**env, "SPINE_BLOCK": "0"})
    try:
        done = wait_done(second.url, started["execution_id"])
    finally:
        second.stop()
    assert (done["status"], done["result"]) == ("completed", {"finished": 42})
    # The committed first node did not run again.
    assert Path(env["SPINE_COUNT_FILE"]).read_text().splitlines() == ["prepare"]


def wait_for(check: Any, what: str) -> None:
    """Poll ``check()`` until it is true (a synchronisation, not a timing assertion)."""
    deadline = time.monotonic() + 20
    while not check():
        assert time.monotonic() < deadline, f"never: {what}"
        time.sleep(0.01)


@pytest.mark.slow
def test_on_sigterm_reads_are_served_through_the_grace_period() -> None:
    server = ServeProcess(
        ["--flows", "tests.local.flows:served_flows", "--grace", "20"]
    )
    try:
        with AISpine(base_url=server.url, max_retries=0, timeout=10) as client:
            started = client.execute_flow("sleep", {"seconds": 1})
            execution_id = started["execution_id"]
            wait_for(
                lambda: client.get_execution(execution_id)["status"] == "running",
                "the run started",
            )
            server.proc.send_signal(signal.SIGTERM)
            wait_for(lambda: client.health_check()["status"] == "stopping", "draining")
            with pytest.raises(ServerError) as refused:
                client.execute_flow("echo", {})
            assert refused.value.status_code == 503
            assert "shutting down" in str(refused.value)
            # The client waiting on the run sees it finish, not a closed socket.
            done = client.wait_for_execution(execution_id, 30, 0.05)
        assert done["result"] == {"slept": 1}
    finally:
        code, _, err = server.stop()
    assert code == 0, err
