"""mypy checks that the clients satisfy Spine (sync) and AsyncSpine (async)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.mypy_check import mypy_strict

pytest.importorskip("mypy")

CHECKED = Path(__file__).with_name("typing_check.py")

# A look-alike whose wait_for_execution lacks the ``interval`` parameter, and each client given
# as the other protocol: mypy must refuse all three, which shows the check is not vacuous.
BROKEN = """
from __future__ import annotations
from typing import Any
from ai_spine import AISpine, AsyncAISpine
from ai_spine.protocol import AsyncSpine, Spine


class NotQuite(AISpine):
    def wait_for_execution(self, execution_id: str) -> Any:  # type: ignore[override]
        return None


def check() -> Spine:
    return NotQuite(base_url="http://127.0.0.1:1")


def sync_is_not_async() -> AsyncSpine:
    return AISpine(base_url="http://127.0.0.1:1")


def async_is_not_sync() -> Spine:
    return AsyncAISpine(base_url="http://127.0.0.1:1")
"""


@pytest.mark.slow
def test_both_clients_satisfy_spine_and_a_mismatch_is_caught(tmp_path: Path) -> None:
    broken = tmp_path / "broken_spine.py"
    broken.write_text(BROKEN)
    done = mypy_strict(tmp_path, CHECKED, broken)
    output = done.stdout + done.stderr
    lines = [line for line in done.stdout.splitlines() if ": error:" in line]
    assert lines, output
    assert all(line.startswith(str(broken)) for line in lines), output
    returns = [line for line in lines if "Incompatible return value" in line]
    assert len(returns) == 3, output  # NotQuite, and each client as the other protocol
    assert done.returncode == 1
