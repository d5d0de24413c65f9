"""The mission-system seed's examples, with ``spark.`` replaced by ``spark_core.``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from spark_core.graphs.mission_control import MissionPlan, PlanManager
from spark_core.kit.loader import SpecLoader
from spark_core.nodes.serde import load_mission_spec, save_mission_spec
from spark_core.nodes.spec import (
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
    StateFieldSpec,
    ToolSpec,
    validate_mission,
)
from spark_core.spec.simulation import run_simulation

# Plain dicts, as the seed writes them (converted to StateFieldSpec on construction).
SEED_FIELDS: Any = {
    "processed_count": {"type": "int", "required": True, "default": 0},
    "error_count": {"type": "int", "required": True, "default": 0},
    "last_run": {"type": "datetime", "required": False},
}


def seed_mission() -> MissionSpec:
    return MissionSpec(
        spark_version="2.0",
        mission_id="com.example.data-pipeline",
        version="1.0.0",
        description="Production data processing pipeline",
        graph=GraphSpec(
            id="pipeline",
            start="validate",
            nodes=[
                NodeSpec("validate", "step"),
                NodeSpec("transform", "step"),
                NodeSpec(
                    "load",
                    "tool_call",
                    params={"tool": "external_api", "input_keys": ["steps_completed"]},
                ),
            ],
            edges=[EdgeSpec("validate", "transform"), EdgeSpec("transform", "load")],
            tools=[ToolSpec("external_api", description="the warehouse API")],
        ),
        plan=MissionPlanSpec(
            steps=[
                MissionPlanStepSpec(
                    id="validate", description="Validate input data", depends_on=[]
                ),
                MissionPlanStepSpec(
                    id="transform",
                    description="Transform validated data",
                    depends_on=["validate"],
                ),
                MissionPlanStepSpec(
                    id="load",
                    description="Load transformed data",
                    depends_on=["transform"],
                ),
            ]
        ),
        state_schema=MissionStateSchemaSpec(
            schema_class="myapp.schemas:PipelineState",
            fields=SEED_FIELDS,
        ),
        telemetry=MissionTelemetrySpec(
            enabled=True, backend="sqlite", sampling_rate=1.0, db_path="telemetry.db"
        ),
        deployment=MissionDeploymentSpec(
            target="production",
            replicas=3,
            resources={"cpu": "2", "memory": "4Gi"},
            health_check_interval=30,
        ),
        simulation=MissionSimulationSpec(
            enabled=True,
            tools=[
                SimulationToolOverrideSpec(
                    name="external_api", static_response={"status": "success"}
                )
            ],
        ),
    )


def test_seed_mission_is_valid_and_round_trips(tmp_path: Path) -> None:
    mission = seed_mission()
    assert mission.state_schema is not None
    assert mission.state_schema.fields["processed_count"] == StateFieldSpec(
        "int", required=True, default=0
    )
    assert validate_mission(mission, check_deployment=True) == []
    # The seed's binding snippet; bindings configure agents, and 'transform' is a plain
    # step, so semantic validation flags it (the spec still round-trips).
    mission.strategies = [
        MissionStrategyBindingSpec(
            target="transform",
            reference="agents.agent1",
            strategy=ReasoningStrategySpec(type="react", config={"verbose": True}),
        )
    ]
    [issue] = validate_mission(mission, check_deployment=True)
    assert issue.path == "strategies[0].target" and "not an agent" in issue.message
    save_mission_spec(str(tmp_path / "mission.json"), mission)
    assert load_mission_spec(str(tmp_path / "mission.json")) == mission


def test_seed_loading_and_running_recipe(tmp_path: Path) -> None:
    save_mission_spec(str(tmp_path / "mission.json"), seed_mission())
    mission = load_mission_spec(str(tmp_path / "mission.json"))
    loader = SpecLoader(tools={"external_api": lambda **kw: {"status": "stored"}})
    graph = loader.load_graph(mission.graph)
    assert mission.plan is not None
    plan = MissionPlan.from_snapshot(mission.plan.model_dump()["steps"])
    manager = PlanManager(plan)
    manager.attach(graph)
    result = graph.run_sync()
    assert result.content["result"] == {"status": "stored"}
    assert plan.is_complete


def test_seed_simulate_first() -> None:
    report = run_simulation(seed_mission(), {"batch": 1})
    assert report.ok
    assert report.tool_calls == {"external_api": 1}
    assert report.output["result"] == {"status": "success"}
