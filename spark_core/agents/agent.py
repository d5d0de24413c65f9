"""`Agent`: a model, tools under policy, and a reasoning strategy, run as one loop.

::

    agent = Agent(config=AgentConfig(model=OpenAIModel("gpt-4o"), tools=[search]))
    result = await agent.run("What is the capital of Peru?")
    result.answer, result.steps, result.usage, result.cost

Every tool call goes through the governance :class:`~spark_core.governance.executor.ToolExecutor`
(action ``tool:execute``, resource ``tool://<name>``): a DENY comes back to the model as a
refused call; REQUIRE_APPROVAL pauses the agent with
:class:`~spark_core.governance.ApprovalPendingError`. Inside a graph the agent's transcript is
then checkpointed into graph state, so ``graph.resume(run_id)`` (after the approval) continues
the same conversation and runs the approved tool exactly once. Alone, ``agent.approvals``
holds the request and ``await agent.resume()`` continues.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
import time
import uuid
from dataclasses import dataclass
from typing import (
    TYPE_CHECKING,
    Any,
    Callable,
    Dict,
    List,
    Mapping,
    Optional,
    Type,
    Union,
    overload,
)

from spark_core.agents._telemetry import agent_span
from spark_core.agents.config import AgentConfig
from spark_core.agents.errors import (
    AgentCheckpointError,
    AgentConfigError,
    AgentError,
    AgentMaxStepsError,
    AgentOutputError,
)
from spark_core.agents.strategies import (
    ReActStrategy,
    ReasoningStrategy,
    strategy_from_spec,
)
from spark_core.errors import RunStopped
from spark_core.files import write_text_atomic
from spark_core.governance.approvals import (
    APPROVALS_KEY,
    ApprovalRequest,
    ApprovalStore,
)
from spark_core.governance.executor import ToolExecutor
from spark_core.governance.policy import PolicyViolationError
from spark_core.governance.tools import ToolError
from spark_core.models.base import Message, ModelResponse, ToolCall, Usage
from spark_core.utils import arun

if TYPE_CHECKING:  # pragma: no cover
    from spark_core.agents.node import AgentNode

__all__ = [
    "Agent",
    "AgentResult",
    "AgentSession",
    "ToolCallRecord",
    "CHECKPOINT_KEY_PREFIX",
]

logger = logging.getLogger("spark_core.agents")

#: Graph-state key prefix of a paused agent's transcript
#: (``_spark_agent:<node id>:<run id>``; set back to None when the run goes on).
CHECKPOINT_KEY_PREFIX = "_spark_agent:"
_CHECKPOINT_FORMAT = "spark_core.agent/2"
# /1 files do not name the policy set of a paused run: restored, but not a paused run.
_OLD_CHECKPOINT_FORMATS = ("spark_core.agent/1",)
_FENCE_RE = re.compile(r"^```[A-Za-z0-9_-]*\s*\n?(.*?)\n?\s*```$", re.S)


def _jsonable(value: Any) -> Any:
    """Return ``value`` if it survives JSON, else its ``str``."""
    try:
        json.dumps(value)
        return value
    except (TypeError, ValueError):
        return str(value)


@dataclass
class ToolCallRecord:
    """One tool call the agent made, and how it ended.

    Attributes:
        id: The call id.
        name: The tool's name.
        arguments: The arguments the model gave.
        status: ``"ok"``, ``"denied"`` (a policy refused it or a reviewer rejected it) or
            ``"error"`` (unknown tool, bad arguments, or the tool raised).
        result: The tool's result (``"ok"`` only; made JSON-safe).
        error: What went wrong (``"denied"``/``"error"``).
        step: The model call (1-based) that asked for the tool.
    """

    id: str
    name: str
    arguments: Dict[str, Any]
    status: str
    result: Any = None
    error: Optional[str] = None
    step: int = 0

    def to_dict(self) -> Dict[str, Any]:
        """Return a JSON-serialisable dict."""
        return {
            "id": self.id,
            "name": self.name,
            "arguments": _jsonable(self.arguments),
            "status": self.status,
            "result": _jsonable(self.result),
            "error": self.error,
            "step": self.step,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ToolCallRecord:
        """Build a record from :meth:`to_dict` output.

        Args:
            data: The dict.

        Returns:
            The record.

        Raises:
            KeyError: ``id``, ``name`` or ``status`` is missing.
            ValueError: ``step`` is not a number.
        """
        return cls(
            str(data["id"]),
            str(data["name"]),
            dict(data.get("arguments") or {}),
            str(data["status"]),
            data.get("result"),
            data.get("error"),
            int(data.get("step", 0)),
        )

    def observation(self, limit: int) -> str:
        """Return the text the model sees for this call (its result, or why it failed).

        Args:
            limit: Most characters; a longer text is cut and says how much was left out.

        Returns:
            The observation text.
        """
        if self.status == "ok":
            result = self.result
            text = result if isinstance(result, str) else json.dumps(_jsonable(result))
        elif self.status == "denied":
            text = f"Tool call refused by policy: {self.error}. Do not retry this call."
        else:
            text = f"Tool call failed: {self.error}"
        if len(text) > limit:
            text = text[:limit] + f"... [cut: {len(text) - limit} more characters]"
        return text


@dataclass
class AgentResult:
    """What one ``agent.run`` produced.

    Attributes:
        answer: The final answer: text, or the parsed JSON value in ``output_mode="json"``.
        text: The final answer as the model wrote it.
        transcript: Every message of the run (system prompt included), OpenAI wire format.
        tool_calls: The tool calls made, in order.
        steps: Model calls made.
        usage: Tokens used by this run.
        cost: Estimated cost of this run in USD (0.0 for unpriced models).
        plan: The plan, with :class:`PlanAndSolveStrategy`.
        run_id: This run's id.
    """

    answer: Any
    text: str
    transcript: List[Dict[str, Any]]
    tool_calls: List[ToolCallRecord]
    steps: int
    usage: Usage
    cost: float
    plan: Optional[List[str]] = None
    run_id: str = ""

    def to_dict(self) -> Dict[str, Any]:
        """Return a JSON-serialisable summary (what :class:`AgentNode` outputs)."""
        return {
            "answer": _jsonable(self.answer),
            "text": self.text,
            "steps": self.steps,
            "usage": self.usage.to_dict(),
            "cost_usd": self.cost,
            "tool_calls": [r.to_dict() for r in self.tool_calls],
            "plan": self.plan,
            "run_id": self.run_id,
        }


class AgentSession:
    """The state of one agent run, and what strategies drive.

    Strategies use :meth:`ask`, :meth:`act`, :meth:`say`, :meth:`check_final`, ``scratch`` and
    ``steps``. The session is JSON-serialisable (:meth:`to_state`) so a paused run resumes.

    Args:
        agent: The agent running it.
        run_id: This run's id.
        context: The node's execution context inside a graph, else None.

    Raises:
        AgentConfigError: The agent names a graph tool the context's graph lacks.

    Attributes:
        messages: The conversation, system prompt first.
        steps: Model calls made so far.
        usage: Tokens used so far.
        cost: USD spent so far.
        records: Tool calls done so far.
        scratch: Strategy progress (JSON data).
        pending: Tool calls of the current step not all done yet (set while they run).
        run_id: This run's id.
    """

    def __init__(self, agent: Agent, run_id: str, context: Any = None) -> None:
        self.agent = agent
        self.run_id = run_id
        self.context = context
        self.messages: List[Message] = []
        self.steps = 0
        self.usage = Usage()
        self.cost = 0.0
        self.records: List[ToolCallRecord] = []
        self.scratch: Dict[str, Any] = {}
        self.pending: Optional[Dict[str, Any]] = None
        self.final_value: Any = None
        self.last_text: Optional[str] = None
        self.tools: Dict[str, Any] = agent._tools_for(context)
        self.checkpointed = False

    # -- what strategies use --------------------------------------------------------------

    @property
    def has_tools(self) -> bool:
        """Whether the agent has any tool in this run."""
        return bool(self.tools)

    @property
    def output_mode(self) -> str:
        """``"text"`` or ``"json"``."""
        return self.agent.config.output_mode

    def tool_catalogue(self) -> str:
        """Return the tools as text lines (name, description, JSON schema of the arguments)."""
        lines = []
        for t in self.tools.values():
            lines.append(
                f"- {t.name}: {t.description} Arguments: {json.dumps(t.parameters)}"
            )
        return "\n".join(lines)

    def say(self, text: str) -> None:
        """Append a user message (a nudge or instruction from the strategy).

        Args:
            text: The message.
        """
        self.messages.append(Message.user(text))

    async def ask(self, *, tools: bool = True) -> ModelResponse:
        """Call the model with the conversation; the reply is appended to it.

        Args:
            tools: Send the tool schemas.

        Returns:
            The reply.

        Raises:
            AgentMaxStepsError: ``max_steps`` model calls were already made.
        """
        config = self.agent.config
        if self.steps >= config.max_steps:
            raise AgentMaxStepsError(
                config.name, config.max_steps, self.steps, self.last_text
            )
        self.steps += 1
        schemas = None
        if tools and self.tools:
            schemas = [
                {"type": "function", "function": t.schema()}
                for t in self.tools.values()
            ]
        model_id = getattr(config.model, "model_id", type(config.model).__name__)
        started = time.perf_counter()
        async with agent_span(
            self.context,
            "llm_call",
            {"agent": config.name, "model": model_id, "step": self.steps},
        ) as span:
            response: ModelResponse = await config.model.complete(
                self.messages, schemas, **config.model_options
            )
            estimate = getattr(config.model, "estimate_cost", None)
            cost = float(estimate(response.usage)) if callable(estimate) else 0.0
            if span is not None:
                span.set_attributes(
                    {
                        "prompt_tokens": response.usage.prompt_tokens,
                        "completion_tokens": response.usage.completion_tokens,
                        "cost_usd": cost,
                        "tool_calls": len(response.tool_calls),
                    }
                )
        duration = time.perf_counter() - started
        self.usage = self.usage + response.usage
        self.cost += cost
        self.last_text = response.text
        self.messages.append(response.message)
        await self.agent._report_llm_call(self, response, cost, duration)
        return response

    async def act(self, calls: List[ToolCall], style: str) -> None:
        """Run the tool calls of one reply and append their observations.

        Args:
            calls: The calls.
            style: ``"native"`` (answers are ``tool`` messages) or ``"text"`` (one
                ``Observation:`` user message).

        Raises:
            ApprovalPendingError: A call needs approval; the session was checkpointed first.
        """
        self.pending = {
            "style": style,
            "step": self.steps,
            "calls": [
                {"id": c.id, "name": c.name, "arguments": c.arguments, "error": c.error}
                for c in calls
            ],
            "done": {},
        }
        await self.finish_pending()

    def check_final(self, text: str) -> Optional[str]:
        """Accept a final answer, or return feedback for the model (JSON mode).

        Args:
            text: The final answer text.

        Returns:
            None when accepted (``final_value`` is set); else the message to send back.

        Raises:
            AgentOutputError: The JSON re-asks are used up.
        """
        config = self.agent.config
        if config.output_mode == "text":
            self.final_value = text
            return None
        try:
            value = parse_json_answer(text)
            if config.output_validator is not None:
                config.output_validator(value)
        except ValueError as exc:
            attempts = int(self.scratch.get("json_retries", 0)) + 1
            self.scratch["json_retries"] = attempts
            if attempts > config.json_retries:
                raise AgentOutputError(config.name, text, str(exc), attempts) from None
            return (
                f"Your final answer is not valid: {exc}. Reply again with 'Final Answer: ' "
                "followed by valid JSON only (no prose, no code fences)."
            )
        self.final_value = value
        return None

    # -- tools --------------------------------------------------------------------------

    async def finish_pending(self) -> None:
        """Run the not-yet-done calls of ``pending`` (all of them, or the rest after a pause).

        Raises:
            ApprovalPendingError: A call needs approval; the session was checkpointed first.
        """
        pending = self.pending
        if pending is None:
            return
        calls = [
            ToolCall(c["id"], c["name"], dict(c.get("arguments") or {}), c.get("error"))
            for c in pending["calls"]
        ]
        done: Dict[str, Any] = pending["done"]
        todo = [c for c in calls if c.id not in done]
        stop: Optional[BaseException] = None
        if self.agent.config.parallel_tool_execution and len(todo) > 1:
            outcomes = await asyncio.gather(
                *(self.agent._run_tool(self, c, pending["step"]) for c in todo),
                return_exceptions=True,
            )
            for call, outcome in zip(todo, outcomes):
                if isinstance(outcome, ToolCallRecord):
                    done[call.id] = outcome.to_dict()
                elif stop is None:
                    stop = outcome
        else:
            for call in todo:
                try:
                    done[call.id] = (
                        await self.agent._run_tool(self, call, pending["step"])
                    ).to_dict()
                except BaseException as exc:  # a pause (or a crash): keep what is done
                    stop = exc
                    break
        if stop is not None:
            if isinstance(stop, RunStopped):
                await self.agent._checkpoint(self)
            raise stop
        records = [ToolCallRecord.from_dict(done[c.id]) for c in calls]
        self.records.extend(records)
        limit = self.agent.config.max_observation_chars
        if pending["style"] == "native":
            for record in records:
                self.messages.append(
                    Message.tool(record.id, record.name, record.observation(limit))
                )
        else:
            lines = [
                f"Observation{f' ({r.name})' if len(records) > 1 else ''}: {r.observation(limit)}"
                for r in records
            ]
            self.messages.append(Message.user("\n".join(lines)))
        self.pending = None
        if self.checkpointed:  # a resumed run: keep its checkpoint up to date
            await self.agent._checkpoint(self)

    # -- persistence --------------------------------------------------------------------

    def to_state(self) -> Dict[str, Any]:
        """Return the session as JSON data."""
        return {
            "run_id": self.run_id,
            "messages": [m.to_dict() for m in self.messages],
            "steps": self.steps,
            "usage": self.usage.to_dict(),
            "cost": self.cost,
            "records": [r.to_dict() for r in self.records],
            "scratch": _jsonable(self.scratch),
            "pending": _jsonable(self.pending),
            "last_text": self.last_text,
        }

    @classmethod
    def from_state(
        cls, agent: Agent, state: Mapping[str, Any], context: Any = None
    ) -> AgentSession:
        """Rebuild a session from :meth:`to_state` output.

        Args:
            agent: The agent the session belongs to.
            state: The saved session.
            context: The node's execution context when resumed in a graph, else None.

        Returns:
            The session, marked as checkpointed.

        Raises:
            AgentCheckpointError: The data is not a session.
        """
        try:
            session = cls(agent, str(state["run_id"]), context)
            session.messages = [Message.from_dict(m) for m in state["messages"]]
            session.steps = int(state["steps"])
            session.usage = Usage.from_dict(state.get("usage"))
            session.cost = float(state.get("cost", 0.0))
            session.records = [
                ToolCallRecord.from_dict(r) for r in state.get("records", [])
            ]
            session.scratch = dict(state.get("scratch") or {})
            pending = state.get("pending")
            session.pending = dict(pending) if pending else None
            session.last_text = state.get("last_text")
            session.checkpointed = True
        except (KeyError, TypeError, ValueError) as exc:
            raise AgentCheckpointError(
                f"not an agent session checkpoint: {exc!r}"
            ) from None
        return session


def parse_json_answer(text: str) -> Any:
    """Parse a JSON final answer (a surrounding Markdown code fence is tolerated).

    Args:
        text: The answer text.

    Returns:
        The parsed value.

    Raises:
        ValueError: The text is not JSON; the message says where.
    """
    body = text.strip()
    fenced = _FENCE_RE.match(body)
    if fenced:
        body = fenced.group(1).strip()
    if not body:
        raise ValueError("the answer is empty, expected JSON")
    try:
        return json.loads(body)
    except ValueError as exc:
        raise ValueError(f"it is not JSON ({exc})") from None


_CheckpointPath = Union["os.PathLike[str]", str]


class _LoadCheckpoint:
    """``Agent.load_checkpoint`` is :meth:`Agent.from_checkpoint`; ``agent.load_checkpoint``
    restores a file into ``agent`` (the one name has two documented forms)."""

    @overload
    def __get__(
        self, agent: None, owner: Type[Agent]
    ) -> Callable[[_CheckpointPath, AgentConfig], Agent]: ...

    @overload
    def __get__(
        self, agent: Agent, owner: Optional[Type[Agent]] = None
    ) -> Callable[[_CheckpointPath], Agent]: ...

    def __get__(
        self, agent: Optional[Agent], owner: Optional[Type[Agent]] = None
    ) -> Any:
        return (
            (owner or Agent).from_checkpoint
            if agent is None
            else agent._load_checkpoint_file
        )


class Agent:
    """An LLM agent: ``await agent.run(prompt)`` returns an :class:`AgentResult`.

    Args:
        config: The agent's configuration.
        **kwargs: Or the :class:`AgentConfig` fields directly (``Agent(model=m, tools=[t])``).

    Raises:
        AgentConfigError: Invalid configuration or tools (duplicate names, not callable).
    """

    def __init__(self, config: Optional[AgentConfig] = None, **kwargs: Any) -> None:
        if config is None:
            config = AgentConfig(**kwargs)
        elif kwargs:
            raise AgentConfigError(
                "pass either config=AgentConfig(...) or its fields, not both"
            )
        if not isinstance(config, AgentConfig):
            raise AgentConfigError(
                f"config must be an AgentConfig, got {type(config).__name__}"
            )

        self.config = config
        self.strategy: ReasoningStrategy = config.reasoning_strategy or ReActStrategy()
        self._node: Optional[AgentNode] = None
        try:
            self._executor: ToolExecutor = ToolExecutor(
                [t for t in config.tools if not isinstance(t, str)], config.policy_set
            )
        except ToolError as exc:
            raise AgentConfigError(f"agent {config.name!r}: {exc}") from None
        self._graph_executors: Dict[int, ToolExecutor] = {}
        self._tool_refs = [t for t in config.tools if isinstance(t, str)]
        self.history: List[Message] = []
        self.interactions = 0
        self.total_usage = Usage()
        self.total_cost = 0.0
        self.last_result: Optional[AgentResult] = None
        self._paused: Optional[Dict[str, Any]] = None

    def __repr__(self) -> str:
        model = getattr(self.config.model, "model_id", "?")
        return (
            f"Agent(name={self.config.name!r}, model={model!r}, strategy={self.strategy!r}, "
            f"tools={sorted(self.tools)})"
        )

    # -- public API ---------------------------------------------------------------------

    @property
    def name(self) -> str:
        """The agent's name."""
        return self.config.name

    @property
    def tools(self) -> Dict[str, Any]:
        """The agent's own tools by name (``Tool`` objects; graph tool names excluded)."""
        return self._executor.tools

    def _tools_for(self, context: Any) -> Dict[str, Any]:
        """Own tools plus the graph tools named in ``config.tools`` (checked here)."""
        tools = dict(self._executor.tools)
        if not self._tool_refs:
            return tools
        graph = getattr(context, "graph", None)
        graph_tools = (
            getattr(getattr(graph, "tool_executor", None), "tools", None) or {}
        )
        for name in self._tool_refs:
            if name not in graph_tools:
                where = (
                    "outside a graph"
                    if graph is None
                    else "in a graph without that tool"
                )
                raise AgentConfigError(
                    f"agent {self.name!r} uses the graph tool {name!r} but runs {where} "
                    f"(graph tools: {sorted(graph_tools)})"
                )
            tools[name] = graph_tools[name]
        return tools

    def tool_schemas(self) -> List[Dict[str, Any]]:
        """Return the tools in the OpenAI format (``{"type": "function", "function": ...}``)."""
        return [{"type": "function", "function": s} for s in self._executor.schemas()]

    @property
    def approvals(self) -> ApprovalStore:
        """Approval requests of tool calls made outside a graph (resolve them here)."""
        return self._executor.approvals

    @property
    def paused(self) -> bool:
        """Whether a run is paused, waiting for an approval (call :meth:`resume`)."""
        return self._paused is not None

    async def run(self, prompt: str, *, context: Any = None) -> AgentResult:
        """Answer ``prompt``, calling tools as the strategy and model decide.

        Inside a graph node, pass the node's ``context``: tools then use the graph's state for
        audit and approvals, cost and calls are reported to the graph, and a run paused for an
        approval continues from its checkpoint when the graph resumes (``prompt`` is then
        ignored).

        Args:
            prompt: The task or question.
            context: The node's :class:`~spark_core.nodes.ExecutionContext`, or None.

        Returns:
            The result.

        Raises:
            AgentMaxStepsError: No final answer within ``max_steps`` model calls.
            AgentOutputError: JSON mode and no valid JSON answer after the re-asks.
            ApprovalPendingError: A tool call needs approval (the run is paused, see
                :meth:`resume`).
            ModelError: The model failed (after its own retries).
        """
        saved = await self._graph_checkpoint(context)
        if saved is not None:
            return await self._drive(AgentSession.from_state(self, saved, context))
        if not isinstance(prompt, str):
            raise AgentError(f"agent prompt must be text, got {type(prompt).__name__}")
        if self._paused is not None and context is None:
            raise AgentError(
                f"agent {self.name!r} has a run paused for approval; call resume() or reset()"
            )
        session = AgentSession(self, uuid.uuid4().hex, context)
        system = self._system_prompt(session)
        # Graph runs are independent of each other: conversation memory is for direct use.
        history = list(self.history) if self._remembers(context) else []
        session.messages = [Message.system(system)] + history + [Message.user(prompt)]
        return await self._drive(session)

    def run_sync(self, prompt: str) -> AgentResult:
        """Blocking :meth:`run` (works in notebooks, where a loop is already running).

        Args:
            prompt: The task or question.

        Returns:
            The result.
        """

        result: AgentResult = arun(self.run(prompt))
        return result

    async def resume(self) -> AgentResult:
        """Continue the run paused for an approval (outside a graph), once it was resolved.

        Returns:
            The result of the resumed run.

        Raises:
            AgentError: Nothing is paused.
            ApprovalPendingError: The approval is still pending (or another call needs one).
        """
        if self._paused is None:
            raise AgentError(f"agent {self.name!r} has no paused run to resume")
        session = AgentSession.from_state(self, self._paused)
        return await self._drive(session)

    def reset(self) -> None:
        """Forget the conversation history and any paused run."""
        self.history = []
        self._paused = None

    def as_node(self, name: Optional[str] = None, **kwargs: Any) -> AgentNode:
        """Wrap the agent in a graph node (see :class:`~spark_core.agents.node.AgentNode`).

        Without arguments the agent's own node is returned, the same one every time: it is
        what the graph uses when the agent itself is put in it (``Graph(agent)``,
        ``a >> agent >> b``).

        Args:
            name: Node name (defaults to the agent's name).
            **kwargs: More :class:`AgentNode` arguments.

        Returns:
            The node.
        """
        from spark_core.agents.node import AgentNode

        if name is None and not kwargs:
            if self._node is None:
                self._node = AgentNode(self)
            return self._node
        return AgentNode(self, name=name, **kwargs)

    def __rshift__(self, other: Any) -> Any:
        """``agent >> node``: an edge from the agent's own node (see :meth:`as_node`).

        Args:
            other: The target node (or nodes).

        Returns:
            ``other``, so edges chain.
        """
        return self.as_node() >> other

    # -- checkpoints --------------------------------------------------------------------

    def checkpoint(self) -> Dict[str, Any]:
        """Return the agent's memory as JSON data.

        It holds the conversation history, the totals, the strategy, a run paused for an
        approval (outside a graph) and the approval requests of such runs, so a restored
        agent resumes with the same request ids.

        Returns:
            The checkpoint data (what :meth:`save_checkpoint` writes).
        """

        return {
            "format": _CHECKPOINT_FORMAT,
            "name": self.name,
            "strategy": self.strategy.to_spec(),
            "history": [m.to_dict() for m in self.history],
            "interactions": self.interactions,
            "total_usage": self.total_usage.to_dict(),
            "total_cost": self.total_cost,
            "paused": self._paused,
            "approvals": _jsonable(self._local_approvals().get(APPROVALS_KEY) or {}),
        }

    def restore(self, data: Mapping[str, Any]) -> None:
        """Load :meth:`checkpoint` data into this agent.

        The saved strategy is restored when the agent's config sets none; a config that sets
        another one keeps it, unless a paused run needs the saved one. Approval requests are
        restored too. A run paused for an approval is only restored into an agent with the
        policy set that paused it (the checkpoint names it), so a tool that needed approval
        never runs without one; ``spark_core.agent/1`` checkpoints do not name it, so their
        paused run is refused (the rest restores).

        Args:
            data: Checkpoint data.

        Raises:
            AgentCheckpointError: The data is not an agent checkpoint, or does not fit this
                agent (strategy, policy set); the agent is left unchanged.
        """

        if not isinstance(data, Mapping) or data.get("format") not in (
            _CHECKPOINT_FORMAT,
            *_OLD_CHECKPOINT_FORMATS,
        ):
            raise AgentCheckpointError(
                f"not an agent checkpoint (expected format {_CHECKPOINT_FORMAT!r})"
            )
        try:
            history = [Message.from_dict(m) for m in data["history"]]
            interactions = int(data["interactions"])
            usage = Usage.from_dict(data.get("total_usage"))
            cost = float(data.get("total_cost", 0.0))
            strategy = self._saved_strategy(data.get("strategy"), data.get("paused"))
            paused = data.get("paused")
            approvals = {
                str(k): ApprovalRequest.from_dict(v).to_dict()
                for k, v in dict(data.get("approvals") or {}).items()
            }
            if paused is not None:  # validate before changing anything
                AgentSession.from_state(self, paused)
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise AgentCheckpointError(f"invalid agent checkpoint: {exc!r}") from None
        if paused is not None:
            self._check_paused_policy(paused)
        self.history, self.interactions = history, interactions
        self.total_usage, self.total_cost = usage, cost
        self.strategy = strategy
        self._paused = dict(paused) if paused is not None else None
        self._local_approvals()[APPROVALS_KEY] = approvals

    def save_checkpoint(self, path: "os.PathLike[str] | str") -> None:
        """Write :meth:`checkpoint` to ``path`` as JSON, atomically (temp file + rename).

        Args:
            path: The file to write.

        Raises:
            AgentCheckpointError: The file cannot be written.
        """
        data = json.dumps(self.checkpoint(), indent=2, sort_keys=True)
        write_text_atomic(
            path,
            data,
            error=lambda message: AgentCheckpointError(f"checkpoint: {message}"),
        )

    def _load_checkpoint_file(self, path: "os.PathLike[str] | str") -> Agent:
        """Restore this agent from a file written by :meth:`save_checkpoint`.

        Args:
            path: The checkpoint file.

        Returns:
            This agent (for chaining).

        Raises:
            AgentCheckpointError: Missing, unreadable, not an agent checkpoint, or not fit
                for this agent (see :meth:`restore`); the agent is left unchanged.
        """
        target = os.fspath(path)
        try:
            with open(target, encoding="utf-8") as handle:
                data = json.load(handle)
        except OSError as exc:
            raise AgentCheckpointError(
                f"cannot read checkpoint {target!r}: {exc}"
            ) from None
        except ValueError as exc:
            raise AgentCheckpointError(
                f"checkpoint {target!r} is not JSON: {exc}"
            ) from None
        self.restore(data)
        return self

    #: ``Agent.load_checkpoint(path, config)`` builds an agent from the file;
    #: ``agent.load_checkpoint(path)`` restores it into this one (see :meth:`restore`).
    load_checkpoint = _LoadCheckpoint()

    @classmethod
    def from_checkpoint(
        cls, path: "os.PathLike[str] | str", config: AgentConfig
    ) -> Agent:
        """Build an agent from ``config`` and restore its memory from ``path``.

        ``Agent.load_checkpoint(path, config)`` is the same call.

        Args:
            path: The checkpoint file.
            config: The agent's configuration (models and tools are code, not data).

        Returns:
            The agent.

        Raises:
            AgentConfigError: ``config`` is invalid.
            AgentCheckpointError: The file cannot be restored (see :meth:`restore`).
        """
        return cls(config=config)._load_checkpoint_file(path)

    def _saved_strategy(self, spec: Any, paused: Any) -> ReasoningStrategy:
        """The strategy a restored agent uses (see :meth:`restore`)."""
        if not isinstance(spec, Mapping):  # a checkpoint without one: keep ours
            return self.strategy
        saved_type = str(spec.get("type"))
        if self.config.reasoning_strategy is not None:
            # A paused run's progress (e.g. its plan) belongs to the strategy that made it.
            if paused is not None and saved_type != self.strategy.type_name:
                raise AgentCheckpointError(
                    f"checkpoint of agent {self.name!r} holds a run paused under strategy "
                    f"{saved_type!r}, but this agent is configured with "
                    f"{self.strategy.type_name!r}; use that strategy (or none) to resume it"
                )
            return self.strategy
        if saved_type == self.strategy.type_name and spec.get("config") == (
            self.strategy.config()
        ):
            return self.strategy

        try:
            return strategy_from_spec(saved_type, spec.get("config"))
        except AgentConfigError as exc:
            raise AgentCheckpointError(
                f"checkpoint strategy cannot be rebuilt ({exc}); pass it as "
                "AgentConfig.reasoning_strategy"
            ) from None

    def _check_paused_policy(self, paused: Mapping[str, Any]) -> None:
        """Refuse a paused run unless this agent has the policy set that paused it."""
        saved = paused.get("policy_set")
        policy = getattr(self.config.policy_set, "name", None)
        if (
            not saved
        ):  # every pause comes from a policy set: the file does not say which
            raise AgentCheckpointError(
                f"checkpoint of agent {self.name!r} holds a run paused for approval but not "
                f"the policy set that paused it (format {_OLD_CHECKPOINT_FORMATS[0]!r} "
                "files do not record it), so it cannot resume safely; resume it with the "
                "version that wrote it, or remove 'paused' from the file to drop the run"
            )
        if saved != policy:
            raise AgentCheckpointError(
                f"checkpoint of agent {self.name!r} holds a run paused for approval under "
                f"policy set {saved!r}, but this agent has "
                + (f"policy set {policy!r}" if policy else "no policy set")
                + "; restore it into an agent with that policy set"
            )

    def _local_approvals(self) -> Dict[str, Any]:
        """The state where the approvals of runs outside a graph live (a plain dict)."""
        data: Dict[str, Any] = self.approvals.state.data
        return data

    # -- internals ----------------------------------------------------------------------

    def _remembers(self, context: Any) -> bool:
        return self.config.memory and getattr(context, "graph", None) is None

    def _system_prompt(self, session: AgentSession) -> str:
        parts = [self.config.system_prompt.strip()]
        extra = self.strategy.instructions(session).strip()
        if extra:
            parts.append(extra)
        if self.config.output_mode == "json":
            parts.append(
                "Output format: your final answer must be valid JSON (after 'Final Answer:'), "
                "with no prose or code fences around it."
            )
        return "\n\n".join(p for p in parts if p)

    async def _drive(self, session: AgentSession) -> AgentResult:
        if session.pending is not None:
            await session.finish_pending()
        text = await self.strategy.run(session)
        # Done: forget the checkpoint. (A paused or failed run keeps its up-to-date one, so
        # resuming it continues from its last finished tool step.)
        if self._checkpoint_key(session.context) is None:
            self._paused = None
        elif session.checkpointed:
            await self._clear_graph_checkpoint(session)
        result = AgentResult(
            answer=session.final_value,
            text=text,
            transcript=[m.to_dict() for m in session.messages],
            tool_calls=list(session.records),
            steps=session.steps,
            usage=session.usage,
            cost=session.cost,
            plan=session.scratch.get("plan"),
            run_id=session.run_id,
        )
        if self._remembers(session.context):
            self.history = session.messages[1:]
        self.interactions += 1
        self.total_usage = self.total_usage + session.usage
        self.total_cost += session.cost
        self.last_result = result
        return result

    def _executor_of(self, session: AgentSession, name: str) -> Any:
        if name in self._executor.tools or name not in session.tools:
            return self._executor_for(session.context)
        return (
            session.context.graph.tool_executor
        )  # a graph tool, under the graph's policy

    def _executor_for(self, context: Any) -> ToolExecutor:
        if self.config.policy_set is not None or context is None:
            return self._executor
        graph_executor = getattr(getattr(context, "graph", None), "tool_executor", None)
        graph_policy = getattr(graph_executor, "policy_set", None)
        if graph_policy is None:
            return self._executor
        executor = self._graph_executors.get(id(graph_policy))
        if executor is None:
            executor = ToolExecutor(list(self.tools.values()), graph_policy)
            self._graph_executors[id(graph_policy)] = executor
        return executor

    async def _run_tool(
        self, session: AgentSession, call: ToolCall, step: int
    ) -> ToolCallRecord:
        """Run one call through the governed executor; refusals and failures become records."""

        def record(
            status: str, result: Any = None, error: Optional[str] = None
        ) -> ToolCallRecord:
            return ToolCallRecord(
                call.id, call.name, call.arguments, status, result, error, step
            )

        if call.error is not None:
            return record("error", error=f"tool {call.name!r}: {call.error}")
        context = session.context
        if context is None:  # alone: identify the call for approvals without a graph
            context = {
                "run_id": session.run_id,
                "node_id": f"agent:{self.name}",
                "agent": self.name,
            }
        started = time.perf_counter()
        attributes = {
            "agent": self.name,
            "tool": call.name,
            "call_id": call.id,
            "step": step,
        }
        async with agent_span(session.context, "tool_call", attributes) as span:
            try:
                result = await self._executor_of(session, call.name).call(
                    call.name, call.arguments, context
                )
                outcome = record("ok", result=result)
            except PolicyViolationError as exc:
                outcome = record("denied", error=str(exc))
            except RunStopped as exc:
                if span is not None:
                    span.set_status("paused", f"{type(exc).__name__}: {exc}")
                raise
            except ToolError as exc:
                outcome = record("error", error=str(exc))
            except (
                Exception
            ) as exc:  # the tool itself failed: tell the model, keep going
                outcome = record("error", error=f"{type(exc).__name__}: {exc}")
            if span is not None:
                span.set_attribute("status", outcome.status)
                if outcome.status != "ok":
                    span.set_status("error", outcome.error)
        logger.debug("agent %s tool %s -> %s", self.name, call.name, outcome.status)
        await self._report_tool_call(session, outcome, time.perf_counter() - started)
        return outcome

    # -- graph integration ----------------------------------------------------------------

    @staticmethod
    def _checkpoint_key(context: Any) -> Optional[str]:
        state = getattr(context, "graph_state", None)
        if context is None or state is None:
            return None
        node_id = (getattr(context, "metadata", None) or {}).get("node_id")
        return f"{CHECKPOINT_KEY_PREFIX}{node_id}:{context.run_id}"

    async def _graph_checkpoint(self, context: Any) -> Optional[Dict[str, Any]]:
        key = self._checkpoint_key(context)
        if key is None:
            return None
        saved = await context.graph_state.get(key)
        if isinstance(saved, Mapping) and saved.get("run_id") == context.run_id:
            session = saved.get("session")
            return dict(session) if isinstance(session, Mapping) else None
        return None

    async def _checkpoint(self, session: AgentSession) -> None:
        """Save the session: in graph state when in a graph, else in the agent's memory.

        A graph's paused run is never kept in the agent's memory: resumed alone (or from a
        saved agent checkpoint) it would run outside the graph's policy set and approvals.
        """
        session.checkpointed = True
        state = session.to_state()
        key = self._checkpoint_key(session.context)
        if key is None:
            # Named so that a restored run resumes only under the policy set that paused it.
            state["policy_set"] = getattr(self.config.policy_set, "name", None)
            self._paused = state
        else:
            context = session.context
            await context.graph_state.set(
                key, {"run_id": context.run_id, "session": state}
            )

    async def _clear_graph_checkpoint(self, session: AgentSession) -> None:
        key = self._checkpoint_key(session.context)
        if key is not None and await session.context.graph_state.get(key) is not None:
            await session.context.graph_state.set(key, None)

    async def _report_llm_call(
        self,
        session: AgentSession,
        response: ModelResponse,
        cost: float,
        duration: float,
    ) -> None:
        context = session.context
        if context is None:
            return
        from spark_core.agents.node import report_llm_call

        await report_llm_call(self, context, session, response, cost, duration)

    async def _report_tool_call(
        self, session: AgentSession, record: ToolCallRecord, duration: float
    ) -> None:
        context = session.context
        if context is None:
            return
        from spark_core.agents.node import report_tool_call

        await report_tool_call(self, context, session, record, duration)
