"""Keep credentials out of telemetry attributes, audit records and approval requests.

:func:`redact` copies a mapping, replacing the value of every key that looks like a
credential with ``"[REDACTED]"``, recursing into nested mappings and lists. Names are
compared in snake case (``accessToken`` and ``access-token`` read as ``access_token``):
credential words anywhere (``password``, ``secret``, ``api_key``, ``private_key``,
``access_key``, ``authorization``, ``cookie``, ...), names ending in ``_token``, ``_auth``,
``_pwd``, ``_signature`` and names ending in ``_key`` (``openai_key``, ``ssh_key``) except
lookup keys (``sort_key``, ``cache_key``, ``public_key``, ...; a bare ``key`` is kept too).
Count-like names such as ``tokens``, ``max_tokens``, ``max_token`` or ``token_count`` are not
secrets.

In text (string values, error messages, log lines) credential-looking parts are replaced
whatever their key: ``Bearer ...``, ``sk-...`` style keys, JWTs, AWS key ids, the password
of a URL (``postgres://user:[REDACTED]@db``) and the value of ``password=...``,
``token: ...``, ``"api_key": "..."`` style pairs whose name :func:`is_sensitive_key` calls
sensitive (a quoted value whole; not prose such as ``invalid token: ...``). Long strings
are truncated.
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
# Words before "_token" that make it a count, like max_tokens: max_token=5 is no secret.
_COUNT_WORDS = frozenset("max min num total".split())
# Word boundaries of camelCase / PascalCase names: accessToken, APIKey, XApiKey.
_CAMEL_RE = re.compile(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")
_NON_WORD_RE = re.compile(r"[^a-z0-9]+")
_VALUE_RE = re.compile(
    r"(?i)\bbearer\s+[A-Za-z0-9._~+/=-]{8,}"
    r"|\b(?:sk|pk|rk|ghp|gho|xox[abp])[-_][A-Za-z0-9_-]{12,}"
    r"|(?<![\w-])eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{4,}"
    r"|\bAKIA[0-9A-Z]{16}\b"
)
# The password of scheme://user:password@host, up to the last "@" before the host (a
# password may contain "@"). Bounded, and without nested quantifiers: linear on any text.
_URL_PASSWORD_RE = re.compile(
    r"(?i)(\b[a-z][a-z0-9+.-]{0,30}://[^\s:/?#@]{0,256}:)[^\s/?#]{1,512}(?=@)"
)
# A name followed by ":" or "=" (``password=``, ``"api_key": ``, ``token: ``); the name is
# judged by is_sensitive_key, as in mappings.
_NAME_RE = re.compile(r"(?<![\w.-])(\w[\w.-]{0,63})([\"']?)\s{0,16}([:=])\s{0,16}")
# The value after a credential's name: a quoted string (bounded, backslash escapes kept
# inside; an unclosed quote runs to the end of the line) or one word, after an optional
# auth scheme (``Bearer ...``).
_SECRET_RE = re.compile(
    r"(?i)(\")(?:[^\"\\\r\n]|\\.){1,512}(\")?|(')(?:[^'\\\r\n]|\\.){1,512}(')?"
    r"|(?:(?:basic|bearer|digest|token)\s{1,16})?[^\s\"',;&]+"
)
# "invalid token: ..." is prose about a credential, not a credential.
_PROSE_RE = re.compile(
    r"(?i)\b(?:invalid|missing|expired|bad|wrong|malformed|unknown|incorrect|no)\s{1,4}$"
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
    if len(words) > 1 and words[-1] == "token" and words[-2] in _COUNT_WORDS:
        return False
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
    cleaned = _scrub_pairs(cleaned)
    if max_length is not None and len(cleaned) > max_length:
        cleaned = cleaned[:max_length] + "...[truncated]"
    return cleaned


def _scrub_pairs(text: str) -> str:
    """Replace the value of every ``name=value`` / ``name: value`` whose name is sensitive."""
    parts, done, pos = [], 0, 0
    while True:
        name = _NAME_RE.search(text, pos)
        if name is None:
            break
        pos = name.end()
        if not is_sensitive_key(name.group(1)) or (
            name.group(3) == ":"
            and not name.group(2)
            and _PROSE_RE.search(text, max(0, name.start() - 16), name.start())
        ):
            continue
        value = _SECRET_RE.match(text, pos)
        if value is None:
            continue
        quote = value.group(1) or value.group(3) or ""
        closed = value.group(2) or value.group(4) or ""
        parts += [text[done:pos], quote, REDACTED, closed]
        done = pos = value.end()
    return "".join(parts) + text[done:] if parts else text


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
