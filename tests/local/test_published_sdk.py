"""The published ``ai-spine-sdk`` 2.3.1 (the earlier SDK) against a real ``ai-spine serve``.

Every call below succeeds on the backend in its dev mode; each must have the same outcome
here. The release is installed into a temporary directory (never into this project's
environment) and runs in its own interpreter. Without a reachable package index the test
is skipped, except in CI (``CI=true``), where it fails.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any, Dict, Iterator

import pytest

from tests.local.serve_process import ServeProcess

RELEASE = "ai-spine-sdk==2.3.1"
KEY = "sk_test_published_sdk"
DRIVER = Path(__file__).with_name("published_sdk_driver.py")
#: What pip prints when it cannot reach the index at all.
UNREACHABLE = (
    "NewConnectionError",
    "Failed to establish",
    "Name or service not known",
    "Temporary failure in name resolution",
    "Network is unreachable",
)


@pytest.fixture(scope="module")
def sdk_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    target = tmp_path_factory.mktemp("ai-spine-sdk-2.3.1")
    # Its dependencies (requests, python-dateutil) are this project's own.
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            "--target",
            str(target),
            RELEASE,
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    if done.returncode != 0:
        output = done.stdout + done.stderr
        if os.environ.get("CI") != "true" and any(m in output for m in UNREACHABLE):
            pytest.skip(f"package index unreachable: cannot install {RELEASE}")
        pytest.fail(f"cannot install {RELEASE}: {output[-2000:]}")
    return target


@pytest.fixture(scope="module")
def outcomes(
    sdk_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Dict[str, Any]]:
    server = ServeProcess(["--demo", "--api-key", KEY])
    try:
        done = subprocess.run(
            [sys.executable, str(DRIVER), str(sdk_dir), server.url, KEY],
            capture_output=True,
            text=True,
            timeout=120,
            cwd=str(tmp_path_factory.mktemp("cwd")),  # not this project's root
        )
    finally:
        server.stop()
    assert done.returncode == 0, done.stderr
    lines = [json.loads(line) for line in done.stdout.splitlines()]
    assert lines[0] == {"version": "2.3.1"}  # the release, not this project
    yield {line["call"]: line for line in lines[1:]}


@pytest.mark.slow
def test_system_calls_answer_as_the_backend(outcomes: Dict[str, Any]) -> None:
    health = outcomes["health_check"]["value"]
    assert health["status"] == "healthy" and health["startup_complete"] is True
    assert isinstance(health["timestamp"], float)
    status = outcomes["get_status"]["value"]
    assert status["flows"] == {"total": 3}
    assert status["agents"] == {"total": 0, "active": 0}
    assert "successful_executions" in outcomes["get_metrics"]["value"]


@pytest.mark.slow
def test_flow_and_execution_calls_answer_as_the_backend(
    outcomes: Dict[str, Any],
) -> None:
    flows = outcomes["list_flows"]["value"]
    assert [f["flow_id"] for f in flows] == ["echo", "sentiment", "word_stats"]
    assert outcomes["get_flow"]["value"]["flow_id"] == "sentiment"
    assert (
        outcomes["get_flow_missing"]["error"],
        outcomes["get_flow_missing"]["status"],
    ) == (
        "APIError",
        404,
    )
    done = outcomes["execute_and_wait"]["value"]
    assert done["status"] == "completed"
    assert done["output_data"] == {"echo": {"message": "hi"}}  # keyed by exit node
    assert outcomes["execute_flow"]["value"]["status"] == "pending"
    waited = outcomes["wait_for_execution"]["value"]
    assert waited["output_data"]["thank"]["label"] == "positive"
    assert outcomes["get_execution"]["value"] == waited
    cancel = outcomes["cancel_ended"]
    assert (cancel["error"], cancel["status"]) == ("APIError", 404)
    assert "not found or not running" in cancel["message"]
    unknown = outcomes["execute_unknown_flow"]["value"]
    assert unknown["execution_id"] == "00000000-0000-0000-0000-000000000000"
    assert (unknown["status"], unknown["error"]) == ("failed", "Flow 'ghost' not found")


@pytest.mark.slow
def test_agent_and_user_calls_answer_as_the_backend(outcomes: Dict[str, Any]) -> None:
    assert outcomes["create_agent"]["value"]["agent_id"] == "summariser"
    assert outcomes["create_agent_again"]["value"]["name"] == "Renamed"  # overwritten
    assert [a["name"] for a in outcomes["list_agents"]["value"]] == ["Renamed"]
    assert outcomes["delete_agent"]["value"] is True
    assert outcomes["delete_agent_missing"]["value"] is False  # its 404
    user = outcomes["get_current_user"]["value"]
    assert (user["credits"], user["rate_limit"]) == (999999, 10000)
    assert outcomes["check_credits"]["value"] == 999999
    assert outcomes["wrong_key"]["error"] == "AuthenticationError"
