"""Simulation: tool stand-ins, call counts, plan progress, failures reported not raised."""

from __future__ import annotations

import asyncio
from typing import Any, Dict

import pytest

from spark_core.governance import PolicyViolationError
from spark_core.graphs.mission_control import GuardrailBreachError
from spark_core.kit.loader import SpecLoader
from spark_core.spec import (
    EdgeSpec,
    GraphSpec,
    MissionPlanSpec,
    MissionPlanStepSpec,
    MissionSimulationSpec,
    MissionSpec,
    NodeSpec,
    SimulationToolOverrideSpec,
    SpecError,
    ToolSpec,
)
from spark_core.spec.simulation import (
    SimulatedTool,
    run_simulation,
    run_simulation_async,
)
from tests.spec import sample_graphs


def mission(
    *overrides: SimulationToolOverrideSpec, enabled: bool = True
) -> MissionSpec:
    graph = GraphSpec(
        id="research",
        start="plan",
        nodes=[
            NodeSpec("plan", "step"),
            NodeSpec(
                "search", "tool_call", params={"tool": "web", "input_keys": ["query"]}
            ),
            NodeSpec(
                "mail",
                "tool_call",
                params={"tool": "email", "arguments": {"to": "ops"}},
            ),
        ],
        edges=[EdgeSpec("plan", "search"), EdgeSpec("search", "mail")],
        tools=[
            ToolSpec("web", reference="tests.spec.sample_graphs:search"),
            ToolSpec("email"),
        ],
    )
    return MissionSpec(
        mission_id="com.example.research",
        version="1.0.0",
        graph=graph,
        plan=MissionPlanSpec(
            steps=[
                MissionPlanStepSpec("plan"),
                MissionPlanStepSpec("search", depends_on=["plan"]),
            ]
        ),
        simulation=MissionSimulationSpec(
            enabled=enabled, tools=list(overrides), inputs={"query": "default"}
        ),
    )


def test_static_responses_replace_real_tools_and_are_counted() -> None:
    spec = mission(
        SimulationToolOverrideSpec("web", static_response={"hits": 1}),
        SimulationToolOverrideSpec("email", static_response="sent"),
    )
    report = run_simulation(spec, {"query": "spark"})
    assert report.ok and report.status == "completed"
    assert report.tool_calls == {"web": 1, "email": 1}
    assert report.calls == [
        {"tool": "web", "arguments": {"query": "spark"}},
        {"tool": "email", "arguments": {"to": "ops"}},
    ]
    assert report.output["result"] == "sent"
    assert report.outputs["search"]["result"] == {
        "hits": 1
    }  # not the real tool's answer
    assert report.real_tools == []
    assert report.plan is not None
    assert [s["status"] for s in report.plan["steps"]] == ["completed", "completed"]
    assert report.to_dict()["tool_calls"] == {"web": 1, "email": 1}


def test_default_input_comes_from_the_spec() -> None:
    spec = mission(
        SimulationToolOverrideSpec("web", static_response={"hits": 0}),
        SimulationToolOverrideSpec("email", static_response=None),
    )
    report = run_simulation(spec)
    assert report.calls[0]["arguments"] == {"query": "default"}


def test_handler_references_need_an_allowed_tool_module() -> None:
    spec = mission(
        SimulationToolOverrideSpec(
            "web", handler="tests.spec.sample_graphs:fake_search"
        ),
        SimulationToolOverrideSpec("email", static_response="ok"),
    )
    with pytest.raises(SpecError, match="not allowed"):
        run_simulation(spec)
    sample_graphs.HANDLER_CALLS.clear()
    loader = SpecLoader(allowed_tool_modules=["tests.spec.sample_graphs"])
    report = run_simulation(spec, {"query": "q"}, loader=loader)
    assert report.outputs["search"]["result"] == {"hits": 42, "simulated_query": "q"}
    assert sample_graphs.HANDLER_CALLS == [{"query": "q"}]


def test_python_overrides_win_and_accept_callables() -> None:
    seen = []

    async def web(**arguments: Any) -> Dict[str, Any]:
        seen.append(arguments)
        return {"from": "python"}

    spec = mission(SimulationToolOverrideSpec("web", static_response={"hits": 1}))
    report = run_simulation(spec, {"query": "x"}, overrides={"web": web, "email": 5})
    assert report.outputs["search"]["result"] == {"from": "python"}
    assert report.output["result"] == 5
    assert seen == [{"query": "x"}]


def test_tools_without_stand_ins_stop_the_simulation_up_front() -> None:
    spec = mission(SimulationToolOverrideSpec("web", static_response={}))
    with pytest.raises(
        SpecError, match="no simulated response for tool\\(s\\) 'email'"
    ):
        run_simulation(spec)


def test_real_tools_only_when_allowed_and_reported() -> None:
    spec = mission(SimulationToolOverrideSpec("email", static_response="sent"))
    loader = SpecLoader(allowed_tool_modules=["tests.spec"])
    report = run_simulation(
        spec, {"query": "abcd"}, loader=loader, allow_real_tools=True
    )
    assert report.real_tools == ["web"]
    assert report.tool_calls == {"email": 1}
    assert report.outputs["search"]["result"] == {"hits": 4, "real": True}


def test_disabled_simulation_is_an_error() -> None:
    with pytest.raises(SpecError, match="simulation is disabled"):
        run_simulation(mission(enabled=False))


def test_a_failing_run_is_reported() -> None:
    def broken(**arguments: Any) -> Any:
        raise RuntimeError("boom")

    spec = mission(SimulationToolOverrideSpec("email", static_response="x"))
    report = run_simulation(spec, {"query": "q"}, overrides={"web": broken})
    assert report.status == "failed" and not report.ok
    assert "boom" in (report.error or "")
    assert report.tool_calls == {"email": 0, "web": 1}
    assert report.plan is not None


@pytest.mark.parametrize(
    ("error", "status"),
    [
        (PolicyViolationError("denied by a reviewer"), "failed"),
        (GuardrailBreachError("max_cost", 2.0, 1.0), "cancelled"),
    ],
)
def test_a_stopped_run_is_reported_with_the_status_it_is_stored_with(
    error: Exception, status: str
) -> None:
    def stop(**arguments: Any) -> Any:
        raise error

    spec = mission(SimulationToolOverrideSpec("email", static_response="x"))
    report = run_simulation(spec, {"query": "q"}, overrides={"web": stop})
    assert report.status == status and not report.ok
    assert str(error) in (report.error or "")


def test_bare_graphs_can_be_simulated_too() -> None:
    graph = GraphSpec(
        id="g",
        start="a",
        nodes=[NodeSpec("a", "tool_call", params={"tool": "t"})],
        tools=[ToolSpec("t")],
    )
    report = run_simulation(graph, {}, overrides={"t": {"ok": True}})
    assert report.mission_id is None and report.plan is None
    assert report.output["result"] == {"ok": True}


def test_async_api_inside_a_running_loop() -> None:
    spec = mission(
        SimulationToolOverrideSpec("web", static_response=1),
        SimulationToolOverrideSpec("email", static_response=2),
    )

    async def inside_a_loop() -> None:
        report = await run_simulation_async(spec, {"query": "z"})
        assert report.tool_calls == {"web": 1, "email": 1}
        assert run_simulation(
            spec, {"query": "z"}
        ).ok  # the sync wrapper works here too

    asyncio.run(inside_a_loop())


def test_simulated_tool_copies_its_static_response() -> None:
    tool = SimulatedTool("t", static_response={"list": [1]})
    first = asyncio.run(tool(a=1))
    first["list"].append(2)
    assert asyncio.run(tool()) == {"list": [1]}
    assert tool.calls == [{"a": 1}, {}]
    assert "calls=2" in repr(tool)
