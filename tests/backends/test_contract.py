"""The ``StateBackend`` contract: what every backend guarantees, run against each of them.

A new backend proves itself by passing this file (add it to ``BACKENDS`` in conftest.py).
"""

from __future__ import annotations

from typing import Any, Dict

import pytest

from spark_core.errors import RunClaimedError, StateValidationError
from spark_core.graphs.backends import DELETED, StateBackend
from tests.backends.conftest import Opener

# JSON-storing backends refuse what is not JSON data, and then store nothing; the memory
# backend keeps Python objects as they are, so those tests use ``open_durable``.


def _record(run_id: str = "r1", **changes: Any) -> Dict[str, Any]:
    record: Dict[str, Any] = {
        "run_id": run_id,
        "graph_id": "g",
        "status": "running",
        "inputs": {"q": "hé", "n": [1, 2.5, None, True]},
        "frontier": [["a", {"x": 1}]],
        "joins": {"j": [{"p": 1}]},
        "step": 0,
        "last_node": None,
        "error": None,
        "outputs": {},
    }
    record.update(changes)
    return record


# ------------------------------------------------------------------------- state
def test_state_keys_round_trip_exactly(backend: StateBackend) -> None:
    value = {"z": 1, "a": [1, {"nested": "ü"}], "f": 0.1, "none": None}
    backend.save_state_keys({"k": value, "n": 3})
    assert backend.load_state() == {"k": value, "n": 3}
    assert list(backend.load_state()["k"]) == ["z", "a", "f", "none"]  # order kept


def test_load_keys_returns_only_the_keys_that_are_set(backend: StateBackend) -> None:
    backend.save_state_keys({"a": 1, "b": 2, "c": 3})
    assert backend.load_keys(["a", "c", "missing", "a"]) == {"a": 1, "c": 3}
    assert backend.load_keys([]) == {}


def test_deleted_in_save_state_keys_removes_the_key(backend: StateBackend) -> None:
    backend.save_state_keys({"a": 1, "b": 2})
    backend.save_state_keys({"a": DELETED, "c": 3})
    assert backend.load_state() == {"b": 2, "c": 3}


def test_delete_state_keys_ignores_missing_keys(backend: StateBackend) -> None:
    backend.save_state_keys({"a": 1, "b": 2})
    backend.delete_state_keys(["a", "never-set"])
    assert backend.load_state() == {"b": 2}


def test_clear_state_keeps_run_records(backend: StateBackend) -> None:
    backend.save_state_keys({"a": 1})
    backend.save_run(_record())
    backend.clear_state()
    assert backend.load_state() == {}
    assert backend.load_run("r1") is not None


def test_a_bad_value_writes_no_key_of_the_batch(open_durable: Opener) -> None:
    backend = open_durable()
    backend.save_state_keys({"a": 1})
    with pytest.raises(StateValidationError):
        backend.save_state_keys({"a": 2, "bad": object()})
    assert backend.load_state() == {"a": 1}


# ------------------------------------------------------------------ run records
def test_a_run_record_round_trips(backend: StateBackend) -> None:
    record = _record(outputs={"a": {"v": 1}, "b": [1, "x"]}, step=2, last_node="b")
    backend.save_run(record)
    assert backend.load_run("r1") == record


def test_save_run_replaces_the_record_and_its_outputs(backend: StateBackend) -> None:
    backend.save_run(_record(outputs={"a": 1, "b": 2}))
    backend.save_run(_record(status="failed", error="boom", step=1, outputs={"a": 10}))
    stored = backend.load_run("r1")
    assert stored is not None
    assert (stored["status"], stored["error"], stored["step"]) == ("failed", "boom", 1)
    assert stored["outputs"] == {"a": 10}


def test_save_run_without_outputs_keeps_the_stored_ones(backend: StateBackend) -> None:
    backend.save_run(_record(outputs={"a": 1}))
    without = _record(status="completed")
    del without["outputs"]
    backend.save_run(without)
    stored = backend.load_run("r1")
    assert stored is not None
    assert stored["status"] == "completed" and stored["outputs"] == {"a": 1}


def test_save_run_writes_state_changes_with_the_record(backend: StateBackend) -> None:
    backend.save_state_keys({"gone": 1})
    backend.save_run(_record(), {"k": "v", "gone": DELETED})
    assert backend.load_state() == {"k": "v"}


def test_a_loaded_record_is_a_copy(backend: StateBackend) -> None:
    backend.save_run(_record(outputs={"a": 1}))
    loaded = backend.load_run("r1")
    assert loaded is not None
    loaded["status"] = "changed"
    loaded["outputs"]["b"] = 2
    assert backend.load_run("r1") == _record(outputs={"a": 1})


def test_an_unknown_run_loads_as_none(backend: StateBackend) -> None:
    assert backend.load_run("nope") is None


def test_list_runs_summarises_every_run_oldest_first(backend: StateBackend) -> None:
    for run_id in ("r1", "r2", "r3"):
        backend.save_run(_record(run_id, step=int(run_id[1])))
    backend.save_run(
        _record("r1", status="completed", step=5)
    )  # an update keeps its place
    assert backend.list_runs() == [
        {"run_id": "r1", "graph_id": "g", "status": "completed", "step": 5},
        {"run_id": "r2", "graph_id": "g", "status": "running", "step": 2},
        {"run_id": "r3", "graph_id": "g", "status": "running", "step": 3},
    ]


def test_delete_run_forgets_the_run_and_its_outputs(backend: StateBackend) -> None:
    backend.save_run(_record(outputs={"a": 1}))
    backend.save_run(_record("r2"))
    backend.delete_run("r1")
    backend.delete_run("never-stored")
    assert backend.load_run("r1") is None
    assert [r["run_id"] for r in backend.list_runs()] == ["r2"]
    backend.save_run(_record())  # a new run under the old id starts with no outputs
    assert backend.load_run("r1") == _record()


# ------------------------------------------------------------------- commit_step
def test_commit_step_stores_the_step_whole(backend: StateBackend) -> None:
    backend.save_state_keys({"old": 1})
    backend.save_run(_record())
    backend.commit_step(
        "r1", 1, "a", {"v": 1}, [["b", {"v": 1}]], None, {"k": 1, "old": DELETED}, "a"
    )
    stored = backend.load_run("r1")
    assert stored is not None
    assert stored["outputs"] == {"a": {"v": 1}}
    assert stored["frontier"] == [["b", {"v": 1}]]
    assert (stored["step"], stored["last_node"], stored["status"]) == (
        1,
        "a",
        "running",
    )
    assert stored["joins"] == {"j": [{"p": 1}]}  # None: unchanged
    assert backend.load_state() == {"k": 1}


def test_commit_step_updates_joins_and_keeps_last_node_when_none(
    backend: StateBackend,
) -> None:
    backend.save_run(_record(last_node="x"))
    backend.commit_step("r1", 1, "a", 1, [], {"j": []}, None, None)
    backend.commit_step(
        "r1", 2, "a", 2, [], None
    )  # a node that runs twice: last output
    stored = backend.load_run("r1")
    assert stored is not None
    assert stored["joins"] == {"j": []}
    assert stored["last_node"] == "x"
    assert stored["outputs"] == {"a": 2} and stored["step"] == 2


def test_outputs_come_back_in_step_order(backend: StateBackend) -> None:
    backend.save_run(_record())
    for step, node in enumerate(["c", "a", "b"], start=1):
        backend.commit_step("r1", step, node, step, [], None)
    stored = backend.load_run("r1")
    assert stored is not None and list(stored["outputs"]) == ["c", "a", "b"]


@pytest.mark.parametrize(
    "bad",
    [
        {"output": object()},
        {"frontier": [["b", object()]]},
        {"joins": {"j": object()}},
        {"state_changes": {"ok": 1, "bad": {1, 2}}},
    ],
    ids=["output", "frontier", "joins", "state"],
)
def test_a_failing_commit_step_stores_nothing(
    open_durable: Opener, bad: Dict[str, Any]
) -> None:
    backend = open_durable()
    backend.save_state_keys({"ok": 0})
    backend.save_run(_record())
    before = backend.load_run("r1")
    step: Dict[str, Any] = {
        "output": 1,
        "frontier": [],
        "joins": None,
        "state_changes": {"ok": 1},
    }
    step.update(bad)
    with pytest.raises(StateValidationError):
        backend.commit_step("r1", 1, "a", last_node="a", **step)
    assert backend.load_run("r1") == before
    assert open_durable().load_state() == {"ok": 0}


# -------------------------------------------------------------------- durability
def test_the_durable_flag_says_whether_another_handle_sees_commits(
    open_backend: Opener,
) -> None:
    first = open_backend()
    first.save_run(_record())
    first.commit_step("r1", 1, "a", {"v": 1}, [], None, {"k": 1}, "a")
    second = open_backend()
    if first.durable:
        assert second is not first
        first.close()
    stored = second.load_run("r1")
    assert stored is not None and stored["outputs"] == {"a": {"v": 1}}
    assert second.load_state() == {"k": 1}


def test_memory_is_not_durable_and_the_file_and_server_backends_are(
    backend: StateBackend, request: pytest.FixtureRequest
) -> None:
    kind = request.node.callspec.params["open_backend"]
    assert backend.durable is (kind != "memory")


# ------------------------------------------------------------------------ claims
def test_claims_are_reentrant_and_released(open_backend: Opener) -> None:
    backend = open_backend()
    backend.claim_run("r1")
    backend.claim_run("r1")  # the holder may claim again
    backend.release_run("r1")
    backend.release_run("r1")  # releasing twice is harmless
    with backend.claimed("r1"):
        pass


# Claims are exclusive where the backend takes them (PostgreSQL); the others keep the
# default no-op claims, and the graph's own guard runs one run at a time in a process.
EXCLUSIVE_CLAIMS = {"memory": False, "sqlite": False, "postgres": True}


def test_a_second_claimer_is_refused_where_claims_are_taken(
    open_backend: Opener, request: pytest.FixtureRequest
) -> None:
    first, second = open_backend(), open_backend()
    first.claim_run("r1")
    if not EXCLUSIVE_CLAIMS[request.node.callspec.params["open_backend"]]:
        second.claim_run("r1")
        return
    with pytest.raises(RunClaimedError) as caught:
        second.claim_run("r1")
    assert caught.value.run_id == "r1"
    assert caught.value.owner == getattr(first, "owner")
    assert 0 < caught.value.expires_in <= 30
    first.release_run("r1")
    second.claim_run("r1")


def test_a_claim_is_released_when_the_block_raises(open_backend: Opener) -> None:
    first, second = open_backend(), open_backend()
    with pytest.raises(ValueError):
        with first.claimed("r1"):
            raise ValueError("node failed")
    second.claim_run("r1")
