"""Hypothesis strategies producing structurally valid specs."""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

from spark_core.spec import (
    CircuitBreakerSpec,
    EdgeConditionSpec,
    EdgeSpec,
    GraphSpec,
    MissionDeploymentSpec,
    MissionPlanSpec,
    MissionPlanStepSpec,
    MissionSimulationSpec,
    MissionSpec,
    MissionStateSchemaSpec,
    MissionStrategyBindingSpec,
    MissionTelemetrySpec,
    NodeConfigSpec,
    NodeSpec,
    RateLimitSpec,
    ReasoningStrategySpec,
    RetrySpec,
    SimulationToolOverrideSpec,
    StateFieldSpec,
    TimeoutSpec,
    ToolSpec,
)

ident = st.from_regex(r"[a-z][a-z0-9_]{0,8}", fullmatch=True)
text = st.text(max_size=20)
finite = st.floats(allow_nan=False, allow_infinity=False, width=64)
json_values: Any = st.recursive(
    st.none() | st.booleans() | st.integers(-(10**6), 10**6) | finite | text,
    lambda inner: st.lists(inner, max_size=3)
    | st.dictionaries(text, inner, max_size=3),
    max_leaves=8,
)
json_objects = st.dictionaries(text, json_values, max_size=3)
positive = st.floats(min_value=0.001, max_value=1e6, allow_nan=False)

retry = st.builds(
    RetrySpec,
    max_retries=st.integers(0, 10),
    backoff_factor=st.floats(1.0, 10.0),
    initial_delay=st.floats(0.0, 5.0),
    max_delay=st.floats(0.0, 60.0),
    strategy=st.sampled_from(["exponential", "linear", "fixed"]),
    jitter=st.booleans(),
)
config = st.builds(
    NodeConfigSpec,
    retry=st.none() | retry,
    timeout=st.none() | st.builds(TimeoutSpec, timeout_seconds=positive),
    rate_limit=st.none()
    | st.builds(RateLimitSpec, max_calls=st.integers(1, 100), period_seconds=positive),
    circuit_breaker=st.none()
    | st.builds(
        CircuitBreakerSpec,
        failure_threshold=st.integers(1, 9),
        reset_timeout=st.floats(0, 99),
    ),
)
condition = st.builds(
    EdgeConditionSpec,
    kind=st.just("equals"),
    value=st.dictionaries(ident, json_values, min_size=1, max_size=2),
) | st.builds(EdgeConditionSpec, kind=st.just("expr"), value=st.just("$.outputs.x > 1"))
field_spec = st.builds(
    StateFieldSpec,
    type=st.sampled_from(
        ["str", "int", "float", "bool", "list", "dict", "datetime", "any"]
    ),
    required=st.booleans(),
    default=json_values,
    description=text,
)
schema = st.builds(
    MissionStateSchemaSpec,
    schema_class=st.none() | st.just("myapp.schemas:State"),
    fields=st.dictionaries(ident, field_spec, max_size=3),
)


@st.composite
def graphs(draw: Any) -> GraphSpec:
    """A structurally valid graph (unique ids, edges between its nodes)."""
    ids = draw(st.lists(ident, min_size=1, max_size=5, unique=True))
    nodes = [
        NodeSpec(
            id=i,
            type=draw(st.sampled_from(["echo", "merge", "myapp.nodes:Thing"])),
            params=draw(json_objects),
            config=draw(config),
            description=draw(text),
        )
        for i in ids
    ]
    edges = draw(
        st.lists(
            st.builds(
                EdgeSpec,
                source=st.sampled_from(ids),
                target=st.sampled_from(ids),
                condition=st.none() | condition,
                description=text,
            ),
            max_size=5,
        )
    )
    tools = [
        ToolSpec(
            name=n,
            reference=draw(st.none() | st.just("myapp.tools:f")),
            description="t",
        )
        for n in draw(st.lists(ident, max_size=3, unique=True))
    ]
    return GraphSpec(
        id=draw(ident),
        start=draw(st.sampled_from(ids)),
        nodes=nodes,
        edges=edges,
        tools=tools,
        state_schema=draw(st.none() | schema),
        initial_state=draw(json_objects),
        max_steps=draw(st.none() | st.integers(1, 10_000)),
        description=draw(text),
    )


@st.composite
def missions(draw: Any) -> MissionSpec:
    """A structurally valid mission."""
    graph = draw(graphs())
    step_ids = draw(st.lists(ident, max_size=4, unique=True))
    plan = MissionPlanSpec(
        steps=[
            MissionPlanStepSpec(
                id=s,
                description=draw(text),
                depends_on=draw(st.lists(ident, max_size=2)),
            )
            for s in step_ids
        ],
        state_key=draw(st.sampled_from(["mission_plan", "plan"])),
        auto_advance=draw(st.booleans()),
    )
    override = st.builds(
        SimulationToolOverrideSpec,
        name=ident,
        static_response=json_values,
        description=text,
    ) | st.builds(
        SimulationToolOverrideSpec, name=ident, handler=st.just("myapp.sim:handler")
    )
    return MissionSpec(
        mission_id=".".join(draw(st.lists(ident, min_size=1, max_size=3))),
        version=draw(
            st.builds(
                lambda a, b, c, pre: f"{a}.{b}.{c}{pre}",
                st.integers(0, 999),
                st.integers(0, 9),
                st.integers(0, 9),
                st.sampled_from(["", "-rc.1", "-alpha+build.5"]),
            )
        ),
        graph=graph,
        description=draw(text),
        plan=draw(st.none() | st.just(plan)),
        state_schema=draw(st.none() | schema),
        strategies=draw(
            st.lists(
                st.builds(
                    MissionStrategyBindingSpec,
                    target=ident,
                    strategy=st.builds(
                        ReasoningStrategySpec, type=ident, config=json_objects
                    ),
                    reference=st.none() | text,
                ),
                max_size=2,
            )
        ),
        telemetry=draw(
            st.none()
            | st.builds(
                MissionTelemetrySpec,
                enabled=st.booleans(),
                backend=st.sampled_from(["memory", "sqlite"]),
                db_path=st.none() | st.just("t.db"),
                sampling_rate=st.floats(0, 1),
                buffer_size=st.integers(1, 1000),
                export_interval=positive,
            )
        ),
        deployment=draw(
            st.none()
            | st.builds(
                MissionDeploymentSpec,
                target=st.sampled_from(["development", "staging", "production"]),
                replicas=st.integers(0, 10),
                resources=st.dictionaries(
                    st.sampled_from(["cpu", "memory"]), text, max_size=2
                ),
                health_check_interval=st.integers(1, 300),
                restart_policy=st.sampled_from(["always", "on-failure"]),
                environment=st.dictionaries(ident, text, max_size=2),
            )
        ),
        simulation=draw(
            st.none()
            | st.builds(
                MissionSimulationSpec,
                enabled=st.booleans(),
                tools=st.lists(override, max_size=3, unique_by=lambda o: o.name),
                inputs=json_objects,
                models=st.dictionaries(
                    ident,
                    st.lists(text | json_objects, min_size=1, max_size=2),
                    max_size=2,
                ),
            )
        ),
        metadata=draw(json_objects),
    )
