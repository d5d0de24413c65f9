"""The public client: :class:`AISpine`, a list of one-line methods over :mod:`ai_spine.api`."""

from __future__ import annotations

import os
import threading
import time
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from typing import (
    Any,
    Callable,
    Dict,
    Iterable,
    List,
    Optional,
    Set,
    cast,
)

import requests

from ai_spine import constants, routes
from ai_spine.api import APIClient
from ai_spine.exceptions import (
    AISpineError,
    ExecutionError,
    NotFoundError,
    TimeoutError,
)
from ai_spine.models import (
    AgentDict,
    BatchInput,
    BatchResult,
    ExecutionDict,
    ExecutionResponse,
    FlowDict,
)
from ai_spine.retry import Retry
from ai_spine.utils import (
    parse_batch_item,
    validate_batch_args,
    validate_positive_number,
)

__all__ = ["AISpine"]


class AISpine:
    """Client for the AI Spine agent orchestration API.

    Args:
        api_key: Bearer token; defaults to ``$AI_SPINE_API_KEY``; None sends no auth header.
        base_url: API root; defaults to ``$AI_SPINE_BASE_URL``, then the production URL.
        timeout: Seconds per HTTP attempt, from connecting to the answer's last byte.
        max_retries: Retries after the first attempt (see :mod:`ai_spine.retry`).
        debug: Log requests and answers (redacted) at DEBUG level to stderr.
        deadline: Overall seconds one method call may take, retries and waits included.
        retry: A full :class:`~ai_spine.retry.Retry` policy; overrides ``max_retries``.
        session: A ``requests.Session`` to use instead of a new pooled one; it stays the
            caller's: ``close()`` leaves it open.
        max_body_size: The longest answer body read, in bytes; a longer one raises
            :class:`~ai_spine.exceptions.ResponseTooLargeError`.

    Raises:
        ValidationError: When an argument is out of range or ``base_url`` is not http(s).

    Example:
        >>> with AISpine() as client:  # doctest: +SKIP
        ...     started = client.execute_flow("credit_analysis", {"amount": 50000})
        ...     done = client.wait_for_execution(started["execution_id"])
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
        session: Optional[requests.Session] = None,
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
        self._api = APIClient(
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
    def session(self) -> requests.Session:
        """The pooled ``requests.Session``."""
        return self._api.session

    def __repr__(self) -> str:
        # Never the key itself: only whether one is set.
        auth = "set" if self._api._api_key else "none"
        return (
            f"AISpine(base_url={self.base_url!r}, api_key=<{auth}>, "
            f"timeout={self.timeout:g}, max_retries={self.max_retries})"
        )

    def close(self) -> None:
        """Close the pooled HTTP connections."""
        self._api.close()

    def __enter__(self) -> "AISpine":
        """Use the client in a ``with`` block.

        Returns:
            This client, closed when the block ends.
        """
        return self

    def __exit__(self, *exc_info: Any) -> None:
        """Close the pooled connections at the end of a ``with`` block.

        Args:
            *exc_info: The exception of the block, if any (not suppressed).
        """
        self.close()

    def _get_object(
        self, path: str, deadline: Optional[float] = None
    ) -> Dict[str, Any]:
        """``GET path``, whose answer must be a JSON object."""
        body = self._api.request("GET", path, deadline=deadline)
        return routes.expect_dict(body, "GET " + path)

    # -- executions ---------------------------------------------------------------------------

    def execute_flow(
        self,
        flow_id: str,
        input_data: Dict[str, Any],
        metadata: Optional[Dict[str, Any]] = None,
        *,
        idempotency_key: Optional[str] = None,
        priority: Optional[int] = None,
        timeout: Optional[int] = None,
    ) -> ExecutionResponse:
        """Start a flow; returns at once with the new execution's id and ``pending`` status.

        A POST is resent only when the server cannot have acted on it, unless
        ``idempotency_key`` is given (sent as ``Idempotency-Key``), so a retry never starts a
        flow twice.

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
            AISpineError: Any other typed failure (auth, rate limit, server, network, timeout).
        """
        body = routes.execute_body(
            flow_id, input_data, metadata, idempotency_key, priority, timeout
        )
        try:
            answer = self._api.request(
                "POST", routes.EXECUTE, json_body=body, idempotency_key=idempotency_key
            )
        except NotFoundError as exc:
            raise routes.flow_not_found(flow_id, exc) from None
        return routes.execute_answer(answer, flow_id)

    def get_execution(self, execution_id: str) -> ExecutionDict:
        """Fetch an execution's current state.

        Args:
            execution_id: The id returned by :meth:`execute_flow`.

        Returns:
            The execution (``status``, ``output_data``, ``error_message``, timestamps...).

        Raises:
            ValidationError: Malformed id (nothing is sent) or a 422 answer.
            NotFoundError: No such execution.
            AISpineError: Any other typed failure.
        """
        return cast(
            ExecutionDict, self._get_object(routes.execution_path(execution_id))
        )

    def wait_for_execution(
        self,
        execution_id: str,
        timeout: float = constants.DEFAULT_WAIT_TIMEOUT,
        interval: float = constants.DEFAULT_POLL_INTERVAL,
        *,
        on_progress: Optional[Callable[[ExecutionDict], None]] = None,
    ) -> ExecutionDict:
        """Poll an execution until it is final.

        Args:
            execution_id: The execution to wait for.
            timeout: Seconds before giving up (polls and their retries included).
            interval: Seconds between polls.
            on_progress: Called with the execution dict after every poll.

        Returns:
            The execution once its status is ``completed``.

        Raises:
            ExecutionError: It ended ``failed`` or ``cancelled`` (``.execution`` holds it).
            TimeoutError: ``timeout`` passed first, or left no time to retry a failed poll
                (names the id and the last status; chained to the poll's error).
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
                execution = cast(ExecutionDict, self._get_object(path, remaining))
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
            time.sleep(pause)
        raise routes.wait_timeout(
            execution_id, timeout, last_status, last_error
        ) from last_error

    def cancel_execution(self, execution_id: str) -> Dict[str, Any]:
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
        answer = self._api.request("POST", path)
        return {} if answer is None else routes.expect_dict(answer, "POST " + path)

    def list_executions(
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
            status: Only executions with this status. The backend ignores this filter, so
                the page it sends is filtered here and may hold fewer than ``limit``.

        Returns:
            The executions, newest first as the backend orders them.

        Raises:
            ValidationError: Bad arguments (nothing is sent).
            AISpineError: Any other typed failure.
        """
        params = routes.list_params(limit, offset, status)
        body = self._api.request("GET", routes.EXECUTIONS, params=params)
        return routes.keep_status(body, status)

    # -- flows and agents ---------------------------------------------------------------------

    def list_flows(self) -> List[FlowDict]:
        """List the flows the backend knows.

        Returns:
            The flow definitions.

        Raises:
            AISpineError: A typed failure.
        """
        body = self._api.request("GET", routes.FLOWS)
        return cast(
            List[FlowDict], routes.unwrap_list(body, "flows", "GET " + routes.FLOWS)
        )

    def get_flow(self, flow_id: str) -> FlowDict:
        """Fetch one flow definition.

        Args:
            flow_id: The flow's id.

        Returns:
            The flow definition.

        Raises:
            ValidationError: Malformed id, or ``my-flows`` (a fixed route of the backend);
                nothing is sent.
            NotFoundError: No such flow.
            AISpineError: Any other typed failure.
        """
        return cast(FlowDict, self._get_object(routes.flow_path(flow_id)))

    def list_agents(self) -> List[AgentDict]:
        """List registered agents.

        Returns:
            The agents.

        Raises:
            AISpineError: A typed failure.
        """
        body = self._api.request("GET", routes.AGENTS)
        return cast(
            List[AgentDict], routes.unwrap_list(body, "agents", "GET " + routes.AGENTS)
        )

    def get_agent(self, agent_id: str) -> AgentDict:
        """Fetch one agent.

        Args:
            agent_id: The agent's id.

        Returns:
            The agent.

        Raises:
            ValidationError: Malformed id, or ``active`` / ``my-agents`` (fixed routes of the
                backend that answer with lists); nothing is sent.
            NotFoundError: No such agent.
            AISpineError: Any other typed failure.
        """
        path = routes.agent_path(agent_id, fetch=True)
        return cast(AgentDict, self._get_object(path))

    def create_agent(self, agent_config: Dict[str, Any]) -> AgentDict:
        """Register an agent (there is no update: delete and create again).

        Args:
            agent_config: The agent definition: ``agent_id``, ``name``, ``description``,
                ``endpoint`` (strings), ``capabilities`` (list of strings) and ``agent_type``
                (``input``, ``processor``, ``output`` or ``conditional``), all required by
                the backend; ``is_active`` (bool) optional.

        Returns:
            The registered agent.

        Raises:
            ValidationError: A field missing or malformed, an ``agent_id`` a GET could not
                reach (``active``, ``my-agents``), nothing sent; or a 400/422 answer.
            AISpineError: Any other typed failure.
        """
        body = routes.agent_body(agent_config)
        answer = self._api.request("POST", routes.AGENTS, json_body=body)
        return cast(AgentDict, routes.expect_dict(answer, "POST " + routes.AGENTS))

    def delete_agent(self, agent_id: str) -> bool:
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
        self._api.request("DELETE", routes.agent_path(agent_id, fetch=False))
        return True

    # -- system -------------------------------------------------------------------------------

    def health_check(self) -> Dict[str, Any]:
        """``GET /health``: the backend's health report.

        Returns:
            The backend's JSON object, e.g. ``{"status": "healthy", ...}``.

        Raises:
            ServerError: A 5xx answer or a body that is not a JSON object.
            AISpineError: Any other typed failure (auth, network, timeout, ...).
        """
        return self._get_object("/health")

    def get_metrics(self) -> Dict[str, Any]:
        """``GET /metrics``: the backend's counters.

        Returns:
            The backend's JSON object of counters.

        Raises:
            ServerError: A 5xx answer or a body that is not a JSON object.
            AISpineError: Any other typed failure (auth, network, timeout, ...).
        """
        return self._get_object("/metrics")

    def get_status(self) -> Dict[str, Any]:
        """``GET /status``: the backend's system status.

        Returns:
            The backend's JSON object describing the system.

        Raises:
            ServerError: A 5xx answer or a body that is not a JSON object.
            AISpineError: Any other typed failure (auth, network, timeout, ...).
        """
        return self._get_object("/status")

    # -- batches ------------------------------------------------------------------------------

    def execute_batch(
        self,
        items: Iterable[BatchInput],
        concurrency: int = constants.DEFAULT_BATCH_CONCURRENCY,
        on_progress: Optional[Callable[[int, int, BatchResult], None]] = None,
        *,
        wait_timeout: float = constants.DEFAULT_WAIT_TIMEOUT,
        interval: float = constants.DEFAULT_POLL_INTERVAL,
    ) -> List[BatchResult]:
        """Execute many flows and wait for each, at most ``concurrency`` at a time.

        A rolling pool: a new item starts as soon as one finishes. One item's failure is
        recorded in its result and never stops the others.

        Args:
            items: ``{"flow_id", "input_data", "metadata"?}`` dicts or ``(flow_id, input)``
                pairs.
            concurrency: Items in flight at once (>= 1).
            on_progress: Called in the caller's thread as ``on_progress(done, total, result)``
                after each item finishes.
            wait_timeout: Per-item :meth:`wait_for_execution` timeout.
            interval: Per-item polling interval.

        Returns:
            One :class:`~ai_spine.models.BatchResult` per item, in input order.

        Raises:
            ValidationError: ``items`` is not iterable or a number is out of range.
        """
        pending = list(
            enumerate(validate_batch_args(items, concurrency, wait_timeout, interval))
        )
        total = len(pending)
        results: List[Optional[BatchResult]] = [None] * total
        queue = iter(pending)
        done_count = 0
        stop = threading.Event()
        with ThreadPoolExecutor(
            max_workers=concurrency, thread_name_prefix="ai-spine"
        ) as pool:
            running: Set[Future[BatchResult]] = set()

            def fill() -> None:
                for index, item in queue:
                    running.add(
                        pool.submit(
                            self._run_item, index, item, wait_timeout, interval, stop
                        )
                    )
                    if len(running) >= concurrency:
                        return

            try:
                fill()
                while running:
                    finished, _ = wait(running, return_when=FIRST_COMPLETED)
                    for future in finished:
                        running.discard(future)
                        result = future.result()
                        results[result.index] = result
                        done_count += 1
                        if on_progress is not None:
                            on_progress(done_count, total, result)
                    fill()
            except BaseException:
                # Ctrl-C or on_progress raised: the pool's exit joins the items in flight, so
                # make them stop at their next poll instead of waiting out wait_timeout.
                stop.set()
                raise
        return [r for r in results if r is not None]

    def _run_item(
        self,
        index: int,
        item: BatchInput,
        wait_timeout: float,
        interval: float,
        stop: threading.Event,
    ) -> BatchResult:
        flow_id: Optional[str] = None
        execution: Optional[Dict[str, Any]] = None

        def seen(polled: ExecutionDict) -> None:
            nonlocal execution
            execution = dict(polled)  # a timed-out item reports the last poll
            if stop.is_set():
                raise AISpineError("batch stopped before this execution finished")

        try:
            flow_id, input_data, metadata = parse_batch_item(item)
            started = self.execute_flow(flow_id, input_data, metadata)
            execution = dict(started)
            if started["status"] != "completed":
                execution = dict(
                    self.wait_for_execution(
                        started["execution_id"],
                        wait_timeout,
                        interval,
                        on_progress=seen,
                    )
                )
            return BatchResult(index=index, flow_id=flow_id, execution=execution)
        except ExecutionError as exc:
            return BatchResult(index, flow_id, exc.execution or execution, exc)
        except AISpineError as exc:
            return BatchResult(
                index=index, flow_id=flow_id, execution=execution, error=exc
            )
