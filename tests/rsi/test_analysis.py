"""Analyze: deterministic findings from a window of runs."""

from __future__ import annotations

from spark_core.rsi import ExperienceDatabase, NodeAttempt, RunRecord
from spark_core.rsi.analysis import analyze, percentile


def test_percentiles_are_nearest_rank() -> None:
    values = [float(v) for v in range(1, 21)]
    assert percentile(values, 50) == 10.0
    assert percentile(values, 95) == 19.0
    assert percentile([], 50) == 0.0
    assert percentile([3.0], 95) == 3.0


def test_findings_from_real_runs(filled_db: ExperienceDatabase) -> None:
    result = analyze(filled_db.query_runs("customer_service_agent", "1.0"))
    assert result.runs == 20 and result.success_rate == 0.5
    keys = [f.key for f in result.findings]
    assert keys[:2] == ["run_failures", "timeouts:lookup"]
    assert "low_score" in keys and "failing_inputs" in keys and "cost:lookup" in keys
    lookup = result.nodes["lookup"]
    assert lookup.timeouts == 10 and lookup.error_kinds == {"NodeTimeoutError": 10}
    assert lookup.p95_ms >= lookup.p50_ms
    failing = next(f for f in result.findings if f.kind == "failing_inputs")
    assert all(item["slow"] for item in failing.metrics["inputs"])
    assert len(failing.metrics["inputs"]) == 5
    assert result.mean_score == 0.0
    # Same runs, same findings, same order.
    again = analyze(filled_db.query_runs("customer_service_agent", "1.0"))
    assert again.to_dict() == result.to_dict()


def test_errors_retries_and_empty_windows() -> None:
    runs = [
        RunRecord(
            f"r{i}",
            "g",
            "1",
            "completed",
            float(i),
            attempts=[
                NodeAttempt("fetch", 1, 5.0, "error", "ConnectionError", "refused"),
                NodeAttempt("fetch", 2, 5.0),
            ],
        )
        for i in range(4)
    ]
    result = analyze(runs)
    errors = next(f for f in result.findings if f.kind == "node_errors")
    assert errors.node_id == "fetch" and errors.metrics["error_kinds"] == {
        "ConnectionError": 4
    }
    retries = next(f for f in result.findings if f.kind == "retries")
    assert retries.metrics == {"retries": 4, "executions": 4}
    assert result.nodes["fetch"].error_rate == 0.5
    empty = analyze([])
    assert empty.runs == 0 and empty.findings == [] and empty.mean_score is None


def test_an_analysis_round_trips_through_json_data(
    filled_db: ExperienceDatabase,
) -> None:
    from spark_core.rsi.analysis import Analysis

    result = analyze(filled_db.query_runs("customer_service_agent"))
    assert Analysis.from_dict(result.to_dict()).to_dict() == result.to_dict()
