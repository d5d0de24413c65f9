"""One module allow-list: the loader, compile, validate and deploy checks apply the same rule."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, List, Tuple

import pytest

from spark_core.cli import main
from spark_core.kit.loader import SpecLoader
from spark_core.spec import (
    GraphSpec,
    MissionSimulationSpec,
    MissionSpec,
    NodeSpec,
    SimulationToolOverrideSpec,
    SpecError,
    SpecLoadError,
    SpecValidationError,
    ToolSpec,
    save_mission_spec,
    validate_mission,
)
from spark_core.spec.allowlist import DANGEROUS_MODULES, module_allowed
from spark_core.spec.codegen import compile_spec


def run(capsys: Any, *args: str) -> Tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def tool_graph(reference: str, node_type: str = "tool_call") -> GraphSpec:
    params = {"tool": "t"} if node_type == "tool_call" else {}
    return GraphSpec(
        id="g",
        start="a",
        nodes=[NodeSpec("a", node_type, params=params)],
        tools=[ToolSpec("t", reference=reference)],
    )


def mission_file(tmp_path: Path, reference: str, node_type: str = "tool_call") -> Path:
    path = tmp_path / "m.json"
    save_mission_spec(path, MissionSpec("m", "1.0.0", tool_graph(reference, node_type)))
    return path


# ---------------------------------------------------------------- the rule


@pytest.mark.parametrize(
    "module, prefixes, allowed",
    [
        ("myapp.tools", ["myapp"], True),
        ("myapp_evil.tools", ["myapp"], False),  # a prefix ends at a dot
        ("os", [], False),
        ("os", ["os"], True),  # named explicitly
        ("os.path", ["os"], True),
        ("os.path", ["os.path"], True),
        ("urllib.parse", ["urllib"], True),
        (
            "urllib.request",
            ["urllib"],
            False,
        ),  # dangerous: a parent prefix is not enough
        ("urllib.request", ["urllib.request"], True),
        ("logging.config", ["logging"], False),
        ("json.decoder", ["json"], True),
        ("http.client", ["http"], False),
    ],
)
def test_module_allowed(module: str, prefixes: List[str], allowed: bool) -> None:
    assert module_allowed(module, tuple(prefixes)) is allowed


def test_the_dangerous_list_names_the_usual_suspects() -> None:
    for name in ("os", "subprocess", "sys", "shutil", "socket", "ctypes", "importlib"):
        assert name in DANGEROUS_MODULES
    for name in ("builtins", "pickle", "marshal", "pty", "posix", "io", "runpy"):
        assert name in DANGEROUS_MODULES


def test_the_loader_refuses_a_dangerous_function_re_exported_by_an_allowed_module() -> (
    None
):
    loader = SpecLoader(allowed_tool_modules=["tests.spec"])
    assert callable(loader.resolve("tests.spec.reexports:search", kind="tool"))
    with pytest.raises(SpecLoadError, match=r"posix\.system.*'posix' is not allowed"):
        loader.resolve("tests.spec.reexports:system", kind="tool")
    with pytest.raises(SpecLoadError, match="'subprocess' is not allowed"):
        loader.resolve("tests.spec.reexports:run", kind="tool")
    explicit = SpecLoader(allowed_tool_modules=["tests.spec", "subprocess"])
    assert callable(explicit.resolve("tests.spec.reexports:run", kind="tool"))


# ---------------------------------------------------------------- compile


@pytest.mark.parametrize("style", ["simple", "production"])
def test_compile_refuses_a_module_not_allowed(style: str, tmp_path: Path) -> None:
    out = tmp_path / "out"
    with pytest.raises(SpecValidationError) as info:
        compile_spec(tool_graph("os:system"), out, style=style)
    assert [i.path for i in info.value.issues] == ["tools[0].reference"]
    assert "module 'os' is not allowed" in str(info.value)
    assert not out.exists()  # nothing written
    node = GraphSpec(id="g", start="a", nodes=[NodeSpec("a", "os:system")])
    with pytest.raises(SpecValidationError, match="module 'os' is not allowed"):
        compile_spec(node, out, style=style)
    assert not out.exists()


@pytest.mark.parametrize("style", ["simple", "production"])
def test_compile_cli_needs_allow_module_for_every_referenced_module(
    style: str, tmp_path: Path, capsys: Any
) -> None:
    spec = mission_file(tmp_path, "os:system")
    argv = ["compile", str(spec), "-o", str(tmp_path / "gen"), "--style", style]
    code, out, err = run(capsys, *argv)
    assert code == 1 and out == "" and err.count("\n") == 1
    assert (
        "tools[0].reference: module 'os' is not allowed (allowed prefixes: none)" in err
    )
    assert not (tmp_path / "gen").exists()
    spec = mission_file(tmp_path, "tests.spec.sample_graphs:search")
    code, _, err = run(capsys, *argv)
    assert code == 1 and "module 'tests.spec.sample_graphs' is not allowed" in err
    code, out, err = run(capsys, *argv, "--allow-module", "tests.spec", "--json")
    assert code == 0, err
    if style == "production":
        init = Path(json.loads(out)["files"][1]).read_text()
        assert "ALLOWED_TOOL_MODULES = ('tests.spec',)" in init


def test_compile_cli_allows_a_dangerous_module_only_when_named(
    tmp_path: Path, capsys: Any
) -> None:
    spec = mission_file(tmp_path, "urllib.request:urlopen")
    argv = ["compile", str(spec), "-o", str(tmp_path / "gen")]
    code, _, err = run(capsys, *argv, "--allow-module", "urllib")
    assert code == 1 and "module 'urllib.request' is not allowed" in err
    code, _, err = run(capsys, *argv, "--allow-module", "urllib.request")
    assert code == 0, err


# ---------------------------------------------------------------- validate


def test_validate_cli_needs_allow_module_like_the_server(
    tmp_path: Path, capsys: Any
) -> None:
    spec = mission_file(tmp_path, "os:system")
    for extra in ([], ["--semantic", "--strict"]):
        code, out, _ = run(capsys, "mission-validate", str(spec), *extra)
        assert code == 1 and "INVALID" in out
        assert "graph.tools[0].reference: module 'os' is not allowed" in out
    code, out, err = run(
        capsys, "mission-validate", str(spec), "--semantic", "--allow-module", "os"
    )
    assert code == 0 and "valid mission: 0 error(s)" in out, out + err


def test_validate_checks_node_classes_and_simulation_handlers(
    tmp_path: Path, capsys: Any
) -> None:
    graph = tool_graph("tests.spec.sample_graphs:search")
    graph.nodes.append(NodeSpec("b", "tests.spec.sample_graphs:Doubler"))
    graph.edges = []
    mission = MissionSpec(
        "m",
        "1.0.0",
        graph,
        simulation=MissionSimulationSpec(
            tools=[SimulationToolOverrideSpec("t", handler="shutil:rmtree")]
        ),
    )
    path = tmp_path / "m.json"
    save_mission_spec(path, mission)
    code, out, _ = run(capsys, "mission-validate", str(path), "--json")
    paths = [i["path"] for i in json.loads(out)["issues"] if i["severity"] == "error"]
    assert code == 1 and paths == [
        "graph.nodes[1].type",
        "graph.tools[0].reference",
        "simulation.tools[0].handler",
    ]
    code, out, _ = run(
        capsys, "mission-validate", str(path), "--allow-module", "tests.spec", "--json"
    )
    paths = [i["path"] for i in json.loads(out)["issues"] if i["severity"] == "error"]
    assert code == 1 and paths == ["simulation.tools[0].handler"]


def test_validate_library_checks_modules_when_given_an_allow_list() -> None:
    mission = MissionSpec("m", "1.0.0", tool_graph("os:system"))
    assert not [i for i in validate_mission(mission) if i.severity == "error"]
    issues = validate_mission(mission, allowed_modules=["spark_core"])
    assert [str(i) for i in issues] == [
        "graph.tools[0].reference: module 'os' is not allowed (allowed prefixes: none)"
    ]


# ---------------------------------------------------------------- one rule everywhere


@pytest.mark.parametrize(
    "reference, allow",
    [
        ("os:system", []),
        ("os:system", ["os"]),
        ("subprocess:run", ["tests.spec"]),
        ("urllib.request:urlopen", ["urllib"]),
        ("urllib.request:urlopen", ["urllib.request"]),
        ("tests.spec.sample_graphs:search", []),
        ("tests.spec.sample_graphs:search", ["tests.spec"]),
        ("tests.spec.sample_graphs:search", ["tests"]),
    ],
)
def test_compile_validate_and_the_loader_agree(
    reference: str, allow: List[str], tmp_path: Path, capsys: Any
) -> None:
    flags = [arg for module in allow for arg in ("--allow-module", module)]
    spec = mission_file(tmp_path, reference)
    validated, _, _ = run(capsys, "mission-validate", str(spec), "--semantic", *flags)
    compiled, _, _ = run(
        capsys, "compile", str(spec), "-o", str(tmp_path / "o"), *flags
    )
    # What ai-spine serve --allow-module does: node classes and tools from the same list.
    loader = SpecLoader(["spark_core", *allow], allowed_tool_modules=allow)
    try:
        loader.load_graph(tool_graph(reference))
        loads = True
    except SpecError:
        loads = False
    assert (validated == 0, compiled == 0) == (loads, loads)
