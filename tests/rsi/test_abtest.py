"""A/B tests: same inputs on both arms, stated tests, minimum samples, seeded."""

from __future__ import annotations

import asyncio

from spark_core.rsi import ExperienceDatabase
from spark_core.rsi.abtest import ABTestConfig, ABTestResult, run_ab_test
from spark_core.rsi.proposals import Proposal
from tests.rsi import sample
from tests.rsi.conftest import ALLOWED

from spark_core.kit.loader import SpecLoader


def _candidate(kind: str, target: str, change: dict):  # type: ignore[no-untyped-def]
    return Proposal.from_dict({"kind": kind, "target": target, "change": change}).apply(
        sample.mission()
    )


def _run(candidate, *, samples: int = 20, db=None, **kwargs):  # type: ignore[no-untyped-def]
    return asyncio.run(
        run_ab_test(
            sample.mission(),
            candidate,
            sample.inputs(samples),
            proposal_id="p1",
            loader=SpecLoader(ALLOWED),
            scorer=sample.score,
            models=lambda: {"answer": sample.polite_model()},
            database=db,
            **{"config": ABTestConfig(concurrency=10), **kwargs},
        )
    )


def test_a_longer_timeout_wins_on_success_rate(
    experience_db: ExperienceDatabase,
) -> None:
    result = _run(
        _candidate("timeout", "lookup", {"timeout_seconds": 1.2}), db=experience_db
    )
    assert result.decision == "candidate" and result.won
    assert result.reason == "success rate rose from 50% to 100%"
    assert (result.baseline.successes, result.candidate.successes) == (10, 20)
    z = result.test("success_rate", "greater")
    assert z is not None and z.name == "two_proportion_z" and z.p_value < 0.001
    assert result.baseline.mean_cost_usd < result.candidate.mean_cost_usd
    # Every A/B run is recorded apart from production runs.
    recorded = experience_db.query_runs("customer_service_agent", sources=["ab_test"])
    assert len(recorded) == 40
    assert (
        experience_db.query_runs("customer_service_agent", sources=["observer"]) == []
    )


def test_a_better_prompt_wins_on_score() -> None:
    prompt = {"system_prompt": "Be empathetic and thank the customer."}
    result = _run(_candidate("prompt", "answer", prompt))
    assert result.decision == "candidate"
    assert result.reason == "score rose from 0.00 to 0.50"
    mw = result.test("score", "greater")
    assert mw is not None and mw.name == "mann_whitney_u" and mw.p_value < 0.05


def test_too_few_samples_decide_nothing() -> None:
    result = _run(_candidate("timeout", "lookup", {"timeout_seconds": 1.2}), samples=4)
    assert result.decision == "inconclusive" and result.tests == []
    assert result.reason == "4 input(s), fewer than the 20 required"
    assert result.baseline.runs == 0


def test_a_worse_candidate_loses_and_the_cost_bound_holds() -> None:
    # The edge condition cannot turn a question into an int: every run past lookup fails.
    broken = {"condition": {"kind": "expr", "value": "int($.outputs.prompt) > 5"}}
    worse = _candidate("edge", "lookup->answer", broken)
    config = ABTestConfig(min_samples=10, concurrency=10)
    result = _run(worse, samples=10, config=config)
    assert result.decision == "baseline"
    assert result.reason == "success rate fell from 50% to 0%"
    dearer = _candidate("timeout", "lookup", {"timeout_seconds": 1.2})
    result = _run(dearer, samples=10, config=config, max_cost_per_run=0.0006)
    assert result.decision == "baseline" and "exceeds the bound" in result.reason


def test_results_round_trip_through_json_data() -> None:
    result = _run(
        _candidate("retry", "answer", {"max_retries": 1}),
        samples=10,
        config=ABTestConfig(min_samples=10, concurrency=10),
    )
    assert result.decision == "inconclusive"
    assert ABTestResult.from_dict(result.to_dict()).to_dict() == result.to_dict()
