"""The experience database: recorded by an observer, imported from telemetry, queried."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from spark_core.graphs import Graph
from spark_core.rsi import (
    ExperienceDatabase,
    ExperienceStoreError,
    RunRecord,
    SQLiteExperienceStore,
)
from spark_core.telemetry import TelemetryConfig, TelemetryManager
from tests.rsi import sample


def test_observer_records_runs_with_attempts_costs_and_scores(
    filled_db: ExperienceDatabase,
) -> None:
    runs = filled_db.query_runs("customer_service_agent", "1.0")
    assert len(runs) == 20
    failed = [r for r in runs if not r.ok]
    assert len(failed) == 10 and all(r.inputs["slow"] for r in failed)
    lookup = [a for a in failed[0].attempts if a.node_id == "lookup"][0]
    assert lookup.status == "error" and lookup.timed_out
    assert lookup.error_kind == "NodeTimeoutError"
    done = [r for r in runs if r.ok][0]
    assert [a.node_id for a in done.attempts] == ["lookup", "answer"]
    assert done.cost_usd == pytest.approx(0.001) and done.tokens >= 10
    assert done.score == 0.0 and done.output["answer"] == "No."
    assert failed[0].score is None and "timed out" in (failed[0].error or "")


def test_queries_filter_by_version_window_and_source(tmp_path: Path) -> None:
    now = [1_000_000.0]
    db = ExperienceDatabase(str(tmp_path / "x.db"), clock=lambda: now[0])
    db.initialize_sync()
    for i, (version, age_h, source) in enumerate(
        [
            ("1.0", 1, "observer"),
            ("1.0", 30, "observer"),
            ("2.0", 1, "observer"),
            ("1.0", 2, "ab_test"),
        ]
    ):
        record = RunRecord(
            f"r{i}", "g", version, "completed", now[0] - age_h * 3600, source=source
        )
        asyncio.run(db.record_run(record))
    assert [r.run_id for r in db.query_runs("g", "1.0")] == ["r1", "r3", "r0"]
    assert [r.run_id for r in db.query_runs("g", "1.0", window_hours=24)] == [
        "r3",
        "r0",
    ]
    recent = db.query_runs("g", window_hours=24, sources=["observer"])
    assert [r.run_id for r in recent] == ["r0", "r2"]
    assert db.query_runs("other") == []


def test_a_run_stored_twice_is_replaced_not_duplicated(
    experience_db: ExperienceDatabase,
) -> None:
    record = RunRecord("same", "g", "1", "failed", 1.0)
    asyncio.run(experience_db.record_run(record))
    record.status = "completed"
    asyncio.run(experience_db.record_run(record))
    assert [r.status for r in experience_db.query_runs("g")] == ["completed"]


def test_secrets_in_inputs_are_not_stored(experience_db: ExperienceDatabase) -> None:
    graph = Graph(sample.Lookup(), observers=[experience_db.observer("g", "1")])
    asyncio.run(graph.run({"question": "q", "api_key": "sk-SECRET-123456789"}))
    (run,) = experience_db.query_runs("g")
    assert "SECRET" not in str(run.inputs) and run.inputs["question"] == "q"


def test_import_from_a_telemetry_database(
    tmp_path: Path, experience_db: ExperienceDatabase
) -> None:
    path = str(tmp_path / "telemetry.db")
    manager = TelemetryManager(
        TelemetryConfig(backend="sqlite", backend_config={"path": path})
    )
    graph = Graph(sample.Lookup(), telemetry=manager, graph_id="lookup-graph")
    for item in sample.inputs(4):
        asyncio.run(graph.run(item))
    manager.close()
    count = experience_db.import_telemetry(path, "lookup-graph", "0.9")
    assert count == 4
    assert experience_db.import_telemetry(path, "lookup-graph", "0.9") == 4  # replaces
    runs = experience_db.query_runs("lookup-graph", "0.9")
    assert len(runs) == 4 and all(r.source == "telemetry" and r.ok for r in runs)
    assert runs[0].cost_usd == pytest.approx(0.001) and runs[0].tokens == 10
    assert [a.node_id for a in runs[0].attempts] == ["Lookup"]


def test_unusable_paths_and_uninitialized_store_raise_typed_errors(
    tmp_path: Path,
) -> None:
    with pytest.raises(ExperienceStoreError, match="does not exist"):
        ExperienceDatabase(str(tmp_path / "missing" / "x.db")).initialize_sync()
    with pytest.raises(ExperienceStoreError, match="initialize"):
        ExperienceDatabase(str(tmp_path / "x.db")).query_runs("g")
    with pytest.raises(ExperienceStoreError, match="no telemetry database"):
        db = ExperienceDatabase(str(tmp_path / "y.db"))
        db.initialize_sync()
        db.import_telemetry(str(tmp_path / "nope.db"), "g", "1")
    with pytest.raises(ExperienceStoreError, match="file path or an ExperienceStore"):
        ExperienceDatabase(42)  # type: ignore[arg-type]


def test_a_failed_write_leaves_nothing_half_written(tmp_path: Path) -> None:
    store = SQLiteExperienceStore(str(tmp_path / "x.db"))
    store.initialize()
    store.add_run(RunRecord("a", "g", "1", "completed", 1.0))
    bad = RunRecord("b", "g", "1", "completed", 2.0, inputs=float("nan"))
    with pytest.raises((ExperienceStoreError, ValueError)):
        store.add_run(bad)
    assert [r.run_id for r in store.runs("g")] == ["a"]
    store.close()


def test_credentials_in_error_texts_are_scrubbed(
    experience_db: ExperienceDatabase,
) -> None:
    from spark_core.nodes import Node

    class Leaky(Node):
        async def process(self, context: object) -> None:
            raise RuntimeError(
                "connect failed: postgresql://ana:hunter2@db/x api_key=sk-123"
            )

    graph = Graph(Leaky(), observers=[experience_db.observer("g", "1")])
    with pytest.raises(Exception):
        asyncio.run(graph.run({}))
    (run,) = experience_db.query_runs("g")
    assert run.status == "failed" and "connect failed" in (run.error or "")
    texts = (run.error or "") + (run.attempts[0].error or "")
    assert "hunter2" not in texts and "sk-123" not in texts
