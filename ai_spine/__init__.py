"""AI Spine SDK: a client for the AI Spine agent orchestration API.

``import ai_spine`` stays cheap: the HTTP client is imported here, but ``LocalSpine``,
``Spine`` and ``RemoteFlowNode`` (which pull in ``spark_core``) and ``AsyncAISpine`` (which
pulls in ``aiohttp``) load on first use.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from ai_spine.__version__ import __version__
from ai_spine.client import AISpine
from ai_spine.exceptions import (
    AISpineError,
    APIError,
    AuthenticationError,
    ExecutionError,
    FlowNotFoundError,
    NetworkError,
    NotFoundError,
    RateLimitError,
    ResponseTooLargeError,
    ServerError,
    TimeoutError,
    ValidationError,
)
from ai_spine.models import Agent, BatchResult, Execution, Flow
from ai_spine.retry import Retry

if TYPE_CHECKING:  # pragma: no cover - for type checkers only
    from ai_spine.async_client import AsyncAISpine
    from ai_spine.local import LocalSpine
    from ai_spine.local_async import AsyncLocalSpine
    from ai_spine.nodes import RemoteFlowNode
    from ai_spine.protocol import AsyncSpine, Spine

__all__ = [
    "__version__",
    "AISpine",
    "AsyncAISpine",
    "LocalSpine",
    "AsyncLocalSpine",
    "Spine",
    "AsyncSpine",
    "RemoteFlowNode",
    "Retry",
    "Flow",
    "Execution",
    "Agent",
    "BatchResult",
    "AISpineError",
    "APIError",
    "AuthenticationError",
    "ValidationError",
    "NotFoundError",
    "RateLimitError",
    "ServerError",
    "ResponseTooLargeError",
    "NetworkError",
    "TimeoutError",
    "ExecutionError",
    "FlowNotFoundError",
]

_LAZY = {
    "AsyncAISpine": "ai_spine.async_client",
    "LocalSpine": "ai_spine.local",
    "AsyncLocalSpine": "ai_spine.local_async",
    "Spine": "ai_spine.protocol",
    "AsyncSpine": "ai_spine.protocol",
    "RemoteFlowNode": "ai_spine.nodes",
}


def __getattr__(name: str) -> Any:
    """Import the names with heavy dependencies on first use (spark_core, aiohttp).

    Args:
        name: The attribute looked up on the package.

    Returns:
        The named class, cached in the package afterwards.

    Raises:
        AttributeError: For any other name.
    """
    module_name = _LAZY.get(name)
    if module_name is None:
        raise AttributeError(f"module 'ai_spine' has no attribute {name!r}")
    value = getattr(importlib.import_module(module_name), name)
    globals()[name] = value
    return value
