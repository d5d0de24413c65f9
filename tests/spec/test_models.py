"""Spec dataclasses: dict and JSON round trips, structural errors with paths."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Dict

import pytest
from hypothesis import given, settings

from spark_core.errors import SparkError
from spark_core.nodes.serde import load_mission_spec as seed_load
from spark_core.nodes.spec import MissionSpec as SeedMissionSpec
from spark_core.spec import (
    EdgeSpec,
    GraphSpec,
    MissionPlanSpec,
    MissionPlanStepSpec,
    MissionSimulationSpec,
    MissionSpec,
    NodeConfigSpec,
    NodeSpec,
    RetrySpec,
    SimulationToolOverrideSpec,
    SpecError,
    SpecValidationError,
    load_graph_spec,
    load_mission_spec,
    load_spec,
    save_graph_spec,
    save_mission_spec,
)
from tests.spec.strategies import graphs, missions


def small_mission() -> MissionSpec:
    graph = GraphSpec(
        id="g",
        start="a",
        nodes=[NodeSpec("a", "echo"), NodeSpec("b", "echo")],
        edges=[EdgeSpec("a", "b")],
    )
    return MissionSpec(mission_id="com.example.m", version="1.0.0", graph=graph)


@settings(max_examples=40, deadline=None)
@given(missions())
def test_mission_round_trips_through_dict_and_json(mission: MissionSpec) -> None:
    data = mission.to_dict()
    assert MissionSpec.from_dict(data) == mission
    again = json.loads(json.dumps(data))
    assert MissionSpec.from_dict(again) == mission
    assert MissionSpec.from_dict(again).to_dict() == again


@settings(max_examples=40, deadline=None)
@given(graphs())
def test_graph_round_trips_through_dict(graph: GraphSpec) -> None:
    assert GraphSpec.from_dict(json.loads(json.dumps(graph.to_dict()))) == graph


@settings(max_examples=15, deadline=None)
@given(missions())
def test_mission_round_trips_through_a_file(
    tmp_path_factory: Any, mission: MissionSpec
) -> None:
    path = tmp_path_factory.mktemp("rt") / "mission.json"
    save_mission_spec(path, mission)
    assert load_mission_spec(path) == mission


def test_to_dict_is_a_copy() -> None:
    mission = small_mission()
    data = mission.to_dict()
    data["graph"]["nodes"][0]["id"] = "changed"
    assert mission.graph.nodes[0].id == "a"


def test_seed_import_paths_are_the_same_objects() -> None:
    assert SeedMissionSpec is MissionSpec
    assert seed_load is load_mission_spec


def test_defaults_fill_optional_fields() -> None:
    spec = MissionSpec.from_dict(
        {
            "mission_id": "m",
            "version": "0.1.0",
            "graph": {"id": "g", "start": "a", "nodes": [{"id": "a", "type": "echo"}]},
        }
    )
    assert spec.spark_version == "2.0"
    assert spec.graph.max_steps is None  # the Graph's default
    assert spec.graph.nodes[0].config == NodeConfigSpec()
    assert spec.plan is None and spec.strategies == []


def issues_of(data: Dict[str, Any]) -> Dict[str, str]:
    with pytest.raises(SpecValidationError) as info:
        MissionSpec.from_dict(data)
    return {i.path: i.message for i in info.value.issues if i.severity == "error"}


def test_error_paths_name_the_exact_field() -> None:
    data = small_mission().to_dict()
    data["graph"]["nodes"][1]["config"] = {"retry": {"max_retries": -1}}
    assert issues_of(data) == {
        "graph.nodes[1].config.retry.max_retries": "must be >= 0"
    }


def test_every_structural_problem_is_reported() -> None:
    data = small_mission().to_dict()
    data["version"] = "1.0"
    data["mission_id"] = 7
    data["graph"]["nodes"].append({"id": "a", "type": "echo"})
    data["graph"]["edges"][0]["condition"] = {"kind": "maybe", "value": None}
    data["deployment"] = {"replicas": "three"}
    data["telemetry"] = {"sampling_rate": 2}
    found = issues_of(data)
    assert found == {
        "version": "must be a semantic version, got '1.0'",
        "mission_id": "must be a string, got number",
        "graph.nodes[2]": "duplicate node id 'a' (first at [0])",
        "graph.edges[0].condition.kind": "must be one of equals, expr",
        "deployment.replicas": "must be an integer, got string",
        "telemetry.sampling_rate": "must be <= 1",
    }


def test_missing_required_fields_and_wrong_shapes() -> None:
    assert issues_of({"graph": {"nodes": "x"}}) == {
        "mission_id": "is required",
        "version": "is required",
        "graph.id": "is required",
        "graph.start": "is required",
        "graph.nodes": "must be an array, got string",
    }
    assert issues_of([]) == {"": "must be an object, got array"}  # type: ignore[arg-type]


def test_booleans_are_not_integers_and_nan_is_rejected() -> None:
    data = small_mission().to_dict()
    data["graph"]["max_steps"] = True
    data["graph"]["initial_state"] = {"x": float("nan")}
    assert issues_of(data) == {
        "graph.max_steps": "must be an integer, got boolean",
        "graph.initial_state.x": "must be a finite number",
    }


def test_override_cannot_have_both_response_and_handler() -> None:
    mission = small_mission()
    mission.simulation = MissionSimulationSpec(
        tools=[SimulationToolOverrideSpec("t", static_response=1, handler="a.b:c")]
    )
    assert issues_of(mission.to_dict()) == {
        "simulation.tools[0]": "set either static_response or handler, not both"
    }


def test_ids_and_versions_with_a_trailing_newline_are_invalid() -> None:
    data = small_mission().to_dict()
    data["mission_id"] = data["mission_id"] + "\n"
    data["version"] = "1.0.0\n"
    issues = issues_of(data)
    assert set(issues) == {"mission_id", "version"}
    assert issues["version"] == "must be a semantic version, got '1.0.0\\n'"


def test_simulation_models_are_lists_of_replies() -> None:
    mission = small_mission()
    mission.simulation = MissionSimulationSpec(
        models={
            "a": [],
            "b": "Final Answer: 1",
            "c": ["ok", 3],
            "d": ["ok", {"text": "x"}],
        }
    )
    assert issues_of(mission.to_dict()) == {
        "simulation.models.a": "must be a non-empty list of scripted replies",
        "simulation.models.b": "must be a non-empty list of scripted replies",
        "simulation.models.c[1]": "must be a text or an object",
    }


def test_unknown_fields_are_warnings_not_errors() -> None:
    data = small_mission().to_dict()
    data["future_field"] = 1
    assert MissionSpec.from_dict(data) == small_mission()


def test_spec_errors_are_spark_errors() -> None:
    assert issubclass(SpecValidationError, SpecError)
    assert issubclass(SpecError, SparkError)
    with pytest.raises(
        SpecValidationError, match="invalid spec: max_retries: must be >= 0"
    ):
        RetrySpec.from_dict({"max_retries": -2})


def test_save_is_atomic_and_leaves_no_temp_files(tmp_path: Path) -> None:
    path = tmp_path / "m.json"
    save_mission_spec(path, small_mission())
    bad = small_mission()
    bad.metadata = {"x": object()}
    with pytest.raises(SpecError, match="not JSON-serialisable"):
        save_mission_spec(path, bad)
    assert load_mission_spec(path) == small_mission()
    assert [p.name for p in tmp_path.iterdir()] == ["m.json"]


def test_save_into_missing_folder_is_a_spec_error(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match="cannot write"):
        save_mission_spec(tmp_path / "nope" / "m.json", small_mission())


def test_load_errors_name_the_file(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match="cannot read"):
        load_mission_spec(tmp_path / "missing.json")
    path = tmp_path / "bad.json"
    path.write_text('{"mission_id": ', encoding="utf-8")
    with pytest.raises(
        SpecValidationError, match=r"bad.json: invalid spec: invalid JSON at line 1"
    ):
        load_mission_spec(path)
    path.write_text('{"mission_id": NaN}', encoding="utf-8")
    with pytest.raises(SpecValidationError, match="NaN is not allowed"):
        load_mission_spec(path)


def test_load_spec_tells_graphs_from_missions(tmp_path: Path) -> None:
    mission = small_mission()
    save_mission_spec(tmp_path / "m.json", mission)
    save_graph_spec(tmp_path / "g.json", mission.graph)
    assert load_spec(tmp_path / "m.json") == mission
    assert load_spec(tmp_path / "g.json") == mission.graph
    assert load_graph_spec(tmp_path / "g.json") == mission.graph


def test_plan_steps_keep_seed_fields() -> None:
    plan = MissionPlanSpec(
        steps=[
            MissionPlanStepSpec(id="validate", description="Validate input data"),
            MissionPlanStepSpec(id="transform", depends_on=["validate"]),
        ]
    )
    assert plan.to_dict()["steps"][1] == {
        "id": "transform",
        "description": "",
        "depends_on": ["validate"],
        "nodes": [],
    }
