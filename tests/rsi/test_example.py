"""examples/rsi_example.py runs offline and shows the loop end to end."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_rsi_example_runs_offline() -> None:
    done = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "rsi_example.py")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert out.startswith("recorded 20 runs\n")
    assert "RSI customer_service_agent: deployed (version 1.0.0 -> 1.1.0)" in out
    assert "p3 policy safety (model): refused" in out
    assert "- drops DENY rule 'no-refunds' of policy 'safety'" in out
    assert "~ graph.nodes[id=lookup].config.timeout.timeout_seconds: 0.05 -> 0.2" in out
    assert out.rstrip().endswith("rolled back to 1.0.0 (was 1.1.0)")
