"""arun / run_sync inside a running event loop, Mermaid output and notebook rendering."""

from __future__ import annotations

import asyncio
import textwrap
from pathlib import Path
from typing import Any, Dict

import pytest

from spark_core.graphs import Graph
from spark_core.nodes import ExecutionContext, JoinNode, Node
from spark_core.utils import arun
from tests.engine.conftest import Add

ROOT = Path(__file__).resolve().parents[2]


def test_arun_in_plain_code() -> None:
    async def forty_two() -> int:
        return 42

    assert arun(forty_two()) == 42


def test_arun_and_run_sync_inside_a_running_loop() -> None:
    a = Add(name="a")
    a >> Add(name="b")
    graph = Graph(start=a)

    async def notebook_cell() -> Any:
        # A notebook cell already runs inside an event loop; asyncio.run would fail here.
        inner = arun(asyncio.sleep(0, result="inner"))
        return inner, graph.run_sync({"value": 1}).content

    assert asyncio.run(notebook_cell()) == ("inner", {"value": 3})


def test_arun_propagates_exceptions_from_the_helper_thread() -> None:
    async def boom() -> None:
        raise LookupError("from the coroutine")

    async def cell() -> None:
        arun(boom())

    with pytest.raises(LookupError, match="from the coroutine"):
        asyncio.run(cell())
    with pytest.raises(LookupError):
        arun(boom())


def test_arun_accepts_any_awaitable() -> None:
    class Later:
        """An awaitable that is not a coroutine."""

        def __await__(self) -> Any:
            return asyncio.sleep(0, result="done").__await__()

    assert not asyncio.iscoroutine(Later())
    assert arun(Later()) == "done"

    async def cell() -> str:
        return arun(Later())

    assert asyncio.run(cell()) == "done"


def test_to_mermaid_and_notebook_reprs() -> None:
    class Router(Node):
        async def process(self, context: ExecutionContext) -> Dict[str, Any]:
            return {"branch": "x"}

    router = Router(name="router")
    left, right, join = Add(name="left"), Add(name="right"), JoinNode(name="join")
    router.on(branch="x") >> left
    router.on(expr='$.outputs.branch == "y"') >> right
    [left, right] >> join
    graph = Graph(start=router)
    assert graph.to_mermaid() == textwrap.dedent("""\
        flowchart TD
            n0(["router"])
            n1["left"]
            n2["right"]
            n3{{"join"}}
            n0 -->|"branch='x'"| n1
            n0 -->|"$.outputs.branch == #quot;y#quot;"| n2
            n1 --> n3
            n2 --> n3""")
    bundle = graph._repr_mimebundle_()
    assert bundle["text/vnd.mermaid"] == graph.to_mermaid()
    assert bundle["text/markdown"] == f"```mermaid\n{graph.to_mermaid()}\n```"
    assert bundle["text/plain"].startswith("<Graph 'router': 4 nodes, 4 edges>")
    assert "text/html" not in bundle  # front-ends would show it instead of the diagram


NOTEBOOK_CELLS = [
    "from spark_core.nodes import Node\n"
    "from spark_core.graphs import Graph\n"
    "from spark_core.utils import arun\n"
    "class Double(Node):\n"
    "    async def process(self, context):\n"
    "        return {'value': context.inputs.content.get('value', 1) * 2}\n"
    "a, b = Double(name='a'), Double(name='b')\n"
    "a >> b\n"
    "graph = Graph(start=a)",
    "result = await graph.run({'value': 3})\nassert result.content == {'value': 12}",
    "assert graph.run_sync({'value': 1}).content == {'value': 4}",
    "assert arun(graph.run({'value': 2})).content == {'value': 8}",
    "graph",
]


@pytest.mark.slow
def test_in_a_real_jupyter_kernel(tmp_path: Path) -> None:
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(src) for src in NOTEBOOK_CELLS]
    client = nbclient.NotebookClient(
        nb,
        timeout=60,
        kernel_name="python3",
        resources={"metadata": {"path": str(ROOT)}},
    )
    client.execute()
    for cell in nb.cells:
        assert not [
            o for o in cell.outputs if o.get("output_type") == "error"
        ], cell.outputs
    data = nb.cells[-1].outputs[0]["data"]
    assert data["text/vnd.mermaid"].startswith("flowchart TD")
    assert data["text/markdown"].startswith("```mermaid\nflowchart TD")
    assert "text/html" not in data  # it would hide the diagram
