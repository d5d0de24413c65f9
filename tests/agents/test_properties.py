"""Property tests: wire-format round trips and parsers that never crash on model text."""

from __future__ import annotations

import json
from typing import Any, Dict

from hypothesis import given, settings
from hypothesis import strategies as st

from spark_core.agents.agent import parse_json_answer
from spark_core.agents.strategies import (
    extract_final_answer,
    parse_plan,
    parse_text_actions,
)
from spark_core.models import Message, ToolCall, Usage

names = st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,20}", fullmatch=True)
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.text(max_size=20)
    | st.floats(allow_nan=False, allow_infinity=False),
    lambda inner: st.lists(inner, max_size=4)
    | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)
arguments = st.dictionaries(st.text(max_size=10), json_values, max_size=4)
tool_calls = st.builds(ToolCall, id=names, name=names, arguments=arguments)


@settings(max_examples=60, deadline=None)
@given(
    role=st.sampled_from(["system", "user", "assistant", "tool"]),
    content=st.none() | st.text(max_size=50),
    calls=st.lists(tool_calls, max_size=3),
)
def test_message_round_trips_the_wire_format(
    role: str, content: Any, calls: Any
) -> None:
    message = Message(role, content, calls if role == "assistant" else [])
    wire = json.loads(json.dumps(message.to_dict()))  # what really travels
    assert Message.from_dict(wire) == message


@settings(max_examples=60, deadline=None)
@given(st.text(max_size=300))
def test_parsers_never_crash_on_model_text(text: str) -> None:
    for call in parse_text_actions(text):
        assert isinstance(call.arguments, dict)
    extract_final_answer(text)
    # Steps are what a plan line says, without the whitespace around it (a CRLF reply's
    # "\r" included): never empty, never padded.
    assert all(step and step == step.strip() for step in parse_plan(text))


# One line of text: no line breaks of any kind (str.splitlines' set).
line = st.text(max_size=40).filter(
    lambda t: not any(c in t for c in "\n\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029")
)


@settings(max_examples=60, deadline=None)
@given(
    steps=st.lists(line.map(str.strip).filter(bool), min_size=1, max_size=6),
    newline=st.sampled_from(["\n", "\r\n"]),
)
def test_a_numbered_plan_reads_back(steps: Any, newline: str) -> None:
    text = f"Here is the plan:{newline}" + newline.join(
        f"{i}. {step}" for i, step in enumerate(steps, 1)
    )
    assert parse_plan(text) == steps


@settings(max_examples=60, deadline=None)
@given(
    prose=st.text(alphabet=st.characters(blacklist_characters=":"), max_size=60),
    answer=st.text(max_size=40),
    markup=st.sampled_from(["", "## ", "###### ", "> ", ">", "**", "### **", "> **"]),
)
def test_the_answer_is_what_follows_the_first_line_start_marker(
    prose: str, answer: str, markup: str
) -> None:
    # Mid-line, "final answer:" is prose (the prose itself has no colon, so no marker).
    assert extract_final_answer(prose + " the final answer: x") is None
    assert extract_final_answer(f"{prose}\n{markup}see the Final Answer: x") is None
    # At a line start, after a Markdown heading, quote or bold, it is the marker.
    close = "**" if markup.endswith("**") else ""
    text = f"{prose}\n{markup}Final Answer:{close} {answer}"
    assert extract_final_answer(text) == answer.strip()


@settings(max_examples=60, deadline=None)
@given(
    name=names,
    args=arguments,
    thought=line,
)
def test_text_actions_recover_the_arguments(
    name: str, args: Dict[str, Any], thought: str
) -> None:
    text = f"Thought: {thought}\nAction: {name}[{json.dumps(args)}]"
    calls = parse_text_actions(text)
    assert [(c.name, c.arguments, c.error) for c in calls] == [(name, args, None)]


@settings(max_examples=60, deadline=None)
@given(value=json_values, fenced=st.booleans())
def test_json_answers_parse_back(value: Any, fenced: bool) -> None:
    text = json.dumps(value)
    if fenced:
        text = f"```json\n{text}\n```"
    assert parse_json_answer(text) == value


@given(a=st.integers(0, 10**6), b=st.integers(0, 10**6), c=st.integers(0, 10**6))
def test_usage_adds_up(a: int, b: int, c: int) -> None:
    total = Usage(a, b) + Usage(c, 0)
    assert total.total_tokens == a + b + c
    assert Usage.from_dict(total.to_dict()) == total
