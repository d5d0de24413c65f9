"""LocalSpine: the AISpine methods, answered by spark_core graphs running in this process."""

from __future__ import annotations

import asyncio
import json
import threading
import time
import uuid
from typing import (
    Any,
    Callable,
    Dict,
    Iterable,
    List,
    Mapping,
    Optional,
    Tuple,
    Union,
    cast,
)

from ai_spine.constants import (
    DEFAULT_BATCH_CONCURRENCY,
    DEFAULT_LIST_LIMIT,
    DEFAULT_POLL_INTERVAL,
    DEFAULT_WAIT_TIMEOUT,
    EXECUTION_STATUSES,
    TERMINAL_STATUSES,
    ZERO_UUID,
)
from ai_spine.exceptions import (
    AISpineError,
    ExecutionError,
    FlowNotFoundError,
    NotFoundError,
    ServerError,
    ValidationError,
)
from ai_spine.local.agents import AgentRegistry
from ai_spine.local.flows import Flow, FlowRegistry, FlowSource, is_durable
from ai_spine.local.journal import JournalError, JournalStore, open_journal
from ai_spine.local.memory import ExecutionMemory
from ai_spine.local.records import (
    CANCELLED_MESSAGE,
    CLOSED_MESSAGE,
    INTERRUPTED_MESSAGE,
    KEPT_MESSAGE,
    ExecutionRecord,
    exit_outputs,
    utcnow_iso,
)
from ai_spine.local.runner import LoopRunner, describe_error, node_results, run_graph
from ai_spine.models import (
    AgentDict,
    BatchInput,
    BatchResult,
    ExecutionDict,
    ExecutionResponse,
    FlowDict,
)
from ai_spine.rules import (
    check_priority,
    check_timeout,
    execution_error,
    wait_timeout_error,
)
from ai_spine.utils import (
    parse_batch_item,
    validate_batch_args,
    validate_id,
    validate_json_object,
    validate_positive_number,
)
from ai_spine.validation import (
    check_uuid,
    detail,
    expected,
    invalid,
    validate_page_request,
)

__all__ = [
    "LocalSpine",
    "DEFAULT_MAX_EXECUTIONS",
    "DEFAULT_MAX_MEMORY",
    "DEFAULT_MAX_PAGE_BYTES",
]

#: Finished executions a LocalSpine keeps in memory by default (see ``max_executions``).
DEFAULT_MAX_EXECUTIONS = 10_000
#: Bytes of finished executions a LocalSpine keeps in memory by default (``max_memory``).
DEFAULT_MAX_MEMORY = 64 * 1024 * 1024
#: Bytes of executions one page of a listing holds at most by default (``max_page_bytes``).
DEFAULT_MAX_PAGE_BYTES = 8 * 1024 * 1024
_STATUSES = frozenset(EXECUTION_STATUSES)


class LocalSpine:
    """Run flows in this process behind the :class:`ai_spine.AISpine` method names.

    Args:
        flows: Initial flows, ``{flow_id: graph_or_factory_or_spec}``.
        db: A SQLite file to journal executions to (listed again after a restart; runs that
            were interrupted are resumed if their graph is durable, else marked failed), a
            ``postgresql://`` URL (a journal several processes share: one list of
            executions and idempotency keys, cancels reach the process running the
            execution; see :mod:`ai_spine.local.pg_journal`), or None to keep them in
            memory only.
        max_concurrency: How many executions run at once; the rest wait as ``pending``.
        max_executions: How many finished executions stay in memory (the most recently
            finished; pending and running ones always stay), so a long-lived server does not
            grow without bound. With ``db`` the older ones are read back from the file (get,
            wait, list and idempotency keys keep working); without it they are forgotten
            (``NotFoundError``). Metrics count every execution either way. None: no bound.
        max_memory: The same bound in bytes (the JSON size of inputs, outputs, metadata and
            node results): the oldest finished executions leave memory once those kept take
            more; the newest one always stays. None: no bound.
        max_page_bytes: The most bytes one page of :meth:`list_executions` holds: a page
            ends early (after at least one execution) rather than grow past it, so a
            listing of large executions is read in several pages. None: no bound.
        allow_modules: Module prefixes GraphSpec flows may import node classes and tools
            from (``"myapp"`` allows ``myapp`` and ``myapp.*``), on top of ``spark_core``'s
            node types. Empty by default: a spec (also one sent over HTTP) imports no code.
        journal: An execution store to use instead of ``db`` (a
            :class:`~ai_spine.local.journal.JournalStore`; LocalSpine closes it).
        executor: Where whole executions run: a ``spark_core.distributed.DaskExecutor``
            submits each execution of a flow given as a factory (or spec) as one task
            to its cluster (``None``: in this process). LocalSpine does not close it.
        clock: The wall clock execution timeouts are measured on (``time.time``).

    Example:
        >>> spine = LocalSpine({"echo": make_echo_graph})
        >>> run = spine.execute_flow("echo", {"text": "hi"})
        >>> spine.wait_for_execution(run["execution_id"])["result"]  # output_data: by exit node
        {'text': 'hi'}
    """

    def __init__(
        self,
        flows: Optional[Mapping[str, FlowSource]] = None,
        *,
        db: Optional[str] = None,
        max_concurrency: int = 64,
        max_executions: Optional[int] = DEFAULT_MAX_EXECUTIONS,
        max_memory: Optional[int] = DEFAULT_MAX_MEMORY,
        max_page_bytes: Optional[int] = DEFAULT_MAX_PAGE_BYTES,
        allow_modules: Iterable[str] = (),
        journal: Optional[JournalStore] = None,
        executor: Any = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        from spark_core.kit.loader import SpecLoader
        from spark_core.spec.errors import SpecError

        try:  # one loader for every spec flow; it checks the prefixes
            specs = SpecLoader(allowed_tool_modules=allow_modules)
        except SpecError as exc:
            raise ValidationError(f"allow_modules: {exc}") from None
        # Node classes may come from spark_core and allow_modules; tools only from
        # allow_modules (none by default, so a spec cannot make the server import code).
        self.allow_modules: Tuple[str, ...] = specs.allowed_tool_modules
        specs.allowed_modules += self.allow_modules
        for name, value, optional in (
            ("max_concurrency", max_concurrency, False),
            ("max_executions", max_executions, True),
            ("max_memory", max_memory, True),
            ("max_page_bytes", max_page_bytes, True),
        ):
            if value is None and optional:
                continue
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValidationError(
                    f"{name} must be a positive integer, got {value!r}"
                )
        if db is not None and journal is not None:
            raise ValidationError("give db or journal, not both")
        self.max_concurrency = max_concurrency
        self.max_executions = max_executions
        self.max_memory = max_memory
        self.max_page_bytes = max_page_bytes
        self._clock = clock
        self._executor = executor
        self._lock = threading.Lock()
        # Notified whenever an execution becomes final (execute_batch waits on it).
        self._changed = threading.Condition(threading.Lock())
        self._flows = FlowRegistry(specs)
        self._agents = AgentRegistry()
        self._runner = LoopRunner(max_concurrency)
        self._closed = False
        self._started_at = time.time()
        self._finished = 0
        self._total_time = 0.0
        self._max_time = 0.0
        if db is not None:
            try:
                journal = open_journal(str(db))
            except JournalError as exc:
                raise AISpineError(f"cannot open {exc}") from None
        self._memory = ExecutionMemory(
            self._lock, journal, max_executions, max_memory, max_page_bytes
        )
        if journal is not None:
            try:
                self._finished, self._total_time, self._max_time = self._memory.load()
            except JournalError as exc:
                self._memory.close()
                raise AISpineError(f"cannot open {exc}") from None
        try:
            for flow_id, source in (flows or {}).items():
                self.register_flow(flow_id, source)
        except BaseException:
            self._memory.close()  # nobody else can close the journal
            raise
        # Rows still pending/running belonged to a process that died: resume those whose
        # graph keeps its runs in a durable backend, report the others as failed.
        for rec in self._memory.all_locked():
            if rec.status not in TERMINAL_STATUSES and not self._resume(rec):
                self._finish(rec, "failed", {}, INTERRUPTED_MESSAGE)
        if journal is not None:
            journal.watch(self._cancelled_elsewhere, self._take_over)

    # ----------------------------------------------------------------- registry
    def register_flow(
        self,
        flow_id: str,
        flow: FlowSource,
        *,
        name: Optional[str] = None,
        description: Optional[str] = None,
        replace: bool = False,
    ) -> Dict[str, Any]:
        """Register a flow under ``flow_id``.

        Args:
            flow_id: The id callers pass to :meth:`execute_flow`.
            flow: A spark_core ``Graph`` (its executions run one at a time, each a fresh run
                with the execution id as run id), a zero-argument factory returning a fresh
                ``Graph`` per execution (runs concurrently; called once now to describe the
                flow's nodes), or a GraphSpec dict (node types from ``spark_core`` only).
            name: Human readable name (defaults to ``flow_id``).
            description: What the flow does.
            replace: Replace an existing flow with the same id instead of raising.

        Returns:
            The flow's FlowDefinition dict.

        Raises:
            ValidationError: Bad id, an unusable flow, or the id is taken and not ``replace``.
        """
        return self._flows.add(flow_id, flow, name, description, replace).definition()

    def update_flow(
        self,
        flow_id: str,
        spec: Mapping[str, Any],
        *,
        name: Optional[str] = None,
        description: Optional[str] = None,
    ) -> Dict[str, Any]:
        """Replace a flow registered from a GraphSpec dict with a new spec.

        Running executions finish on the old graph; new ones use the new spec. Flows
        registered as Python graphs or factories cannot be replaced this way (use
        ``register_flow(..., replace=True)``), so a client cannot swap out server code.

        Args:
            flow_id: The flow to update.
            spec: The new GraphSpec dict.
            name: Human readable name (defaults to ``flow_id``).
            description: What the flow does (defaults to the spec's).

        Returns:
            The flow's new FlowDefinition (``created_at`` kept, ``updated_at`` now).

        Raises:
            ValidationError: A malformed id, an unusable spec (nothing changes), or a flow
                not registered from a spec (status 409).
            NotFoundError: No such flow.
        """
        return self._flows.update(flow_id, spec, name, description).definition()

    def register_definition(
        self,
        definition: Mapping[str, Any],
        *,
        replace: bool = False,
        update: bool = False,
    ) -> Dict[str, Any]:
        """Register a flow from the backend's flow definition (``POST /flows``'s body).

        Each node runs on its agent (registered first, as the backend requires): a
        ``handler`` agent is called with the input, an ``endpoint`` agent gets the backend's
        ``POST {endpoint}/execute``. A node gets the run's input merged with the outputs of
        the nodes it depends on; ``output_data`` is keyed by ``exit_points``.

        Args:
            definition: ``flow_id, name, description, nodes, entry_point`` and optionally
                ``version, exit_points, metadata``.
            replace: Replace a flow with the same id instead of raising (409).
            update: Replace an existing spec or definition flow (as ``PUT``): the flow must
                exist and not be defined in Python.

        Returns:
            The definition as the backend returns it (defaults filled), with timestamps.

        Raises:
            ValidationError: What cannot run locally, named (422), or the id is taken (409).
            NotFoundError: ``update`` and no such flow.
        """
        from ai_spine.local.definitions import (
            definition_factory,
            definition_problems,
            normalise,
        )

        errors = definition_problems(definition, self._agents.exists)
        if errors:
            raise invalid(errors)
        checked = normalise(definition)
        factory = definition_factory(checked, self._agents.run_step)
        flow_id, name = checked["flow_id"], checked["name"]
        if update:
            flow = self._flows.update(
                flow_id, factory, name, checked["description"], checked
            )
        else:
            flow = self._flows.add(
                flow_id, factory, name, checked["description"], replace, checked
            )
        return flow.definition()

    def unregister_flow(self, flow_id: str, *, specs_only: bool = False) -> bool:
        """Remove a flow; running executions of it finish normally.

        Args:
            flow_id: The flow to remove.
            specs_only: Refuse (409) a flow defined in Python (graph or factory), as
                :meth:`update_flow` does; the server's ``DELETE`` passes it, so a client
                cannot remove server code and register its own spec under the same id.

        Returns:
            True when it was removed.

        Raises:
            ValidationError: A malformed id, or a Python-defined flow with ``specs_only``.
            NotFoundError: No such flow.
        """
        self._flows.remove(flow_id, specs_only)
        return True

    # ----------------------------------------------------------------- executions
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
        """Start an execution and return at once with status ``pending``.

        Args:
            flow_id: The flow to run.
            input_data: The run's input (a JSON object), the start node's ``inputs.content``.
            metadata: Free JSON data stored with the execution.
            idempotency_key: Same key and same request -> the same execution, not a new one.
            priority: 0-10, accepted for compatibility (executions start in arrival order).
            timeout: Seconds after which a still running execution fails, counted from when
                it starts running; a run resumed after a restart gets what is left.

        Returns:
            The backend's ExecutionResponse: ``execution_id``, ``status``, ``result``,
            ``error``, ``execution_time``.

        Raises:
            ValidationError: Bad arguments, or an idempotency key reused for another request.
            FlowNotFoundError: No flow has this id (as AISpine raises for the backend's answer).
            ServerError: The LocalSpine is closed (status 503, as served over HTTP), or its
                execution store refused the execution (500; nothing of it is kept).
        """
        validate_id(flow_id, "flow_id")
        data, size = _json_copy(input_data, "input_data")
        meta, meta_size = (
            _json_copy(metadata, "metadata") if metadata is not None else ({}, 0)
        )
        fingerprint = ""
        if idempotency_key is not None:
            validate_id(idempotency_key, "idempotency_key")
            fingerprint = json.dumps([flow_id, data, meta], sort_keys=True)
        if priority is not None:
            check_priority(priority)
        if timeout is not None:
            check_timeout(timeout)
        flow = self._flows.find(flow_id)
        if flow is None:
            unknown = {
                "execution_id": ZERO_UUID,
                "status": "failed",
                "result": None,
                "error": f"Flow '{flow_id}' not found",
                "execution_time": None,
            }
            raise FlowNotFoundError(
                f"Flow '{flow_id}' not found",
                execution=unknown,
                flow_id=flow_id,
                body=unknown,
            )
        self._start_loop()
        # A key only the journal remembers (its execution left memory).
        stored = None
        if idempotency_key is not None:
            stored = self._memory.stored_key(idempotency_key)
        with self._lock:
            if idempotency_key is not None:
                seen = self._memory.key_locked(idempotency_key) or stored
                if seen is not None:
                    if seen[1] != fingerprint:
                        raise invalid(
                            [
                                detail(
                                    ("header", "Idempotency-Key"),
                                    "this key was already used with a different request",
                                    "idempotency_conflict",
                                )
                            ]
                        )
                    known = self._memory.get(seen[0])
                    if known is not None:
                        return cast(ExecutionResponse, known.response())
            if self._closed:
                raise _closed_error()
            rec = ExecutionRecord(
                str(uuid.uuid4()), flow_id, data, meta, utcnow_iso(), size + meta_size
            )
            rec.timeout, rec.durable = timeout, flow.durable
            rec.idempotency_key = idempotency_key
            self._memory.add_locked(rec, fingerprint)
            answer = cast(ExecutionResponse, rec.response())
        winner = self._memory.journal_new(rec, fingerprint)
        if winner is not None:  # another process sharing the journal took the key first
            return self._keyed_elsewhere(winner, fingerprint)
        try:
            self._runner.call(self._spawn, rec, flow)
        except RuntimeError:  # close() stopped the loop meanwhile
            self._finish(rec, "failed", {}, CLOSED_MESSAGE)
        return answer

    def get_execution(self, execution_id: str) -> ExecutionDict:
        """Return an execution in the backend's ExecutionContextResponse shape.

        Args:
            execution_id: The id :meth:`execute_flow` returned.

        Raises:
            ValidationError: Not a UUID (the backend's 422).
            NotFoundError: No such execution.
        """
        rec = self._record(execution_id)
        with self._lock:
            return cast(ExecutionDict, rec.context())

    def get_execution_results(self, execution_id: str) -> Dict[str, Any]:
        """Return an execution's detailed results, including per-node outcomes.

        Args:
            execution_id: The execution.

        Raises:
            ValidationError: Not a UUID.
            NotFoundError: No such execution.
        """
        rec = self._record(execution_id)
        with self._lock:
            return {
                "execution_id": rec.execution_id,
                "flow_id": rec.flow_id,
                "status": rec.status,
                "output_data": rec.output_data,
                "error_message": rec.error_message,
                "execution_time": rec.execution_time,
                "node_results": json.loads(json.dumps(rec.node_results)),
            }

    def wait_for_execution(
        self,
        execution_id: str,
        timeout: float = DEFAULT_WAIT_TIMEOUT,
        interval: float = DEFAULT_POLL_INTERVAL,
        *,
        on_progress: Optional[Callable[[ExecutionDict], None]] = None,
    ) -> ExecutionDict:
        """Block until the execution is final; wakes on completion (no polling).

        Args:
            execution_id: The execution to wait for.
            timeout: Seconds to wait at most.
            interval: Seconds between reads of a shared journal for an execution another
                process runs; else accepted for compatibility with AISpine (nothing is
                polled).
            on_progress: Called with the execution when the wait starts (if it is not final
                yet) and once it is final.

        Returns:
            The execution once its status is ``completed``.

        Raises:
            ValidationError: Not a UUID, or a non-positive timeout/interval.
            NotFoundError: No such execution.
            TimeoutError: Still not final after ``timeout`` seconds.
            ExecutionError: The execution ended ``failed`` or ``cancelled``.
        """
        timeout = validate_positive_number(timeout, "timeout")
        validate_positive_number(interval, "interval")
        rec = self._record(execution_id)
        done = rec.done
        if not done.is_set():
            if on_progress is not None:
                on_progress(self.get_execution(rec.execution_id))
            wait = min(timeout, threading.TIMEOUT_MAX)
            if self._memory.in_memory(rec.execution_id) is None:
                # Another process sharing the journal runs it: read the journal again.
                rec, wait = self._memory.poll_final(rec, timeout, interval), 0
                done = rec.done
            if not done.wait(wait):
                raise wait_timeout_error(rec.execution_id, timeout, rec.status)
        with self._lock:
            final = rec.context()
        if on_progress is not None:
            on_progress(cast(ExecutionDict, final))
        if final["status"] != "completed":
            raise execution_error(final)
        return cast(ExecutionDict, final)

    def cancel_execution(self, execution_id: str) -> Dict[str, Any]:
        """Cancel a pending or running execution; its graph task is cancelled.

        Args:
            execution_id: The execution to cancel.

        Returns:
            ``{"message": "Execution cancelled successfully"}`` (the backend's answer) with
            ``execution_id`` and ``status``.

        Raises:
            ValidationError: Not a UUID.
            NotFoundError: No such execution, or it already ended (the backend's 404 "not
                found or not running").
        """
        rec = self._record(execution_id)
        with self._lock:
            if rec.status in TERMINAL_STATUSES:
                msg = f"Execution '{rec.execution_id}' not found or not running"
                raise NotFoundError(msg, status_code=404, body={"detail": msg})
            now = utcnow_iso()
            rec.status = "cancelled"
            rec.error_message = CANCELLED_MESSAGE
            rec.updated_at = rec.completed_at = now
            if rec.started:
                rec.execution_time = time.perf_counter() - rec.started
                self._count_time(rec.execution_time)  # as a restart counts it
        self._memory.save(rec)
        self._memory.retire(rec)
        self._set_done(rec)
        try:
            self._runner.call(_cancel_task, rec)
        except RuntimeError:  # never started, or stopped: no task to cancel
            pass
        return {
            "execution_id": rec.execution_id,
            "status": "cancelled",
            "message": "Execution cancelled successfully",
        }

    def list_executions(
        self,
        limit: int = DEFAULT_LIST_LIMIT,
        offset: int = 0,
        *,
        status: Optional[str] = None,
    ) -> List[ExecutionDict]:
        """List executions, newest first.

        Args:
            limit: At most this many (1-1000); fewer when they would take more than
                ``max_page_bytes`` (ask again from ``offset`` + what you got).
            offset: Skip this many first.
            status: Only executions with this status.

        Raises:
            ValidationError: Bad limit, offset or status.
        """
        return cast(List[ExecutionDict], self.page_executions(limit, offset, status)[0])

    def page_executions(
        self, limit: Any, offset: Any, status: Any
    ) -> Tuple[List[Dict[str, Any]], int]:
        """One page of executions (newest first) and how many match ``status`` in all.

        Args:
            limit: At most this many (1-1000), fewer past ``max_page_bytes``.
            offset: Skip this many first.
            status: Only executions with this status (None: all).

        Returns:
            The page and the total.

        Raises:
            ValidationError: Bad limit, offset or status (the backend's 422).
        """
        errors = validate_page_request(limit, offset)
        if status is not None and status not in _STATUSES:
            errors.append(
                detail(
                    ("query", "status"),
                    f"status must be one of {', '.join(EXECUTION_STATUSES)}",
                    "enum",
                    expected(EXECUTION_STATUSES),
                )
            )
        if errors:
            raise invalid(errors)
        return self._memory.page(limit, offset, status)

    def execute_batch(
        self,
        items: Iterable[BatchInput],
        concurrency: int = DEFAULT_BATCH_CONCURRENCY,
        on_progress: Optional[Callable[[int, int, BatchResult], None]] = None,
        *,
        wait_timeout: float = DEFAULT_WAIT_TIMEOUT,
        interval: float = DEFAULT_POLL_INTERVAL,
    ) -> List[BatchResult]:
        """Execute many flows and wait for each, at most ``concurrency`` at a time.

        Same contract as :meth:`ai_spine.AISpine.execute_batch`: one item's failure is recorded
        in its result and never stops the others.

        Args:
            items: ``{"flow_id", "input_data", "metadata"?}`` dicts or ``(flow_id, input)``
                pairs.
            concurrency: Items in flight at once (>= 1).
            on_progress: Called in the caller's thread as ``on_progress(done, total, result)``
                after each item finishes.
            wait_timeout: Per-item wait timeout.
            interval: Accepted for compatibility (nothing is polled).

        Returns:
            One :class:`~ai_spine.models.BatchResult` per item, in input order.

        Raises:
            ValidationError: ``items`` is not iterable or a number is out of range.
        """
        todo = validate_batch_args(items, concurrency, wait_timeout, interval)
        results: List[BatchResult] = []
        # In-flight items: record -> (index, wait deadline). Waited on in this thread (no
        # helper threads), so a caller that stops (on_progress raising, Ctrl-C) leaves
        # nothing behind; the executions themselves run on, as on a server.
        in_flight: Dict[ExecutionRecord, Tuple[int, float]] = {}
        upcoming = iter(enumerate(todo))

        def done(result: BatchResult) -> None:
            results.append(result)
            if on_progress is not None:
                on_progress(len(results), len(todo), result)

        while True:
            for index, item in upcoming:
                started = self._start_batch_item(index, item)
                if isinstance(started, BatchResult):
                    done(started)
                    continue
                in_flight[started] = (index, time.monotonic() + wait_timeout)
                if len(in_flight) >= concurrency:
                    break
            if not in_flight:
                break
            for rec in self._next_finished(in_flight):
                index, _ = in_flight.pop(rec)
                done(self._batch_result(index, rec, wait_timeout))
        results.sort(key=lambda r: r.index)
        return results

    def _next_finished(
        self, waiting: Dict[ExecutionRecord, Tuple[int, float]]
    ) -> List[ExecutionRecord]:
        """Block until some of ``waiting`` are final or past their deadline; return those."""
        with self._changed:
            while True:
                now = time.monotonic()
                ready = [
                    r
                    for r, (_, ends) in waiting.items()
                    if r.done.is_set() or ends <= now
                ]
                if ready:
                    return ready
                soonest = min(ends for _, ends in waiting.values())
                self._changed.wait(min(soonest - now, threading.TIMEOUT_MAX))

    def _start_batch_item(
        self, index: int, item: Any
    ) -> Union[BatchResult, ExecutionRecord]:
        flow_id: Optional[str] = None
        try:
            flow_id, data, meta = parse_batch_item(item)
            started = self.execute_flow(flow_id, data, meta)
            return self._record(started["execution_id"])
        except ExecutionError as exc:
            return BatchResult(index, flow_id, exc.execution or None, exc)
        except AISpineError as exc:
            return BatchResult(index=index, flow_id=flow_id, error=exc)

    def _batch_result(
        self, index: int, rec: ExecutionRecord, timeout: float
    ) -> BatchResult:
        """The result of an item that is final or past its wait deadline.

        Read from the record itself: it may have left memory since it finished.
        """
        with self._lock:
            execution = rec.context()
        error: Optional[AISpineError] = None
        if not rec.done.is_set():
            error = wait_timeout_error(rec.execution_id, timeout, execution["status"])
        elif execution["status"] != "completed":
            error = execution_error(execution)
        return BatchResult(index, rec.flow_id, execution, error)

    # ----------------------------------------------------------------- flows
    def list_flows(self) -> List[FlowDict]:
        """Return every registered flow's FlowDefinition."""
        return [cast(FlowDict, f.definition()) for f in self._flows.all()]

    def get_flow(self, flow_id: str) -> FlowDict:
        """Return one flow's FlowDefinition.

        Raises:
            ValidationError: A malformed id (as AISpine refuses it).
            NotFoundError: No such flow.
        """
        return cast(FlowDict, self._flows.get(flow_id).definition())

    # ----------------------------------------------------------------- agents
    def create_agent(self, agent_config: Dict[str, Any]) -> AgentDict:
        """Register an agent: an HTTP ``endpoint`` or, locally, a Python ``handler``.

        Args:
            agent_config: ``agent_id``, ``name``, ``description``, ``endpoint`` (http(s) URL),
                ``capabilities`` (list of str), ``agent_type`` (input|processor|output|
                conditional); locally ``handler`` (a callable taking the input dict) may
                replace ``endpoint``.

        Returns:
            The backend's AgentInfo.

        Raises:
            ValidationError: Missing or bad fields (a taken id is overwritten, as the
                backend does).
        """
        return cast(AgentDict, self._agents.create(agent_config))

    def list_agents(self) -> List[AgentDict]:
        """Return every registered agent's AgentInfo."""
        return cast(List[AgentDict], self._agents.all())

    def get_agent(self, agent_id: str) -> AgentDict:
        """Return one agent's AgentInfo.

        Raises:
            ValidationError: A malformed id (as AISpine refuses it).
            NotFoundError: No such agent.
        """
        return cast(AgentDict, self._agents.get(agent_id))

    def delete_agent(self, agent_id: str) -> bool:
        """Unregister an agent.

        Returns:
            True when it was removed.

        Raises:
            ValidationError: A malformed id (as AISpine refuses it).
            NotFoundError: No such agent.
        """
        self._agents.remove(agent_id)
        return True

    def invoke_agent(self, agent_id: str, input_data: Dict[str, Any]) -> Dict[str, Any]:
        """Call an agent with a JSON object and return its JSON object answer.

        A ``handler`` agent is called directly; an ``endpoint`` agent gets an HTTP POST with
        the input as JSON body. Blocking: call it from a worker thread inside async code.

        Raises:
            NotFoundError: No such agent.
            ExecutionError: The agent failed or answered something other than a JSON object.
        """
        return self._agents.invoke(agent_id, input_data)

    # ----------------------------------------------------------------- system
    def health_check(self) -> Dict[str, Any]:
        """Return the backend's ``GET /health`` answer (plus ``service`` and ``version``).

        ``timestamp`` is a float epoch, as the backend's.
        """
        from ai_spine.__version__ import __version__

        return {
            "status": "healthy" if not self._closed else "stopping",
            "timestamp": time.time(),
            "message": "AI Spine API is running (local)",
            "startup_complete": True,
            "service": "ai-spine-local",
            "version": __version__,
        }

    def get_metrics(self) -> Dict[str, Any]:
        """Return counts and timings of this LocalSpine's executions.

        The backend's Metrics fields (``total_executions``, ``successful_executions``,
        ``failed_executions``, ``average_execution_time``, ``total_execution_time``,
        ``last_execution``: when the newest execution was created, or None) plus
        ``cancelled_executions``, ``running_executions`` and local details.
        """
        with self._lock:
            held = self._memory.counts_locked()
            counts = {s: held[s] for s in EXECUTION_STATUSES}
            finished, total, longest = self._finished, self._total_time, self._max_time
        newest, _ = self._memory.page(1, 0, None)
        return {
            "total_executions": sum(counts.values()),
            "successful_executions": counts["completed"],
            "failed_executions": counts["failed"],
            "cancelled_executions": counts["cancelled"],
            "running_executions": counts["running"],
            "active_executions": counts["pending"] + counts["running"],
            "executions_by_status": counts,
            "average_execution_time": (total / finished) if finished else 0.0,
            "total_execution_time": total,
            "max_execution_time": longest,
            "last_execution": newest[0]["created_at"] if newest else None,
            "total_flows": len(self._flows),
            "total_agents": len(self._agents),
            "uptime_seconds": time.time() - self._started_at,
            "timestamp": utcnow_iso(),
        }

    def get_status(self) -> Dict[str, Any]:
        """Return the backend's ``GET /status`` shape, plus execution counts and settings."""
        metrics = self.get_metrics()
        agents = self._agents.all()
        state = "active" if not self._closed else "stopping"
        return {
            "status": "operational" if not self._closed else "stopping",
            "components": {
                "registry": state,
                "communication": state,
                "memory": state,
                "orchestrator": state,
            },
            "agents": {
                "total": len(agents),
                "active": sum(1 for a in agents if a.get("is_active")),
            },
            "flows": {"total": metrics["total_flows"]},
            "executions": metrics["executions_by_status"],
            "active_executions": metrics["active_executions"],
            "max_concurrency": self.max_concurrency,
            "persistent": self._memory.journal is not None,
            "uptime_seconds": metrics["uptime_seconds"],
            "timestamp": metrics["timestamp"],
        }

    # ----------------------------------------------------------------- lifecycle
    def close(self, timeout: float = 5.0) -> int:
        """Stop: let running executions finish for up to ``timeout`` s, then cancel them.

        Executions cut short are marked ``failed`` with a message saying why, except, with
        ``db``, those of a durable flow: they stay ``pending``/``running`` in the store and
        resume (committed nodes are not run again) when a LocalSpine opens the db again.
        Waiters here get an ExecutionError saying so. Safe to call twice.

        Args:
            timeout: Seconds to let running executions finish.

        Returns:
            How many of the executions pending or running when it was called have ended
            (finished in time, or failed as cut short): those whose waiters elsewhere (HTTP
            pollers) have an ending to see. Durable runs left to resume are not counted;
            0 when it was closed already.
        """
        with self._lock:
            if self._closed:
                return 0
            self._closed = True
            pending = [
                r
                for r in self._memory.all_locked()
                if r.status not in TERMINAL_STATUSES
            ]
        deadline = time.monotonic() + max(0.0, timeout)
        for rec in pending:
            rec.done.wait(
                min(max(0.0, deadline - time.monotonic()), threading.TIMEOUT_MAX)
            )
        for rec in pending:
            if rec.durable and self._memory.journal is not None:
                self._keep(rec)
            else:
                self._finish(rec, "failed", {}, CLOSED_MESSAGE)
        for rec in pending:
            try:
                self._runner.call(_cancel_task, rec)
            except RuntimeError:
                break
        self._runner.stop()
        self._memory.close()
        return sum(1 for rec in pending if not rec.kept)

    def __enter__(self) -> "LocalSpine":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        journal = self._memory.journal
        return (
            f"LocalSpine(flows={len(self._flows)}, executions={len(self._memory)}, "
            f"db={journal.path if journal else None!r})"
        )

    # ----------------------------------------------------------------- internals
    def _keyed_elsewhere(
        self, winner: Tuple[str, str], fingerprint: str
    ) -> ExecutionResponse:
        """Answer an idempotency key another process's execution holds (see execute_flow)."""
        if winner[1] != fingerprint:
            raise invalid(
                [
                    detail(
                        ("header", "Idempotency-Key"),
                        "this key was already used with a different request",
                        "idempotency_conflict",
                    )
                ]
            )
        known = self._memory.get(winner[0])
        if known is None:  # pragma: no cover - saved with its key in one transaction
            raise ServerError("the execution store lost an execution", status_code=500)
        with self._lock:
            return cast(ExecutionResponse, known.response())

    def _take_over(self, records: List[ExecutionRecord]) -> None:
        """Executions of a process that died, now ours (shared journal): resume or fail them."""
        for rec in records:
            with self._lock:
                if self._closed or self._memory.in_memory(rec.execution_id):
                    continue  # closing: the next process to open the journal takes them
                self._memory.add_locked(rec, "")
            try:
                resumed = self._resume(rec)
            except (AISpineError, RuntimeError):  # closed meanwhile
                resumed = False
            if not resumed:
                self._finish(rec, "failed", {}, INTERRUPTED_MESSAGE)

    def _cancelled_elsewhere(self, execution_id: str) -> None:
        """Another process sharing the journal cancelled an execution: stop it if it runs here."""
        rec = self._memory.in_memory(execution_id)
        if rec is not None and rec.status not in TERMINAL_STATUSES:
            try:
                self.cancel_execution(execution_id)
            except AISpineError:  # finished meanwhile
                pass

    def _record(self, execution_id: str) -> ExecutionRecord:
        rec = self._memory.in_memory(execution_id)  # fast path: canonical ids
        if rec is None:
            rec = self._memory.get(check_uuid(execution_id, "execution_id"))
            if rec is None:
                msg = f"Execution '{execution_id}' not found"
                raise NotFoundError(msg, status_code=404, body={"detail": msg})
        return rec

    def _keep(self, rec: ExecutionRecord) -> None:
        """Leave an unfinished durable run as it is in the store, for the next start."""
        with self._lock:
            if rec.status in TERMINAL_STATUSES:
                return
            rec.kept = True  # nothing else is saved for it (not even its cancellation)
            rec.error_message = KEPT_MESSAGE
        self._set_done(rec)

    def _set_done(self, rec: ExecutionRecord) -> None:
        """Wake the record's waiters and any batch waiting for one of its items."""
        with self._changed:
            rec.done.set()
            self._changed.notify_all()

    def _count_time(self, seconds: float) -> None:
        self._finished += 1
        self._total_time += seconds
        if seconds > self._max_time:
            self._max_time = seconds

    def _start_loop(self) -> None:
        with self._lock:
            if self._closed:
                raise _closed_error()
            self._runner.start()

    def _resume(self, rec: ExecutionRecord) -> bool:
        """Schedule an interrupted run of a durable flow: resumed, or started if it never was.

        A durable graph saves its run when it starts, so without a saved run it had not
        started (it was pending) and nothing of it was done.
        """
        flow = self._flows.find(rec.flow_id)
        if flow is None:
            return False
        try:
            graph = flow.new_graph()
            if not is_durable(graph):
                return False
            resume = graph.state.backend.load_run(rec.execution_id) is not None
        except Exception:  # a broken factory or store: report the run as interrupted
            return False
        rec.status = "pending"
        rec.started = 0.0
        rec.durable = True
        self._start_loop()
        self._runner.call(self._spawn, rec, flow, graph, resume)
        return True

    def _spawn(
        self, rec: ExecutionRecord, flow: Flow, graph: Any = None, resume: bool = False
    ) -> None:
        # Runs on the loop thread; a cancel scheduled after this finds rec.task set.
        if rec.status == "pending":
            loop = self._runner.loop
            assert loop is not None
            rec.task = loop.create_task(self._drive(rec, flow, graph, resume))

    async def _drive(
        self, rec: ExecutionRecord, flow: Flow, graph: Any = None, resume: bool = False
    ) -> None:
        slots = self._runner.slots
        assert slots is not None
        async with slots:
            with self._lock:
                if rec.status != "pending" or rec.kept:
                    return
                rec.status = "running"
                rec.updated_at = utcnow_iso()
                rec.started = time.perf_counter()
                if rec.timeout is not None and rec.timeout_at is None:
                    rec.timeout_at = self._clock() + rec.timeout
            self._memory.save(rec)
            try:
                if flow.lock is None and flow.factory is None:
                    flow.lock = asyncio.Lock()
                remote = None  # (executor, factory): the run goes to a cluster
                if self._executor is not None and flow.factory is not None:
                    remote = (self._executor, flow.factory)
                elif graph is None:
                    graph = flow.new_graph()
                if flow.lock is not None:
                    async with flow.lock:
                        result = await run_graph(graph, rec, resume, self._clock)
                else:
                    result = await run_graph(graph, rec, resume, self._clock, remote)
            except asyncio.CancelledError:
                self._finish(rec, "cancelled", {}, CANCELLED_MESSAGE)
                return
            except asyncio.TimeoutError:
                self._finish(rec, "failed", {}, f"timed out after {rec.timeout:g} s")
                return
            except Exception as exc:
                self._finish(rec, "failed", {}, describe_error(exc))
                return
            self._finish_result(rec, flow, result)

    def _finish_result(self, rec: ExecutionRecord, flow: Flow, result: Any) -> None:
        rec.node_results = node_results(result)
        status = getattr(result, "status", "completed")
        if (
            status != "completed"
        ):  # spark_core raises instead; another Graph may return it
            self._finish(rec, "failed", {}, f"the run ended {status}")
            return
        output = exit_outputs(
            flow.exit_points,
            getattr(result, "outputs", None) or {},
            getattr(result, "content", None),
        )
        try:
            text = json.dumps(output)
            output = json.loads(text)
        except (TypeError, ValueError, RecursionError) as exc:
            self._finish(
                rec, "failed", {}, f"the flow's output is not JSON-serialisable: {exc}"
            )
            return
        rec.size += len(text) + len(json.dumps(rec.node_results))
        self._finish(rec, "completed", output, None)

    def _finish(
        self,
        rec: ExecutionRecord,
        status: str,
        output: Dict[str, Any],
        error: Optional[str],
    ) -> None:
        with self._lock:
            if rec.status in TERMINAL_STATUSES or rec.kept:
                return  # cancelled (or closed) first: a final status never changes
            now = utcnow_iso()
            rec.status = status
            rec.output_data = output
            rec.error_message = error
            rec.updated_at = rec.completed_at = now
            if rec.started:
                rec.execution_time = time.perf_counter() - rec.started
                self._count_time(rec.execution_time)
        self._memory.save(rec)
        self._memory.retire(rec)
        self._set_done(rec)


def _cancel_task(rec: ExecutionRecord) -> None:
    # On the loop thread.
    task = rec.task
    if task is not None and not task.done():
        task.cancel()


def _json_copy(value: Any, name: str) -> Tuple[Dict[str, Any], int]:
    """Check a JSON object argument and deep-copy it, so callers and runs share nothing.

    One encoding does both (on the hot path of every execute) and gives the size; anything
    it refuses gets ``validate_json_object``'s error, the same as AISpine raises.

    Returns:
        The copy and the length of its JSON text.
    """
    if isinstance(value, dict) and all(isinstance(key, str) for key in value):
        try:
            text = json.dumps(value, allow_nan=False)
            copied: Dict[str, Any] = json.loads(text)
            return copied, len(text)
        except (TypeError, ValueError):
            pass
        except RecursionError:
            raise ValidationError(f"{name} is nested too deeply") from None
    validate_json_object(value, name)  # raises the precise error
    raise ValidationError(f"{name} is not a JSON object")  # pragma: no cover


def _closed_error() -> ServerError:
    """What a closed LocalSpine raises for new work: 503, as a server shutting down answers."""
    msg = "LocalSpine is closed (shutting down): no new executions"
    return ServerError(msg, status_code=503, body={"detail": msg})
