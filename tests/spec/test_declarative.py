"""Spec parsing is driven by the dataclasses' fields: types, defaults and rules."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

import pytest

from spark_core.field_rules import rule
from spark_core.spec import models
from spark_core.spec._parse import Parser, parse_dataclass


def _odd(text: str) -> Optional[str]:
    return None if len(text) % 2 else "must have an odd length"


@dataclass
class Leaf:
    name: str = field(metadata=rule(nonempty=True))
    weight: float = field(default=1.0, metadata=rule(minimum=0, exclusive=True))


@dataclass
class Tree:
    id: str = field(metadata=rule(check=_odd))
    kind: str = field(default="oak", metadata=rule(choices=("oak", "elm")))
    height: int = field(default=3, metadata=rule(minimum=1, maximum=9))
    ratio: float = field(default=0.5, metadata=rule(minimum=0, maximum=1))
    alive: bool = True
    note: Optional[str] = None
    root: Optional[Leaf] = None
    leaves: List[Leaf] = field(default_factory=list)
    named: Dict[str, Leaf] = field(
        default_factory=dict, metadata=rule(expected="an object of name -> leaf")
    )
    tags: List[str] = field(default_factory=list)
    labels: Dict[str, str] = field(default_factory=dict)
    extra: Dict[str, Any] = field(default_factory=dict)
    anything: Any = None


def read(cls: type, data: Any) -> Any:
    p = Parser()
    return parse_dataclass(p, cls, data, ""), {str(i) for i in p.issues}


def test_a_dataclass_reads_itself_from_its_fields_alone() -> None:
    tree, issues = read(
        Tree,
        {
            "id": "abc",
            "kind": "elm",
            "height": 9,
            "root": {"name": "r"},
            "leaves": [{"name": "a", "weight": 2}],
            "named": {"x": {"name": "b"}},
            "tags": ["t"],
            "labels": {"k": "v"},
            "extra": {"deep": [1, {"x": None}]},
            "anything": [True],
        },
    )
    assert issues == set()
    assert tree == Tree(
        id="abc",
        kind="elm",
        height=9,
        root=Leaf("r"),
        leaves=[Leaf("a", 2.0)],
        named={"x": Leaf("b")},
        tags=["t"],
        labels={"k": "v"},
        extra={"deep": [1, {"x": None}]},
        anything=[True],
    )


def test_missing_and_null_fields_take_the_dataclass_defaults() -> None:
    nulls = {"height": None, "alive": None, "root": None, "leaves": None, "extra": None}
    tree, issues = read(Tree, {"id": "abc", **nulls})
    assert issues == set() and tree == Tree(id="abc")
    _, issues = read(
        Tree, {"id": "abc", "kind": None}
    )  # a text with a default: as today
    assert issues == {"kind: must be a string, got null"}


def test_every_rule_is_enforced_with_its_path() -> None:
    tree, issues = read(
        Tree,
        {
            "id": "ab",
            "kind": "pine",
            "height": 10,
            "ratio": -0.5,
            "alive": "yes",
            "note": 3,
            "root": {"name": " ", "weight": 0},
            "leaves": [{"weight": 1}, "leaf"],
            "named": [],
            "tags": ["ok", 2],
            "labels": {"k": 1},
            "extra": {"x": float("nan")},
            "anything": float("inf"),
            "unknown": 1,
        },
    )
    assert issues == {
        "id: must have an odd length",
        "kind: must be one of oak, elm",
        "height: must be <= 9",
        "ratio: must be >= 0",
        "alive: must be a boolean, got string",
        "note: must be a string, got number",
        "root.name: must not be empty",
        "root.weight: must be > 0",
        "leaves[0].name: is required",
        "leaves[1]: must be an object, got string",
        "named: must be an object of name -> leaf",
        "tags[1]: must be a string, got number",
        "labels.k: must be a string, got number",
        "extra.x: must be a finite number",
        "anything: must be a finite number",
        "unknown: unknown field (ignored)",
    }
    assert tree is not None  # every field kept a usable value, so siblings were checked
    assert tree.leaves == [Leaf("")] and tree.named == {}


def test_a_missing_required_nested_spec_drops_the_object_and_reports_its_siblings() -> (
    None
):
    spec, issues = read(
        models.MissionSpec, {"mission_id": "m", "version": "1.0.0", "description": 5}
    )
    assert spec is None
    assert issues == {"graph: is required", "description: must be a string, got number"}


@pytest.mark.parametrize(
    "cls",
    [
        models.RetrySpec,
        models.TimeoutSpec,
        models.RateLimitSpec,
        models.CircuitBreakerSpec,
        models.NodeConfigSpec,
        models.StateFieldSpec,
        models.MissionStateSchemaSpec,
        models.MissionPlanSpec,
        models.MissionTelemetrySpec,
        models.MissionDeploymentSpec,
        models.MissionSimulationSpec,
    ],
)
def test_spec_defaults_are_the_dataclass_defaults(cls: Any) -> None:
    assert cls.from_dict({}) == cls()


def test_required_fields_are_those_without_a_default() -> None:
    _, issues = read(models.GraphSpec, {})
    assert issues == {
        "id: is required",
        "start: is required",
        "nodes: must contain at least one node",
    }
    graph = models.GraphSpec.from_dict(
        {"id": "g", "start": "a", "nodes": [{"id": "a", "type": "echo"}]}
    )
    assert graph == models.GraphSpec(
        id="g", start="a", nodes=[models.NodeSpec("a", "echo")]
    )
