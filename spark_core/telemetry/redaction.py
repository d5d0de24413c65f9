"""Keep credentials out of telemetry attributes, audit records and approval requests.

:func:`redact` copies a mapping, replacing the value of every key that looks like a
credential with ``"[REDACTED]"``, recursing into nested mappings and lists. Names are
compared in snake case (``accessToken`` and ``access-token`` read as ``access_token``):
credential words anywhere (``password``, ``secret``, ``api_key``, ``private_key``,
``access_key``, ``authorization``, ``cookie``, ...), names ending in ``_token``, ``_auth``,
``_pwd``, ``_signature`` and names ending in ``_key`` (``openai_key``, ``ssh_key``) except
lookup keys (``sort_key``, ``cache_key``, ``public_key``, ...; a bare ``key`` is kept too).
Count-like names such as ``tokens``, ``max_tokens`` or ``token_count`` are not secrets.

In text (string values, error messages, log lines) credential-looking parts are replaced
whatever their key: ``Bearer ...``, ``sk-...`` style keys, JWTs, AWS key ids, the password
of a URL (``postgres://user:[REDACTED]@db``) and the value of ``password=...``,
``token: ...``, ``"api_key": "..."`` style pairs. Long strings are truncated.
"""

from __future__ import annotations

import logging
import re
from typing import Any, Dict, Iterable, Mapping, Optional, Tuple

__all__ = [
    "REDACTED",
    "redact",
    "redact_value",
    "is_sensitive_key",
    "scrub_text",
    "RedactingFilter",
]

REDACTED = "[REDACTED]"
_ANYWHERE = (
    "password",
    "passwd",
    "secret",
    "apikey",
    "api_key",
    "private_key",
    "credential",
    "authorization",
    "cookie",
    "x_api_key",
    "access_key",
    "session_key",
    "passphrase",
)
_SUFFIX_RE = re.compile(r"(?:^|_)(?:token|auth|pwd|signature|sig|key_id|bearer)$")
# Words before "_key" that make it a lookup key rather than a credential.
_LOOKUP_KEYS = frozenset(
    "sort cache partition primary foreign public idempotency dedup dedupe routing lookup"
    " group hash row dict map state node object index shard join unique composite message"
    " event record item cluster".split()
)
# Word boundaries of camelCase / PascalCase names: accessToken, APIKey, XApiKey.
_CAMEL_RE = re.compile(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")
_NON_WORD_RE = re.compile(r"[^a-z0-9]+")
_VALUE_RE = re.compile(
    r"(?i)\bbearer\s+[A-Za-z0-9._~+/=-]{8,}"
    r"|\b(?:sk|pk|rk|ghp|gho|xox[abp])[-_][A-Za-z0-9_-]{12,}"
    r"|\beyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{4,}"
    r"|\bAKIA[0-9A-Z]{16}\b"
)
# The password of scheme://user:password@host (bounded: linear time on any text).
_URL_PASSWORD_RE = re.compile(
    r"(?i)(\b[a-z][a-z0-9+.-]{0,30}://[^\s:/?#@]{0,256}:)[^\s/?#@]{1,512}(?=@)"
)
# key=value / key: value / "key": "value" where the key names a credential.
_PAIR_RE = re.compile(
    r"(?i)((?:password|passwd|pwd|passphrase|secret|token|api[_-]?key|access[_-]?key"
    r"|private[_-]?key|credentials?|authorization)[\"']?\s*[:=]\s*[\"']?)"
    r"(?:(?:basic|bearer|digest|token)\s+)?[^\s\"',;&]+"
)

_MAX_DEPTH = 8


def is_sensitive_key(key: Any, extra: Iterable[str] = ()) -> bool:
    """Tell whether an attribute name looks like it holds a credential.

    Args:
        key: The attribute name.
        extra: More lowercase substrings to treat as sensitive.

    Returns:
        True for names such as ``api_key``, ``Authorization``, ``db_password``,
        ``refreshToken``, ``openai_key``; False for ``tokens``, ``max_tokens``,
        ``token_count``, ``user_id``, ``cache_key``.
    """
    if not isinstance(key, str):
        return False
    norm = _NON_WORD_RE.sub("_", _CAMEL_RE.sub("_", key.strip()).lower()).strip("_")
    if any(word in norm for word in _ANYWHERE):
        return True
    if any(word and word.lower() in norm for word in extra):
        return True
    words = norm.split("_")
    if len(words) > 1 and words[-1] == "key" and words[-2] not in _LOOKUP_KEYS:
        return True
    return _SUFFIX_RE.search(norm) is not None


def scrub_text(text: str, max_length: Optional[int] = None) -> str:
    """Replace credential-looking substrings of ``text`` and truncate it.

    Args:
        text: Free text (an error message, an attribute value).
        max_length: Truncate to this many characters (None: no limit).

    Returns:
        The cleaned text.
    """
    cleaned = _VALUE_RE.sub(REDACTED, text)
    cleaned = _URL_PASSWORD_RE.sub(r"\1" + REDACTED, cleaned)
    cleaned = _PAIR_RE.sub(r"\1" + REDACTED, cleaned)
    if max_length is not None and len(cleaned) > max_length:
        cleaned = cleaned[:max_length] + "...[truncated]"
    return cleaned


def redact_value(
    key: Any, value: Any, *, extra: Iterable[str] = (), max_length: Optional[int] = 2048
) -> Any:
    """Return ``value`` made safe to store under ``key`` (JSON-friendly).

    Args:
        key: The attribute name.
        value: The value.
        extra: More sensitive-name substrings.
        max_length: Truncate long strings to this many characters.

    Returns:
        ``"[REDACTED]"`` for sensitive keys, else a cleaned copy of the value.
    """
    if is_sensitive_key(key, extra):
        return REDACTED
    return _clean(value, tuple(extra), max_length, 0)


def _clean(
    value: Any, extra: Tuple[str, ...], max_length: Optional[int], depth: int
) -> Any:
    if value is None or isinstance(value, (bool, int, float)):
        return value
    if isinstance(value, str):
        return scrub_text(value, max_length)
    if depth >= _MAX_DEPTH:
        return "[...]"
    if isinstance(value, Mapping):
        return {
            str(k): (
                REDACTED
                if is_sensitive_key(k, extra)
                else _clean(v, extra, max_length, depth + 1)
            )
            for k, v in value.items()
        }
    if isinstance(value, (list, tuple, set, frozenset)):
        return [_clean(v, extra, max_length, depth + 1) for v in value]
    return scrub_text(repr(value), max_length)


def redact(
    attributes: Optional[Mapping[str, Any]],
    *,
    extra: Iterable[str] = (),
    max_length: Optional[int] = 2048,
) -> Dict[str, Any]:
    """Return a redacted, JSON-friendly copy of ``attributes``.

    Args:
        attributes: Attribute name -> value (None gives ``{}``).
        extra: More sensitive-name substrings (lowercase).
        max_length: Truncate long strings to this many characters.

    Returns:
        A new dict; sensitive values are ``"[REDACTED]"``.
    """
    if not attributes:
        return {}
    result = _clean(dict(attributes), tuple(extra), max_length, 0)
    assert isinstance(result, dict)
    return result


class RedactingFilter(logging.Filter):
    """A logging filter that scrubs credential-looking text from every record it sees.

    Attach it to a handler (``handler.addFilter(RedactingFilter())``) and no ``Bearer``
    token, ``sk-`` key or JWT reaches that handler's output, whoever logged it. Mapping
    arguments (``log.info("%(x)s", {...})``) are redacted by key as well.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        """Rewrite the record's message in place; always keeps the record."""
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001 - a bad format string is the logger's problem
            return True
        if isinstance(record.args, Mapping):
            message = str(record.msg) % redact(record.args)
        record.msg, record.args = scrub_text(message), None
        return True
