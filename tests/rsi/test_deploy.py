"""Deploy: new versions written atomically, diffs kept, flows registered, one-call rollback."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Dict, List

import pytest

from spark_core.rsi.deploy import SpecRepository, bump_version, normalize_version
from spark_core.rsi.errors import DeploymentError, RollbackError
from spark_core.rsi.proposals import Proposal
from tests.rsi import sample


class FakeRegistry:
    """Records update_flow calls; fails when told to."""

    def __init__(self, fail: bool = False) -> None:
        self.fail = fail
        self.calls: List[Dict[str, Any]] = []

    def update_flow(
        self, flow_id: str, spec: Dict[str, Any], **kwargs: Any
    ) -> Dict[str, Any]:
        if self.fail:
            raise RuntimeError("flow registry is down")
        self.calls.append({"flow_id": flow_id, "spec": spec, **kwargs})
        return {"flow_id": flow_id}


def _new_version(version: str = "1.1.0"):  # type: ignore[no-untyped-def]
    proposal = Proposal.from_dict(
        {"kind": "timeout", "target": "lookup", "change": {"timeout_seconds": 1.2}}
    )
    data = proposal.apply(sample.mission()).to_dict()
    data["version"] = version
    return type(sample.mission()).from_dict(data)


def test_versions_bump_semantically() -> None:
    assert normalize_version("1.0") == "1.0.0" and normalize_version("2") == "2.0.0"
    assert bump_version("1.0") == "1.1.0"
    assert bump_version("1.4.2-rc.1", "patch") == "1.4.3"
    assert bump_version("1.4.2", "major") == "2.0.0"
    with pytest.raises(DeploymentError, match="not a semantic version"):
        normalize_version("v1")


def test_deploy_writes_a_new_version_with_its_diff_and_rollback_restores(
    tmp_path: Path,
) -> None:
    repo = SpecRepository(tmp_path / "repo", clock=lambda: 100.0)
    repo.ensure_baseline(sample.mission())
    assert repo.ensure_baseline(sample.mission()) is None  # once only
    registry = FakeRegistry()
    record = repo.deploy(_new_version(), proposal_id="p1", registry=registry)
    assert (record.action, record.version, record.previous_version) == (
        "deploy",
        "1.1.0",
        "1.0.0",
    )
    assert (
        record.registered and registry.calls[0]["flow_id"] == "customer_service_agent"
    )
    assert (
        registry.calls[0]["spec"]["nodes"][0]["config"]["timeout"]["timeout_seconds"]
        == 1.2
    )
    assert '~ version: "1.0.0" -> "1.1.0"' in record.diff
    assert (
        "~ graph.nodes[id=lookup].config.timeout.timeout_seconds: 0.3 -> 1.2"
        in record.diff
    )
    assert repo.current_version("customer_service_agent") == "1.1.0"
    stored = json.loads(Path(record.path).read_text())
    assert stored["version"] == "1.1.0"

    back = repo.rollback("customer_service_agent", registry=registry)
    assert (back.action, back.version, back.previous_version) == (
        "rollback",
        "1.0.0",
        "1.1.0",
    )
    assert repo.load("customer_service_agent").to_dict() == sample.mission().to_dict()
    assert (
        registry.calls[-1]["spec"]["nodes"][0]["config"]["timeout"]["timeout_seconds"]
        == 0.3
    )
    with pytest.raises(RollbackError, match="no earlier version"):
        repo.rollback("customer_service_agent")
    assert [r.action for r in repo.history("customer_service_agent")] == [
        "init",
        "deploy",
        "rollback",
    ]
    assert repo.missions() == ["customer_service_agent"]


def test_a_failed_registration_changes_nothing(tmp_path: Path) -> None:
    repo = SpecRepository(tmp_path)
    repo.ensure_baseline(sample.mission())
    with pytest.raises(DeploymentError, match="flow registry is down"):
        repo.deploy(_new_version(), registry=FakeRegistry(fail=True))
    assert repo.current_version("customer_service_agent") == "1.0.0"
    with pytest.raises(DeploymentError, match="no update_flow"):
        repo.deploy(_new_version(), registry=object())


def test_published_versions_are_never_overwritten(tmp_path: Path) -> None:
    repo = SpecRepository(tmp_path)
    with pytest.raises(DeploymentError, match="ensure_baseline"):
        repo.deploy(_new_version())
    repo.ensure_baseline(sample.mission())
    repo.deploy(_new_version())
    with pytest.raises(DeploymentError, match="already exists"):
        repo.deploy(_new_version())
    with pytest.raises(DeploymentError, match="no version 9.9.9"):
        repo.load("customer_service_agent", "9.9.9")
    with pytest.raises(DeploymentError, match="invalid mission id"):
        repo.history("../escape")
    leftovers = [p.name for p in tmp_path.rglob(".*.tmp")]
    assert leftovers == []


def test_deploy_and_rollback_replace_a_local_spine_flow(tmp_path: Path) -> None:
    from ai_spine import ExecutionError, LocalSpine
    from spark_core.spec.deploy import flow_payload

    spine = LocalSpine(allow_modules=["tests.rsi"])
    payload = flow_payload(sample.mission())
    spine.register_flow(payload["flow_id"], payload["spec"])

    def slow_request_status() -> str:
        run = spine.execute_flow(
            "customer_service_agent", {"question": "q", "slow": True}
        )
        try:
            done = spine.wait_for_execution(run["execution_id"], timeout=10)
        except ExecutionError:
            return "failed"
        return str(done["status"])

    try:
        assert slow_request_status() == "failed"  # 0.3 s timeout
        repo = SpecRepository(tmp_path)
        repo.ensure_baseline(sample.mission())
        assert repo.deploy(_new_version(), registry=spine).registered
        assert slow_request_status() == "completed"  # 1.2 s timeout
        repo.rollback("customer_service_agent", registry=spine)
        assert slow_request_status() == "failed"
    finally:
        spine.close()
