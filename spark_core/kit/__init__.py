"""Spark kit, the seed's name for loading specs into runnable graphs.

The loader itself is :mod:`spark_core.spec.loader`; ``from spark_core.kit.loader import
SpecLoader`` keeps working. :mod:`spark_core.kit.import_path` is where the command-line
programs find the user's own modules.
"""

from __future__ import annotations

__all__: list[str] = []
