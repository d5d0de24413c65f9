"""``spark-spec mission-deploy`` against a real ``ai-spine serve`` server, then run the flow."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ai_spine import AISpine
from ai_spine.server import SpineServer
from spark_core.cli import main as spark_spec


def test_a_deployed_mission_runs_on_the_server(
    tmp_path: Path, server: SpineServer, capsys: pytest.CaptureFixture[str]
) -> None:
    mission = tmp_path / "mission.json"
    assert (
        spark_spec(
            [
                "mission-generate",
                "ETL pipeline for sales data",
                "--plan",
                "extract,transform,load",
                "--mission-id",
                "com.example.etl",
                "-o",
                str(mission),
            ]
        )
        == 0
    )
    capsys.readouterr()
    argv = [
        "mission-deploy",
        str(mission),
        "--target",
        "development",
        "--url",
        server.url,
    ]
    assert spark_spec(argv + ["--json"]) == 0
    deployed = json.loads(capsys.readouterr().out)
    assert deployed["flow"]["flow_id"] == "com.example.etl"
    assert spark_spec(argv) == 2  # the id now exists: the server's 409
    assert "already exists" in capsys.readouterr().err
    with AISpine(base_url=server.url, max_retries=0) as client:
        flow = client.get_flow("com.example.etl")
        assert flow["metadata"] == {"source": "spec", "local": True}
        started = client.execute_flow("com.example.etl", {"region": "emea"})
        done = client.wait_for_execution(started["execution_id"], 10, 0.01)
    assert done["status"] == "completed"
    assert done["output_data"] is not None
