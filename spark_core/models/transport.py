"""The HTTP transport under :class:`~spark_core.models.openai.OpenAIModel`.

A socket timeout bounds each read, not their sum: a server sending one byte a second keeps a
plain ``requests`` call alive for as long as it likes. So every attempt gets an
:class:`AttemptTimer` that shuts the attempt's socket down when its time is up, whatever phase
the attempt is in (headers or body), and the body is read in pieces by :func:`read_body`, which
stops at a size limit instead of reading an answer whole.

This module imports ``requests``; :mod:`spark_core.models.openai` imports it only when it makes
its first call.
"""

from __future__ import annotations

import socket
import threading
from typing import Any, Optional

import requests
from requests.adapters import HTTPAdapter
from urllib3 import poolmanager
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

__all__ = ["AttemptTimer", "BodyTooLarge", "new_session", "read_body"]

_READ_CHUNK = 64 * 1024


class AttemptTimer:
    """Cuts one attempt's connection when the attempt's time is up.

    Use it as a context manager around the attempt: inside it, the connection classes below
    hand it their socket as soon as they have one (through a thread-local). A connection
    going back to the pool is let go first, so the timer never cuts a connection another call
    may be using by then.

    Args:
        seconds: Time the attempt may take, from now.
    """

    def __init__(self, seconds: float) -> None:
        self._lock = threading.Lock()
        self._sock: Optional[socket.socket] = None
        self._fired = False
        self._timer = threading.Timer(seconds, self._fire)
        self._timer.daemon = True
        self._timer.start()

    def __enter__(self) -> AttemptTimer:
        _current.timer = self
        return self

    def __exit__(self, *exc: Any) -> None:
        _current.timer = None
        self.stop()

    def watch(self, sock: Any) -> None:
        """Cut this socket when the time is up (at once if it is up already).

        Args:
            sock: The attempt's connected socket.
        """
        with self._lock:
            self._sock = sock if isinstance(sock, socket.socket) else None
            if self._fired:
                _cut(self._sock)

    def release(self, sock: Any) -> bool:
        """Let go of a socket whose connection goes back to the pool.

        Args:
            sock: The connection's socket.

        Returns:
            Whether the timer cut it (the connection must then be closed, not reused).
        """
        with self._lock:
            if sock is None or sock is not self._sock:
                return False
            self._sock = None
            return self._fired

    def stop(self) -> bool:
        """End the watch.

        Returns:
            Whether the time ran out first (whatever was read is then unusable: a cut
            connection can look like a complete answer).
        """
        self._timer.cancel()
        with self._lock:
            self._sock = None
            return self._fired

    def _fire(self) -> None:
        with self._lock:
            self._fired = True
            _cut(self._sock)


def _cut(sock: Optional[socket.socket]) -> None:
    if sock is not None:
        try:
            # socket.socket's shutdown, not SSLSocket's, which would drop the TLS state
            # under the reading thread's feet; the blocked read then ends at once.
            socket.socket.shutdown(sock, socket.SHUT_RDWR)
        except OSError:  # closed already
            pass


_current = threading.local()  # .timer: the AttemptTimer of this thread's attempt


def _watch(connection: Any) -> None:
    timer: Optional[AttemptTimer] = getattr(_current, "timer", None)
    if timer is not None and connection.sock is not None:
        timer.watch(connection.sock)


class _TimedHTTPConnection(HTTPConnection):
    def connect(self) -> None:
        super().connect()
        _watch(self)

    def request(self, *args: Any, **kwargs: Any) -> None:
        _watch(self)  # a pooled connection: connected already
        super().request(*args, **kwargs)


class _TimedHTTPSConnection(HTTPSConnection):
    def connect(self) -> None:
        super().connect()
        _watch(self)

    def request(self, *args: Any, **kwargs: Any) -> None:
        _watch(self)
        super().request(*args, **kwargs)


def _release(conn: Any) -> None:
    timer: Optional[AttemptTimer] = getattr(_current, "timer", None)
    if timer is not None and conn is not None and timer.release(conn.sock):
        conn.close()  # cut: the pool must not hand it out again


class _TimedHTTPPool(HTTPConnectionPool):
    ConnectionCls = _TimedHTTPConnection

    def _put_conn(self, conn: Any) -> None:
        _release(conn)
        super()._put_conn(conn)


class _TimedHTTPSPool(HTTPSConnectionPool):
    ConnectionCls = _TimedHTTPSConnection

    def _put_conn(self, conn: Any) -> None:
        _release(conn)
        super()._put_conn(conn)


_TIMED_POOLS = {"http": _TimedHTTPPool, "https": _TimedHTTPSPool}


class _TimedAdapter(HTTPAdapter):
    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = _TIMED_POOLS

    def proxy_manager_for(self, proxy: str, **proxy_kwargs: Any) -> Any:
        manager = super().proxy_manager_for(proxy, **proxy_kwargs)
        # A SOCKS manager has pools of its own; leave those to the per-read timeout.
        if manager.pool_classes_by_scheme is poolmanager.pool_classes_by_scheme:
            manager.pool_classes_by_scheme = _TIMED_POOLS
        return manager


def new_session() -> requests.Session:
    """Return a pooled session whose connections an :class:`AttemptTimer` can cut."""
    session = requests.Session()
    adapter = _TimedAdapter()
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session


class BodyTooLarge(Exception):
    """The answer's body is longer than the limit (it was not read past it)."""


def read_body(response: requests.Response, limit: int) -> bytes:
    """Read a streamed response's body, refusing one longer than ``limit`` bytes.

    A ``Content-Length`` over the limit is refused before anything is read; otherwise the
    body is read in pieces and counted (after decompression), and reading stops at the first
    byte past the limit. The connection is closed on any failure, never reused half-read.

    Args:
        response: A response from a request sent with ``stream=True``.
        limit: The most bytes accepted.

    Returns:
        The body.

    Raises:
        BodyTooLarge: Past the limit.
        requests.RequestException: The connection broke (or was cut) while reading.
    """
    try:
        declared = int(response.headers.get("Content-Length", ""))
    except ValueError:
        declared = -1
    chunks = []
    size = 0
    try:
        if declared > limit:
            raise BodyTooLarge()
        for chunk in response.iter_content(_READ_CHUNK):
            size += len(chunk)
            if size > limit:
                raise BodyTooLarge()
            chunks.append(chunk)
    except BaseException:
        response.close()
        raise
    return b"".join(chunks)
