"""A loopback HTTP server (standard library only) that misbehaves on purpose.

Each route gets a script of actions, played once each in order; afterwards the route's
``then`` action repeats. Every request is recorded, so tests can count what really reached the
server (for instance that an execute POST was not sent twice).
"""

from __future__ import annotations

import json
import socket
import struct
import threading
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Dict, List, Optional, Tuple

EXECUTE = "/api/v1/flows/execute"


@dataclass
class Action:
    """What the server does with one request.

    Attributes:
        kind: ``"json"`` (send ``body`` as JSON), ``"raw"`` (send ``body`` bytes as is),
            ``"reset"`` (abort the TCP connection with RST after reading the request),
            ``"slow"`` (wait ``delay`` seconds, then do ``then``), ``"execute"`` (start a
            fake execution: 200 with a fresh execution id), ``"drip"`` (send ``body`` one byte
            every ``delay`` seconds after the headers), ``"drip_head"`` (the same from the
            status line on: the headers trickle too).
        status: HTTP status for json/raw.
        body: JSON value or bytes.
        headers: Extra response headers.
        content_length: Override the Content-Length header (to truncate a body).
        delay: Seconds to wait for ``slow``.
        then: The action after the wait for ``slow``.
    """

    kind: str
    status: int = 200
    body: Any = None
    headers: Dict[str, str] = field(default_factory=dict)
    content_length: Optional[int] = None
    delay: float = 0.0
    then: Optional["Action"] = None


def reply(status: int = 200, body: Any = None, **headers: str) -> Action:
    """A JSON answer."""
    return Action(
        "json", status=status, body={} if body is None else body, headers=headers
    )


def raw(
    status: int, body: bytes, content_type: str, content_length: Optional[int] = None
) -> Action:
    """A raw answer (HTML pages, truncated or malformed JSON)."""
    return Action(
        "raw",
        status=status,
        body=body,
        headers={"Content-Type": content_type},
        content_length=content_length,
    )


def reset() -> Action:
    """Abort the connection (TCP RST) after reading the request."""
    return Action("reset")


def slow(delay: float, then: Optional[Action] = None) -> Action:
    """Answer only after ``delay`` seconds (the wait ends early when the server stops)."""
    return Action("slow", delay=delay, then=then or reply(200, {"late": True}))


def drip(delay: float, body: Any) -> Action:
    """Send the headers at once, then the JSON body one byte every ``delay`` seconds."""
    return Action("drip", body=body, delay=delay)


def drip_head(delay: float, body: Any) -> Action:
    """Send the whole answer, status line and headers included, one byte every ``delay``."""
    return Action("drip_head", body=body, delay=delay)


def execute() -> Action:
    """Accept an execute request: a new execution id, status pending."""
    return Action("execute")


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # resets and abandoned slow answers are the point here, not errors


@dataclass
class Recorded:
    """One request as the server saw it."""

    method: str
    path: str
    headers: Dict[str, str]
    body: bytes
    answered: Optional[int] = None  # status sent back, None when reset or abandoned
    port: int = (
        0  # the client's port: equal ports mean a reused (kept-alive) connection
    )
    headers_sent: bool = False  # drip_head: the last header byte went out


class FaultServer:
    """ThreadingHTTPServer on 127.0.0.1 (free port) with scripted faults.

    Use as a context manager; ``url`` is the base URL to give the client.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._scripts: Dict[Tuple[str, str], List[Action]] = {}
        self._then: Dict[Tuple[str, str], Action] = {}
        self.requests: List[Recorded] = []
        self.stopping = threading.Event()
        self.executions: List[str] = []
        self._httpd = _QuietServer(("127.0.0.1", 0), _make_handler(self))
        self._thread = threading.Thread(
            target=self._httpd.serve_forever,
            kwargs={"poll_interval": 0.05},
            daemon=True,
        )

    @property
    def url(self) -> str:
        """Base URL of the server."""
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    def plan(
        self, method: str, path: str, *actions: Action, then: Optional[Action] = None
    ) -> None:
        """Script a route: ``actions`` once each, then ``then`` forever (default 200 ``{}``)."""
        with self._lock:
            self._scripts[(method, path)] = list(actions)
            if then is not None:
                self._then[(method, path)] = then

    def next_action(self, method: str, path: str) -> Action:
        """The action for the next request on a route (used by the handler)."""
        with self._lock:
            script = self._scripts.get((method, path))
            if script:
                return script.pop(0)
            return self._then.get((method, path), reply(200, {}))

    def count(self, method: str, path: str) -> int:
        """How many requests reached a route."""
        with self._lock:
            return sum(
                1 for r in self.requests if r.method == method and r.path == path
            )

    def seen(self, method: str, path: str) -> List[Recorded]:
        """The recorded requests of a route, oldest first."""
        with self._lock:
            return [r for r in self.requests if r.method == method and r.path == path]

    def record(self, item: Recorded) -> None:
        """Remember a request (used by the handler)."""
        with self._lock:
            self.requests.append(item)

    def __enter__(self) -> "FaultServer":
        self._thread.start()
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.stopping.set()
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)


def _make_handler(server: FaultServer) -> type:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, like a real backend behind a proxy
        # Headers and body go out at once: no 40 ms delayed-ACK stall.
        disable_nagle_algorithm = True
        timeout = 5

        def log_message(
            self, format: str, *args: Any
        ) -> None:  # noqa: A002 - stdlib name
            pass  # keep test output clean

        def _handle(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            path = self.path.split("?", 1)[0]
            item = Recorded(
                self.command,
                path,
                dict(self.headers.items()),
                body,
                port=self.client_address[1],
            )
            server.record(item)
            action = server.next_action(self.command, path)
            if action.kind == "slow":
                server.stopping.wait(action.delay)
                assert action.then is not None
                action = action.then
            try:
                self._perform(action, item)
            except OSError:  # the client gave up (timeout) and closed the socket
                item.answered = None
                self.close_connection = True

        def _perform(self, action: Action, item: Recorded) -> None:
            if action.kind == "reset":
                self.connection.setsockopt(
                    socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)
                )
                self.connection.close()
                self.close_connection = True
                return
            if action.kind == "execute":
                execution_id = str(uuid.uuid4())
                server.executions.append(execution_id)
                action = reply(
                    200,
                    {"execution_id": execution_id, "status": "pending", "result": None},
                )
            if action.kind == "drip_head":
                self._drip_head(action, item)
                return
            if action.kind in ("json", "drip"):
                payload = json.dumps(action.body).encode()
                headers = {"Content-Type": "application/json", **action.headers}
            else:
                payload = action.body
                headers = dict(action.headers)
            self.send_response(action.status)
            for name, value in headers.items():
                self.send_header(name, value)
            length = (
                len(payload) if action.content_length is None else action.content_length
            )
            self.send_header("Content-Length", str(length))
            if action.content_length is not None:
                self.send_header("Connection", "close")
                self.close_connection = True
            self.end_headers()
            # Set before the last bytes go out: a client holding the whole answer may look.
            if action.kind == "drip":
                self.wfile.flush()
                for i in range(len(payload)):
                    if server.stopping.wait(action.delay):
                        break
                    if i == len(payload) - 1:
                        item.answered = action.status
                    self.wfile.write(payload[i : i + 1])
                    self.wfile.flush()
            else:
                item.answered = action.status
                self.wfile.write(payload)
            self.wfile.flush()

        def _drip_head(self, action: Action, item: Recorded) -> None:
            payload = json.dumps(action.body).encode()
            # Padding makes the headers alone take many times any test's deadline.
            head = (
                f"HTTP/1.1 {action.status} OK\r\nContent-Type: application/json\r\n"
                f"X-Padding: {'x' * 100}\r\nContent-Length: {len(payload)}\r\n\r\n"
            ).encode()
            answer = head + payload
            for i in range(len(answer)):
                if server.stopping.wait(action.delay):
                    return
                if i == len(answer) - 1:
                    item.answered = action.status
                # Set before the byte goes out, as above: else a client holding the headers
                # could look before the flag was set.
                item.headers_sent = i >= len(head) - 1
                self.wfile.write(answer[i : i + 1])
                self.wfile.flush()

        do_GET = _handle
        do_POST = _handle
        do_DELETE = _handle

    return Handler


def free_port() -> int:
    """A port nobody listens on (bound, then closed) for connection-refused tests."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port
