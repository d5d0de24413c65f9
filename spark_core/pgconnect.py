"""Connecting to PostgreSQL: the lazy psycopg import, DSNs shown without their password.

Shared by the PostgreSQL state backend, the approval stores and the PostgreSQL telemetry
backend, so every one of them names a database the same way and fails the same way: one
typed error naming the DSN with its password hidden, the driver's error as ``__cause__``.
"""

from __future__ import annotations

import re
from typing import Any, Callable, Optional
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

__all__ = ["is_dsn", "redact_dsn", "describe_error", "import_psycopg", "connect"]

_KV_PASSWORD = re.compile(r"(password\s*=\s*)('(?:[^'\\]|\\.)*'|\S+)", re.IGNORECASE)
_HIDDEN = "***"


def is_dsn(target: str) -> bool:
    """Return True when ``target`` is a PostgreSQL DSN rather than a file path.

    Args:
        target: A state file path or a ``postgresql://`` / ``postgres://`` URL.

    Returns:
        Whether it is a PostgreSQL URL.
    """
    return target.startswith(("postgresql://", "postgres://"))


def redact_dsn(dsn: str) -> str:
    """Return ``dsn`` with its password replaced by ``***`` (URL or ``key=value`` form).

    Args:
        dsn: A libpq connection string.

    Returns:
        The same connection string, safe to show.
    """
    if is_dsn(dsn):
        parts = urlsplit(dsn)
        netloc = parts.netloc
        if "@" in netloc:
            userinfo, host = netloc.rsplit("@", 1)
            if ":" in userinfo:
                userinfo = userinfo.split(":", 1)[0] + ":" + _HIDDEN
            netloc = f"{userinfo}@{host}"
        query = parts.query
        if query:
            pairs = parse_qsl(query, keep_blank_values=True)
            query = urlencode(
                [(k, _HIDDEN if k.lower() == "password" else v) for k, v in pairs],
                safe="*",
            )
        return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))
    return _KV_PASSWORD.sub(lambda m: m.group(1) + _HIDDEN, dsn)


def _password(dsn: str) -> Optional[str]:
    if is_dsn(dsn):
        parts = urlsplit(dsn)
        for key, value in parse_qsl(parts.query):
            if key.lower() == "password":
                return value
        return parts.password
    match = _KV_PASSWORD.search(dsn)
    return match.group(2).strip("'") if match else None


def import_psycopg(error: Callable[[str], Exception], what: str) -> Any:
    """Import psycopg 3, or raise ``error`` naming the extra to install.

    Args:
        error: Builds the exception to raise from a message.
        what: What needs it (for the message).

    Returns:
        The ``psycopg`` module.
    """
    try:
        import psycopg
    except ImportError:
        raise error(
            f"{what} needs psycopg 3: pip install 'ai-spine-sdk[postgres]'"
        ) from None
    return psycopg


def describe_error(dsn: str, exc: BaseException) -> str:
    """Return the driver's message for ``exc`` with the DSN's password removed.

    Args:
        dsn: The connection string.
        exc: The driver's exception.

    Returns:
        One line of text.
    """
    text = " ".join(str(exc).split())
    secret = _password(dsn)
    if secret:
        text = text.replace(secret, _HIDDEN)
    return text


def connect(
    dsn: str,
    error: Callable[[str], Exception],
    what: str,
    *,
    connect_timeout: float = 10.0,
) -> Any:
    """Open an autocommit psycopg connection to ``dsn``.

    Args:
        dsn: The connection string.
        error: Builds the exception to raise from a message.
        what: What connects (for the message), e.g. ``"PostgreSQL state backend"``.
        connect_timeout: Seconds to wait for the server.

    Returns:
        A ``psycopg.Connection`` in autocommit mode.

    Raises:
        Exception: ``error(...)`` naming the redacted DSN when psycopg is missing or the
            server cannot be reached or refuses the login.
    """
    psycopg = import_psycopg(error, what)
    try:
        return psycopg.connect(
            dsn, autocommit=True, connect_timeout=max(1, int(connect_timeout))
        )
    except psycopg.Error as exc:
        raise error(
            f"{what} {redact_dsn(dsn)}: cannot connect: {describe_error(dsn, exc)}"
        ) from None
