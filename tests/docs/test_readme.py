"""The README's ``python`` code blocks run as written and print what they say they print.

Each block runs in a fresh interpreter with ``AI_SPINE_BASE_URL`` pointing at a demo server on
loopback, so the quick start talks to a real ``ai-spine serve`` equivalent. A ``print(...)``
whose line ends in a comment states that line of output (``print(x)  # completed {...}``);
``py`` blocks are fragments and are not run.
"""

from __future__ import annotations

import ast
import io
import os
import re
import subprocess
import sys
import tokenize
from pathlib import Path
from typing import Dict, Iterator, List, NamedTuple, Optional

import pytest

from ai_spine import LocalSpine
from ai_spine.demo import register_demo_flows
from ai_spine.server import SpineServer

README = Path(__file__).resolve().parents[2] / "README.md"
BLOCK = re.compile(r"^```python\n(.*?)^```", re.DOTALL | re.MULTILINE)
HEADING = re.compile(r"^## (.+)$", re.MULTILINE)
#: Sections whose examples must state every line they print.
STATED_SECTIONS = ("Local and remote",)


class Block(NamedTuple):
    """One runnable README block: its code, its section, and the output it states."""

    code: str
    section: str
    stated: List[Optional[str]]  # per print() call in source order; None: not stated


def stated_output(code: str) -> List[Optional[str]]:
    """The trailing comment of each ``print(...)`` line, in source order."""
    comments: Dict[int, str] = {}
    for token in tokenize.generate_tokens(io.StringIO(code).readline):
        if token.type == tokenize.COMMENT:
            comments[token.start[0]] = token.string.lstrip("#").strip()
    prints = sorted(
        node.lineno
        for node in ast.walk(ast.parse(code))
        if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "print"
    )
    return [comments.get(line) for line in prints]


def readme_blocks() -> List[Block]:
    """Return the README's runnable code blocks, in order."""
    text = README.read_text(encoding="utf-8")
    blocks = []
    for match in BLOCK.finditer(text):
        headings = HEADING.findall(text, 0, match.start())
        section = headings[-1] if headings else ""
        blocks.append(Block(match.group(1), section, stated_output(match.group(1))))
    return blocks


@pytest.fixture(scope="module")
def demo_url() -> Iterator[str]:
    spine = LocalSpine()
    register_demo_flows(spine)
    with SpineServer(spine) as server:
        yield server.url
    spine.close()


def test_the_readme_has_runnable_blocks() -> None:
    assert len(readme_blocks()) >= 3


def test_stated_output_reads_the_comment_of_each_print() -> None:
    code = 'x = 1  # not a print\nprint("a")  # a\nprint("b")\nprint("#")  # "#"\n'
    assert stated_output(code) == ["a", None, '"#"']


@pytest.mark.parametrize("index", range(len(readme_blocks())))
def test_readme_block_prints_what_it_says(
    index: int, demo_url: str, tmp_path: Path
) -> None:
    block = readme_blocks()[index]
    if block.section in STATED_SECTIONS:
        assert (
            block.stated and None not in block.stated
        ), f"a block in '{block.section}' must state what each print() shows"
    script = tmp_path / f"block_{index}.py"
    script.write_text(block.code, encoding="utf-8")
    env = dict(os.environ, AI_SPINE_BASE_URL=demo_url)
    env.pop("AI_SPINE_API_KEY", None)
    done = subprocess.run(
        [sys.executable, str(script)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines, "a README example should show its result"
    if None not in block.stated:  # every line stated: the output is exactly that
        assert lines == block.stated
