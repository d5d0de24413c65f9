"""Asynchronous patterns: start executions without blocking, then collect them.

1. Fire-and-poll: start several executions at once, then poll each one.
2. asyncio: ``AsyncAISpine`` (``pip install "ai-spine-sdk[async]"``), awaited in the loop.

    ai-spine serve --demo --port 8000 &
    AI_SPINE_BASE_URL=http://127.0.0.1:8000 python examples/async_execution.py
"""

from __future__ import annotations

import asyncio
import os
import sys
from typing import Any, Dict, List

from ai_spine import AISpine, AISpineError, AsyncAISpine

TEXTS = [
    "The support team was great",
    "Delivery was slow and the box was broken",
    "It works",
]


def fire_and_poll(client: AISpine, flow_id: str) -> None:
    """Start every execution first, then wait for each (they run concurrently server-side)."""
    started = [client.execute_flow(flow_id, {"text": text}) for text in TEXTS]
    print(f"Started {len(started)} executions without waiting")
    for text, execution in zip(TEXTS, started):
        done = client.wait_for_execution(
            execution["execution_id"], timeout=60, interval=0.2
        )
        print(f"  {text!r} -> {done.get('output_data')}")


async def run_one(client: AsyncAISpine, flow_id: str, text: str) -> Dict[str, Any]:
    """Execute and wait; the event loop runs the other executions meanwhile."""
    started = await client.execute_flow(flow_id, {"text": text})
    return dict(await client.wait_for_execution(started["execution_id"], 60, 0.2))


async def with_asyncio(flow_id: str) -> None:
    """Run the executions concurrently from asyncio code."""
    async with AsyncAISpine(timeout=10) as client:
        results: List[Dict[str, Any]] = await asyncio.gather(
            *(run_one(client, flow_id, text) for text in TEXTS)
        )
    print(f"asyncio.gather finished {len(results)} executions:")
    for text, result in zip(TEXTS, results):
        print(f"  {text!r} -> {result['status']}: {result.get('output_data')}")


def main() -> int:
    """Run the example; returns the process exit code."""
    flow_id = os.environ.get("AI_SPINE_FLOW", "echo")
    with AISpine(timeout=10) as client:
        try:
            fire_and_poll(client, flow_id)
            asyncio.run(with_asyncio(flow_id))
        except AISpineError as exc:
            print(f"Failed: {type(exc).__name__}: {exc}", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
