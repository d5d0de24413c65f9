"""Governance inside graphs: tool policies, audit, approvals that pause and resume."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any, Dict, List

import pytest

from spark_core.governance import (
    ApprovalAlreadyResolvedError,
    ApprovalPendingError,
    ApprovalStore,
    PolicyEffect,
    PolicyRule,
    PolicySet,
    PolicyViolationError,
)
from spark_core.graphs import Graph, SQLiteStateBackend
from spark_core.nodes import ExecutionContext, Node
from tests.governance import fs_app

ROOT = Path(__file__).resolve().parents[2]


def lines(path: Path) -> List[str]:
    return path.read_text().splitlines() if path.exists() else []


def test_denied_tool_stops_the_run_and_is_audited(tmp_path: Path) -> None:
    graph = fs_app.build(deleter=True)

    async def main() -> Any:
        with pytest.raises(PolicyViolationError) as info:
            await graph.run({"path": str(tmp_path / "x")})
        return info.value, await graph.state.get("_spark_audit")

    err, audit = asyncio.run(main())
    assert err.decision.rule_name == "block_delete"
    assert "denied tool:execute on tool://delete_file" in str(err)
    assert graph.state.backend.load_run(err.run_id)["status"] == "failed"
    tool_records = [r for r in audit if r["action"] == "tool:execute"]
    assert [(r["effect"], r["rule"], r["node_id"]) for r in tool_records] == [
        ("deny", "block_delete", "Deleter")
    ]
    # node:execute fell through to the default ALLOW: not audited (no rule had a say)
    assert [r for r in audit if r["action"] == "node:execute"] == []


def test_node_decisions_made_by_a_rule_are_audited() -> None:
    policy = PolicySet(
        "nodes",
        [PolicyRule("ok", PolicyEffect.ALLOW, ["node:execute"], ["node://plan"])],
    )
    graph = Graph(chain("plan", "report"), policy_set=policy)
    graph.run_sync()
    audit = asyncio.run(graph.state.get("_spark_audit"))
    assert [(r["resource"], r["rule"], r["effect"]) for r in audit] == [
        ("node://plan", "ok", "allow")
    ]


def test_approval_pauses_then_resume_runs_the_call_exactly_once(tmp_path: Path) -> None:
    out = tmp_path / "out.txt"
    graph = fs_app.build()

    async def main() -> None:
        with pytest.raises(ApprovalPendingError) as info:
            await graph.run({"path": str(out)})
        run_id = info.value.run_id
        assert graph.state.backend.load_run(run_id)["status"] == "paused"
        assert lines(out) == []
        [pending] = await graph.approvals.list(status="pending")
        assert pending.id == info.value.request_id
        assert (pending.action, pending.resource) == (
            "tool:execute",
            "tool://write_file",
        )
        assert pending.requester == f"run:{run_id}/node:Writer"
        assert pending.rule == "require_approval_write"
        assert pending.context["arguments"]["content"] == "approved line"
        # resuming before a decision pauses again on the same request
        with pytest.raises(ApprovalPendingError) as again:
            await graph.resume(run_id)
        assert again.value.request_id == pending.id
        resolved = await graph.approvals.resolve(
            pending.id, "approved", reviewer="ana", notes="looks fine"
        )
        assert resolved.status == "approved" and resolved.reviewer == "ana"
        with pytest.raises(ApprovalAlreadyResolvedError):
            await graph.approvals.resolve(pending.id, "rejected", reviewer="bo")
        result = await graph.resume(run_id)
        assert result.status == "completed"
        assert result.content == {"path": str(out), "result": "wrote 13 chars"}
        assert lines(out) == ["approved line"]
        # resuming a completed run does not run anything again
        assert (await graph.resume(run_id)).status == "completed"
        assert lines(out) == ["approved line"]
        [used] = await graph.approvals.list(status="approved")
        assert used.consumed_at is not None

    asyncio.run(main())


def test_rejected_approval_fails_the_resumed_run(tmp_path: Path) -> None:
    out = tmp_path / "out.txt"
    graph = fs_app.build()

    async def main() -> None:
        with pytest.raises(ApprovalPendingError) as info:
            await graph.run({"path": str(out)})
        await graph.approvals.resolve(
            info.value.request_id, "rejected", reviewer="bo", notes="no writes today"
        )
        with pytest.raises(
            PolicyViolationError, match="rejected by bo: no writes today"
        ) as err:
            await graph.resume(info.value.run_id)
        assert err.value.request["id"] == info.value.request_id
        assert lines(out) == []
        # the rejection is final for this run: resuming fails again without asking again
        with pytest.raises(PolicyViolationError, match="rejected by bo") as again:
            await graph.resume(info.value.run_id)
        assert again.value.request["id"] == info.value.request_id
        assert graph.state.backend.load_run(info.value.run_id)["status"] == "failed"
        [request] = await graph.approvals.list()
        assert request.status == "rejected" and lines(out) == []

    asyncio.run(main())


def run_app(*args: str, returncode: int = 0) -> Dict[str, Any]:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.run(
        [sys.executable, "-m", "tests.governance.fs_app", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == returncode, proc.stderr
    if returncode:
        return {}
    return dict(json.loads(proc.stdout.strip().splitlines()[-1]))


def test_approval_across_process_restarts_with_sqlite(tmp_path: Path) -> None:
    db, out = str(tmp_path / "mission.sqlite"), tmp_path / "out.txt"
    first = run_app(db, str(out), "run")
    assert first["status"] == "paused"
    # an operator resolves the request from another process, without the graph (as the CLI)
    store = ApprovalStore.open(db)
    [pending] = store.list_sync(status="pending")
    assert pending.id == first["request_id"] and pending.run_id == first["run_id"]
    store.resolve_sync(pending.id, "approved", reviewer="ops", notes="ok")
    with pytest.raises(ApprovalAlreadyResolvedError):
        store.resolve_sync(pending.id, "approved", reviewer="ops")
    second = run_app(db, str(out), "resume", first["run_id"])
    assert second["status"] == "completed"
    assert lines(out) == ["approved line"]
    third = run_app(db, str(out), "resume", first["run_id"])
    assert third["status"] == "completed" and lines(out) == ["approved line"]


def test_deny_across_process_restarts_with_sqlite(tmp_path: Path) -> None:
    db, target = str(tmp_path / "mission.sqlite"), tmp_path / "keep.txt"
    target.write_text("precious\n")
    first = run_app(db, str(target), "deny")
    assert first["status"] == "violation" and "rule 'block_delete'" in first["message"]
    # a new process resuming the run is denied again; the denied tool never ran
    second = run_app(db, str(target), "resume-deny", first["run_id"])
    assert second["status"] == "violation" and second["run_id"] == first["run_id"]
    assert target.read_text() == "precious\n"
    backend = SQLiteStateBackend(db)
    try:
        stored = backend.load_run(first["run_id"])
        state = backend.load_state()
    finally:
        backend.close()
    assert stored["status"] == "failed"
    assert list(stored["outputs"]) == ["Prepare"]  # committed, not run again on resume
    denials = [r for r in state["_spark_audit"] if r["action"] == "tool:execute"]
    assert [(r["effect"], r["rule"], r["run_id"]) for r in denials] == [
        ("deny", "block_delete", first["run_id"])
    ] * 2
    assert not state.get("_spark_approvals")  # a DENY never asks anyone


def test_a_process_dying_inside_the_approved_call_does_not_run_it_again(
    tmp_path: Path,
) -> None:
    db, out = str(tmp_path / "mission.sqlite"), tmp_path / "out.txt"
    first = run_app(db, str(out), "run")
    ApprovalStore.open(db).resolve_sync(first["request_id"], "approved", reviewer="ops")
    run_app(db, str(out), "crash", first["run_id"], returncode=3)
    assert lines(out) == ["approved line"]
    # the used approval is not used again: the resumed run asks for a fresh one
    again = run_app(db, str(out), "resume", first["run_id"])
    assert again["status"] == "paused" and again["request_id"] != first["request_id"]
    assert lines(out) == ["approved line"]
    [used] = ApprovalStore.open(db).list_sync(status="approved")
    assert used.id == first["request_id"] and used.consumed_at is not None


def test_rejection_across_a_fresh_graph_on_the_same_file(tmp_path: Path) -> None:
    db, out = str(tmp_path / "mission.sqlite"), tmp_path / "out.txt"

    async def main() -> None:
        with pytest.raises(ApprovalPendingError) as info:
            await fs_app.build(SQLiteStateBackend(db)).run({"path": str(out)})
        other = ApprovalStore.from_backend(SQLiteStateBackend(db))
        await other.resolve(info.value.request_id, "rejected", reviewer="sec")
        fresh = fs_app.build(SQLiteStateBackend(db))
        with pytest.raises(PolicyViolationError, match="rejected by sec"):
            await fresh.resume(info.value.run_id)
        assert fresh.state.backend.load_run(info.value.run_id)["status"] == "failed"
        assert lines(out) == []
        audit = await fresh.state.get("_spark_audit")
        assert [
            r.get("approval_status") for r in audit if r["action"] == "tool:execute"
        ] == ["pending", "rejected"]

    asyncio.run(main())


class Step(Node):
    async def process(self, context: ExecutionContext) -> Dict[str, Any]:
        ran = list((context.inputs.content or {}).get("ran", []))
        return {"ran": ran + [self.id]}


def chain(*names: str) -> Node:
    nodes = [Step(name=n) for n in names]
    for a, b in zip(nodes, nodes[1:]):
        a >> b
    return nodes[0]


def test_node_policy_denies_a_node_before_it_runs() -> None:
    policy = PolicySet(
        "nodes",
        [
            PolicyRule(
                "no_launch", PolicyEffect.DENY, ["node:execute"], ["node://launch*"]
            )
        ],
    )
    graph = Graph(chain("plan", "launch_rocket", "report"), policy_set=policy)
    with pytest.raises(PolicyViolationError, match="node://launch_rocket") as info:
        graph.run_sync()
    assert info.value.decision.rule_name == "no_launch"
    assert graph.state.backend.load_run(info.value.run_id)["outputs"].keys() == {"plan"}


def test_node_approval_pauses_and_resumes_the_node() -> None:
    policy = PolicySet(
        "nodes",
        [
            PolicyRule(
                "ask",
                PolicyEffect.REQUIRE_APPROVAL,
                ["node:execute"],
                ["node://deploy"],
            )
        ],
    )
    graph = Graph(chain("build", "deploy", "notify"), policy_set=policy)

    async def main() -> None:
        with pytest.raises(ApprovalPendingError) as info:
            await graph.run()
        [req] = await graph.approvals.list(status="pending")
        assert (req.action, req.resource, req.node_id) == (
            "node:execute",
            "node://deploy",
            "deploy",
        )
        await graph.approvals.resolve(req.id, "approved", reviewer="lead")
        result = await graph.resume(info.value.run_id)
        assert result.status == "completed"
        assert result.content == {"ran": ["build", "deploy", "notify"]}

    asyncio.run(main())


def test_default_deny_policy_needs_explicit_node_rules() -> None:
    policy = PolicySet(
        "strict",
        [
            PolicyRule("nodes_ok", PolicyEffect.ALLOW, ["node:execute"], ["node://*"]),
            PolicyRule(
                "read_ok", PolicyEffect.ALLOW, ["tool:execute"], ["tool://read_file"]
            ),
        ],
        default_effect="deny",
    )

    class Reader(Node):
        async def process(self, context: ExecutionContext) -> Dict[str, Any]:
            text = await context.call_tool("read_file", path=__file__)
            await context.call_tool("write_file", path="/nonexistent", content="x")
            return {"n": len(text)}

    graph = Graph(
        Reader(), tools=[fs_app.read_file, fs_app.write_file], policy_set=policy
    )
    with pytest.raises(
        PolicyViolationError, match="tool://write_file: no rule matched"
    ):
        graph.run_sync()


def test_two_operators_racing_resolve_a_request_once(tmp_path: Path) -> None:
    import multiprocessing

    db = str(tmp_path / "mission.sqlite")
    with pytest.raises(ApprovalPendingError) as info:
        fs_app.build(SQLiteStateBackend(db)).run_sync({"path": str(tmp_path / "o")})
    ctx = multiprocessing.get_context("spawn")
    barrier, results = ctx.Barrier(2), ctx.Queue()
    procs = [
        ctx.Process(
            target=fs_app.resolve_worker,
            args=(db, info.value.request_id, name, barrier, results),
        )
        for name in ("ana", "bo")
    ]
    for p in procs:
        p.start()
    outcomes = sorted(results.get(timeout=60)[1] for _ in procs)
    for p in procs:
        p.join(timeout=60)
    assert outcomes == ["already", "resolved"]
    [req] = ApprovalStore.open(db).list_sync(status="approved")
    assert req.reviewer in ("ana", "bo")


def test_a_running_graph_keeps_resolutions_made_by_another_process(
    tmp_path: Path,
) -> None:
    db, out = str(tmp_path / "mission.sqlite"), tmp_path / "out.txt"

    class Busy(Node):
        """While this run works, an operator approves another run's request."""

        async def process(self, context: ExecutionContext) -> Dict[str, Any]:
            other = context.inputs.content["approve"]
            if other:
                await ApprovalStore.open(db).resolve(other, "approved", reviewer="x")
            await context.call_tool("write_file", path=str(out), content="busy line")
            return {}

    graph = Graph(
        Busy(),
        state_backend=SQLiteStateBackend(db),
        tools=[fs_app.write_file],
        policy_set=fs_app.FS_POLICY,
    )

    async def main() -> None:
        with pytest.raises(ApprovalPendingError) as first:
            await graph.run({"approve": None})
        with pytest.raises(ApprovalPendingError) as second:
            await graph.run({"approve": first.value.request_id})
        statuses = {r.id: r.status for r in await ApprovalStore.open(db).list()}
        assert statuses == {
            first.value.request_id: "approved",
            second.value.request_id: "pending",
        }
        assert (await graph.resume(first.value.run_id)).status == "completed"
        assert lines(out) == ["busy line"]

    asyncio.run(main())


def test_a_resolution_made_while_a_step_is_in_flight_survives_its_commit(
    tmp_path: Path,
) -> None:
    db = str(tmp_path / "mission.sqlite")
    seen: Dict[str, Any] = {}

    @fs_app.tool
    async def act(other: str) -> str:
        """While this approved call runs, an operator (another process) approves ``other``."""
        store = ApprovalStore.open(db)
        mine = [r for r in await store.list(status="approved") if r.id != other]
        seen["consumed_before_the_call"] = [r.consumed_at is not None for r in mine]
        if other:
            await store.resolve(other, "approved", reviewer="ops")
        return "acted"

    class Actor(Node):
        async def process(self, context: ExecutionContext) -> Dict[str, Any]:
            return {"r": await context.call_tool("act", other=context.inputs.content)}

    policy = PolicySet(
        "p",
        [
            PolicyRule(
                "ask", PolicyEffect.REQUIRE_APPROVAL, ["tool:execute"], ["tool://act"]
            )
        ],
    )
    graph = Graph(
        Actor(), state_backend=SQLiteStateBackend(db), tools=[act], policy_set=policy
    )

    async def main() -> None:
        with pytest.raises(ApprovalPendingError) as first:
            await graph.run("")
        with pytest.raises(ApprovalPendingError) as second:
            await graph.run(first.value.request_id)
        await graph.approvals.resolve(second.value.request_id, "approved", reviewer="a")
        assert (await graph.resume(second.value.run_id)).status == "completed"
        # the approval used by the call was stored as used before the call ran (so a crash
        # cannot run it twice), and the operator's resolution made meanwhile was kept
        assert seen["consumed_before_the_call"] == [True]
        stored = {r.id: r.status for r in await ApprovalStore.open(db).list()}
        assert stored[first.value.request_id] == "approved"
        assert (await graph.approvals.get(first.value.request_id)).status == "approved"
        assert (await graph.resume(first.value.run_id)).status == "completed"

    asyncio.run(main())


def test_two_processes_resuming_one_approved_run_run_the_call_once(
    tmp_path: Path,
) -> None:
    import multiprocessing

    db, out = str(tmp_path / "mission.sqlite"), tmp_path / "out.txt"
    with pytest.raises(ApprovalPendingError) as info:
        fs_app.build(SQLiteStateBackend(db)).run_sync({"path": str(out)})
    ApprovalStore.open(db).resolve_sync(info.value.request_id, "approved", reviewer="a")
    ctx = multiprocessing.get_context("spawn")
    entered, went_by, results = ctx.Value("i", 0), ctx.Event(), ctx.Queue()
    procs = [
        ctx.Process(
            target=fs_app.racing_resume_worker,
            args=(db, str(out), info.value.run_id, entered, went_by, results),
        )
        for _ in range(2)
    ]
    for p in procs:
        p.start()
    outcomes = sorted(results.get(timeout=60) for _ in procs)
    for p in procs:
        p.join(timeout=60)
    # whichever process got the approval ran the call; the other asked again
    assert lines(out) == ["approved line"]
    assert outcomes == ["completed", "paused"]


_PROBE_SHARED_LOCK = """
import fcntl, sys
with open(sys.argv[1], "r+b") as fh:
    try:  # SQLite's shared-lock byte range
        fcntl.lockf(fh, fcntl.LOCK_EX | fcntl.LOCK_NB, 510, 0x40000002)
        print("free")
    except OSError:
        print("held")
"""


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX locks")
def test_the_approvals_lock_leaves_sqlites_own_locks_alone(tmp_path: Path) -> None:
    db, out = str(tmp_path / "mission.sqlite"), tmp_path / "out.txt"
    graph = fs_app.build(SQLiteStateBackend(db))

    def sqlite_shared_lock() -> str:
        probe = [sys.executable, "-c", _PROBE_SHARED_LOCK, db]
        return subprocess.run(probe, capture_output=True, text=True).stdout.strip()

    async def main() -> None:
        with pytest.raises(ApprovalPendingError) as info:
            await graph.run({"path": str(out)})
        assert sqlite_shared_lock() == "held"  # the graph's open WAL connection
        await graph.approvals.resolve(info.value.request_id, "approved")
        # closing a descriptor of the database file would have dropped it
        assert sqlite_shared_lock() == "held"
        assert (await graph.resume(info.value.run_id)).status == "completed"

    asyncio.run(main())


def approve_until_done(make: Any, max_rounds: int = 8) -> List[str]:
    """Run, then approve every request and resume (each time on a fresh graph, as a new
    process would) until the run completes; return the approved contents in order."""

    async def main() -> List[str]:
        asked: List[str] = []
        run_id = None
        for _ in range(max_rounds):
            graph = make()
            try:
                if run_id is None:
                    await graph.run(None)
                else:
                    await graph.resume(run_id)
                return asked
            except ApprovalPendingError as exc:
                run_id = exc.run_id
                asked.append(exc.request["context"]["arguments"]["content"])
                await graph.approvals.resolve(exc.request_id, "approved")
        raise AssertionError(f"still asking after {max_rounds} rounds: {asked}")

    return asyncio.run(main())


def writer_graph(db: str, out: Path, contents: List[str], **node_kw: Any) -> Any:
    class Writes(Node):
        async def process(self, context: ExecutionContext) -> Dict[str, Any]:
            results = [
                await context.call_tool("write_file", path=str(out), content=c)
                for c in contents
            ]
            return {"results": results}

    def make() -> Graph:
        return Graph(
            Writes(name="writes", **node_kw),
            state_backend=SQLiteStateBackend(db),
            tools=[fs_app.write_file],
            policy_set=fs_app.FS_POLICY,
        )

    return make


def test_a_node_making_two_approved_calls_runs_each_once(tmp_path: Path) -> None:
    out = tmp_path / "out.txt"
    make = writer_graph(str(tmp_path / "m.sqlite"), out, ["one", "two"])
    assert approve_until_done(make) == ["one", "two"]
    assert lines(out) == ["one", "two"]


def test_the_same_approved_call_made_twice_by_a_node_runs_twice(tmp_path: Path) -> None:
    out = tmp_path / "out.txt"
    make = writer_graph(str(tmp_path / "m.sqlite"), out, ["same", "same"])
    assert approve_until_done(make) == ["same", "same"]
    assert lines(out) == ["same", "same"]


def test_a_retried_node_gets_its_approved_call_back_instead_of_running_it_again(
    tmp_path: Path,
) -> None:
    from spark_core.nodes import NodeConfig
    from spark_core.nodes.capabilities import RetryCapability

    out, failures = tmp_path / "out.txt", []

    class FlakyAfterWriting(Node):
        async def process(self, context: ExecutionContext) -> Dict[str, Any]:
            result = await context.call_tool("write_file", path=str(out), content="x")
            if not failures:
                failures.append(1)
                raise ConnectionError("flaky after the write")
            return {"result": result}

    def make() -> Graph:
        node = FlakyAfterWriting(
            config=NodeConfig(retry=RetryCapability(max_retries=2, initial_delay=0))
        )
        return Graph(
            node,
            state_backend=SQLiteStateBackend(str(tmp_path / "m.sqlite")),
            tools=[fs_app.write_file],
            policy_set=fs_app.FS_POLICY,
        )

    assert approve_until_done(make) == ["x"]
    assert lines(out) == ["x"] and failures == [1]


def test_each_loop_iteration_of_a_node_asks_again(tmp_path: Path) -> None:
    out = tmp_path / "out.txt"

    class Loop(Node):
        async def process(self, context: ExecutionContext) -> Dict[str, Any]:
            n = (context.inputs.content or {}).get("n", 0) + 1
            await context.call_tool("write_file", path=str(out), content="tick")
            return {"n": n}

    def make() -> Graph:
        node = Loop(name="loop")
        node.on(lambda o: o["n"] < 2) >> node
        return Graph(
            node,
            state_backend=SQLiteStateBackend(str(tmp_path / "m.sqlite")),
            tools=[fs_app.write_file],
            policy_set=fs_app.FS_POLICY,
        )

    assert approve_until_done(make) == ["tick", "tick"]
    assert lines(out) == ["tick", "tick"]


def approve_all(make: Any, max_rounds: int = 10) -> List[str]:
    """Like approve_until_done, but return the resources each request was about."""

    async def main() -> List[str]:
        asked: List[str] = []
        run_id = None
        for _ in range(max_rounds):
            graph = make()
            try:
                await (graph.run() if run_id is None else graph.resume(run_id))
                return asked
            except ApprovalPendingError as exc:
                run_id = exc.run_id
                asked.append(exc.request["resource"])
                await graph.approvals.resolve(exc.request_id, "approved")
        raise AssertionError(f"still asking after {max_rounds} rounds: {asked}")

    return asyncio.run(main())


def test_an_approved_node_is_not_asked_again_when_a_later_call_of_it_pauses(
    tmp_path: Path,
) -> None:
    out = tmp_path / "out.txt"
    policy = PolicySet(
        "p",
        [
            PolicyRule(
                "ask_node",
                PolicyEffect.REQUIRE_APPROVAL,
                ["node:execute"],
                ["node://loop"],
            ),
            *fs_app.FS_POLICY.rules,
        ],
    )

    class Loop(Node):
        async def process(self, context: ExecutionContext) -> Dict[str, Any]:
            n = (context.inputs.content or {}).get("n", 0) + 1
            await context.call_tool("write_file", path=str(out), content=f"tick {n}")
            return {"n": n}

    def make() -> Graph:
        node = Loop(name="loop")
        node.on(lambda o: o["n"] < 2) >> node
        return Graph(
            node,
            state_backend=SQLiteStateBackend(str(tmp_path / "m.sqlite")),
            tools=[fs_app.write_file],
            policy_set=policy,
        )

    # once per execution of the node (each loop iteration asks again), never twice
    node, write = "node://loop", "tool://write_file"
    assert approve_all(make) == [node, write, node, write]
    assert lines(out) == ["tick 1", "tick 2"]


def test_a_store_over_an_in_memory_backend_alone_agrees_with_the_graph(
    tmp_path: Path,
) -> None:
    from spark_core.graphs import InMemoryStateBackend

    out, backend = tmp_path / "out.txt", InMemoryStateBackend()
    graph = fs_app.build(backend)

    async def main() -> None:
        with pytest.raises(ApprovalPendingError) as info:
            await graph.run({"path": str(out)})
        alone = ApprovalStore.from_backend(backend)
        [pending] = await alone.list(status="pending")
        await alone.resolve(pending.id, "approved", reviewer="ops")
        assert [r.status for r in await graph.approvals.list()] == ["approved"]
        result = await graph.resume(info.value.run_id)
        assert result.status == "completed" and lines(out) == ["approved line"]
        [used] = await alone.list()
        assert used.consumed_at is not None
        # graph.state agrees with what the graph's store wrote
        assert (await graph.state.get("_spark_approvals"))[used.id]["consumed_at"]

    asyncio.run(main())


@pytest.mark.parametrize(
    ("effect", "outcome"),
    [(PolicyEffect.ALLOW, "completed"), (PolicyEffect.REQUIRE_APPROVAL, "paused")],
)
def test_a_tool_call_inside_the_state_lock_does_not_deadlock(
    effect: PolicyEffect, outcome: str
) -> None:
    from spark_core.governance import tool

    @tool
    def bump(value: int) -> int:
        """Add one."""
        return value + 1

    class Counter(Node):
        async def process(self, context: ExecutionContext) -> Dict[str, Any]:
            async with context.graph_state.lock():  # a read-modify-write through a tool
                value = await context.graph_state.get("value", 0)
                value = await context.call_tool("bump", value=value)
                await context.graph_state.set("value", value)
            return {"value": value}

    policy = PolicySet("p", [PolicyRule("r", effect, ["tool:execute"], ["tool://*"])])
    graph = Graph(Counter(), tools=[bump], policy_set=policy)

    async def main() -> str:
        try:  # the audit record used to wait for the lock the node holds, forever
            await asyncio.wait_for(graph.run(), timeout=10)
        except ApprovalPendingError:
            return "paused"
        return "completed"

    assert asyncio.run(main()) == outcome
    audit = graph.state.get_sync("_spark_audit")
    assert [r["effect"] for r in audit if r["action"] == "tool:execute"] == [
        effect.value
    ]
