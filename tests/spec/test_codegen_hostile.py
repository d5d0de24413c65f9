"""Compiled code holds spec strings only as data: hostile text cannot become a statement."""

from __future__ import annotations

import ast
import contextlib
import importlib
import io
import itertools
import os
import runpy
import sys
import tempfile
from pathlib import Path
from typing import Any, Dict, List

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from spark_core.spec import (
    EdgeConditionSpec,
    EdgeSpec,
    GraphSpec,
    MissionPlanSpec,
    MissionPlanStepSpec,
    MissionSimulationSpec,
    MissionSpec,
    MissionStateSchemaSpec,
    NodeSpec,
    SimulationToolOverrideSpec,
    SpecValidationError,
    StateFieldSpec,
    ToolSpec,
)
from spark_core.spec.codegen import compile_spec
from tests.spec.clashing_nodes import NAMES

# Pieces that end literals, comments or lines, or start escapes and format fields; the
# payloads would create a file named PWNED in the working folder if they ever ran.
FRAGMENTS = [
    '"""',
    "'''",
    '"',
    "'",
    "\\",
    "\\n",
    "\n",
    "\r",
    "\r\n",
    "\u2028",
    "\u2029",
    "\x85",
    "\x0c",
    "\x00",
    "\t",
    "{",
    "}",
    "{}",
    "{0}",
    "{__import__}",
    "#",
    "\\N{BULLET}",
    "\U0001f600",
    "\n    open('PWNED', 'w').close()\n",
    "\n_ = open('PWNED', 'w')\n",
    '"""\nopen("PWNED", "w").close()\n"""',
    "'); open('PWNED', 'w').close(); ('",
]
hostile = (
    st.lists(st.sampled_from(FRAGMENTS) | st.text(max_size=4), min_size=1, max_size=6)
    .map("".join)
    .filter(str.strip)
)
_ids = itertools.count()
# Names the compiled module defines or imports: ids, classes and params must not clash.
clashing = st.sampled_from(NAMES)
# _make's own argument names, and text (the loader sets name and config itself).
param_names = st.sampled_from(["cls", "node_id", "params"]) | hostile.filter(
    lambda key: key not in ("name", "config")
)


@st.composite
def hostile_missions(draw: Any) -> MissionSpec:
    """A valid mission whose every free-text field is hostile, whose ids, custom class
    and params may be named like the compiled module's own names."""
    ids = draw(st.lists(hostile | clashing, min_size=4, max_size=4, unique=True))
    tool = draw(
        st.sampled_from(["t", "sys", "json"])
        | st.from_regex(r"[a-z][a-z0-9_.-]{0,8}", fullmatch=True)
    )  # the engine's rule
    params = draw(st.dictionaries(param_names, hostile, min_size=1, max_size=3))
    graph = GraphSpec(
        id=draw(hostile),
        start=ids[0],
        nodes=[
            NodeSpec(
                ids[0],
                "template",
                params={"template": draw(hostile), "output_key": draw(hostile)},
                description=draw(hostile),
            ),
            NodeSpec(
                ids[1], "merge", params={"values": {draw(hostile): draw(hostile)}}
            ),
            NodeSpec(ids[2], "tool_call", params={"tool": tool}),
            NodeSpec(
                ids[3], f"tests.spec.clashing_nodes:{draw(clashing)}", params=params
            ),
        ],
        edges=[
            EdgeSpec(ids[0], ids[3], description=draw(hostile)),
            EdgeSpec(ids[3], ids[1]),
            EdgeSpec(
                ids[1],
                ids[2],
                EdgeConditionSpec("equals", {draw(hostile): draw(hostile)}),
            ),
        ],
        tools=[ToolSpec(tool, description=draw(hostile))],
        initial_state={draw(hostile): draw(hostile)},
        description=draw(hostile),
    )
    return MissionSpec(
        # Unique per example: the production package is imported by this name.
        mission_id=f"hostile.m{next(_ids)}",
        version="1.0.0",
        graph=graph,
        description=draw(hostile),
        plan=MissionPlanSpec(
            steps=[MissionPlanStepSpec("s1", description=draw(hostile))]
        ),
        state_schema=MissionStateSchemaSpec(
            fields={
                draw(clashing): StateFieldSpec(
                    type="str", default=draw(hostile), description=draw(hostile)
                )
            }
        ),
        simulation=MissionSimulationSpec(
            tools=[SimulationToolOverrideSpec(tool, static_response=draw(hostile))],
            inputs={draw(hostile): draw(hostile)},
        ),
    )


def _docstring_only(body: List[ast.stmt]) -> bool:
    return (
        bool(body)
        and isinstance(body[0], ast.Expr)
        and isinstance(getattr(body[0], "value", None), ast.Constant)
    )


def _check_simple(tree: ast.Module) -> None:
    assert _docstring_only(tree.body)
    names = []
    for stmt in tree.body[1:]:
        if isinstance(stmt, (ast.Import, ast.ImportFrom)):
            continue
        if isinstance(stmt, ast.If):  # if __name__ == "__main__": sys.exit(main())
            assert ast.unparse(stmt.test) == "__name__ == '__main__'"
            assert [ast.unparse(s) for s in stmt.body] == ["sys.exit(main())"]
            continue
        if isinstance(stmt, ast.ClassDef):
            assert stmt.name == "MissionState"
            assert _docstring_only(stmt.body)
            assert [type(s) for s in stmt.body[1:]] == [ast.AnnAssign]
            continue
        assert isinstance(stmt, ast.FunctionDef), ast.unparse(stmt)
        names.append(stmt.name)
        if stmt.name.startswith("tool_"):
            _check_stub(stmt)
        elif stmt.name == "_make":  # a constant helper: it holds nothing from the spec
            assert "Create a node of a custom class" in ast.unparse(stmt)
    stubs = [n for n in names if n.startswith("tool_")]
    assert len(stubs) == 1
    assert sorted(names) == sorted(["_make", "build_graph", "main", *stubs])


def _check_stub(func: ast.FunctionDef) -> None:
    assert _docstring_only(func.body)
    assert [type(s) for s in func.body[1:]] in ([ast.Return], [ast.Raise])


def _check_tools_module(tree: ast.Module) -> None:
    assert _docstring_only(tree.body)
    kinds = [type(s) for s in tree.body[1:]]
    assert kinds == [ast.ImportFrom, ast.ImportFrom, ast.FunctionDef, ast.AnnAssign]
    stub = tree.body[3]
    assert isinstance(stub, ast.FunctionDef)
    _check_stub(stub)


def _check_init(tree: ast.Module) -> None:
    assert _docstring_only(tree.body)
    kinds = {type(s) for s in tree.body[1:]}
    assert kinds == {ast.ImportFrom, ast.Assign, ast.FunctionDef}
    assigned = [
        t.id
        for s in tree.body
        if isinstance(s, ast.Assign)
        for t in s.targets
        if isinstance(t, ast.Name)
    ]
    assert assigned == ["SPEC_PATH", "ALLOWED_MODULES", "ALLOWED_TOOL_MODULES"]


@contextlib.contextmanager
def _inside(folder: Path) -> Any:
    old_cwd, old_path = os.getcwd(), list(sys.path)
    os.chdir(folder)
    sys.path.insert(0, str(folder))
    try:
        yield
    finally:
        os.chdir(old_cwd)
        sys.path[:] = old_path


def _listing(folder: Path) -> List[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


@settings(max_examples=25, deadline=None)
@given(hostile_missions())
def test_hostile_spec_strings_stay_data_in_compiled_code(mission: MissionSpec) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        allowed = ("spark_core", "tests.spec")  # the custom node's module
        (simple,) = compile_spec(
            mission, folder, style="simple", allowed_modules=allowed
        )
        written = compile_spec(
            mission, folder, style="production", allowed_modules=allowed
        )
        trees: Dict[str, ast.Module] = {}
        for path in [simple, *written]:
            if path.suffix == ".py":
                trees[path.name] = ast.parse(path.read_text(encoding="utf-8"))
        _check_simple(trees[simple.name])
        _check_tools_module(trees["tools.py"])
        _check_init(trees["__init__.py"])
        before = _listing(folder)
        package = written[0].parent.name
        custom = mission.graph.nodes[3]
        with _inside(folder), contextlib.redirect_stdout(io.StringIO()) as out:
            namespace = runpy.run_path(str(simple), run_name="compiled")
            assert namespace["build_graph"]().nodes[custom.id].received == {
                "cls": None,
                "node_id": None,
                "params": None,
                **custom.params,
            }
            old_argv = sys.argv
            sys.argv = [str(simple)]
            try:  # as a script: main() through sys.exit
                with pytest.raises(SystemExit) as stopped:
                    runpy.run_path(str(simple), run_name="__main__")
            finally:
                sys.argv = old_argv
            assert stopped.value.code == 0
            graph = importlib.import_module(package).build_graph()
            assert graph.nodes[custom.id].received["params"] == custom.params.get(
                "params"
            )
            graph.run_sync({})
        for name in [m for m in sys.modules if m.split(".")[0] == package]:
            del sys.modules[name]
        assert '"status": "completed"' in out.getvalue()
        created = [p for p in _listing(folder) if p not in before]
        assert [p for p in created if "__pycache__" not in p] == []


def test_state_field_named_like_a_keyword_is_refused(tmp_path: Path) -> None:
    mission = MissionSpec(
        mission_id="kw",
        version="1.0.0",
        graph=GraphSpec(id="g", start="a", nodes=[NodeSpec("a", "echo")]),
        state_schema=MissionStateSchemaSpec(fields={"class": StateFieldSpec()}),
    )
    with pytest.raises(
        SpecValidationError, match="state_schema.fields.class: is a Python"
    ):
        compile_spec(mission, tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_state_field_the_loader_refuses_is_refused(tmp_path: Path) -> None:
    mission = MissionSpec(
        mission_id="m",
        version="1.0.0",
        graph=GraphSpec(id="g", start="a", nodes=[NodeSpec("a", "echo")]),
        state_schema=MissionStateSchemaSpec(fields={"validate": StateFieldSpec()}),
    )
    with pytest.raises(
        SpecValidationError, match="state_schema.fields.validate: clashes with"
    ):
        compile_spec(mission, tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_reserved_node_param_is_refused(tmp_path: Path) -> None:
    graph = GraphSpec(
        id="g", start="a", nodes=[NodeSpec("a", "echo", params={"name": "x"})]
    )
    with pytest.raises(
        SpecValidationError, match=r"nodes\[0\].params.name: is reserved"
    ):
        compile_spec(graph, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_reference_holding_a_keyword_is_refused(tmp_path: Path) -> None:
    graph = GraphSpec(
        id="g",
        start="a",
        nodes=[NodeSpec("a", "my.class:Node")],
        tools=[ToolSpec("t", reference="tools:import")],
    )
    with pytest.raises(SpecValidationError) as info:
        compile_spec(graph, tmp_path)
    assert [i.path for i in info.value.issues] == [
        "nodes[0].type",
        "tools[0].reference",
    ]
    assert list(tmp_path.iterdir()) == []
