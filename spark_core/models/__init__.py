"""Language models for agents: one small protocol, an OpenAI-compatible HTTP model, and
offline models for tests and simulations.

``OpenAIModel`` lives in :mod:`spark_core.models.openai` (it imports ``requests`` only when it
makes its first call); it is also re-exported here, lazily.
"""

from __future__ import annotations

from typing import Any

from spark_core.models.base import (
    MAX_JSON_DEPTH,
    Message,
    MessageLike,
    Model,
    ModelAuthenticationError,
    ModelBadRequestError,
    ModelConfigError,
    ModelConnectionError,
    ModelError,
    ModelRateLimitError,
    ModelResponse,
    ModelResponseError,
    ModelResponseTooLargeError,
    ModelServerError,
    ModelTimeoutError,
    ScriptExhaustedError,
    ToolCall,
    Usage,
)
from spark_core.models.pricing import (
    Pricing,
    estimate_cost,
    get_pricing,
    register_pricing,
)
from spark_core.models.scripted import EchoModel, ScriptedModel

__all__ = [
    "MAX_JSON_DEPTH",
    "Message",
    "MessageLike",
    "Model",
    "ModelResponse",
    "ToolCall",
    "Usage",
    "ModelError",
    "ModelConfigError",
    "ModelAuthenticationError",
    "ModelBadRequestError",
    "ModelRateLimitError",
    "ModelServerError",
    "ModelConnectionError",
    "ModelTimeoutError",
    "ModelResponseError",
    "ModelResponseTooLargeError",
    "ScriptExhaustedError",
    "Pricing",
    "estimate_cost",
    "get_pricing",
    "register_pricing",
    "EchoModel",
    "ScriptedModel",
    "OpenAIModel",
]


def __getattr__(name: str) -> Any:
    if name == "OpenAIModel":
        from spark_core.models.openai import OpenAIModel

        return OpenAIModel
    raise AttributeError(f"module 'spark_core.models' has no attribute {name!r}")
