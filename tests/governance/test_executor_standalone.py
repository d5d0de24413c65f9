"""ToolExecutor and ApprovalStore used without a graph (as agents may)."""

from __future__ import annotations

import asyncio
from typing import Any, Dict

import pytest

from spark_core.errors import RunPaused
from spark_core.governance import (
    ApprovalAlreadyResolvedError,
    ApprovalNotFoundError,
    ApprovalPendingError,
    PolicyEffect,
    PolicyRule,
    PolicySet,
    PolicyViolationError,
    ToolArgumentError,
    ToolError,
    ToolNotFoundError,
    tool,
)
from spark_core.governance.approvals import (
    ApprovalError,
    ApprovalRequest,
    ApprovalStore,
    _DictState,
)
from spark_core.governance.executor import AUDIT_KEY, ToolExecutor

CALLS: Dict[str, int] = {}


@tool
def read_file(path: str) -> str:
    """Read a file."""
    CALLS["read_file"] = CALLS.get("read_file", 0) + 1
    return f"contents of {path}"


@tool
def write_file(path: str, content: str) -> str:
    """Write a file."""
    CALLS["write_file"] = CALLS.get("write_file", 0) + 1
    return f"wrote {path}"


@tool
def delete_file(path: str) -> str:
    """Delete a file."""
    CALLS["delete_file"] = CALLS.get("delete_file", 0) + 1
    return "deleted"


@tool(metadata={"risk_tier": "high"})
def wire_money(amount: float) -> str:
    """Send money."""
    return "sent"


POLICY = PolicySet(
    "fs_safety",
    [
        PolicyRule(
            "block_delete", PolicyEffect.DENY, ["tool:execute"], ["tool://delete_file"]
        ),
        PolicyRule(
            "ask_write",
            PolicyEffect.REQUIRE_APPROVAL,
            ["tool:execute"],
            ["tool://write_file"],
        ),
        PolicyRule(
            "ask_high_risk",
            PolicyEffect.REQUIRE_APPROVAL,
            ["tool:execute"],
            ["*"],
            conditions={"risk_tier": "high"},
        ),
    ],
)


@pytest.fixture(autouse=True)
def _reset_calls() -> None:
    CALLS.clear()


def run(coro: Any) -> Any:
    return asyncio.run(coro)


def test_allowed_call_returns_the_tool_result() -> None:
    ex = ToolExecutor([read_file, write_file, delete_file], POLICY)
    assert run(ex.call("read_file", {"path": "a.txt"})) == "contents of a.txt"


def test_denied_call_raises_with_the_decision_and_does_not_run() -> None:
    ex = ToolExecutor([delete_file], POLICY)
    with pytest.raises(PolicyViolationError) as info:
        run(ex.call("delete_file", {"path": "a"}))
    assert (
        info.value.decision is not None
        and info.value.decision.rule_name == "block_delete"
    )
    assert CALLS == {}


def test_approval_flow_without_a_graph_runs_the_call_once() -> None:
    ex = ToolExecutor([write_file], POLICY)

    async def main() -> None:
        with pytest.raises(ApprovalPendingError) as info:
            await ex.call("write_file", {"path": "a", "content": "x"})
        assert isinstance(info.value, RunPaused)
        rid = info.value.request_id
        # asking again before a decision points at the same request
        with pytest.raises(ApprovalPendingError) as again:
            await ex.call("write_file", {"path": "a", "content": "x"})
        assert again.value.request_id == rid
        pending = await ex.approvals.list(status="pending")
        assert [r.id for r in pending] == [rid]
        assert pending[0].context == {
            "tool": "write_file",
            "arguments": {"path": "a", "content": "x"},
        }
        await ex.approvals.resolve(rid, "approved", reviewer="ana", notes="fine")
        assert await ex.call("write_file", {"path": "a", "content": "x"}) == "wrote a"
        assert CALLS == {"write_file": 1}
        # the approval is used up: the same call asks again
        with pytest.raises(ApprovalPendingError) as third:
            await ex.call("write_file", {"path": "a", "content": "x"})
        assert third.value.request_id != rid

    run(main())


def test_rejected_request_raises_policy_violation() -> None:
    ex = ToolExecutor([write_file], POLICY)

    async def main() -> None:
        with pytest.raises(ApprovalPendingError) as info:
            await ex.call("write_file", {"path": "a", "content": "x"})
        await ex.approvals.resolve(
            info.value.request_id, "rejected", reviewer="bo", notes="not today"
        )
        with pytest.raises(
            PolicyViolationError, match="rejected by bo: not today"
        ) as err:
            await ex.call("write_file", {"path": "a", "content": "x"})
        assert (
            err.value.request is not None and err.value.request["status"] == "rejected"
        )
        assert CALLS == {}

    run(main())


def test_different_arguments_need_their_own_approval() -> None:
    ex = ToolExecutor([write_file], POLICY)

    async def main() -> None:
        with pytest.raises(ApprovalPendingError) as info:
            await ex.call("write_file", {"path": "a", "content": "x"})
        await ex.approvals.resolve(info.value.request_id, "approved")
        with pytest.raises(ApprovalPendingError):
            await ex.call("write_file", {"path": "b", "content": "x"})
        assert CALLS == {}

    run(main())


def test_tool_metadata_is_visible_to_conditions() -> None:
    ex = ToolExecutor([wire_money], POLICY)
    with pytest.raises(ApprovalPendingError):
        run(ex.call("wire_money", {"amount": 10.0}))


def test_a_callers_context_cannot_override_the_tools_declared_metadata() -> None:
    ex = ToolExecutor([wire_money], POLICY)
    with pytest.raises(ApprovalPendingError):
        run(ex.call("wire_money", {"amount": 10.0}, {"risk_tier": "low"}))
    with pytest.raises(ApprovalPendingError):  # nor the tool's name or arguments
        run(ex.call("wire_money", {"amount": 10.0}, {"tool": "read_file"}))


def test_mapping_context_adds_policy_attributes() -> None:
    policy = PolicySet(
        "p",
        [
            PolicyRule(
                "prod", PolicyEffect.DENY, ["*"], ["*"], conditions={"env": "prod"}
            )
        ],
    )
    ex = ToolExecutor([read_file], policy)
    assert run(ex.call("read_file", {"path": "a"}, {"env": "dev"})) == "contents of a"
    with pytest.raises(PolicyViolationError):
        run(ex.call("read_file", {"path": "a"}, {"env": "prod"}))


def test_audit_trail_records_every_decision() -> None:
    ex = ToolExecutor([read_file, delete_file], POLICY, audit_limit=2)

    async def main() -> list:
        await ex.call("read_file", {"path": "a"})
        with pytest.raises(PolicyViolationError):
            await ex.call("delete_file", {"path": "a"})
        await ex.call("read_file", {"path": "b"})
        return list(await ex._local_state.get(AUDIT_KEY))

    trail = run(main())
    assert [(r["effect"], r["resource"]) for r in trail] == [
        ("deny", "tool://delete_file"),
        ("allow", "tool://read_file"),
    ]
    assert trail[0]["rule"] == "block_delete" and trail[0]["policy"] == "fs_safety"


def test_unknown_tool_and_bad_arguments() -> None:
    ex = ToolExecutor([read_file], POLICY)
    with pytest.raises(
        ToolNotFoundError,
        match=r"unknown tool 'nope'; registered tools: \['read_file'\]",
    ):
        run(ex.call("nope", {}))
    with pytest.raises(ToolArgumentError, match="missing required"):
        run(ex.call("read_file", {}))


def test_executor_without_policy_just_runs_and_lists_schemas() -> None:
    ex = ToolExecutor([read_file, lambda_tool()])
    assert run(ex.call("read_file", {"path": "z"})) == "contents of z"
    assert [s["name"] for s in ex.schemas()] == ["read_file", "shout"]
    with pytest.raises(ToolError, match="duplicate tool name"):
        ex.register(read_file)


def lambda_tool() -> Any:
    def shout(text: str) -> str:
        """Shout."""
        return text.upper()

    return shout


def test_secrets_in_arguments_are_redacted_in_the_request() -> None:
    @tool
    def call_api(url: str, api_key: str) -> str:
        """Call."""
        return "ok"

    policy = PolicySet(
        "p", [PolicyRule("ask", PolicyEffect.REQUIRE_APPROVAL, ["*"], ["*"])]
    )
    ex = ToolExecutor([call_api], policy)
    with pytest.raises(ApprovalPendingError) as info:
        run(
            ex.call(
                "call_api", {"url": "https://x", "api_key": "sk-live-abcdef1234567890"}
            )
        )
    assert info.value.request["context"]["arguments"]["api_key"] == "[REDACTED]"
    assert "sk-live" not in str(info.value) and "sk-live" not in repr(
        info.value.request
    )


def test_store_resolve_rules() -> None:
    store = ApprovalStore(_DictState())

    async def main() -> None:
        req = await store.create(ApprovalRequest(id="apr-1", action="a", resource="r"))
        assert (await store.get("apr-1")).status == "pending"
        with pytest.raises(ApprovalError, match="must be 'approved' or 'rejected'"):
            await store.resolve(req.id, "maybe")
        with pytest.raises(ApprovalNotFoundError, match="apr-404"):
            await store.resolve("apr-404", "approved")
        done = await store.resolve(req.id, "approved", reviewer="ana", notes="n")
        assert (done.status, done.reviewer, done.notes) == ("approved", "ana", "n")
        assert done.resolved_at is not None
        with pytest.raises(ApprovalAlreadyResolvedError, match="already approved"):
            await store.resolve(req.id, "rejected")
        assert [r.id for r in await store.list(status="approved")] == ["apr-1"]
        assert await store.list(status="pending") == []
        with pytest.raises(ApprovalError, match="unknown approval status"):
            await store.list(status="done")
        assert await store.consume("apr-1") is True
        assert await store.consume("apr-1") is False

    run(main())


def test_store_from_backend_requires_the_backend_methods() -> None:
    with pytest.raises(ApprovalError, match="has no load_keys"):
        ApprovalStore.from_backend(object())
    with pytest.raises(ApprovalError, match="state file not found"):
        ApprovalStore.open("/nonexistent/dir/state.sqlite")


def test_a_store_over_a_backend_reads_only_the_approvals_key() -> None:
    from spark_core.graphs import InMemoryStateBackend

    class KeysOnly(InMemoryStateBackend):
        def load_state(self) -> Dict[str, Any]:
            raise AssertionError("the whole state was read")

    store = ApprovalStore.from_backend(KeysOnly({"big": ["x"] * 10_000}))

    async def main() -> None:
        req = ApprovalRequest(id="apr-1", action="a", resource="r", fingerprint="f")
        await store.create(req)
        assert (await store.latest("f")) == req
        await store.resolve("apr-1", "approved")
        assert await store.consume("apr-1") is True
        assert await store.record_result("apr-1", 42) is True
        replayed = await store.replay("f")
        assert replayed is not None and replayed.result == 42
        assert [r.id for r in await store.list(status="approved")] == ["apr-1"]

    run(main())


def test_a_store_over_a_state_file_works_in_one_event_loop_after_another(
    tmp_path: Any,
) -> None:
    from spark_core.graphs import SQLiteStateBackend

    path = str(tmp_path / "state.sqlite")
    SQLiteStateBackend(path).close()
    store = ApprovalStore.open(path)

    async def two_at_once(n: int) -> None:  # the second waits for the store's lock
        await asyncio.gather(
            *(store.create(ApprovalRequest(f"apr-{n}{i}", "a", "r")) for i in (1, 2))
        )

    asyncio.run(two_at_once(1))
    asyncio.run(two_at_once(2))  # a lock of the first loop failed in this one
    assert sorted(r.id for r in store.list_sync()) == [
        "apr-11",
        "apr-12",
        "apr-21",
        "apr-22",
    ]
