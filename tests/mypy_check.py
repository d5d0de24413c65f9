"""Run ``mypy --strict`` on files in a subprocess, for the typing tests."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def mypy_strict(cache: Path, *files: Path) -> "subprocess.CompletedProcess[str]":
    """Run ``mypy --strict`` on ``files`` from the project root with its own cache.

    Args:
        cache: A directory for mypy's cache (a test's tmp_path).
        *files: The files to check.

    Returns:
        The finished process (mypy's report is on stdout).
    """
    # A plain subprocess: no coverage tracing of mypy itself.
    env = {k: v for k, v in os.environ.items() if not k.startswith("COV_CORE")}
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "mypy",
            "--strict",
            "--no-error-summary",
            "--show-error-codes",
            "--cache-dir",
            str(cache / "mypy-cache"),
            *map(str, files),
        ],
        cwd=str(ROOT),
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )
