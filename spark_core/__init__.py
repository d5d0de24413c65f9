"""spark_core: a plain-Python, in-process graph engine.

The everyday names come from here::

    from spark_core import Graph, Node, JoinNode, NodeConfig, ExecutionContext, arun

``import spark_core`` is cheap: each name loads its module on first use (PEP 562), and the
subpackages (``spark_core.nodes``, ``spark_core.graphs``, ...) keep their own paths.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    from spark_core.errors import NodeExecutionError, SparkError
    from spark_core.graphs.backends import SQLiteStateBackend
    from spark_core.graphs.graph import Graph
    from spark_core.graphs.observers import GraphObserver, RunResult
    from spark_core.graphs.state import GraphState
    from spark_core.nodes.base import JoinNode, Node, NodeConfig
    from spark_core.nodes.context import ExecutionContext
    from spark_core.utils import arun

__version__ = "3.0.0"  # the distribution's version (ai_spine.__version__)

# Name -> the module that defines it.
_WHERE = {
    "Graph": "spark_core.graphs.graph",
    "Node": "spark_core.nodes.base",
    "JoinNode": "spark_core.nodes.base",
    "NodeConfig": "spark_core.nodes.base",
    "ExecutionContext": "spark_core.nodes.context",
    "GraphState": "spark_core.graphs.state",
    "SQLiteStateBackend": "spark_core.graphs.backends",
    "RunResult": "spark_core.graphs.observers",
    "GraphObserver": "spark_core.graphs.observers",
    "SparkError": "spark_core.errors",
    "NodeExecutionError": "spark_core.errors",
    "arun": "spark_core.utils",
}

__all__ = [
    "Graph",
    "Node",
    "JoinNode",
    "NodeConfig",
    "ExecutionContext",
    "GraphState",
    "SQLiteStateBackend",
    "RunResult",
    "GraphObserver",
    "SparkError",
    "NodeExecutionError",
    "arun",
    "__version__",
]


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'spark_core' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> Any:
    return sorted(set(globals()) | set(__all__))
