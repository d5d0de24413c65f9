"""SpecLoader: building runnable graphs, the import allow-list, export round trips."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any, Dict

import pytest

from spark_core.graphs import Graph
from spark_core.spec.loader import SpecLoader, export_graph
from spark_core.nodes import Node
from spark_core.spec import (
    EdgeConditionSpec,
    EdgeSpec,
    GraphSpec,
    MissionPlanSpec,
    MissionPlanStepSpec,
    MissionSpec,
    MissionStateSchemaSpec,
    MissionTelemetrySpec,
    NodeConfigSpec,
    NodeSpec,
    RetrySpec,
    SpecError,
    SpecLoadError,
    SpecValidationError,
    StateFieldSpec,
    TimeoutSpec,
    ToolSpec,
)
from tests.spec import sample_graphs


def chain(*nodes: NodeSpec, edges: Any = None, **kw: Any) -> GraphSpec:
    ids = [n.id for n in nodes]
    if edges is None:
        edges = [EdgeSpec(a, b) for a, b in zip(ids, ids[1:])]
    return GraphSpec(id="g", start=ids[0], nodes=list(nodes), edges=edges, **kw)


def test_builtin_nodes_run_end_to_end() -> None:
    spec = chain(
        NodeSpec("greet", "template", params={"template": "Hello {name}, {missing}!"}),
        NodeSpec("tag", "merge", params={"values": {"tagged": True}}),
        NodeSpec(
            "save",
            "set_state",
            params={"values": {"seen": 1}, "from_inputs": {"who": "name"}},
        ),
        NodeSpec("echo", "echo"),
    )
    graph = SpecLoader().load_graph(spec)
    result = graph.run_sync({"name": "Ana"})
    assert result.status == "completed"
    assert result.content == {"name": "Ana", "text": "Hello Ana, !", "tagged": True}
    assert graph.state.backend.load_state()["who"] == "Ana"
    assert set(graph.nodes) == {"greet", "tag", "save", "echo"}


def test_template_cannot_reach_into_objects() -> None:
    spec = chain(
        NodeSpec("t", "template", params={"template": "{name.__class__} {0} {name}"})
    )
    result = SpecLoader().load_graph(spec).run_sync({"name": "x"})
    assert result.content["text"] == "{name.__class__} {0} x"


def test_conditional_edges_choose_branches() -> None:
    spec = chain(
        NodeSpec("start", "echo"),
        NodeSpec("yes", "merge", params={"values": {"went": "yes"}}),
        NodeSpec("no", "merge", params={"values": {"went": "no"}}),
        edges=[
            EdgeSpec("start", "yes", EdgeConditionSpec("equals", {"branch": "A"})),
            EdgeSpec("start", "no", EdgeConditionSpec("expr", "$.outputs.score < 0.5")),
        ],
    )
    graph = SpecLoader().load_graph(spec)
    assert graph.run_sync({"branch": "A", "score": 1}).content["went"] == "yes"
    assert graph.run_sync({"branch": "B", "score": 0.1}).content["went"] == "no"


def test_equals_condition_with_reserved_keyword_keys() -> None:
    spec = chain(
        NodeSpec("a", "echo"),
        NodeSpec("b", "merge", params={"values": {"hit": True}}),
        edges=[EdgeSpec("a", "b", EdgeConditionSpec("equals", {"expr": 1, "when": 2}))],
    )
    graph = SpecLoader().load_graph(spec)
    assert graph.run_sync({"expr": 1, "when": 2}).content["hit"] is True
    assert "hit" not in graph.run_sync({"expr": 1, "when": 3}).content


def test_capabilities_are_applied() -> None:
    spec = chain(
        NodeSpec(
            "a",
            "echo",
            config=NodeConfigSpec(
                retry=RetrySpec(max_retries=4), timeout=TimeoutSpec(5.0)
            ),
            description="first",
        )
    )
    node = SpecLoader().load_graph(spec).nodes["a"]
    assert node.config.retry is not None and node.config.retry.max_retries == 4
    assert (
        node.config.timeout is not None and node.config.timeout.timeout_seconds == 5.0
    )
    assert node.config.description == "first"


def test_tools_come_from_python_or_allowed_references() -> None:
    spec = chain(
        NodeSpec(
            "call", "tool_call", params={"tool": "search", "input_keys": ["query"]}
        ),
        tools=[ToolSpec("search", reference="tests.spec.sample_graphs:search")],
    )
    with pytest.raises(
        SpecLoadError, match="module 'tests.spec.sample_graphs' is not allowed"
    ):
        SpecLoader().load_graph(spec)
    loader = SpecLoader(allowed_tool_modules=["tests.spec"])
    result = loader.load_graph(spec).run_sync({"query": "abc"})
    assert result.content["result"] == {"hits": 3, "real": True}

    def local(query: str) -> Dict[str, Any]:
        return {"local": query}

    spec.tools[0].reference = None
    with pytest.raises(SpecLoadError, match="tool 'search' has no implementation"):
        SpecLoader().load_graph(spec)
    graph = SpecLoader(tools={"search": local}).load_graph(spec)
    assert graph.run_sync({"query": "q"}).content["result"] == {"local": "q"}


def test_custom_node_classes_need_an_allowed_module() -> None:
    spec = chain(
        NodeSpec("d", "tests.spec.sample_graphs:Doubler", params={"factor": 5})
    )
    with pytest.raises(SpecLoadError, match="not allowed"):
        SpecLoader().load_graph(spec)
    graph = SpecLoader(["spark_core", "tests.spec"]).load_graph(spec)
    assert list(graph.nodes) == ["d"]
    assert graph.run_sync({"value": 2}).content == {"value": 10}


def test_a_spec_cannot_make_the_loader_import_arbitrary_modules() -> None:
    os.environ.pop("SPARK_SPEC_EVIL_IMPORTED", None)
    sys.modules.pop("tests.spec.evil_module", None)
    for reference in (
        "tests.spec.evil_module:Payload",
        "spark_core_evil.x:Payload",  # a prefix match must end at a dot
        "os:system",
    ):
        with pytest.raises(SpecLoadError, match="is not allowed"):
            SpecLoader().node_class(reference)
    assert "tests.spec.evil_module" not in sys.modules
    assert "SPARK_SPEC_EVIL_IMPORTED" not in os.environ


def test_allowed_modules_still_only_yield_node_classes() -> None:
    loader = SpecLoader(["spark_core", "tests.spec"])
    with pytest.raises(SpecLoadError, match="is not a Node subclass"):
        loader.node_class("spark_core.cli:main")
    with pytest.raises(SpecLoadError, match="is not a Node subclass"):
        loader.node_class("tests.spec.sample_graphs:NotANode")
    with pytest.raises(SpecLoadError, match="private names"):
        loader.node_class("spark_core.spec.builtin_nodes:_as_dict")
    with pytest.raises(SpecLoadError, match="has no 'Nope'"):
        loader.node_class("spark_core.spec.builtin_nodes:Nope")
    with pytest.raises(SpecLoadError, match="cannot import"):
        loader.node_class("spark_core.no_such_module:X")
    with pytest.raises(SpecLoadError, match="unknown node type 'zzz'"):
        loader.node_class("zzz")


def test_spark_core_functions_are_not_tools_by_default() -> None:
    spec = chain(
        NodeSpec("w", "tool_call", params={"tool": "write"}),
        tools=[ToolSpec("write", reference="spark_core.spec.serde:write_text_atomic")],
    )
    with pytest.raises(SpecLoadError, match="allowed prefixes: none"):
        SpecLoader().load_graph(spec)


def test_bad_params_are_load_errors() -> None:
    for node in (
        NodeSpec("t", "tool_call", params={}),
        NodeSpec("m", "merge", params={"values": [1]}),
        NodeSpec("e", "echo", params={"unexpected": 1}),
        NodeSpec("n", "echo", params={"name": "other"}),
    ):
        with pytest.raises((SpecLoadError, SpecValidationError)):
            SpecLoader().load_graph(chain(node))


def test_invalid_specs_are_rejected_before_building() -> None:
    spec = chain(NodeSpec("a", "echo"), edges=[EdgeSpec("a", "ghost")])
    with pytest.raises(
        SpecValidationError, match="edges\\[0\\].target: unknown node 'ghost'"
    ):
        SpecLoader().load_graph(spec.to_dict())


def test_registered_types_and_bad_registrations() -> None:
    loader = SpecLoader(node_types={"double": sample_graphs.Doubler})
    graph = loader.load_graph(chain(NodeSpec("d", "double")))
    assert graph.run_sync({"value": 4}).content == {"value": 8}
    with pytest.raises(SpecError):
        loader.register("bad:name", sample_graphs.Doubler)
    with pytest.raises(SpecError):
        loader.register("x", sample_graphs.NotANode)  # type: ignore[arg-type]
    with pytest.raises(SpecError):
        SpecLoader(["."])


def test_state_schema_is_enforced() -> None:
    spec = chain(
        NodeSpec("s", "set_state", params={"from_inputs": {"count": "n"}}),
        state_schema=MissionStateSchemaSpec(
            fields={"count": StateFieldSpec("int", default=0)}
        ),
    )
    graph = SpecLoader().load_graph(spec)
    graph.run_sync({"n": 3})
    assert graph.state.backend.load_state()["count"] == 3
    with pytest.raises(Exception) as info:
        graph.run_sync({"n": "three"})
    assert "count" in str(info.value)


def test_load_mission_attaches_the_plan() -> None:
    graph_spec = chain(
        NodeSpec("a", "step"), NodeSpec("b", "step"), NodeSpec("c", "echo")
    )
    mission = MissionSpec(
        mission_id="m",
        version="1.0.0",
        graph=graph_spec,
        plan=MissionPlanSpec(
            steps=[
                MissionPlanStepSpec("a"),
                MissionPlanStepSpec("finish", depends_on=["a"], nodes=["b", "c"]),
            ]
        ),
    )
    graph = SpecLoader().load_mission(mission)
    result = graph.run_sync({})
    assert result.content["steps_completed"] == ["a", "b"]
    plan = graph.state.backend.load_state()["mission_plan"]
    assert [(s["id"], s["status"]) for s in plan["steps"]] == [
        ("a", "completed"),
        ("finish", "completed"),
    ]


def test_export_then_load_gives_the_same_graph() -> None:
    graph = sample_graphs.build_graph()
    spec = export_graph(graph)
    assert spec.id == "sample"
    assert [n.type for n in spec.nodes] == [
        "template",
        "tool_call",
        "tests.spec.sample_graphs:Doubler",
        "merge",
    ]
    assert spec.edges[1].condition == EdgeConditionSpec(
        "expr", "$.outputs.result.hits > 0"
    )
    assert spec.tools[0].reference == "tests.spec.sample_graphs:search"
    assert spec.nodes[1].config.retry == RetrySpec(max_retries=2, initial_delay=0.0)
    loader = SpecLoader(
        ["spark_core", "tests.spec"], allowed_tool_modules=["tests.spec"]
    )
    rebuilt = loader.load_graph(spec)
    original = graph.run_sync({"topic": "ai", "value": 1})
    again = rebuilt.run_sync({"topic": "ai", "value": 1})
    assert again.content == original.content
    assert export_graph(rebuilt) == spec


def test_export_refuses_what_a_spec_cannot_say() -> None:
    a, b = Node(name="a"), Node(name="b")
    a.on(lambda out: True) >> b
    with pytest.raises(SpecError, match="callable condition"):
        export_graph(Graph(a))

    class Local(Node):
        pass

    with pytest.raises(SpecError, match="not importable by name"):
        export_graph(Graph(Local(name="x")))


def test_state_field_names_cannot_reach_the_schema_class() -> None:
    # One rule: validation refuses what the loader refuses (a mission's schema is built
    # by build_state_schema directly).
    for name in ("to_dict", "validate", "defaults", "1x"):
        schema = MissionStateSchemaSpec(fields={name: StateFieldSpec("int")})
        spec = chain(NodeSpec("a", "echo"), state_schema=schema)
        with pytest.raises(SpecValidationError, match=f"state_schema.fields.{name}: "):
            SpecLoader().load_graph(spec)
        with pytest.raises(SpecLoadError, match=f"state field name '{name}': "):
            SpecLoader.build_state_schema(schema)


def test_mission_telemetry_is_opt_in(tmp_path: Path) -> None:
    mission = MissionSpec(
        mission_id="m",
        version="1.0.0",
        graph=chain(NodeSpec("a", "echo"), NodeSpec("b", "echo")),
        telemetry=MissionTelemetrySpec(backend="memory"),
    )
    assert SpecLoader().load_mission(mission).observers == []
    graph = SpecLoader().load_mission(mission, spec_telemetry=True)
    (observer,) = graph.observers
    manager = observer.manager  # type: ignore[attr-defined]
    graph.run_sync({})
    manager.flush_sync()
    spans = manager.query_spans()
    assert sorted(s["name"] for s in spans) == ["a", "b"]
    manager.close()
    db = tmp_path / "t.db"
    mission.telemetry = MissionTelemetrySpec(backend="sqlite", db_path=str(db))
    graph = SpecLoader().load_mission(mission, spec_telemetry=True)
    graph.run_sync({})
    graph.observers[0].manager.close()  # type: ignore[attr-defined]
    assert db.exists()
    for bad, message in (
        (MissionTelemetrySpec(backend="kafka"), "not available"),
        (MissionTelemetrySpec(backend="sqlite"), "db_path is required"),
    ):
        with pytest.raises(SpecLoadError, match=message):
            SpecLoader.build_telemetry(bad)
    assert SpecLoader.build_telemetry(MissionTelemetrySpec(enabled=False)) is None


def test_a_spec_without_max_steps_gets_the_graphs_default() -> None:
    nodes = [NodeSpec(i, "echo") for i in "abc"]
    loaded = SpecLoader().load_graph(chain(*nodes))
    assert loaded.max_steps == Graph(loaded.start).max_steps  # whatever the engine says
    assert SpecLoader().load_graph(chain(*nodes, max_steps=7)).max_steps == 7


def test_the_seed_path_of_the_loader_is_the_same_module() -> None:
    import spark_core.kit.loader
    import spark_core.spec.loader
    from spark_core.kit.loader import SpecLoader as SeedSpecLoader

    assert spark_core.kit.loader is spark_core.spec.loader
    assert SeedSpecLoader is SpecLoader
