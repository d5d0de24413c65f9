"""Nodes: the seed's snippets, sync/async process, running alone, capabilities."""

from __future__ import annotations

import asyncio
import threading
from typing import Any, Dict, List

import pytest

from spark_core import SparkError
from spark_core.errors import (
    CircuitOpenError,
    GraphDefinitionError,
    NodeExecutionError,
    NodeTimeoutError,
    RunPaused,
    RunStopped,
)
from spark_core.nodes import ExecutionContext, Node, NodeConfig, NodeResult
from spark_core.nodes.capabilities import (
    CircuitBreakerCapability,
    RateLimitCapability,
    RetryCapability,
    TimeoutCapability,
)
from spark_core.utils import arun


class HelloNode(Node):
    async def process(self, context: ExecutionContext) -> Dict[str, Any]:
        """Process method is where your logic goes."""
        name = context.inputs.content.get("name", "World")
        return {"message": f"Hello, {name}!"}


class ProcessingNode(Node):
    def __init__(self, multiplier: int = 2):
        super().__init__()
        self.multiplier = multiplier

    async def process(self, context: ExecutionContext) -> Dict[str, Any]:
        value = context.inputs.content.get("value", 0)
        result = value * self.multiplier
        return {"result": result, "success": True}


class Flaky(Node):
    """Fails ``failures`` times, then succeeds."""

    def __init__(
        self, failures: int, config: NodeConfig, exc: type = RuntimeError
    ) -> None:
        super().__init__(name="flaky", config=config)
        self.failures = failures
        self.calls = 0
        self.exc = exc

    async def process(self, context: ExecutionContext) -> Dict[str, Any]:
        self.calls += 1
        if self.calls <= self.failures:
            raise self.exc(f"boom {self.calls}")
        return {"attempt": context.metadata["attempt"]}


def test_seed_first_node() -> None:
    node = HelloNode()
    result = arun(node.run({"name": "Developer"}))
    assert isinstance(result, NodeResult)
    assert result.content["message"] == "Hello, Developer!"
    assert result.node_id == "HelloNode"


def test_seed_processing_node_and_id_defaults() -> None:
    node = ProcessingNode(multiplier=3)
    assert node.id == node.name == "ProcessingNode"
    assert arun(node.run({"value": 5})).content == {"result": 15, "success": True}
    assert Node(name="custom").id == "custom"


def test_seed_resilient_node_config_is_accepted() -> None:
    node = Node(
        name="resilient_node",
        config=NodeConfig(
            retry=RetryCapability(max_retries=3, backoff_factor=2.0),
            timeout=TimeoutCapability(timeout_seconds=30.0),
            circuit_breaker=CircuitBreakerCapability(failure_threshold=5),
        ),
    )
    # The base node passes its input through.
    assert arun(node.run({"x": 1})).content == {"x": 1}


def test_plain_def_process_runs_in_a_worker_thread() -> None:
    seen: List[str] = []

    class Blocking(Node):
        def process(self, context: ExecutionContext) -> Dict[str, Any]:
            seen.append(threading.current_thread().name)
            return {"ok": True}

    assert arun(Blocking().run()).content == {"ok": True}
    assert seen and seen[0] != threading.main_thread().name


def test_context_snapshot_holds_previous_output() -> None:
    class Counter(Node):
        async def process(self, context: ExecutionContext) -> Dict[str, Any]:
            previous = context.state.context_snapshot or {"n": 0}
            return {"n": previous["n"] + 1}

    node = Counter()
    arun(node.run())
    assert arun(node.run()).content == {"n": 2}


def test_none_output_and_none_input() -> None:
    class Quiet(Node):
        async def process(self, context: ExecutionContext) -> None:
            assert context.inputs.content == {}
            return None

    assert arun(Quiet().run()).content is None


def test_failure_raises_node_execution_error_chaining_the_cause() -> None:
    class Broken(Node):
        async def process(self, context: ExecutionContext) -> Dict[str, Any]:
            raise KeyError("missing")

    with pytest.raises(NodeExecutionError) as info:
        arun(Broken(name="broken").run())
    assert info.value.node_id == "broken"
    assert isinstance(info.value.__cause__, KeyError)
    assert isinstance(info.value, SparkError)
    assert "broken" in str(info.value)


def test_bad_return_type_is_a_clear_error_and_not_retried() -> None:
    calls = []

    class Wrong(Node):
        async def process(self, context: ExecutionContext) -> Any:
            calls.append(1)
            return [1, 2]

    node = Wrong(
        config=NodeConfig(retry=RetryCapability(max_retries=3, initial_delay=0))
    )
    with pytest.raises(NodeExecutionError, match="must return a dict or None"):
        arun(node.run())
    assert len(calls) == 1


def test_retry_counts_retries_after_the_first_attempt() -> None:
    node = Flaky(2, NodeConfig(retry=RetryCapability(max_retries=2, initial_delay=0)))
    result = arun(node.run())
    assert result.content == {"attempt": 3}
    assert result.attempts == 3

    node = Flaky(3, NodeConfig(retry=RetryCapability(max_retries=2, initial_delay=0)))
    with pytest.raises(NodeExecutionError, match="boom 3"):
        arun(node.run())
    assert node.calls == 3


def test_retry_on_filters_exception_types() -> None:
    config = NodeConfig(
        retry=RetryCapability(max_retries=5, initial_delay=0, retry_on=(OSError,))
    )
    node = Flaky(1, config, exc=ValueError)
    with pytest.raises(NodeExecutionError):
        arun(node.run())
    assert node.calls == 1


@pytest.mark.parametrize(
    "strategy, expected",
    [
        ("exponential", [1.0, 2.0, 4.0, 5.0]),
        ("linear", [1.0, 2.0, 3.0, 4.0]),
        ("fixed", [1.0, 1.0, 1.0, 1.0]),
    ],
)
def test_retry_delays_by_strategy(strategy: str, expected: List[float]) -> None:
    retry = RetryCapability(
        initial_delay=1.0, backoff_factor=2.0, max_delay=5.0, strategy=strategy
    )
    assert [retry.delay(n) for n in range(1, 5)] == expected


def test_retry_jitter_stays_between_half_and_all_of_the_delay() -> None:
    retry = RetryCapability(initial_delay=2.0, max_delay=3.0, jitter=True)
    assert retry.delay(1, rng=lambda: 0.0) == 1.0
    assert retry.delay(1, rng=lambda: 1.0) == 2.0
    assert retry.delay(3, rng=lambda: 1.0) == 3.0  # 8.0 capped before the jitter
    assert all(1.0 <= retry.delay(1) <= 2.0 for _ in range(100))


@pytest.mark.parametrize(
    "kwargs, field",
    [
        ({"max_retries": -1}, "max_retries"),
        ({"max_retries": 1.5}, "max_retries"),
        ({"backoff_factor": 0.5}, "backoff_factor"),
        ({"backoff_factor": "2"}, "backoff_factor"),
        ({"strategy": "random"}, "strategy"),
        ({"initial_delay": -1}, "initial_delay"),
        ({"max_delay": float("nan")}, "max_delay"),
        ({"retry_on": ("ValueError",)}, "retry_on"),
    ],
)
def test_retry_rejects_bad_values(kwargs: Dict[str, Any], field: str) -> None:
    with pytest.raises(GraphDefinitionError, match=f"RetryCapability.{field}"):
        RetryCapability(**kwargs)


@pytest.mark.parametrize(
    "make, field",
    [
        (lambda: TimeoutCapability(timeout_seconds=0), "timeout_seconds"),
        (lambda: TimeoutCapability(timeout_seconds="5"), "timeout_seconds"),
        (lambda: RateLimitCapability(max_calls=0), "max_calls"),
        (lambda: RateLimitCapability(period_seconds=None), "period_seconds"),
        (lambda: CircuitBreakerCapability(failure_threshold=0), "failure_threshold"),
        (lambda: CircuitBreakerCapability(reset_timeout=True), "reset_timeout"),
    ],
)
def test_capabilities_reject_bad_values(make: Any, field: str) -> None:
    # A SparkError naming the setting, and still a ValueError for older callers.
    with pytest.raises(GraphDefinitionError, match=field) as info:
        make()
    assert isinstance(info.value, ValueError)


def test_timeout_really_cancels_an_async_node() -> None:
    cancelled = []

    class Slow(Node):
        async def process(self, context: ExecutionContext) -> Dict[str, Any]:
            try:
                await asyncio.sleep(10)
            except asyncio.CancelledError:
                cancelled.append(True)
                raise
            return {}

    node = Slow(config=NodeConfig(timeout=TimeoutCapability(timeout_seconds=0.05)))
    with pytest.raises(NodeTimeoutError, match="timed out"):
        arun(node.run())
    assert cancelled == [True]


def test_timeout_applies_per_attempt_under_retry() -> None:
    class SlowThenFast(Node):
        calls = 0

        async def process(self, context: ExecutionContext) -> Dict[str, Any]:
            type(self).calls += 1
            if type(self).calls == 1:
                await asyncio.sleep(10)
            return {"attempt": context.metadata["attempt"]}

    node = SlowThenFast(
        config=NodeConfig(
            retry=RetryCapability(max_retries=1, initial_delay=0),
            timeout=TimeoutCapability(timeout_seconds=0.05),
        )
    )
    assert arun(node.run()).content == {"attempt": 2}


def test_circuit_breaker_opens_and_half_opens() -> None:
    breaker = CircuitBreakerCapability(failure_threshold=2, reset_timeout=0)
    node = Flaky(100, NodeConfig(circuit_breaker=breaker))
    for _ in range(2):
        with pytest.raises(NodeExecutionError):
            arun(node.run())
    assert breaker.state == "half-open"  # reset_timeout=0: trial allowed at once
    breaker_closed = CircuitBreakerCapability(failure_threshold=1, reset_timeout=60)
    node2 = Flaky(100, NodeConfig(circuit_breaker=breaker_closed))
    with pytest.raises(NodeExecutionError):
        arun(node2.run())
    with pytest.raises(CircuitOpenError, match="circuit breaker is open"):
        arun(node2.run())
    assert node2.calls == 1  # the open circuit did not call the node
    breaker_closed.reset()
    assert breaker_closed.state == "closed"


def test_a_circuit_opened_during_retries_keeps_the_real_error() -> None:
    breaker = CircuitBreakerCapability(failure_threshold=2, reset_timeout=60)
    retry = RetryCapability(max_retries=5, initial_delay=0)
    node = Flaky(100, NodeConfig(retry=retry, circuit_breaker=breaker), exc=ValueError)
    with pytest.raises(CircuitOpenError) as info:
        arun(node.run())
    assert node.calls == 2  # the third attempt met the open circuit
    assert info.value.__cause__ is not info.value
    assert isinstance(info.value.__cause__, ValueError)
    assert info.value.cause is info.value.__cause__
    assert "ValueError: boom 2" in str(info.value)


def test_half_open_circuit_lets_one_trial_call_through(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    now = [100.0]
    monkeypatch.setattr("spark_core.nodes.capabilities.time.monotonic", lambda: now[0])
    breaker = CircuitBreakerCapability(failure_threshold=1, reset_timeout=10)
    breaker.record_failure()
    assert not breaker.allow()
    now[0] += 10
    assert breaker.state == "half-open"
    assert breaker.allow()  # the trial call
    assert not breaker.allow()  # concurrent callers wait for the trial's outcome
    breaker.record_failure()  # the trial failed: open again for reset_timeout
    now[0] += 9
    assert not breaker.allow()
    now[0] += 1
    assert breaker.allow()
    now[
        0
    ] += 10  # the trial never reported (e.g. cancelled): another trial is let through
    assert breaker.allow()
    breaker.record_success()
    assert breaker.state == "closed"
    assert breaker.allow() and breaker.allow()


def test_circuit_breaker_success_closes() -> None:
    breaker = CircuitBreakerCapability(failure_threshold=3)
    node = Flaky(
        2,
        NodeConfig(
            circuit_breaker=breaker,
            retry=RetryCapability(max_retries=2, initial_delay=0),
        ),
    )
    assert arun(node.run()).attempts == 3
    assert breaker.state == "closed"


def test_rate_limit_makes_extra_calls_wait(monkeypatch: pytest.MonkeyPatch) -> None:
    limiter = RateLimitCapability(max_calls=2, period_seconds=0.05)
    waits: List[float] = []
    real_sleep = asyncio.sleep

    async def fake_sleep(delay: float) -> None:
        waits.append(delay)
        await real_sleep(delay)

    monkeypatch.setattr("asyncio.sleep", fake_sleep)
    node = Node(name="limited", config=NodeConfig(rate_limit=limiter))

    async def main() -> None:
        for _ in range(3):
            await node.run({})

    arun(main())
    assert len(waits) >= 1 and 0 < waits[0] <= 0.05


def test_run_stopped_is_never_retried_nor_wrapped() -> None:
    class Stop(Node):
        calls = 0

        async def process(self, context: ExecutionContext) -> Dict[str, Any]:
            type(self).calls += 1
            raise RunPaused("wait for approval")

    node = Stop(
        config=NodeConfig(retry=RetryCapability(max_retries=3, initial_delay=0))
    )
    with pytest.raises(RunPaused):
        arun(node.run())
    assert Stop.calls == 1
    assert issubclass(RunPaused, RunStopped)


def test_node_constructor_rejects_bad_arguments() -> None:
    with pytest.raises(GraphDefinitionError):
        Node(name="")
    with pytest.raises(GraphDefinitionError):
        Node(config={"retry": 3})  # type: ignore[arg-type]


def test_subclass_must_call_super_init() -> None:
    class Forgetful(Node):
        def __init__(self) -> None:
            pass

    with pytest.raises(GraphDefinitionError, match="super"):
        Node() >> Forgetful()


def test_report_cost_validates_its_arguments() -> None:
    class Spender(Node):
        async def process(self, context: ExecutionContext) -> Dict[str, Any]:
            context.report_cost(0.5, tokens=10, source="model")  # no observers: dropped
            with pytest.raises(ValueError):
                context.report_cost(-1)
            return {}

    arun(Spender().run())


def test_call_tool_without_a_graph_is_a_clear_error() -> None:
    class Caller(Node):
        async def process(self, context: ExecutionContext) -> Dict[str, Any]:
            await context.call_tool("search", q="x")
            return {}

    with pytest.raises(NodeExecutionError) as info:
        arun(Caller().run())
    assert "no tools" in str(info.value.__cause__)
