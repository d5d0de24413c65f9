"""Durable runs: pause/resume, resume after failure, checkpoints."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any, Dict, List, Optional

import pytest

from spark_core.errors import (
    GraphDefinitionError,
    NodeExecutionError,
    RunNotFoundError,
    RunPaused,
    StateBackendError,
    StateValidationError,
)
from spark_core.graphs import (
    Graph,
    GraphObserver,
    InMemoryStateBackend,
    RunInfo,
    SQLiteStateBackend,
    StateBackend,
)
from spark_core.nodes import ExecutionContext, JoinNode, Node, NodeConfig
from spark_core.nodes.capabilities import RetryCapability
from spark_core.utils import arun
from tests.engine.conftest import FailingCommit, gstate, stored_run


class Mark(Node):
    """Appends its id to a shared log and adds it to ``inputs['path']``."""

    def __init__(self, name: str, log: List[str]) -> None:
        super().__init__(name=name)
        self.log = log

    async def process(self, context: ExecutionContext) -> Dict[str, Any]:
        self.log.append(self.id)
        return {"path": list(context.inputs.content.get("path", [])) + [self.id]}


class NeedsApproval(Mark):
    """Pauses the run until the state key ``approved`` is true."""

    async def process(self, context: ExecutionContext) -> Dict[str, Any]:
        self.log.append(self.id)
        if not await gstate(context).get("approved", False):
            await gstate(context).set("asked", True)
            raise RunPaused(f"{self.id} waits for approval")
        return {"path": list(context.inputs.content.get("path", [])) + [self.id]}


def build(log: List[str], backend: Optional[StateBackend] = None) -> Graph:
    a, b, c = Mark("a", log), NeedsApproval("b", log), Mark("c", log)
    a >> b >> c
    return Graph(start=a, state_backend=backend)


@pytest.mark.parametrize("durable", [False, True])
def test_pause_then_resume_reruns_only_the_paused_node(
    tmp_path: Path, durable: bool
) -> None:
    log: List[str] = []
    backend = (
        SQLiteStateBackend(tmp_path / "p.db") if durable else InMemoryStateBackend()
    )
    graph = build(log, backend)
    with pytest.raises(RunPaused) as info:
        graph.run_sync(run_id="r")
    assert info.value.run_id == "r"
    record = stored_run(graph, "r")
    assert record["status"] == "paused"
    assert record["frontier"] == [["b", {"path": ["a"]}]]
    # The paused node runs again from its start on resume: its writes are undone.
    assert arun(graph.state.get("asked")) is None
    arun(graph.state.set("approved", True))
    result = graph.resume_sync("r")
    assert result.status == "completed"
    assert result.content == {"path": ["a", "b", "c"]}
    assert log == ["a", "b", "b", "c"]
    assert stored_run(graph, "r")["status"] == "completed"
    assert (
        graph.resume_sync("r").content == result.content
    )  # completed: nothing re-runs
    assert log == ["a", "b", "b", "c"]


def test_resume_in_a_new_process_with_the_sqlite_file(tmp_path: Path) -> None:
    log: List[str] = []
    path = tmp_path / "p.db"
    with pytest.raises(RunPaused):
        build(log, SQLiteStateBackend(path)).run_sync(run_id="r")
    # Another process (the approvals CLI) approves through the backend's public methods.
    SQLiteStateBackend(path).save_state_keys({"approved": True})
    fresh_log: List[str] = []
    graph = build(fresh_log, SQLiteStateBackend(path))  # a new graph object, same nodes
    result = arun(graph.resume("r"))
    assert result.content == {"path": ["a", "b", "c"]}
    assert fresh_log == ["b", "c"]  # "a" was committed and does not run again


def test_fan_out_pause_lets_running_siblings_finish(tmp_path: Path) -> None:
    log: List[str] = []
    start = Mark("start", log)
    join = JoinNode(name="join")
    branches = [Mark("x", log), NeedsApproval("y", log), Mark("z", log)]
    start >> branches
    branches >> join
    graph = Graph(start=start, state_backend=SQLiteStateBackend(tmp_path / "f.db"))
    with pytest.raises(RunPaused):
        graph.run_sync(run_id="f")
    record = stored_run(graph, "f")
    assert record["status"] == "paused"
    assert [entry[0] for entry in record["frontier"]] == ["y"]
    assert set(record["joins"]["join"][0]) == {"x", "z"}
    arun(graph.state.set("approved", True))
    result = graph.resume_sync("f")
    assert set(result.content) == {"x", "y", "z"}
    assert sorted(log) == sorted(["start", "x", "y", "z", "y"])


def test_failed_run_resumes_at_the_failed_node(tmp_path: Path) -> None:
    log: List[str] = []
    attempts = {"n": 0}

    class FailOnce(Mark):
        async def process(self, context: ExecutionContext) -> Dict[str, Any]:
            attempts["n"] += 1
            if attempts["n"] == 1:
                raise ConnectionError("down")
            return await super().process(context)

    a, b, c = Mark("a", log), FailOnce("b", log), Mark("c", log)
    a >> b >> c
    graph = Graph(start=a, state_backend=SQLiteStateBackend(tmp_path / "x.db"))
    with pytest.raises(NodeExecutionError):
        graph.run_sync(run_id="x")
    assert stored_run(graph, "x")["status"] == "failed"
    assert graph.resume_sync("x").content == {"path": ["a", "b", "c"]}
    assert log == ["a", "b", "c"]


def test_resume_in_a_new_process_gives_nodes_their_previous_output(
    tmp_path: Path,
) -> None:
    def build_counter(seen: List[int]) -> Graph:
        class Count(Node):
            async def process(self, context: ExecutionContext) -> Dict[str, Any]:
                n = (context.state.context_snapshot or {"n": 0})["n"] + 1
                seen.append(n)
                if n == 2 and not await gstate(context).get("approved", False):
                    raise RunPaused("wait before the second count")
                return {"n": n}

        count = Count(name="count")
        count.on(expr="$.outputs.n < 3") >> count
        return Graph(start=count, state_backend=SQLiteStateBackend(tmp_path / "c.db"))

    first: List[int] = []
    with pytest.raises(RunPaused):
        build_counter(first).run_sync(run_id="c")
    assert first == [1, 2]
    SQLiteStateBackend(tmp_path / "c.db").save_state_keys({"approved": True})
    again: List[int] = []
    result = build_counter(again).resume_sync("c")  # new node objects
    assert again == [2, 3] and result.content == {"n": 3}


def test_resume_unknown_run() -> None:
    with pytest.raises(RunNotFoundError, match="nope"):
        arun(build([]).resume("nope"))


def test_resume_refuses_a_graph_without_the_stored_nodes(tmp_path: Path) -> None:
    path = tmp_path / "g.db"
    with pytest.raises(RunPaused):
        build([], SQLiteStateBackend(path)).run_sync(run_id="r")
    other = Graph(start=Mark("other", []), state_backend=SQLiteStateBackend(path))
    with pytest.raises(GraphDefinitionError, match="'b'"):
        other.resume_sync("r")


def test_every_step_is_committed_with_its_state(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    seen: List[Dict[str, Any]] = []

    class Step(Node):
        async def process(self, context: ExecutionContext) -> Dict[str, Any]:
            # What another connection sees now = what the previous steps committed.
            seen.append(
                {
                    "state": SQLiteStateBackend(path).load_state(),
                    "record": SQLiteStateBackend(path).load_run("s"),
                }
            )
            await gstate(context).set(self.id, True)
            return {"done": self.id}

    a, b, c = Step(name="a"), Step(name="b"), Step(name="c")
    a >> b >> c
    Graph(start=a, state_backend=SQLiteStateBackend(path)).run_sync(run_id="s")
    assert seen[0]["state"] == {} and seen[0]["record"]["frontier"] == [["a", None]]
    assert seen[1]["state"] == {"a": True}
    assert seen[1]["record"]["outputs"] == {"a": {"done": "a"}}
    assert seen[1]["record"]["frontier"] == [["b", {"done": "a"}]]
    assert seen[2]["state"] == {"a": True, "b": True}
    assert seen[2]["record"]["step"] == 2


def test_a_failing_edge_condition_leaves_the_stored_run_untouched(
    tmp_path: Path,
) -> None:
    log: List[str] = []
    broken = {"on": True}

    def flaky_condition(output: Any) -> bool:
        if broken["on"]:
            raise KeyError("score")
        return True

    q, t1, t2 = Mark("q", log), Mark("t1", log), Mark("t2", log)
    q >> t1
    q.on(flaky_condition) >> t2
    graph = Graph(start=q, state_backend=SQLiteStateBackend(tmp_path / "e.db"))
    with pytest.raises(NodeExecutionError, match="q -> t2") as info:
        graph.run_sync({"path": []}, run_id="e")
    assert info.value.node_id == "q"
    record = stored_run(graph, "e")
    assert record["status"] == "failed"
    assert record["frontier"] == [["q", {"path": []}]]  # q did not complete
    assert record["outputs"] == {}
    assert q.state.context_snapshot is None
    broken["on"] = False
    result = graph.resume_sync("e")
    assert set(result.outputs) == {"q", "t1", "t2"}
    assert sorted(log) == ["q", "q", "t1", "t2"]


@pytest.mark.parametrize("failure", ["disk full", "output not JSON"])
def test_a_failed_commit_keeps_writes_outside_nodes_and_the_committed_position(
    tmp_path: Path, failure: str
) -> None:
    backend = SQLiteStateBackend(tmp_path / "c.db")
    real = backend._conn
    log: List[str] = []

    class Seen(GraphObserver):
        async def on_node_start(self, run: RunInfo, node: Node, context: Any) -> None:
            await run.graph.state.set(f"_spark_seen_{node.id}", True)  # outside nodes

    class Write(Mark):
        fail = True

        async def process(self, context: ExecutionContext) -> Dict[str, Any]:
            output = await super().process(context)
            await gstate(context).set(self.id, True)
            if self.id == "b" and Write.fail:
                Write.fail = False
                if failure == "disk full":  # this step's COMMIT fails
                    backend._conn = FailingCommit(real)  # type: ignore[assignment]
                else:
                    output["obj"] = object()
            return output

    a, b, c = Write("a", log), Write("b", log), Write("c", log)
    a >> b >> c
    graph = Graph(start=a, state_backend=backend, observers=[Seen()])
    with pytest.raises((StateBackendError, StateValidationError)):
        graph.run_sync(run_id="c")
    backend._conn = real
    record = stored_run(graph, "c")
    assert (record["status"], record["step"]) == ("failed", 1)
    assert record["frontier"] == [["b", {"path": ["a"]}]]  # b's step was not committed
    kept = {"_spark_seen_a": True, "a": True, "_spark_seen_b": True}
    assert backend.load_state() == kept
    assert arun(graph.state.snapshot()) == kept
    assert graph.resume_sync("c").content == {"path": ["a", "b", "c"]}
    assert log == ["a", "b", "b", "c"]
    assert backend.load_state() == {
        **kept,
        "b": True,
        "_spark_seen_c": True,
        "c": True,
    }


# ------------------------------------------------------- state writes and their steps
def test_a_running_nodes_writes_are_not_committed_with_a_siblings_step(
    tmp_path: Path,
) -> None:
    path = tmp_path / "w.db"
    seen: Dict[str, Any] = {}

    class X(Node):
        async def process(self, context: ExecutionContext) -> Dict[str, Any]:
            state = gstate(context)
            await state.set("charges", await state.get("charges", 0) + 1)
            seen["own"] = await state.get("charges")  # a node reads its own writes
            other = SQLiteStateBackend(path)
            for _ in range(400):  # until Y's step is committed
                record = other.load_run("w")
                if record is not None and "Y" in record["outputs"]:
                    break
                await asyncio.sleep(0.005)
            # What a kill -9 now would leave behind: Y's step, not X's write.
            seen["state"], seen["run"] = other.load_state(), record
            other.close()
            return {"x": 1}

    class Y(Node):
        async def process(self, context: ExecutionContext) -> Dict[str, Any]:
            seen["sibling"] = await gstate(context).get("charges")  # the live view
            await gstate(context).set("y", True)
            return {"y": 1}

    start = Node(name="start")
    start >> [X(name="X"), Y(name="Y")]
    graph = Graph(start=start, state_backend=SQLiteStateBackend(path))
    graph.run_sync({}, run_id="w")
    assert seen["own"] == 1 and seen["sibling"] == 1
    assert seen["state"] == {"y": True}  # X's write waits for X's step
    assert set(seen["run"]["outputs"]) == {"start", "Y"}
    assert SQLiteStateBackend(path).load_state() == {"y": True, "charges": 1}


class Charge(Node):
    """Adds 1 to ``charges`` (and to the reserved ``_spark_tries``), fails the first time."""

    fail_next = True

    async def process(self, context: ExecutionContext) -> Dict[str, Any]:
        state = gstate(context)
        await state.set("charges", await state.get("charges", 0) + 1)
        await state.set("_spark_tries", await state.get("_spark_tries", 0) + 1)
        if Charge.fail_next:
            Charge.fail_next = False
            raise ConnectionError("card network down")
        return {"charged": True}


@pytest.mark.parametrize("durable", [True, False])
def test_a_failed_nodes_writes_are_dropped_so_resume_does_not_repeat_them(
    tmp_path: Path, durable: bool
) -> None:
    backend: StateBackend = (
        SQLiteStateBackend(tmp_path / "f.db") if durable else InMemoryStateBackend()
    )
    Charge.fail_next = True
    start = Node(name="start")
    start >> Charge(name="charge")
    graph = Graph(start=start, state_backend=backend)
    with pytest.raises(NodeExecutionError, match="card network"):
        graph.run_sync(run_id="f")
    # Library bookkeeping (reserved keys) is kept; the node's own write is not.
    assert backend.load_state() == {"_spark_tries": 1}
    assert arun(graph.state.get("charges")) is None
    assert graph.resume_sync("f").status == "completed"
    assert backend.load_state() == {"charges": 1, "_spark_tries": 2}


@pytest.mark.parametrize("durable", [True, False])
def test_a_paused_nodes_writes_are_undone_so_resume_does_not_repeat_them(
    tmp_path: Path, durable: bool
) -> None:
    from spark_core.governance import (
        ApprovalPendingError,
        PolicyEffect,
        PolicyRule,
        PolicySet,
    )

    def send(msg: str) -> str:
        """Send a message."""
        return "sent"

    class Pay(Node):
        async def process(self, context: ExecutionContext) -> Dict[str, Any]:
            state = gstate(context)
            await state.set("charges", await state.get("charges", 0) + 1)
            return {"reply": await context.call_tool("send", msg="paid")}

    backend: StateBackend = (
        SQLiteStateBackend(tmp_path / "p.db") if durable else InMemoryStateBackend()
    )
    rule = PolicyRule(
        "ask", PolicyEffect.REQUIRE_APPROVAL, ["tool:execute"], ["tool://send"]
    )
    graph = Graph(
        start=Pay(name="pay"),
        tools=[send],
        policy_set=PolicySet("p", [rule]),
        state_backend=backend,
    )
    with pytest.raises(ApprovalPendingError) as pending:
        graph.run_sync(run_id="p")
    assert "charges" not in backend.load_state()
    assert "_spark_approvals" in backend.load_state()  # the library's own keys stay
    arun(graph.approvals.resolve(pending.value.request_id, "approved"))
    assert graph.resume_sync("p").content == {"reply": "sent"}
    assert arun(graph.state.get("charges")) == 1  # one completed execution
    assert backend.load_state()["charges"] == 1


def test_a_graph_run_inside_a_node_keeps_its_state_apart() -> None:
    class Note(GraphObserver):
        async def on_run_start(self, run: RunInfo) -> None:
            await run.graph.state.set("inner_started", True)

    inner = Graph(start=Node(name="inner"), observers=[Note()])

    class Outer(Node):
        async def process(self, context: ExecutionContext) -> Dict[str, Any]:
            await gstate(context).set("outer", 1)
            return (await inner.run({})).content  # type: ignore[no-any-return]

    outer = Graph(start=Outer(name="outer"))
    outer.run_sync()
    assert arun(inner.state.snapshot()) == {"inner_started": True}
    assert arun(outer.state.snapshot()) == {"outer": 1}


@pytest.mark.parametrize("node_kind", ["async", "def"])
def test_an_inner_nodes_write_to_the_outer_state_is_the_outer_nodes(
    node_kind: str,
) -> None:
    holder: Dict[str, Graph] = {}

    class AsyncInner(Node):
        async def process(self, context: ExecutionContext) -> Dict[str, Any]:
            await holder["outer"].state.set("from_inner", 1)
            await gstate(context).set("inner_own", 1)
            return {}

    class SyncInner(Node):
        def process(self, context: ExecutionContext) -> Dict[str, Any]:
            holder["outer"].state.set_sync("from_inner", 1)
            gstate(context).set_sync("inner_own", 1)
            return {}

    inner = Graph(start=(AsyncInner if node_kind == "async" else SyncInner)(name="i"))

    class Outer(Node):
        async def process(self, context: ExecutionContext) -> Dict[str, Any]:
            await inner.run({})
            raise RuntimeError("the outer node fails")

    outer = Graph(start=Outer(name="o"))
    holder["outer"] = outer
    with pytest.raises(NodeExecutionError, match="outer node fails"):
        outer.run_sync()
    assert arun(outer.state.snapshot()) == {}  # dropped with the failed outer node
    assert outer.state.backend.load_state() == {}
    assert arun(inner.state.snapshot()) == {"inner_own": 1}  # the inner node completed


def test_a_retried_attempts_writes_are_undone_before_the_retry() -> None:
    Charge.fail_next = True
    node = Charge(
        name="charge",
        config=NodeConfig(retry=RetryCapability(max_retries=1, initial_delay=0)),
    )
    graph = Graph(start=node)
    result = graph.run_sync()
    assert result.node_results["charge"].attempts == 2
    assert arun(graph.state.get("charges")) == 1


def test_a_checkpoint_taken_mid_run_leaves_out_running_nodes_writes() -> None:
    checkpoints: List[Dict[str, Any]] = []

    class Slow(Node):
        async def process(self, context: ExecutionContext) -> Dict[str, Any]:
            await gstate(context).set("slow", "half done")
            await asyncio.sleep(0.05)
            return {}

    class Snap(Node):
        async def process(self, context: ExecutionContext) -> Dict[str, Any]:
            await gstate(context).set("snap", True)
            assert context.graph is not None
            checkpoints.append(await context.graph.checkpoint_state())
            return {}

    start = Node(name="start")
    start >> [Slow(name="slow"), Snap(name="snap")]
    Graph(start=start).run_sync()
    assert checkpoints[0]["state"] == {}
    assert sorted(e[0] for e in checkpoints[0]["frontier"]) == ["slow", "snap"]


# -------------------------------------------------------------------- checkpoints
def test_checkpoint_and_resume_from_continue_at_the_saved_frontier() -> None:
    log: List[str] = []
    graph = build(log)
    with pytest.raises(RunPaused):
        graph.run_sync()
    checkpoint = arun(graph.checkpoint_state())
    text = json.dumps(checkpoint)  # JSON-serialisable
    assert checkpoint["frontier"] == [["b", {"path": ["a"]}]]
    assert checkpoint["state"] == {}  # the paused node's write is undone
    # ... the application restarts: a new graph, a new in-memory backend ...
    new_log: List[str] = []
    restored = build(new_log)
    checkpoint = json.loads(text)
    checkpoint["state"]["approved"] = True
    result = arun(restored.resume_from(checkpoint))
    assert result.content == {"path": ["a", "b", "c"]}
    assert new_log == ["b", "c"]  # not from the start node
    assert arun(restored.state.get("approved")) is True


def test_resume_from_replaces_the_state_in_one_transaction(tmp_path: Path) -> None:
    graph = build([])
    with pytest.raises(RunPaused):
        graph.run_sync()
    checkpoint = arun(graph.checkpoint_state())
    checkpoint["state"] = {"approved": True}
    backend = SQLiteStateBackend(tmp_path / "r.db")
    backend.save_state_keys({"old": 1, "approved": False})
    restored = build([], backend)
    real = backend._conn
    backend._conn = FailingCommit(real)  # type: ignore[assignment]
    with pytest.raises(StateBackendError, match="disk is full"):
        arun(restored.resume_from(checkpoint))
    backend._conn = real
    assert backend.load_state() == {"old": 1, "approved": False}  # not wiped
    assert arun(restored.resume_from(checkpoint)).content["path"] == ["a", "b", "c"]
    assert backend.load_state() == {"approved": True}
    backend.close()


def test_checkpoint_of_a_completed_run_and_of_a_fresh_graph() -> None:
    log: List[str] = []
    graph = build(log)
    fresh = arun(graph.checkpoint_state())
    assert fresh["frontier"] == [["a", None]] and fresh["status"] == "pending"
    arun(graph.state.set("approved", True))
    done = graph.run_sync()
    checkpoint = arun(graph.checkpoint_state())
    assert checkpoint["status"] == "completed" and checkpoint["frontier"] == []
    new_log: List[str] = []
    again = arun(build(new_log).resume_from(checkpoint))
    assert again.content == done.content and new_log == []
    with pytest.raises(RunPaused):  # a fresh checkpoint's position is the start node
        arun(build(new_log).resume_from(fresh))
    assert new_log == ["a", "b"]


@pytest.mark.parametrize(
    "mutate",
    [
        lambda c: c.update(version=99),
        lambda c: c.update(frontier="nope"),
        lambda c: c.update(frontier=[["ghost", {}]]),
        lambda c: c.update(state={"counter": "x"}),
        lambda c: c.pop("state"),
    ],
)
def test_bad_checkpoints_are_rejected_without_touching_state(mutate: Any) -> None:
    from spark_core.graphs import MissionStateModel

    class S(MissionStateModel):
        counter: int = 0

    log: List[str] = []
    a = Mark("a", log)
    graph = Graph(start=a, state_schema=S)
    checkpoint = arun(graph.checkpoint_state())
    arun(graph.state.set("counter", 7))
    mutate(checkpoint)
    with pytest.raises((StateValidationError, GraphDefinitionError)):
        arun(graph.resume_from(checkpoint))
    assert arun(graph.state.get("counter")) == 7
    assert log == []
    with pytest.raises(StateValidationError):
        arun(graph.resume_from("not a dict"))  # type: ignore[arg-type]


def test_a_released_partial_join_is_not_run_again_on_resume(tmp_path: Path) -> None:
    log: List[str] = []

    class Router(Mark):
        async def process(self, context: ExecutionContext) -> Dict[str, Any]:
            self.log.append(self.id)
            return {"branch": "a"}

    class CountingJoin(JoinNode):
        async def process(self, context: ExecutionContext) -> Dict[str, Any]:
            log.append(self.id)
            return {"parents": sorted(context.inputs.content)}

    router = Router("router", log)
    a, b = Mark("a", log), Mark("b", log)
    join = CountingJoin(name="join")
    router.on(branch="a") >> a
    router.on(branch="b") >> b
    [a, b] >> join
    committed_joins: List[Any] = []

    class Peek(NeedsApproval):
        async def process(self, context: ExecutionContext) -> Dict[str, Any]:
            # What a crash right now would leave behind: the join must not be buffered.
            record = SQLiteStateBackend(tmp_path / "j.db").load_run("j")
            committed_joins.append(record["joins"] if record else None)
            return await super().process(context)

    join >> Peek("c", log)
    graph = Graph(start=router, state_backend=SQLiteStateBackend(tmp_path / "j.db"))
    with pytest.raises(RunPaused):
        graph.run_sync(run_id="j")
    assert committed_joins == [{}]
    assert stored_run(graph, "j")["joins"] == {}
    arun(graph.state.set("approved", True))
    assert graph.resume_sync("j").status == "completed"
    assert log == ["router", "a", "join", "c", "c"]
