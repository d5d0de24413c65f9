"""Rules AISpine and LocalSpine share, so the local and remote answers agree.

* ``priority`` is an integer from 0 to 10 (the backend's ``ExecutionRequest``).
* ``timeout`` is an integer of seconds, at least 1 and at most :data:`MAX_INT`, the largest
  integer a SQLite ``INTEGER`` column holds (so a journal never refuses one).
* A wait that runs out raises :func:`wait_timeout_error`; an execution that ended failed or
  cancelled raises :func:`execution_error` (both worded the same on either side).
"""

from __future__ import annotations

from typing import Any, Dict, Optional

from ai_spine.exceptions import ExecutionError, TimeoutError, ValidationError
from ai_spine.utils import validate_positive_number

__all__ = [
    "MIN_PRIORITY",
    "MAX_PRIORITY",
    "MAX_INT",
    "check_priority",
    "check_timeout",
    "wait_timeout_error",
    "execution_error",
]

MIN_PRIORITY = 0
MAX_PRIORITY = 10
#: The largest integer accepted anywhere (a SQLite INTEGER is a signed 64-bit value).
MAX_INT = 2**63 - 1


def check_priority(priority: Any) -> int:
    """Check an execution's ``priority``.

    Args:
        priority: The value given by the caller.

    Returns:
        The priority.

    Raises:
        ValidationError: Not an int from 0 to 10.
    """
    validate_positive_number(priority, "priority", allow_zero=True, integer=True)
    if priority > MAX_PRIORITY:
        raise ValidationError(
            f"priority must be between {MIN_PRIORITY} and {MAX_PRIORITY}, got {priority}"
        )
    return int(priority)


def check_timeout(timeout: Any) -> int:
    """Check an execution's ``timeout`` (whole seconds).

    Args:
        timeout: The value given by the caller.

    Returns:
        The timeout.

    Raises:
        ValidationError: Not an int from 1 to :data:`MAX_INT`.
    """
    if isinstance(timeout, int) and not isinstance(timeout, bool) and timeout > MAX_INT:
        raise ValidationError(f"timeout must be at most {MAX_INT}")
    validate_positive_number(timeout, "timeout", integer=True)
    return int(timeout)


def wait_timeout_error(
    execution_id: str, timeout: float, status: Optional[str], cause: str = ""
) -> TimeoutError:
    """The error a wait raises when ``timeout`` passed before the execution was final.

    Args:
        execution_id: The execution waited for.
        timeout: The seconds waited.
        status: Its last known status (None when never read).
        cause: Text appended after the status (e.g. ``"; last poll: ..."``).

    Returns:
        The TimeoutError to raise.
    """
    return TimeoutError(
        f"execution {execution_id} not finished after {timeout:g}s "
        f"(last status: {status or 'unknown'}{cause})",
        execution_id=execution_id,
        last_status=status,
    )


def execution_error(
    execution: Dict[str, Any], execution_id: Optional[str] = None
) -> ExecutionError:
    """The error a wait raises for an execution that ended ``failed`` or ``cancelled``.

    Args:
        execution: The final execution (``error_message``, or the backend's ``error``).
        execution_id: The id waited for (default: the execution's own).

    Returns:
        The ExecutionError to raise, holding the execution.
    """
    error = execution.get("error_message") or execution.get("error")
    return ExecutionError(
        f"execution {execution_id or execution['execution_id']} {execution['status']}"
        + (f": {error}" if error else ""),
        execution=execution,
    )
