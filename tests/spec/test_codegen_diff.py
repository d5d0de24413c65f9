"""Generated code for custom nodes and odd ids; diff matching; generator edge cases."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from spark_core.spec import (
    EdgeConditionSpec,
    EdgeSpec,
    GraphSpec,
    MissionSpec,
    NodeConfigSpec,
    NodeSpec,
    RateLimitSpec,
    RetrySpec,
    SpecError,
    SpecValidationError,
    CircuitBreakerSpec,
    TimeoutSpec,
)
from spark_core.spec.codegen import compile_spec, python_name
from spark_core.spec.diff import diff_specs, render_html, render_text
from spark_core.spec.generate import generate_mission, slugify

REPO = Path(__file__).resolve().parents[2]


def odd_graph() -> GraphSpec:
    return GraphSpec(
        id="odd graph",
        start="1st",
        nodes=[
            NodeSpec(
                "1st", "merge", params={"values": {"value": 2, "expr": 1, "when": 2}}
            ),
            NodeSpec(
                "class",
                "tests.spec.sample_graphs:Doubler",
                params={"factor": 5},
                config=NodeConfigSpec(
                    retry=RetrySpec(max_retries=1, initial_delay=0.0),
                    timeout=TimeoutSpec(10.0),
                    rate_limit=RateLimitSpec(max_calls=100),
                    circuit_breaker=CircuitBreakerSpec(failure_threshold=3),
                ),
                description="a custom node whose constructor takes no name, with a long text",
            ),
            NodeSpec("end-node", "template", params={"template": "v={value}"}),
        ],
        edges=[
            EdgeSpec(
                "1st", "class", EdgeConditionSpec("equals", {"expr": 1, "when": 2})
            ),
            EdgeSpec("class", "end-node", EdgeConditionSpec("equals", {"value": 10})),
            EdgeSpec("class", "end-node", EdgeConditionSpec("equals", {"class": 1})),
        ],
        initial_state={"seed": 1},
        max_steps=50,
    )


def run_py(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PYTHONPATH=str(REPO))
    return subprocess.run(
        [sys.executable, *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


ALLOWED = ("spark_core", "tests.spec")


def test_simple_code_for_custom_nodes_and_odd_ids_runs(tmp_path: Path) -> None:
    (path,) = compile_spec(
        odd_graph(), tmp_path, style="simple", allowed_modules=ALLOWED
    )
    assert path.name == "odd_graph.py"
    source = path.read_text()
    compile(source, str(path), "exec")  # valid Python
    assert "n_1st = MergeNode(" in source and "class_ = " not in source
    proc = run_py(str(path), "{}", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["output"]["text"] == "v=10"


def test_production_code_allows_the_allowed_node_modules(tmp_path: Path) -> None:
    with pytest.raises(SpecValidationError, match="'tests.spec.sample_graphs' is not"):
        compile_spec(odd_graph(), tmp_path, style="production")
    assert list(tmp_path.iterdir()) == []
    files = compile_spec(
        odd_graph(), tmp_path, style="production", allowed_modules=ALLOWED
    )
    assert f"ALLOWED_MODULES = {ALLOWED!r}" in files[1].read_text()
    assert sorted(f.name for f in files) == [
        "__init__.py",
        "__main__.py",
        "mission.json",
        "tools.py",
    ]
    proc = run_py("-m", "odd_graph", "--input", "{}", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["output"]["text"] == "v=10"
    proc = run_py("-m", "odd_graph", "--input", "{bad", cwd=tmp_path)
    assert proc.returncode == 2 and "not JSON" in proc.stderr


@pytest.mark.parametrize("style", ["simple", "production"])
def test_compiled_mission_applies_strategy_bindings(style: str, tmp_path: Path) -> None:
    agent = {"model": {"provider": "echo"}, "strategy": "react"}
    mission = MissionSpec.from_dict(
        {
            "mission_id": "m",
            "version": "1.0.0",
            "graph": {
                "id": "bound",
                "start": "a",
                "nodes": [
                    {
                        "id": "a",
                        "type": "spark_core.agents.node:AgentNode",
                        "params": agent,
                    }
                ],
            },
            "strategies": [{"target": "a", "strategy": {"type": "plan_and_solve"}}],
        }
    )
    files = compile_spec(mission, tmp_path, style=style)
    command = [str(files[0]), '{"prompt": "hi"}']
    if style == "production":
        command = ["-m", files[0].parent.name, "--input", '{"prompt": "hi"}']
    proc = run_py(*command, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    # react (the node's own strategy) makes no plan; the bound plan_and_solve does.
    assert json.loads(proc.stdout)["output"]["plan"]


@pytest.mark.parametrize("style", ["simple", "production"])
def test_compiled_code_is_never_named_like_a_module_it_imports(
    style: str, tmp_path: Path
) -> None:
    # json.py run as a script would be what its own "import json" finds.
    graph = GraphSpec(id="json", start="a", nodes=[NodeSpec("a", "echo")])
    files = compile_spec(graph, tmp_path, style=style)
    if style == "simple":
        assert files[0].name == "mission_json.py"
        proc = run_py(str(files[0]), '{"x": 1}', cwd=tmp_path)
    else:
        assert files[0].parent.name == "mission_json"
        proc = run_py("-m", "mission_json", "--input", '{"x": 1}', cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["output"] == {"x": 1}


def test_compile_rejects_unknown_style(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match="unknown style"):
        compile_spec(odd_graph(), tmp_path, style="fancy")


def test_python_name() -> None:
    assert python_name("end-node") == "end_node"
    assert python_name("1st") == "n_1st"
    assert python_name("class") == "n_class"
    assert python_name("") == "n"


def test_diff_matches_nodes_by_id_not_position() -> None:
    a = odd_graph().to_dict()
    b = odd_graph().to_dict()
    b["nodes"].reverse()
    b["edges"].reverse()
    assert diff_specs(a, b) == []
    b["nodes"][0]["params"]["template"] = "w={value}"
    del b["nodes"][1]
    changes = diff_specs(a, b)
    assert [(c.path, c.kind) for c in changes] == [
        ("nodes[id=class]", "removed"),
        ("nodes[id=end-node].params.template", "changed"),
    ]
    assert "1 removed, 1 changed" in render_text(changes)
    page = render_html(changes, title="<x>")
    assert "&lt;x&gt;" in page and "<x>" not in page


def test_diff_of_plain_lists_and_type_changes() -> None:
    changes = diff_specs({"l": [1, 2], "n": 1}, {"l": [1, 3, 4], "n": 1.5, "new": None})
    assert [(c.path, c.kind) for c in changes] == [
        ("l[1]", "changed"),
        ("l[2]", "added"),
        ("n", "changed"),
        ("new", "added"),
    ]
    assert render_text([]) == "no differences\n"


def test_generator_defaults_and_errors() -> None:
    mission = generate_mission("   Hello, World!  ")
    assert mission.mission_id == "mission.hello-world"
    assert [s.id for s in mission.plan.steps] == ["prepare", "execute", "report"]  # type: ignore
    assert slugify("!!!") == "mission"
    for kwargs, message in (
        ({"plan": ["bad id"]}, "invalid plan step id"),
        ({"plan": [" "]}, "at least one step"),
    ):
        with pytest.raises(SpecError, match=message):
            generate_mission("x", **kwargs)  # type: ignore[arg-type]
    with pytest.raises(SpecError, match="must not be empty"):
        generate_mission(" ")
