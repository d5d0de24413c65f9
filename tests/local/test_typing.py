"""mypy checks that AISpine and LocalSpine both satisfy the Spine protocol."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("mypy")

CHECKED = Path(__file__).with_name("typing_check.py")
ROOT = Path(__file__).resolve().parents[2]

# A look-alike whose wait_for_execution lacks the ``interval`` parameter: mypy must refuse it,
# which shows the check above is not vacuous.
BROKEN = """
from __future__ import annotations
from typing import Any
from ai_spine import AISpine
from ai_spine.protocol import Spine


class NotQuite(AISpine):
    def wait_for_execution(self, execution_id: str) -> Any:  # type: ignore[override]
        return None


def check() -> Spine:
    return NotQuite(base_url="http://127.0.0.1:1")
"""


@pytest.mark.slow
def test_both_clients_satisfy_spine_and_a_mismatch_is_caught(tmp_path: Path) -> None:
    broken = tmp_path / "broken_spine.py"
    broken.write_text(BROKEN)
    # A plain subprocess (no coverage tracing) with its own cache.
    env = {k: v for k, v in os.environ.items() if not k.startswith("COV_CORE")}
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "mypy",
            "--strict",
            "--no-error-summary",
            "--show-error-codes",
            "--cache-dir",
            str(tmp_path / "mypy-cache"),
            str(CHECKED),
            str(broken),
        ],
        cwd=str(ROOT),
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )
    output = done.stdout + done.stderr
    lines = [line for line in done.stdout.splitlines() if ": error:" in line]
    assert lines, output
    assert all(line.startswith(str(broken)) for line in lines), output
    assert any("Incompatible return value" in line for line in lines), output
    assert done.returncode == 1
