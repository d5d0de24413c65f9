"""The production telemetry backends: PostgreSQL (shared, queryable) and OTLP export to a
real OTLP/HTTP receiver on loopback; a mission spec's telemetry for all four backends.
"""

from __future__ import annotations

import asyncio
import sys
import uuid
from typing import Any, Dict, Iterator, List

import pytest

from spark_core.graphs import Graph
from spark_core.kit.loader import SpecLoader
from spark_core.nodes import ExecutionContext, Node
from spark_core.spec import MissionTelemetrySpec
from spark_core.telemetry import TelemetryConfig, TelemetryConfigError, TelemetryManager
from spark_core.telemetry.instrument import node_span
from spark_core.telemetry.otlp import root_span_id
from tests.pgcluster import Cluster
from tests.telemetry.otlp_receiver import OTLPReceiver


class Plan(Node):
    """A nested span with a secret attribute, and an event on it."""

    async def process(self, context: ExecutionContext) -> Dict[str, Any]:
        async with node_span(context, "llm_call", {"model": "m", "api_key": "sk-x"}):
            await asyncio.sleep(0)
            assert context.graph is not None
            manager = context.graph.observers[0].manager  # type: ignore[attr-defined]
            manager.record_event("cost", attributes={"usd": 0.25, "tags": ["a", "b"]})
        return {"plan": [1, 2]}


class Fail(Node):
    async def process(self, context: ExecutionContext) -> Dict[str, Any]:
        raise ValueError("disk on fire")


def _graph(manager: TelemetryManager) -> Graph:
    plan = Plan(name="plan")
    plan >> Fail(name="act")
    return Graph(start=plan, graph_id="mission", telemetry=manager)


def _run(graph: Graph) -> None:
    with pytest.raises(Exception, match="disk on fire"):
        graph.run_sync({"password": "hunter2"})


@pytest.fixture
def receiver() -> Iterator[OTLPReceiver]:
    with OTLPReceiver() as started:
        yield started


# ---------------------------------------------------------------------- PostgreSQL
def test_postgresql_telemetry_answers_the_same_queries_as_sqlite(
    pg_dsn: str, tmp_path: Any
) -> None:
    results = {}
    for backend, options in (
        ("sqlite", {"path": str(tmp_path / "t.db")}),
        ("postgresql", {"dsn": pg_dsn}),
    ):
        manager = TelemetryManager(
            TelemetryConfig(backend=backend, backend_config=options)
        )
        _run(_graph(manager))
        [trace] = manager.query_traces()
        spans = manager.query_spans(trace_id=trace["trace_id"])
        events = manager.query_events(trace_id=trace["trace_id"])
        by_id = {s["span_id"]: s["name"] for s in spans}
        results[backend] = (
            (trace["name"], trace["status"]),
            sorted(
                (s["name"], s["kind"], s["status"], by_id.get(s["parent_id"]))
                for s in spans
            ),
            sorted(e["name"] for e in events),
            [s["name"] for s in manager.query_spans(status="error")],
            sorted(r["name"] for r in manager.slowest_nodes()),
            manager.error_rates()["act"]["errors"],
        )
        llm = manager.query_spans(name="llm_call")[0]
        assert llm["attributes"] == {"model": "m", "api_key": "[REDACTED]"}
        manager.close()
    assert results["postgresql"] == results["sqlite"]
    assert results["postgresql"][1] == [
        ("act", "node", "error", None),
        ("llm_call", "internal", "ok", "plan"),
        ("plan", "node", "ok", None),
    ]


def test_two_managers_share_one_postgresql_database(pg_dsn: str) -> None:
    config = TelemetryConfig(backend="postgresql", backend_config={"dsn": pg_dsn})
    first, second = TelemetryManager(config), TelemetryManager(config)
    first.end_trace(first.start_trace("from-first").trace_id)
    second.end_trace(second.start_trace("from-second").trace_id)
    first.flush_sync()
    second.flush_sync()
    assert sorted(t["name"] for t in first.query_traces()) == [
        "from-first",
        "from-second",
    ]
    first.close()
    second.close()


def test_an_unreachable_telemetry_database_names_the_dsn_without_password(
    pg_cluster: Cluster,
) -> None:
    dsn = f"postgresql://postgres:hunter2@127.0.0.1:{pg_cluster.port}/postgres"
    config = TelemetryConfig(backend="postgresql", backend_config={"dsn": dsn})
    assert "hunter2" not in repr(config) and "postgres:***@" in repr(config)
    with pytest.raises(TelemetryConfigError) as caught:
        TelemetryManager(config)
    assert "postgres:***@127.0.0.1" in str(caught.value)
    assert "hunter2" not in str(caught.value)


def test_postgresql_telemetry_needs_a_dsn() -> None:
    with pytest.raises(TelemetryConfigError, match="needs backend_config"):
        TelemetryConfig(backend="postgresql")


# ---------------------------------------------------------------------------- OTLP
def test_otlp_export_maps_spans_faithfully(
    receiver: OTLPReceiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.endpoint)
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_HEADERS", "x-api-key=collector-secret")
    monkeypatch.delenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", raising=False)
    monkeypatch.delenv("OTEL_SERVICE_NAME", raising=False)
    manager = TelemetryManager(TelemetryConfig(backend="otlp"))
    assert "collector-secret" not in repr(manager.config) + repr(manager.backend)
    _run(_graph(manager))
    manager.close()  # flushes and shuts the exporter down

    [trace] = manager.query_traces()  # a copy stays queryable
    stored = {s["name"]: s for s in manager.query_spans()}
    received = receiver.spans()
    spans = {span.name: span for _, _, span in received}
    assert sorted(spans) == sorted([trace["name"], "plan", "llm_call", "act"])
    assert all(h["x-api-key"] == "collector-secret" for h in receiver.headers)
    resource, scope, _ = received[0]
    service = {a.key: a.value.string_value for a in resource.attributes}
    assert service["service.name"] == "spark_core" and scope.name == "spark_core"

    # ids preserved: one trace id; span ids as stored; the trace is the root span
    trace_id = bytes.fromhex(trace["trace_id"])
    root = spans[trace["name"]]
    assert {s.trace_id for s in spans.values()} == {trace_id}
    assert root.span_id == bytes.fromhex(root_span_id(trace["trace_id"]))
    assert root.parent_span_id == b""
    for name in ("plan", "llm_call", "act"):
        assert spans[name].span_id == bytes.fromhex(stored[name]["span_id"])
    assert spans["plan"].parent_span_id == root.span_id
    assert spans["act"].parent_span_id == root.span_id
    assert spans["llm_call"].parent_span_id == spans["plan"].span_id

    # attributes (redacted), events, status, timing
    def attrs(span: Any) -> Dict[str, Any]:
        out: Dict[str, Any] = {}
        for a in span.attributes:
            v = a.value
            kind = v.WhichOneof("value")
            out[a.key] = (
                [x.string_value for x in v.array_value.values]
                if kind == "array_value"
                else getattr(v, kind)
            )
        return out

    assert attrs(spans["llm_call"]) == {
        "model": "m",
        "api_key": "[REDACTED]",
        "spark.kind": "internal",
    }
    assert attrs(spans["plan"])["node_id"] == "plan"
    assert attrs(spans["plan"])["spark.kind"] == "node"
    assert attrs(root)["run_id"] == trace["attributes"]["run_id"]
    [cost] = spans["llm_call"].events
    assert cost.name == "cost" and attrs(cost) == {"usd": 0.25, "tags": ["a", "b"]}
    assert spans["plan"].status.code == 1  # STATUS_CODE_OK
    assert spans["act"].status.code == 2  # STATUS_CODE_ERROR
    assert "disk on fire" in spans["act"].status.message
    assert root.status.code == 2
    assert spans["act"].start_time_unix_nano == int(stored["act"]["start_time"] * 1e9)
    assert spans["act"].end_time_unix_nano >= spans["act"].start_time_unix_nano
    everything = str([span for _, _, span in received])
    assert "hunter2" not in everything and "sk-x" not in everything


def test_otlp_endpoint_headers_and_service_from_backend_config(
    receiver: OTLPReceiver,
) -> None:
    config = TelemetryConfig(
        backend="otlp",
        backend_config={
            "endpoint": receiver.endpoint + "/v1/traces",
            "headers": {"authorization": "Bearer abc"},
            "service_name": "missions",
        },
    )
    assert "Bearer abc" not in repr(config)
    manager = TelemetryManager(config)
    trace = manager.start_trace("t")
    manager.record_event("started", trace_id=trace.trace_id)
    manager.end_trace(trace.trace_id, status="paused")
    manager.close()
    [(resource, _, root)] = receiver.spans()
    assert receiver.headers[0]["authorization"] == "Bearer abc"
    service = {a.key: a.value.string_value for a in resource.attributes}
    assert service["service.name"] == "missions"
    assert root.status.code == 0  # UNSET, with the engine's own status as an attribute
    assert {a.key: a.value.string_value for a in root.attributes}["spark.status"] == (
        "paused"
    )
    assert [e.name for e in root.events] == ["started"]


def test_unknown_otlp_options_are_refused() -> None:
    with pytest.raises(TelemetryConfigError, match="unknown otlp option"):
        TelemetryConfig(backend="otlp", backend_config={"url": "x"})


# ------------------------------------------------------------- mission spec backends
@pytest.mark.parametrize("backend", ["memory", "sqlite", "postgresql", "otlp"])
def test_a_mission_specs_telemetry_works_with_every_backend(
    backend: str,
    request: pytest.FixtureRequest,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Any,
) -> None:
    spec = MissionTelemetrySpec(backend=backend)
    received: List[Any] = []
    if backend == "sqlite":
        spec.db_path = str(tmp_path / "t.db")
    elif backend == "postgresql":
        monkeypatch.setenv("SPARK_TELEMETRY_DSN", request.getfixturevalue("pg_dsn"))
    elif backend == "otlp":
        receiver = request.getfixturevalue("receiver")
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.endpoint)
        received = receiver.requests
    manager = SpecLoader.build_telemetry(spec)
    assert manager is not None and manager.config.backend == backend
    _run(_graph(manager))
    assert sorted(s["name"] for s in manager.query_spans()) == [
        "act",
        "llm_call",
        "plan",
    ]
    manager.close()
    if backend == "otlp":
        assert received, "nothing reached the collector"


def test_a_postgresql_mission_spec_without_a_dsn_is_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from spark_core.kit.loader import SpecLoadError

    monkeypatch.delenv("SPARK_TELEMETRY_DSN", raising=False)
    with pytest.raises(SpecLoadError, match="SPARK_TELEMETRY_DSN"):
        SpecLoader.build_telemetry(MissionTelemetrySpec(backend="postgresql"))


def test_a_unique_schema_keeps_telemetry_stores_apart(pg_dsn: str) -> None:
    managers = [
        TelemetryManager(
            TelemetryConfig(
                backend="postgresql",
                backend_config={"dsn": pg_dsn, "schema": "s_" + uuid.uuid4().hex[:8]},
            )
        )
        for _ in range(2)
    ]
    managers[0].end_trace(managers[0].start_trace("only-here").trace_id)
    assert [t["name"] for t in managers[0].query_traces()] == ["only-here"]
    assert managers[1].query_traces() == []
    for manager in managers:
        manager.close()


def test_missing_extras_are_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "psycopg", None)  # as if it were not installed
    config = TelemetryConfig(
        backend="postgresql", backend_config={"dsn": "postgresql://u:pw-9@h/db"}
    )
    with pytest.raises(
        TelemetryConfigError, match=r"ai-spine-sdk\[postgres\]"
    ) as caught:
        TelemetryManager(config)
    assert "postgresql://u:***@h/db" in str(caught.value)
    assert "pw-9" not in str(caught.value)
    exporter = "opentelemetry.exporter.otlp.proto.http.trace_exporter"
    monkeypatch.setitem(sys.modules, exporter, None)
    with pytest.raises(TelemetryConfigError, match=r"ai-spine-sdk\[otlp\]"):
        TelemetryManager(TelemetryConfig(backend="otlp"))
