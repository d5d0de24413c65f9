"""examples/agent_example.py runs offline, and against an endpoint with one variable changed."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Dict

from tests.agents.conftest import SECRET_KEY
from tests.agents.fake_openai import FakeOpenAIServer, reply

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "agent_example.py"


def run_example(env: Dict[str, str]) -> subprocess.CompletedProcess[str]:
    clean = {
        k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "SPARK_"))
    }
    clean.update(env)
    return subprocess.run(
        [sys.executable, str(EXAMPLE)],
        cwd=ROOT,
        env=clean,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_example_runs_offline() -> None:
    done = run_example({})
    assert done.returncode == 0, done.stderr
    assert (
        "answer: {'cities': ['Lima', 'Paris'], 'population_millions': 21.4}"
        in done.stdout
    )
    assert "tool add({'a': 10.1, 'b': 11.3}) -> ok: 21.4" in done.stdout
    # The policy refuses the delete, and the model is told so.
    assert (
        "tool delete_file({'path': 'notes.txt'}) -> denied: policy 'least_privilege' "
        "rule 'no_deletes' denied tool:execute on tool://delete_file" in done.stdout
    )
    # Priced like gpt-4o-mini: 1200 prompt tokens at $0.15/M + 85 at $0.60/M
    assert "steps: 3 | tokens: 1285 | cost: $0.000231" in done.stdout


def test_example_against_an_openai_compatible_endpoint(
    fake_openai: FakeOpenAIServer,
) -> None:
    fake_openai.add(
        reply(
            None,
            [
                {"name": "city_population", "arguments": {"city": "Lima"}},
                {"name": "delete_file", "arguments": {"path": "/tmp/x"}},
            ],
            prompt_tokens=300,
            completion_tokens=30,
        ),
        reply(
            'Final Answer: {"cities": ["Lima"], "population_millions": 10.1}',
            prompt_tokens=400,
            completion_tokens=20,
        ),
    )
    done = run_example(
        {
            "SPARK_MODEL": "openai",
            "OPENAI_API_KEY": SECRET_KEY,
            "OPENAI_BASE_URL": fake_openai.base_url,
        }
    )
    assert done.returncode == 0, done.stderr
    assert "answer: {'cities': ['Lima'], 'population_millions': 10.1}" in done.stdout
    assert "tool delete_file({'path': '/tmp/x'}) -> denied" in done.stdout
    # gpt-4o-mini is priced: 700 prompt tokens at $0.15/M + 50 completion tokens at $0.60/M
    assert "cost: $0.000135" in done.stdout
    assert SECRET_KEY not in done.stdout + done.stderr
    first = fake_openai.requests[0]
    assert first["body"]["model"] == "gpt-4o-mini"
    assert first["headers"]["Authorization"] == f"Bearer {SECRET_KEY}"
