"""``output_data`` is keyed by the flow's exit nodes, as the backend's orchestrator builds it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ai_spine.local import LocalSpine
from ai_spine.local.records import exit_outputs
from spark_core.graphs import Graph
from spark_core.nodes import ExecutionContext, Node


class Tag(Node):
    """Outputs ``{"by": <its id>}`` plus its input."""

    async def process(self, context: ExecutionContext) -> Any:
        return dict(context.inputs.content, by=self.id)


class Count(Node):
    """Counts up to 3, looping on itself (its only edge is conditional)."""

    async def process(self, context: ExecutionContext) -> Any:
        return {"n": context.inputs.content.get("n", 0) + 1}


def fan_out() -> Graph:
    start = Tag("start")
    start >> [Tag("left"), Tag("right")]
    return Graph(start)


def branch() -> Graph:
    start = Tag("start")
    start.on(go="a") >> Tag("a")
    start.on(go="b") >> Tag("b")
    return Graph(start)


def loop() -> Graph:
    count = Count("count")
    count.on(lambda out: out["n"] < 3) >> count
    return Graph(count)


def run(spine: LocalSpine, flow_id: str, data: Any) -> Any:
    started = spine.execute_flow(flow_id, data)
    return spine.wait_for_execution(started["execution_id"], 10)


def test_every_exit_node_that_ran_is_a_key_and_result_is_the_graphs_output() -> None:
    with LocalSpine({"fan": fan_out, "branch": branch}) as spine:
        done = run(spine, "fan", {"x": 1})
        assert done["output_data"] == {
            "left": {"x": 1, "by": "left"},
            "right": {"x": 1, "by": "right"},
        }
        assert done["result"] == {"x": 1, "by": "right"}  # the run's own content
        assert spine.get_flow("fan")["exit_points"] == ["left", "right"]
        # A branch not taken is not a key (one key per exit point that ran).
        done = run(spine, "branch", {"go": "b"})
        assert done["output_data"] == {"b": {"go": "b", "by": "b"}}
        assert done["result"] == {"go": "b", "by": "b"}


def test_a_run_that_ends_on_a_node_with_edges_keys_that_node() -> None:
    with LocalSpine({"loop": loop}) as spine:
        done = run(spine, "loop", {})
        assert spine.get_flow("loop")["exit_points"] == []
        assert done["output_data"] == {"count": {"n": 3}}
        assert done["result"] == {"n": 3}


def test_pending_executions_have_no_result_and_listings_match() -> None:
    with LocalSpine({"fan": fan_out}) as spine:
        started = spine.execute_flow("fan", {})
        assert started["result"] is None  # pending
        done = run(spine, "fan", {})
        listed = spine.list_executions(limit=1)[0]
        assert (listed["output_data"], listed["result"]) == (
            done["output_data"],
            done["result"],
        )


def test_the_shape_and_result_survive_a_restart(tmp_path: Path) -> None:
    db = str(tmp_path / "runs.sqlite")
    with LocalSpine({"fan": fan_out}, db=db) as spine:
        done = run(spine, "fan", {"x": 2})
    with LocalSpine({"fan": fan_out}, db=db) as spine:
        again = spine.get_execution(done["execution_id"])
    assert again["output_data"] == done["output_data"]
    assert again["result"] == {"x": 2, "by": "right"}


def test_exit_outputs_puts_the_end_node_last() -> None:
    end = {"v": 2}
    outputs = {"a": {"v": 1}, "b": end, "c": {"v": 3}}
    assert list(exit_outputs(["b", "c"], outputs, end)) == ["c", "b"]
    assert exit_outputs([], {}, None) == {}
    # A graph reporting no node outputs: its content under its last exit.
    assert exit_outputs(["z"], {}, {"v": 9}) == {"z": {"v": 9}}
