"""Models that need no network: `EchoModel` and `ScriptedModel`.

They are for tests, notebooks without a key, examples and ``simulation-run``. Both record what
they were sent, so a test can assert on the exact conversation an agent produced.
"""

from __future__ import annotations

import json
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple, Union

from spark_core.models.base import (
    Message,
    MessageLike,
    ModelResponse,
    ScriptExhaustedError,
    ToolCall,
    Usage,
    coerce_messages,
)
from spark_core.models.pricing import as_pricing

__all__ = ["EchoModel", "ScriptedModel", "ScriptStep", "estimate_tokens"]

#: One scripted reply: text, a reply mapping, a ready response, or a function of the messages.
ScriptStep = Union[
    str, Mapping[str, Any], ModelResponse, Callable[[List[Message]], Any]
]


def estimate_tokens(text: Optional[str]) -> int:
    """A rough token count (about four characters per token), for offline models.

    Args:
        text: Any text, or None.

    Returns:
        The estimated number of tokens.
    """
    return 0 if not text else max(1, (len(text) + 3) // 4)


def _prompt_usage(messages: Sequence[Message]) -> int:
    return sum(estimate_tokens(m.content) + 4 for m in messages)


class _RecordingModel:
    """Shared bookkeeping: what each call was sent."""

    model_id: str

    def __init__(self) -> None:
        self.requests: List[Dict[str, Any]] = []

    @property
    def calls(self) -> int:
        """How many times ``complete`` was called."""
        return len(self.requests)

    def estimate_cost(self, usage: Usage) -> float:
        """Offline models are free.

        Args:
            usage: Token counts (ignored).

        Returns:
            0.0
        """
        return 0.0

    def _record(
        self,
        messages: Sequence[MessageLike],
        tools: Optional[Sequence[Mapping[str, Any]]],
        options: Dict[str, Any],
    ) -> List[Message]:
        msgs = coerce_messages(messages)
        self.requests.append(
            {
                "messages": [m.to_dict() for m in msgs],
                "tools": [dict(t) for t in tools] if tools else None,
                "options": dict(options),
            }
        )
        return msgs


class EchoModel(_RecordingModel):
    """Answers with the last user message, optionally prefixed.

    Args:
        prefix: Text put before the echo.
        model_id: The id reported in responses.
    """

    def __init__(self, prefix: str = "", model_id: str = "echo") -> None:
        super().__init__()
        self.prefix = prefix
        self.model_id = model_id

    def __repr__(self) -> str:
        return f"EchoModel(prefix={self.prefix!r})"

    async def complete(
        self,
        messages: Sequence[MessageLike],
        tools: Optional[Sequence[Mapping[str, Any]]] = None,
        **options: Any,
    ) -> ModelResponse:
        """Echo the last user message.

        Args:
            messages: The conversation.
            tools: Ignored (recorded).
            **options: Ignored (recorded).

        Returns:
            A response whose text is ``prefix + last user message``.
        """
        msgs = self._record(messages, tools, options)
        last = next((m.content for m in reversed(msgs) if m.role == "user"), None) or ""
        text = f"{self.prefix}{last}"
        usage = Usage(_prompt_usage(msgs), estimate_tokens(text))
        return ModelResponse(
            text=text, usage=usage, model=self.model_id, finish_reason="stop"
        )


class ScriptedModel(_RecordingModel):
    """Plays back a fixed list of replies, one per call, and records every request.

    Each script step is one of:

    * a ``str``: a text reply;
    * a mapping ``{"text": ..., "tool_calls": [{"name", "arguments", "id"?}, ...]}``
      (``"content"`` is accepted for ``"text"``; arguments may be a dict or JSON text;
      ``"usage": {"prompt_tokens": ..., "completion_tokens": ...}`` replaces the estimate);
    * a :class:`ModelResponse`, returned as is;
    * a callable taking the list of :class:`Message` and returning any of the above (for
      replies that depend on what the agent sent).

    Example:
        >>> model = ScriptedModel([
        ...     {"tool_calls": [{"name": "add", "arguments": {"a": 2, "b": 3}}]},
        ...     "Final Answer: 5",
        ... ])

    Args:
        script: The replies, in order (each a :data:`ScriptStep`).
        model_id: The id reported in responses.
        loop: Start again from the first step when the script runs out, instead of raising.
        pricing: ``(input, output)`` USD per million tokens, so offline runs show costs
            (and budgets see them); free when None.

    Raises:
        ValueError: If a step has an unsupported type, or a price is not a number >= 0.
    """

    def __init__(
        self,
        script: Sequence[Any],
        model_id: str = "scripted",
        *,
        loop: bool = False,
        pricing: Optional[Tuple[float, float]] = None,
    ) -> None:
        super().__init__()
        self.pricing = as_pricing(pricing)
        self.script: List[ScriptStep] = list(script)
        for index, step in enumerate(self.script):
            if not isinstance(step, (str, Mapping, ModelResponse)) and not callable(
                step
            ):
                raise ValueError(
                    f"script step {index} has unsupported type {type(step)}"
                )
        self.model_id = model_id
        self.loop = loop
        self.position = 0

    def __repr__(self) -> str:
        return f"ScriptedModel(steps={len(self.script)}, position={self.position})"

    def estimate_cost(self, usage: Usage) -> float:
        """Return the USD cost of ``usage`` at ``pricing`` (0.0 without one).

        Args:
            usage: Token counts.

        Returns:
            Cost in US dollars.
        """
        return self.pricing.cost(usage) if self.pricing is not None else 0.0

    @property
    def remaining(self) -> int:
        """Replies left before the script runs out."""
        return max(0, len(self.script) - self.position)

    async def complete(
        self,
        messages: Sequence[MessageLike],
        tools: Optional[Sequence[Mapping[str, Any]]] = None,
        **options: Any,
    ) -> ModelResponse:
        """Return the next scripted reply.

        Args:
            messages: The conversation (recorded).
            tools: Tool schemas (recorded).
            **options: Options (recorded).

        Returns:
            The next reply.

        Raises:
            ScriptExhaustedError: If every step was used and ``loop`` is off.
        """
        msgs = self._record(messages, tools, options)
        if self.position >= len(self.script):
            if not self.loop or not self.script:
                raise ScriptExhaustedError(
                    f"ScriptedModel {self.model_id!r} ran out of replies: the script has "
                    f"{len(self.script)} step(s) and call {self.calls} asked for another"
                )
            self.position = 0
        step = self.script[self.position]
        self.position += 1
        return self._to_response(step, msgs)

    def _to_response(self, step: Any, msgs: List[Message]) -> ModelResponse:
        if isinstance(step, ModelResponse):
            return step
        if callable(step) and not isinstance(step, (str, Mapping)):
            return self._to_response(step(msgs), msgs)
        usage: Optional[Usage] = None
        if isinstance(step, str):
            text: Optional[str] = step
            calls: List[ToolCall] = []
        elif isinstance(step, Mapping):
            if step.get("usage") is not None:
                if not isinstance(step["usage"], Mapping):
                    raise ValueError(
                        f"a script step's usage must be a mapping, got {step['usage']!r}"
                    )
                usage = Usage.from_dict(step["usage"])
            raw_text = step.get("text", step.get("content"))
            text = None if raw_text is None else str(raw_text)
            calls = []
            for index, raw in enumerate(step.get("tool_calls") or ()):
                data = dict(raw)
                data.setdefault("id", f"call_{self.position}_{index}")
                calls.append(ToolCall.from_dict(data))
        else:
            raise ValueError(f"a script step produced unsupported {type(step)}")
        if usage is None:
            completion = estimate_tokens(text) + sum(
                estimate_tokens(c.name + json.dumps(c.arguments)) for c in calls
            )
            usage = Usage(_prompt_usage(msgs), completion)
        return ModelResponse(
            text=text,
            tool_calls=calls,
            usage=usage,
            raw={"step": self.position - 1},
            model=self.model_id,
            finish_reason="tool_calls" if calls else "stop",
        )
