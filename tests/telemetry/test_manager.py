"""TelemetryManager: traces, nested spans, events, sampling, batching and queries."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import time
from pathlib import Path
from typing import Any, Callable, List

import pytest

from spark_core.telemetry import (
    TelemetryConfig,
    TelemetryConfigError,
    TelemetryManager,
)


def test_seed_snippet_records_trace_span_and_event(manager: TelemetryManager) -> None:
    async def my_task() -> str:
        trace = manager.start_trace("my_workflow")
        async with manager.start_span("step_1", trace.trace_id) as span:
            span.set_attribute("user_id", "123")
            manager.record_event("process_started", trace_id=trace.trace_id)
        manager.end_trace(trace.trace_id)
        await manager.flush()
        return trace.trace_id

    trace_id = asyncio.run(my_task())
    [trace] = manager.query_traces(name="my_workflow")
    assert trace["trace_id"] == trace_id and trace["status"] == "ok"
    assert trace["duration_ms"] >= 0
    [span] = manager.query_spans(trace_id=trace_id)
    assert (
        span["name"] == "step_1"
        and span["status"] == "ok"
        and span["parent_id"] is None
    )
    assert span["attributes"] == {"user_id": "123"}
    [event] = manager.query_events(trace_id=trace_id)
    assert event["name"] == "process_started" and event["span_id"] == span["span_id"]


def test_spans_nest_through_parent_ids(manager: TelemetryManager) -> None:
    async def work() -> str:
        trace = manager.start_trace("nested")
        async with manager.start_span("outer", trace.trace_id) as outer:
            async with manager.start_span("inner") as inner:
                with manager.start_span("innermost"):
                    pass
            assert inner.parent_id == outer.span_id
        manager.end_trace(trace.trace_id)
        return trace.trace_id

    trace_id = asyncio.run(work())
    spans = {s["name"]: s for s in manager.query_spans(trace_id=trace_id)}
    assert spans["outer"]["parent_id"] is None
    assert spans["inner"]["parent_id"] == spans["outer"]["span_id"]
    assert spans["innermost"]["parent_id"] == spans["inner"]["span_id"]


def test_concurrent_tasks_keep_their_own_parents(
    memory_manager: TelemetryManager,
) -> None:
    m = memory_manager

    async def branch(name: str, trace_id: str) -> None:
        async with m.start_span(name, trace_id):
            await asyncio.sleep(0)
            async with m.start_span(name + ".child"):
                await asyncio.sleep(0)

    async def main() -> str:
        trace = m.start_trace("fan")
        await asyncio.gather(*(branch(f"b{i}", trace.trace_id) for i in range(5)))
        m.end_trace(trace.trace_id)
        return trace.trace_id

    trace_id = asyncio.run(main())
    spans = {s["name"]: s for s in m.query_spans(trace_id=trace_id)}
    for i in range(5):
        assert spans[f"b{i}.child"]["parent_id"] == spans[f"b{i}"]["span_id"]


def test_exception_marks_span_as_error_and_propagates(
    manager: TelemetryManager,
) -> None:
    async def fail() -> None:
        trace = manager.start_trace("t")
        try:
            async with manager.start_span("boom", trace.trace_id):
                raise ValueError("bad input with Bearer abcdefghijklmnop")
        finally:
            manager.end_trace(trace.trace_id, status="error")

    with pytest.raises(ValueError):
        asyncio.run(fail())
    [span] = manager.query_spans(name="boom")
    assert span["status"] == "error"
    assert span["error"].startswith("ValueError: bad input")
    assert "abcdefghijklmnop" not in span["error"]
    assert manager.query_traces(status="error")[0]["name"] == "t"


def test_span_without_a_trace_gets_its_own(memory_manager: TelemetryManager) -> None:
    with memory_manager.start_span("lonely") as span:
        pass
    [trace] = memory_manager.query_traces()
    assert trace["trace_id"] == span.trace_id and trace["name"] == "lonely"


def test_attributes_are_redacted(manager: TelemetryManager) -> None:
    trace = manager.start_trace("t", attributes={"api_key": "sk-abc", "user": "u"})
    with manager.start_span("s", trace.trace_id, attributes={"password": "p"}) as span:
        span.set_attribute("Authorization", "Bearer xyz")
        span.set_attribute("tokens", 12)
    manager.record_event(
        "e", trace_id=trace.trace_id, attributes={"client_secret": "c"}
    )
    manager.end_trace(trace.trace_id)
    assert manager.query_traces()[0]["attributes"] == {
        "api_key": "[REDACTED]",
        "user": "u",
    }
    assert manager.query_spans()[0]["attributes"] == {
        "password": "[REDACTED]",
        "Authorization": "[REDACTED]",
        "tokens": 12,
    }
    assert manager.query_events()[0]["attributes"] == {"client_secret": "[REDACTED]"}


def test_sampling_zero_records_nothing_and_one_records_all() -> None:
    off = TelemetryManager(TelemetryConfig(sampling_rate=0.0))
    on = TelemetryManager(TelemetryConfig(sampling_rate=1.0))
    for m in (off, on):
        for _ in range(20):
            trace = m.start_trace("t")
            with m.start_span("s", trace.trace_id):
                m.record_event("e", trace_id=trace.trace_id)
            m.end_trace(trace.trace_id)
    assert (
        off.query_traces() == []
        and off.query_spans() == []
        and off.query_events() == []
    )
    assert len(on.query_traces()) == 20 and len(on.query_spans()) == 20


def test_sampling_is_per_trace_and_roughly_the_rate() -> None:
    m = TelemetryManager(TelemetryConfig(sampling_rate=0.5))
    m._rng.seed(1234)  # pin the coin
    sampled = 0
    for _ in range(400):
        trace = m.start_trace("t")
        with m.start_span("a", trace.trace_id):
            pass
        with m.start_span("b", trace.trace_id):
            pass
        sampled += trace.sampled
        m.end_trace(trace.trace_id)
    traces = m.query_traces()
    assert len(traces) == sampled and 140 < sampled < 260
    # whole traces are kept or dropped: never a trace with one span of two
    assert len(m.query_spans()) == 2 * sampled


def test_disabled_manager_records_nothing() -> None:
    m = TelemetryManager(TelemetryConfig(enabled=False))
    trace = m.start_trace("t")
    with m.start_span("s", trace.trace_id):
        pass
    assert m.record_event("e", trace_id=trace.trace_id) is None
    m.end_trace(trace.trace_id)
    assert m.query_traces() == [] and m.query_spans() == []


def rows(path: Path, sql: str) -> List[Any]:
    """Query the telemetry file on a connection of its own (closed afterwards)."""
    with contextlib.closing(sqlite3.connect(path)) as conn:
        return conn.execute(sql).fetchall()


def wait_until(condition: Callable[[], bool], timeout: float = 30.0) -> bool:
    """Poll ``condition`` until it holds; False after a generous ``timeout``."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def test_sqlite_writes_in_batches_off_the_calling_thread(tmp_path: Path) -> None:
    path = tmp_path / "t.db"
    m = TelemetryManager(
        TelemetryConfig(
            backend="sqlite",
            backend_config={"path": str(path)},
            buffer_size=5,
            export_interval=60,
        )
    )
    try:
        trace = m.start_trace("batch")
        for i in range(3):
            m.record_event(f"e{i}", trace_id=trace.trace_id)
        # below buffer_size: nothing handed to the backend yet
        assert rows(path, "SELECT COUNT(*) FROM events") == [(0,)]
        assert len(m._pending) == 3
        for i in range(3, 5):
            m.record_event(f"e{i}", trace_id=trace.trace_id)
        assert m._pending == []  # a full batch went to the writer thread
        asyncio.run(m.flush())
        assert rows(path, "SELECT COUNT(*) FROM events") == [(5,)]
        assert m._writer is not None and m._writer.name == "spark-telemetry-writer"
    finally:
        m.close()


def test_export_interval_writes_a_partial_batch(tmp_path: Path) -> None:
    path = tmp_path / "t.db"
    m = TelemetryManager(
        TelemetryConfig(
            backend="sqlite",
            backend_config={"path": str(path)},
            buffer_size=1000,
            export_interval=0.05,
        )
    )
    try:
        m.record_event("late")  # no full batch, no flush: only the interval writes it
        assert wait_until(lambda: rows(path, "SELECT name FROM events") == [("late",)])
    finally:
        m.close()
    assert rows(path, "SELECT name FROM events") == [("late",)]


def test_data_survives_in_the_sqlite_file(tmp_path: Path) -> None:
    config = TelemetryConfig(
        backend="sqlite", backend_config={"path": str(tmp_path / "t.db")}
    )
    m = TelemetryManager(config)
    trace = m.start_trace("persisted")
    m.end_trace(trace.trace_id)
    m.close()
    again = TelemetryManager(config)
    try:
        assert [t["name"] for t in again.query_traces()] == ["persisted"]
    finally:
        again.close()


def test_slowest_nodes_and_error_rates(manager: TelemetryManager) -> None:
    def node_span(i: int, name: str, ms: float, status: str) -> tuple:
        return (
            "span",
            {
                "span_id": f"s{i}",
                "trace_id": "t1",
                "parent_id": None,
                "name": name,
                "kind": "node",
                "start_time": float(i),
                "end_time": float(i) + 1,
                "duration_ms": ms,
                "status": status,
                "error": None,
                "attributes": {},
            },
        )

    manager.backend.write(
        [
            node_span(1, "a", 5.0, "ok"),
            node_span(2, "a", 15.0, "error"),
            node_span(3, "b", 30.0, "ok"),
            node_span(4, "c", 1.0, "error"),
        ]
    )
    assert [r["name"] for r in manager.query_spans(kind="node")] == ["a", "a", "b", "c"]
    rates = manager.error_rates()
    assert rates["a"] == {"attempts": 2, "errors": 1, "error_rate": 0.5}
    assert rates["b"]["error_rate"] == 0.0 and rates["c"]["error_rate"] == 1.0
    slow = manager.slowest_nodes(limit=2)
    assert [(r["name"], r["count"], r["avg_ms"], r["max_ms"]) for r in slow] == [
        ("b", 1, 30.0, 30.0),
        ("a", 2, 10.0, 15.0),
    ]
    assert manager.slowest_nodes(trace_id="other") == []


def test_get_instance_is_shared_and_independent_managers_are_not() -> None:
    TelemetryManager.reset_instance()
    try:
        a = TelemetryManager.get_instance()
        assert TelemetryManager.get_instance() is a
        assert TelemetryManager(TelemetryConfig()) is not a
        b = TelemetryManager.get_instance(TelemetryConfig(sampling_rate=0.5))
        assert b is not a and TelemetryManager.get_instance() is b
    finally:
        TelemetryManager.reset_instance()


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"backend": "postgres"}, "unknown telemetry backend"),
        ({"backend": "sqlite"}, "needs backend_config"),
        ({"sampling_rate": 1.5}, "sampling_rate"),
        ({"buffer_size": 0}, "buffer_size"),
        ({"export_interval": 0}, "export_interval"),
        ({"redact_keys": "token"}, "redact_keys"),
    ],
)
def test_invalid_config(kwargs: dict, message: str) -> None:
    with pytest.raises(TelemetryConfigError, match=message):
        TelemetryConfig(**kwargs)


def test_config_from_dict_accepts_db_path(tmp_path: Path) -> None:
    cfg = TelemetryConfig.from_dict(
        {
            "enabled": True,
            "backend": "sqlite",
            "db_path": str(tmp_path / "x.db"),
            "sampling_rate": 1.0,
        }
    )
    assert cfg.backend_config == {"path": str(tmp_path / "x.db")}
    with pytest.raises(TelemetryConfigError, match="unknown telemetry setting"):
        TelemetryConfig.from_dict({"colour": "red"})


def test_sqlite_path_in_missing_directory_is_a_clear_error(tmp_path: Path) -> None:
    cfg = TelemetryConfig(
        backend="sqlite", backend_config={"path": str(tmp_path / "no/t.db")}
    )
    with pytest.raises(TelemetryConfigError, match="directory does not exist"):
        TelemetryManager(cfg)


def test_flush_waits_for_a_partial_batch_the_writer_took_on_its_interval() -> None:
    import threading

    from spark_core.telemetry import MemoryTelemetryBackend

    class SlowBackend(MemoryTelemetryBackend):
        blocking = True  # written on the writer thread, like SQLite

        def __init__(self) -> None:
            super().__init__()
            self.entered, self.release = threading.Event(), threading.Event()

        def write(self, batch: Any) -> None:
            if batch:
                self.entered.set()
                self.release.wait(timeout=30)
            super().write(batch)

    backend = SlowBackend()
    m = TelemetryManager(
        TelemetryConfig(buffer_size=1000, export_interval=0.01), backend=backend
    )
    try:
        m.record_event(
            "late"
        )  # starts the writer; its interval picks up the partial batch
        assert backend.entered.wait(timeout=30)  # the writer is writing "late" now
        threading.Timer(0.05, backend.release.set).start()
        assert [e["name"] for e in m.query_events()] == ["late"]
    finally:
        backend.release.set()
        m.close()


def test_a_writer_that_ended_is_started_again_by_the_next_record() -> None:
    import threading

    from spark_core.telemetry import MemoryTelemetryBackend

    class Backend(MemoryTelemetryBackend):
        blocking = True  # written on the writer thread, like SQLite

        def __init__(self) -> None:
            super().__init__()
            self.wrote = threading.Event()

        def write(self, batch: Any) -> None:
            super().write(batch)
            if batch:
                self.wrote.set()

    backend = Backend()
    m = TelemetryManager(
        TelemetryConfig(buffer_size=1000, export_interval=0.01), backend=backend
    )
    try:
        m.record_event("first")
        assert backend.wrote.wait(timeout=30)
        ended = m._writer
        assert ended is not None
        ended.queue.put(None)  # the writer thread ends
        ended.join(timeout=30)
        backend.wrote.clear()
        m.record_event(
            "second"
        )  # a partial batch: only a live writer's interval writes it
        assert backend.wrote.wait(timeout=30)
        names = [e["name"] for e in backend.query("events", {}, None)]
        assert names == ["first", "second"]
    finally:
        m.close()
