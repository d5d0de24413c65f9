"""spark_core nodes that run work through a :class:`~ai_spine.protocol.Spine`.

``RemoteFlowNode`` executes a flow on any Spine (the hosted backend through ``AISpine``, a local
``ai-spine serve``, or a ``LocalSpine``) or any ``AsyncSpine`` (``AsyncAISpine``,
``AsyncLocalSpine``) and waits for it, so a local graph can call remote flows as ordinary
nodes::

    fetch >> RemoteFlowNode("sentiment", client=AsyncAISpine(base_url=...)) >> report

``LocalAgentNode`` calls an agent registered on a ``LocalSpine`` (a Python handler or an HTTP
endpoint) with the node's input.
"""

from __future__ import annotations

import asyncio
import inspect
import threading
from typing import TYPE_CHECKING, Any, Dict, Optional, Set, Union, cast

from spark_core.nodes import ExecutionContext, Node, NodeConfig

from ai_spine.constants import DEFAULT_POLL_INTERVAL, DEFAULT_WAIT_TIMEOUT
from ai_spine.exceptions import ValidationError
from ai_spine.utils import validate_json_object, validate_positive_number
from ai_spine.protocol import AsyncSpine, Spine

if TYPE_CHECKING:  # pragma: no cover
    from ai_spine.local import LocalSpine

__all__ = ["RemoteFlowNode", "LocalAgentNode"]


class RemoteFlowNode(Node):
    """Execute ``flow_id`` on ``client`` with this node's input; output its ``output_data``.

    An async client (``AsyncAISpine``, ``AsyncLocalSpine``) is awaited in the graph's own
    event loop; a blocking one's calls run in a worker thread, so the loop keeps running other
    branches either way. Any failure (unknown flow, execution failed or cancelled, timeout, network)
    raises, so the node fails and the node's retry/timeout capabilities apply. If the node's
    task is cancelled while waiting, the remote execution is cancelled too.

    Args:
        flow_id: The flow to execute.
        client: Any :class:`~ai_spine.protocol.Spine` (``AISpine``, ``LocalSpine``) or
            :class:`~ai_spine.protocol.AsyncSpine` (``AsyncAISpine``, ``AsyncLocalSpine``;
            an ``AsyncAISpine`` belongs to the loop it first ran in: one per graph loop).
        name: The node's name (defaults to ``remote:<flow_id>``).
        config: Node capabilities (retry, timeout, ...).
        wait_timeout: Seconds to wait for the remote execution.
        interval: Polling interval for clients that poll.
        metadata: Metadata sent with every execution.

    Raises:
        ValidationError: ``flow_id`` is not a non-empty string or ``client`` is not a Spine.
    """

    def __init__(
        self,
        flow_id: str,
        client: Union[Spine, AsyncSpine],
        *,
        name: Optional[str] = None,
        config: Optional[NodeConfig] = None,
        wait_timeout: float = DEFAULT_WAIT_TIMEOUT,
        interval: float = DEFAULT_POLL_INTERVAL,
        metadata: Optional[Dict[str, Any]] = None,
    ) -> None:
        if not isinstance(flow_id, str) or not flow_id:
            raise ValidationError(
                f"flow_id must be a non-empty string, got {flow_id!r}"
            )
        if not isinstance(client, (Spine, AsyncSpine)):
            raise ValidationError(
                f"client must be an AISpine, a LocalSpine, their async twins or another "
                f"Spine, got {type(client).__name__}"
            )
        # Checked now: a bad number would otherwise only fail the node at run time.
        validate_positive_number(wait_timeout, "wait_timeout")
        validate_positive_number(interval, "interval")
        if metadata is not None:
            validate_json_object(metadata, "metadata")
        super().__init__(name or f"remote:{flow_id}", config)
        self.flow_id = flow_id
        self.client = client
        self.is_async = inspect.iscoroutinefunction(client.execute_flow)
        self._background: Set["asyncio.Future[Any]"] = set()
        self.wait_timeout = wait_timeout
        self.interval = interval
        self.metadata = metadata

    async def process(self, context: ExecutionContext) -> Any:
        """Execute the flow with this node's input and return its ``output_data``.

        Args:
            context: The execution context; ``inputs.content`` becomes ``input_data``.

        Returns:
            The remote execution's ``output_data``.

        Raises:
            AISpineError: Any failure of the remote execution (fails the node).
        """
        content = context.inputs.content
        input_data = content if isinstance(content, dict) else {"value": content}
        if self.is_async:
            return await self._run_async(cast(AsyncSpine, self.client), input_data)
        client = cast(Spine, self.client)
        # Cancelled while execute_flow is still running in its thread, the call goes on
        # and starts an execution: whichever side learns second (the thread, of the
        # cancel; this task, of the id) cancels it, so it is cancelled exactly once.
        lock = threading.Lock()
        cancelled = False
        started_id: Optional[str] = None

        def start() -> Any:
            nonlocal started_id
            answer = client.execute_flow(self.flow_id, input_data, self.metadata)
            with lock:
                started_id = str(answer["execution_id"])
                late = cancelled
            if late:
                self._cancel_quietly(started_id)
            return answer

        try:
            started = await asyncio.to_thread(start)
        except asyncio.CancelledError:
            with lock:
                cancelled = True
                known = started_id
            if known is not None:
                self._cancel_in_background(known)
            raise
        execution_id = str(started["execution_id"])
        try:
            final = await asyncio.to_thread(
                client.wait_for_execution,
                execution_id,
                self.wait_timeout,
                self.interval,
            )
        except asyncio.CancelledError:
            await asyncio.shield(asyncio.to_thread(self._cancel_quietly, execution_id))
            raise
        return dict(final.get("output_data") or {})

    async def _run_async(
        self, client: AsyncSpine, input_data: Dict[str, Any]
    ) -> Dict[str, Any]:
        # Cancelled while execute_flow is under way, the call goes on (shielded): once its
        # answer names the new execution, that execution is cancelled, so none is left
        # running unseen.
        start = asyncio.ensure_future(
            client.execute_flow(self.flow_id, input_data, self.metadata)
        )
        try:
            started = await asyncio.shield(start)
        except asyncio.CancelledError:
            start.add_done_callback(lambda done: self._cancel_started(client, done))
            raise
        execution_id = started["execution_id"]
        try:
            final = await client.wait_for_execution(
                execution_id, self.wait_timeout, self.interval
            )
        except asyncio.CancelledError:
            await asyncio.shield(self._cancel_quietly_async(client, execution_id))
            raise
        return dict(final.get("output_data") or {})

    def _cancel_started(self, client: AsyncSpine, start: "asyncio.Future[Any]") -> None:
        if start.cancelled() or start.exception() is not None:
            return
        task = asyncio.ensure_future(
            self._cancel_quietly_async(client, start.result()["execution_id"])
        )
        self._background.add(
            task
        )  # held until done: the loop keeps only weak references
        task.add_done_callback(self._background.discard)

    @staticmethod
    async def _cancel_quietly_async(client: AsyncSpine, execution_id: str) -> None:
        try:
            await client.cancel_execution(execution_id)
        except Exception:  # best effort: it may have finished meanwhile
            pass

    def _cancel_in_background(self, execution_id: str) -> None:
        threading.Thread(
            target=self._cancel_quietly,
            args=(execution_id,),
            name="ai-spine-remote-cancel",
            daemon=True,
        ).start()

    def _cancel_quietly(self, execution_id: str) -> None:
        try:
            cast(Spine, self.client).cancel_execution(execution_id)
        except Exception:  # best effort: it may have finished meanwhile
            pass


class LocalAgentNode(Node):
    """Call an agent registered on a :class:`~ai_spine.local.LocalSpine` with this input.

    The agent (a ``handler`` callable or an HTTP ``endpoint``, see
    :meth:`~ai_spine.local.LocalSpine.create_agent`) is looked up at every call, so deleting
    or re-creating it takes effect at once. The call runs in a worker thread.

    Args:
        agent_id: The registered agent.
        spine: The LocalSpine holding the agent.
        name: The node's name (defaults to ``agent:<agent_id>``).
        config: Node capabilities (retry, timeout, ...).
    """

    def __init__(
        self,
        agent_id: str,
        spine: "LocalSpine",
        *,
        name: Optional[str] = None,
        config: Optional[NodeConfig] = None,
    ) -> None:
        if not isinstance(agent_id, str) or not agent_id:
            raise ValidationError(
                f"agent_id must be a non-empty string, got {agent_id!r}"
            )
        super().__init__(name or f"agent:{agent_id}", config)
        self.agent_id = agent_id
        self.spine = spine

    async def process(self, context: ExecutionContext) -> Any:
        """Return the agent's answer to this node's input.

        Args:
            context: The execution context; ``inputs.content`` is sent to the agent.

        Returns:
            The agent's JSON object answer.

        Raises:
            AISpineError: Unknown agent, or the agent failed (fails the node).
        """
        content = context.inputs.content
        payload = content if isinstance(content, dict) else {"value": content}
        return await asyncio.to_thread(self.spine.invoke_agent, self.agent_id, payload)
