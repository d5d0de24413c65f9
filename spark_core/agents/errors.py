"""Errors raised by agents. All subclass :class:`spark_core.errors.SparkError`."""

from __future__ import annotations

from typing import Optional

from spark_core.errors import SparkError

__all__ = [
    "AgentError",
    "AgentConfigError",
    "AgentMaxStepsError",
    "AgentOutputError",
    "AgentCheckpointError",
]


class AgentError(SparkError):
    """Base class of agent errors."""


class AgentConfigError(AgentError, ValueError):
    """An agent, its configuration or a strategy spec is invalid."""


class AgentMaxStepsError(AgentError):
    """The agent used all its model calls (``max_steps``) without reaching a final answer.

    Attributes:
        max_steps: The configured limit.
        steps: Model calls made.
        last_reply: The model's last reply text (shortened), to help see where it got stuck.
    """

    def __init__(
        self, agent: str, max_steps: int, steps: int, last_reply: Optional[str]
    ) -> None:
        self.agent = agent
        self.max_steps = max_steps
        self.steps = steps
        self.last_reply = last_reply
        tail = ""
        if last_reply:
            short = last_reply if len(last_reply) <= 200 else last_reply[:200] + "..."
            tail = f"; last reply: {short!r}"
        super().__init__(
            f"agent {agent!r} reached max_steps={max_steps} ({steps} model calls) without a "
            f"final answer{tail} (raise AgentConfig.max_steps if the task needs more)"
        )


class AgentOutputError(AgentError):
    """In ``output_mode="json"``, the final answer was still not valid JSON after the re-asks.

    Attributes:
        text: The last answer text.
        reason: Why it was rejected.
    """

    def __init__(self, agent: str, text: str, reason: str, attempts: int) -> None:
        self.text = text
        self.reason = reason
        self.attempts = attempts
        super().__init__(
            f"agent {agent!r} gave no valid JSON final answer after {attempts} attempt(s): "
            f"{reason}"
        )


class AgentCheckpointError(AgentError):
    """An agent checkpoint file is missing, unreadable or not an agent checkpoint."""
