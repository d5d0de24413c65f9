"""Spec templates fill only plain {name} placeholders: TemplateNode and AgentNode alike."""

from __future__ import annotations

import pytest

from spark_core.agents.errors import AgentError
from spark_core.agents.node import AgentNode
from spark_core.spec.builtin_nodes import fill_template

# str.format would reach into Python objects with the first and build a 100 MB string with
# the second (or run out of memory with a larger width).
HOSTILE = "{prompt.__class__.__mro__} {prompt[0]} {prompt:>99999999} {0} {}"


def test_fill_template_replaces_plain_names_only() -> None:
    values = {"prompt": "hi", "n": 3}
    assert fill_template("say {prompt} {n} times", values) == "say hi 3 times"
    assert fill_template(HOSTILE, values) == HOSTILE
    assert fill_template("{missing}!", values) == "!"
    with pytest.raises(KeyError, match="missing"):
        fill_template("{missing}!", values, strict=True)


def test_agent_prompt_template_is_sandboxed_like_the_template_node() -> None:
    node = AgentNode(
        name="a",
        model={"provider": "echo"},
        prompt_template="Summarise {text}. " + HOSTILE,
    )
    prompt = node.prompt_for({"text": "the news", "prompt": "p"})
    assert prompt == "Summarise the news. " + HOSTILE
    with pytest.raises(AgentError, match="prompt_template needs input key 'text'"):
        node.prompt_for({"prompt": "p"})


def test_agent_prompt_template_reads_doubled_braces_as_str_format_does() -> None:
    template = 'Reply as {{"a": 1}} about {topic}; write {{topic}} as is. {{{topic}}}'
    node = AgentNode(name="a", model={"provider": "echo"}, prompt_template=template)
    expected = 'Reply as {"a": 1} about x; write {topic} as is. {x}'
    assert template.format(topic="x") == expected  # what it meant before
    assert node.prompt_for({"topic": "x"}) == expected
    assert node.prompt_for({"topic": "x", "prompt": "p"}) == expected
    # Still no attribute access, index or format spec behind the escapes.
    assert fill_template("{{" + HOSTILE + "}}", {"prompt": "p"}, escapes=True) == (
        "{" + HOSTILE + "}"
    )


def test_the_template_node_keeps_doubled_braces_as_written() -> None:
    # Its documented rule: only {name} is replaced, everything else stays literal.
    assert fill_template("{{topic}} {{", {"topic": "x"}) == "{x} {{"
