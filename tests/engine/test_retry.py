"""spark_core's one retry shape: capability, spec and model policy agree."""

from __future__ import annotations

from dataclasses import replace
from typing import Any, Dict

import pytest

from spark_core.errors import GraphDefinitionError
from spark_core.graphs import Graph
from spark_core.kit.loader import SpecLoader, export_graph
from spark_core.models.retry import RetryPolicy
from spark_core.nodes import Node, NodeConfig
from spark_core.nodes.capabilities import RetryCapability
from spark_core.retry import RetrySettings, jittered
from spark_core.spec import NodeConfigSpec, RetrySpec, SpecValidationError


class Echo(Node):
    def process(self, context: Any) -> Dict[str, Any]:
        return dict(context.inputs.content)


def test_capability_and_spec_have_the_same_fields_and_defaults() -> None:
    shared = RetrySettings().settings()
    assert RetryCapability().settings() == shared
    assert RetrySpec().settings() == shared
    assert RetrySpec.from_dict({}).settings() == shared
    assert list(RetrySpec().to_dict()) == list(shared)


@pytest.mark.parametrize("draw, factor", [(0.0, 0.5), (0.5, 0.75), (1.0, 1.0)])
def test_the_three_jitter_between_half_and_all_of_the_delay(
    draw: float, factor: float
) -> None:
    def rng() -> float:
        return draw

    assert jittered(4.0, rng) == 4.0 * factor
    assert RetryCapability(initial_delay=4.0, jitter=True).delay(1, rng) == 4.0 * factor
    assert RetrySpec(initial_delay=4.0, jitter=True).delay(1, rng) == 4.0 * factor
    policy = RetryPolicy(backoff_factor=4.0, backoff_max=30.0, rng=rng)
    assert policy.increment("HTTP 500").delay() == 4.0 * factor


def test_the_unpinned_jitter_never_exceeds_the_delay_or_the_cap() -> None:
    retry = RetryCapability(initial_delay=1.0, max_delay=5.0, jitter=True)
    for n in range(1, 6):
        cap = min(2.0 ** (n - 1), 5.0)
        assert all(cap / 2 <= retry.delay(n) <= cap for _ in range(50))


def test_the_models_backoff_is_the_exponential_schedule_with_factor_two() -> None:
    capability = RetryCapability(
        initial_delay=0.5, backoff_factor=2.0, max_delay=8.0, jitter=True
    )
    policy = RetryPolicy(max_retries=8, backoff_factor=0.5, backoff_max=8.0)
    for retry in range(1, 8):
        policy = policy.increment("HTTP 503")
        for draw in (0.0, 0.3, 1.0):
            pinned = replace(policy, rng=lambda: draw)
            assert pinned.delay() == capability.delay(retry, lambda: draw)


def test_a_long_exponential_schedule_stays_at_the_cap() -> None:
    assert RetryCapability(max_retries=5000).delay(5000) == 30.0


def test_the_specs_retry_compiles_to_the_same_capability() -> None:
    data = {
        "max_retries": 4,
        "backoff_factor": 3,
        "initial_delay": 0.25,
        "max_delay": 9,
        "strategy": "linear",
        "jitter": True,
    }
    spec = RetrySpec.from_dict(data)
    built = SpecLoader.build_config(NodeConfigSpec(retry=spec)).retry
    assert built == RetryCapability(**data)
    assert built is not None and built.settings() == spec.settings()


def test_a_graphs_retry_exports_to_the_same_spec() -> None:
    capability = RetryCapability(max_retries=2, initial_delay=0.0, strategy="fixed")
    node = Echo(config=NodeConfig(retry=capability))
    exported = export_graph(Graph(node)).nodes[0].config.retry
    assert exported == RetrySpec(**capability.settings())
    assert SpecLoader.build_config(NodeConfigSpec(retry=exported)).retry == capability


@pytest.mark.parametrize(
    "field, value",
    [
        ("max_retries", -1),
        ("max_retries", 1.5),
        ("backoff_factor", 0.5),
        ("initial_delay", -0.1),
        ("max_delay", -1),
        ("strategy", "random"),
    ],
)
def test_spec_and_capability_refuse_the_same_values(field: str, value: Any) -> None:
    with pytest.raises(GraphDefinitionError, match=f"RetryCapability.{field}"):
        RetryCapability(**{field: value})
    with pytest.raises(SpecValidationError) as info:
        RetrySpec.from_dict({field: value})
    assert [issue.path for issue in info.value.issues] == [field]
