"""The model vocabulary: messages, tool calls, token usage, responses and the `Model` protocol.

Every model (the OpenAI-compatible HTTP one, the scripted ones used in tests and simulations)
speaks the same small language: a list of :class:`Message` (and optional tool schemas in the
OpenAI function format) goes in, a :class:`ModelResponse` with text and/or :class:`ToolCall`
objects and :class:`Usage` comes out.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import (
    Any,
    Dict,
    List,
    Mapping,
    Optional,
    Protocol,
    Sequence,
    Union,
    runtime_checkable,
)

from spark_core.errors import SparkError

__all__ = [
    "Message",
    "ToolCall",
    "Usage",
    "ModelResponse",
    "Model",
    "MessageLike",
    "coerce_messages",
    "decode_json",
    "MAX_JSON_DEPTH",
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
]

_ROLES = ("system", "user", "assistant", "tool")


#: Deepest nesting accepted in what a model sends (the answer, tool-call arguments). What a
#: model returns is serialised again (graph state, checkpoints, telemetry), and a value
#: nested near Python's recursion limit would break there instead, far from its cause.
MAX_JSON_DEPTH = 128


def decode_json(text: Union[str, bytes]) -> Any:
    """Decode JSON a model sent, refusing nesting deeper than :data:`MAX_JSON_DEPTH`.

    Args:
        text: The JSON text.

    Returns:
        The decoded value.

    Raises:
        ValueError: Not JSON, or nested deeper than :data:`MAX_JSON_DEPTH` levels.
    """
    try:
        value = json.loads(text)
        deep = _too_deep(value)
    except RecursionError:  # valid JSON, deeper than the decoder can recurse
        deep = True
    if deep:
        raise ValueError(f"nested deeper than {MAX_JSON_DEPTH} levels")
    return value


def _too_deep(value: Any) -> bool:
    """Whether a decoded JSON value nests deeper than :data:`MAX_JSON_DEPTH` (no recursion)."""
    stack = [(value, 1)] if isinstance(value, (dict, list)) else []
    while stack:
        item, depth = stack.pop()
        if depth > MAX_JSON_DEPTH:
            return True
        children = item.values() if isinstance(item, dict) else item
        stack.extend((c, depth + 1) for c in children if isinstance(c, (dict, list)))
    return False


# --------------------------------------------------------------------------- errors


class ModelError(SparkError):
    """Base class of every error raised by a model.

    Attributes:
        status_code: HTTP status of the failed call, when there was one.
        request_id: The provider's request id (``x-request-id``), when known.
        body: The (redacted) response body, when there was one.
    """

    def __init__(
        self,
        message: str,
        *,
        status_code: Optional[int] = None,
        request_id: Optional[str] = None,
        body: Any = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status_code = status_code
        self.request_id = request_id
        self.body = body

    def __str__(self) -> str:
        text = self.message
        if self.status_code is not None:
            text = f"{text} (HTTP {self.status_code})"
        if self.request_id:
            text = f"{text} [request id {self.request_id}]"
        return text


class ModelConfigError(ModelError, ValueError):
    """A model was configured with invalid arguments (bad URL, negative timeout...)."""


class ModelAuthenticationError(ModelError):
    """The endpoint refused the credentials (HTTP 401/403)."""


class ModelBadRequestError(ModelError):
    """The endpoint rejected the request itself (HTTP 400/404/422...); retrying will not help."""


class ModelRateLimitError(ModelError):
    """HTTP 429 after the retries were used up.

    Attributes:
        retry_after: Seconds the server asked us to wait, when it said so.
    """

    def __init__(
        self, message: str, *, retry_after: Optional[float] = None, **kw: Any
    ) -> None:
        super().__init__(message, **kw)
        self.retry_after = retry_after


class ModelServerError(ModelError):
    """HTTP 5xx after the retries were used up."""


class ModelConnectionError(ModelError):
    """The endpoint could not be reached (refused, DNS, reset) after the retries."""


class ModelTimeoutError(ModelError, TimeoutError):
    """The endpoint did not answer within the timeout, after the retries."""


class ModelResponseError(ModelError):
    """The endpoint answered 2xx with something that is not a chat completion."""


class ModelResponseTooLargeError(ModelResponseError):
    """The endpoint's answer is longer than the model's ``max_response_bytes``.

    Attributes:
        limit: The limit in bytes (the answer was not read past it).
    """

    def __init__(self, message: str, *, limit: int, **kw: Any) -> None:
        super().__init__(message, **kw)
        self.limit = limit


class ScriptExhaustedError(ModelError):
    """A :class:`~spark_core.models.scripted.ScriptedModel` was called more times than scripted."""


# --------------------------------------------------------------------------- values


@dataclass(frozen=True)
class ToolCall:
    """A request from the model to call one tool.

    Attributes:
        id: The call id; tool results refer back to it.
        name: The tool's name.
        arguments: The decoded JSON arguments.
        error: Set when the model sent arguments that are not a JSON object; the agent reports
            it back to the model instead of calling the tool.
    """

    id: str
    name: str
    arguments: Dict[str, Any] = field(default_factory=dict)
    error: Optional[str] = None

    def to_dict(self) -> Dict[str, Any]:
        """Return the call in the OpenAI wire format (arguments as a JSON string).

        Returns:
            A ``{"id", "type": "function", "function": {"name", "arguments"}}`` dict.
        """
        return {
            "id": self.id,
            "type": "function",
            "function": {"name": self.name, "arguments": json.dumps(self.arguments)},
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ToolCall:
        """Build a call from the OpenAI wire format or from a flat ``{"name", "arguments"}``.

        Args:
            data: The call as a mapping; ``arguments`` may be a dict or a JSON string.

        Returns:
            The parsed call; undecodable arguments give a call with ``error`` set.

        Raises:
            ModelResponseError: If the call has no tool name, or its arguments are nested
                deeper than :data:`MAX_JSON_DEPTH`.
        """
        function = data.get("function")
        source: Mapping[str, Any] = function if isinstance(function, Mapping) else data
        name = source.get("name")
        if not isinstance(name, str) or not name:
            raise ModelResponseError(
                f"tool call without a function name: {dict(data)!r}"
            )
        raw = source.get("arguments", {})
        call_id = str(data.get("id") or f"call_{name}")
        if raw is None or raw == "":
            return cls(call_id, name, {})
        if isinstance(raw, Mapping):
            return cls(call_id, name, dict(raw))
        if isinstance(raw, str):
            try:
                decoded = json.loads(raw)
                deep = _too_deep(decoded)
            except ValueError as exc:  # the model's mistake: reported back to it
                return cls(
                    call_id, name, {}, error=f"arguments are not valid JSON ({exc})"
                )
            except RecursionError:  # valid JSON, deeper than the decoder can recurse
                deep = True
            if deep:
                raise ModelResponseError(
                    f"tool call {name!r}: arguments are nested deeper than "
                    f"{MAX_JSON_DEPTH} levels"
                )
            if isinstance(decoded, dict):
                return cls(call_id, name, decoded)
        return cls(call_id, name, {}, error="arguments must be a JSON object")


@dataclass(frozen=True)
class Usage:
    """Token counts of one or more model calls. Usages add up with ``+``."""

    prompt_tokens: int = 0
    completion_tokens: int = 0

    @property
    def total_tokens(self) -> int:
        """Prompt plus completion tokens."""
        return self.prompt_tokens + self.completion_tokens

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            self.prompt_tokens + other.prompt_tokens,
            self.completion_tokens + other.completion_tokens,
        )

    def to_dict(self) -> Dict[str, int]:
        """Return ``{"prompt_tokens", "completion_tokens", "total_tokens"}``."""
        return {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": self.total_tokens,
        }

    @classmethod
    def from_dict(cls, data: Optional[Mapping[str, Any]]) -> Usage:
        """Read a usage block (missing or malformed counts read as 0).

        Args:
            data: A mapping with ``prompt_tokens`` / ``completion_tokens``, or None.

        Returns:
            The usage.
        """
        if not data:
            return cls()

        def count(key: str) -> int:
            value = data.get(key, 0)
            return value if isinstance(value, int) and value >= 0 else 0

        return cls(count("prompt_tokens"), count("completion_tokens"))


@dataclass
class Message:
    """One chat message.

    Attributes:
        role: ``"system"``, ``"user"``, ``"assistant"`` or ``"tool"``.
        content: The text (None for an assistant message that only calls tools).
        tool_calls: The tool calls of an assistant message.
        tool_call_id: For a ``"tool"`` message, the id of the call it answers.
        name: For a ``"tool"`` message, the tool's name.
    """

    role: str
    content: Optional[str] = None
    tool_calls: List[ToolCall] = field(default_factory=list)
    tool_call_id: Optional[str] = None
    name: Optional[str] = None

    def __post_init__(self) -> None:
        if self.role not in _ROLES:
            raise ValueError(f"message role must be one of {_ROLES}, got {self.role!r}")

    @classmethod
    def system(cls, content: str) -> Message:
        """Make a system message.

        Args:
            content: The instructions.

        Returns:
            The message.
        """
        return cls("system", content)

    @classmethod
    def user(cls, content: str) -> Message:
        """Make a user message.

        Args:
            content: The text.

        Returns:
            The message.
        """
        return cls("user", content)

    @classmethod
    def assistant(
        cls, content: Optional[str], tool_calls: Sequence[ToolCall] = ()
    ) -> Message:
        """Make an assistant message, with optional tool calls.

        Args:
            content: The text (None when the message only calls tools).
            tool_calls: The tool calls.

        Returns:
            The message.
        """
        return cls("assistant", content, list(tool_calls))

    @classmethod
    def tool(cls, tool_call_id: str, name: str, content: str) -> Message:
        """Make the message carrying a tool call's result.

        Args:
            tool_call_id: The id of the call it answers.
            name: The tool's name.
            content: The result as text.

        Returns:
            The message.
        """
        return cls("tool", content, tool_call_id=tool_call_id, name=name)

    def to_dict(self) -> Dict[str, Any]:
        """Return the message in the OpenAI chat-completions wire format."""
        data: Dict[str, Any] = {"role": self.role, "content": self.content}
        if self.tool_calls:
            data["tool_calls"] = [call.to_dict() for call in self.tool_calls]
        if self.tool_call_id is not None:
            data["tool_call_id"] = self.tool_call_id
        if self.name is not None:
            data["name"] = self.name
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Message:
        """Build a message from the OpenAI wire format.

        Args:
            data: A mapping with at least ``role``.

        Returns:
            The message.

        Raises:
            ValueError: If the role is missing or unknown, or content is not text.
        """
        role = data.get("role")
        if not isinstance(role, str):
            raise ValueError(f"message without a role: {dict(data)!r}")
        content = data.get("content")
        if content is not None and not isinstance(content, str):
            raise ValueError(
                f"message content must be text or None, got {type(content)}"
            )
        calls = [ToolCall.from_dict(c) for c in data.get("tool_calls") or ()]
        tool_call_id = data.get("tool_call_id")
        name = data.get("name")
        return cls(
            role,
            content,
            calls,
            str(tool_call_id) if tool_call_id is not None else None,
            str(name) if name is not None else None,
        )


MessageLike = Union[Message, Mapping[str, Any]]


def coerce_messages(messages: Sequence[MessageLike]) -> List[Message]:
    """Turn a list of messages or OpenAI-style dicts into :class:`Message` objects.

    Args:
        messages: Messages, as objects or mappings.

    Returns:
        A new list of :class:`Message`.

    Raises:
        ValueError: If an item is neither, or is malformed.
    """
    out: List[Message] = []
    for item in messages:
        if isinstance(item, Message):
            out.append(item)
        elif isinstance(item, Mapping):
            out.append(Message.from_dict(item))
        else:
            raise ValueError(
                f"a message must be a Message or a mapping, got {type(item)}"
            )
    return out


@dataclass
class ModelResponse:
    """What a model answered.

    Attributes:
        text: The reply text (None when the model only called tools).
        tool_calls: The tools the model asked to call.
        usage: Tokens used by this call.
        raw: The provider's raw answer (the decoded JSON for HTTP models).
        model: The model id that answered.
        finish_reason: The provider's finish reason, when known.
    """

    text: Optional[str] = None
    tool_calls: List[ToolCall] = field(default_factory=list)
    usage: Usage = field(default_factory=Usage)
    raw: Any = None
    model: str = ""
    finish_reason: Optional[str] = None

    @property
    def message(self) -> Message:
        """The reply as an assistant :class:`Message`, ready to append to a transcript."""
        return Message.assistant(self.text, self.tool_calls)


@runtime_checkable
class Model(Protocol):
    """What an agent needs from a language model.

    Attributes:
        model_id: The model's name, used for pricing and telemetry.
    """

    model_id: str

    async def complete(
        self,
        messages: Sequence[MessageLike],
        tools: Optional[Sequence[Mapping[str, Any]]] = None,
        **options: Any,
    ) -> ModelResponse:
        """Answer a conversation.

        Args:
            messages: The conversation so far.
            tools: Tool schemas in the OpenAI function format, or None.
            **options: Provider options (temperature, max_tokens, ...).

        Returns:
            The model's reply.
        """
        ...

    def estimate_cost(self, usage: Usage) -> float:
        """Return the cost in USD of ``usage`` tokens on this model (0.0 when unknown).

        Args:
            usage: Token counts.

        Returns:
            The estimated cost in US dollars.
        """
        ...
