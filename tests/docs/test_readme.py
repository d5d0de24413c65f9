"""The README's ``python`` code blocks run as written (``py`` blocks are fragments).

Each block runs in a fresh interpreter with ``AI_SPINE_BASE_URL`` pointing at a demo server on
loopback, so the quick start talks to a real ``ai-spine serve`` equivalent.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Iterator, List

import pytest

from ai_spine import LocalSpine
from ai_spine.demo import register_demo_flows
from ai_spine.server import SpineServer

README = Path(__file__).resolve().parents[2] / "README.md"
BLOCK = re.compile(r"^```python\n(.*?)^```", re.DOTALL | re.MULTILINE)


def python_blocks() -> List[str]:
    """Return the README's runnable code blocks, in order."""
    return BLOCK.findall(README.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def demo_url() -> Iterator[str]:
    spine = LocalSpine()
    register_demo_flows(spine)
    with SpineServer(spine) as server:
        yield server.url


def test_the_readme_has_runnable_blocks() -> None:
    assert len(python_blocks()) >= 3


@pytest.mark.parametrize("index", range(len(python_blocks())))
def test_readme_block_runs(index: int, demo_url: str, tmp_path: Path) -> None:
    script = tmp_path / f"block_{index}.py"
    script.write_text(python_blocks()[index], encoding="utf-8")
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
    assert done.stdout.strip(), "a README example should show its result"
