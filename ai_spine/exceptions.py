"""Typed errors raised by the AI Spine SDK.

Hierarchy::

    AISpineError                         base of everything the SDK raises
    +-- APIError                         the server answered with an error status
    |   +-- AuthenticationError          401 / 403
    |   +-- ValidationError              400 / 422, and bad input caught before any request
    |   +-- NotFoundError                404
    |   +-- RateLimitError               429 (``retry_after`` in seconds, or None)
    |   +-- ServerError                  5xx, and 2xx bodies that are not the promised JSON
    |       +-- ResponseTooLargeError    a body longer than the client's ``max_body_size``
    +-- NetworkError                     connection refused / reset, DNS, TLS, ...
    +-- TimeoutError                     also a builtins.TimeoutError; read timeouts, deadlines,
    |                                    and wait_for_execution giving up
    +-- ExecutionError                   an execution ended ``failed`` or ``cancelled``
        +-- FlowNotFoundError            also a NotFoundError (see below)

Unknown flows: the real backend answers ``POST /api/v1/flows/execute`` for a flow that does not
exist with HTTP 200, the zero UUID as ``execution_id``, ``status: "failed"`` and
``error: "Flow 'x' not found"``. The SDK (and ``LocalSpine``) turn that answer into
``FlowNotFoundError``, which subclasses both :class:`ExecutionError` (the backend reported a failed
execution; ``.execution`` holds it) and :class:`NotFoundError` (what callers naturally catch for a
missing resource). Its ``status_code`` is 404 when the backend said 404 and None for the HTTP-200
form. ``GET /api/v1/flows/{id}`` answering 404 raises a plain :class:`NotFoundError`.

Every message is built by the SDK itself from the method, path and the server's ``detail``;
credentials never appear in it.
"""

from __future__ import annotations

import builtins
from typing import Any, Dict, Optional

__all__ = [
    "AISpineError",
    "APIError",
    "AuthenticationError",
    "ValidationError",
    "NotFoundError",
    "RateLimitError",
    "ServerError",
    "ResponseTooLargeError",
    "NetworkError",
    "TimeoutError",
    "ExecutionError",
    "FlowNotFoundError",
]


class AISpineError(Exception):
    """Base class for every error raised by the SDK.

    Args:
        message: Human readable description (never contains credentials).
        status_code: HTTP status of the response that caused it, if any.
        request_id: The server's request id (``X-Request-ID``), if it sent one.
        body: The decoded response body (dict/list) or its text, if any.
    """

    def __init__(
        self,
        message: str,
        *,
        status_code: Optional[int] = None,
        request_id: Optional[str] = None,
        body: Any = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status_code = status_code
        self.request_id = request_id
        self.body = body

    def __str__(self) -> str:
        parts = [self.message]
        if self.status_code is not None:
            parts.append(f"(HTTP {self.status_code})")
        if self.request_id:
            parts.append(f"[request id {self.request_id}]")
        return " ".join(parts)

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}({self.message!r}, status_code={self.status_code!r})"
        )


class APIError(AISpineError):
    """The server answered with an error status (or an unusable body)."""


class AuthenticationError(APIError):
    """The API key is missing, wrong, or not allowed to do this (401/403)."""


class ValidationError(APIError):
    """The request was rejected as invalid (400/422) or failed client-side validation.

    Client-side validation errors have ``status_code`` None and no request was sent.
    """


class NotFoundError(APIError):
    """The resource does not exist (404)."""


class RateLimitError(APIError):
    """Too many requests (429).

    Args:
        message: Description.
        retry_after: Seconds the server asked us to wait, if it said so.
        **kwargs: ``status_code``, ``request_id``, ``body`` as for :class:`AISpineError`.
    """

    def __init__(
        self, message: str, *, retry_after: Optional[float] = None, **kwargs: Any
    ) -> None:
        super().__init__(message, **kwargs)
        self.retry_after = retry_after


class ServerError(APIError):
    """The server failed (5xx) or sent a body that is not the JSON the API promises."""


class ResponseTooLargeError(ServerError):
    """The answer's body is longer than the client's ``max_body_size``; it was not read.

    Args:
        message: Description (names the route and the limit).
        limit: The limit in bytes.
        **kwargs: ``status_code``, ``request_id``, ``body`` as for :class:`AISpineError`.
    """

    def __init__(self, message: str, *, limit: int, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.limit = limit


class NetworkError(AISpineError):
    """The request did not get an HTTP answer: refused, reset, DNS or TLS failure."""


class TimeoutError(AISpineError, builtins.TimeoutError):
    """A deadline passed: a request's read timeout, the overall retry deadline, or a wait.

    Args:
        message: Description.
        execution_id: The execution being waited for (``wait_for_execution``), if any.
        last_status: The execution's last seen status, if any.
        **kwargs: ``status_code``, ``request_id``, ``body`` as for :class:`AISpineError`.
    """

    def __init__(
        self,
        message: str,
        *,
        execution_id: Optional[str] = None,
        last_status: Optional[str] = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(message, **kwargs)
        self.execution_id = execution_id
        self.last_status = last_status


class ExecutionError(AISpineError):
    """An execution ended ``failed`` or ``cancelled``.

    Args:
        message: Description (includes the backend's ``error`` text when there is one).
        execution: The final execution dict as the backend returned it.
        flow_id: The flow that was executed, if known.
        **kwargs: ``status_code``, ``request_id``, ``body`` as for :class:`AISpineError`.
    """

    def __init__(
        self,
        message: str,
        *,
        execution: Optional[Dict[str, Any]] = None,
        flow_id: Optional[str] = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(message, **kwargs)
        self.execution: Dict[str, Any] = dict(execution or {})
        self.flow_id = flow_id or self.execution.get("flow_id")

    @property
    def execution_id(self) -> Optional[str]:
        """The id of the execution that failed, if known."""
        value = self.execution.get("execution_id")
        return str(value) if value is not None else None

    @property
    def status(self) -> Optional[str]:
        """The execution's final status (``failed`` or ``cancelled``), if known."""
        value = self.execution.get("status")
        return str(value) if value is not None else None


class FlowNotFoundError(ExecutionError, NotFoundError):
    """The flow to execute does not exist.

    Raised for the backend's HTTP-200 "unknown flow" answer (zero UUID, ``status: failed``,
    ``error: "Flow 'x' not found"``) and by ``LocalSpine`` for unknown flow ids. It is both an
    :class:`ExecutionError` (``.execution`` holds the backend's answer) and a
    :class:`NotFoundError`.
    """
