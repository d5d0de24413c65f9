"""Every spark-spec command through the installed console script, as a user runs it.

One subprocess per command keeps this fast; the deploy goes to a real ``ai-spine serve``
started on a free loopback port and stopped by the test.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any, Iterator, List

import pytest

from ai_spine import AISpine
from spark_core import __version__
from spark_core.errors import RunPaused
from spark_core.spec import save_mission_spec
from tests.local.serve_process import ServeProcess
from tests.spec.test_cli import approval_graph

REPO = Path(__file__).resolve().parents[2]
# Next to the interpreter running the tests (the venv's bin), else on PATH.
_NEXT_TO_PYTHON = Path(sys.executable).with_name("spark-spec")
SPARK_SPEC = (
    str(_NEXT_TO_PYTHON) if _NEXT_TO_PYTHON.exists() else shutil.which("spark-spec")
)
ENV = dict(os.environ, PYTHONPATH=str(REPO))  # the tests' modules, for references

pytestmark = pytest.mark.skipif(
    SPARK_SPEC is None, reason="the spark-spec console script is not installed"
)


def spark_spec(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    assert SPARK_SPEC is not None
    return subprocess.run(
        [SPARK_SPEC, *args],
        cwd=cwd,
        env=ENV,
        capture_output=True,
        text=True,
        timeout=120,
    )


def ok(proc: subprocess.CompletedProcess[str]) -> Any:
    """Exit 0, nothing on stderr; the --json output."""
    assert proc.returncode == 0 and proc.stderr == "", proc.stderr
    return json.loads(proc.stdout)


@pytest.fixture
def serve() -> Iterator[ServeProcess]:
    """``ai-spine serve`` allowing the tests' node classes and tools, stopped afterwards."""
    server = ServeProcess(
        ["--allow-module", "tests.spec"], env={"PYTHONPATH": str(REPO)}
    )
    try:
        yield server
    finally:
        server.stop()


def test_generate_validate_simulate_package_and_deploy_to_ai_spine_serve(
    tmp_path: Path, serve: ServeProcess
) -> None:
    summary = ok(
        spark_spec(
            "mission-generate",
            "A research agent that answers questions",
            "--mission-id",
            "research_v1",
            "--plan",
            "gather,answer",
            "--strategy",
            "plan_and_solve",
            "-o",
            "mission.json",
            "--json",
            cwd=tmp_path,
        )
    )
    assert summary["nodes"] == ["gather", "answer", "agent"]
    assert summary["strategies"] == ["plan_and_solve"]

    checked = ok(
        spark_spec(
            "mission-validate",
            "mission.json",
            "--semantic",
            "--strict",
            "--check-deployment",
            "--json",
            cwd=tmp_path,
        )
    )
    assert checked["valid"] is True and checked["issues"] == []

    report = ok(spark_spec("simulation-run", "mission.json", "--json", cwd=tmp_path))
    assert report["status"] == "completed" and report["model_calls"] == {"agent": 2}
    assert [s["status"] for s in report["plan"]["steps"]] == ["completed"] * 2

    packaged = ok(
        spark_spec(
            "mission-package",
            "mission.json",
            "--include-deps",
            "-o",
            "mission.zip",
            "--json",
            cwd=tmp_path,
        )
    )
    with zipfile.ZipFile(tmp_path / "mission.zip") as archive:
        assert set(packaged["manifest"]["files"]) <= set(archive.namelist())
        assert json.loads(archive.read("mission.json"))["mission_id"] == "research_v1"

    dry = ok(
        spark_spec(
            "mission-deploy",
            "mission.json",
            "--target",
            "development",
            "--dry-run",
            "--url",
            serve.url,
            "--json",
            cwd=tmp_path,
        )
    )
    assert dry["ready"] is True and dry["deployed"] is False
    assert dry["not_sent"] == ["plan", "telemetry", "deployment", "simulation"]

    deployed = ok(
        spark_spec(
            "mission-deploy",
            "mission.json",
            "--target",
            "development",
            "--url",
            serve.url,
            "--json",
            cwd=tmp_path,
        )
    )
    assert deployed["deployed"] is True and deployed["flow"]["flow_id"] == "research_v1"
    with AISpine(base_url=serve.url, max_retries=0) as client:
        started = client.execute_flow("research_v1", {"request": "What is Spark?"})
        done = client.wait_for_execution(started["execution_id"], 30, 0.05)
    assert done["status"] == "completed", done
    # The server ran the bound plan_and_solve strategy (the agent wrote a plan).
    assert done["result"]["plan"]


def test_deploy_a_custom_node_mission_to_a_server_that_allows_its_module(
    tmp_path: Path, serve: ServeProcess
) -> None:
    exported = spark_spec(
        "export",
        "tests.spec.sample_graphs:build_graph",
        "-o",
        "graph.json",
        cwd=tmp_path,
    )
    assert exported.returncode == 0 and "wrote graph.json" in exported.stdout
    mission = tmp_path / "sample.json"
    assert (
        spark_spec(
            "mission-generate",
            "Sample",
            "--graph",
            "graph.json",
            "-o",
            str(mission),
            cwd=tmp_path,
        ).returncode
        == 0
    )
    argv = ["mission-deploy", str(mission), "--target", "staging", "--url", serve.url]
    refused = spark_spec(
        *argv, cwd=tmp_path
    )  # the CLI, like a plain server, allows no module
    assert refused.returncode == 1 and "NOT ready" in refused.stdout
    result = ok(
        spark_spec(
            *argv,
            "--allow-module",
            "tests.spec",
            "--allow-tool-module",
            "tests.spec",
            "--json",
            cwd=tmp_path,
        )
    )
    assert result["deployed"] is True
    assert result["server_must_allow"] == {
        "modules": ["tests.spec.sample_graphs"],
        "tool_modules": ["tests.spec.sample_graphs"],
    }
    with AISpine(base_url=serve.url, max_retries=0) as client:
        started = client.execute_flow("mission.sample", {"topic": "x", "value": 2})
        done = client.wait_for_execution(started["execution_id"], 30, 0.05)
    assert done["status"] == "completed", done
    assert done["result"]["value"] == 6 and done["result"]["done"] is True


def test_compile_through_the_console_script_gives_code_that_runs(
    tmp_path: Path,
) -> None:
    save_mission_spec(tmp_path / "m.json", _scaffold(tmp_path))
    result = ok(spark_spec("compile", "m.json", "-o", "gen", "--json", cwd=tmp_path))
    (script,) = result["files"]
    proc = subprocess.run(
        [sys.executable, script, '{"request": "go"}'],
        cwd=tmp_path,
        env=ENV,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["output"]["steps_completed"] == ["a", "b"]


def test_mission_diff_through_the_console_script(tmp_path: Path) -> None:
    old = _scaffold(tmp_path)
    save_mission_spec(tmp_path / "v1.json", old)
    old.version = "0.2.0"
    save_mission_spec(tmp_path / "v2.json", old)
    proc = spark_spec(
        "mission-diff", "v1.json", "v2.json", "--json", "--exit-code", cwd=tmp_path
    )
    assert proc.returncode == 1 and proc.stderr == ""
    changes = json.loads(proc.stdout)["changes"]
    assert [(c["path"], c["old"], c["new"]) for c in changes] == [
        ("version", "0.1.0", "0.2.0")
    ]


def test_approval_list_and_resolve_through_the_console_script(tmp_path: Path) -> None:
    db = tmp_path / "state.sqlite"
    written: List[str] = []
    with pytest.raises(RunPaused) as paused:
        approval_graph(db, written).run_sync({"text": "hello"})
    listed = spark_spec("approval-list", "--state", str(db), "--json", cwd=tmp_path)
    (request,) = ok(listed)  # a JSON list
    assert request["status"] == "pending" and request["run_id"] == paused.value.run_id
    resolved = spark_spec(
        "approval-resolve",
        request["id"],
        "--state",
        str(db),
        "--status",
        "approved",
        "--reviewer",
        "ana",
        cwd=tmp_path,
    )
    assert (
        resolved.returncode == 0
        and resolved.stdout == f"{request['id']}: approved by ana\n"
    )
    result = asyncio.run(approval_graph(db, written).resume(paused.value.run_id))
    assert result.status == "completed" and written == ["hello"]


def _scaffold(tmp_path: Path) -> Any:
    from spark_core.spec.generate import generate_mission

    return generate_mission("Two steps", mission_id="com.example.two", plan=["a", "b"])


def test_console_errors_are_one_line_without_traceback(tmp_path: Path) -> None:
    proc = spark_spec("mission-validate", "nowhere.json", cwd=tmp_path)
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.startswith("spark-spec: error: cannot read nowhere.json")
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr


def test_version_prints_the_package_version(tmp_path: Path) -> None:
    proc = spark_spec("--version", cwd=tmp_path)
    assert (proc.returncode, proc.stdout, proc.stderr) == (
        0,
        f"spark-spec {__version__}\n",
        "",
    )


def test_a_reader_gone_before_the_output_is_not_an_error(tmp_path: Path) -> None:
    assert SPARK_SPEC is not None
    read_end, write_end = os.pipe()
    os.close(read_end)  # `spark-spec ... | head` once head has left
    try:
        proc = subprocess.run(
            [SPARK_SPEC, "mission-generate", "A research agent"],
            cwd=tmp_path,
            env=ENV,
            stdout=write_end,
            stderr=subprocess.PIPE,
            text=True,
            timeout=120,
        )
    finally:
        os.close(write_end)
    assert (proc.returncode, proc.stderr) == (0, "")
