"""Every script in examples/ runs against a real local server, and its output is checked."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Dict, Iterator, List

import pytest

from ai_spine.demo import register_demo_flows
from ai_spine.local import LocalSpine
from ai_spine.server import SpineServer

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = sorted(p.name for p in (ROOT / "examples").glob("*.py"))

# What each known example must print (besides exiting 0 without a traceback), with
# AI_SPINE_FLOW=echo. Lines whose order depends on thread timing are not checked.
EXPECTED: Dict[str, List[str]] = {
    "agent_example.py": [
        "answer: {'cities': ['Lima', 'Paris'], 'population_millions': 21.4}",
        "tool add({'a': 10.1, 'b': 11.3}) -> ok: 21.4",
    ],
    "rsi_example.py": [
        "recorded 20 runs",
        "RSI customer_service_agent: deployed (version 1.0.0 -> 1.1.0)",
        "p3 policy safety (model): refused",
        "- drops DENY rule 'no-refunds' of policy 'safety'",
        "~ graph.nodes[id=lookup].config.timeout.timeout_seconds: 0.3 -> 1.2",
        "rolled back to 1.0.0 (was 1.1.0)",
    ],
    "local_graph.py": [
        "positive -> forward to the product team  [praise]",
        "negative -> open a priority support case  [escalate]",
        "neutral  -> reply with the help-centre link  [answer]",
        "nodes: clean, score, praise, escalate, answer",
        "executions completed: 3",
    ],
    "basic_usage.py": [
        ": healthy",
        "3 flow(s): echo, sentiment, word_stats",
        "status: completed",
        '"text": "I love how fast this is!"',
    ],
    "error_handling.py": [
        "ValidationError (before sending): flow_id 'a/b' is malformed",
        "FlowNotFoundError: Flow 'no_such_flow' not found",
        "NotFoundError: GET /api/v1/agents/no_such_agent failed: "
        "Agent 'no_such_agent' not found",
        "NetworkError: GET /health: could not connect",
    ],
    "async_execution.py": [
        "Started 3 executions without waiting",
        "asyncio.gather finished 3 executions",
        # output_data is keyed by the flow's exit node, as the backend answers
        "'It works' -> completed: {'echo': {'text': 'It works'}}",
    ],
    "batch_processing.py": [
        "Running 7 items on 'echo', 3 at a time",
        "0: {'echo': {'text': 'Absolutely love it, works great'}}",
        "6: error: Flow 'no_such_flow' not found",
        "6/7 succeeded",
    ],
}


@pytest.fixture
def demo_server() -> Iterator[SpineServer]:
    spine = LocalSpine()
    register_demo_flows(spine)
    with SpineServer(spine) as server:
        yield server
    spine.close(timeout=1)


def run_example(
    name: str, base_url: str, flow: str = "echo"
) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AI_SPINE_")}
    env.update(AI_SPINE_BASE_URL=base_url, AI_SPINE_FLOW=flow, PYTHONPATH=str(ROOT))
    return subprocess.run(
        [sys.executable, str(ROOT / "examples" / name)],
        cwd=str(ROOT),
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.slow
@pytest.mark.parametrize("name", EXAMPLES)
def test_example_runs_against_a_local_server(
    name: str, demo_server: SpineServer
) -> None:
    done = run_example(name, demo_server.url)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Traceback" not in done.stderr
    assert name in EXPECTED, f"say what {name} must print in EXPECTED"
    for expected in EXPECTED[name]:
        assert expected in done.stdout, done.stdout


@pytest.mark.slow
def test_batch_example_on_the_sentiment_demo_flow(demo_server: SpineServer) -> None:
    done = run_example("batch_processing.py", demo_server.url, flow="sentiment")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "'label': 'positive'" in done.stdout
    assert "'negative_words': ['not good']" in done.stdout
    assert "'action': 'escalate to support'" in done.stdout
    assert "6/7 succeeded" in done.stdout
