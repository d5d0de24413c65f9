"""The ``ai-spine`` console script and ``python -m ai_spine``, run as a user runs them."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path
from typing import List

import pytest

from ai_spine import __version__

# Next to the interpreter running the tests (the venv's bin), else on PATH.
_NEXT_TO_PYTHON = Path(sys.executable).with_name("ai-spine")
AI_SPINE = (
    str(_NEXT_TO_PYTHON) if _NEXT_TO_PYTHON.exists() else shutil.which("ai-spine")
)

needs_script = pytest.mark.skipif(
    AI_SPINE is None, reason="the ai-spine console script is not installed"
)


def run(argv: List[str]) -> "subprocess.CompletedProcess[str]":
    return subprocess.run(argv, capture_output=True, text=True, timeout=60)


@needs_script
def test_version_prints_the_package_version() -> None:
    assert AI_SPINE is not None
    proc = run([AI_SPINE, "--version"])
    assert (proc.returncode, proc.stdout, proc.stderr) == (
        0,
        f"ai-spine {__version__}\n",
        "",
    )


def test_python_dash_m_ai_spine_is_the_command_line() -> None:
    proc = run([sys.executable, "-m", "ai_spine", "--version"])
    assert (proc.returncode, proc.stdout) == (0, f"ai-spine {__version__}\n")
    usage = run([sys.executable, "-m", "ai_spine"])
    assert usage.returncode == 2 and usage.stdout == ""
    assert (
        usage.stderr.startswith("ai-spine: error: ") and usage.stderr.count("\n") == 1
    )
