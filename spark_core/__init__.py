"""spark_core: a plain-Python, in-process graph engine.

``import spark_core`` is cheap: the submodules (``spark_core.nodes``, ``spark_core.graphs``,
...) load when first used.
"""

from __future__ import annotations

from typing import Any

__version__ = "3.0.0"  # the distribution's version (ai_spine.__version__)

__all__ = ["SparkError", "__version__"]


def __getattr__(name: str) -> Any:
    if name == "SparkError":
        from spark_core.errors import SparkError

        return SparkError
    raise AttributeError(f"module 'spark_core' has no attribute {name!r}")
