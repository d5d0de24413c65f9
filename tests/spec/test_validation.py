"""Semantic validation: graph shape, plans, strategies, deployment readiness."""

from __future__ import annotations

from typing import Dict, List

import pytest

from spark_core.spec import (
    EdgeConditionSpec,
    EdgeSpec,
    GraphSpec,
    MissionDeploymentSpec,
    MissionPlanSpec,
    MissionPlanStepSpec,
    MissionSimulationSpec,
    MissionSpec,
    MissionStateSchemaSpec,
    MissionStrategyBindingSpec,
    MissionTelemetrySpec,
    NodeSpec,
    ReasoningStrategySpec,
    SimulationToolOverrideSpec,
    SpecValidationError,
    StateFieldSpec,
    ToolSpec,
    ValidationIssue,
    ensure_valid_graph,
    ensure_valid_mission,
    validate_graph,
    validate_mission,
    validate_spec,
)
from spark_core.spec.validation import is_reference


def graph(*edges: EdgeSpec, nodes: str = "abc") -> GraphSpec:
    return GraphSpec(
        id="g",
        start=nodes[0],
        nodes=[NodeSpec(n, "echo") for n in nodes],
        edges=list(edges),
    )


def mission(g: GraphSpec) -> MissionSpec:
    return MissionSpec(mission_id="m", version="1.2.3", graph=g)


def by_path(issues: List[ValidationIssue], severity: str = "error") -> Dict[str, str]:
    return {i.path: i.message for i in issues if i.severity == severity}


def test_clean_graph_has_no_issues() -> None:
    assert validate_graph(graph(EdgeSpec("a", "b"), EdgeSpec("b", "c"))) == []


def test_edges_to_unknown_nodes_and_unknown_start() -> None:
    g = graph(EdgeSpec("a", "zz"), EdgeSpec("qq", "b"), EdgeSpec("b", "c"))
    g.start = "nope"
    assert by_path(validate_graph(g)) == {
        "start": "unknown node 'nope'",
        "edges[0].target": "unknown node 'zz'",
        "edges[1].source": "unknown node 'qq'",
    }


def test_unreachable_nodes_are_warnings() -> None:
    issues = validate_graph(graph(EdgeSpec("a", "b")))
    assert by_path(issues) == {}
    assert by_path(issues, "warning") == {
        "nodes[2]": "node 'c' is unreachable from start 'a'"
    }


def test_loop_of_unconditional_edges_has_no_bound() -> None:
    g = graph(EdgeSpec("a", "b"), EdgeSpec("b", "c"), EdgeSpec("c", "b"))
    assert by_path(validate_graph(g)) == {
        "edges": "loop without a bound: b -> c -> b has only unconditional edges "
        "(put a condition on one of them)"
    }
    g.edges[2].condition = EdgeConditionSpec("expr", "$.outputs.again == true")
    assert validate_graph(g) == []


def test_self_loop_without_condition() -> None:
    g = graph(EdgeSpec("a", "a"), nodes="a")
    assert "loop without a bound: a -> a" in by_path(validate_graph(g))["edges"]


def test_unknown_node_types_and_bad_references() -> None:
    g = graph(EdgeSpec("a", "b"), EdgeSpec("b", "c"))
    g.nodes[0].type = "frobnicate"
    g.nodes[1].type = "not a reference:"
    g.nodes[2].type = "myapp.nodes:Thing"
    assert by_path(validate_graph(g)) == {
        "nodes[0].type": "unknown node type 'frobnicate' (use a registered type or "
        "'module:Class')",
        "nodes[1].type": "must look like 'package.module:Class'",
    }
    assert "nodes[0].type" not in by_path(validate_graph(g, node_types=["frobnicate"]))


def test_tool_call_nodes_must_name_a_declared_tool() -> None:
    g = graph(EdgeSpec("a", "b"), nodes="ab")
    g.nodes[0] = NodeSpec("a", "tool_call", params={"tool": "search"})
    g.nodes[1] = NodeSpec("b", "tool_call")
    assert by_path(validate_graph(g)) == {
        "nodes[0].params.tool": "unknown tool 'search'",
        "nodes[1].params.tool": "is required for a tool_call node",
    }
    g.tools = [ToolSpec("search", reference="bad reference")]
    g.nodes[1].params = {"tool": "search"}
    assert by_path(validate_graph(g)) == {
        "tools[0].reference": "must look like 'package.module:function'"
    }


def test_initial_state_must_match_the_schema() -> None:
    g = graph(nodes="a")
    g.state_schema = MissionStateSchemaSpec(
        fields={
            "count": StateFieldSpec("int", default="zero"),
            "_spark_x": StateFieldSpec("any"),
        }
    )
    g.initial_state = {"count": True}
    assert by_path(validate_graph(g)) == {
        "state_schema.fields.count.default": "does not match type 'int'",
        "state_schema.fields._spark_x": "names starting with '_spark_' are reserved",
        "initial_state.count": "does not match declared type 'int'",
    }


def test_plan_dependencies_unknown_self_and_cyclic() -> None:
    m = mission(graph(EdgeSpec("a", "b"), EdgeSpec("b", "c")))
    m.plan = MissionPlanSpec(
        steps=[
            MissionPlanStepSpec("s1", depends_on=["s3"]),
            MissionPlanStepSpec("s2", depends_on=["s1", "ghost", "s2"]),
            MissionPlanStepSpec("s3", depends_on=["s2"], nodes=["a", "zz"]),
        ]
    )
    assert by_path(validate_mission(m)) == {
        "plan.steps[1].depends_on[1]": "unknown plan step 'ghost'",
        "plan.steps[1].depends_on[2]": "step 's2' depends on itself",
        "plan.steps": "dependency cycle: s1 -> s3 -> s2 -> s1",
        "plan.steps[2].nodes[1]": "unknown node 'zz'",
    }


def test_strategy_bindings_must_target_agent_nodes() -> None:
    m = mission(graph(EdgeSpec("a", "b"), EdgeSpec("b", "c")))
    m.graph.nodes[1].type = "spark_core.agents.node:AgentNode"
    m.strategies = [
        MissionStrategyBindingSpec("b", ReasoningStrategySpec("react")),
        MissionStrategyBindingSpec("agent9", ReasoningStrategySpec("react")),
        MissionStrategyBindingSpec("c", ReasoningStrategySpec("react")),
    ]
    assert by_path(validate_mission(m)) == {
        "strategies[1].target": "unknown node 'agent9'",
        "strategies[2].target": "node 'c' is a built-in 'echo' node, not an agent",
    }


def test_simulation_overrides_of_unknown_tools_warn() -> None:
    m = mission(graph(EdgeSpec("a", "b"), EdgeSpec("b", "c")))
    m.simulation = MissionSimulationSpec(
        tools=[
            SimulationToolOverrideSpec("ghost"),
            SimulationToolOverrideSpec("x", handler="h"),
        ]
    )
    issues = validate_mission(m)
    assert (
        by_path(issues, "warning")["simulation.tools[0].name"]
        == "graph has no tool 'ghost'"
    )
    assert by_path(issues) == {
        "simulation.tools[1].handler": "must look like 'package.module:function'"
    }


def test_deployment_checks_only_on_request() -> None:
    m = mission(graph(EdgeSpec("a", "b"), EdgeSpec("b", "c")))
    assert validate_mission(m) == []
    assert by_path(validate_mission(m, check_deployment=True)) == {
        "deployment": "is required for deployment"
    }
    m.deployment = MissionDeploymentSpec(
        target="moon",
        replicas=0,
        resources={"cpu": "lots", "memory": "4 gigs", "gpu": "1.5", "disk": "1Ti"},
        restart_policy="sometimes",
        environment={"OK_NAME": "1", "bad-name": "2", "API_TOKEN": "tok-12345"},
    )
    m.telemetry = MissionTelemetrySpec(backend="carrier-pigeon")
    issues = validate_mission(m, check_deployment=True)
    assert by_path(issues) == {
        "deployment.target": "must be one of development, staging, production",
        "deployment.replicas": "must be >= 1 to deploy",
        "deployment.resources.cpu": "'lots' is not a CPU quantity (e.g. '2', '0.5', '500m')",
        "deployment.resources.memory": "'4 gigs' is not a memory quantity (e.g. '512Mi', '4Gi')",
        "deployment.resources.gpu": "'1.5' is not a whole number of GPUs",
        "deployment.restart_policy": "must be one of always, on-failure, never",
        "deployment.environment.bad-name": "is not a valid environment variable name",
        "telemetry.backend": "must be one of memory, sqlite, postgresql, otlp",
    }
    assert by_path(issues, "warning") == {
        "deployment.resources.disk": "unknown resource (expected cpu, memory, gpu)",
        "deployment.environment.API_TOKEN": "looks like a secret: keep credentials out of the "
        "spec and set them in the target environment",
    }
    assert all("tok-12345" not in str(i) for i in issues)


def test_production_deployment_with_one_replica_warns() -> None:
    m = mission(graph(EdgeSpec("a", "b"), EdgeSpec("b", "c")))
    m.deployment = MissionDeploymentSpec(
        target="production", replicas=1, resources={"cpu": "500m", "memory": "512Mi"}
    )
    issues = validate_mission(m, check_deployment=True)
    assert by_path(issues) == {}
    assert list(by_path(issues, "warning")) == ["deployment.replicas"]


def test_structural_errors_stop_before_semantic_checks() -> None:
    data = mission(graph(EdgeSpec("a", "zz"))).to_dict()
    data["version"] = "one"
    assert by_path(validate_mission(data)) == {
        "version": "must be a semantic version, got 'one'"
    }


def test_validate_spec_dispatches_on_mission_id() -> None:
    g = graph(EdgeSpec("a", "q"))
    assert by_path(validate_spec(g.to_dict())) == {
        "edges[0].target": "unknown node 'q'"
    }
    assert by_path(validate_spec(mission(g).to_dict())) == {
        "graph.edges[0].target": "unknown node 'q'"
    }


def test_ensure_valid_raises_with_all_errors_and_strict_counts_warnings() -> None:
    g = graph(EdgeSpec("a", "q"))
    with pytest.raises(SpecValidationError) as info:
        ensure_valid_mission(mission(g))
    assert [str(i) for i in info.value.issues] == [
        "graph.edges[0].target: unknown node 'q'"
    ]
    warn_only = graph(EdgeSpec("a", "b"))
    assert ensure_valid_graph(warn_only.to_dict()) == warn_only
    with pytest.raises(SpecValidationError, match="unreachable"):
        ensure_valid_graph(warn_only, strict=True)


def test_references_are_whole_strings() -> None:
    assert is_reference("spark_core.nodes:Node")
    for text in ("spark_core.nodes:Node\n", "spark_core.nodes:Node ", "a:b.c", ":Node"):
        assert not is_reference(text), text
    g = graph()
    g.nodes[0].type = "spark_core.nodes:Node\n"
    assert by_path(validate_graph(g))["nodes[0].type"] == (
        "must look like 'package.module:Class'"
    )


def test_tool_names_the_engine_refuses_are_errors() -> None:
    g = graph()
    g.tools = [ToolSpec("ok.name-1"), ToolSpec("has space"), ToolSpec("nl\n")]
    errors = by_path(validate_graph(g))
    assert "tools[0].name" not in errors
    assert "invalid tool name 'has space'" in errors["tools[1].name"]
    assert "tools[2].name" in errors  # a trailing newline too


def test_strategy_types_and_config_keys_are_checked_like_the_loader() -> None:
    m = mission(graph(EdgeSpec("a", "b"), EdgeSpec("b", "c")))
    for node in m.graph.nodes:
        node.type = "spark_core.agents.node:AgentNode"
    m.strategies = [
        MissionStrategyBindingSpec("a", ReasoningStrategySpec("bogus")),
        MissionStrategyBindingSpec(
            "b", ReasoningStrategySpec("plan_and_solve", {"depth": 3})
        ),
        MissionStrategyBindingSpec("c", ReasoningStrategySpec("react", {"mode": "x"})),
    ]
    errors = by_path(validate_mission(m))
    assert set(errors) == {
        "strategies[0].strategy.type",
        "strategies[1].strategy.config",
        "strategies[2].strategy.config",
    }
    assert (
        "unknown reasoning strategy type 'bogus'"
        in errors["strategies[0].strategy.type"]
    )
    assert "['depth']" in errors["strategies[1].strategy.config"]
    m.strategies = [
        MissionStrategyBindingSpec(
            "a", ReasoningStrategySpec("plan_and_solve", {"max_plan_steps": 3})
        )
    ]
    assert validate_mission(m) == []


def test_strategy_binding_to_a_custom_node_that_is_not_an_agent() -> None:
    m = mission(graph(EdgeSpec("a", "b"), EdgeSpec("b", "c")))
    m.graph.nodes[0].type = "spark_core.nodes:Node"
    m.graph.nodes[1].type = "myapp.nodes:Thing"
    m.strategies = [
        MissionStrategyBindingSpec("a", ReasoningStrategySpec("react")),
        MissionStrategyBindingSpec("b", ReasoningStrategySpec("react")),
    ]
    issues = validate_mission(m)
    assert by_path(issues) == {
        "strategies[0].target": "node 'a' has type 'spark_core.nodes:Node', "
        "not an agent node"
    }
    # myapp is never imported by validation: loading decides, and the warning says so.
    assert "loading checks" in by_path(issues, "warning")["strategies[1].target"]


@pytest.mark.parametrize("name", ["validate", "defaults", "field_types"])
def test_state_fields_the_loader_refuses_are_invalid(name: str) -> None:
    m = mission(graph(nodes="a"))
    m.state_schema = MissionStateSchemaSpec(fields={name: StateFieldSpec("str")})
    assert by_path(validate_mission(m)) == {
        f"state_schema.fields.{name}": f"clashes with MissionStateModel.{name} "
        "(the schema's base class)"
    }


def test_node_params_the_loader_sets_are_invalid() -> None:
    g = graph(nodes="ab")
    g.nodes[0].params = {"name": "x"}
    g.nodes[1].params = {"config": {}}
    assert by_path(validate_mission(mission(g))) == {
        "graph.nodes[0].params.name": "is reserved (the loader sets it from the node's id)",
        "graph.nodes[1].params.config": "is reserved (the loader sets it from the node's "
        "config)",
    }


def test_each_strategy_binding_is_built_once(monkeypatch: pytest.MonkeyPatch) -> None:
    from spark_core.agents.strategies import PlanAndSolveStrategy

    built: List[int] = []
    real_init = PlanAndSolveStrategy.__init__

    def counting_init(self: PlanAndSolveStrategy, max_plan_steps: int = 8) -> None:
        built.append(max_plan_steps)
        real_init(self, max_plan_steps)

    monkeypatch.setattr(PlanAndSolveStrategy, "__init__", counting_init)
    m = mission(graph(nodes="a"))
    m.graph.nodes[0].type = "spark_core.agents.node:AgentNode"
    strategy = ReasoningStrategySpec("plan_and_solve", {"max_plan_steps": 3})
    m.strategies = [MissionStrategyBindingSpec("a", strategy)]
    assert validate_mission(m) == [] and built == [3]
