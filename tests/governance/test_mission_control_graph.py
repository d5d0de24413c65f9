"""Mission control on real graphs: each guardrail stops a loop; plans advance and persist."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path
from typing import Any, Dict, List, Optional

import pytest

from spark_core.errors import NodeExecutionError
from spark_core.governance import (
    ApprovalPendingError,
    PolicyEffect,
    PolicyRule,
    PolicySet,
)
from spark_core.graphs import (
    BudgetGuardrail,
    BudgetGuardrailConfig,
    Graph,
    GuardrailBreachError,
    MissionControl,
    MissionPlan,
    PlanStep,
    SQLiteStateBackend,
)
from spark_core.graphs.mission_control import Guardrails, PlanManager
from spark_core.graphs.observers import GraphObserver
from spark_core.nodes import ExecutionContext, Node, NodeConfig
from spark_core.nodes.capabilities import RetryCapability


class Spender(Node):
    """Loops forever, reporting cost and tokens each time."""

    def __init__(self, usd: float = 1.0, tokens: int = 100) -> None:
        super().__init__(name="spender")
        self.usd, self.tokens = usd, tokens

    async def process(self, context: ExecutionContext) -> Dict[str, Any]:
        n = (context.inputs.content or {}).get("n", 0) + 1
        context.report_cost(self.usd, tokens=self.tokens, source="model")
        return {"n": n}


def loop_graph(node: Optional[Node] = None) -> Graph:
    node = node or Spender()
    node.on(lambda out: True) >> node
    return Graph(node, max_steps=10_000)


def breach(graph: Graph) -> GuardrailBreachError:
    with pytest.raises(GuardrailBreachError) as info:
        graph.run_sync({"n": 0})
    return info.value


def test_max_iterations_stops_a_loop() -> None:
    graph = loop_graph()
    BudgetGuardrail(BudgetGuardrailConfig(max_iterations=20)).attach(graph)
    err = breach(graph)
    assert (err.limit, err.value, err.threshold) == ("max_iterations", 21, 20)
    assert "measured 21 > limit 20" in str(err)
    record = graph.state.backend.load_run(err.run_id)
    assert record["status"] == "cancelled" and record["step"] == 20


def test_max_cost_stops_a_loop_as_soon_as_it_is_crossed() -> None:
    graph = loop_graph(Spender(usd=1.5))
    budget = BudgetGuardrail(
        BudgetGuardrailConfig(max_iterations=1000, max_cost_usd=5.0)
    )
    MissionControl(guardrails=[budget]).attach(graph)
    err = breach(graph)
    assert err.limit == "max_cost_usd" and err.value == 6.0 and err.threshold == 5.0
    assert err.node_id == "spender"
    assert budget.last_usage["iterations"] == 4


def test_max_cost_of_the_seed_guardrails_class() -> None:
    graph = loop_graph(Spender(usd=4.0))
    Guardrails(max_iterations=100, max_runtime_seconds=300, max_cost=10.0).attach(graph)
    err = breach(graph)
    assert (err.limit, err.value) == ("max_cost", 12.0)


def test_max_tokens_stops_a_loop() -> None:
    graph = loop_graph(Spender(usd=0.0, tokens=300))
    BudgetGuardrail(BudgetGuardrailConfig(max_tokens=1000)).attach(graph)
    err = breach(graph)
    assert (err.limit, err.value, err.threshold) == ("max_tokens", 1200, 1000)


def test_max_runtime_stops_a_loop() -> None:
    ticks = iter(range(10_000))
    graph = loop_graph()
    # a fake clock advancing one second per reading: no wall-clock in the test
    Guardrails(max_runtime_seconds=10, clock=lambda: float(next(ticks))).attach(graph)
    err = breach(graph)
    assert err.limit == "max_runtime_seconds" and err.value > 10 and err.threshold == 10


def test_breach_is_not_retried() -> None:
    calls = []

    class Costly(Node):
        async def process(self, context: ExecutionContext) -> Dict[str, Any]:
            calls.append(1)
            await context.emit("cost", usd=10.0, tokens=0)
            return {}

    graph = Graph(
        Costly(config=NodeConfig(retry=RetryCapability(max_retries=3, initial_delay=0)))
    )
    Guardrails(max_cost=1.0).attach(graph)
    with pytest.raises(GuardrailBreachError):
        graph.run_sync()
    assert calls == [1]


def test_limits_are_counted_per_run() -> None:
    graph = loop_graph(Spender(usd=1.0))
    guard = BudgetGuardrail(BudgetGuardrailConfig(max_iterations=3)).attach(graph)
    for _ in range(2):
        err = breach(graph)
        assert err.value == 4
    assert guard.last_usage["iterations"] == 4


class Work(Node):
    async def process(self, context: ExecutionContext) -> Dict[str, Any]:
        context.report_cost(0.5)
        return {"done": self.id}


def seed_graph(backend: Any = None, **kw: Any) -> Graph:
    research, draft, review = (
        Work(name="research"),
        Work(name="draft"),
        Work(name="review"),
    )
    research >> draft >> review
    return Graph(research, state_backend=backend, **kw)


def test_seed_mission_control_snippet_runs_and_completes_the_plan() -> None:
    graph = seed_graph()
    plan = MissionPlan(
        [
            PlanStep(id="research", description="Gather data"),
            PlanStep(id="draft", description="Write content", depends_on=["research"]),
            PlanStep(
                id="review", description="Review and refine", depends_on=["draft"]
            ),
        ]
    )
    budget = BudgetGuardrail(BudgetGuardrailConfig(max_iterations=20, max_cost_usd=5.0))
    mission = MissionControl(plan=plan, guardrails=[budget])
    mission.attach(graph)

    async def main() -> Dict[str, Any]:
        await graph.run()
        return await graph.state.get("mission_plan")

    snapshot = asyncio.run(main())
    assert plan.is_complete
    assert MissionPlan.from_snapshot(snapshot).render_text() == plan.render_text()
    assert plan.render_text().splitlines()[0] == "Mission plan: 3/3 steps completed"
    assert budget.last_usage["cost_usd"] == 1.5


def test_seed_plan_manager_snippet_with_explicit_node_mapping() -> None:
    a, b = Work(name="check_input"), Work(name="transform")
    a >> b
    graph = Graph(a)
    plan = MissionPlan(
        steps=[
            PlanStep(id="validate", description="Validate input"),
            PlanStep(id="process", description="Process data", depends_on=["validate"]),
        ]
    )
    manager = PlanManager(
        plan,
        state_key="mission_plan",
        auto_advance=True,
        step_nodes={"validate": "check_input", "process": ["transform"]},
    )
    manager.attach(graph)
    graph.run_sync()
    assert [s.status for s in plan] == ["completed", "completed"]
    assert "[x] validate" in plan.render_text()


def test_attach_refuses_steps_mapped_to_nodes_the_graph_lacks() -> None:
    from spark_core.graphs.mission_control import PlanValidationError

    plan = MissionPlan([PlanStep("s1")])
    with pytest.raises(PlanValidationError, match=r"'s1' maps to node\(s\) \['nope'\]"):
        PlanManager(plan, step_nodes={"s1": "nope"}).attach(seed_graph())
    with pytest.raises(PlanValidationError, match=r"\['nope'\].*its nodes: \['draft'"):
        PlanManager(MissionPlan([PlanStep("s1", nodes=["research", "nope"])])).attach(
            seed_graph()
        )
    graph = seed_graph()
    budget = Guardrails(max_iterations=5)
    mission = MissionControl(plan=plan, guardrails=[budget], step_nodes={"s1": "x"})
    with pytest.raises(PlanValidationError):
        mission.attach(graph)
    assert graph.observers == []  # nothing attached, not even the guardrail


def test_attach_refuses_a_misspelt_step_but_keeps_steps_done_by_hand() -> None:
    from spark_core.graphs.mission_control import PlanValidationError

    typo = MissionPlan([PlanStep("reseach"), PlanStep("draft", depends_on=["reseach"])])
    with pytest.raises(PlanValidationError, match="did you mean 'research'"):
        PlanManager(typo).attach(seed_graph())
    by_hand = MissionPlan([PlanStep("research"), PlanStep("sign_off")])
    PlanManager(by_hand).attach(seed_graph())  # no node: advanced by a person


def test_a_step_completes_only_after_its_dependencies() -> None:
    # the graph runs draft before research, against the plan's order
    draft, research, publish = (
        Work(name="draft"),
        Work(name="research"),
        Work(name="publish"),
    )
    draft >> research >> publish
    graph = Graph(draft)
    plan = MissionPlan(
        [
            PlanStep("research"),
            PlanStep("draft", depends_on=["research"]),
            PlanStep("sign_off", description="by a person"),
            PlanStep("publish", depends_on=["sign_off"]),
        ]
    )
    manager = PlanManager(plan).attach(graph)
    seen: List[str] = []

    class Probe(GraphObserver):  # called after the plan manager
        async def on_node_end(self, run: Any, node: Any, ctx: Any, out: Any) -> None:
            if node.id == "draft":
                seen.append(plan.get("draft").status)

    graph.add_observer(Probe())
    graph.run_sync()
    assert seen == ["blocked"]  # its work was done, its dependency was not
    statuses = {s.id: s.status for s in plan}
    assert statuses == {
        "research": "completed",
        "draft": "completed",  # completed as soon as research did
        "sign_off": "pending",
        "publish": "blocked",  # ran, but sign_off never happened
    }
    asyncio.run(manager.advance("sign_off"))
    assert plan.get("publish").status == "completed"
    assert plan.is_complete


def test_failed_node_marks_its_step_failed() -> None:
    class Broken(Node):
        async def process(self, context: ExecutionContext) -> Dict[str, Any]:
            raise RuntimeError("boom")

    first = Work(name="fetch")
    first >> Broken(name="parse")
    graph = Graph(first)
    plan = MissionPlan(
        [
            PlanStep("fetch"),
            PlanStep("parse", depends_on=["fetch"]),
            PlanStep("store", depends_on=["parse"]),
        ]
    )
    PlanManager(plan).attach(graph)
    with pytest.raises(NodeExecutionError, match="boom"):
        graph.run_sync()
    assert [s.status for s in plan] == ["completed", "failed", "blocked"]


def test_plan_survives_a_pause_and_resumes_from_state(tmp_path: Any) -> None:
    db = str(tmp_path / "plan.sqlite")
    policy = PolicySet(
        "p",
        [
            PolicyRule(
                "ask",
                PolicyEffect.REQUIRE_APPROVAL,
                ["node:execute"],
                ["node://review"],
            )
        ],
    )

    def make() -> Any:
        graph = seed_graph(SQLiteStateBackend(db), policy_set=policy)
        plan = MissionPlan(
            [
                PlanStep("research"),
                PlanStep("draft", depends_on=["research"]),
                PlanStep("review", depends_on=["draft"]),
            ]
        )
        PlanManager(plan).attach(graph)
        return graph, plan

    async def main() -> None:
        graph, plan = make()
        with pytest.raises(ApprovalPendingError) as info:
            await graph.run()
        stored = MissionPlan.from_snapshot(await graph.state.get("mission_plan"))
        assert [s.status for s in stored] == ["completed", "completed", "pending"]
        [req] = await graph.approvals.list(status="pending")
        await graph.approvals.resolve(req.id, "approved", reviewer="ana")
        fresh, fresh_plan = make()  # a new process would do exactly this
        await fresh.resume(info.value.run_id)
        assert fresh_plan.is_complete
        stored = await fresh.state.get("mission_plan")
        assert stored["run_id"] == info.value.run_id
        assert [s["status"] for s in stored["steps"]] == ["completed"] * 3

    asyncio.run(main())


class Tick(Work):
    """Work that takes ten seconds on a fake clock."""

    def __init__(self, name: str, now: List[float]) -> None:
        super().__init__(name=name)
        self.now = now

    async def process(self, context: ExecutionContext) -> Dict[str, Any]:
        self.now[0] += 10.0
        return await super().process(context)


def paused_seed_run(
    db: str, guard: Guardrails, now: Optional[List[float]] = None
) -> Graph:
    """research >> draft >> review on SQLite; review needs approval (its node is not run)."""
    clock = now if now is not None else [0.0]
    research, draft, review = (Tick(n, clock) for n in ("research", "draft", "review"))
    research >> draft >> review
    policy = PolicySet(
        "p",
        [
            PolicyRule(
                "ask",
                PolicyEffect.REQUIRE_APPROVAL,
                ["node:execute"],
                ["node://review"],
            )
        ],
    )
    graph = Graph(research, state_backend=SQLiteStateBackend(db), policy_set=policy)
    guard.attach(graph)
    return graph


async def pause_then_approve(graph: Graph) -> str:
    with pytest.raises(ApprovalPendingError) as info:
        await graph.run()
    [req] = await graph.approvals.list(status="pending")
    await graph.approvals.resolve(req.id, "approved", reviewer="ana")
    run_id = info.value.run_id
    assert run_id is not None
    return run_id


@pytest.mark.parametrize(
    "limits, expected",
    [
        ({"max_iterations": 2}, ("max_iterations", 3, 2)),
        ({"max_cost": 1.2}, ("max_cost", 1.5, 1.2)),
    ],
)
def test_limits_hold_over_a_run_resumed_in_a_new_process(
    tmp_path: Any, limits: Dict[str, Any], expected: Any
) -> None:
    db = str(tmp_path / "guard.sqlite")

    async def main() -> None:
        run_id = await pause_then_approve(paused_seed_run(db, Guardrails(**limits)))
        fresh = paused_seed_run(db, Guardrails(**limits))  # what a new process builds
        with pytest.raises(GuardrailBreachError) as info:
            await fresh.resume(run_id)
        err = info.value
        assert (err.limit, err.value, err.threshold) == expected
        assert err.node_id == "review"

    asyncio.run(main())


def test_a_node_cut_short_by_a_pause_is_counted_once_and_a_completed_run_is_forgotten(
    tmp_path: Any,
) -> None:
    db = str(tmp_path / "guard.sqlite")

    async def main() -> None:
        first = paused_seed_run(db, Guardrails(max_iterations=3))
        run_id = await pause_then_approve(first)
        stored = (await first.state.get("_spark_guardrails"))[run_id]
        assert (stored["iterations"], stored["cost_usd"]) == (2, 1.0)
        fresh = paused_seed_run(db, Guardrails(max_iterations=3))
        result = await fresh.resume(run_id)
        assert result.status == "completed"
        assert run_id not in (await fresh.state.get("_spark_guardrails"))

    asyncio.run(main())


def test_runtime_counts_time_spent_running_not_time_spent_paused(tmp_path: Any) -> None:
    db = str(tmp_path / "guard.sqlite")
    now = [0.0]

    def clock() -> float:
        return now[0]

    async def main() -> None:
        first = paused_seed_run(
            db, Guardrails(max_runtime_seconds=25, clock=clock), now
        )
        run_id = await pause_then_approve(first)
        now[0] += 1000.0  # the run waits for its reviewer
        fresh = paused_seed_run(
            db, Guardrails(max_runtime_seconds=25, clock=clock), now
        )
        with pytest.raises(GuardrailBreachError) as info:
            await fresh.resume(run_id)
        assert (info.value.limit, info.value.value) == ("max_runtime_seconds", 30.0)

    asyncio.run(main())


def test_a_resumed_run_keeps_multi_node_steps_and_steps_advanced_by_hand(
    tmp_path: Any,
) -> None:
    db = str(tmp_path / "plan.sqlite")
    policy = PolicySet(
        "p",
        [
            PolicyRule(
                "ask",
                PolicyEffect.REQUIRE_APPROVAL,
                ["node:execute"],
                ["node://review"],
            )
        ],
    )

    def make() -> Any:
        graph = seed_graph(SQLiteStateBackend(db), policy_set=policy)
        plan = MissionPlan(
            [
                PlanStep("write", nodes=["research", "review"]),
                PlanStep("draft"),
                PlanStep("sign_off", description="done by a person"),
            ]
        )
        return graph, plan, PlanManager(plan).attach(graph)

    async def main() -> None:
        graph, plan, manager = make()
        with pytest.raises(ApprovalPendingError) as info:
            await graph.run()
        assert [s.status for s in plan] == ["in_progress", "completed", "pending"]
        await manager.advance("sign_off")  # while the run waits for its reviewer
        [req] = await graph.approvals.list(status="pending")
        await graph.approvals.resolve(req.id, "approved", reviewer="ana")
        fresh, fresh_plan, _ = make()  # a new process would do exactly this
        await fresh.resume(info.value.run_id)
        assert [s.status for s in fresh_plan] == ["completed"] * 3

    asyncio.run(main())


class DiesAtFour(Node):
    """Counts; the process dies while running the fourth time when ``die`` is set."""

    def __init__(self, die: bool) -> None:
        super().__init__(name="counter")
        self.die = die

    async def process(self, context: ExecutionContext) -> Dict[str, Any]:
        n = (context.inputs.content or {}).get("n", 0) + 1
        if n == 4 and self.die:
            os._exit(3)
        return {"n": n}


def counting_loop(db: str, die: bool) -> Graph:
    node = DiesAtFour(die)
    node.on(lambda out: True) >> node
    graph = Graph(node, state_backend=SQLiteStateBackend(db), max_steps=10_000)
    Guardrails(max_iterations=5).attach(graph)
    return graph


def crash_run(db: str) -> None:  # run in a subprocess by the test below
    counting_loop(db, die=True).run_sync({"n": 0}, run_id="crashed")


def test_usage_survives_a_crash_with_a_durable_backend(tmp_path: Any) -> None:
    root = Path(__file__).resolve().parents[2]
    db = str(tmp_path / "guard.sqlite")
    code = (
        "import sys; from tests.governance.test_mission_control_graph import crash_run;"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code + " crash_run(sys.argv[1])", db],
        cwd=root,
        env=dict(os.environ, PYTHONPATH=str(root)),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 3, proc.stderr
    graph = counting_loop(db, die=False)
    with pytest.raises(GuardrailBreachError) as info:
        graph.resume_sync("crashed")
    # three nodes committed before the crash; the fourth (cut short) ran again, then the
    # fifth; the sixth breached
    assert (info.value.limit, info.value.value) == ("max_iterations", 6)
    assert graph.state.backend.load_run("crashed")["step"] == 5
