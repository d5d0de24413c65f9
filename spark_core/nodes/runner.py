"""The node runner: one execution of one node, from its context to its output and routes.

The story of one execution (:func:`run_node`), as the graph's scheduler asks for it:

1. A node with nothing around it (no observers, no capability) takes exactly one attempt,
   without the loop below: the fast path that a plain chain runs on.
2. Otherwise observers hear ``on_node_start`` (raising there fails the node unrun) and the
   attempt loop runs: the circuit breaker may refuse the call, the rate limit may wait for
   a slot, the timeout bounds the attempt. A failed attempt is retried as the node's
   ``RetryCapability`` says, after its state writes are undone; observers hear every
   attempt, retry, the node's end or its final error.
3. One attempt (:func:`attempt`) makes the node's step transaction current, has its
   executor run ``process`` (inline, a worker thread, elsewhere: see
   :mod:`spark_core.nodes.executors`), checks the output (a dict or ``None``) and asks
   ``route`` which edges fire. An edge condition that raises fails the attempt, unretried.
4. The output and the fired targets go back to the scheduler, which commits the step.
"""

from __future__ import annotations

import asyncio
import time
from typing import (
    TYPE_CHECKING,
    Any,
    Awaitable,
    Callable,
    Optional,
    Sequence,
    Tuple,
    TypeVar,
)

from spark_core.errors import (
    CircuitOpenError,
    EdgeConditionError,
    NodeExecutionError,
    NodeTimeoutError,
    RunStopped,
)
from spark_core.nodes.context import CURRENT_STEP
from spark_core.nodes.executors import NodeExecutor, run_sync_process

if TYPE_CHECKING:  # pragma: no cover
    from spark_core.graphs.observers import GraphObserver, RunInfo
    from spark_core.nodes.base import Node
    from spark_core.nodes.context import ExecutionContext

R = TypeVar("R")


class BadOutputError(TypeError):
    """``process()`` returned something other than a dict or ``None`` (never retried)."""


def check_output(node: "Node", output: Any) -> Any:
    """Return ``output`` if it is a dict or ``None``.

    Args:
        node: The node that returned it.
        output: What ``process`` returned.

    Returns:
        ``output``.

    Raises:
        BadOutputError: It is something else.
    """
    if output is None or isinstance(output, dict):
        return output
    raise BadOutputError(
        f"process() must return a dict or None, got {type(output).__name__} from node {node.id!r}"
    )


def failure(node: "Node", error: BaseException) -> NodeExecutionError:
    """``error`` as the node's failure (a ``NodeExecutionError`` of this node as it is).

    Args:
        node: The node that failed.
        error: What it raised.

    Returns:
        The error to raise.
    """
    if isinstance(error, NodeExecutionError) and error.node_id == node.id:
        return error
    return NodeExecutionError(node.id, error)


def no_route(output: Any) -> None:
    """The ``route`` of a node run alone: it has no edges to evaluate.

    Args:
        output: The node's output.
    """
    return None


async def attempt(
    node: "Node",
    ctx: "ExecutionContext",
    route: Callable[[Any], R],
    executor: Optional[NodeExecutor] = None,
) -> Tuple[Any, R]:
    """Call ``process`` once; return its checked output and what ``route`` made of it.

    Args:
        node: The node.
        ctx: Its execution context (``ctx.transaction``, when set, records its writes).
        route: The node's edge conditions: output -> targets of the edges that fire.
        executor: Where ``process`` runs (``None``: this process, see ``executors``).

    Returns:
        The output and the routed targets.
    """
    step = ctx.transaction  # while process runs, its state writes are this step's
    token = None if step is None else CURRENT_STEP.set(step)
    try:
        if executor is not None:
            output = await executor.run(node, ctx)
        elif node._is_async:
            output = await node.process(ctx)
        else:
            output = await run_sync_process(node, ctx)
    finally:
        if token is not None:
            CURRENT_STEP.reset(token)
    if output is not None and type(output) is not dict:
        output = check_output(node, output)
    routed = route(output)
    node.state.context_snapshot = output  # its previous output, next time it runs
    return output, routed


def run_node(
    node: "Node",
    ctx: "ExecutionContext",
    route: Callable[[Any], R],
    run: Optional["RunInfo"] = None,
    observers: Sequence["GraphObserver"] = (),
    executor: Optional[NodeExecutor] = None,
) -> Awaitable[Tuple[Any, R]]:
    """Run one node execution (see the module docstring); await what it returns.

    Args:
        node: The node.
        ctx: Its execution context (``metadata["attempt"]`` is updated per attempt).
        route: Called with an attempt's output before the attempt counts as a success;
            when it raises ``EdgeConditionError`` the attempt failed, and is not retried.
        run: The run, for observer hooks (``None`` when the node runs alone: no hooks).
        observers: Observers to call.
        executor: Where ``process`` runs (``None``: this process).

    Returns:
        An awaitable of the node's output (a dict or ``None``) and what ``route``
        returned for it; the output is also the node's ``state.context_snapshot``.

    Raises:
        NodeExecutionError: The node failed for good (``NodeTimeoutError``,
            ``CircuitOpenError`` for those causes). On the fast path the node's own
            exception propagates as it is: callers pass it through :func:`failure`.
        RunStopped: The node or an observer stopped (or paused) the run.
    """
    if not observers and not node.config.has_capabilities():
        return attempt(
            node, ctx, route, executor
        )  # the fast path: one attempt, no loop
    return _attempts(node, ctx, route, run, observers, executor)


async def _attempts(  # noqa: C901 - the attempt loop is clearer in one piece
    node: "Node",
    ctx: "ExecutionContext",
    route: Callable[[Any], R],
    run: Optional["RunInfo"],
    observers: Sequence["GraphObserver"],
    executor: Optional[NodeExecutor],
) -> Tuple[Any, R]:
    """The attempt loop: observers, circuit breaker, retries, rate limit, timeout."""
    config = node.config
    retry, timeout = config.retry, config.timeout
    limiter, breaker = config.rate_limit, config.circuit_breaker
    if run is None:
        observers = ()  # a node run alone calls no hooks
    else:
        try:
            for observer in observers:
                await observer.on_node_start(run, node, ctx)
        except RunStopped:
            raise
        except Exception as exc:  # e.g. a policy denial: the node fails without running
            denied = NodeExecutionError(node.id, exc)
            for observer in observers:
                await observer.on_node_error(run, node, ctx, denied)
            raise denied from exc
    number = 0
    last_failure: Optional[BaseException] = None  # what the node itself last raised
    while True:
        number += 1
        ctx.metadata["attempt"] = number
        for observer in observers:
            await observer.on_attempt_start(run, node, ctx)  # type: ignore[arg-type]
        output: Any = None
        error: Optional[BaseException] = None
        started = time.monotonic()
        try:
            if breaker is not None and not breaker.allow():
                # Opened by this node's own failures (e.g. during retries): keep the real
                # error as the cause, so it is not lost behind the breaker.
                detail = (
                    f" (last error: {type(last_failure).__name__}: {last_failure})"
                    if last_failure is not None
                    else ""
                )
                raise CircuitOpenError(
                    node.id,
                    last_failure,
                    f"node {node.id!r} not called: its circuit breaker is open{detail}",
                )
            if limiter is not None:
                await limiter.acquire()
            if timeout is not None:  # a condition that raises fails this attempt too
                output, routed = await asyncio.wait_for(
                    attempt(node, ctx, route, executor), timeout.timeout_seconds
                )
            else:
                output, routed = await attempt(node, ctx, route, executor)
        except RunStopped:
            raise
        except CircuitOpenError as exc:
            error = exc
        except Exception as exc:
            error = exc
            if breaker is not None:
                breaker.record_failure()
            if (
                timeout is not None
                and isinstance(exc, asyncio.TimeoutError)
                and time.monotonic() - started >= timeout.timeout_seconds * 0.99
            ):
                error = NodeTimeoutError(
                    node.id,
                    exc,
                    message=f"node {node.id!r} timed out after {timeout.timeout_seconds}s",
                )
            last_failure = error
        else:
            if breaker is not None:
                breaker.record_success()
        await ctx.flush_events()
        for observer in observers:
            await observer.on_attempt_end(run, node, ctx, output, error)  # type: ignore
        if error is None:
            for observer in observers:
                await observer.on_node_end(run, node, ctx, output)  # type: ignore
            return output, routed
        cause = error.cause if isinstance(error, NodeTimeoutError) else error
        if (
            retry is not None
            and not isinstance(
                error, (CircuitOpenError, BadOutputError, EdgeConditionError)
            )
            and retry.should_retry(cause if cause is not None else error, number)
        ):
            if ctx.transaction is not None:
                ctx.transaction.undo()  # the retry starts from clean state
            delay = retry.delay(number)
            for observer in observers:
                await observer.on_retry(run, node, ctx, error, delay)  # type: ignore
            await asyncio.sleep(delay)
            continue
        final = failure(node, error)
        for observer in observers:
            await observer.on_node_error(run, node, ctx, final)  # type: ignore
        raise final  # its __cause__ is already final.cause (never final itself)


__all__ = ["run_node", "attempt", "check_output", "failure", "BadOutputError"]
