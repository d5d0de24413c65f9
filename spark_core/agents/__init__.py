"""LLM agents: a model, tools under policy, and a reasoning strategy.

::

    from spark_core.agents import Agent, AgentConfig
    from spark_core.models.openai import OpenAIModel

    agent = Agent(config=AgentConfig(model=OpenAIModel(model_id="gpt-4o"),
                                     system_prompt="You are a helpful assistant."))
    result = await agent.run("Hello, Spark!")
"""

from __future__ import annotations

from spark_core.agents.agent import Agent, AgentResult, AgentSession, ToolCallRecord
from spark_core.agents.config import AgentConfig
from spark_core.agents.errors import (
    AgentCheckpointError,
    AgentConfigError,
    AgentError,
    AgentMaxStepsError,
    AgentOutputError,
)
from spark_core.agents.factory import (
    agent_from_spec,
    bind_strategies,
    model_from_spec,
    replace_models,
)
from spark_core.agents.node import AgentNode
from spark_core.agents.strategies import (
    ChainOfThoughtStrategy,
    PlanAndSolveStrategy,
    ReActStrategy,
    ReasoningStrategy,
    strategy_from_spec,
)

__all__ = [
    "Agent",
    "AgentConfig",
    "AgentResult",
    "AgentSession",
    "ToolCallRecord",
    "AgentNode",
    "AgentError",
    "AgentConfigError",
    "AgentMaxStepsError",
    "AgentOutputError",
    "AgentCheckpointError",
    "ReasoningStrategy",
    "ReActStrategy",
    "ChainOfThoughtStrategy",
    "PlanAndSolveStrategy",
    "strategy_from_spec",
    "agent_from_spec",
    "model_from_spec",
    "bind_strategies",
    "replace_models",
]
