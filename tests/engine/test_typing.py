"""mypy accepts graphs built with objects that stand for nodes (``as_node()``)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.mypy_check import mypy_strict

pytest.importorskip("mypy")

CHECKED = Path(__file__).with_name("typing_check.py")

# Something that is neither a node nor stands for one: mypy must refuse it, which shows the
# check of typing_check.py is not vacuous.
BROKEN = """
from __future__ import annotations
from spark_core.graphs import Graph
from spark_core.nodes import Node


class NoNode:
    def as_node(self) -> str:
        return "not a node"


def build() -> Graph:
    Node(name="a") >> NoNode()
    return Graph(NoNode())
"""


@pytest.mark.slow
def test_mypy_accepts_node_like_objects_and_refuses_others(tmp_path: Path) -> None:
    broken = tmp_path / "broken_graph.py"
    broken.write_text(BROKEN)
    done = mypy_strict(tmp_path, CHECKED, broken)
    errors = done.stdout.splitlines()
    assert not [line for line in errors if "typing_check.py" in line], done.stdout
    refused = [
        line for line in errors if "broken_graph.py" in line and ": error:" in line
    ]
    assert len(refused) == 2, done.stdout  # the edge and the start node
