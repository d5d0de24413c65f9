"""Batch processing: run many executions with bounded concurrency, in input order.

``execute_batch`` keeps at most ``concurrency`` executions in flight (a new one starts as
soon as one finishes), waits for each, and reports every item's outcome; one failure never
stops the others.

    ai-spine serve --demo --port 8000 &
    AI_SPINE_BASE_URL=http://127.0.0.1:8000 python examples/batch_processing.py
"""

from __future__ import annotations

import os
import sys
from typing import Any, List

from ai_spine import AISpine, BatchResult

REVIEWS = [
    "Absolutely love it, works great",
    "Terrible experience, the app is buggy",
    "It arrived on Tuesday",
    "Not good at all",
    "Best purchase this year",
    "The manual was boring but the product is nice",
]


def show_progress(done: int, total: int, result: BatchResult) -> None:
    """Print one line per finished item."""
    outcome = "ok" if result.ok else f"failed ({type(result.error).__name__})"
    print(f"  [{done}/{total}] item {result.index}: {outcome}")


def main() -> int:
    """Run the example; returns the process exit code."""
    flow_id = os.environ.get("AI_SPINE_FLOW", "echo")
    items: List[Any] = [
        {"flow_id": flow_id, "input_data": {"text": text}} for text in REVIEWS
    ]
    # One deliberately bad item: its error is reported, the rest still run.
    items.append({"flow_id": "no_such_flow", "input_data": {"text": "x"}})

    with AISpine(timeout=10) as client:
        print(f"Running {len(items)} items on {flow_id!r}, 3 at a time")
        results = client.execute_batch(
            items, concurrency=3, on_progress=show_progress, interval=0.2
        )

    print("Results in input order:")
    for result in results:
        if result.ok:
            print(f"  {result.index}: {result.result}")
        else:
            print(f"  {result.index}: error: {result.error}")
    succeeded = sum(r.ok for r in results)
    print(f"{succeeded}/{len(results)} succeeded")
    # The unknown flow is expected to fail; anything else failing is a real problem.
    return 0 if succeeded == len(REVIEWS) else 1


if __name__ == "__main__":
    sys.exit(main())
