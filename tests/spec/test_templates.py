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
