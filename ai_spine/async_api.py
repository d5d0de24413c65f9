"""The asynchronous HTTP transport: an ``aiohttp`` session, the retry loop, typed errors.

:class:`AsyncAPIClient` is to :class:`ai_spine.AsyncAISpine` what :class:`~ai_spine.api.APIClient`
is to ``AISpine``, and shares its rules: :class:`~ai_spine.call.Call` decides retries and
deadlines, :mod:`ai_spine.answers` reads answers and builds errors. ``aiohttp`` exceptions never
escape it. ``aiohttp`` is the ``async`` extra, imported when a client is made.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from typing import TYPE_CHECKING, Any, Awaitable, Callable, Dict, Optional
from urllib.parse import urlsplit

from ai_spine import constants
from ai_spine.answers import Attempt, decode_json, short, too_large
from ai_spine.api import (
    check_endpoint,
    enable_debug_logging,
    logger,
    request_headers,
)
from ai_spine.call import Call
from ai_spine.exceptions import AISpineError, ValidationError
from ai_spine.retry import CONNECT_ERROR, READ_ERROR, TIMEOUT_ERROR, Retry
from ai_spine.utils import hide_userinfo, redact_headers

if TYPE_CHECKING:  # pragma: no cover
    import aiohttp

__all__ = ["AsyncAPIClient", "import_aiohttp"]

_READ_CHUNK = 64 * 1024


def import_aiohttp() -> Any:
    """Import ``aiohttp``, naming the extra that provides it when it is missing.

    Returns:
        The ``aiohttp`` module.

    Raises:
        ImportError: ``aiohttp`` is not installed.
    """
    try:
        import aiohttp
    except ImportError as exc:  # pragma: no cover - CI installs the extra
        raise ImportError(
            "AsyncAISpine needs aiohttp: pip install 'ai-spine-sdk[async]'"
        ) from exc
    return aiohttp


class _TooLarge(Exception):
    """The body is longer than the client's ``max_body_size``."""


class AsyncAPIClient:
    """Sends requests to the AI Spine API with ``aiohttp``, retries and typed errors.

    The session is made in the event loop of the first call and belongs to it.

    Args:
        base_url: Scheme and host of the API.
        api_key: Bearer token, or None.
        timeout: Seconds per attempt, from connecting to the answer's last byte.
        retry: The retry policy.
        deadline: Overall seconds for one call including retries and waits, or None.
        debug: Log every request and answer at DEBUG level (redacted) to stderr.
        session: An ``aiohttp.ClientSession`` to use instead of a new one; the caller keeps
            owning it (``close()`` leaves it open).
        max_body_size: The longest answer body read, in bytes.
        sleep: Waits between attempts (a seam for tests).
        clock: Monotonic seconds (a seam for tests).

    Raises:
        ValidationError: A bad ``base_url`` or ``api_key``.
        ImportError: ``aiohttp`` is not installed.
    """

    def __init__(
        self,
        *,
        base_url: str,
        api_key: Optional[str],
        timeout: float,
        retry: Retry,
        deadline: Optional[float] = None,
        debug: bool = False,
        session: Optional["aiohttp.ClientSession"] = None,
        max_body_size: int = constants.DEFAULT_MAX_BODY_SIZE,
        sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._aiohttp = import_aiohttp()
        self._url = check_endpoint(base_url, api_key)
        self.base_url = hide_userinfo(self._url)
        self._where = urlsplit(self.base_url).netloc
        self.timeout = timeout
        self.retry = retry
        self.deadline = deadline
        self.max_body_size = max_body_size
        self._api_key = api_key
        self._owns_session = session is None
        self._session = session
        self._loop: Optional[asyncio.AbstractEventLoop] = None
        self._sleep = sleep
        self._clock = clock
        self._timeouts: Dict[float, Any] = {}
        if debug:
            enable_debug_logging()

    @property
    def session(self) -> Optional["aiohttp.ClientSession"]:
        """The ``aiohttp.ClientSession`` in use (None before the first call)."""
        return self._session

    def _session_here(self) -> "aiohttp.ClientSession":
        loop = asyncio.get_running_loop()
        if self._session is not None and self._owns_session:
            if self._loop is not loop:
                if self._loop is not None and not self._loop.is_closed():
                    raise AISpineError(
                        "this AsyncAISpine is in use by another running event loop; "
                        "make one client per loop"
                    )
                self._session = None  # its loop is gone, and its connections with it
        if self._session is None:
            aiohttp = self._aiohttp
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=constants.DEFAULT_POOL_MAXSIZE)
            )
            self._loop = loop
        return self._session

    async def close(self) -> None:
        """Close the pooled connections (not those of a session the caller passed in)."""
        if self._owns_session and self._session is not None:
            session, self._session = self._session, None
            if self._loop is asyncio.get_running_loop():
                await session.close()

    async def request(
        self,
        method: str,
        path: str,
        *,
        params: Optional[Dict[str, Any]] = None,
        json_body: Optional[Dict[str, Any]] = None,
        idempotency_key: Optional[str] = None,
        deadline: Optional[float] = None,
    ) -> Any:
        """Send one logical request and return its decoded JSON body.

        The same contract as :meth:`ai_spine.api.APIClient.request`. Cancelling the awaiting
        task closes the request's connection and raises ``CancelledError``.

        Args:
            method: HTTP method.
            path: Path below ``base_url`` (starting with ``/``).
            params: Query parameters.
            json_body: JSON body to send.
            idempotency_key: Sent as ``Idempotency-Key``; makes a POST safe to resend.
            deadline: Overall seconds for this call.

        Returns:
            The decoded JSON (None for an empty body).

        Raises:
            AISpineError: A typed subclass for every failure (see ``APIClient.request``).
        """
        method = method.upper()
        call = Call(
            method,
            path,
            self.base_url + path,
            retry=self.retry,
            timeout=self.timeout,
            client_deadline=self.deadline,
            call_deadline=deadline,
            idempotent=bool(idempotency_key),
            clock=self._clock,
        )
        headers = request_headers(self._api_key, idempotency_key)
        while True:
            call.next_attempt()
            attempt = await self._send(method, path, headers, params, json_body, call)
            status = attempt.status
            if status is not None and status < 400:
                return decode_json(
                    method, path, status, attempt.headers, attempt.content
                )
            await self._sleep(
                call.settle(attempt, where=self._where, secret=self._api_key)
            )

    def _timeout(self, seconds: float) -> Any:
        # The whole attempt: connecting, sending, the headers and every body byte.
        cached = self._timeouts.get(seconds)
        if cached is None:
            cached = self._aiohttp.ClientTimeout(total=seconds)
            if (
                len(self._timeouts) < 8
            ):  # the usual case: one value, the client's timeout
                self._timeouts[seconds] = cached
        return cached

    async def _send(
        self,
        method: str,
        path: str,
        headers: Dict[str, str],
        params: Optional[Dict[str, Any]],
        json_body: Optional[Dict[str, Any]],
        call: Call,
    ) -> Attempt:
        aiohttp = self._aiohttp
        debug = logger.isEnabledFor(logging.DEBUG)
        if debug:
            logger.debug(
                "-> %s %s params=%s headers=%s body=%s",
                method,
                self.base_url + path,
                params,
                redact_headers(headers),
                (
                    json.dumps(json_body, default=str)[:1000]
                    if json_body is not None
                    else None
                ),
            )
        session = self._session_here()
        try:
            async with session.request(
                method,
                self._url + path,
                params=params,
                json=json_body,
                headers=headers,
                timeout=self._timeout(call.attempt_timeout),
            ) as response:
                content = await _read_body(response, self.max_body_size)
                status = response.status
                answer_headers = response.headers
        except _TooLarge:
            raise too_large(
                method, path, response.status, response.headers, self.max_body_size
            ) from None
        except asyncio.TimeoutError as exc:  # also aiohttp's own timeout errors
            if call.cut_by_deadline():
                raise call.deadline_error() from None
            connect_timeout = getattr(aiohttp, "ConnectionTimeoutError", ())
            if isinstance(exc, connect_timeout):
                # The server never saw the request: even a POST may be sent again.
                return Attempt(kind=CONNECT_ERROR, name=type(exc).__name__)
            return Attempt(kind=TIMEOUT_ERROR, name="attempt timeout")
        except aiohttp.InvalidURL as exc:
            raise ValidationError(
                f"{method} {path}: request refused by aiohttp "
                f"({type(exc).__name__}: {short(exc)})"
            ) from None
        except (aiohttp.ClientError, OSError) as exc:
            kind = (
                CONNECT_ERROR
                if isinstance(exc, aiohttp.ClientConnectorError)
                else READ_ERROR
            )
            if debug:
                logger.debug(
                    "<- %s %s: %s (%s)", method, path, type(exc).__name__, kind
                )
            return Attempt(kind=kind, name=type(exc).__name__, detail=short(exc))
        if debug:
            logger.debug(
                "<- %s %s: HTTP %d headers=%s body=%s",
                method,
                self.base_url + path,
                status,
                redact_headers(answer_headers),
                content[:1000].decode("utf-8", errors="replace"),
            )
        return Attempt(status, answer_headers, content)


async def _read_body(response: "aiohttp.ClientResponse", limit: int) -> bytes:
    """Read a body whole, refusing one longer than ``limit`` bytes (counted unpacked).

    Raises:
        _TooLarge: Past ``limit`` (a ``Content-Length`` above it is refused unread).
    """
    declared = response.content_length
    if declared is not None and declared > limit:
        raise _TooLarge()
    if declared is not None and "Content-Encoding" not in response.headers:
        return await response.read()  # its length is known and within the limit
    chunks = []
    size = 0
    async for chunk in response.content.iter_chunked(_READ_CHUNK):
        size += len(chunk)
        if size > limit:  # a small gzip body may unpack to gigabytes
            raise _TooLarge()
        chunks.append(chunk)
    return b"".join(chunks)
