"""Basic usage: check the backend, list flows, run one flow and wait for its result.

Run against a local server:

    ai-spine serve --demo --port 8000 &
    AI_SPINE_BASE_URL=http://127.0.0.1:8000 python examples/basic_usage.py

Environment: AI_SPINE_BASE_URL (default: the hosted API), AI_SPINE_API_KEY (optional),
AI_SPINE_FLOW (default: "echo").
"""

from __future__ import annotations

import json
import os
import sys

from ai_spine import AISpine, AISpineError


def main() -> int:
    """Run the example; returns the process exit code."""
    flow_id = os.environ.get("AI_SPINE_FLOW", "echo")
    input_data = {"text": "I love how fast this is!"}

    with AISpine(timeout=10) as client:  # base URL and key come from the environment
        try:
            health = client.health_check()
            print(f"Backend at {client.base_url}: {health.get('status', health)}")

            flows = client.list_flows()
            print(f"{len(flows)} flow(s): {', '.join(f['flow_id'] for f in flows)}")

            started = client.execute_flow(flow_id, input_data)
            print(f"Started {flow_id!r}: execution {started['execution_id']}")

            execution = client.wait_for_execution(
                started["execution_id"],
                timeout=60,
                interval=0.5,
                on_progress=lambda e: print(f"  status: {e['status']}"),
            )
        except AISpineError as exc:
            print(f"Failed: {type(exc).__name__}: {exc}", file=sys.stderr)
            return 1

    print("Result:")
    print(json.dumps(execution.get("output_data"), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
