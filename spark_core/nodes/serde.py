"""Spec files under the seed's name: ``spark_core.nodes.serde`` re-exports the JSON helpers
of :mod:`spark_core.spec.serde`."""

from __future__ import annotations

from spark_core.spec.serde import (
    load_graph_spec,
    load_mission_spec,
    load_spec,
    save_graph_spec,
    save_mission_spec,
)

__all__ = [
    "load_graph_spec",
    "load_mission_spec",
    "load_spec",
    "save_graph_spec",
    "save_mission_spec",
]
