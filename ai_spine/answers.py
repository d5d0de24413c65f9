"""Reading an HTTP answer: its JSON, or the typed error it stands for.

Shared by both transports (:mod:`ai_spine.api` over ``requests``,
:mod:`ai_spine.async_api` over ``aiohttp``), which hand over what they received (status,
headers, body bytes) or how the attempt failed (:data:`~ai_spine.retry.CONNECT_ERROR`, ...).
Nothing here does I/O.
"""

from __future__ import annotations

import json
from typing import Any, Dict, Mapping, Optional, Type

from ai_spine.exceptions import (
    AISpineError,
    APIError,
    AuthenticationError,
    NetworkError,
    NotFoundError,
    RateLimitError,
    ResponseTooLargeError,
    ServerError,
    TimeoutError,
    ValidationError,
)
from ai_spine.retry import CONNECT_ERROR, TIMEOUT_ERROR, parse_retry_after
from ai_spine.utils import redact, redact_json

__all__ = [
    "Attempt",
    "BODY_SNIPPET",
    "decode_json",
    "error_from_answer",
    "transport_error",
    "too_large",
    "request_id",
    "short",
]

BODY_SNIPPET = 200
_REQUEST_ID_HEADERS = (
    "x-request-id",
    "request-id",
    "x-correlation-id",
    "x-amzn-requestid",
)


class Attempt:
    """The outcome of one HTTP attempt: an answer, or how the transport failed.

    Args:
        status: The answer's status, or None when there was no answer.
        headers: The answer's headers (case-insensitive).
        content: The answer's whole body.
        kind: With no answer: ``CONNECT_ERROR``, ``READ_ERROR`` or ``TIMEOUT_ERROR``.
        name: With no answer: what failed (the transport exception's class name).
        detail: With no answer: the transport's own words, redacted.
    """

    __slots__ = ("status", "headers", "content", "kind", "name", "detail")

    def __init__(
        self,
        status: Optional[int] = None,
        headers: Optional[Mapping[str, str]] = None,
        content: bytes = b"",
        kind: Optional[str] = None,
        name: str = "",
        detail: str = "",
    ) -> None:
        self.status = status
        self.headers: Mapping[str, str] = headers if headers is not None else {}
        self.content = content
        self.kind = kind
        self.name = name
        self.detail = detail


def status_error_class(status: int) -> Type[APIError]:
    """The exception class for an HTTP error status.

    Args:
        status: The HTTP status (>= 400).

    Returns:
        The :mod:`ai_spine.exceptions` class callers catch for it.
    """
    if status in (401, 403):
        return AuthenticationError
    if status in (400, 422):
        return ValidationError
    if status == 404:
        return NotFoundError
    if status == 429:
        return RateLimitError
    if status >= 500:
        return ServerError
    return APIError


def _format_detail(detail: Any) -> str:
    """Turn a FastAPI ``detail`` (text, or a list of {loc, msg, type}) into one line."""
    if isinstance(detail, str):
        return detail
    if isinstance(detail, list):
        parts = []
        for item in detail:
            if isinstance(item, dict):
                loc = item.get("loc")
                where = (
                    ".".join(str(p) for p in loc)
                    if isinstance(loc, (list, tuple))
                    else ""
                )
                msg = str(item.get("msg", item))
                parts.append(f"{where}: {msg}" if where else msg)
            else:
                parts.append(str(item))
        return "; ".join(parts)
    return json.dumps(detail, default=str)


def _server_message(body: Any, text: str, content_type: str) -> str:
    if isinstance(body, dict):
        for key in ("detail", "message", "error"):
            if body.get(key):
                return _format_detail(body[key])
    if body is not None:
        return json.dumps(body, default=str)[:BODY_SNIPPET]
    snippet = " ".join(text.split())[:BODY_SNIPPET]
    kind = content_type.split(";")[0].strip() or "unknown content type"
    return f"non-JSON body ({kind}): {snippet!r}" if snippet else "empty body"


def request_id(headers: Mapping[str, str]) -> Optional[str]:
    """The server's request id, from the first request-id header it sent.

    Args:
        headers: The answer's headers (a case-insensitive mapping).

    Returns:
        The id, or None.
    """
    for name in _REQUEST_ID_HEADERS:
        value = headers.get(name)
        if value:
            return value
    return None


def _text(content: bytes) -> str:
    return content.decode("utf-8", errors="replace")


def decode_json(
    method: str, path: str, status: int, headers: Mapping[str, str], content: bytes
) -> Any:
    """Decode a successful answer's body.

    Args:
        method: The request's method (for the message).
        path: The request's full path, e.g. ``/api/v1/flows`` (for the message).
        status: The answer's status.
        headers: The answer's headers.
        content: The whole body.

    Returns:
        The decoded JSON, or None for an empty body.

    Raises:
        ServerError: The body is not JSON.
    """
    if not content.strip():
        return None
    try:
        return json.loads(content)
    except ValueError:
        text = _text(content)
        message = _server_message(None, text, headers.get("Content-Type", ""))
        raise ServerError(
            redact(f"{method} {path}: expected JSON, got {message}"),
            status_code=status,
            request_id=request_id(headers),
            body=redact(text[:BODY_SNIPPET]),
        ) from None


def error_from_answer(
    method: str,
    path: str,
    status: int,
    headers: Mapping[str, str],
    content: bytes,
    *,
    secret: Optional[str],
    retry_after: Optional[float],
) -> AISpineError:
    """The typed error for an HTTP error answer, carrying the server's own words.

    Args:
        method: The request's method.
        path: The request's full path.
        status: The answer's status (>= 400).
        headers: The answer's headers (``Retry-After``, request id).
        content: The whole body.
        secret: The API key, redacted wherever the server echoed it.
        retry_after: The answer's parsed ``Retry-After`` header, if any.

    Returns:
        An instance of :func:`status_error_class`'s class; a :class:`RateLimitError` has
        ``retry_after`` from the header, else from the body.
    """
    try:
        body: Any = json.loads(content) if content.strip() else None
    except ValueError:
        body = None
    text = _text(content) if body is None else ""
    message = _server_message(body, text, headers.get("Content-Type", ""))
    message = redact(f"{method} {path} failed: {message}", [secret or ""])
    kwargs: Dict[str, Any] = {
        "status_code": status,
        "request_id": request_id(headers),
        # A server may echo the request (and its key) in an error body.
        "body": redact_json(body if body is not None else text[:BODY_SNIPPET] or None),
    }
    cls = status_error_class(status)
    if cls is RateLimitError:
        if retry_after is None and isinstance(body, dict):
            retry_after = _body_retry_after(body)
        return RateLimitError(message, retry_after=retry_after, **kwargs)
    return cls(message, **kwargs)


def _body_retry_after(body: Dict[str, Any]) -> Optional[float]:
    for key in ("retry_after", "retryAfter"):
        value = body.get(key)
        if (
            isinstance(value, (int, float))
            and not isinstance(value, bool)
            and value >= 0
        ):
            return float(value)
        if isinstance(value, str):
            return parse_retry_after(value)
    return None


def transport_error(
    method: str,
    path: str,
    kind: str,
    name: str,
    detail: str,
    timeout: float,
    where: str,
) -> AISpineError:
    """The typed error for an attempt that got no HTTP answer.

    Args:
        method: The request's method.
        path: The request's full path.
        kind: :data:`~ai_spine.retry.CONNECT_ERROR`, ``READ_ERROR`` or ``TIMEOUT_ERROR``.
        name: What failed, e.g. the transport exception's class name.
        detail: The transport's own words (already redacted).
        timeout: The attempt's timeout in seconds.
        where: ``host:port`` of the API.

    Returns:
        A :class:`TimeoutError` or :class:`NetworkError`.
    """
    if kind == TIMEOUT_ERROR:
        return TimeoutError(
            f"{method} {path}: no answer within {timeout:.3g}s ({name})"
        )
    if kind == CONNECT_ERROR:
        return NetworkError(f"{method} {path}: could not connect to {where} ({name})")
    return NetworkError(f"{method} {path}: connection failed ({name}: {detail})")


def too_large(
    method: str, path: str, status: int, headers: Mapping[str, str], limit: int
) -> ResponseTooLargeError:
    """The error for an answer whose body is longer than the client reads.

    Args:
        method: The request's method.
        path: The request's full path.
        status: The answer's status.
        headers: The answer's headers.
        limit: The client's ``max_body_size`` in bytes.

    Returns:
        The error to raise (never retried: the same answer would come again).
    """
    return ResponseTooLargeError(
        f"{method} {path}: answer body larger than max_body_size ({limit} bytes)",
        status_code=status,
        request_id=request_id(headers),
        limit=limit,
    )


def short(exc: Optional[BaseException]) -> str:
    """A transport exception's text, cut short and redacted.

    Args:
        exc: The exception, or None.

    Returns:
        At most :data:`BODY_SNIPPET` characters, credentials removed.
    """
    text = str(exc) if exc is not None else ""
    return redact(text[:BODY_SNIPPET])
