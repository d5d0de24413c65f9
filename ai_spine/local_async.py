"""``AsyncLocalSpine``: a :class:`~ai_spine.local.LocalSpine` behind the ``AsyncSpine`` methods.

Code written against :class:`~ai_spine.protocol.AsyncSpine` then runs unchanged on the hosted
backend (:class:`~ai_spine.AsyncAISpine`) and in-process::

    spine = AsyncLocalSpine(LocalSpine({"echo": echo_graph}))
    started = await spine.execute_flow("echo", {"text": "hi"})
    done = await spine.wait_for_execution(started["execution_id"])

Each call runs the ``LocalSpine`` method in a worker thread, so the event loop never blocks
on its lock or its journal. A wait runs ``LocalSpine.wait_for_execution`` in short slices, so
it wakes the moment the execution ends and a cancelled wait leaves no thread waiting long.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any, Callable, Dict, Iterable, List, Optional, cast

from ai_spine import constants, routes
from ai_spine.async_batch import run_batch
from ai_spine.exceptions import ExecutionError, TimeoutError
from ai_spine.local import LocalSpine
from ai_spine.models import (
    AgentDict,
    BatchInput,
    BatchResult,
    ExecutionDict,
    ExecutionResponse,
    FlowDict,
)
from ai_spine.utils import validate_id, validate_positive_number

__all__ = ["AsyncLocalSpine"]

# A wait is LocalSpine's own (woken on completion) in slices of this many seconds: a cancelled
# wait's worker thread lingers at most this long.
_WAIT_SLICE = 0.25


class AsyncLocalSpine:
    """The :class:`~ai_spine.protocol.AsyncSpine` methods over a ``LocalSpine``.

    Return shapes and errors are ``LocalSpine``'s (the backend's). The ``LocalSpine`` stays
    the caller's: closing it is up to them.

    Args:
        spine: The local registry of flows to serve.
    """

    def __init__(self, spine: LocalSpine) -> None:
        self.spine = spine

    def __repr__(self) -> str:
        return f"AsyncLocalSpine({self.spine!r})"

    async def execute_flow(
        self,
        flow_id: str,
        input_data: Dict[str, Any],
        metadata: Optional[Dict[str, Any]] = None,
        *,
        idempotency_key: Optional[str] = None,
        priority: Optional[int] = None,
        timeout: Optional[int] = None,
    ) -> ExecutionResponse:
        """Start a flow; see :meth:`ai_spine.local.LocalSpine.execute_flow`.

        Args:
            flow_id: The flow to run.
            input_data: The flow's input.
            metadata: Optional metadata stored with the execution.
            idempotency_key: Starts at most one execution per key.
            priority: 0 to 10.
            timeout: Execution timeout in seconds.

        Returns:
            The backend's execute answer (status ``pending``).

        Raises:
            ValidationError: Bad arguments.
            FlowNotFoundError: Unknown flow.
        """
        return await asyncio.to_thread(
            lambda: self.spine.execute_flow(
                flow_id,
                input_data,
                metadata,
                idempotency_key=idempotency_key,
                priority=priority,
                timeout=timeout,
            )
        )

    async def get_execution(self, execution_id: str) -> ExecutionDict:
        """Return an execution's current state.

        Args:
            execution_id: The execution's id.

        Returns:
            The execution.

        Raises:
            ValidationError: Not a UUID.
            NotFoundError: No such execution.
        """
        return await asyncio.to_thread(self.spine.get_execution, execution_id)

    async def wait_for_execution(
        self,
        execution_id: str,
        timeout: float = constants.DEFAULT_WAIT_TIMEOUT,
        interval: float = constants.DEFAULT_POLL_INTERVAL,
        *,
        on_progress: Optional[Callable[[ExecutionDict], None]] = None,
    ) -> ExecutionDict:
        """Wait until the execution is final, as :meth:`ai_spine.AsyncAISpine.wait_for_execution`.

        Args:
            execution_id: The execution to wait for.
            timeout: Seconds to wait at most.
            interval: Accepted for compatibility with AsyncAISpine; nothing is polled.
            on_progress: Called in the event loop with the execution every slice while it
                runs, and once it is final.

        Returns:
            The execution once its status is ``completed``.

        Raises:
            ValidationError: Malformed id or non-positive timeout/interval.
            NotFoundError: No such execution.
            ExecutionError: It ended ``failed`` or ``cancelled``.
            TimeoutError: Still not final after ``timeout`` seconds.
        """
        validate_id(execution_id, "execution_id")
        timeout = validate_positive_number(timeout, "timeout")
        interval = validate_positive_number(interval, "interval")
        ends_at = time.monotonic() + timeout
        while True:
            remaining = ends_at - time.monotonic()
            try:
                final = await asyncio.to_thread(
                    self.spine.wait_for_execution,
                    execution_id,
                    max(min(_WAIT_SLICE, remaining), 1e-3),
                    interval,
                )
            except TimeoutError as exc:  # this slice ended first
                if on_progress is not None:
                    on_progress(await self.get_execution(execution_id))
                if time.monotonic() >= ends_at:
                    raise routes.wait_timeout(
                        execution_id, timeout, exc.last_status, None
                    ) from None
                continue
            except ExecutionError as exc:
                if on_progress is not None:
                    on_progress(cast(ExecutionDict, exc.execution))
                raise
            if on_progress is not None:
                on_progress(final)
            return final

    async def cancel_execution(self, execution_id: str) -> Dict[str, Any]:
        """Cancel a pending or running execution.

        Args:
            execution_id: The execution to cancel.

        Returns:
            The execution, now ``cancelled``.

        Raises:
            ValidationError: Not a UUID, or already final.
            NotFoundError: No such execution.
        """
        return await asyncio.to_thread(self.spine.cancel_execution, execution_id)

    async def list_executions(
        self,
        limit: int = constants.DEFAULT_LIST_LIMIT,
        offset: int = 0,
        *,
        status: Optional[str] = None,
    ) -> List[ExecutionDict]:
        """List executions, newest first.

        Args:
            limit: How many (> 0).
            offset: How many to skip (>= 0).
            status: Only executions with this status.

        Returns:
            The executions.

        Raises:
            ValidationError: Bad arguments.
        """
        return await asyncio.to_thread(
            lambda: self.spine.list_executions(limit, offset, status=status)
        )

    async def list_flows(self) -> List[FlowDict]:
        """List flow definitions.

        Returns:
            The flows.
        """
        return await asyncio.to_thread(self.spine.list_flows)

    async def get_flow(self, flow_id: str) -> FlowDict:
        """Return one flow definition.

        Args:
            flow_id: The flow's id.

        Returns:
            The flow.

        Raises:
            NotFoundError: No such flow.
        """
        return await asyncio.to_thread(self.spine.get_flow, flow_id)

    async def list_agents(self) -> List[AgentDict]:
        """List registered agents.

        Returns:
            The agents.
        """
        return await asyncio.to_thread(self.spine.list_agents)

    async def get_agent(self, agent_id: str) -> AgentDict:
        """Return one agent.

        Args:
            agent_id: The agent's id.

        Returns:
            The agent.

        Raises:
            NotFoundError: No such agent.
        """
        return await asyncio.to_thread(self.spine.get_agent, agent_id)

    async def create_agent(self, agent_config: Dict[str, Any]) -> AgentDict:
        """Register an agent; see :meth:`ai_spine.local.LocalSpine.create_agent`.

        Args:
            agent_config: The agent definition.

        Returns:
            The agent.

        Raises:
            ValidationError: Missing or bad fields.
        """
        return await asyncio.to_thread(self.spine.create_agent, agent_config)

    async def delete_agent(self, agent_id: str) -> bool:
        """Unregister an agent.

        Args:
            agent_id: The agent's id.

        Returns:
            True.

        Raises:
            NotFoundError: No such agent.
        """
        return await asyncio.to_thread(self.spine.delete_agent, agent_id)

    async def health_check(self) -> Dict[str, Any]:
        """Return the health report.

        Returns:
            The backend's health shape.
        """
        return await asyncio.to_thread(self.spine.health_check)

    async def get_metrics(self) -> Dict[str, Any]:
        """Return execution counters and timings.

        Returns:
            The backend's metrics shape.
        """
        return await asyncio.to_thread(self.spine.get_metrics)

    async def get_status(self) -> Dict[str, Any]:
        """Return the overall system status.

        Returns:
            The backend's status shape.
        """
        return await asyncio.to_thread(self.spine.get_status)

    async def execute_batch(
        self,
        items: Iterable[BatchInput],
        concurrency: int = constants.DEFAULT_BATCH_CONCURRENCY,
        on_progress: Optional[Callable[[int, int, BatchResult], None]] = None,
        *,
        wait_timeout: float = constants.DEFAULT_WAIT_TIMEOUT,
        interval: float = constants.DEFAULT_POLL_INTERVAL,
    ) -> List[BatchResult]:
        """Execute many flows and wait for each, as :meth:`ai_spine.AsyncAISpine.execute_batch`.

        Args:
            items: ``{"flow_id", "input_data", "metadata"?}`` dicts or ``(flow_id, input)``.
            concurrency: Items in flight at once (>= 1).
            on_progress: Called as ``on_progress(done, total, result)`` after each item.
            wait_timeout: Per-item wait timeout.
            interval: Per-item polling interval.

        Returns:
            One result per item, in input order.

        Raises:
            ValidationError: ``items`` is not iterable or a number is out of range.
        """
        return await run_batch(
            self, items, concurrency, on_progress, wait_timeout, interval
        )
