"""`AgentConfig`: everything an agent is made of."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Dict, Optional, Sequence

from spark_core.agents.errors import AgentConfigError

if TYPE_CHECKING:  # pragma: no cover
    from spark_core.agents.strategies import ReasoningStrategy

__all__ = ["AgentConfig", "OUTPUT_MODES"]

#: Accepted values of ``AgentConfig.output_mode``.
OUTPUT_MODES = ("text", "json")


@dataclass
class AgentConfig:
    """How an agent thinks, what it may use, and its limits.

    Attributes:
        model: Any object with the :class:`~spark_core.models.Model` protocol
            (``OpenAIModel``, ``ScriptedModel``, ``EchoModel``, your own).
        system_prompt: The agent's role and instructions.
        tools: Tools the agent may call: ``@tool`` functions, ``Tool`` objects or plain
            functions (wrapped as tools); a string names a tool of the graph the agent runs
            in (``Graph(tools=[...])``), which then runs under the graph's policy set.
        output_mode: ``"text"``, or ``"json"``: the final answer must be valid JSON; an invalid
            one is sent back to the model up to ``json_retries`` times.
        reasoning_strategy: A :class:`~spark_core.agents.strategies.ReasoningStrategy`;
            ``None`` means ``ReActStrategy()``.
        max_steps: Most model calls one ``run`` may make; then :class:`AgentMaxStepsError`.
        parallel_tool_execution: Run the tool calls of one model reply concurrently.
        policy_set: A :class:`~spark_core.governance.PolicySet` applied to every tool call
            (action ``tool:execute``, resource ``tool://<name>``). Inside a graph without one,
            the graph's policy set applies.
        json_retries: How many times an invalid JSON answer is sent back (``output_mode="json"``).
        output_validator: Optional check of the parsed JSON answer: raise ``ValueError`` with a
            message for the model to fix it.
        model_options: Options passed to every model call (``temperature``, ``max_tokens``...).
        name: The agent's name (logs, telemetry, cost source).
        memory: Keep the conversation across ``run`` calls (``agent.reset()`` clears it).
            Runs inside a graph are independent of each other and never use it.
        max_observation_chars: Tool results longer than this are cut before the model sees them.
    """

    model: Any
    system_prompt: str = "You are a helpful assistant."
    tools: Sequence[Any] = ()
    output_mode: str = "text"
    reasoning_strategy: Optional["ReasoningStrategy"] = None
    max_steps: int = 10
    parallel_tool_execution: bool = False
    policy_set: Any = None
    json_retries: int = 2
    output_validator: Optional[Callable[[Any], None]] = None
    model_options: Dict[str, Any] = field(default_factory=dict)
    name: str = "agent"
    memory: bool = True
    max_observation_chars: int = 8000

    def __post_init__(self) -> None:
        complete = getattr(self.model, "complete", None)
        if not callable(complete):
            raise AgentConfigError(
                f"AgentConfig.model must have an async complete(messages, tools) method, "
                f"got {type(self.model).__name__}"
            )
        if self.output_mode not in OUTPUT_MODES:
            raise AgentConfigError(
                f"AgentConfig.output_mode must be one of {OUTPUT_MODES}, got {self.output_mode!r}"
            )
        for name in ("max_steps", "max_observation_chars"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise AgentConfigError(
                    f"AgentConfig.{name} must be an int >= 1, got {value!r}"
                )
        if isinstance(self.json_retries, bool) or not isinstance(
            self.json_retries, int
        ):
            raise AgentConfigError("AgentConfig.json_retries must be an int >= 0")
        if self.json_retries < 0:
            raise AgentConfigError(
                f"AgentConfig.json_retries must be >= 0, got {self.json_retries}"
            )
        if not isinstance(self.system_prompt, str):
            raise AgentConfigError("AgentConfig.system_prompt must be a string")
        if not isinstance(self.name, str) or not self.name:
            raise AgentConfigError("AgentConfig.name must be a non-empty string")
        if self.reasoning_strategy is not None and not callable(
            getattr(self.reasoning_strategy, "run", None)
        ):
            raise AgentConfigError(
                "AgentConfig.reasoning_strategy must be a ReasoningStrategy "
                f"(got {type(self.reasoning_strategy).__name__})"
            )
        if isinstance(self.tools, (str, bytes)) or not isinstance(self.tools, Sequence):
            raise AgentConfigError("AgentConfig.tools must be a list of tools")
        self.tools = list(self.tools)
        self.model_options = dict(self.model_options)
