"""``import ai_spine`` stays cheap: the engine, the server and aiohttp load only when used."""

from __future__ import annotations

import json
import subprocess
import sys

PROBE = """
import json, sys
import ai_spine
def loaded():
    return sorted(m for m in sys.modules
                  if m.split('.')[0] in ('spark_core', 'aiohttp')
                  or m in ('ai_spine.local', 'ai_spine.server', 'ai_spine.async_client'))
steps = {"import ai_spine": loaded()}
ai_spine.LocalSpine
steps["ai_spine.LocalSpine"] = loaded()
ai_spine.AsyncAISpine
steps["ai_spine.AsyncAISpine"] = loaded()
ai_spine.AsyncAISpine(base_url="http://127.0.0.1:1")
steps["AsyncAISpine()"] = loaded()
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
    assert not any(m.startswith("aiohttp") for m in after)


def test_aiohttp_loads_only_with_the_async_client() -> None:
    out = subprocess.run(
        [sys.executable, "-c", PROBE], capture_output=True, text=True, check=True
    ).stdout
    steps = json.loads(out)
    named = steps["ai_spine.AsyncAISpine"]
    assert "ai_spine.async_client" in named and "aiohttp" not in named
    assert "aiohttp" in steps["AsyncAISpine()"]  # the first client imports it
