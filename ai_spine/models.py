"""Types for the backend's JSON, and dataclasses for those who want objects.

The client's methods return the backend's JSON as plain dicts, typed with the ``TypedDict``s
below (all keys optional: the backend may add or omit fields). ``Flow``, ``Execution`` and
``Agent`` are dataclasses built from those dicts with ``from_dict``; their timestamps are
timezone-aware datetimes (naive backend timestamps are read as UTC).
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Tuple, Union

from typing_extensions import TypedDict

from ai_spine import constants
from ai_spine.exceptions import AISpineError, ValidationError
from ai_spine.utils import parse_datetime

__all__ = [
    "ExecutionResponse",
    "ExecutionDict",
    "FlowDict",
    "AgentDict",
    "Flow",
    "Execution",
    "Agent",
    "BatchItem",
    "BatchInput",
    "BatchResult",
]


class ExecutionResponse(TypedDict, total=False):
    """What ``POST /api/v1/flows/execute`` answers."""

    execution_id: str
    status: str
    result: Optional[Dict[str, Any]]
    error: Optional[str]
    execution_time: Optional[float]


class ExecutionDict(TypedDict, total=False):
    """An execution as ``GET /api/v1/executions/{id}`` returns it."""

    execution_id: str
    flow_id: str
    status: str
    input_data: Dict[str, Any]
    output_data: Optional[Dict[str, Any]]
    error_message: Optional[str]
    created_at: str
    updated_at: str
    completed_at: Optional[str]
    #: LocalSpine and ``ai-spine serve`` only: the graph's own output (see the README).
    result: Any


class FlowDict(TypedDict, total=False):
    """A flow definition as ``GET /api/v1/flows/{id}`` returns it."""

    flow_id: str
    name: str
    description: str
    version: str
    nodes: List[Dict[str, Any]]
    entry_point: str
    exit_points: List[str]
    metadata: Optional[Dict[str, Any]]
    created_at: str
    updated_at: str


class AgentDict(TypedDict, total=False):
    """An agent as ``GET /api/v1/agents/{id}`` returns it."""

    agent_id: str
    name: str
    description: str
    endpoint: str
    capabilities: List[str]
    agent_type: str
    is_active: bool
    created_at: str
    updated_at: str


class BatchItem(TypedDict, total=False):
    """One item of :meth:`ai_spine.AISpine.execute_batch`: ``flow_id`` and ``input_data``."""

    flow_id: str
    input_data: Dict[str, Any]
    metadata: Dict[str, Any]


#: What ``execute_batch`` accepts per item (AISpine and LocalSpine alike).
BatchInput = Union[BatchItem, Dict[str, Any], Tuple[str, Dict[str, Any]]]


def _require(data: Any, key: str, owner: str) -> Any:
    if not isinstance(data, dict):
        raise ValidationError(
            f"{owner}.from_dict needs a dict, got {type(data).__name__}"
        )
    if data.get(key) is None:
        raise ValidationError(f"{owner}.from_dict: missing required field {key!r}")
    return data[key]


@dataclass
class Flow:
    """A flow definition.

    Attributes:
        flow_id: Unique id of the flow.
        name: Display name.
        description: What the flow does.
        nodes: The flow's node definitions, as the backend sent them.
        metadata: Free-form metadata.
        created_at: Creation time (UTC-aware).
        updated_at: Last update time (UTC-aware).
        raw: The dict this object was built from.
    """

    flow_id: str
    name: str = ""
    description: str = ""
    nodes: List[Dict[str, Any]] = field(default_factory=list)
    metadata: Optional[Dict[str, Any]] = None
    created_at: Optional[datetime.datetime] = None
    updated_at: Optional[datetime.datetime] = None
    raw: Dict[str, Any] = field(default_factory=dict, repr=False)

    @classmethod
    def from_dict(cls, data: Dict[str, Any]) -> "Flow":
        """Build a Flow from the backend's JSON.

        Args:
            data: A flow dict (needs ``flow_id``).

        Returns:
            The Flow.

        Raises:
            ValidationError: When ``flow_id`` is missing or a timestamp is unreadable.
        """
        flow_id = _require(data, "flow_id", "Flow")
        return cls(
            flow_id=str(flow_id),
            name=str(data.get("name") or ""),
            description=str(data.get("description") or ""),
            nodes=list(data.get("nodes") or []),
            metadata=data.get("metadata"),
            created_at=parse_datetime(data.get("created_at")),
            updated_at=parse_datetime(data.get("updated_at")),
            raw=dict(data),
        )


@dataclass
class Execution:
    """One run of a flow.

    Attributes:
        execution_id: Unique id of the execution.
        flow_id: The flow that ran (empty when the backend did not say).
        status: ``pending``, ``running``, ``completed``, ``failed`` or ``cancelled``.
        input_data: The input the flow was given.
        output_data: The flow's result (``output_data`` or ``result`` in the JSON).
        error_message: Why it failed (``error_message`` or ``error`` in the JSON).
        created_at: Creation time (UTC-aware).
        updated_at: Last update time (UTC-aware).
        completed_at: Completion time (UTC-aware), if finished.
        raw: The dict this object was built from.
    """

    execution_id: str
    flow_id: str = ""
    status: str = "pending"
    input_data: Dict[str, Any] = field(default_factory=dict)
    output_data: Optional[Dict[str, Any]] = None
    error_message: Optional[str] = None
    created_at: Optional[datetime.datetime] = None
    updated_at: Optional[datetime.datetime] = None
    completed_at: Optional[datetime.datetime] = None
    raw: Dict[str, Any] = field(default_factory=dict, repr=False)

    @property
    def is_finished(self) -> bool:
        """Whether the status is final (completed, failed or cancelled)."""
        return self.status in constants.TERMINAL_STATUSES

    @classmethod
    def from_dict(cls, data: Dict[str, Any]) -> "Execution":
        """Build an Execution from the backend's JSON (execute answer or execution record).

        Args:
            data: An execution dict (needs ``execution_id``).

        Returns:
            The Execution.

        Raises:
            ValidationError: When ``execution_id`` is missing or a timestamp is unreadable.
        """
        execution_id = _require(data, "execution_id", "Execution")
        output = data.get("output_data")
        if output is None:
            output = data.get("result")
        error = data.get("error_message")
        if error is None:
            error = data.get("error")
        return cls(
            execution_id=str(execution_id),
            flow_id=str(data.get("flow_id") or ""),
            status=str(data.get("status") or "pending"),
            input_data=dict(data.get("input_data") or {}),
            output_data=output,
            error_message=error,
            created_at=parse_datetime(data.get("created_at")),
            updated_at=parse_datetime(data.get("updated_at")),
            completed_at=parse_datetime(data.get("completed_at")),
            raw=dict(data),
        )


@dataclass
class Agent:
    """A registered agent.

    Attributes:
        agent_id: Unique id of the agent.
        name: Display name.
        description: What the agent does.
        endpoint: URL the backend calls.
        capabilities: Capability names.
        agent_type: ``input``, ``processor``, ``output`` or ``conditional``.
        is_active: Whether the agent is active.
        created_at: Registration time (UTC-aware).
        updated_at: Last update time (UTC-aware).
        raw: The dict this object was built from.
    """

    agent_id: str
    name: str = ""
    description: str = ""
    endpoint: str = ""
    capabilities: List[str] = field(default_factory=list)
    agent_type: str = ""
    is_active: bool = True
    created_at: Optional[datetime.datetime] = None
    updated_at: Optional[datetime.datetime] = None
    raw: Dict[str, Any] = field(default_factory=dict, repr=False)

    @classmethod
    def from_dict(cls, data: Dict[str, Any]) -> "Agent":
        """Build an Agent from the backend's JSON.

        Args:
            data: An agent dict (needs ``agent_id``).

        Returns:
            The Agent.

        Raises:
            ValidationError: When ``agent_id`` is missing or a timestamp is unreadable.
        """
        agent_id = _require(data, "agent_id", "Agent")
        return cls(
            agent_id=str(agent_id),
            name=str(data.get("name") or ""),
            description=str(data.get("description") or ""),
            endpoint=str(data.get("endpoint") or ""),
            capabilities=[str(c) for c in data.get("capabilities") or []],
            agent_type=str(data.get("agent_type") or ""),
            is_active=bool(data.get("is_active", True)),
            created_at=parse_datetime(data.get("created_at")),
            updated_at=parse_datetime(data.get("updated_at")),
            raw=dict(data),
        )


@dataclass
class BatchResult:
    """The outcome of one item of :meth:`ai_spine.AISpine.execute_batch`.

    Attributes:
        index: Position of the item in the input.
        flow_id: The item's flow id (None when the item itself was malformed).
        execution: The final execution dict when it completed (or the last one seen).
        error: The error that stopped this item, or None when it completed.
    """

    index: int
    flow_id: Optional[str]
    execution: Optional[Dict[str, Any]] = None
    error: Optional[AISpineError] = None

    @property
    def ok(self) -> bool:
        """True when the item's execution completed."""
        return self.error is None

    @property
    def execution_id(self) -> Optional[str]:
        """The execution's id, when one was started."""
        if self.execution and self.execution.get("execution_id") is not None:
            return str(self.execution["execution_id"])
        return None

    @property
    def result(self) -> Any:
        """The execution's output (``output_data``, else ``result``), or None."""
        if not self.execution:
            return None
        output = self.execution.get("output_data")
        return output if output is not None else self.execution.get("result")
