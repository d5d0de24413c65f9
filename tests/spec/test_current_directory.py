"""Every command that imports a module its arguments name finds it in the current directory.

``spark-spec export``, ``spark-spec simulation-run``/``mission-deploy --allow-module`` and
``ai-spine serve --allow-module`` (and ``--flows``) follow one rule (``python -m``'s): run from the
folder holding ``myapp.py``, with no ``PYTHONPATH``, they all import it.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any, Iterator

import pytest

from ai_spine import AISpine

MYAPP = """
from spark_core.graphs import Graph
from spark_core.nodes import Node


class Upper(Node):
    async def process(self, context):
        return {"text": str(context.inputs.content.get("text", "")).upper()}


def build_graph():
    return Graph(Upper(), graph_id="upper")

"""


def _script(name: str) -> str:
    beside = Path(sys.executable).with_name(name)  # the venv's, even off PATH
    found = str(beside) if beside.exists() else shutil.which(name)
    if found is None:
        pytest.skip(f"the {name} console script is not installed")
    return found


def _env() -> "dict[str, str]":
    return {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}


@pytest.fixture
def app_dir(tmp_path: Path) -> Path:
    (tmp_path / "myapp.py").write_text(MYAPP)
    return tmp_path


def spark_spec(app_dir: Path, *args: str) -> Any:
    proc = subprocess.run(
        [_script("spark-spec"), *args, "--json"],
        cwd=app_dir,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0 and proc.stderr == "", (args, proc.stderr)
    return json.loads(proc.stdout)


@pytest.fixture
def serve(app_dir: Path) -> Iterator[str]:
    """``ai-spine serve`` started in ``app_dir``: its URL; stopped by its process id."""
    proc = subprocess.Popen(
        [_script("ai-spine"), "serve", "--allow-module", "myapp", "--port", "0"],
        cwd=app_dir,
        env=_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()
        match = re.search(r"listening on (http://[0-9.]+:\d+)", first)
        assert match, (first, proc.stderr.read() if proc.stderr else "")
        yield match.group(1)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()


def test_export_simulate_and_deploy_import_myapp_from_the_current_directory(
    app_dir: Path, serve: str
) -> None:
    exported = spark_spec(app_dir, "export", "myapp:build_graph", "-o", "graph.json")
    assert exported["nodes"] == 1
    spark_spec(
        app_dir, "mission-generate", "Shout", "--graph", "graph.json", "-o", "m.json"
    )
    report = spark_spec(
        app_dir,
        "simulation-run",
        "m.json",
        "--allow-module",
        "myapp",
        "--input",
        '{"text": "hi"}',
    )
    assert report["status"] == "completed" and report["output"] == {"text": "HI"}
    deployed = spark_spec(
        app_dir,
        "mission-deploy",
        "m.json",
        "--target",
        "development",
        "--allow-module",
        "myapp",
        "--url",
        serve,
    )
    assert deployed["deployed"] is True
    flow_id = deployed["flow"]["flow_id"]
    with AISpine(base_url=serve, max_retries=0) as client:
        started = client.execute_flow(flow_id, {"text": "hey"})
        done = client.wait_for_execution(started["execution_id"], 30, 0.05)
    assert done["status"] == "completed", done
    # Whatever shape output_data takes, the node's answer is in it.
    assert '"HEY"' in json.dumps(done["output_data"])
