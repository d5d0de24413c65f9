"""``import ai_spine`` stays cheap: the engine and the server load only when used."""

from __future__ import annotations

import json
import subprocess
import sys

PROBE = """
import json, sys
import ai_spine
def loaded():
    return sorted(m for m in sys.modules
                  if m.split('.')[0] == 'spark_core' or m in ('ai_spine.local', 'ai_spine.server'))
steps = {"import ai_spine": loaded()}
ai_spine.LocalSpine
steps["ai_spine.LocalSpine"] = loaded()
print(json.dumps(steps))
"""


def test_the_engine_and_server_load_only_when_used() -> None:
    out = subprocess.run(
        [sys.executable, "-c", PROBE], capture_output=True, text=True, check=True
    ).stdout
    steps = json.loads(out)
    assert steps["import ai_spine"] == []
    after = steps["ai_spine.LocalSpine"]
    assert "ai_spine.local" in after
    assert "ai_spine.server" not in after
