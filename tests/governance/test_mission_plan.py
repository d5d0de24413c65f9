"""MissionPlan / PlanStep: validation, statuses, rendering, snapshots; guardrail config."""

from __future__ import annotations

import json

import pytest

from spark_core.errors import RunStopped, SparkError
from spark_core.graphs.mission_control import (
    BudgetGuardrail,
    BudgetGuardrailConfig,
    GuardrailBreachError,
    Guardrails,
    MissionPlan,
    PlanStep,
    PlanValidationError,
)


def seed_plan() -> MissionPlan:
    return MissionPlan(
        [
            PlanStep(id="research", description="Gather data"),
            PlanStep(id="draft", description="Write content", depends_on=["research"]),
            PlanStep(
                id="review", description="Review and refine", depends_on=["draft"]
            ),
        ]
    )


def test_new_plan_blocks_steps_waiting_on_dependencies() -> None:
    plan = seed_plan()
    assert [s.status for s in plan] == ["pending", "blocked", "blocked"]
    assert [s.id for s in plan.ready_steps()] == ["research"]


def test_completing_a_step_unblocks_its_dependants() -> None:
    plan = seed_plan()
    plan.set_status("research", "in_progress")
    assert plan.get("research").started_at is not None
    plan.set_status("research", "completed")
    assert plan.get("draft").status == "pending"
    assert plan.get("review").status == "blocked"
    assert plan.progress() == (1, 3) and not plan.is_complete
    for sid in ("draft", "review"):
        plan.set_status(sid, "completed")
    assert plan.is_complete


def test_unknown_dependency_duplicate_and_bad_status() -> None:
    with pytest.raises(
        PlanValidationError, match=r"depends on unknown step\(s\) \['nope'\]"
    ):
        MissionPlan([PlanStep("a", depends_on=["nope"])])
    with pytest.raises(PlanValidationError, match="duplicate plan step id 'a'"):
        MissionPlan([PlanStep("a"), PlanStep("a")])
    with pytest.raises(PlanValidationError, match="unknown status"):
        PlanStep("a", status="done")
    with pytest.raises(PlanValidationError, match="depends_on must be a list"):
        PlanStep("a", depends_on="b")  # type: ignore[arg-type]
    with pytest.raises(PlanValidationError, match="no plan step 'x'"):
        seed_plan().set_status("x", "completed")
    assert issubclass(PlanValidationError, SparkError)


def test_cycles_are_reported_with_their_path() -> None:
    with pytest.raises(PlanValidationError, match=r"dependency\): a -> c -> b -> a"):
        MissionPlan(
            [
                PlanStep("a", depends_on=["c"]),
                PlanStep("b", depends_on=["a"]),
                PlanStep("c", depends_on=["b"]),
            ]
        )
    with pytest.raises(PlanValidationError, match=r"dependency\): s -> s"):
        MissionPlan([PlanStep("s", depends_on=["s"])])


def test_render_text_lists_steps_in_dependency_order() -> None:
    plan = MissionPlan(
        [
            PlanStep("report", "Generate report", depends_on=["load"]),
            PlanStep("load", "Load data"),
        ]
    )
    plan.set_status("load", "completed")
    plan.set_status("report", "in_progress")
    assert plan.render_text() == (
        "Mission plan: 1/2 steps completed\n"
        "[x] load    Load data\n"
        "[>] report  Generate report  (after: load)  <in_progress>"
    )


def test_snapshot_round_trip_and_list_form() -> None:
    plan = seed_plan()
    plan.set_status("research", "completed")
    snap = plan.snapshot()
    json.dumps(snap)
    again = MissionPlan.from_snapshot(snap)
    assert again.snapshot() == snap
    # a spec's plain list of steps (seed 002: mission.plan.model_dump()["steps"])
    listed = MissionPlan.from_snapshot(
        [
            {"id": "step1", "description": "Initialize", "depends_on": []},
            {"id": "step2", "description": "Process", "depends_on": ["step1"]},
        ]
    )
    assert [s.status for s in listed] == ["pending", "blocked"]
    with pytest.raises(PlanValidationError):
        MissionPlan.from_snapshot({"nope": 1})
    with pytest.raises(PlanValidationError):
        MissionPlan.from_snapshot([{"description": "no id"}])


def test_topological_order_is_stable() -> None:
    plan = MissionPlan(
        [
            PlanStep("step4", depends_on=["step2"]),
            PlanStep("step3", depends_on=["step2"]),
            PlanStep("step2", depends_on=["step1"]),
            PlanStep("step1"),
        ]
    )
    assert plan.topological_order() == ["step1", "step2", "step4", "step3"]


def test_reset_returns_to_the_initial_statuses() -> None:
    plan = seed_plan()
    plan.set_status("research", "failed")
    plan.reset()
    assert [s.status for s in plan] == ["pending", "blocked", "blocked"]
    assert plan.get("research").completed_at is None


@pytest.mark.parametrize("bad", [-1, float("nan"), "5", True])
def test_guardrail_limits_are_validated(bad: object) -> None:
    with pytest.raises(PlanValidationError, match="max_cost_usd"):
        BudgetGuardrailConfig(max_cost_usd=bad)  # type: ignore[arg-type]


def test_breach_error_names_limit_value_and_threshold() -> None:
    err = GuardrailBreachError("max_cost_usd", 5.25, 5.0, node_id="draft")
    assert isinstance(err, RunStopped)
    assert (
        str(err)
        == "guardrail max_cost_usd breached at node 'draft': measured 5.25 > limit 5"
    )
    assert (err.limit, err.value, err.threshold) == ("max_cost_usd", 5.25, 5.0)


def test_guardrail_objects_share_the_config() -> None:
    g = Guardrails(max_iterations=100, max_runtime_seconds=300, max_cost=10.0)
    b = BudgetGuardrail(BudgetGuardrailConfig(max_iterations=20, max_cost_usd=5.0))
    assert g.config.max_cost_usd == 10.0 and b.config.max_iterations == 20
    with pytest.raises(PlanValidationError, match="BudgetGuardrailConfig"):
        BudgetGuardrail({"max_iterations": 3})  # type: ignore[arg-type]
