"""What each client method sends and how its answer is checked, apart from any I/O.

:class:`ai_spine.AISpine` and :class:`ai_spine.AsyncAISpine` are lists of short methods over
these functions, so both refuse the same input and read the same answers the same way.
"""

from __future__ import annotations

import re
from typing import Any, Dict, FrozenSet, List, Optional, cast

from ai_spine import constants
from ai_spine.exceptions import (
    FlowNotFoundError,
    NotFoundError,
    ServerError,
    TimeoutError,
    ValidationError,
)
from ai_spine.models import ExecutionDict, ExecutionResponse
from ai_spine.rules import (
    check_priority,
    check_timeout,
    execution_error,
    wait_timeout_error,
)
from ai_spine.utils import (
    validate_id,
    validate_json_object,
    validate_positive_number,
)

__all__ = [
    "EXECUTE",
    "EXECUTIONS",
    "FLOWS",
    "AGENTS",
    "execute_body",
    "execute_answer",
    "flow_not_found",
    "execution_path",
    "flow_path",
    "agent_path",
    "list_params",
    "keep_status",
    "agent_body",
    "expect_dict",
    "unwrap_list",
    "final_or_raise",
    "wait_timeout",
]

_API = constants.API_PREFIX
EXECUTE = f"{_API}/flows/execute"
EXECUTIONS = f"{_API}/executions"
FLOWS = f"{_API}/flows"
AGENTS = f"{_API}/agents"
_FLOW_NOT_FOUND = re.compile(r"Flow '(?P<flow>.*?)' not found")
# Fixed routes the backend matches before its /{id} ones: GET /api/v1/agents/active is the
# list of active agents, never the agent "active".
_FIXED_AGENT_ROUTES = frozenset({"active", "my-agents"})
_FIXED_FLOW_ROUTES = frozenset({"my-flows", "execute"})
_AGENT_TYPES = ("input", "processor", "output", "conditional")
_AGENT_TEXT_FIELDS = ("name", "description", "endpoint")


def expect_dict(body: Any, what: str) -> Dict[str, Any]:
    """Check that an answer is a JSON object.

    Args:
        body: The decoded answer.
        what: Method and full path, e.g. ``GET /api/v1/flows/x``.

    Returns:
        The object.

    Raises:
        ServerError: It is not a JSON object.
    """
    if not isinstance(body, dict):
        raise ServerError(f"{what}: expected a JSON object, got {type(body).__name__}")
    return body


def unwrap_list(body: Any, key: str, what: str) -> List[Dict[str, Any]]:
    """Read a list answer: ``{"flows": [...], "count": n}``, or a bare list.

    Args:
        body: The decoded answer.
        key: The key holding the list.
        what: Method and full path.

    Returns:
        The list.

    Raises:
        ServerError: Neither shape.
    """
    if isinstance(body, dict) and isinstance(body.get(key), list):
        return cast(List[Dict[str, Any]], body[key])
    if isinstance(body, list):
        return cast(List[Dict[str, Any]], body)
    raise ServerError(
        f"{what}: expected a list under {key!r}, got {type(body).__name__}"
    )


def execute_body(
    flow_id: str,
    input_data: Dict[str, Any],
    metadata: Optional[Dict[str, Any]],
    idempotency_key: Optional[str],
    priority: Optional[int],
    timeout: Optional[int],
) -> Dict[str, Any]:
    """The body of ``POST /api/v1/flows/execute``, every argument checked.

    Args:
        flow_id: The flow to run.
        input_data: Its input.
        metadata: Optional metadata.
        idempotency_key: Checked only (it travels as a header).
        priority: 0 to 10, or None.
        timeout: Backend-side execution timeout in seconds, or None.

    Returns:
        The JSON body.

    Raises:
        ValidationError: An argument is malformed.
    """
    validate_id(flow_id, "flow_id")
    body: Dict[str, Any] = {
        "flow_id": flow_id,
        "input_data": validate_json_object(input_data, "input_data"),
    }
    if metadata is not None:
        body["metadata"] = validate_json_object(metadata, "metadata")
    if idempotency_key is not None:
        validate_id(idempotency_key, "idempotency_key")
    if priority is not None:
        body["priority"] = check_priority(priority)
    if timeout is not None:
        body["timeout"] = check_timeout(timeout)
    return body


def flow_not_found(flow_id: str, exc: NotFoundError) -> FlowNotFoundError:
    """A 404 from the execute route, as :class:`FlowNotFoundError`.

    Args:
        flow_id: The flow that was executed.
        exc: The 404.

    Returns:
        The error, keeping the server's words ({"detail": "Not Found"} often means a wrong
        ``base_url``).
    """
    return FlowNotFoundError(
        f"Flow '{flow_id}' not found ({exc.message})",
        flow_id=flow_id,
        status_code=exc.status_code,
        request_id=exc.request_id,
        body=exc.body,
    )


def execute_answer(answer: Any, flow_id: str) -> ExecutionResponse:
    """Check the execute route's answer.

    Args:
        answer: The decoded answer.
        flow_id: The flow that was executed.

    Returns:
        The answer, an execution id and a status in it.

    Raises:
        ServerError: Not an object, no string ``execution_id`` or a non-string ``status``.
        FlowNotFoundError: The backend's HTTP-200 "unknown flow" answer.
    """
    what = f"POST {EXECUTE}"
    execution = expect_dict(answer, what)
    execution_id = execution.get("execution_id")
    if not isinstance(execution_id, str) or not execution_id:
        raise ServerError(
            f"{what}: answer has no execution_id string (got {execution_id!r})",
            body=execution,
        )
    status = execution.get("status")
    if not isinstance(status, str):
        raise ServerError(
            f"{what}: answer's status is not a string (got {type(status).__name__})",
            body=execution,
        )
    error = str(execution.get("error") or "")
    # Only this flow's "not found": a real execution failing on another flow's name (a
    # sub-flow) is an ordinary failed execution, returned as such.
    names_this_flow = any(
        m.group("flow") == flow_id for m in _FLOW_NOT_FOUND.finditer(error)
    )
    if status == "failed" and (execution_id == constants.ZERO_UUID or names_this_flow):
        message = f"Flow '{flow_id}' not found"
        if error and not names_this_flow:
            message += f": {error}"
        raise FlowNotFoundError(message, execution=execution, flow_id=flow_id)
    return cast(ExecutionResponse, execution)


def execution_path(execution_id: str, action: str = "") -> str:
    """``/api/v1/executions/{id}`` (``/cancel`` etc. with ``action``), the id checked.

    Args:
        execution_id: The execution's id.
        action: A sub-route such as ``cancel``.

    Returns:
        The path.

    Raises:
        ValidationError: A malformed id.
    """
    path = f"{EXECUTIONS}/{validate_id(execution_id, 'execution_id')}"
    return f"{path}/{action}" if action else path


def _not_a_fixed_route(value: str, name: str, fixed: FrozenSet[str], route: str) -> str:
    if value in fixed:
        raise ValidationError(
            f"{name} {value!r} cannot be fetched: {route}/{value} is a fixed route of the "
            "backend, not this id"
        )
    return value


def flow_path(flow_id: str) -> str:
    """``/api/v1/flows/{id}`` for a flow the backend can return.

    Args:
        flow_id: The flow's id.

    Returns:
        The path.

    Raises:
        ValidationError: A malformed id, or one naming a fixed route (``my-flows``).
    """
    validate_id(flow_id, "flow_id")
    _not_a_fixed_route(flow_id, "flow_id", _FIXED_FLOW_ROUTES, FLOWS)
    return f"{FLOWS}/{flow_id}"


def agent_path(agent_id: str, *, fetch: bool) -> str:
    """``/api/v1/agents/{id}``.

    Args:
        agent_id: The agent's id.
        fetch: True for ``GET`` (the backend answers ``GET .../active`` and
            ``GET .../my-agents`` with lists); ``DELETE`` reaches any id.

    Returns:
        The path.

    Raises:
        ValidationError: A malformed id, or one a GET cannot reach.
    """
    validate_id(agent_id, "agent_id")
    if fetch:
        _not_a_fixed_route(agent_id, "agent_id", _FIXED_AGENT_ROUTES, AGENTS)
    return f"{AGENTS}/{agent_id}"


def list_params(limit: int, offset: int, status: Optional[str]) -> Dict[str, Any]:
    """The query of ``GET /api/v1/executions``, checked.

    Args:
        limit: How many (> 0).
        offset: How many to skip (>= 0).
        status: One of the execution statuses, or None.

    Returns:
        The query parameters.

    Raises:
        ValidationError: Out of range, or an unknown status.
    """
    validate_positive_number(limit, "limit", integer=True)
    validate_positive_number(offset, "offset", allow_zero=True, integer=True)
    params: Dict[str, Any] = {"limit": limit, "offset": offset}
    if status is not None:
        if status not in constants.EXECUTION_STATUSES:
            raise ValidationError(
                f"status must be one of {', '.join(constants.EXECUTION_STATUSES)}, "
                f"got {status!r}"
            )
        params["status"] = status
    return params


def keep_status(body: Any, status: Optional[str]) -> List[ExecutionDict]:
    """The executions of a list answer, only those with ``status`` when one was asked.

    The backend accepts ``status`` but ignores it (every run comes back), so the page is
    filtered here; it may then hold fewer than ``limit`` executions.

    Args:
        body: The decoded answer.
        status: The status asked for, or None.

    Returns:
        The executions.

    Raises:
        ServerError: Not a list answer.
    """
    items = unwrap_list(body, "executions", f"GET {EXECUTIONS}")
    if status is not None:
        items = [e for e in items if isinstance(e, dict) and e.get("status") == status]
    return cast(List[ExecutionDict], items)


def agent_body(agent_config: Any) -> Dict[str, Any]:
    """Check an agent definition as the backend's ``AgentInfo`` needs it, before sending.

    The backend reads ``agent_id``, ``name``, ``description``, ``endpoint``,
    ``capabilities`` and ``agent_type`` from the body and answers a bare 500 naming the
    first one missing; ``agent_type`` must be one of its four types.

    Args:
        agent_config: The definition.

    Returns:
        It, unchanged.

    Raises:
        ValidationError: Every problem found, in one message.
    """
    body = validate_json_object(agent_config, "agent_config", allow_empty=False)
    problems: List[str] = []
    agent_id = body.get("agent_id")
    try:
        validate_id(agent_id, "agent_id")
        _not_a_fixed_route(cast(str, agent_id), "agent_id", _FIXED_AGENT_ROUTES, AGENTS)
    except ValidationError as exc:
        problems.append(exc.message)
    for name in _AGENT_TEXT_FIELDS:
        if not isinstance(body.get(name), str):
            problems.append(f"{name} must be a string")
    capabilities = body.get("capabilities")
    if not isinstance(capabilities, list) or not all(
        isinstance(c, str) for c in capabilities
    ):
        problems.append("capabilities must be a list of strings")
    if body.get("agent_type") not in _AGENT_TYPES:
        problems.append(
            f"agent_type must be one of {', '.join(_AGENT_TYPES)}, "
            f"got {body.get('agent_type')!r}"
        )
    if "is_active" in body and not isinstance(body["is_active"], bool):
        problems.append("is_active must be true or false")
    if problems:
        raise ValidationError("agent_config: " + "; ".join(problems))
    return body


def final_or_raise(execution_id: str, execution: ExecutionDict) -> bool:
    """Read one poll of a waiter.

    Args:
        execution_id: The execution waited for.
        execution: What the poll returned.

    Returns:
        True when it completed, False while it is not final.

    Raises:
        ExecutionError: It ended ``failed`` or ``cancelled``.
    """
    status = str(execution.get("status"))
    if status == "completed":
        return True
    if status in constants.TERMINAL_STATUSES:
        raise execution_error(cast(Dict[str, Any], execution), execution_id)
    return False


def wait_timeout(
    execution_id: str,
    timeout: float,
    last_status: Optional[str],
    last_error: Optional[TimeoutError],
) -> TimeoutError:
    """The error of a waiter that ran out of time.

    Args:
        execution_id: The execution waited for.
        timeout: The wait's timeout.
        last_status: The last status seen, if any.
        last_error: The last poll's timeout, if that is what ended the wait.

    Returns:
        The error (the caller chains it to ``last_error``).
    """
    cause = f"; last poll: {last_error.message}" if last_error else ""
    return wait_timeout_error(execution_id, timeout, last_status, cause)
