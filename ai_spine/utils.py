"""Small helpers: input validation, datetime parsing, secret redaction."""

from __future__ import annotations

import datetime
import json
import logging
import math
import re
import threading
from typing import Any, Dict, Iterable, List, Mapping, Optional, Set, Tuple

from ai_spine import constants
from ai_spine.exceptions import ValidationError

__all__ = [
    "validate_id",
    "validate_json_object",
    "validate_positive_number",
    "validate_batch_args",
    "parse_batch_item",
    "parse_datetime",
    "redact",
    "redact_json",
    "hide_userinfo",
    "RedactingFilter",
    "REDACTED",
]

REDACTED = "***"

# Ids travel in URL paths: letters, digits and a few separators, nothing that could change
# the path (slashes, dots-only segments, spaces, query characters).
_ID_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:@-]*")  # used with fullmatch
# Anything that looks like a credential in free text: bearer tokens and key=value pairs.
_SECRET_PATTERNS = (
    re.compile(
        r"(?i)((?:api[_-]?key|authorization|token)[\"']?\s*[:=]\s*[\"']?)"
        r"(?:bearer\s+)?[^\s'\",;}]+"
    ),
    re.compile(r"(?i)(bearer\s+)[^\s'\",;]+"),
)


def validate_id(value: Any, name: str) -> str:
    """Check an id that will be placed in a URL path.

    Args:
        value: The id given by the caller.
        name: The parameter name, used in the error message.

    Returns:
        The id, unchanged.

    Raises:
        ValidationError: When the id is not a non-empty string of letters, digits and
            ``_ . : @ -`` (starting with a letter or digit), or is too long.
    """
    if not isinstance(value, str):
        raise ValidationError(f"{name} must be a string, got {type(value).__name__}")
    if not value:
        raise ValidationError(f"{name} must not be empty")
    if len(value) > constants.MAX_ID_LENGTH:
        raise ValidationError(
            f"{name} is too long ({len(value)} > {constants.MAX_ID_LENGTH})"
        )
    if not _ID_PATTERN.fullmatch(value):  # match + $ let a trailing newline through
        raise ValidationError(
            f"{name} {value!r} is malformed: use letters, digits and _ . : @ - only"
        )
    return value


def validate_json_object(
    value: Any, name: str, *, allow_empty: bool = True
) -> Dict[str, Any]:
    """Check that a value is a dict that can be sent as JSON.

    Args:
        value: The value given by the caller.
        name: The parameter name, used in the error message.
        allow_empty: Whether ``{}`` is acceptable.

    Returns:
        The dict, unchanged.

    Raises:
        ValidationError: When it is not a dict with string keys, is empty when it must not be,
            or contains values JSON cannot represent (objects, NaN, infinity, cycles).
    """
    if not isinstance(value, dict):
        raise ValidationError(f"{name} must be a dict, got {type(value).__name__}")
    if not allow_empty and not value:
        raise ValidationError(f"{name} must not be empty")
    try:
        json.dumps(value, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise ValidationError(f"{name} is not JSON-serialisable: {exc}") from None
    if not all(isinstance(key, str) for key in value):
        raise ValidationError(f"{name} keys must all be strings")
    return value


def validate_positive_number(
    value: Any, name: str, *, allow_zero: bool = False, integer: bool = False
) -> float:
    """Check a timeout/interval/limit style argument.

    Args:
        value: The value given by the caller.
        name: The parameter name, used in the error message.
        allow_zero: Whether 0 is acceptable.
        integer: Whether only ints are acceptable.

    Returns:
        The value as a float.

    Raises:
        ValidationError: When it is not a finite number in range (bools are refused).
    """
    kinds = (int,) if integer else (int, float)
    if isinstance(value, bool) or not isinstance(value, kinds):
        expected = "an int" if integer else "a number"
        raise ValidationError(f"{name} must be {expected}, got {value!r}")
    try:
        number = float(value)
    except (
        OverflowError
    ):  # an int beyond float range (its digits would flood the message)
        raise ValidationError(f"{name} must be finite, got an int too large") from None
    if math.isnan(number) or math.isinf(number):
        raise ValidationError(f"{name} must be finite, got {value!r}")
    if number < 0 or (number == 0 and not allow_zero):
        bound = ">= 0" if allow_zero else "> 0"
        raise ValidationError(f"{name} must be {bound}, got {value!r}")
    return number


def validate_batch_args(
    items: Any, concurrency: Any, wait_timeout: Any, interval: Any
) -> List[Any]:
    """Check ``execute_batch``'s arguments before any item starts.

    Shared by :class:`ai_spine.AISpine` and :class:`ai_spine.LocalSpine`, so both refuse the
    same input with the same message.

    Args:
        items: The caller's items: any iterable except a str, bytes or a single dict.
        concurrency: Items in flight at once (an int >= 1).
        wait_timeout: Per-item wait timeout in seconds (> 0).
        interval: Per-item polling interval in seconds (> 0).

    Returns:
        The items as a list (a generator is consumed here, once).

    Raises:
        ValidationError: ``items`` is not a list-like iterable or a number is out of range.
    """
    validate_positive_number(concurrency, "concurrency", integer=True)
    validate_positive_number(wait_timeout, "wait_timeout")
    validate_positive_number(interval, "interval")
    if isinstance(items, (str, bytes, dict)):
        raise ValidationError("items must be a list of items, not a single str/dict")
    try:
        return list(items)
    except TypeError:
        raise ValidationError(
            f"items must be iterable, got {type(items).__name__}"
        ) from None


def parse_batch_item(item: Any) -> Tuple[str, Any, Optional[Any]]:
    """Split one ``execute_batch`` item into ``(flow_id, input_data, metadata)``.

    ``input_data`` and ``metadata`` are returned as given; ``execute_flow`` checks them.

    Args:
        item: A ``{"flow_id", "input_data", "metadata"?}`` dict or a
            ``(flow_id, input_data)`` pair.

    Returns:
        The flow id (a str), the input and the metadata (None when absent).

    Raises:
        ValidationError: The item has another shape, lacks a key, or its flow id is not a str.
    """
    if isinstance(item, dict):
        if "flow_id" not in item or "input_data" not in item:
            raise ValidationError("batch item needs 'flow_id' and 'input_data'")
        flow_id, input_data, metadata = (
            item["flow_id"],
            item["input_data"],
            item.get("metadata"),
        )
    elif isinstance(item, (tuple, list)) and len(item) == 2:
        flow_id, input_data, metadata = item[0], item[1], None
    else:
        raise ValidationError(
            "batch item must be a dict or a (flow_id, input_data) pair, "
            f"got {type(item).__name__}"
        )
    if not isinstance(flow_id, str):
        raise ValidationError(
            f"batch item flow_id must be a string, got {type(flow_id).__name__}"
        )
    return flow_id, input_data, metadata


def parse_datetime(value: Any) -> Optional[datetime.datetime]:
    """Parse an ISO 8601 timestamp from the backend; naive timestamps are read as UTC.

    Args:
        value: A string, a datetime, or None.

    Returns:
        A timezone-aware datetime, or None when ``value`` is None or empty.

    Raises:
        ValidationError: When the value is not a readable timestamp.
    """
    if value is None or value == "":
        return None
    if isinstance(value, datetime.datetime):
        parsed = value
    elif isinstance(value, str):
        from dateutil import (
            parser as date_parser,
        )  # lazy: keeps `import ai_spine` cheap

        try:
            parsed = date_parser.isoparse(value)
        except (ValueError, OverflowError) as exc:
            raise ValidationError(f"unreadable timestamp {value!r}: {exc}") from None
    else:
        raise ValidationError(f"timestamp must be a string, got {type(value).__name__}")
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=datetime.timezone.utc)
    return parsed


_secrets_lock = threading.Lock()
_known_secrets: Set[str] = set()


def register_secret(secret: Optional[str]) -> None:
    """Remember a credential so :func:`redact` removes it wherever it appears.

    Args:
        secret: The credential; None or very short values are ignored.
    """
    if secret and len(secret) >= 4:
        with _secrets_lock:
            _known_secrets.add(secret)


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """Remove credentials from text.

    Args:
        text: Any text that may end up in a log line or an error message.
        secrets: Extra values to remove, besides the registered ones.

    Returns:
        The text with bearer tokens, ``api_key=...`` pairs and known secrets replaced by
        ``***``.
    """
    with _secrets_lock:
        known = set(_known_secrets)
    for secret in known.union(s for s in secrets if s):
        if secret in text:
            text = text.replace(secret, REDACTED)
    for pattern in _SECRET_PATTERNS:
        text = pattern.sub(lambda match: match.group(1) + REDACTED, text)
    return text


def redact_json(value: Any, secrets: Iterable[str] = ()) -> Any:
    """Apply :func:`redact` to every string in decoded JSON (an error body may echo a key).

    Args:
        value: A decoded JSON value: dict, list, str, number, bool or None.
        secrets: Extra values to remove, besides the registered ones.

    Returns:
        A copy with credentials replaced by ``***`` in every string, keys included.
    """
    if isinstance(value, str):
        return redact(value, secrets)
    if isinstance(value, dict):
        return {
            redact_json(k, secrets): redact_json(v, secrets) for k, v in value.items()
        }
    if isinstance(value, list):
        return [redact_json(item, secrets) for item in value]
    return value


def hide_userinfo(url: str) -> str:
    """Replace the ``user:password@`` part of a URL with ``***@``, for reprs and messages.

    Everything from ``//`` (or the start, without one) to the last ``@`` is hidden: a password
    may hold ``#``, ``?``, ``/`` or ``@``, where a URL parser would end the authority early,
    so this also works on the malformed URLs validation refuses. An ``@`` later in the URL
    hides more than the credentials, never less.

    Args:
        url: Any URL text.

    Returns:
        The URL without its credentials (unchanged when it has no ``@``).
    """
    scheme, slashes, rest = url.partition("//")
    if not slashes:
        scheme, rest = "", url
    userinfo, at, host = rest.rpartition("@")
    return f"{scheme}{slashes}***@{host}" if at else url


def redact_headers(headers: Mapping[str, Any]) -> Dict[str, Any]:
    """Copy headers with credentials hidden, for debug logging.

    Args:
        headers: Request or response headers.

    Returns:
        A new dict where ``Authorization``, cookies and API key headers read ``***``.
    """
    hidden = {
        "authorization",
        "proxy-authorization",
        "cookie",
        "set-cookie",
        "x-api-key",
    }
    return {k: (REDACTED if k.lower() in hidden else v) for k, v in headers.items()}


class RedactingFilter(logging.Filter):
    """Logging filter that scrubs credentials from every record it sees.

    Attached to the ``ai_spine`` logger (and to the handler ``debug=True`` installs), so an API
    key cannot reach a log line whatever code logs it.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        """Redact the record's message in place.

        Args:
            record: The log record.

        Returns:
            Always True: records are cleaned, never dropped.
        """
        message = record.getMessage()
        cleaned = redact(message)
        if cleaned != message or record.args:
            record.msg = cleaned
            record.args = None
        return True
