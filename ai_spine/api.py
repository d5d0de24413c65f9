"""HTTP transport: one pooled session, the retry loop, error mapping and redacted logging.

:class:`APIClient` is what :class:`ai_spine.AISpine` calls. It sends one logical request,
retrying as the :class:`~ai_spine.retry.Retry` policy allows, and returns the decoded JSON or
raises a typed :mod:`ai_spine.exceptions` error. ``requests`` exceptions never escape it, and
neither does ``json.JSONDecodeError``.
"""

from __future__ import annotations

import heapq
import json
import logging
import os
import re
import socket
import sys
import threading
import time
from typing import Any, Dict, List, Optional, cast
from urllib.parse import urlsplit

import requests
from requests.adapters import HTTPAdapter
from urllib3 import poolmanager
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import LocationValueError

from ai_spine import constants
from ai_spine.__version__ import __version__
from ai_spine.answers import Attempt, decode_json, short, too_large
from ai_spine.call import Call
from ai_spine.exceptions import ValidationError
from ai_spine.retry import CONNECT_ERROR, READ_ERROR, TIMEOUT_ERROR, Retry
from ai_spine.utils import (
    RedactingFilter,
    hide_userinfo,
    redact_headers,
    register_secret,
)

__all__ = ["APIClient", "USER_AGENT", "logger", "check_endpoint", "request_headers"]

USER_AGENT = f"ai-spine-sdk-python/{__version__}"

logger = logging.getLogger("ai_spine")
_redactor = RedactingFilter()
logger.addFilter(_redactor)

# Indirection so tests can replace the wait between attempts without patching `time`.
_sleep = time.sleep
_monotonic = time.monotonic

_READ_CHUNK = 64 * 1024
_HEADER_TOKEN = re.compile(r"[\x21-\x7e]+")  # what a bearer token may hold
# requests/urllib3 refusing to build the request: the caller's input, never worth a retry.
_LOCAL_ERRORS = (
    requests.exceptions.InvalidURL,
    requests.exceptions.InvalidHeader,
    requests.exceptions.MissingSchema,
    requests.exceptions.InvalidSchema,
    requests.exceptions.URLRequired,
    requests.exceptions.InvalidJSONError,
    LocationValueError,  # a host urllib3 cannot encode ("a..b"), raised bare by urllib3
)


def _is_http_url(value: Any) -> bool:
    """Whether ``value`` is an http(s) URL with a host, a valid port and no whitespace."""
    if not isinstance(value, str) or any(c.isspace() for c in value):
        return False
    # Refused: "http://[bad", "http://host:99999" (ValueError), "http://%zz" (requests).
    try:
        parts = urlsplit(value)
        parts.port  # raises ValueError when out of range
        requests.PreparedRequest().prepare_url(value, None)
    except (ValueError, requests.RequestException):
        return False
    return parts.scheme in ("http", "https") and bool(parts.hostname)


def _classify(exc: requests.RequestException) -> str:
    """Say whether a transport failure happened before the server could see the request."""
    if isinstance(exc, requests.exceptions.ConnectTimeout):
        return CONNECT_ERROR
    if isinstance(exc, requests.exceptions.Timeout):
        return TIMEOUT_ERROR
    if isinstance(exc, requests.exceptions.ConnectionError) and not isinstance(
        exc, requests.exceptions.SSLError
    ):
        reason = getattr(exc.args[0], "reason", None) if exc.args else None
        from urllib3.exceptions import ConnectTimeoutError, NewConnectionError

        if isinstance(reason, (NewConnectionError, ConnectTimeoutError)):
            return CONNECT_ERROR
    return READ_ERROR


class _OutOfTime(Exception):
    """The attempt's time ran out while its body was being read."""


class _TooLarge(Exception):
    """The body is longer than the client's ``max_body_size``."""


class _Watch:
    """One attempt's entry in the watchdog's heap: when to cut, and the socket to cut.

    Every field is guarded by the watchdog's lock.
    """

    __slots__ = ("ends_at", "sock", "fired", "dead")

    def __init__(self, ends_at: float) -> None:
        self.ends_at = ends_at  # on time.monotonic's clock
        self.sock: Optional[socket.socket] = None
        self.fired = False
        self.dead = False  # disarmed, or popped off the heap

    def __lt__(self, other: "_Watch") -> bool:
        return self.ends_at < other.ends_at


class _Watchdog:
    """Shuts an attempt's socket down when the attempt's time is up.

    An attempt ends at its ``timeout`` or at its call's deadline, whichever comes first. One
    daemon thread, started at the first attempt, serves every attempt: arming pushes an
    entry on a heap (no thread per attempt), disarming marks it dead. The connection classes
    below hand it their socket when they wait for the answer, through the thread-local
    ``_current``; the read blocked on that socket then ends at once. A connection going back
    to the pool is let go first, so a cut can never reach it under another thread.
    """

    def __init__(self) -> None:
        self._cond = threading.Condition(threading.Lock())
        self._heap: List[_Watch] = []
        self._dead = 0  # dead entries still in the heap
        self._thread: Optional[threading.Thread] = None

    def arm(self, seconds: float) -> _Watch:
        """Watch an attempt that must end within ``seconds``.

        Args:
            seconds: Time left for the attempt.

        Returns:
            The attempt's entry, for :meth:`watch`, :meth:`release` and :meth:`disarm`.
        """
        # time.monotonic, not _monotonic: the thread waits on the real clock.
        entry = _Watch(time.monotonic() + seconds)
        with self._cond:
            heapq.heappush(self._heap, entry)
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="ai-spine-deadline", daemon=True
                )
                self._thread.start()
            elif self._heap[0] is entry:  # sooner than what the thread waits for
                self._cond.notify()
        return entry

    def watch(self, entry: _Watch, sock: Any) -> None:
        """Cut this socket at the entry's end (at once if it has passed already).

        Args:
            entry: The attempt's entry.
            sock: The attempt's connected socket.
        """
        with self._cond:
            # Anything else (urllib3's TLS-in-TLS wrapper) is left to the per-read timeout.
            entry.sock = sock if isinstance(sock, socket.socket) else None
            if entry.fired:
                _cut(entry.sock)

    def release(self, entry: _Watch, connection: HTTPConnection) -> None:
        """Let go of a connection going back to the pool; close it if the watchdog cut it.

        Args:
            entry: The attempt's entry.
            connection: The connection being returned.
        """
        with self._cond:
            if entry.sock is None or entry.sock is not connection.sock:
                return
            entry.sock = None  # from now on, another thread may use it
            cut = entry.fired
        if cut:
            connection.close()  # shut down: the pool must not hand it out again

    def disarm(self, entry: _Watch) -> bool:
        """Stop watching an attempt.

        Args:
            entry: The attempt's entry.

        Returns:
            Whether the attempt's time ran out first (the answer, if any, is then unusable).
        """
        with self._cond:
            entry.sock = None
            if not entry.dead:
                entry.dead = True
                self._dead += 1
                if self._dead > 64 and 2 * self._dead > len(self._heap):
                    # Calls much shorter than their deadlines leave mostly dead entries.
                    self._heap[:] = [e for e in self._heap if not e.dead]
                    heapq.heapify(self._heap)
                    self._dead = 0
            return entry.fired

    def _fire(self, entry: _Watch) -> None:
        # Caller holds the lock.
        entry.fired = True
        _cut(entry.sock)

    def _run(self) -> None:
        heap = self._heap
        with self._cond:
            while True:
                now = time.monotonic()
                while heap and (heap[0].dead or heap[0].ends_at <= now):
                    entry = heapq.heappop(heap)
                    if entry.dead:
                        self._dead -= 1
                    else:
                        # Out of the heap: disarm has nothing left to count.
                        entry.dead = True
                        self._fire(entry)
                wait = (
                    min(heap[0].ends_at - now, threading.TIMEOUT_MAX) if heap else None
                )
                self._cond.wait(wait)


def _cut(sock: Optional[socket.socket]) -> None:
    if sock is not None:
        try:
            # socket.socket's shutdown, not SSLSocket's, which would drop the TLS state
            # under the reading thread's feet.
            socket.socket.shutdown(sock, socket.SHUT_RDWR)
        except OSError:  # closed already
            pass


_WATCHDOG = _Watchdog()


def _new_watchdog() -> None:
    global _WATCHDOG
    _WATCHDOG = _Watchdog()


if hasattr(os, "register_at_fork"):  # a forked child has the heap but not the thread
    os.register_at_fork(after_in_child=_new_watchdog)

_current = threading.local()  # .watch: the _Watch of this thread's attempt, or None


def _watch(connection: HTTPConnection) -> None:
    entry: Optional[_Watch] = getattr(_current, "watch", None)
    if entry is not None:
        _WATCHDOG.watch(entry, connection.sock)


class _WatchedHTTPConnection(HTTPConnection):
    def getresponse(self, *args: Any, **kwargs: Any) -> Any:
        _watch(self)
        return super().getresponse(*args, **kwargs)


class _WatchedHTTPSConnection(HTTPSConnection):
    def getresponse(self, *args: Any, **kwargs: Any) -> Any:
        _watch(self)
        return super().getresponse(*args, **kwargs)


def _release(connection: Optional[Any]) -> None:
    entry: Optional[_Watch] = getattr(_current, "watch", None)
    if entry is not None and connection is not None:
        _WATCHDOG.release(entry, connection)


class _WatchedHTTPPool(HTTPConnectionPool):
    ConnectionCls = _WatchedHTTPConnection

    def _put_conn(self, conn: Any) -> None:
        _release(conn)
        super()._put_conn(conn)


class _WatchedHTTPSPool(HTTPSConnectionPool):
    ConnectionCls = _WatchedHTTPSConnection

    def _put_conn(self, conn: Any) -> None:
        _release(conn)
        super()._put_conn(conn)


_WATCHED_POOLS = {"http": _WatchedHTTPPool, "https": _WatchedHTTPSPool}


class _WatchedAdapter(HTTPAdapter):
    """An adapter whose connections let the watchdog cut them."""

    # Through Any: older types-requests (the last for Python 3.9) leave these untyped.
    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        cast(Any, super()).init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = _WATCHED_POOLS

    def proxy_manager_for(self, proxy: str, **proxy_kwargs: Any) -> Any:
        manager = cast(Any, super()).proxy_manager_for(proxy, **proxy_kwargs)
        # A SOCKS manager has pools of its own; leave those alone.
        if manager.pool_classes_by_scheme is poolmanager.pool_classes_by_scheme:
            manager.pool_classes_by_scheme = _WATCHED_POOLS
        return manager


def check_endpoint(base_url: str, api_key: Optional[str]) -> str:
    """Check a client's ``base_url`` and ``api_key``, as both clients accept them.

    Registers the key (and any password in the URL) for redaction.

    Args:
        base_url: The API root.
        api_key: The bearer token, or None.

    Returns:
        ``base_url`` without a trailing slash (credentials in it kept).

    Raises:
        ValidationError: Not an http(s) URL, or a key that cannot go in a header.
    """
    if not _is_http_url(base_url):
        raise ValidationError(
            f"base_url must be an http(s) URL, got {hide_userinfo(base_url)!r}"
        )
    if api_key is not None and (not isinstance(api_key, str) or not api_key.strip()):
        raise ValidationError("api_key must be a non-empty string or None")
    if api_key is not None and not _HEADER_TOKEN.fullmatch(api_key):
        # Else requests fails on every call (a trailing newline: a retried "network"
        # error) or http.client raises a bare UnicodeEncodeError. Never echo the key.
        raise ValidationError(
            "api_key must be printable ASCII with no spaces or line breaks "
            "(check for a trailing newline)"
        )
    parts = urlsplit(base_url)
    if api_key is not None and "@" in parts.netloc:
        # requests would send the URL's credentials as Basic auth in place of the key.
        raise ValidationError(
            "give either api_key or user:password@ in base_url, not both "
            "(both use the Authorization header)"
        )
    # Usernames are rarely secret, but "https://TOKEN@host" puts the token there.
    register_secret(parts.password if parts.password else parts.username)
    register_secret(api_key)
    return base_url.rstrip("/")


def request_headers(
    api_key: Optional[str], idempotency_key: Optional[str]
) -> Dict[str, str]:
    """The headers every request carries.

    Args:
        api_key: The bearer token, or None.
        idempotency_key: Sent as ``Idempotency-Key`` when given.

    Returns:
        ``Accept``, ``User-Agent`` and, when set, ``Authorization`` and ``Idempotency-Key``.
    """
    headers = {"Accept": "application/json", "User-Agent": USER_AGENT}
    if api_key:
        headers["Authorization"] = f"Bearer {api_key}"
    if idempotency_key:
        headers["Idempotency-Key"] = idempotency_key
    return headers


class APIClient:
    """Sends requests to the AI Spine API with retries and typed errors.

    Args:
        base_url: Scheme and host of the API, e.g. ``https://api.example.com``.
        api_key: Bearer token, or None to send no ``Authorization`` header.
        timeout: Seconds per attempt, from connecting to the answer's last byte.
        retry: The retry policy.
        deadline: Overall seconds for one call including retries and waits, or None.
        debug: Log every request and answer at DEBUG level (redacted) to stderr.
        session: A ``requests.Session`` to use instead of a new pooled one; the caller keeps
            owning it (``close()`` leaves it open).
        max_body_size: The longest answer body read, in bytes.

    Raises:
        ValidationError: When ``base_url`` is not an http(s) URL or a number is out of range.
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
        session: Optional[requests.Session] = None,
        max_body_size: int = constants.DEFAULT_MAX_BODY_SIZE,
    ) -> None:
        self._url = check_endpoint(
            base_url, api_key
        )  # user:password@ kept for requests
        self.base_url = hide_userinfo(self._url)  # what reprs, messages and logs show
        self._where = urlsplit(self.base_url).netloc
        self.timeout = timeout
        self.retry = retry
        self.deadline = deadline
        self.max_body_size = max_body_size
        self._api_key = api_key
        self._owns_session = session is None
        self.session = session if session is not None else self._new_session()
        if debug:
            enable_debug_logging()

    def _new_session(self) -> requests.Session:
        session = requests.Session()
        # Retries are ours (POST-safety rules, typed final errors): the adapter never retries.
        adapter = _WatchedAdapter(
            pool_connections=4,
            pool_maxsize=constants.DEFAULT_POOL_MAXSIZE,
            max_retries=0,
        )
        session.mount("http://", adapter)
        session.mount("https://", adapter)
        return session

    def close(self) -> None:
        """Close the pooled connections (not those of a session the caller passed in)."""
        if self._owns_session:
            self.session.close()

    def request(
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

        Args:
            method: HTTP method.
            path: Path below ``base_url`` (starting with ``/``).
            params: Query parameters.
            json_body: JSON body to send.
            idempotency_key: Sent as ``Idempotency-Key``; makes a POST safe to resend.
            deadline: Overall seconds for this call (the client's ``deadline``, when set, still
                bounds it).

        Returns:
            The decoded JSON (None for an empty body).

        Raises:
            TimeoutError: An attempt took longer than ``timeout`` (after the retries it
                allows), or the deadline passed; also when ``deadline`` (not the client's own)
                leaves no time for the next retry, chained to the last attempt's error, so a
                caller on its own clock (``wait_for_execution``) sees its timeout.
            ResponseTooLargeError: The answer's body is longer than ``max_body_size``.
            AISpineError: A typed subclass for every failure; see :mod:`ai_spine.exceptions`.
                When the client's ``deadline`` stops the retries, the last error keeps its
                class.
        """
        method = method.upper()
        call = Call(
            method,
            path,
            self.base_url + path,  # for the retry history and logs: no credentials
            retry=self.retry,
            timeout=self.timeout,
            client_deadline=self.deadline,
            call_deadline=deadline,
            idempotent=bool(idempotency_key),
            clock=_monotonic,
        )
        headers = request_headers(self._api_key, idempotency_key)
        while True:
            call.next_attempt()
            attempt = self._send(method, path, headers, params, json_body, call)
            status = attempt.status
            if status is not None and status < 400:
                return decode_json(
                    method, path, status, attempt.headers, attempt.content
                )
            _sleep(call.settle(attempt, where=self._where, secret=self._api_key))

    def _send(
        self,
        method: str,
        path: str,
        headers: Dict[str, str],
        params: Optional[Dict[str, Any]],
        json_body: Optional[Dict[str, Any]],
        call: Call,
    ) -> Attempt:
        url = self.base_url + path  # shown in logs, without credentials
        if logger.isEnabledFor(logging.DEBUG):
            logger.debug(
                "-> %s %s params=%s headers=%s body=%s",
                method,
                url,
                params,
                redact_headers(headers),
                (
                    json.dumps(json_body, default=str)[:1000]
                    if json_body is not None
                    else None
                ),
            )
        started = _monotonic()
        # A socket timeout bounds each read, not their sum: on the SDK's own session the
        # watchdog cuts the connection when the attempt's time is up, however slowly the
        # headers come.
        watch = None
        if self._owns_session:
            watch = _WATCHDOG.arm(call.attempt_ends_at - _monotonic())
        _current.watch = watch
        try:
            # stream=True: the body is read below in pieces, so a server trickling it cannot
            # hold the attempt past its time, whatever session is used.
            response = self.session.request(
                method,
                self._url + path,
                params=params,
                json=json_body,
                headers=headers,
                timeout=call.attempt_timeout,
                stream=True,
            )
            content = _read_body(response, call.attempt_ends_at, self.max_body_size)
        except _TooLarge:
            if watch is not None:
                _WATCHDOG.disarm(watch)
            raise too_large(
                method, path, response.status_code, response.headers, self.max_body_size
            ) from None
        except Exception as exc:
            cut = watch is not None and _WATCHDOG.disarm(watch)
            if cut or isinstance(exc, _OutOfTime):
                return self._out_of_time(call)  # whatever the cut socket raised
            if isinstance(exc, _LOCAL_ERRORS):
                raise ValidationError(
                    f"{method} {path}: request refused by requests "
                    f"({type(exc).__name__}: {short(exc)})"
                ) from None
            if not isinstance(exc, requests.RequestException):
                raise
            kind = _classify(exc)
            logger.debug("<- %s %s: %s (%s)", method, url, type(exc).__name__, kind)
            return Attempt(kind=kind, name=type(exc).__name__, detail=short(exc))
        finally:
            _current.watch = None
        if watch is not None and _WATCHDOG.disarm(watch):
            response.close()  # cut during the body: it may look whole but be truncated
            return self._out_of_time(call)
        if logger.isEnabledFor(logging.DEBUG):
            logger.debug(
                "<- %s %s: HTTP %d in %.1f ms headers=%s body=%s",
                method,
                url,
                response.status_code,
                (_monotonic() - started) * 1000,
                redact_headers(response.headers),
                content[:1000].decode("utf-8", errors="replace"),
            )
        return Attempt(response.status_code, response.headers, content)

    @staticmethod
    def _out_of_time(call: Call) -> Attempt:
        """The attempt used all its time: the call's deadline, or the per-attempt timeout."""
        if call.cut_by_deadline():
            raise call.deadline_error()
        return Attempt(kind=TIMEOUT_ERROR, name="attempt timeout")


def _read_body(
    response: requests.Response, ends_at: Optional[float], limit: int
) -> bytes:
    """Read a streamed body whole, giving up at ``ends_at`` or past ``limit`` bytes.

    Each read returns what one socket read brought (``read1``), so the clock is checked while
    bytes trickle in; then the response holds its content as if read by ``requests`` itself and
    its connection goes back to the pool. On any failure the connection is closed, not reused.

    Returns:
        The body.

    Raises:
        _OutOfTime: At ``ends_at``.
        _TooLarge: Past ``limit`` bytes (a ``Content-Length`` above it is refused unread).
        requests.RequestException: The mapped ``urllib3`` error when the body breaks, cannot
            be decoded or times out.
    """
    from urllib3.exceptions import (
        DecodeError,
        ProtocolError,
        ReadTimeoutError,
        SSLError,
    )

    if response._content_consumed:  # type: ignore[attr-defined]
        # A response hook of the caller's session read it already.
        content = response.content or b""
        if len(content) > limit:
            raise _TooLarge()
        return content
    raw = response.raw
    read = getattr(raw, "read1", None) or raw.read  # urllib3 < 2 has no read1
    chunks = []
    size = 0
    try:
        declared = response.headers.get("Content-Length", "")
        if declared.isdigit() and int(declared) > limit:
            raise _TooLarge()
        while True:
            if ends_at is not None and _monotonic() >= ends_at:
                raise _OutOfTime()
            chunk = read(_READ_CHUNK, decode_content=True)
            if not chunk:
                break
            size += len(chunk)
            if (
                size > limit
            ):  # counted decoded: a small gzip body may unpack to gigabytes
                raise _TooLarge()
            chunks.append(chunk)
    except BaseException as exc:
        response.close()  # a half-read connection cannot be reused
        for urllib3_error, requests_error in (
            (ReadTimeoutError, requests.exceptions.ReadTimeout),
            (ProtocolError, requests.exceptions.ChunkedEncodingError),
            (DecodeError, requests.exceptions.ContentDecodingError),
            (SSLError, requests.exceptions.SSLError),
        ):
            if isinstance(exc, urllib3_error):  # as requests maps them itself
                raise requests_error(exc) from None
        raise
    # What requests does when it reads a body itself: content set, connection released.
    content = b"".join(chunks)
    response._content = content
    response._content_consumed = True  # type: ignore[attr-defined]
    raw.release_conn()
    return content


def enable_debug_logging() -> None:
    """Send the SDK's DEBUG log lines to stderr, redacted (what ``debug=True`` does)."""
    logger.setLevel(logging.DEBUG)
    if not any(getattr(h, "_ai_spine_debug", False) for h in logger.handlers):
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(
            logging.Formatter("%(asctime)s %(name)s %(levelname)s %(message)s")
        )
        handler.addFilter(_redactor)
        setattr(handler, "_ai_spine_debug", True)
        logger.addHandler(handler)
