"""The example notebook runs top to bottom in a real Jupyter kernel."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")

NOTEBOOK = Path(__file__).resolve().parents[2] / "examples" / "local_and_remote.ipynb"


def cell_text(cell: Any) -> str:
    return "".join(
        out.get("text", "")
        for out in cell.get("outputs", [])
        if out.get("name") == "stdout"
    )


@pytest.mark.slow
def test_the_notebook_runs_locally_then_remotely() -> None:
    notebook = nbformat.read(str(NOTEBOOK), as_version=4)
    client = nbclient.NotebookClient(
        notebook,
        timeout=60,
        kernel_name="python3",
        resources={"metadata": {"path": str(NOTEBOOK.parent.parent)}},
    )
    client.execute()
    printed = "\n".join(cell_text(c) for c in notebook.cells if c.cell_type == "code")
    assert "direct: {'count': 5, 'longest': 'notebook'}" in printed
    assert "started: pending" in printed
    expected = "{'merge': {'count': 8, 'longest': 'remote'}}"  # keyed by the exit node
    assert f"local: completed {expected}" in printed
    assert f"remote: completed {expected}" in printed
    assert "same output: True" in printed
    assert "stopped" in printed
    assert not any(
        out.get("output_type") == "error"
        for c in notebook.cells
        for out in c.get("outputs", [])
    )
