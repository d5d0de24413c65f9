"""The ExperienceStore contract: every store backend passes these tests.

A new backend (PostgreSQL, ...) adds itself to the ``store`` fixture's params.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import pytest

from spark_core.rsi import (
    ExperienceStore,
    ExperienceStoreError,
    NodeAttempt,
    RunRecord,
    SQLiteExperienceStore,
)


@pytest.fixture(params=["sqlite-file", "sqlite-memory"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ExperienceStore]:
    """An initialized, empty store of each kind."""
    path = str(tmp_path / "x.db") if request.param == "sqlite-file" else ":memory:"
    made = SQLiteExperienceStore(path)
    made.initialize()
    made.initialize()  # idempotent
    yield made
    made.close()


def _run(run_id: str, at: float, **kwargs: object) -> RunRecord:
    fields = dict(graph_id="g", graph_version="1", status="completed", started_at=at)
    fields.update(kwargs)
    return RunRecord(run_id=run_id, **fields)  # type: ignore[arg-type]


def test_a_run_round_trips_with_its_attempts(store: ExperienceStore) -> None:
    record = _run(
        "r1",
        5.0,
        inputs={"q": [1, 2]},
        output={"a": "ok"},
        cost_usd=0.5,
        tokens=7,
        score=0.25,
        attempts=[
            NodeAttempt("a", 1, 3.0, "error", "NodeTimeoutError", "late", True, 0.1, 2),
            NodeAttempt("a", 2, 4.0, cost_usd=0.4, tokens=5),
        ],
    )
    store.add_run(record)
    (back,) = store.runs("g")
    assert back == record


def test_runs_are_filtered_and_ordered(store: ExperienceStore) -> None:
    store.add_run(_run("late", 30.0))
    store.add_run(_run("early", 10.0))
    store.add_run(_run("other-version", 20.0, graph_version="2"))
    store.add_run(_run("test-run", 25.0, source="ab_test"))
    store.add_run(_run("other-graph", 20.0, graph_id="h"))
    assert [r.run_id for r in store.runs("g", "1")] == ["early", "test-run", "late"]
    assert [r.run_id for r in store.runs("g", since=15.0, until=26.0)] == [
        "other-version",
        "test-run",
    ]
    assert [r.run_id for r in store.runs("g", sources=["observer"])] == [
        "early",
        "other-version",
        "late",
    ]
    assert [r.run_id for r in store.runs("g", limit=2)] == ["early", "other-version"]


def test_storing_a_run_again_replaces_it_and_its_attempts(
    store: ExperienceStore,
) -> None:
    store.add_run(
        _run("r", 1.0, status="failed", attempts=[NodeAttempt("a"), NodeAttempt("b")])
    )
    store.add_run(_run("r", 1.0, attempts=[NodeAttempt("c")]))
    (back,) = store.runs("g")
    assert back.status == "completed" and [a.node_id for a in back.attempts] == ["c"]


def test_rsi_summaries_newest_first(store: ExperienceStore) -> None:
    first = store.add_rsi_run("g", 1.0, {"status": "no_findings"})
    second = store.add_rsi_run("g", 2.0, {"status": "deployed"})
    store.add_rsi_run("h", 3.0, {"status": "no_winner"})
    assert second > first
    assert [r["summary"]["status"] for r in store.rsi_runs("g")] == [
        "deployed",
        "no_findings",
    ]
    assert len(store.rsi_runs()) == 3 and len(store.rsi_runs(limit=1)) == 1


def test_a_closed_store_refuses_work(store: ExperienceStore) -> None:
    store.close()
    with pytest.raises(ExperienceStoreError):
        store.runs("g")
