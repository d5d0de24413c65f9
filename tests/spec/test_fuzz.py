"""Fuzzing: malformed JSON and random mutations only ever produce clean spec errors."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, List, Tuple

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from spark_core.errors import SparkError
from spark_core.kit.loader import SpecLoader
from spark_core.spec import (
    GraphSpec,
    SpecError,
    MissionSpec,
    SpecValidationError,
    ValidationIssue,
    load_graph_spec,
    load_mission_spec,
    load_spec,
    validate_graph,
    validate_mission,
)
from spark_core.spec.serde import parse_json
from tests.spec.strategies import graphs, json_values, missions


def paths_of(value: Any, prefix: Tuple[Any, ...] = ()) -> List[Tuple[Any, ...]]:
    """Every path (tuple of keys/indexes) into a JSON value."""
    found = [prefix]
    if isinstance(value, dict):
        for key, item in value.items():
            found += paths_of(item, prefix + (key,))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found += paths_of(item, prefix + (index,))
    return found


def mutate(data: Any, path: Tuple[Any, ...], action: str, replacement: Any) -> Any:
    if not path:
        return replacement
    parent = data
    for key in path[:-1]:
        parent = parent[key]
    if action == "delete":
        del parent[path[-1]]
    else:
        parent[path[-1]] = replacement
    return data


def check_clean(data: Any) -> None:
    """The validator returns issues and from_dict raises only SpecValidationError."""
    issues = validate_mission(data, check_deployment=True)
    assert all(
        isinstance(i, ValidationIssue) and i.severity in ("error", "warning")
        for i in issues
    )
    try:
        spec = MissionSpec.from_dict(data)
    except SpecValidationError as exc:
        assert exc.issues and str(exc).startswith("invalid spec")
        assert any(i.severity == "error" for i in issues)
    else:
        assert spec.to_dict() == MissionSpec.from_dict(spec.to_dict()).to_dict()


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(missions(), st.data())
def test_random_mutations_give_only_clean_errors(
    mission: MissionSpec, data: Any
) -> None:
    raw = mission.to_dict()
    for _ in range(data.draw(st.integers(1, 4))):
        candidates = paths_of(raw)
        path = data.draw(st.sampled_from(candidates))
        action = (
            data.draw(st.sampled_from(["replace", "delete"])) if path else "replace"
        )
        raw = mutate(raw, path, action, data.draw(json_values))
    check_clean(raw)
    inner: Any = raw.get("graph") if isinstance(raw, dict) else raw
    validate_graph(inner)


@settings(max_examples=200, deadline=None)
@given(json_values)
def test_arbitrary_json_documents_give_only_clean_errors(value: Any) -> None:
    check_clean(value)
    assert isinstance(validate_graph(value), list)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=200) | st.text(max_size=200))
def test_malformed_json_text_is_a_spec_validation_error(blob: Any) -> None:
    try:
        value = parse_json(blob)
    except SpecValidationError as exc:
        assert exc.issues[0].message.startswith("invalid JSON")
    else:
        check_clean(value)


def test_truncated_documents_are_clean_errors(tmp_path: Path) -> None:
    text = json.dumps(
        {
            "mission_id": "m",
            "version": "1.0.0",
            "graph": {"id": "g", "start": "a", "nodes": [{"id": "a", "type": "echo"}]},
        }
    )
    path = tmp_path / "m.json"
    for cut in range(len(text)):
        path.write_text(text[:cut], encoding="utf-8")
        try:
            load_spec(path)
        except SpecValidationError:
            pass
    path.write_text(text, encoding="utf-8")
    assert isinstance(load_spec(path), MissionSpec)


def test_deeply_nested_json_is_a_clean_error() -> None:
    deep = "[" * 100_000 + "]" * 100_000
    with pytest.raises(SpecValidationError, match="nested too deeply"):
        parse_json(deep)
    value: Any = []
    for _ in range(200):
        value = [value]
    data = {
        "id": "g",
        "start": "a",
        "nodes": [{"id": "a", "type": "echo"}],
        "initial_state": {"x": value},
    }
    deepest = "initial_state.x" + "[0]" * 64
    assert [i.path for i in validate_graph(data)] == [deepest]
    with pytest.raises(
        SpecValidationError
    ) as info:  # from_dict refuses it the same way
        GraphSpec.from_dict(data)
    assert [i.path for i in info.value.issues] == [deepest]


def test_duplicate_json_keys_are_refused_with_their_paths(tmp_path: Path) -> None:
    text = (
        '{"mission_id": "a", "version": "1.0.0", "mission_id": "b", "graph": {"id": "g",'
        ' "start": "a", "nodes": [{"id": "a", "type": "echo", "params": {"k": 1, "k": 2}}]}}'
    )
    path = tmp_path / "m.json"
    path.write_text(text, encoding="utf-8")
    for load in (load_mission_spec, load_spec):
        with pytest.raises(SpecValidationError) as info:
            load(path)
        assert [str(i) for i in info.value.issues] == [
            "mission_id: duplicate key in a JSON object",
            "graph.nodes[0].params.k: duplicate key in a JSON object",
        ]
        assert info.value.source == str(path)
    graph = tmp_path / "g.json"
    graph.write_text(
        '{"id": "g", "id": "h", "start": "a", "nodes": []}', encoding="utf-8"
    )
    with pytest.raises(SpecValidationError, match="id: duplicate key"):
        load_graph_spec(graph)
    assert parse_json('{"a": {"b": 1}, "c": [{"b": 1}]}') == {
        "a": {"b": 1},
        "c": [{"b": 1}],
    }


builtin_params = st.sampled_from(
    [
        ("echo", {}),
        ("merge", {"values": {"x": 1}}),
        ("template", {"template": "{x}!"}),
        ("set_state", {"values": {"k": 1}}),
        ("step", {"description": "d"}),
        ("join", {}),
    ]
)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(graphs(), st.data())
def test_loader_on_mutated_specs_gives_only_clean_errors(
    graph: GraphSpec, data: Any
) -> None:
    """Whatever a spec says, SpecLoader raises a SpecError or builds a graph that runs."""
    for node in graph.nodes:
        node.type, node.params = data.draw(builtin_params)
    graph.tools = []
    raw: Any = graph.to_dict()
    for _ in range(data.draw(st.integers(0, 3))):
        path = data.draw(st.sampled_from(paths_of(raw)))
        action = (
            data.draw(st.sampled_from(["replace", "delete"])) if path else "replace"
        )
        raw = mutate(raw, path, action, data.draw(json_values))
    try:
        built = SpecLoader().load_graph(raw)
    except SpecError:
        return
    try:
        built.run_sync({"x": 1})
    except SparkError:
        pass
