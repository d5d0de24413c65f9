"""Spec dataclasses under the seed's name: ``spark_core.nodes.spec`` re-exports
:mod:`spark_core.spec`."""

from __future__ import annotations

from spark_core.spec import *  # noqa: F401,F403
from spark_core.spec import __all__ as __all__  # noqa: F401
