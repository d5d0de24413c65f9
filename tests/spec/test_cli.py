"""The spark-spec CLI, command by command, through main() and the real console script."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import zipfile
from hashlib import sha256
from pathlib import Path
from typing import Any, List, Tuple

import pytest

from spark_core.cli import main
from spark_core.errors import RunPaused, SparkError
from spark_core.graphs import SQLiteStateBackend
from spark_core.kit.loader import SpecLoader
from spark_core.spec import (
    EdgeSpec,
    GraphSpec,
    MissionSimulationSpec,
    MissionSpec,
    NodeSpec,
    SimulationToolOverrideSpec,
    ToolSpec,
    load_mission_spec,
    save_graph_spec,
    save_mission_spec,
)
from spark_core.spec.deploy import deploy_mission
from tests.spec.conftest import FlowServer

REPO = Path(__file__).resolve().parents[2]


def run(capsys: Any, *args: str) -> Tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def sh(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PYTHONPATH=str(REPO))
    command = list(args)
    # The venv's console script, even when the venv is not on PATH.
    script = Path(sys.executable).with_name("spark-spec")
    if command[0] == "spark-spec" and script.exists():
        command[0] = str(script)
    return subprocess.run(
        command, cwd=cwd, env=env, capture_output=True, text=True, timeout=120
    )


@pytest.fixture
def mission_file(tmp_path: Path, capsys: Any) -> Path:
    path = tmp_path / "mission.json"
    code, _, err = run(
        capsys,
        "mission-generate",
        "ETL pipeline for sales data",
        "--plan",
        "extract,transform,load",
        "--mission-id",
        "com.example.etl",
        "-o",
        str(path),
    )
    assert code == 0, err
    return path


def tool_mission(tmp_path: Path) -> Path:
    graph = GraphSpec(
        id="lookup",
        start="find",
        nodes=[
            NodeSpec(
                "find", "tool_call", params={"tool": "search", "input_keys": ["query"]}
            )
        ],
        tools=[ToolSpec("search", reference="tests.spec.sample_graphs:search")],
    )
    mission = MissionSpec(
        mission_id="com.example.lookup",
        version="1.0.0",
        graph=graph,
        simulation=MissionSimulationSpec(
            tools=[SimulationToolOverrideSpec("search", static_response={"hits": 99})]
        ),
    )
    path = tmp_path / "lookup.json"
    save_mission_spec(path, mission)
    return path


# ---------------------------------------------------------------- mission-generate
def test_generate_writes_a_valid_scaffold(mission_file: Path, capsys: Any) -> None:
    mission = load_mission_spec(mission_file)
    assert mission.mission_id == "com.example.etl"
    assert mission.plan is not None
    assert [s.id for s in mission.plan.steps] == ["extract", "transform", "load"]
    assert [s.depends_on for s in mission.plan.steps] == [
        [],
        ["extract"],
        ["transform"],
    ]
    assert [n.type for n in mission.graph.nodes] == ["step", "step", "step"]
    code, out, _ = run(
        capsys, "mission-validate", str(mission_file), "--semantic", "--strict"
    )
    assert code == 0 and "valid mission: 0 error(s), 0 warning(s)" in out


def test_generate_with_strategy_graph_and_json(tmp_path: Path, capsys: Any) -> None:
    agent = {"model": {"provider": "echo"}, "prompt_key": "request"}
    graph = GraphSpec(
        id="g",
        start="a",
        nodes=[NodeSpec("a", "echo"), NodeSpec("b", AGENT, params=agent)],
        edges=[EdgeSpec("a", "b")],
    )
    save_graph_spec(tmp_path / "g.json", graph)
    out_file = tmp_path / "m.json"
    code, out, _ = run(
        capsys,
        "mission-generate",
        "A research agent",
        "--strategy",
        "plan_and_solve",
        "--graph",
        str(tmp_path / "g.json"),
        "-o",
        str(out_file),
        "--json",
    )
    assert code == 0
    summary = json.loads(out)
    assert summary["nodes"] == ["a", "b"] and summary["plan"] == ["a", "b"]
    assert summary["strategies"] == ["plan_and_solve"]
    mission = load_mission_spec(out_file)
    assert [b.target for b in mission.strategies] == ["b"]  # the agent node only
    code, out, err = run(capsys, "simulation-run", str(out_file), "--json")
    assert code == 0, err
    assert json.loads(out)["outputs"]["b"]["plan"]  # plan_and_solve ran
    code, _, err = run(capsys, "mission-generate", "again", "-o", str(out_file))
    assert code == 2 and "already exists" in err
    code, out, _ = run(capsys, "mission-generate", "to stdout")
    assert code == 0 and json.loads(out)["mission_id"] == "mission.to-stdout"


def test_generate_with_a_strategy_scaffolds_an_agent_that_simulates(
    tmp_path: Path, capsys: Any
) -> None:
    # The seed's example: no --graph, so the scaffold needs an agent for the strategy.
    path = tmp_path / "mission.json"
    code, _, err = run(
        capsys,
        "mission-generate",
        "A research agent that answers questions",
        "--mission-id",
        "research_v1",
        "--strategy",
        "plan_and_solve",
        "-o",
        str(path),
    )
    assert code == 0, err
    mission = load_mission_spec(path)
    agent = mission.graph.nodes[-1]
    assert agent.id == "agent" and agent.type == "spark_core.agents.node:AgentNode"
    assert [(b.target, b.strategy.type) for b in mission.strategies] == [
        ("agent", "plan_and_solve")
    ]
    code, out, _ = run(
        capsys,
        "mission-validate",
        str(path),
        "--semantic",
        "--strict",
        "--check-deployment",
    )
    assert code == 0, out
    code, out, err = run(capsys, "simulation-run", str(path), "--json")
    assert code == 0, err
    report = json.loads(out)
    assert report["status"] == "completed" and report["model_calls"] == {"agent": 2}
    assert report["output"]["plan"] == [
        "Gather what the request needs",
        "Work out the answer",
    ]


def test_generate_accepts_every_strategy_name_a_spec_accepts(
    tmp_path: Path, capsys: Any
) -> None:
    path = tmp_path / "mission.json"
    code, _, err = run(
        capsys, "mission-generate", "x", "--strategy", "cot", "-o", str(path)
    )
    assert code == 0, err
    mission = load_mission_spec(path)
    assert [b.strategy.type for b in mission.strategies] == ["chain_of_thought"]
    code, out, err = run(capsys, "simulation-run", str(path), "--json")
    assert code == 0, err
    assert json.loads(out)["model_calls"] == {"agent": 1}  # its scripted reply fits


def test_production_readiness_warns_about_the_scaffolds_placeholder_model(
    tmp_path: Path, capsys: Any
) -> None:
    path = tmp_path / "mission.json"
    code, _, err = run(
        capsys, "mission-generate", "x", "--strategy", "react", "-o", str(path)
    )
    assert code == 0, err
    warnings = {}
    for target in ("staging", "production"):
        code, out, err = run(
            capsys,
            "mission-deploy",
            str(path),
            "--target",
            target,
            "--dry-run",
            "--json",
        )
        assert code == 0, err
        issues = json.loads(out)["issues"]
        warnings[target] = [i["message"] for i in issues if "params.model" in i["path"]]
    assert warnings["staging"] == []
    assert warnings["production"] == [
        "agent node 'agent' would run the placeholder 'echo' model in production: give "
        'it a real one, e.g. {"provider": "openai", "model_id": "gpt-4o-mini"}'
    ]


def test_generate_rejects_bad_input(tmp_path: Path, capsys: Any) -> None:
    code, _, err = run(capsys, "mission-generate", "x", "--strategy", "guessing")
    assert code == 2 and err.count("\n") == 1
    assert "unknown reasoning strategy type 'guessing'" in err
    graph = tmp_path / "graph.json"
    save_graph_spec(graph, GraphSpec(id="g", start="a", nodes=[NodeSpec("a", "echo")]))
    code, _, err = run(
        capsys, "mission-generate", "x", "--strategy", "react", "--graph", str(graph)
    )
    assert (
        code == 2 and "strategy 'react' binds agent nodes" in err and "has none" in err
    )
    code, _, err = run(capsys, "mission-generate", "x", "--plan", "a,a")
    assert code == 2 and "unique" in err
    code, _, err = run(capsys, "mission-generate", "x", "--version", "1")
    assert code == 2 and "invalid spec: version: must be a semantic version" in err


# ---------------------------------------------------------------- mission-validate
def test_validate_reports_paths_and_exit_status(tmp_path: Path, capsys: Any) -> None:
    data = {
        "mission_id": "m",
        "version": "1.0.0",
        "graph": {
            "id": "g",
            "start": "a",
            "nodes": [
                {"id": "a", "type": "echo", "config": {"retry": {"max_retries": -1}}}
            ],
        },
    }
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    code, out, _ = run(capsys, "mission-validate", str(path))
    assert code == 1
    assert "INVALID mission: 1 error(s)" in out
    assert "graph.nodes[0].config.retry.max_retries: must be >= 0" in out
    code, out, _ = run(capsys, "mission-validate", str(path), "--json")
    report = json.loads(out)
    assert report["valid"] is False and report["issues"][0]["path"] == (
        "graph.nodes[0].config.retry.max_retries"
    )


def test_validate_semantic_strict_and_deployment(tmp_path: Path, capsys: Any) -> None:
    graph = GraphSpec(
        id="g", start="a", nodes=[NodeSpec("a", "echo"), NodeSpec("b", "echo")]
    )
    mission = MissionSpec(mission_id="m", version="1.0.0", graph=graph)
    path = tmp_path / "m.json"
    save_mission_spec(path, mission)
    code, out, _ = run(capsys, "mission-validate", str(path))
    assert code == 0 and "structure only" in out
    code, out, _ = run(capsys, "mission-validate", str(path), "--semantic")
    assert code == 0 and "unreachable" in out
    code, out, _ = run(capsys, "mission-validate", str(path), "--semantic", "--strict")
    assert code == 1
    code, out, _ = run(capsys, "mission-validate", str(path), "--check-deployment")
    assert code == 1 and "deployment: is required for deployment" in out


def test_validate_malformed_json_and_missing_file(tmp_path: Path, capsys: Any) -> None:
    path = tmp_path / "broken.json"
    path.write_text("{not json", encoding="utf-8")
    code, out, _ = run(capsys, "mission-validate", str(path))
    assert code == 1 and "invalid JSON at line 1 column 2" in out
    code, _, err = run(capsys, "mission-validate", str(tmp_path / "missing.json"))
    assert code == 2 and err.startswith("spark-spec: error: cannot read")


# ---------------------------------------------------------------- simulation-run
def test_simulation_run_reports_tools_and_plan(
    mission_file: Path, tmp_path: Path, capsys: Any
) -> None:
    code, out, _ = run(
        capsys, "simulation-run", str(mission_file), "--input", '{"batch": 7}'
    )
    assert code == 0
    assert "completed" in out and "plan: 3/3 step(s) completed" in out
    code, out, _ = run(
        capsys,
        "simulation-run",
        str(tool_mission(tmp_path)),
        "--json",
        "--input",
        '{"query": "x"}',
    )
    report = json.loads(out)
    assert report["status"] == "completed"
    assert report["tool_calls"] == {"search": 1}
    assert report["output"]["result"] == {"hits": 99}


def test_simulation_run_input_from_file_and_bad_input(
    mission_file: Path, tmp_path: Path, capsys: Any
) -> None:
    (tmp_path / "in.json").write_text('{"batch": 1}', encoding="utf-8")
    code, out, _ = run(
        capsys,
        "simulation-run",
        str(mission_file),
        "--input",
        "@" + str(tmp_path / "in.json"),
        "--json",
    )
    assert code == 0 and json.loads(out)["output"]["batch"] == 1
    code, _, err = run(capsys, "simulation-run", str(mission_file), "--input", "{oops")
    assert code == 2 and "--input is not valid JSON" in err and err.count("\n") == 1
    # A bad input file is usage (2), not a bad spec (1).
    for name, text in (("dup.json", '{"a": 1, "a": 2}'), ("bad.json", "not json")):
        (tmp_path / name).write_text(text, encoding="utf-8")
        code, out, err = run(
            capsys,
            "simulation-run",
            str(mission_file),
            "--input",
            "@" + str(tmp_path / name),
        )
        assert code == 2 and out == "" and err.count("\n") == 1
        assert f"--input file {tmp_path / name} is not valid JSON" in err


def test_simulation_run_with_a_bad_allow_module_is_usage(
    mission_file: Path, capsys: Any
) -> None:
    code, out, err = run(
        capsys, "simulation-run", str(mission_file), "--allow-module", ""
    )
    assert code == 2 and out == "" and "invalid allowed module prefix ''" in err


def test_simulation_run_failure_exits_1(tmp_path: Path, capsys: Any) -> None:
    path = tool_mission(tmp_path)
    mission = load_mission_spec(path)
    mission.graph.nodes[0].params["result_key"] = "result"
    mission.simulation = MissionSimulationSpec(
        tools=[
            SimulationToolOverrideSpec(
                "search", handler="tests.spec.sample_graphs:search"
            )
        ]
    )
    save_mission_spec(path, mission)
    code, out, _ = run(
        capsys,
        "simulation-run",
        str(path),
        "--allow-tool-module",
        "tests.spec",
        "--input",
        '{"nothing": 1}',
    )
    assert code == 1 and "failed" in out and "error:" in out
    code, _, err = run(capsys, "simulation-run", str(path), "--input", "{}")
    assert code == 1 and "not allowed" in err


AGENT = "spark_core.agents.node:AgentNode"
#: An agent whose model would call an endpoint nobody listens on: simulation must not.
REAL_AGENT = {
    "model": {
        "provider": "openai",
        "model_id": "gpt-4o",
        "base_url": "http://127.0.0.1:9/v1",
    },
    "tools": ["lookup_capital"],
    "strategy": {"type": "react"},
    "max_steps": 4,
}
PLAN_SCRIPT = [
    "1. Look up the capital",
    {"tool_calls": [{"name": "lookup_capital", "arguments": {"country": "Peru"}}]},
    "Final Answer: Lima",
]


def agent_mission(tmp_path: Path, **changes: Any) -> Path:
    data = {
        "mission_id": "com.example.geo",
        "version": "1.0.0",
        "graph": {
            "id": "geo",
            "start": "analyst",
            "nodes": [{"id": "analyst", "type": AGENT, "params": REAL_AGENT}],
            "tools": [
                {"name": "lookup_capital", "description": "Capital of a country"}
            ],
        },
        "strategies": [
            {"target": "analyst", "strategy": {"type": "plan_and_solve"}},
        ],
        "simulation": {
            "tools": [
                {"name": "lookup_capital", "static_response": "Lima (simulated)"}
            ],
            "models": {"analyst": PLAN_SCRIPT},
            "inputs": {"prompt": "Capital of Peru?"},
        },
    }
    data.update(changes)
    path = tmp_path / "geo.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


def test_simulation_run_scripts_agent_models_under_bound_strategies(
    tmp_path: Path, capsys: Any
) -> None:
    path = agent_mission(tmp_path)
    code, out, err = run(capsys, "simulation-run", str(path), "--json")
    assert code == 0, err
    report = json.loads(out)
    assert report["status"] == "completed", report["error"]
    assert report["model_calls"] == {"analyst": 3} and report["real_models"] == []
    assert report["tool_calls"] == {"lookup_capital": 1}
    answer = report["output"]
    assert answer["answer"] == "Lima"
    # The mission's binding replaced the node's own react strategy: a plan came first.
    assert answer["plan"] == ["Look up the capital"]
    assert answer["tool_calls"][0]["result"] == "Lima (simulated)"
    code, out, _ = run(capsys, "simulation-run", str(path))
    assert code == 0 and "scripted models:\n    analyst: 3 call(s)" in out


def test_simulation_run_refuses_unscripted_models_and_bad_bindings(
    tmp_path: Path, capsys: Any
) -> None:
    sim = {
        "tools": [{"name": "lookup_capital", "static_response": "Lima"}],
        "inputs": {"prompt": "Capital of Peru?"},
    }
    path = agent_mission(tmp_path, simulation=sim)
    code, _, err = run(capsys, "simulation-run", str(path))
    assert code == 1 and err.count("\n") == 1
    assert "no scripted model for agent node(s) 'analyst'" in err
    # --allow-real-tools lets the real model run: it fails to connect, and says so.
    code, out, _ = run(capsys, "simulation-run", str(path), "--allow-real-tools")
    assert code == 1 and "real models (not simulated): analyst" in out

    wrong = dict(sim, models={"analyst": PLAN_SCRIPT, "nobody": ["hi"]})
    code, _, err = run(
        capsys, "simulation-run", str(agent_mission(tmp_path, simulation=wrong))
    )
    assert code == 1 and "given for 'nobody', which are not agent nodes" in err
    code, out, _ = run(capsys, "mission-validate", str(path), "--semantic")
    assert code == 1 and "simulation.models.nobody: unknown node 'nobody'" in out

    step = {"id": "step1", "type": "echo"}
    graph = {
        "id": "geo",
        "start": "step1",
        "nodes": [step, {"id": "analyst", "type": AGENT, "params": REAL_AGENT}],
        "edges": [{"source": "step1", "target": "analyst"}],
        "tools": [{"name": "lookup_capital"}],
    }
    bindings = [{"target": "step1", "strategy": {"type": "react"}}]
    path = agent_mission(tmp_path, graph=graph, strategies=bindings)
    code, _, err = run(capsys, "simulation-run", str(path))
    assert code == 1 and "'step1', which is not an agent node" in err
    bindings = [{"target": "analyst", "strategy": {"type": "guessing"}}]
    path = agent_mission(tmp_path, graph=graph, strategies=bindings)
    code, _, err = run(capsys, "simulation-run", str(path))
    assert code == 1 and "guessing" in err


# ---------------------------------------------------------------- compile
@pytest.mark.parametrize("style", ["simple", "production"])
def test_compiled_mission_runs(style: str, tmp_path: Path, capsys: Any) -> None:
    spec = tool_mission(tmp_path)
    out_dir = tmp_path / "gen"
    argv = ["compile", str(spec), "-o", str(out_dir), "--style", style, "--json"]
    code, _, err = run(capsys, *argv)  # the tool's module must be allowed
    assert code == 1 and "module 'tests.spec.sample_graphs' is not allowed" in err
    code, out, err = run(capsys, *argv, "--allow-module", "tests.spec")
    assert code == 0, err
    files = [Path(f) for f in json.loads(out)["files"]]
    assert all(f.exists() for f in files)
    if style == "simple":
        proc = sh(sys.executable, str(files[0]), '{"query": "hello"}', cwd=tmp_path)
    else:
        proc = sh(
            sys.executable,
            "-m",
            "com_example_lookup",
            "--input",
            '{"query": "hi"}',
            cwd=out_dir,
        )
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["status"] == "completed"
    # the referenced tool really ran: tests.spec.sample_graphs.search counts characters
    assert result["output"]["result"]["real"] is True


def test_compiled_scaffold_with_stubbed_tool_runs(tmp_path: Path, capsys: Any) -> None:
    path = tool_mission(tmp_path)
    mission = load_mission_spec(path)
    mission.graph.tools[0].reference = None
    save_mission_spec(path, mission)
    code, _, err = run(
        capsys,
        "compile",
        str(path),
        "-o",
        str(tmp_path / "gen"),
        "--style",
        "production",
    )
    assert code == 0, err
    proc = sh(
        sys.executable,
        "-m",
        "com_example_lookup",
        "--input",
        '{"query": "q"}',
        cwd=tmp_path / "gen",
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["output"]["result"] == {"hits": 99}


def test_compile_rejects_invalid_specs(tmp_path: Path, capsys: Any) -> None:
    bad = GraphSpec(id="g", start="zz", nodes=[NodeSpec("a", "echo")])
    save_graph_spec(tmp_path / "g.json", bad)
    code, _, err = run(
        capsys, "compile", str(tmp_path / "g.json"), "-o", str(tmp_path / "o")
    )
    assert code == 1 and "start: unknown node 'zz'" in err
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("style", ["simple", "production"])
def test_compile_refuses_to_overwrite_without_force(
    style: str, tmp_path: Path, capsys: Any
) -> None:
    spec = tool_mission(tmp_path)
    out_dir = tmp_path / "gen"
    out_dir.mkdir()  # an existing, empty folder is fine
    argv = ["compile", str(spec), "-o", str(out_dir), "--style", style, "--json"]
    argv += ["--allow-module", "tests.spec"]
    code, out, err = run(capsys, *argv)
    assert code == 0, err
    first = Path(json.loads(out)["files"][-1])
    first.write_text("# edited by hand\n", encoding="utf-8")
    code, out, err = run(capsys, *argv)
    assert code == 2 and out == "" and "already exists (use --force" in err
    assert first.read_text(encoding="utf-8") == "# edited by hand\n"
    code, _, err = run(capsys, *argv, "--force")
    assert code == 0, err
    assert first.read_text(encoding="utf-8") != "# edited by hand\n"


def test_compiled_simple_script_reports_bad_input_on_one_line(
    tmp_path: Path, capsys: Any
) -> None:
    spec = str(tool_mission(tmp_path))
    code, out, err = run(
        capsys,
        "compile",
        spec,
        "-o",
        str(tmp_path),
        "--allow-module",
        "tests",
        "--json",
    )
    (script,) = json.loads(out)["files"]
    proc = sh(sys.executable, script, "{not json", cwd=tmp_path)
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.startswith("error: the input is not JSON:")
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr


# ---------------------------------------------------------------- export
def test_export_a_live_graph(tmp_path: Path, capsys: Any) -> None:
    code, out, err = run(capsys, "export", "tests.spec.sample_graphs:build_graph")
    assert code == 0, err
    spec = GraphSpec.from_dict(json.loads(out))
    assert spec.id == "sample" and spec.start == "greet"
    target = tmp_path / "exported.json"
    code, out, _ = run(
        capsys,
        "export",
        "tests.spec.sample_graphs:build_graph",
        "-o",
        str(target),
        "--graph-id",
        "renamed",
    )
    assert code == 0 and "wrote" in out
    loader = SpecLoader(
        ["spark_core", "tests.spec"], allowed_tool_modules=["tests.spec"]
    )
    graph = loader.load_graph(GraphSpec.from_dict(json.loads(target.read_text())))
    assert graph.graph_id == "renamed"
    assert graph.run_sync({"topic": "x", "value": 2}).content["value"] == 6


def test_export_errors(capsys: Any) -> None:
    for ref, message in (
        ("not-a-ref", "expected MODULE:FACTORY"),
        ("tests.spec.nowhere:f", "cannot import 'tests.spec.nowhere'"),
        ("tests.spec.sample_graphs:nope", "has no 'nope'"),
        ("tests.spec.sample_graphs:not_a_graph", "gave int, not a Graph"),
        ("os:system", "os:system is not a graph factory: calling it failed: TypeError"),
        (
            "tests.spec.sample_graphs:broken_factory",
            "calling it failed: RuntimeError: no config",
        ),
        ("tests.spec.sample_graphs:Doubler", "gave Doubler, not a Graph"),
        (
            "tests.spec.sample_graphs:search",
            "search is not a graph factory: calling it failed: TypeError: search() "
            "missing 1 required positional argument: 'query'",
        ),
    ):
        code, _, err = run(capsys, "export", ref)
        assert code == 2 and message in err and err.count("\n") == 1


# ---------------------------------------------------------------- approvals
def approval_graph(db: Path, written: List[str]) -> Any:
    from spark_core.governance import PolicyEffect, PolicyRule, PolicySet

    def write(text: str) -> str:
        written.append(text)
        return "ok"

    policy = PolicySet(
        "guard",
        rules=[
            PolicyRule(
                name="ask",
                effect=PolicyEffect.REQUIRE_APPROVAL,
                actions=["tool:execute"],
                resources=["tool://write"],
                description="writes need a human",
            )
        ],
    )
    spec = GraphSpec(
        id="writer",
        start="w",
        nodes=[
            NodeSpec("w", "tool_call", params={"tool": "write", "input_keys": ["text"]})
        ],
        tools=[ToolSpec("write")],
    )
    return SpecLoader(tools={"write": write}).load_graph(
        spec, state_backend=SQLiteStateBackend(str(db)), policy_set=policy
    )


def test_approval_list_and_resolve_then_resume(tmp_path: Path, capsys: Any) -> None:
    db = tmp_path / "state.sqlite"
    written: List[str] = []
    graph = approval_graph(db, written)
    with pytest.raises(RunPaused) as info:
        graph.run_sync({"text": "hello"})
    run_id = info.value.run_id
    assert written == []

    code, out, _ = run(
        capsys, "approval-list", "--state", str(db), "--backend", "sqlite"
    )
    assert code == 0 and "pending" in out and "tool://write" in out
    code, out, _ = run(capsys, "approval-list", "--state", str(db), "--json")
    pending = json.loads(out)
    assert len(pending) == 1 and pending[0]["run_id"] == run_id
    request_id = pending[0]["id"]

    code, out, _ = run(
        capsys,
        "approval-resolve",
        request_id,
        "--state",
        str(db),
        "--backend",
        "sqlite",
        "--status",
        "approved",
        "--note",
        "fine",
        "--reviewer",
        "ana",
    )
    assert code == 0 and out.strip() == f"{request_id}: approved by ana"
    code, out, _ = run(capsys, "approval-list", "--state", str(db))
    assert "no pending approval requests" in out
    code, out, _ = run(
        capsys, "approval-list", "--state", str(db), "--status", "all", "--json"
    )
    assert json.loads(out)[0]["notes"] == "fine"
    code, _, err = run(
        capsys,
        "approval-resolve",
        request_id,
        "--state",
        str(db),
        "--status",
        "rejected",
    )
    assert code == 2 and err.count("\n") == 1

    resumed = approval_graph(db, written)  # a fresh process would do the same
    result = asyncio.run(resumed.resume(run_id))
    assert result.status == "completed" and written == ["hello"]


def test_approval_errors(tmp_path: Path, capsys: Any) -> None:
    code, _, err = run(
        capsys, "approval-list", "--state", str(tmp_path / "none.sqlite")
    )
    assert code == 2 and "state file not found" in err
    db = tmp_path / "s.sqlite"
    SQLiteStateBackend(str(db)).close()
    code, _, err = run(
        capsys,
        "approval-resolve",
        "apr-nope",
        "--state",
        str(db),
        "--status",
        "approved",
    )
    assert code == 2 and "apr-nope" in err
    code, _, err = run(
        capsys, "approval-resolve", "x", "--state", str(db), "--status", "maybe"
    )
    assert code == 2 and "invalid choice" in err
    code, _, err = run(
        capsys, "approval-list", "--state", str(db), "--backend", "memory"
    )
    assert code == 2 and "invalid choice: 'memory'" in err and "sqlite" in err
    (tmp_path / "junk.sqlite").write_text("not a database", encoding="utf-8")
    code, _, err = run(
        capsys, "approval-list", "--state", str(tmp_path / "junk.sqlite")
    )
    assert code == 2 and err.count("\n") == 1 and "Traceback" not in err


def test_approval_commands_close_the_state_file(
    tmp_path: Path, capsys: Any, monkeypatch: Any
) -> None:
    db = tmp_path / "s.sqlite"
    SQLiteStateBackend(str(db)).close()
    closed: List[str] = []
    real_close = SQLiteStateBackend.close

    def close(self: SQLiteStateBackend) -> None:
        closed.append("closed")
        real_close(self)

    monkeypatch.setattr(SQLiteStateBackend, "close", close)
    code, _, _ = run(capsys, "approval-list", "--state", str(db))
    assert code == 0 and closed == ["closed"]
    code, _, _ = run(
        capsys, "approval-resolve", "apr-x", "--state", str(db), "--status", "approved"
    )
    assert code == 2 and closed == ["closed", "closed"]  # closed on errors too


# ---------------------------------------------------------------- mission-diff
def test_diff_formats(mission_file: Path, tmp_path: Path, capsys: Any) -> None:
    mission = load_mission_spec(mission_file)
    mission.version = "0.2.0"
    mission.graph.nodes[1].type = "echo"
    other = tmp_path / "v2.json"
    save_mission_spec(other, mission)
    code, out, _ = run(capsys, "mission-diff", str(mission_file), str(other))
    assert code == 0
    assert '~ version: "0.1.0" -> "0.2.0"' in out
    assert '~ graph.nodes[id=transform].type: "step" -> "echo"' in out
    code, out, _ = run(
        capsys, "mission-diff", str(mission_file), str(other), "--format", "json"
    )
    paths = [c["path"] for c in json.loads(out)["changes"]]
    assert paths == ["version", "graph.nodes[id=transform].type"]
    html_file = tmp_path / "diff.html"
    code, out, _ = run(
        capsys,
        "mission-diff",
        str(mission_file),
        str(other),
        "--format",
        "html",
        "-o",
        str(html_file),
    )
    assert code == 0 and "2 change(s)" in out
    assert "<code>graph.nodes[id=transform].type</code>" in html_file.read_text()
    code, out, _ = run(
        capsys, "mission-diff", str(mission_file), str(mission_file), "--exit-code"
    )
    assert code == 0 and "no differences" in out
    code, _, _ = run(
        capsys, "mission-diff", str(mission_file), str(other), "--exit-code"
    )
    assert code == 1


def test_diff_json_flag_and_overwrite(
    mission_file: Path, tmp_path: Path, capsys: Any
) -> None:
    code, out, _ = run(
        capsys, "mission-diff", str(mission_file), str(mission_file), "--json"
    )
    assert code == 0 and json.loads(out)["changes"] == []
    code, out, err = run(
        capsys,
        "mission-diff",
        str(mission_file),
        str(mission_file),
        "--json",
        "--format",
        "html",
    )
    assert code == 2 and out == "" and "--json conflicts with --format html" in err
    target = tmp_path / "diff.txt"
    target.write_text("keep me", encoding="utf-8")
    argv = ["mission-diff", str(mission_file), str(mission_file), "-o", str(target)]
    code, _, err = run(capsys, *argv)
    assert code == 2 and "already exists (use --force" in err
    assert target.read_text(encoding="utf-8") == "keep me"
    code, _, _ = run(capsys, *argv, "--force")
    assert code == 0 and "no differences" in target.read_text(encoding="utf-8")


# ---------------------------------------------------------------- mission-package
def test_package_contents_and_hashes(tmp_path: Path, capsys: Any) -> None:
    spec = tool_mission(tmp_path)
    target = tmp_path / "pkg.zip"
    code, out, err = run(
        capsys, "mission-package", str(spec), "--include-deps", "-o", str(target)
    )
    assert code == 0, err
    with zipfile.ZipFile(target) as archive:
        names = set(archive.namelist())
        assert {
            "mission.json",
            "manifest.json",
            "requirements.txt",
            "schemas/",
            "tools/",
            "tools/search.json",
        } <= names
        manifest = json.loads(archive.read("manifest.json"))
        for name, info in manifest["files"].items():
            assert sha256(archive.read(name)).hexdigest() == info["sha256"]
        assert MissionSpec.from_dict(
            json.loads(archive.read("mission.json"))
        ).mission_id == ("com.example.lookup")
        tool = json.loads(archive.read("tools/search.json"))
        assert tool["simulation"]["static_response"] == {"hits": 99}
        requirements = archive.read("requirements.txt").decode()
        assert "ai-spine-sdk" in requirements and "'tests' package" in requirements
    first = target.read_bytes()
    code, _, err = run(capsys, "mission-package", str(spec), "-o", str(target))
    assert code == 2 and "already exists" in err
    code, _, _ = run(
        capsys,
        "mission-package",
        str(spec),
        "--include-deps",
        "-o",
        str(target),
        "--force",
    )
    assert target.read_bytes() == first  # reproducible


def test_package_refuses_tool_names_that_are_paths(tmp_path: Path, capsys: Any) -> None:
    path = tool_mission(tmp_path)
    data = json.loads(path.read_text(encoding="utf-8"))
    data["graph"]["tools"][0]["name"] = "../../outside"
    data["simulation"]["tools"][0]["name"] = "../../outside"
    data["graph"]["nodes"][0]["params"]["tool"] = "../../outside"
    path.write_text(json.dumps(data), encoding="utf-8")
    target = tmp_path / "pkg.zip"
    code, _, err = run(capsys, "mission-package", str(path), "-o", str(target))
    assert code == 1 and "invalid tool name '../../outside'" in err
    assert not target.exists()


def test_package_includes_state_schema(
    mission_file: Path, tmp_path: Path, capsys: Any
) -> None:
    target = tmp_path / "p.zip"
    code, out, _ = run(
        capsys, "mission-package", str(mission_file), "-o", str(target), "--json"
    )
    assert code == 0 and json.loads(out)["manifest"]["mission_id"] == "com.example.etl"
    with zipfile.ZipFile(target) as archive:
        schema = json.loads(archive.read("schemas/mission_state.schema.json"))
    assert schema["properties"]["last_step"]["type"] == "string"


def test_package_refuses_invalid_missions(tmp_path: Path, capsys: Any) -> None:
    graph = GraphSpec(id="g", start="nope", nodes=[NodeSpec("a", "echo")])
    save_mission_spec(tmp_path / "m.json", MissionSpec("m", "1.0.0", graph))
    code, _, err = run(
        capsys,
        "mission-package",
        str(tmp_path / "m.json"),
        "-o",
        str(tmp_path / "p.zip"),
    )
    assert code == 1 and "graph.start: unknown node 'nope'" in err
    assert not (tmp_path / "p.zip").exists()
    save_graph_spec(tmp_path / "g.json", graph)
    code, _, err = run(
        capsys,
        "mission-package",
        str(tmp_path / "g.json"),
        "-o",
        str(tmp_path / "p.zip"),
    )
    assert code == 1 and "mission_id: is required: this is a graph spec" in err


# ---------------------------------------------------------------- mission-deploy
def test_deploy_dry_run_does_not_contact_the_server(
    mission_file: Path, capsys: Any, flow_server: FlowServer
) -> None:
    code, out, _ = run(
        capsys,
        "mission-deploy",
        str(mission_file),
        "--target",
        "development",
        "--dry-run",
        "--url",
        flow_server.url,
    )
    assert code == 0 and "ready" in out and "dry run" in out
    assert flow_server.requests == []


def test_deploy_registers_the_flow(
    mission_file: Path, capsys: Any, flow_server: FlowServer, monkeypatch: Any
) -> None:
    monkeypatch.setenv("AI_SPINE_API_KEY", "sk-secret-value")
    code, out, err = run(
        capsys,
        "mission-deploy",
        str(mission_file),
        "--target",
        "development",
        "--url",
        flow_server.url,
        "--json",
    )
    assert code == 0, err
    result = json.loads(out)
    assert result["deployed"] is True and result["flow"]["flow_id"] == "com.example.etl"
    assert "sk-secret-value" not in out + err
    (request,) = flow_server.requests
    assert request["path"] == "/api/v1/flows"
    assert request["headers"]["Authorization"] == "Bearer sk-secret-value"
    body = request["body"]
    assert set(body) == {"flow_id", "name", "description", "spec"}
    mission = load_mission_spec(mission_file)
    assert mission.state_schema is not None and mission.graph.state_schema is None
    # The server loads the graph alone: the mission's state schema travels inside it.
    expected = dict(
        mission.graph.to_dict(), state_schema=mission.state_schema.to_dict()
    )
    assert body["spec"] == expected
    assert result["not_sent"] == ["plan", "telemetry", "deployment", "simulation"]
    assert result["server_must_allow"] == {"modules": [], "tool_modules": []}
    code, _, err = run(
        capsys,
        "mission-deploy",
        str(mission_file),
        "--target",
        "development",
        "--url",
        flow_server.url,
    )
    assert code == 2 and "already exists" in err and err.count("\n") == 1


def test_deploy_server_rejections_and_unreachable(
    mission_file: Path, capsys: Any, flow_server: FlowServer
) -> None:
    flow_server.reply = (
        422,
        {"detail": [{"loc": ["body", "spec"], "msg": "bad node"}]},
    )
    code, _, err = run(
        capsys,
        "mission-deploy",
        str(mission_file),
        "--target",
        "staging",
        "--url",
        flow_server.url,
    )
    assert code == 2 and "rejected the flow spec: body.spec: bad node" in err
    flow_server.reply = (500, {"detail": "kaput"})
    code, _, err = run(
        capsys,
        "mission-deploy",
        str(mission_file),
        "--target",
        "staging",
        "--url",
        flow_server.url,
    )
    assert code == 2 and "HTTP 500: kaput" in err
    code, _, err = run(
        capsys,
        "mission-deploy",
        str(mission_file),
        "--target",
        "staging",
        "--url",
        "ftp://example",
    )
    assert code == 2 and "must be http(s)" in err
    code, _, err = run(
        capsys,
        "mission-deploy",
        str(mission_file),
        "--target",
        "staging",
        "--url",
        flow_server.url.replace("://", "://admin:hunter2@"),
    )
    assert code == 2 and "must not contain user:password@" in err
    assert "hunter2" not in err and len(flow_server.requests) == 2
    with FlowServer() as gone:
        url = gone.url
    code, _, err = run(
        capsys,
        "mission-deploy",
        str(mission_file),
        "--target",
        "staging",
        "--url",
        url,
        "--timeout",
        "2",
    )
    assert code == 2 and "cannot reach" in err


def test_deploy_carries_strategy_bindings_into_the_flow(
    tmp_path: Path, flow_server: FlowServer
) -> None:
    mission = load_mission_spec(agent_mission(tmp_path))
    deploy_mission(mission, flow_server.url)
    (request,) = flow_server.requests
    graph = GraphSpec.from_dict(request["body"]["spec"])
    assert graph.nodes[0].params["strategy"] == {"type": "plan_and_solve", "config": {}}
    # The server loads the graph alone (as ai-spine serve does) and gets the bound strategy.
    loaded = SpecLoader(tools={"lookup_capital": len}).load_graph(graph)
    assert loaded.nodes["analyst"].agent.strategy.type_name == "plan_and_solve"
    assert mission.graph.nodes[0].params["strategy"] == {"type": "react"}  # untouched


def test_deploy_readiness_failures(
    tmp_path: Path, capsys: Any, flow_server: FlowServer
) -> None:
    path = tool_mission(
        tmp_path
    )  # the tool reference is outside the default allow-list
    code, out, _ = run(
        capsys,
        "mission-deploy",
        str(path),
        "--target",
        "production",
        "--url",
        flow_server.url,
    )
    assert code == 1 and "NOT ready" in out
    assert "deployment.replicas" in out and "does not load" in out
    assert flow_server.requests == []


# ---------------------------------------------------------------- console script
def test_console_script_and_module_entry_points(
    mission_file: Path, tmp_path: Path
) -> None:
    proc = sh(
        "spark-spec", "mission-validate", str(mission_file), "--semantic", cwd=tmp_path
    )
    assert proc.returncode == 0 and "valid mission" in proc.stdout
    proc = sh(
        sys.executable,
        "-m",
        "spark_core.cli",
        "simulation-run",
        str(mission_file),
        "--json",
        cwd=tmp_path,
    )
    assert proc.returncode == 0 and json.loads(proc.stdout)["status"] == "completed"
    proc = sh("spark-spec", "--help", cwd=tmp_path)
    assert proc.returncode == 0 and "mission-deploy" in proc.stdout
    proc = sh(
        "spark-spec", "simulation-run", str(tmp_path / "missing.json"), cwd=tmp_path
    )
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1
    assert "Traceback" not in proc.stderr
    proc = sh("spark-spec", cwd=tmp_path)
    assert proc.returncode == 2 and proc.stderr.startswith("spark-spec: error:")


def test_compiled_scaffold_keeps_plan_and_state_schema(
    mission_file: Path, tmp_path: Path, capsys: Any
) -> None:
    code, out, _ = run(
        capsys, "compile", str(mission_file), "-o", str(tmp_path / "gen")
    )
    assert code == 0
    source = (tmp_path / "gen" / "com_example_etl.py").read_text()
    assert "class MissionState(MissionStateModel):" in source
    assert "PlanManager(plan, state_key='mission_plan'" in source
    proc = sh(
        sys.executable, str(tmp_path / "gen" / "com_example_etl.py"), cwd=tmp_path
    )
    assert proc.returncode == 0, proc.stderr
    output = json.loads(proc.stdout)["output"]
    assert output["steps_completed"] == ["extract", "transform", "load"]


def test_the_flow_carries_the_mission_state_schema() -> None:
    from spark_core.spec import MissionStateSchemaSpec, StateFieldSpec
    from spark_core.spec.deploy import flow_payload

    graph = GraphSpec(
        id="g",
        start="a",
        nodes=[NodeSpec("a", "set_state", params={"values": {"count": "many"}})],
    )
    schema = MissionStateSchemaSpec(fields={"count": StateFieldSpec("int", default=0)})
    mission = MissionSpec("m", "1.0.0", graph, state_schema=schema)
    # What the server loads: the schema now checks the state there too.
    served = SpecLoader().load_graph(flow_payload(mission)["spec"])
    with pytest.raises(SparkError, match="count: expected int"):
        served.run_sync({})


def test_deploy_readiness_names_the_modules_the_server_must_allow(
    tmp_path: Path, capsys: Any
) -> None:
    graph = GraphSpec(
        id="g",
        start="a",
        nodes=[NodeSpec("a", "tests.spec.sample_graphs:Doubler")],
        tools=[ToolSpec("search", reference="tests.spec.sample_graphs:search")],
    )
    path = tmp_path / "m.json"
    save_mission_spec(path, MissionSpec("m", "1.0.0", graph))
    argv = ["mission-deploy", str(path), "--target", "development", "--dry-run"]
    code, out, _ = run(capsys, *argv)
    assert code == 1 and "module 'tests.spec.sample_graphs' is not allowed" in out
    code, out, _ = run(
        capsys,
        *argv,
        "--allow-module",
        "tests.spec",
        "--allow-tool-module",
        "tests.spec",
        "--json",
    )
    result = json.loads(out)
    assert code == 0 and result["ready"] is True
    assert result["server_must_allow"] == {
        "modules": ["tests.spec.sample_graphs"],
        "tool_modules": ["tests.spec.sample_graphs"],
    }
    messages = {i["message"] for i in result["issues"] if i["severity"] == "warning"}
    assert (
        "the server must allow node classes and tools from module "
        "'tests.spec.sample_graphs' (ai-spine serve --allow-module tests.spec.sample_graphs)"
        in messages
    )


@pytest.mark.parametrize("timeout", ["-1", "0", "nan", "inf"])
def test_deploy_timeout_must_be_positive_and_finite(
    mission_file: Path, capsys: Any, timeout: str
) -> None:
    code, out, err = run(
        capsys,
        "mission-deploy",
        str(mission_file),
        "--target",
        "development",
        "--timeout",
        timeout,
    )
    assert code == 2 and out == ""
    assert f"--timeout must be > 0 and finite, got {timeout}" in err


def test_deploy_with_a_huge_timeout_waits_as_long_as_a_socket_can(
    mission_file: Path, capsys: Any, flow_server: FlowServer
) -> None:
    code, out, err = run(
        capsys,
        "mission-deploy",
        str(mission_file),
        "--target",
        "development",
        "--url",
        flow_server.url,
        "--timeout",
        "1e300",
    )
    assert (code, err) == (0, "") and "registered flow" in out


@pytest.mark.parametrize(
    "command",
    [
        ["mission-validate", "SPEC"],
        ["compile", "SPEC", "-o", "OUT"],
        ["simulation-run", "SPEC"],
        ["mission-diff", "SPEC", "SPEC"],
        ["mission-package", "SPEC", "-o", "OUT/p.zip"],
        ["mission-deploy", "SPEC", "--target", "development", "--dry-run"],
    ],
)
def test_exit_1_for_a_bad_spec_file_and_2_for_a_missing_one(
    command: List[str], tmp_path: Path, capsys: Any
) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text(
        '{"mission_id": "m", "version": "one", "graph": {}}', encoding="utf-8"
    )
    (tmp_path / "OUT").mkdir()

    def argv(spec: Path) -> List[str]:
        swap = {"SPEC": str(spec), "OUT": str(tmp_path / "OUT")}
        return [swap.get(a, a.replace("OUT", str(tmp_path / "OUT"))) for a in command]

    code, out, err = run(capsys, *argv(bad))
    assert code == 1, (out, err)
    assert "version" in out + err and "Traceback" not in err
    assert list((tmp_path / "OUT").iterdir()) == []  # nothing written
    code, _, err = run(capsys, *argv(tmp_path / "missing.json"))
    assert code == 2 and err.count("\n") == 1 and "missing.json" in err


def _one_node_mission(tmp_path: Path, capsys: Any, steps: List[str]) -> Path:
    """A scaffold whose one node is ``Upper``, with these plan step ids."""
    path = tmp_path / "m.json"
    code, _, err = run(
        capsys, "mission-generate", "Up", "--plan", "Upper", "-o", str(path)
    )
    assert code == 0, err
    data = json.loads(path.read_text())
    data["plan"]["steps"] = [{"id": step} for step in steps]
    path.write_text(json.dumps(data))
    return path


def test_a_plan_step_that_misspells_a_node_fails_validation_not_the_run(
    tmp_path: Path, capsys: Any
) -> None:
    path = _one_node_mission(tmp_path, capsys, ["upper"])  # meant the node 'Upper'
    hint = "'upper' names no node"  # the validation's words, and the loader's too
    for argv in (
        ["mission-validate", str(path), "--semantic", "--strict", "--check-deployment"],
        ["mission-deploy", str(path), "--target", "development", "--dry-run"],
        ["compile", str(path), "-o", str(tmp_path / "gen")],
        ["simulation-run", str(path)],
    ):
        code, out, err = run(capsys, *argv)
        assert code == 1 and hint in out + err, (argv, out, err)
        assert "did you mean 'Upper'?" in out + err
    assert not (tmp_path / "gen").exists()
    graph_file = tmp_path / "g.json"
    save_graph_spec(graph_file, load_mission_spec(path).graph)
    code, _, err = run(
        capsys, "mission-generate", "Up", "--graph", str(graph_file), "--plan", "upper"
    )
    assert code == 2 and hint in err


def test_a_plan_step_named_after_no_node_like_it_still_validates(
    tmp_path: Path, capsys: Any
) -> None:
    # 'review' is a step a person advances by hand: its id resembles no node.
    path = _one_node_mission(tmp_path, capsys, ["Upper", "review"])
    code, out, err = run(
        capsys, "mission-validate", str(path), "--semantic", "--strict"
    )
    assert code == 0, out + err
    assert run(capsys, "simulation-run", str(path))[0] == 0
