"""Reasoning strategies: how an agent prompts the model and reads its replies.

Each strategy is a real prompting and parsing loop over an agent session:

* :class:`ReActStrategy` — Thought / Action / Observation: the model calls tools (natively,
  or in text as ``Action: tool_name[{"arg": 1}]``), reads the results, and ends with
  ``Final Answer: ...``. A text action written before the marker runs first.
* :class:`ChainOfThoughtStrategy` — the model reasons step by step and ends with
  ``Final Answer: ...``; the answer is extracted from that line (asked for once if missing).
* :class:`PlanAndSolveStrategy` — the model first writes a numbered plan (no tools), then
  carries it out with tools and ends with ``Final Answer: ...``.

Markers (``Final Answer:``, ``Action:``, ``Observation:``, ``Thought:``, plan steps) count
only at the start of a line (``Final Answer:`` also after a Markdown heading ``##`` or quote
``>``, and in bold); the first ``Final Answer:`` wins and the rest of the reply is the answer.

Specs bind strategies by name: :func:`strategy_from_spec` builds one from
``("react" | "chain_of_thought" | "plan_and_solve", config)``.
"""

from __future__ import annotations

import json
import logging
import re
from typing import TYPE_CHECKING, Any, Dict, List, Mapping, Optional, Tuple, Type

from spark_core.agents.errors import AgentConfigError
from spark_core.models.base import ModelResponse, ToolCall

if TYPE_CHECKING:  # pragma: no cover
    from spark_core.agents.agent import AgentSession

__all__ = [
    "ReasoningStrategy",
    "ReActStrategy",
    "ChainOfThoughtStrategy",
    "PlanAndSolveStrategy",
    "strategy_from_spec",
    "strategy_class",
    "STRATEGY_TYPES",
    "extract_final_answer",
    "parse_text_actions",
    "parse_plan",
]

logger = logging.getLogger("spark_core.agents.strategies")

# Only at a line start (after a Markdown heading or quote mark, bold tolerated): "the final
# answer: once I look it up" in a thought, or inside a JSON answer's string, is prose.
_FINAL_RE = re.compile(
    r"^[ \t]*(?:(?:#{1,6}|>)[ \t]*)?[*_]{0,2}final[ \t]+answer[*_]{0,2}[ \t]*:[*_]{0,2}",
    re.I | re.M,
)
_ACTION_RE = re.compile(
    r"^[ \t]*action[ \t]*:[ \t]*([A-Za-z_][A-Za-z0-9_.-]*)[ \t]*", re.I | re.M
)
_ACTION_INPUT_RE = re.compile(r"^[ \t]*action[ \t]+input[ \t]*:[ \t]*", re.I | re.M)
_OBSERVATION_RE = re.compile(r"^[ \t]*observation[ \t]*:", re.I | re.M)
_THOUGHT_RE = re.compile(r"^[ \t]*thought[ \t]*:[ \t]*(.*)$", re.I | re.M)
_PLAN_RE = re.compile(
    r"^[ \t]*(?:step[ \t]*)?(\d{1,3})[ \t]*[.):][ \t]+(.+?)[ \t]*$", re.I | re.M
)
_DECODER = json.JSONDecoder()

FINAL_ANSWER_HINT = (
    "When you have the answer, reply with a last line 'Final Answer: <answer>'."
)


def extract_final_answer(text: Optional[str]) -> Optional[str]:
    """Return what follows the first ``Final Answer:`` marker, or None if there is none.

    The marker counts only at the start of a line, also after a Markdown heading or quote
    mark and in bold (``## Final Answer:``, ``> Final Answer:``, ``**Final Answer:**``).

    Args:
        text: A model reply.

    Returns:
        The answer text (stripped; may span lines), or None.
    """
    return _split_final(text or "")[1]


def _split_final(text: str) -> Tuple[str, Optional[str]]:
    """``text`` before the first ``Final Answer:`` marker, and the answer (None: no marker)."""
    match = _FINAL_RE.search(text)
    if match is None:
        return text, None
    return text[: match.start()], text[match.end() :].strip()


def parse_text_actions(text: Optional[str], id_prefix: str = "act") -> List[ToolCall]:
    """Read ReAct text actions from a reply.

    Understands ``Action: name[{"json": "args"}]`` (also ``name[]``) and the two-line form
    ``Action: name`` / ``Action Input: {"json": "args"}``. Anything after a made-up
    ``Observation:`` is ignored, since the model must wait for the real one.

    Args:
        text: A model reply.
        id_prefix: Prefix of the generated call ids.

    Returns:
        The tool calls (empty when there is no action). A call whose arguments are not a JSON
        object has ``error`` set.
    """
    if not text:
        return []
    cut = _OBSERVATION_RE.search(text)
    if cut:
        text = text[: cut.start()]
    calls: List[ToolCall] = []
    for index, match in enumerate(_ACTION_RE.finditer(text)):
        name = match.group(1)
        call_id = f"{id_prefix}_{index}"
        rest = text[match.end() :]
        arguments: Any = {}
        problem: Optional[str] = None
        if rest.startswith("["):
            body = rest[1:].lstrip()
            if body.startswith("]"):
                arguments = {}
            else:
                arguments, problem = _decode_json_prefix(body)
        else:
            follow = _ACTION_INPUT_RE.search(rest)
            next_action = _ACTION_RE.search(rest)
            if follow and (next_action is None or follow.start() < next_action.start()):
                arguments, problem = _decode_json_prefix(rest[follow.end() :])
        if problem is None and not isinstance(arguments, dict):
            problem = "arguments must be a JSON object"
        if problem is not None:
            calls.append(ToolCall(call_id, name, {}, error=problem))
        else:
            calls.append(ToolCall(call_id, name, arguments))
    return calls


def _decode_json_prefix(text: str) -> Tuple[Any, Optional[str]]:
    try:
        value, _ = _DECODER.raw_decode(text.lstrip())
    except ValueError as exc:
        return None, f"arguments are not valid JSON ({exc})"
    return value, None


def parse_plan(text: Optional[str]) -> List[str]:
    """Read a numbered plan (``1. do x`` / ``2) do y`` / ``Step 3: z``) from a reply.

    Args:
        text: A model reply.

    Returns:
        The step descriptions in order (empty when no numbered line was found).
    """
    if not text:
        return []
    steps = (m.group(2).strip() for m in _PLAN_RE.finditer(text))
    return [step for step in steps if step]  # "1. x\r\n" is "x", not "x\r"


class ReasoningStrategy:
    """Base class: a strategy drives an agent session until it has a final answer.

    Subclasses implement :meth:`run` (usually on top of :meth:`act_loop`) and may add
    :meth:`instructions` to the system prompt. A strategy's per-run progress must live in
    ``session.scratch`` (a JSON-serialisable dict) so a paused run resumes where it stopped.
    """

    #: The name used by specs (``strategy_from_spec``).
    type_name = "base"

    def instructions(self, session: AgentSession) -> str:
        """Text appended to the system prompt (empty by default).

        Args:
            session: The running session (tools, output mode).

        Returns:
            Instructions for the model.
        """
        return ""

    async def run(self, session: AgentSession) -> str:
        """Drive the session to a final answer.

        Args:
            session: The running session.

        Returns:
            The final answer text.

        Raises:
            NotImplementedError: Subclasses must implement it.
        """
        raise NotImplementedError

    def config(self) -> Dict[str, Any]:
        """This strategy's settings, as accepted by :func:`strategy_from_spec`."""
        return {}

    def to_spec(self) -> Dict[str, Any]:
        """Return ``{"type": ..., "config": {...}}`` for a spec binding."""
        return {"type": self.type_name, "config": self.config()}

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.config().items())
        return f"{type(self).__name__}({args})"

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, ReasoningStrategy)
            and type(other) is type(self)
            and (other.config() == self.config())
        )

    __hash__ = None  # type: ignore[assignment]

    def on_reply(self, response: ModelResponse) -> None:
        """Hook called with every model reply (logging); does nothing by default.

        Args:
            response: The reply.
        """

    async def act_loop(
        self,
        session: AgentSession,
        *,
        native_tools: bool,
        text_actions: bool,
        require_marker: bool,
    ) -> str:
        """The shared loop: ask, run the tools the model asked for, repeat until an answer.

        Args:
            session: The running session.
            native_tools: Send tool schemas to the model and accept its native tool calls.
            text_actions: Accept ``Action: tool[json]`` in the reply text.
            require_marker: Ask once more when the reply has no ``Final Answer:`` line
                (afterwards the whole reply is taken as the answer).

        Returns:
            The final answer text.
        """
        while True:
            response = await session.ask(tools=native_tools)
            self.on_reply(response)
            text = response.text or ""
            if response.tool_calls:
                await session.act(response.tool_calls, "native")
                continue
            before, answer = _split_final(text)
            if text_actions:
                # An action written before the marker runs first: an answer given before
                # its observation came back is a guess.
                calls = parse_text_actions(before, id_prefix=f"act{session.steps}")
                if calls:
                    await session.act(calls, "text")
                    continue
            if not answer:
                retries = int(session.scratch.get("format_retries", 0))
                if (require_marker or not text.strip()) and retries < 1:
                    session.scratch["format_retries"] = retries + 1
                    session.say(f"Please finish now. {FINAL_ANSWER_HINT}")
                    continue
                answer = text.strip()
            feedback = session.check_final(answer)
            if feedback is not None:
                session.say(feedback)
                continue
            return answer


class ReActStrategy(ReasoningStrategy):
    """Reason + Act: think, call a tool, observe its result, repeat, then answer.

    Args:
        verbose: Log each ``Thought:`` and action at INFO on ``spark_core.agents.strategies``.
        mode: ``"auto"`` (native tool calls, and text actions too), ``"native"`` (only the
            model's native tool calls) or ``"text"`` (tools described in the prompt and called
            as ``Action: name[{json}]``, for models without function calling).

    Raises:
        AgentConfigError: On an unknown mode.
    """

    type_name = "react"
    _MODES = ("auto", "native", "text")

    def __init__(self, verbose: bool = False, mode: str = "auto") -> None:
        if mode not in self._MODES:
            raise AgentConfigError(
                f"ReActStrategy mode must be one of {self._MODES}, got {mode!r}"
            )
        self.verbose = bool(verbose)
        self.mode = mode

    def config(self) -> Dict[str, Any]:
        """Return ``{"verbose", "mode"}``."""
        return {"verbose": self.verbose, "mode": self.mode}

    def instructions(self, session: AgentSession) -> str:
        """Describe the Thought / Action / Observation loop (and the tools in text mode).

        Args:
            session: The running session.

        Returns:
            Instructions for the model.
        """
        lines = [
            "Work in a loop: write 'Thought: ...' about what to do next; when you need "
            "information or an effect, use a tool; read its result (the Observation); repeat.",
        ]
        if session.has_tools and self.mode == "text":
            lines += [
                "Available tools:",
                session.tool_catalogue(),
                "To use a tool, reply with 'Thought: <why>' then a line "
                'Action: tool_name[{"argument": "value"}] (a JSON object of arguments) and stop: '
                "the result comes back as 'Observation: ...'.",
            ]
        lines.append(FINAL_ANSWER_HINT)
        return "\n".join(lines)

    def on_reply(self, response: ModelResponse) -> None:
        """Log thoughts and actions when ``verbose``.

        Args:
            response: The reply.
        """
        if not self.verbose:
            return
        for thought in _THOUGHT_RE.findall(response.text or ""):
            logger.info("Thought: %s", thought.strip())
        for call in response.tool_calls:
            logger.info("Action: %s %s", call.name, json.dumps(call.arguments))

    async def run(self, session: AgentSession) -> str:
        """Run the ReAct loop.

        Args:
            session: The running session.

        Returns:
            The final answer text.
        """
        return await self.act_loop(
            session,
            native_tools=session.has_tools and self.mode != "text",
            text_actions=session.has_tools and self.mode != "native",
            require_marker=False,
        )


class ChainOfThoughtStrategy(ReasoningStrategy):
    """Step-by-step reasoning ending with a ``Final Answer:`` line, which is extracted.

    Tools stay available (native tool calls). If the reply has no ``Final Answer:`` line the
    model is asked once to add it; after that the whole reply is the answer.
    """

    type_name = "chain_of_thought"

    def instructions(self, session: AgentSession) -> str:
        """Ask for visible step-by-step reasoning and a final answer line.

        Args:
            session: The running session.

        Returns:
            Instructions for the model.
        """
        return (
            "Think step by step: write out your reasoning first, checking each step. "
            + FINAL_ANSWER_HINT
        )

    async def run(self, session: AgentSession) -> str:
        """Ask, extract the final answer.

        Args:
            session: The running session.

        Returns:
            The final answer text.
        """
        return await self.act_loop(
            session,
            native_tools=session.has_tools,
            text_actions=False,
            require_marker=True,
        )


class PlanAndSolveStrategy(ReasoningStrategy):
    """First a numbered plan (the model is given no tools), then its execution with tools.

    The plan is kept in ``session.scratch["plan"]`` and returned in ``AgentResult.plan``.

    Args:
        max_plan_steps: Most steps asked for in the plan.

    Raises:
        AgentConfigError: If ``max_plan_steps`` < 1.
    """

    type_name = "plan_and_solve"

    def __init__(self, max_plan_steps: int = 8) -> None:
        if isinstance(max_plan_steps, bool) or not isinstance(max_plan_steps, int):
            raise AgentConfigError("PlanAndSolveStrategy max_plan_steps must be an int")
        if max_plan_steps < 1:
            raise AgentConfigError(
                f"PlanAndSolveStrategy max_plan_steps must be >= 1, got {max_plan_steps}"
            )
        self.max_plan_steps = max_plan_steps

    def config(self) -> Dict[str, Any]:
        """Return ``{"max_plan_steps"}``."""
        return {"max_plan_steps": self.max_plan_steps}

    def instructions(self, session: AgentSession) -> str:
        """Announce the two phases.

        Args:
            session: The running session.

        Returns:
            Instructions for the model.
        """
        return "You solve tasks in two phases: first you write a plan, then you carry it out."

    async def run(self, session: AgentSession) -> str:
        """Plan (once per run, kept across a pause), then solve.

        Args:
            session: The running session.

        Returns:
            The final answer text.
        """
        if "plan" not in session.scratch:
            session.say(
                "First, devise a plan: reply ONLY with a numbered list (1., 2., ...) of at most "
                f"{self.max_plan_steps} steps that solve the task. Do not carry it out yet."
            )
            response = await session.ask(tools=False)
            plan = parse_plan(response.text)
            if not plan:
                session.say(
                    "That was not a numbered list. Reply only with the numbered plan."
                )
                response = await session.ask(tools=False)
                plan = parse_plan(response.text) or [(response.text or "").strip()]
            session.scratch["plan"] = plan[: self.max_plan_steps]
            session.say(
                "Now carry out the plan step by step"
                + (", using the tools when needed" if session.has_tools else "")
                + f". {FINAL_ANSWER_HINT}"
            )
        return await self.act_loop(
            session,
            native_tools=session.has_tools,
            text_actions=False,
            require_marker=True,
        )


#: Spec type names -> strategy classes (``"cot"`` is an alias of ``"chain_of_thought"``).
STRATEGY_TYPES: Dict[str, Type[ReasoningStrategy]] = {
    "react": ReActStrategy,
    "chain_of_thought": ChainOfThoughtStrategy,
    "cot": ChainOfThoughtStrategy,
    "plan_and_solve": PlanAndSolveStrategy,
}

_ALLOWED_CONFIG: Dict[Type[ReasoningStrategy], Tuple[str, ...]] = {
    ReActStrategy: ("verbose", "mode"),
    ChainOfThoughtStrategy: (),
    PlanAndSolveStrategy: ("max_plan_steps",),
}


def strategy_class(type: str) -> Type[ReasoningStrategy]:
    """Return the strategy class a spec type name stands for.

    Args:
        type: ``"react"``, ``"chain_of_thought"`` (or ``"cot"``) or ``"plan_and_solve"``;
            case-insensitive, ``-`` accepted for ``_``.

    Returns:
        The class (its ``type_name`` is the canonical name).

    Raises:
        AgentConfigError: On an unknown type, listing the known ones.
    """
    cls = STRATEGY_TYPES.get(str(type).strip().lower().replace("-", "_"))
    if cls is None:
        known = ", ".join(sorted(STRATEGY_TYPES))
        raise AgentConfigError(
            f"unknown reasoning strategy type {type!r} (known: {known})"
        )
    return cls


def strategy_from_spec(
    type: str, config: Optional[Mapping[str, Any]] = None
) -> ReasoningStrategy:
    """Build a strategy from a spec binding (``MissionStrategyBindingSpec``).

    Args:
        type: ``"react"``, ``"chain_of_thought"`` (or ``"cot"``) or ``"plan_and_solve"``;
            case-insensitive, ``-`` accepted for ``_``.
        config: The strategy's settings: ``{"verbose", "mode"}`` for ReAct,
            ``{"max_plan_steps"}`` for Plan-and-Solve, nothing for Chain-of-Thought.

    Returns:
        The strategy.

    Raises:
        AgentConfigError: On an unknown type or an unknown/invalid config key, naming it.
    """
    cls = strategy_class(type)
    key = cls.type_name
    settings = dict(config or {})
    allowed = _ALLOWED_CONFIG[cls]
    unknown = sorted(k for k in settings if k not in allowed)
    if unknown:
        raise AgentConfigError(
            f"strategy {key!r} does not accept config key(s) {unknown} "
            f"(accepted: {list(allowed) or 'none'})"
        )
    try:
        return cls(**settings)
    except TypeError as exc:  # pragma: no cover - guarded by the allowed keys above
        raise AgentConfigError(f"invalid config for strategy {key!r}: {exc}") from None
