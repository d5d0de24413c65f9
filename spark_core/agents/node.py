"""`AgentNode`: an agent as a graph node, reporting cost and calls to the graph.

::

    researcher = AgentNode(Agent(config=...), name="research")
    graph = Graph(start=researcher, state_backend=SQLiteStateBackend("run.db"))
    result = await graph.run({"prompt": "Find the latest release of Python"})
    result.content["answer"]

Each model call reports its cost with ``context.report_cost`` (so mission-control budgets see
it) and emits an ``llm_call`` event; each tool call emits a ``tool_call`` event. When the graph
has telemetry, both also become spans (``llm_call`` / ``tool_call``) in the run's trace.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any, Dict, Mapping, Optional

from spark_core.agents.errors import AgentConfigError, AgentError
from spark_core.nodes import ExecutionContext, Node, NodeConfig
from spark_core.templates import fill_template

if TYPE_CHECKING:  # pragma: no cover
    from spark_core.agents.agent import Agent, AgentSession, ToolCallRecord
    from spark_core.models.base import ModelResponse

__all__ = ["AgentNode", "report_llm_call", "report_tool_call"]


class AgentNode(Node):
    """Runs an :class:`~spark_core.agents.Agent` on the node's input.

    The prompt is read from the input: a string input is the prompt; a dict input gives it
    under ``prompt_key`` (default ``"prompt"``), or fills ``prompt_template``
    (``"Summarise {text}"``) with its keys. The output is ``AgentResult.to_dict()``:
    ``answer``, ``text``, ``steps``, ``usage``, ``cost_usd``, ``tool_calls``, ``plan``,
    ``run_id``.

    A tool call that needs approval pauses the graph run; the agent's transcript is kept in
    graph state, and ``graph.resume(run_id)`` after the approval continues the conversation
    and runs the approved tool exactly once.

    Args:
        agent: The agent; or leave it out and give its JSON params instead (what a spec
            node does, see :func:`~spark_core.agents.factory.agent_from_spec`).
        name: Node name (defaults to the agent's name).
        config: Node capabilities (retry, timeout...).
        prompt_key: Input key holding the prompt.
        prompt_template: A template whose ``{key}`` placeholders are filled with the
            input's keys (only plain names, as in the spec ``template`` node: no attribute
            access or format specs, which a spec could abuse); ``{{`` and ``}}`` are
            literal braces, as in ``str.format``.
        **agent_params: The agent's params when ``agent`` is not given.
    """

    def __init__(
        self,
        agent: Optional[Agent] = None,
        name: Optional[str] = None,
        config: Optional[NodeConfig] = None,
        *,
        prompt_key: str = "prompt",
        prompt_template: Optional[str] = None,
        **agent_params: Any,
    ) -> None:
        from spark_core.agents.agent import Agent

        # The JSON params a spec built this node from (export gives them back).
        self._spec_params: Optional[Dict[str, Any]] = None
        if agent is None:
            from spark_core.agents.factory import agent_from_spec

            agent = agent_from_spec(agent_params, name=name)
            self._spec_params = dict(agent_params)
        elif agent_params:
            raise AgentError(
                f"AgentNode: pass an agent or agent params, not both (got {sorted(agent_params)})"
            )
        if not isinstance(agent, Agent):
            raise AgentError(f"AgentNode needs an Agent, got {type(agent).__name__}")
        super().__init__(name=name if name is not None else agent.name, config=config)
        self.agent = agent
        self.prompt_key = prompt_key
        self.prompt_template = prompt_template

    def spec_params(self) -> Dict[str, Any]:
        """Return the node's spec params (for ``export_graph``), with its current strategy.

        Returns:
            The JSON params the node was built from; ``strategy`` is the one the agent uses
            now (a mission's binding may have changed it).

        Raises:
            AgentConfigError: The node wraps a Python ``Agent`` or its params hold Python
                objects (a spec cannot describe them).
        """
        if self._spec_params is None:
            raise AgentConfigError(
                f"AgentNode {self.id!r} wraps a Python Agent, which a spec cannot describe; "
                "build it from params (AgentNode(model=..., ...)) to export it"
            )
        try:  # a copy, and a check: Python objects among the params cannot be exported
            params: Dict[str, Any] = json.loads(json.dumps(self._spec_params))
        except (TypeError, ValueError):
            raise AgentConfigError(
                f"AgentNode {self.id!r}: its params hold Python objects, which a spec "
                "cannot describe"
            ) from None
        params.pop("reasoning_strategy", None)
        params["strategy"] = self.agent.strategy.to_spec()
        if self.prompt_key != "prompt":
            params["prompt_key"] = self.prompt_key
        if self.prompt_template is not None:
            params["prompt_template"] = self.prompt_template
        return params

    def prompt_for(self, content: Any) -> str:
        """Build the prompt from a node input.

        Args:
            content: ``context.inputs.content``.

        Returns:
            The prompt.

        Raises:
            AgentError: The input has no prompt (naming the key expected and the keys seen).
        """
        if isinstance(content, str):
            return content
        if isinstance(content, Mapping):
            if self.prompt_template is not None:
                try:
                    return fill_template(
                        self.prompt_template, content, strict=True, escapes=True
                    )
                except KeyError as exc:
                    raise AgentError(
                        f"AgentNode {self.id!r}: prompt_template needs input key {exc}, "
                        f"got keys {sorted(map(str, content))}"
                    ) from None
            value = content.get(self.prompt_key)
            if isinstance(value, str):
                return value
            if value is not None:
                return json.dumps(value)
            raise AgentError(
                f"AgentNode {self.id!r}: input has no {self.prompt_key!r} key "
                f"(got keys {sorted(map(str, content))}); pass it, or set prompt_key / "
                "prompt_template"
            )
        raise AgentError(
            f"AgentNode {self.id!r}: input must be a string or a dict, got {type(content).__name__}"
        )

    async def process(self, context: ExecutionContext) -> Dict[str, Any]:
        """Run the agent (or continue its paused run) and return the result summary.

        Args:
            context: The execution context.

        Returns:
            ``AgentResult.to_dict()``.
        """
        saved = await self.agent._graph_checkpoint(context)
        prompt = "" if saved is not None else self.prompt_for(context.inputs.content)
        result = await self.agent.run(prompt, context=context)
        return result.to_dict()


async def report_llm_call(
    agent: Agent,
    context: Any,
    session: AgentSession,
    response: ModelResponse,
    cost: float,
    duration: float,
) -> None:
    """Report one model call: cost to budgets, an ``llm_call`` event, and a span.

    Args:
        agent: The agent.
        context: The node's execution context.
        session: The running session.
        response: The model's reply.
        cost: Its cost in USD.
        duration: Seconds the call took.
    """
    model_id = getattr(
        agent.config.model, "model_id", type(agent.config.model).__name__
    )
    report = getattr(context, "report_cost", None)
    if callable(report):
        report(
            cost,
            tokens=response.usage.total_tokens,
            source=f"agent:{agent.name}/{model_id}",
        )
    data = {
        "agent": agent.name,
        "model": model_id,
        "step": session.steps,
        "prompt_tokens": response.usage.prompt_tokens,
        "completion_tokens": response.usage.completion_tokens,
        "cost_usd": cost,
        "duration_s": duration,
        "tool_calls": [c.name for c in response.tool_calls],
        "finish_reason": response.finish_reason,
    }
    emit = getattr(context, "emit", None)
    if callable(emit):
        await emit("llm_call", **data)


async def report_tool_call(
    agent: Agent,
    context: Any,
    session: AgentSession,
    record: ToolCallRecord,
    duration: float,
) -> None:
    """Report one finished tool call: a ``tool_call`` event and a span.

    Args:
        agent: The agent.
        context: The node's execution context.
        session: The running session.
        record: How the call ended.
        duration: Seconds the call took.
    """
    data = {
        "agent": agent.name,
        "tool": record.name,
        "call_id": record.id,
        "status": record.status,
        "step": record.step,
        "duration_s": duration,
    }
    if record.error:
        data["error"] = record.error
    emit = getattr(context, "emit", None)
    if callable(emit):
        await emit("tool_call", **data)
