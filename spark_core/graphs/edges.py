"""Edges between nodes, under their former path: see :mod:`spark_core.nodes.edges`."""

from __future__ import annotations

from spark_core.nodes.edges import EDGE_KINDS, Edge

__all__ = ["Edge", "EDGE_KINDS"]
