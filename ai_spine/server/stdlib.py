"""The stdlib server loop: sockets, HTTP/1.1 framing and limits, around :class:`SpineApp`.

One thread per connection (``http.server``), with the limits a server facing hostile
clients needs, each a :class:`SpineServer` argument with a safe default:

* a listen ``backlog`` (128), so bursts of new connections are not dropped by the kernel;
* ``max_connections`` open at once (256): one more is answered 503 and closed at once;
* ``header_timeout`` (10 s) for a request line and headers to arrive, ``idle_timeout``
  (15 s) for a keep-alive connection to start its next request, ``body_timeout`` (30 s)
  for a body to arrive (and for a client to take an answer);
* framing that cannot be read two ways: a ``Transfer-Encoding`` (``chunked`` answers 411,
  anything else 400), several ``Content-Length`` headers, a malformed one or a malformed
  header section answer 400; each of these closes the connection;
* ``max_body`` bytes in a request body (413).
"""

from __future__ import annotations

import io
import json
import logging
import re
import socket
import threading
import time
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from ipaddress import ip_address
from typing import Any, Dict, Optional, Tuple
from urllib.parse import unquote_plus

from ai_spine.constants import DEFAULT_POLL_INTERVAL
from ai_spine.local import LocalSpine
from ai_spine.server.app import (
    LOOPBACK_HOSTS,
    Request,
    Response,
    SpineApp,
    escape_controls,
)
from ai_spine.server.routes import HTTPError

__all__ = [
    "SpineServer",
    "DEFAULT_MAX_BODY",
    "DEFAULT_BODY_TIMEOUT",
    "DEFAULT_HEADER_TIMEOUT",
    "DEFAULT_IDLE_TIMEOUT",
    "DEFAULT_MAX_CONNECTIONS",
    "DEFAULT_BACKLOG",
    "is_loopback",
    "redact_target",
]

logger = logging.getLogger("ai_spine.server")

DEFAULT_MAX_BODY = 1024 * 1024  # bytes accepted in one request body
DEFAULT_BODY_TIMEOUT = 30.0  # seconds a client has to send a request body
DEFAULT_HEADER_TIMEOUT = 10.0  # seconds for a request line and headers to arrive
DEFAULT_IDLE_TIMEOUT = 15.0  # seconds a keep-alive connection may wait between requests
DEFAULT_MAX_CONNECTIONS = 256  # connections open at once (each holds a thread)
DEFAULT_BACKLOG = 128  # connections the kernel queues before they are accepted
_JSON = "application/json"
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
# Query parameters whose values never reach the access log.
_SECRET_NAME = re.compile(
    r"(?i)(key|token|secret|pass|auth|sig|session|credential|cookie|bearer)"
)


def is_loopback(host: str) -> bool:
    """Whether ``host`` (an address or ``localhost``) is a loopback interface."""
    if host.lower() == "localhost":
        return True
    try:
        return ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def redact_target(target: str) -> str:
    """A request target fit for a log: secret-looking query values hidden, controls escaped.

    Args:
        target: The request target as received.

    Returns:
        The target to log.
    """
    path, sep, query = target.partition("?")
    if sep:
        fields = []
        for field in query.split("&"):
            name, equals, _ = field.partition("=")
            if equals and _SECRET_NAME.search(unquote_plus(name)):
                field = name + "=***"
            fields.append(field)
        query = "&".join(fields)
    return escape_controls(path + sep + query)


class _DeadlineReader(io.RawIOBase):
    """A socket's read side that gives up (``socket.timeout``) at :attr:`deadline`.

    A per-read timeout alone lets a client that sends one byte at a time hold a thread for
    ever; a deadline bounds the whole request line, header section or body.
    """

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        self.deadline: Optional[float] = None

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        if self.deadline is not None:
            left = self.deadline - time.monotonic()
            if left <= 0:
                raise socket.timeout("deadline passed")
            self._sock.settimeout(left)
        else:
            self._sock.settimeout(None)
        return self._sock.recv_into(buffer)


class _Handler(BaseHTTPRequestHandler):
    """One connection: frame each request, hand it to the app, write its answer."""

    protocol_version = "HTTP/1.1"
    server_version = "ai-spine-local"
    sys_version = ""
    # Buffer the answer so headers and body leave in one segment (flushed per request);
    # with TCP_NODELAY this avoids the Nagle/delayed-ACK stall on keep-alive.
    wbufsize = 64 * 1024
    server: "_Server"

    def setup(self) -> None:
        super().setup()
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._reader = _DeadlineReader(self.connection)
        self._buffered = io.BufferedReader(self._reader, 64 * 1024)
        self.rfile = self._buffered
        self._requests = 0

    def handle_one_request(self) -> None:
        """Read one request within the header deadline (after the idle one) and answer it."""
        server = self.server
        self.close_connection = True
        self._body_read = False
        # For send_error and the access log before a request line was read.
        self.command = self.path = self.request_version = ""
        try:
            if self._requests:  # keep-alive: wait for the next request's first byte
                self._reader.deadline = time.monotonic() + server.idle_timeout
                if not self._buffered.peek(1):
                    return
        except OSError:  # idle too long (socket.timeout), or the client left
            return
        self._requests += 1
        try:
            self._reader.deadline = time.monotonic() + server.header_timeout
            self.raw_requestline = self.rfile.readline(65537)
            if not self.raw_requestline:
                return
            if len(self.raw_requestline) > 65536:
                self.requestline = self.request_version = ""
                self.send_error(HTTPStatus.REQUEST_URI_TOO_LONG)
                return
            if not self.parse_request():  # it answered the error itself
                return
        except socket.timeout:
            self.send_error(408, "Request line and headers not received in time")
            return
        except OSError:
            return
        self._reader.deadline = None
        if self.command not in _METHODS:
            self.send_error(501, f"Unsupported method ({self.command!r})")
            return
        problem = self._framing_problem()
        if problem is not None:
            self.send_error(problem[0], problem[1])
            return
        self._answer()

    def _framing_problem(self) -> Optional[Tuple[int, str]]:
        """The error for a request whose body framing could be read two ways, or None."""
        headers = self.headers
        if headers.defects:
            return 400, "Malformed header section"
        encodings = headers.get_all("Transfer-Encoding") or []
        lengths = headers.get_all("Content-Length") or []
        if encodings:
            if encodings != ["chunked"]:
                return 400, "Unsupported Transfer-Encoding"
            if lengths:
                return 400, "Both Transfer-Encoding and Content-Length given"
            return 411, "Chunked bodies are not accepted; send Content-Length"
        if len(lengths) > 1:
            return 400, "More than one Content-Length header"
        if lengths and not (lengths[0].isdigit() and lengths[0].isascii()):
            return 400, "Invalid Content-Length header"
        return None

    def _answer(self) -> None:
        names: Dict[str, str] = {}
        for name, value in self.headers.items():
            names.setdefault(name.lower(), value)
        request = Request(self.command, self.path, names, self._read_body)
        response = self.server.app(request)
        self._send(response)

    def _length(self) -> int:
        return int(self.headers.get("Content-Length") or 0)

    def _read_body(self) -> bytes:
        """The body (``Content-Length`` bytes) within ``body_timeout``, or an HTTPError."""
        self._body_read = True
        length, limit = self._length(), self.server.max_body
        if length > limit:
            # Read and drop a moderately large body so the client sees the 413 instead of a
            # broken pipe; refuse to read a huge one. Either way the connection closes.
            if length <= 8 * limit:
                self._read_bytes(length)
            raise HTTPError(
                413,
                f"Request body too large: {length} bytes (limit {limit})",
                close=True,
            )
        return self._read_bytes(length)

    def _read_bytes(self, length: int) -> bytes:
        """Read ``length`` bytes (fewer if the client closes) within ``body_timeout``."""
        self._reader.deadline = time.monotonic() + self.server.body_timeout
        try:
            return self.rfile.read(length) if length else b""
        except socket.timeout:
            raise HTTPError(
                408,
                f"Request body not received within {self.server.body_timeout:g}s",
                close=True,
            ) from None
        finally:
            self._reader.deadline = None

    def _drop_unread_body(self) -> None:
        """Consume a body no route read (auth failure, 404, GET with a body).

        Left in the stream, it would be parsed as the next request on this keep-alive
        connection. A body that is not small closes the connection instead.
        """
        if self._body_read:
            return
        self._body_read = True
        length = self._length()
        if 0 < length <= self.server.max_body:
            try:
                self._read_bytes(length)
            except HTTPError:  # too slow: the connection closes instead
                self.close_connection = True
        elif length:
            self.close_connection = True

    def _send(self, response: Response) -> None:
        if response.close:
            self.close_connection = True
        self._drop_unread_body()
        self.connection.settimeout(self.server.body_timeout)
        self.send_response(response.status)
        self.send_header("Content-Length", str(len(response.body)))
        for name, value in response.headers:
            self.send_header(name, value)
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(response.body)
        self.wfile.flush()

    def send_error(
        self, code: int, message: Optional[str] = None, explain: Optional[str] = None
    ) -> None:
        """Answer errors found while framing (bad request line, headers...) as JSON; close."""
        self.close_connection = True
        try:
            phrase = HTTPStatus(code).phrase
        except ValueError:
            phrase = "Error"
        data = json.dumps({"detail": message or phrase}).encode()
        try:
            self.connection.settimeout(self.server.body_timeout)
            self.send_response(code)
            self.send_header("Content-Type", _JSON)
            self.send_header("Content-Length", str(len(data)))
            self.send_header("Connection", "close")
            self.end_headers()
            if self.command != "HEAD" and code >= 200 and code not in (204, 304):
                self.wfile.write(data)
            self.wfile.flush()
        except OSError:  # the client left
            pass

    def log_request(self, code: Any = "-", size: Any = "-") -> None:
        """Log the request's method, target (secrets redacted) and status (never headers)."""
        if not logger.isEnabledFor(logging.DEBUG):
            return
        line = "-"
        if getattr(self, "request_version", ""):  # the request line was understood
            line = " ".join(
                (
                    escape_controls(self.command),
                    redact_target(self.path),
                    escape_controls(self.request_version),
                )
            )
        logger.debug(
            '%s "%s" %s', self.address_string(), line, getattr(code, "value", code)
        )

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        # Other messages of http.server's (none carry headers), escaped for a terminal.
        logger.debug("%s %s", self.address_string(), escape_controls(format % args))


class _Server(ThreadingHTTPServer):
    """Threaded HTTP server that caps and tracks its connections, so shutdown can end them."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(
        self,
        address: Tuple[str, int],
        app: SpineApp,
        *,
        backlog: int,
        max_connections: int,
        max_body: int,
        body_timeout: float,
        header_timeout: float,
        idle_timeout: float,
    ) -> None:
        self.request_queue_size = backlog  # read by server_activate's listen()
        self.app = app
        self.max_connections = max_connections
        self.max_body = max_body
        self.body_timeout = body_timeout
        self.header_timeout = header_timeout
        self.idle_timeout = idle_timeout
        self._open: Dict[socket.socket, Optional[threading.Thread]] = {}
        self._open_lock = threading.Lock()
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        super().__init__(address, _Handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        """Serve a new connection in its own thread, or refuse it (503) when at the cap."""
        with self._open_lock:
            full = len(self._open) >= self.max_connections
            if not full:
                self._open[request] = None
        if full:
            _refuse(request)
            return
        try:
            super().process_request(request, client_address)
        except BaseException:  # no thread could start
            with self._open_lock:
                self._open.pop(request, None)
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        """Serve one connection (all its keep-alive requests), tracked while open."""
        thread = threading.current_thread()
        thread.name = "ai-spine-conn"
        with self._open_lock:
            self._open[request] = thread
        try:
            super().process_request_thread(request, client_address)
        finally:
            with self._open_lock:
                self._open.pop(request, None)

    def open_connections(self) -> int:
        """How many connections are open."""
        with self._open_lock:
            return len(self._open)

    def close_connections(self, timeout: float) -> None:
        """End every open connection once its current request (if any) is answered.

        Shutting the read side makes a handler waiting for the next keep-alive request see
        end-of-stream and return, while an answer being written still goes out. Then the
        handler threads are joined for up to ``timeout`` seconds.
        """
        with self._open_lock:
            open_now = list(self._open.items())
        for sock, _ in open_now:
            try:
                sock.shutdown(socket.SHUT_RD)
            except OSError:  # already closed by the peer
                pass
        deadline = time.monotonic() + timeout
        for _, thread in open_now:
            if thread is not None:
                thread.join(max(0.0, deadline - time.monotonic()))


_BUSY = json.dumps({"detail": "Too many connections; try again later"}).encode()
_BUSY_ANSWER = (
    b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
    b"Retry-After: 1\r\nConnection: close\r\nContent-Length: "
    + str(len(_BUSY)).encode()
    + b"\r\n\r\n"
    + _BUSY
)


def _refuse(sock: socket.socket) -> None:
    """Answer 503 on a connection past the cap and close it, without blocking the accept loop."""
    try:
        sock.setblocking(False)
        sock.send(_BUSY_ANSWER)
        sock.shutdown(socket.SHUT_WR)
        try:  # what the client sent already, so closing does not reset the answer away
            sock.recv(65536)
        except OSError:
            pass
    except OSError:
        pass
    finally:
        sock.close()


class SpineServer:
    """A LocalSpine served over HTTP with the backend's routes (stdlib, one process).

    In-process use (tests, notebooks)::

        with SpineServer(LocalSpine({"echo": make_graph})) as server:  # free port, loopback
            client = AISpine(base_url=server.url)

    Args:
        spine: The LocalSpine to serve.
        host: Interface to bind (loopback unless told otherwise).
        port: TCP port; 0 picks a free one (read it back from :attr:`port` / :attr:`url`).
        api_key: When set, requests must send ``Authorization: Bearer <api_key>``.
        max_body: Largest request body accepted, in bytes (larger answers 413).
        body_timeout: Seconds a client has to send a request body (slower answers 408) and
            to take an answer.
        header_timeout: Seconds a connection has to send a request line and headers (the
            connection closes after them, with 408 if part of a request came).
        idle_timeout: Seconds a keep-alive connection may stay idle between requests.
        max_connections: Connections open at once; one more gets 503 and is closed.
        backlog: Connections the kernel queues until they are accepted.
        check_host: Accept only loopback names in ``Host`` (against DNS rebinding). None
            (default): on when bound to a loopback address without ``api_key``.

    Raises:
        ValidationError: An empty ``api_key``.
        OSError: The address cannot be bound (e.g. the port is in use).
    """

    def __init__(
        self,
        spine: LocalSpine,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        api_key: Optional[str] = None,
        max_body: int = DEFAULT_MAX_BODY,
        body_timeout: float = DEFAULT_BODY_TIMEOUT,
        header_timeout: float = DEFAULT_HEADER_TIMEOUT,
        idle_timeout: float = DEFAULT_IDLE_TIMEOUT,
        max_connections: int = DEFAULT_MAX_CONNECTIONS,
        backlog: int = DEFAULT_BACKLOG,
        check_host: Optional[bool] = None,
    ) -> None:
        if check_host is None:
            check_host = api_key is None and is_loopback(host)
        self.app = SpineApp(
            spine, api_key, frozenset(LOOPBACK_HOSTS) if check_host else None
        )
        self.spine = spine
        self._httpd = _Server(
            (host, port),
            self.app,
            backlog=backlog,
            max_connections=max_connections,
            max_body=max_body,
            body_timeout=body_timeout,
            header_timeout=header_timeout,
            idle_timeout=idle_timeout,
        )
        self._thread: Optional[threading.Thread] = None
        self._serving = threading.Event()

    @property
    def host(self) -> str:
        """The bound host."""
        return str(self._httpd.server_address[0])

    @property
    def port(self) -> int:
        """The bound port."""
        return int(self._httpd.server_address[1])

    @property
    def url(self) -> str:
        """The base URL to give :class:`ai_spine.AISpine` (``http://host:port``)."""
        host = self.host
        if ":" in host:
            return f"http://[{host}]:{self.port}"
        return f"http://{host}:{self.port}"

    @property
    def open_connections(self) -> int:
        """How many client connections are open now."""
        return self._httpd.open_connections()

    def start(self) -> "SpineServer":
        """Serve in a background thread and return at once."""
        if self._thread is None:
            self._thread = threading.Thread(
                target=self.serve_forever, name="ai-spine-serve", daemon=True
            )
            self._thread.start()
        return self

    def serve_forever(self) -> None:
        """Serve in this thread until :meth:`shutdown` is called from another one."""
        self._serving.set()
        # Poll interval: shutdown() returns within ~50 ms.
        self._httpd.serve_forever(0.05)

    def shutdown(self, close_spine: bool = False, grace: float = 5.0) -> None:
        """Stop accepting requests, end open connections; optionally close the LocalSpine.

        With ``close_spine`` the spine is closed first while reads are still answered: new
        executions get 503, running ones get ``grace`` seconds to finish, and clients
        waiting on them can read how they ended (for one more poll interval, when any did:
        durable runs left to resume have no ending to see) before the HTTP side stops.
        Then requests being answered finish; idle keep-alive connections are closed.
        Stops :meth:`start`'s thread or a :meth:`serve_forever` running in another thread.

        Args:
            close_spine: Also close the spine (running executions get ``grace`` seconds).
            grace: Seconds running executions may take to finish.
        """
        if close_spine:
            ended = self.spine.close(timeout=grace)
            if ended and self._serving.is_set():
                # A waiting AISpine polls every DEFAULT_POLL_INTERVAL s by default.
                time.sleep(min(DEFAULT_POLL_INTERVAL, max(0.0, grace)))
        if self._serving.is_set() or self._thread is not None:
            self._httpd.shutdown()  # returns once the serving loop has exited
            self._serving.clear()
        self._httpd.close_connections(timeout=5.0)
        if self._thread is not None:
            self._thread.join(timeout=5.0)
            self._thread = None
        self._httpd.server_close()

    def __enter__(self) -> "SpineServer":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.shutdown()
