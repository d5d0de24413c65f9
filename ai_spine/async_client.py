"""The asynchronous client: :class:`AsyncAISpine`, :class:`~ai_spine.AISpine` as coroutines.

Every method is a short coroutine over :mod:`ai_spine.async_api` (``aiohttp``, the ``async``
extra) and :mod:`ai_spine.routes`, the request and answer rules it shares with ``AISpine``.
"""

from __future__ import annotations

import asyncio
import os
import time
from typing import TYPE_CHECKING, Any, Callable, Dict, Iterable, List, Optional, cast

from ai_spine import constants, routes
from ai_spine.async_api import AsyncAPIClient
from ai_spine.async_batch import run_batch
from ai_spine.exceptions import NotFoundError, TimeoutError
from ai_spine.models import (
    AgentDict,
    BatchInput,
    BatchResult,
    ExecutionDict,
    ExecutionResponse,
    FlowDict,
)
from ai_spine.retry import Retry
from ai_spine.utils import validate_positive_number

if TYPE_CHECKING:  # pragma: no cover
    import aiohttp

__all__ = ["AsyncAISpine"]


class AsyncAISpine:
    """Asynchronous client for the AI Spine API, over ``aiohttp``.

    The constructor, methods, return shapes, errors, retry and idempotency rules, redaction
    and deadlines are those of :class:`~ai_spine.AISpine`; each method is a coroutine.
    Cancelling the task that awaits a call closes its connection and raises
    ``CancelledError`` (a cancelled ``execute_flow`` may still have started the flow).

    The HTTP session is made in the event loop of the first call and belongs to it: use one
    client per event loop.

    Args:
        api_key: Bearer token; defaults to ``$AI_SPINE_API_KEY``; None sends no auth header.
        base_url: API root; defaults to ``$AI_SPINE_BASE_URL``, then the production URL.
        timeout: Seconds per HTTP attempt, from connecting to the answer's last byte.
        max_retries: Retries after the first attempt (see :mod:`ai_spine.retry`).
        debug: Log requests and answers (redacted) at DEBUG level to stderr.
        deadline: Overall seconds one method call may take, retries and waits included.
        retry: A full :class:`~ai_spine.retry.Retry` policy; overrides ``max_retries``.
        session: An ``aiohttp.ClientSession`` to use instead of a new one; it stays the
            caller's: ``close()`` leaves it open.
        max_body_size: The longest answer body read, in bytes; a longer one raises
            :class:`~ai_spine.exceptions.ResponseTooLargeError`.

    Raises:
        ValidationError: When an argument is out of range or ``base_url`` is not http(s).
        ImportError: ``aiohttp`` is missing (``pip install 'ai-spine-sdk[async]'``).

    Example:
        >>> async with AsyncAISpine() as client:  # doctest: +SKIP
        ...     started = await client.execute_flow("credit_analysis", {"amount": 50000})
        ...     done = await client.wait_for_execution(started["execution_id"])
    """

    def __init__(
        self,
        api_key: Optional[str] = None,
        base_url: Optional[str] = None,
        timeout: float = constants.DEFAULT_TIMEOUT,
        max_retries: int = constants.DEFAULT_MAX_RETRIES,
        debug: bool = False,
        *,
        deadline: Optional[float] = None,
        retry: Optional[Retry] = None,
        session: Optional["aiohttp.ClientSession"] = None,
        max_body_size: int = constants.DEFAULT_MAX_BODY_SIZE,
    ) -> None:
        if api_key is None:
            api_key = os.environ.get(constants.ENV_API_KEY) or None
        if base_url is None:
            base_url = (
                os.environ.get(constants.ENV_BASE_URL) or constants.DEFAULT_BASE_URL
            )
        timeout = validate_positive_number(timeout, "timeout")
        validate_positive_number(
            max_retries, "max_retries", allow_zero=True, integer=True
        )
        if deadline is not None:
            deadline = validate_positive_number(deadline, "deadline")
        validate_positive_number(max_body_size, "max_body_size", integer=True)
        if retry is None:
            retry = Retry(total=max_retries)
        self._api = AsyncAPIClient(
            base_url=base_url,
            api_key=api_key,
            timeout=timeout,
            retry=retry,
            deadline=deadline,
            debug=debug,
            session=session,
            max_body_size=max_body_size,
        )
        self.debug = debug

    @property
    def base_url(self) -> str:
        """The API root this client talks to, any ``user:password@`` in it shown as ``***@``."""
        return self._api.base_url

    @property
    def timeout(self) -> float:
        """Seconds per HTTP attempt."""
        return self._api.timeout

    @property
    def max_retries(self) -> int:
        """Retries allowed after the first attempt."""
        return self._api.retry.total

    @property
    def session(self) -> Optional["aiohttp.ClientSession"]:
        """The ``aiohttp.ClientSession`` (None until the first call makes it)."""
        return self._api.session

    def __repr__(self) -> str:
        # Never the key itself: only whether one is set.
        auth = "set" if self._api._api_key else "none"
        return (
            f"AsyncAISpine(base_url={self.base_url!r}, api_key=<{auth}>, "
            f"timeout={self.timeout:g}, max_retries={self.max_retries})"
        )

    async def close(self) -> None:
        """Close the pooled HTTP connections."""
        await self._api.close()

    async def __aenter__(self) -> "AsyncAISpine":
        """Use the client in an ``async with`` block.

        Returns:
            This client, closed when the block ends.
        """
        return self

    async def __aexit__(self, *exc_info: Any) -> None:
        """Close the pooled connections at the end of an ``async with`` block.

        Args:
            *exc_info: The exception of the block, if any (not suppressed).
        """
        await self.close()

    async def _get_object(
        self, path: str, deadline: Optional[float] = None
    ) -> Dict[str, Any]:
        body = await self._api.request("GET", path, deadline=deadline)
        return routes.expect_dict(body, "GET " + path)

    # -- executions ---------------------------------------------------------------------------

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
        """Start a flow; see :meth:`ai_spine.AISpine.execute_flow`.

        Args:
            flow_id: The flow to run.
            input_data: The flow's input (a JSON-serialisable dict).
            metadata: Optional JSON-serialisable metadata stored with the execution.
            idempotency_key: Makes the request safe to resend after any transient failure.
            priority: Backend priority, 0 (default) to 10.
            timeout: Backend-side execution timeout in seconds (not the HTTP timeout).

        Returns:
            ``{"execution_id", "status", "result", "error", "execution_time"}``.

        Raises:
            ValidationError: Bad arguments (nothing is sent) or a 400/422 answer.
            FlowNotFoundError: The backend does not know ``flow_id``.
            ServerError: An answer without an execution id or a string status.
            AISpineError: Any other typed failure.
        """
        body = routes.execute_body(
            flow_id, input_data, metadata, idempotency_key, priority, timeout
        )
        try:
            answer = await self._api.request(
                "POST", routes.EXECUTE, json_body=body, idempotency_key=idempotency_key
            )
        except NotFoundError as exc:
            raise routes.flow_not_found(flow_id, exc) from None
        return routes.execute_answer(answer, flow_id)

    async def get_execution(self, execution_id: str) -> ExecutionDict:
        """Fetch an execution's current state.

        Args:
            execution_id: The id returned by :meth:`execute_flow`.

        Returns:
            The execution.

        Raises:
            ValidationError: Malformed id (nothing is sent) or a 422 answer.
            NotFoundError: No such execution.
            AISpineError: Any other typed failure.
        """
        path = routes.execution_path(execution_id)
        return cast(ExecutionDict, await self._get_object(path))

    async def wait_for_execution(
        self,
        execution_id: str,
        timeout: float = constants.DEFAULT_WAIT_TIMEOUT,
        interval: float = constants.DEFAULT_POLL_INTERVAL,
        *,
        on_progress: Optional[Callable[[ExecutionDict], None]] = None,
    ) -> ExecutionDict:
        """Poll an execution until it is final, sleeping with ``asyncio.sleep``.

        Args:
            execution_id: The execution to wait for.
            timeout: Seconds before giving up (polls and their retries included).
            interval: Seconds between polls.
            on_progress: Called with the execution dict after every poll.

        Returns:
            The execution once its status is ``completed``.

        Raises:
            ExecutionError: It ended ``failed`` or ``cancelled``.
            TimeoutError: ``timeout`` passed first (names the id and the last status).
            ValidationError: Malformed id or non-positive timeout/interval.
            AISpineError: Any other typed failure while polling.
        """
        path = routes.execution_path(execution_id)
        timeout = validate_positive_number(timeout, "timeout")
        interval = validate_positive_number(interval, "interval")
        ends_at = time.monotonic() + timeout
        last_status: Optional[str] = None
        last_error: Optional[TimeoutError] = None
        while True:
            remaining = ends_at - time.monotonic()
            if remaining <= 0:
                break
            try:
                execution = cast(ExecutionDict, await self._get_object(path, remaining))
            except TimeoutError as exc:  # also: no time left to retry a failed poll
                last_error = exc
                break
            last_status = str(execution.get("status"))
            if on_progress is not None:
                on_progress(execution)
            if routes.final_or_raise(execution_id, execution):
                return execution
            pause = min(interval, ends_at - time.monotonic())
            if pause <= 0:
                break
            await asyncio.sleep(pause)
        raise routes.wait_timeout(
            execution_id, timeout, last_status, last_error
        ) from last_error

    async def cancel_execution(self, execution_id: str) -> Dict[str, Any]:
        """Ask the backend to cancel a running execution.

        Args:
            execution_id: The execution to cancel.

        Returns:
            The backend's answer (``{}`` when it sent an empty body).

        Raises:
            ValidationError: Malformed id (nothing is sent) or a 400/422 answer.
            NotFoundError: No such execution.
            AISpineError: Any other typed failure.
        """
        path = routes.execution_path(execution_id, "cancel")
        answer = await self._api.request("POST", path)
        return {} if answer is None else routes.expect_dict(answer, "POST " + path)

    async def list_executions(
        self,
        limit: int = constants.DEFAULT_LIST_LIMIT,
        offset: int = 0,
        *,
        status: Optional[str] = None,
    ) -> List[ExecutionDict]:
        """List recent executions.

        Args:
            limit: How many to return (> 0).
            offset: How many to skip (>= 0).
            status: Only executions with this status (filtered here too: the backend
                ignores it, so fewer than ``limit`` may come back).

        Returns:
            The executions, newest first as the backend orders them.

        Raises:
            ValidationError: Bad arguments (nothing is sent).
            AISpineError: Any other typed failure.
        """
        params = routes.list_params(limit, offset, status)
        body = await self._api.request("GET", routes.EXECUTIONS, params=params)
        return routes.keep_status(body, status)

    # -- flows and agents ---------------------------------------------------------------------

    async def list_flows(self) -> List[FlowDict]:
        """List the flows the backend knows.

        Returns:
            The flow definitions.

        Raises:
            AISpineError: A typed failure.
        """
        body = await self._api.request("GET", routes.FLOWS)
        return cast(
            List[FlowDict], routes.unwrap_list(body, "flows", "GET " + routes.FLOWS)
        )

    async def get_flow(self, flow_id: str) -> FlowDict:
        """Fetch one flow definition.

        Args:
            flow_id: The flow's id.

        Returns:
            The flow definition.

        Raises:
            ValidationError: Malformed id, or ``my-flows`` (a fixed route of the backend).
            NotFoundError: No such flow.
            AISpineError: Any other typed failure.
        """
        return cast(FlowDict, await self._get_object(routes.flow_path(flow_id)))

    async def list_agents(self) -> List[AgentDict]:
        """List registered agents.

        Returns:
            The agents.

        Raises:
            AISpineError: A typed failure.
        """
        body = await self._api.request("GET", routes.AGENTS)
        return cast(
            List[AgentDict], routes.unwrap_list(body, "agents", "GET " + routes.AGENTS)
        )

    async def get_agent(self, agent_id: str) -> AgentDict:
        """Fetch one agent.

        Args:
            agent_id: The agent's id.

        Returns:
            The agent.

        Raises:
            ValidationError: Malformed id, or ``active`` / ``my-agents`` (fixed routes).
            NotFoundError: No such agent.
            AISpineError: Any other typed failure.
        """
        path = routes.agent_path(agent_id, fetch=True)
        return cast(AgentDict, await self._get_object(path))

    async def create_agent(self, agent_config: Dict[str, Any]) -> AgentDict:
        """Register an agent; see :meth:`ai_spine.AISpine.create_agent` for the fields.

        Args:
            agent_config: The agent definition.

        Returns:
            The registered agent.

        Raises:
            ValidationError: A field missing or malformed (nothing is sent), or a 400/422.
            AISpineError: Any other typed failure.
        """
        body = routes.agent_body(agent_config)
        answer = await self._api.request("POST", routes.AGENTS, json_body=body)
        return cast(AgentDict, routes.expect_dict(answer, "POST " + routes.AGENTS))

    async def delete_agent(self, agent_id: str) -> bool:
        """Unregister an agent.

        Args:
            agent_id: The agent's id.

        Returns:
            True once the backend confirmed the deletion.

        Raises:
            ValidationError: Malformed id (nothing is sent).
            NotFoundError: No such agent.
            AISpineError: Any other typed failure.
        """
        await self._api.request("DELETE", routes.agent_path(agent_id, fetch=False))
        return True

    # -- system -------------------------------------------------------------------------------

    async def health_check(self) -> Dict[str, Any]:
        """``GET /health``: the backend's health report.

        Returns:
            The backend's JSON object.

        Raises:
            AISpineError: A typed failure.
        """
        return await self._get_object("/health")

    async def get_metrics(self) -> Dict[str, Any]:
        """``GET /metrics``: the backend's counters.

        Returns:
            The backend's JSON object.

        Raises:
            AISpineError: A typed failure.
        """
        return await self._get_object("/metrics")

    async def get_status(self) -> Dict[str, Any]:
        """``GET /status``: the backend's system status.

        Returns:
            The backend's JSON object.

        Raises:
            AISpineError: A typed failure.
        """
        return await self._get_object("/status")

    # -- batches ------------------------------------------------------------------------------

    async def execute_batch(
        self,
        items: Iterable[BatchInput],
        concurrency: int = constants.DEFAULT_BATCH_CONCURRENCY,
        on_progress: Optional[Callable[[int, int, BatchResult], None]] = None,
        *,
        wait_timeout: float = constants.DEFAULT_WAIT_TIMEOUT,
        interval: float = constants.DEFAULT_POLL_INTERVAL,
    ) -> List[BatchResult]:
        """Execute many flows and wait for each, at most ``concurrency`` at a time.

        An ``asyncio`` semaphore bounds the items in flight; one item's failure is recorded
        in its result and never stops the others. Cancelling the call cancels every item.

        Args:
            items: ``{"flow_id", "input_data", "metadata"?}`` dicts or ``(flow_id, input)``
                pairs.
            concurrency: Items in flight at once (>= 1).
            on_progress: Called as ``on_progress(done, total, result)`` after each item.
            wait_timeout: Per-item :meth:`wait_for_execution` timeout.
            interval: Per-item polling interval.

        Returns:
            One :class:`~ai_spine.models.BatchResult` per item, in input order.

        Raises:
            ValidationError: ``items`` is not iterable or a number is out of range.
        """
        return await run_batch(
            self, items, concurrency, on_progress, wait_timeout, interval
        )
