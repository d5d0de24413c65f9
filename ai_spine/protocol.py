"""``Spine`` and ``AsyncSpine``: the methods every AI Spine client shares.

``Spine`` is what :class:`ai_spine.AISpine` and :class:`ai_spine.LocalSpine` share;
``AsyncSpine`` is its coroutine twin, satisfied by :class:`ai_spine.AsyncAISpine` and
:class:`ai_spine.AsyncLocalSpine`.

Code written against ``Spine`` runs unchanged on the hosted backend (``AISpine``), on a local
``ai-spine serve`` (``AISpine(base_url=...)``) or in-process (``LocalSpine``)::

    def summarise(spine: Spine, text: str) -> str:
        started = spine.execute_flow("summarise", {"text": text})
        done = spine.wait_for_execution(started["execution_id"])
        return done["output_data"]["summarise"]["summary"]  # keyed by the exit node

Every class is checked against its protocol by mypy (``tests/local/typing_check.py``).
"""

from __future__ import annotations

from typing import Any, Callable, Dict, Iterable, List, Optional

from typing_extensions import Protocol, runtime_checkable

from ai_spine.models import (
    AgentDict,
    BatchInput,
    BatchResult,
    ExecutionDict,
    ExecutionResponse,
    FlowDict,
)

__all__ = ["Spine", "AsyncSpine"]


@runtime_checkable
class Spine(Protocol):
    """The AI Spine operations, wherever the flows run.

    Every method returns the backend's JSON shapes and raises :mod:`ai_spine.exceptions`
    errors; see :class:`ai_spine.AISpine` for each method's full contract.
    """

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
        """Start a flow; returns at once with the execution id and ``pending``."""
        ...

    def get_execution(self, execution_id: str) -> ExecutionDict:
        """Return an execution's current state."""
        ...

    def wait_for_execution(
        self,
        execution_id: str,
        timeout: float = ...,
        interval: float = ...,
        *,
        on_progress: Optional[Callable[[ExecutionDict], None]] = None,
    ) -> ExecutionDict:
        """Wait until the execution completes; raise ExecutionError/TimeoutError otherwise."""
        ...

    def cancel_execution(self, execution_id: str) -> Dict[str, Any]:
        """Cancel a pending or running execution."""
        ...

    def list_executions(
        self, limit: int = ..., offset: int = ..., *, status: Optional[str] = None
    ) -> List[ExecutionDict]:
        """List executions, newest first."""
        ...

    def list_flows(self) -> List[FlowDict]:
        """List flow definitions."""
        ...

    def get_flow(self, flow_id: str) -> FlowDict:
        """Return one flow definition."""
        ...

    def list_agents(self) -> List[AgentDict]:
        """List registered agents."""
        ...

    def get_agent(self, agent_id: str) -> AgentDict:
        """Return one agent."""
        ...

    def create_agent(self, agent_config: Dict[str, Any]) -> AgentDict:
        """Register an agent."""
        ...

    def delete_agent(self, agent_id: str) -> bool:
        """Unregister an agent."""
        ...

    def health_check(self) -> Dict[str, Any]:
        """Return the health report."""
        ...

    def get_metrics(self) -> Dict[str, Any]:
        """Return execution counters and timings."""
        ...

    def get_status(self) -> Dict[str, Any]:
        """Return the overall system status."""
        ...

    def execute_batch(
        self,
        items: Iterable[BatchInput],
        concurrency: int = ...,
        on_progress: Optional[Callable[[int, int, BatchResult], None]] = None,
        *,
        wait_timeout: float = ...,
        interval: float = ...,
    ) -> List[BatchResult]:
        """Execute many flows and wait for each."""
        ...


@runtime_checkable
class AsyncSpine(Protocol):
    """The AI Spine operations as coroutines, wherever the flows run.

    The same methods, arguments, return shapes and errors as :class:`Spine`; each one is
    awaited. ``on_progress`` callbacks are plain functions, called in the event loop.
    """

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
        """Start a flow; returns at once with the execution id and ``pending``."""
        ...

    async def get_execution(self, execution_id: str) -> ExecutionDict:
        """Return an execution's current state."""
        ...

    async def wait_for_execution(
        self,
        execution_id: str,
        timeout: float = ...,
        interval: float = ...,
        *,
        on_progress: Optional[Callable[[ExecutionDict], None]] = None,
    ) -> ExecutionDict:
        """Wait until the execution completes; raise ExecutionError/TimeoutError otherwise."""
        ...

    async def cancel_execution(self, execution_id: str) -> Dict[str, Any]:
        """Cancel a pending or running execution."""
        ...

    async def list_executions(
        self, limit: int = ..., offset: int = ..., *, status: Optional[str] = None
    ) -> List[ExecutionDict]:
        """List executions, newest first."""
        ...

    async def list_flows(self) -> List[FlowDict]:
        """List flow definitions."""
        ...

    async def get_flow(self, flow_id: str) -> FlowDict:
        """Return one flow definition."""
        ...

    async def list_agents(self) -> List[AgentDict]:
        """List registered agents."""
        ...

    async def get_agent(self, agent_id: str) -> AgentDict:
        """Return one agent."""
        ...

    async def create_agent(self, agent_config: Dict[str, Any]) -> AgentDict:
        """Register an agent."""
        ...

    async def delete_agent(self, agent_id: str) -> bool:
        """Unregister an agent."""
        ...

    async def health_check(self) -> Dict[str, Any]:
        """Return the health report."""
        ...

    async def get_metrics(self) -> Dict[str, Any]:
        """Return execution counters and timings."""
        ...

    async def get_status(self) -> Dict[str, Any]:
        """Return the overall system status."""
        ...

    async def execute_batch(
        self,
        items: Iterable[BatchInput],
        concurrency: int = ...,
        on_progress: Optional[Callable[[int, int, BatchResult], None]] = None,
        *,
        wait_timeout: float = ...,
        interval: float = ...,
    ) -> List[BatchResult]:
        """Execute many flows and wait for each."""
        ...
