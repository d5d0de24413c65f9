"""The `ai-spine` command line: JSON on stdout, one-line errors, exit codes."""

from __future__ import annotations

import json
import subprocess
import sys
import types
from typing import Any, Dict, List

import pytest
import responses
from responses import matchers

from ai_spine import cli
from tests.client.conftest import BASE, V1
from tests.client.fault_server import free_port

EXEC_ID = "3f2b8c1e-8a4d-4c57-9a51-2b7c9e0d4f11"


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> Any:
    code = cli.main(["--base-url", BASE, "--max-retries", "0", *argv])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize(
    "argv, route, body, expected",
    [
        (["health"], "/health", {"status": "healthy"}, {"status": "healthy"}),
        (["status"], "/status", {"system_status": "ok"}, {"system_status": "ok"}),
        (["metrics"], "/metrics", {"total": 1}, {"total": 1}),
        (["flows"], "/api/v1/flows", {"flows": [{"flow_id": "a"}]}, [{"flow_id": "a"}]),
        (["flows", "a"], "/api/v1/flows/a", {"flow_id": "a"}, {"flow_id": "a"}),
        (["agents"], "/api/v1/agents", {"agents": []}, []),
        (["agents", "x"], "/api/v1/agents/x", {"agent_id": "x"}, {"agent_id": "x"}),
        (
            ["get", EXEC_ID],
            f"/api/v1/executions/{EXEC_ID}",
            {"status": "running"},
            None,
        ),
        (["executions", "--limit", "2"], "/api/v1/executions", {"executions": []}, []),
    ],
)
def test_read_commands_print_json(
    capsys: pytest.CaptureFixture[str],
    mocked: responses.RequestsMock,
    argv: List[str],
    route: str,
    body: Any,
    expected: Any,
) -> None:
    mocked.get(BASE + route, json=body)
    code, out, err = run(capsys, *argv)
    assert code == 0 and err == ""
    assert json.loads(out) == (body if expected is None else expected)


def test_execute_and_wait(
    capsys: pytest.CaptureFixture[str], mocked: responses.RequestsMock
) -> None:
    mocked.post(
        V1 + "/flows/execute",
        json={"execution_id": EXEC_ID, "status": "pending"},
        match=[
            matchers.json_params_matcher(
                {"flow_id": "echo", "input_data": {"text": "hi"}, "metadata": {"m": 1}}
            ),
            matchers.header_matcher({"Idempotency-Key": "k1"}),
        ],
    )
    done = {
        "execution_id": EXEC_ID,
        "status": "completed",
        "output_data": {"text": "hi"},
    }
    mocked.get(f"{V1}/executions/{EXEC_ID}", json=done)
    code, out, _ = run(
        capsys,
        "execute",
        "echo",
        "--input",
        '{"text": "hi"}',
        "--metadata",
        '{"m": 1}',
        "--idempotency-key",
        "k1",
        "--wait",
        "--interval",
        "0.01",
    )
    assert code == 0 and json.loads(out) == done


def test_execute_without_wait_and_cancel(
    capsys: pytest.CaptureFixture[str], mocked: responses.RequestsMock
) -> None:
    mocked.post(
        V1 + "/flows/execute", json={"execution_id": EXEC_ID, "status": "pending"}
    )
    mocked.post(f"{V1}/executions/{EXEC_ID}/cancel", json={"status": "cancelled"})
    assert json.loads(run(capsys, "execute", "echo")[1])["status"] == "pending"
    assert json.loads(run(capsys, "cancel", EXEC_ID)[1]) == {"status": "cancelled"}


def test_wait_failure_is_exit_1(
    capsys: pytest.CaptureFixture[str], mocked: responses.RequestsMock
) -> None:
    mocked.get(
        f"{V1}/executions/{EXEC_ID}",
        json={"execution_id": EXEC_ID, "status": "failed", "error_message": "boom"},
    )
    code, out, err = run(capsys, "wait", EXEC_ID)
    assert code == 1 and out == ""
    assert err == f"ai-spine: error: ExecutionError: execution {EXEC_ID} failed: boom\n"


@pytest.mark.parametrize(
    "argv, fragment",
    [
        ([], "required: COMMAND"),
        (["nope"], "invalid choice: 'nope'"),
        (["execute"], "required: flow_id"),
        (["execute", "f", "--input", "{bad"], "not valid JSON"),
        (["execute", "f", "--input", "[1]"], "must be a JSON object, got list"),
        (["execute", "bad/id"], "flow_id 'bad/id' is malformed"),
        (["flows", ""], "flow_id must not be empty"),  # listed every flow before
        (["agents", ""], "agent_id must not be empty"),
        (["--timeout", "0", "health"], "timeout must be > 0"),
        (["health", "serve"], "unrecognized arguments"),
        (["--api-key", "sk-pasted\n", "health"], "check for a trailing newline"),
        (["--base-url", "http://[bad", "health"], "base_url must be an http(s) URL"),
    ],
)
def test_usage_and_validation_errors_exit_2_with_one_line(
    capsys: pytest.CaptureFixture[str], argv: List[str], fragment: str
) -> None:
    code, out, err = run(capsys, *argv)
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and err.startswith("ai-spine: error: ")
    assert fragment in err


def test_api_errors_exit_1_and_hide_the_key(
    capsys: pytest.CaptureFixture[str], mocked: responses.RequestsMock
) -> None:
    mocked.get(V1 + "/flows", status=401, json={"detail": "Invalid API key"})
    mocked.get(
        V1 + "/flows/x", status=422, json={"detail": [{"loc": ["p"], "msg": "bad"}]}
    )
    code, out, err = run(capsys, "--api-key", "sk-cli-secret", "flows")
    assert code == 1 and out == ""
    assert err == (
        "ai-spine: error: AuthenticationError: GET /api/v1/flows failed: Invalid API key "
        "(HTTP 401)\n"
    )
    assert mocked.calls[0].request.headers["Authorization"] == "Bearer sk-cli-secret"
    code, _, err = run(capsys, "flows", "x")
    assert code == 1 and "p: bad" in err


def test_api_key_defaults_from_environment(
    capsys: pytest.CaptureFixture[str],
    mocked: responses.RequestsMock,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AI_SPINE_API_KEY", "sk-env")
    mocked.get(BASE + "/health", json={})
    assert run(capsys, "health")[0] == 0
    assert mocked.calls[0].request.headers["Authorization"] == "Bearer sk-env"


def test_global_options_after_the_command(
    capsys: pytest.CaptureFixture[str], mocked: responses.RequestsMock
) -> None:
    mocked.get("http://other.test/health", json={"ok": True})
    code = cli.main(["health", "--base-url", "http://other.test", "--timeout", "5"])
    assert code == 0 and json.loads(capsys.readouterr().out) == {"ok": True}


def test_help_exits_0(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["--help"]) == 0
    assert "execute" in capsys.readouterr().out


def test_interrupt_is_exit_130(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    def interrupted(args: Any) -> Any:
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "_run", interrupted)
    assert run(capsys, "health")[0] == 130


def test_serve_is_dispatched_to_the_server_module(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    seen: Dict[str, Any] = {}
    fake = types.ModuleType("ai_spine.serve_cli")

    def serve_main(argv: List[str]) -> int:
        seen["argv"] = argv
        return 0

    fake.serve_main = serve_main  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "ai_spine.serve_cli", fake)
    assert cli.main(["serve", "--demo", "--port", "0"]) == 0
    assert seen["argv"] == ["--demo", "--port", "0"]


def test_serve_missing_is_a_clear_error(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(
        sys.modules, "ai_spine.serve_cli", None
    )  # import raises ImportError
    assert cli.main(["serve"]) == 2
    assert capsys.readouterr().err.startswith("ai-spine: error: serve is not available")


def test_serve_after_global_options_is_refused(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert cli.main(["--timeout", "3", "serve"]) == 2
    assert "'serve' must be the first argument" in capsys.readouterr().err


def test_console_script_never_prints_a_traceback() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "ai_spine.cli",
            "--base-url",
            url,
            "--max-retries",
            "0",
            "health",
        ],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 1
    assert proc.stderr.startswith(
        "ai-spine: error: NetworkError: GET /health: could not connect"
    )
    assert "Traceback" not in proc.stderr and proc.stderr.count("\n") == 1


def test_server_side_validation_is_exit_1(
    capsys: pytest.CaptureFixture[str], mocked: responses.RequestsMock
) -> None:
    mocked.get(f"{V1}/executions/123", status=422, json={"detail": "not a uuid"})
    code, _, err = run(capsys, "get", "123")
    assert code == 1 and err.startswith("ai-spine: error: ValidationError: ")


def test_closed_stdout_pipe_is_not_a_traceback(tmp_path: Any) -> None:
    script = (
        "import sys, responses\n"
        "from ai_spine import cli\n"
        "with responses.RequestsMock() as mock:\n"
        "    mock.get('https://api.test/api/v1/flows', json={'flows': [{'flow_id': str(i)}\n"
        "             for i in range(20000)]})\n"
        "    sys.exit(cli.main(['--base-url', 'https://api.test', 'flows']))\n"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.read(10)
    proc.stdout.close()  # the reader goes away, like `| head`
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=60) == 0
    assert "Traceback" not in err
