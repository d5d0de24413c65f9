"""Spark kit: load specs into runnable graphs (``from spark_core.kit.loader import SpecLoader``)."""

from __future__ import annotations

__all__: list[str] = []
