"""``execute_batch`` for any :class:`~ai_spine.protocol.AsyncSpine`, over an asyncio semaphore.

:class:`ai_spine.AsyncAISpine` and :class:`ai_spine.AsyncLocalSpine` both run their batches
here, with the rules of :meth:`ai_spine.AISpine.execute_batch`: at most ``concurrency`` items
in flight, one item's failure recorded in its result and never stopping the others, results
in input order, a timed-out item holding the last execution seen.
"""

from __future__ import annotations

import asyncio
from typing import Any, Callable, Dict, Iterable, List, Optional

from ai_spine.exceptions import AISpineError, ExecutionError
from ai_spine.models import BatchInput, BatchResult, ExecutionDict
from ai_spine.protocol import AsyncSpine
from ai_spine.utils import parse_batch_item, validate_batch_args

__all__ = ["run_batch"]


async def run_batch(
    spine: AsyncSpine,
    items: Iterable[BatchInput],
    concurrency: int,
    on_progress: Optional[Callable[[int, int, BatchResult], None]],
    wait_timeout: float,
    interval: float,
) -> List[BatchResult]:
    """Execute many flows on ``spine`` and wait for each.

    Cancelling the awaiting task cancels every item still running (their requests close).

    Args:
        spine: Where the flows run.
        items: ``{"flow_id", "input_data", "metadata"?}`` dicts or ``(flow_id, input)`` pairs.
        concurrency: Items in flight at once (>= 1).
        on_progress: Called as ``on_progress(done, total, result)`` after each item.
        wait_timeout: Per-item ``wait_for_execution`` timeout.
        interval: Per-item polling interval.

    Returns:
        One :class:`~ai_spine.models.BatchResult` per item, in input order.

    Raises:
        ValidationError: ``items`` is not iterable or a number is out of range.
    """
    pending = validate_batch_args(items, concurrency, wait_timeout, interval)
    total = len(pending)
    results: List[Optional[BatchResult]] = [None] * total
    gate = asyncio.Semaphore(concurrency)

    async def one(index: int, item: Any) -> BatchResult:
        async with gate:
            return await _run_item(spine, index, item, wait_timeout, interval)

    tasks = [asyncio.ensure_future(one(i, item)) for i, item in enumerate(pending)]
    try:
        done_count = 0
        for finished in asyncio.as_completed(tasks):
            result = await finished
            results[result.index] = result
            done_count += 1
            if on_progress is not None:
                on_progress(done_count, total, result)
    finally:
        # Cancelled, or on_progress raised: stop the items still in flight.
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    return [r for r in results if r is not None]


async def _run_item(
    spine: AsyncSpine, index: int, item: Any, wait_timeout: float, interval: float
) -> BatchResult:
    flow_id: Optional[str] = None
    execution: Optional[Dict[str, Any]] = None

    def seen(polled: ExecutionDict) -> None:
        nonlocal execution
        execution = dict(polled)  # a timed-out item reports the last poll

    try:
        flow_id, input_data, metadata = parse_batch_item(item)
        started = await spine.execute_flow(flow_id, input_data, metadata)
        execution = dict(started)
        if started["status"] != "completed":
            execution = dict(
                await spine.wait_for_execution(
                    started["execution_id"], wait_timeout, interval, on_progress=seen
                )
            )
        return BatchResult(index=index, flow_id=flow_id, execution=execution)
    except ExecutionError as exc:
        return BatchResult(index, flow_id, exc.execution or execution, exc)
    except AISpineError as exc:
        return BatchResult(index=index, flow_id=flow_id, execution=execution, error=exc)
