"""``ai-spine serve``: a LocalSpine behind an HTTP server that speaks the AI Spine backend's API.

Standard library only (``http.server``, threaded). Routes, status codes and JSON shapes follow
the backend (``/api/v1/flows/execute``, ``/api/v1/executions/...``, ``/api/v1/flows...``,
``/api/v1/agents...``, ``/health``, ``/metrics``, ``/status``), errors are FastAPI-shaped
(``{"detail": ...}``), a non-UUID execution id answers 422. With an API key set, every route
but ``/health`` needs ``Authorization: Bearer <key>`` (compared in constant time).

In-process use (tests, notebooks)::

    with SpineServer(LocalSpine({"echo": make_graph})) as server:   # free port on 127.0.0.1
        client = AISpine(base_url=server.url)
"""

from __future__ import annotations

import argparse
import hmac
import importlib
import json
import logging
import os
import re
import signal
import socket
import sys
import threading
import time
import uuid
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import FrameType
from typing import Any, Dict, List, Mapping, Optional, Tuple
from urllib.parse import parse_qs, unquote, urlsplit

from ai_spine.constants import DEFAULT_POLL_INTERVAL
from ai_spine.exceptions import (
    AISpineError,
    AuthenticationError,
    FlowNotFoundError,
    NotFoundError,
    RateLimitError,
    ValidationError,
)
from ai_spine.local import (
    DEFAULT_MAX_EXECUTIONS,
    LocalSpine,
    validate_execute_request,
    validate_page_request,
)

__all__ = ["SpineServer", "serve_main", "DEFAULT_MAX_BODY"]

logger = logging.getLogger("ai_spine.server")

DEFAULT_MAX_BODY = 1024 * 1024  # bytes accepted in one request body
DEFAULT_BODY_TIMEOUT = 30.0  # seconds a client has to send a request body
_PUBLIC_PATHS = frozenset({"/health", "/health/detailed"})
_JSON = "application/json"


class _HTTPError(Exception):
    """An HTTP answer decided inside a handler: status, detail and extra headers."""

    def __init__(
        self, status: int, detail: Any, headers: Optional[Dict[str, str]] = None
    ) -> None:
        super().__init__(str(detail))
        self.status = status
        self.detail = detail
        self.headers = headers or {}


def _status_for(exc: AISpineError) -> int:
    if exc.status_code is not None:
        return exc.status_code
    for cls, status in (
        (AuthenticationError, 401),
        (ValidationError, 422),
        (NotFoundError, 404),
        (RateLimitError, 429),
    ):
        if isinstance(exc, cls):
            return status
    return 500


def _query_int(query: Dict[str, List[str]], name: str, default: int) -> int:
    values = query.get(name)
    if not values:
        return default
    try:
        return int(values[-1])
    except ValueError:
        raise _HTTPError(
            422,
            [
                {
                    "loc": ["query", name],
                    "msg": "Input should be a valid integer",
                    "type": "int_parsing",
                }
            ],
        ) from None


Route = Tuple[str, "re.Pattern[str]", str]
_ROUTES: List[Route] = [
    (m, re.compile(p + r"\Z"), h)
    for m, p, h in [
        ("GET", r"/health", "health"),
        ("GET", r"/health/detailed", "health"),
        ("GET", r"/metrics", "metrics"),
        ("GET", r"/status", "status"),
        ("POST", r"/api/v1/flows/execute", "execute"),
        ("GET", r"/api/v1/flows", "list_flows"),
        ("POST", r"/api/v1/flows", "create_flow"),
        # Fixed paths before the {id} ones, or "my-flows" would be read as a flow id.
        (
            "GET",
            r"/api/v1/flows/my-flows",
            "list_flows",
        ),  # locally, every flow is yours
        ("GET", r"/api/v1/flows/(?P<flow_id>[^/]+)", "get_flow"),
        ("PUT", r"/api/v1/flows/(?P<flow_id>[^/]+)", "update_flow"),
        ("DELETE", r"/api/v1/flows/(?P<flow_id>[^/]+)", "delete_flow"),
        ("GET", r"/api/v1/executions", "list_executions"),
        ("GET", r"/api/v1/executions/(?P<execution_id>[^/]+)", "get_execution"),
        ("POST", r"/api/v1/executions/(?P<execution_id>[^/]+)/cancel", "cancel"),
        ("GET", r"/api/v1/executions/(?P<execution_id>[^/]+)/results", "results"),
        ("GET", r"/api/v1/executions/(?P<execution_id>[^/]+)/messages", "messages"),
        ("GET", r"/api/v1/agents", "list_agents"),
        ("POST", r"/api/v1/agents", "create_agent"),
        ("GET", r"/api/v1/agents/active", "active_agents"),
        ("GET", r"/api/v1/agents/my-agents", "list_agents"),
        ("GET", r"/api/v1/agents/(?P<agent_id>[^/]+)", "get_agent"),
        ("DELETE", r"/api/v1/agents/(?P<agent_id>[^/]+)", "delete_agent"),
        ("GET", r"/api/v1/users/me", "me"),
    ]
]
#: What ``GET /api/v1/users/me`` answers (the backend's UserInfo): one local user, and no
#: credits or rate limit are enforced (0).
LOCAL_USER = {
    "id": "local",
    "email": "local@localhost",
    "name": "Local user",
    "organization": None,
    "credits": 0,
    "rate_limit": 0,
}


class _Handler(BaseHTTPRequestHandler):
    """One request: route, authenticate, read JSON, call the LocalSpine, answer JSON."""

    protocol_version = "HTTP/1.1"
    server_version = "ai-spine-local"
    sys_version = ""
    # Buffer the answer so headers and body leave in one segment (flushed per request);
    # with TCP_NODELAY this avoids the 40 ms Nagle/delayed-ACK stall on keep-alive.
    wbufsize = 64 * 1024
    server: "_Server"

    def setup(self) -> None:
        super().setup()
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        self._dispatch("GET")

    def do_POST(self) -> None:  # noqa: N802
        self._dispatch("POST")

    def do_DELETE(self) -> None:  # noqa: N802
        self._dispatch("DELETE")

    def do_PUT(self) -> None:  # noqa: N802
        self._dispatch("PUT")

    def do_PATCH(self) -> None:  # noqa: N802
        self._dispatch("PATCH")

    def do_HEAD(
        self,
    ) -> None:  # noqa: N802 - no HEAD routes: 405/404 as FastAPI answers
        self._dispatch("HEAD")

    def do_OPTIONS(self) -> None:  # noqa: N802
        self._dispatch("OPTIONS")

    def send_error(
        self, code: int, message: Optional[str] = None, explain: Optional[str] = None
    ) -> None:
        """Answer errors http.server detects itself (bad request line, ...) as JSON too."""
        self.close_connection = True
        try:
            phrase = HTTPStatus(code).phrase
        except ValueError:
            phrase = "Error"
        data = json.dumps({"detail": message or phrase}).encode()
        self.send_response(code)
        self.send_header("Content-Type", _JSON)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD" and code >= 200 and code not in (204, 304):
            self.wfile.write(data)
        self.wfile.flush()

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        # Request lines go to logging (never headers, so never the API key).
        logger.debug("%s %s", self.address_string(), format % args)

    # ------------------------------------------------------------------ plumbing
    def _dispatch(self, method: str) -> None:
        request_id = uuid.uuid4().hex
        self._body_read = False
        try:
            parts = urlsplit(self.path)
            path = parts.path.rstrip("/") or "/"
            handler, params = self._route(method, path)
            if path not in _PUBLIC_PATHS:
                self._authenticate()
            body = self._read_body() if method in ("POST", "PUT", "PATCH") else None
            query = parse_qs(parts.query) if parts.query else {}
            status, payload = getattr(self, "_h_" + handler)(params, query, body)
        except _HTTPError as exc:
            self._send(exc.status, {"detail": exc.detail}, request_id, exc.headers)
        except AISpineError as exc:
            payload = (
                exc.body
                if isinstance(exc.body, dict) and "detail" in exc.body
                else None
            )
            self._send(_status_for(exc), payload or {"detail": exc.message}, request_id)
        except (
            Exception
        ):  # a bug: answer 500 without internals, keep the trace in the log
            logger.exception(
                "unhandled error for %s %s", method, self.path.split("?")[0]
            )
            self._send(500, {"detail": "Internal Server Error"}, request_id)
        else:
            self._send(status, payload, request_id)

    def _route(self, method: str, path: str) -> Tuple[str, Dict[str, str]]:
        allowed: List[str] = []
        for m, pattern, handler in _ROUTES:
            match = pattern.match(path)
            if match:
                if m == method:
                    return handler, {
                        k: unquote(v) for k, v in match.groupdict().items()
                    }
                allowed.append(m)
        if allowed:
            raise _HTTPError(405, "Method Not Allowed", {"Allow": ", ".join(allowed)})
        raise _HTTPError(404, "Not Found")

    def _authenticate(self) -> None:
        key = self.server.api_key
        if key is None:
            return
        header = self.headers.get("Authorization", "")
        scheme, _, token = header.partition(" ")
        if not header:
            raise _HTTPError(401, "Missing API key", {"WWW-Authenticate": "Bearer"})
        if scheme.lower() != "bearer" or not hmac.compare_digest(
            token.strip().encode(), key.encode()
        ):
            raise _HTTPError(401, "Invalid API key", {"WWW-Authenticate": "Bearer"})

    def _read_body(self) -> Any:
        self._body_read = True
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            self.close_connection = True
            raise _HTTPError(
                411, "Chunked bodies are not accepted; send Content-Length"
            )
        raw_length = self.headers.get("Content-Length", "0") or "0"
        try:
            length = int(raw_length)
        except ValueError:
            self.close_connection = True
            raise _HTTPError(400, "Invalid Content-Length header") from None
        if length < 0:
            self.close_connection = True
            raise _HTTPError(400, "Invalid Content-Length header")
        if length > self.server.max_body:
            # Read and drop a moderately large body so the client sees the 413 instead of a
            # broken pipe; refuse to read a huge one. Either way the connection closes.
            self.close_connection = True
            if length <= 8 * self.server.max_body:
                self._read_bytes(length)
            raise _HTTPError(
                413,
                f"Request body too large: {length} bytes (limit {self.server.max_body})",
            )
        data = self._read_bytes(length)
        if not data.strip():
            return None
        ctype = self.headers.get("Content-Type", "").split(";")[0].strip().lower()
        if ctype != _JSON and not (
            ctype.startswith("application/") and ctype.endswith("+json")
        ):
            raise _HTTPError(
                415, f"Content-Type must be {_JSON}, got {ctype or 'none'!r}"
            )
        try:
            return json.loads(data)
        except ValueError as exc:
            raise _HTTPError(
                422,
                [
                    {
                        "loc": ["body", getattr(exc, "pos", 0)],
                        "msg": f"JSON decode error: {getattr(exc, 'msg', exc)}",
                        "type": "json_invalid",
                    }
                ],
            ) from None

    def _read_bytes(self, length: int) -> bytes:
        """Read ``length`` body bytes (fewer if the client closes) within ``body_timeout``.

        A client that stops sending mid-body would otherwise hold this thread forever.
        """
        deadline = time.monotonic() + self.server.body_timeout
        chunks: List[bytes] = []
        remaining = length
        try:
            while remaining > 0:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise socket.timeout()
                self.connection.settimeout(left)
                chunk = self.rfile.read1(min(remaining, 65536))
                if not chunk:
                    break
                chunks.append(chunk)
                remaining -= len(chunk)
        except socket.timeout:
            self.close_connection = True
            raise _HTTPError(
                408,
                f"Request body not received within {self.server.body_timeout:g}s",
            ) from None
        finally:
            self.connection.settimeout(None)
        return b"".join(chunks)

    def _drop_unread_body(self) -> None:
        """Consume a body no route read (auth failure, 404, GET with a body).

        Left in the stream, it would be parsed as the next request on this keep-alive
        connection. A body that is not small or not delimited closes the connection instead.
        """
        if self._body_read:
            return
        self._body_read = True
        if self.headers.get("Transfer-Encoding"):
            self.close_connection = True
            return
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            length = -1
        if 0 < length <= self.server.max_body:
            try:
                self._read_bytes(length)
            except _HTTPError:  # too slow: the connection closes instead
                pass
        elif length != 0:
            self.close_connection = True

    def _send(
        self,
        status: int,
        payload: Any,
        request_id: str,
        headers: Optional[Dict[str, str]] = None,
    ) -> None:
        self._drop_unread_body()
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", _JSON)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("X-Request-ID", request_id)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    # ------------------------------------------------------------------ routes
    # Each returns (status, JSON payload); spine errors become HTTP errors in _dispatch.
    @property
    def spine(self) -> LocalSpine:
        return self.server.spine

    def _h_health(self, p: Dict[str, str], q: Any, b: Any) -> Tuple[int, Any]:
        return 200, self.spine.health_check()

    def _h_metrics(self, p: Dict[str, str], q: Any, b: Any) -> Tuple[int, Any]:
        return 200, self.spine.get_metrics()

    def _h_status(self, p: Dict[str, str], q: Any, b: Any) -> Tuple[int, Any]:
        return 200, self.spine.get_status()

    def _h_execute(self, p: Dict[str, str], q: Any, body: Any) -> Tuple[int, Any]:
        errors = validate_execute_request(body)
        if errors:
            raise _HTTPError(422, errors)
        key = self.headers.get("Idempotency-Key") or None
        priority, timeout = body.get("priority"), body.get("timeout")
        try:
            answer = self.spine.execute_flow(
                body["flow_id"],
                body["input_data"],
                body.get("metadata"),
                # Checked above as JSON integers (5.0 included); execute_flow takes ints.
                priority=None if priority is None else int(priority),
                timeout=None if timeout is None else int(timeout),
                idempotency_key=key,
            )
        except FlowNotFoundError as exc:
            return (
                200,
                exc.execution,
            )  # the backend answers an unknown flow with HTTP 200
        return 200, answer

    def _h_list_flows(self, p: Dict[str, str], q: Any, b: Any) -> Tuple[int, Any]:
        flows = self.spine.list_flows()
        return 200, {"flows": flows, "count": len(flows)}

    def _h_create_flow(self, p: Dict[str, str], q: Any, body: Any) -> Tuple[int, Any]:
        _check_flow_body(body, require_id=True)
        # A taken id is register_flow's 409 (checked under the spine's lock, so no race).
        definition = self.spine.register_flow(
            body["flow_id"],
            body["spec"],
            name=body.get("name"),
            description=body.get("description"),
        )
        return 201, definition

    def _h_update_flow(self, p: Dict[str, str], q: Any, body: Any) -> Tuple[int, Any]:
        _check_flow_body(body, require_id=False)
        if body.get("flow_id", p["flow_id"]) != p["flow_id"]:
            raise _HTTPError(
                422,
                [
                    {
                        "loc": ["body", "flow_id"],
                        "msg": f"flow_id must be the path's {p['flow_id']!r} (ids are fixed)",
                        "type": "value_error",
                    }
                ],
            )
        definition = self.spine.update_flow(
            p["flow_id"],
            body["spec"],
            name=body.get("name"),
            description=body.get("description"),
        )
        return 200, definition

    def _h_get_flow(self, p: Dict[str, str], q: Any, b: Any) -> Tuple[int, Any]:
        return 200, self.spine.get_flow(p["flow_id"])

    def _h_delete_flow(self, p: Dict[str, str], q: Any, b: Any) -> Tuple[int, Any]:
        self.spine.unregister_flow(p["flow_id"])
        return 200, {
            "message": f"Flow '{p['flow_id']}' deleted",
            "flow_id": p["flow_id"],
        }

    def _h_list_executions(
        self, p: Dict[str, str], q: Dict[str, List[str]], b: Any
    ) -> Tuple[int, Any]:
        limit = _query_int(q, "limit", 20)
        offset = _query_int(q, "offset", 0)
        status = q.get("status", [None])[-1]
        items, total = self.spine._page(limit, offset, status)
        return 200, {
            "executions": items,
            "count": len(items),
            "total": total,
            "limit": limit,
            "offset": offset,
        }

    def _h_get_execution(self, p: Dict[str, str], q: Any, b: Any) -> Tuple[int, Any]:
        return 200, self.spine.get_execution(p["execution_id"])

    def _h_cancel(self, p: Dict[str, str], q: Any, b: Any) -> Tuple[int, Any]:
        return 200, self.spine.cancel_execution(p["execution_id"])

    def _h_results(self, p: Dict[str, str], q: Any, b: Any) -> Tuple[int, Any]:
        return 200, self.spine.get_execution_results(p["execution_id"])

    def _h_messages(
        self, p: Dict[str, str], q: Dict[str, List[str]], b: Any
    ) -> Tuple[int, Any]:
        limit = _query_int(q, "limit", 100)
        offset = _query_int(q, "offset", 0)
        errors = validate_page_request(limit, offset)
        if errors:
            raise _HTTPError(422, errors)
        results = self.spine.get_execution_results(p["execution_id"])
        # Local runs keep no inter-agent messages: each node's outcome is one message.
        messages = [
            dict(node_id=node_id, **outcome)
            for node_id, outcome in results["node_results"].items()
        ]
        page = messages[offset : offset + limit]
        return 200, {
            "execution_id": results["execution_id"],
            "messages": page,
            "count": len(page),
            "total": len(messages),
            "limit": limit,
            "offset": offset,
        }

    def _h_me(self, p: Dict[str, str], q: Any, b: Any) -> Tuple[int, Any]:
        return 200, dict(LOCAL_USER)

    def _h_list_agents(self, p: Dict[str, str], q: Any, b: Any) -> Tuple[int, Any]:
        agents = self.spine.list_agents()
        return 200, {"agents": agents, "count": len(agents)}

    def _h_active_agents(self, p: Dict[str, str], q: Any, b: Any) -> Tuple[int, Any]:
        agents = [a for a in self.spine.list_agents() if a.get("is_active")]
        return 200, {"agents": agents, "count": len(agents)}

    def _h_create_agent(self, p: Dict[str, str], q: Any, body: Any) -> Tuple[int, Any]:
        if isinstance(body, dict) and "handler" in body:
            raise _HTTPError(
                422,
                [
                    {
                        "loc": ["body", "handler"],
                        "msg": "not accepted over HTTP",
                        "type": "extra",
                    }
                ],
            )
        return 200, self.spine.create_agent(body)

    def _h_get_agent(self, p: Dict[str, str], q: Any, b: Any) -> Tuple[int, Any]:
        return 200, self.spine.get_agent(p["agent_id"])

    def _h_delete_agent(self, p: Dict[str, str], q: Any, b: Any) -> Tuple[int, Any]:
        self.spine.delete_agent(p["agent_id"])
        return 200, {
            "message": f"Agent '{p['agent_id']}' unregistered",
            "success": True,
        }


def _check_flow_body(body: Any, require_id: bool) -> None:
    """Check a create/update flow body (``flow_id`` required when ``require_id``)."""
    if not isinstance(body, dict):
        raise _HTTPError(
            422,
            [
                {
                    "loc": ["body"],
                    "msg": "Input should be a valid dictionary",
                    "type": "dict_type",
                }
            ],
        )
    errors = []
    for key in ("flow_id", "spec") if require_id else ("spec",):
        if key not in body:
            errors.append(
                {"loc": ["body", key], "msg": "Field required", "type": "missing"}
            )
    if "spec" in body and not isinstance(body["spec"], dict):
        errors.append(
            {
                "loc": ["body", "spec"],
                "msg": "spec must be a GraphSpec object",
                "type": "dict_type",
            }
        )
    for key in ("name", "description"):
        if body.get(key) is not None and not isinstance(body[key], str):
            errors.append(
                {
                    "loc": ["body", key],
                    "msg": "Input should be a valid string",
                    "type": "string_type",
                }
            )
    if errors:
        raise _HTTPError(422, errors)


class _Server(ThreadingHTTPServer):
    """Threaded HTTP server that knows its open connections, so shutdown can end them."""

    daemon_threads = True
    allow_reuse_address = True
    spine: LocalSpine
    api_key: Optional[str]
    max_body: int
    body_timeout: float

    def __init__(self, address: Tuple[str, int], handler: Any) -> None:
        super().__init__(address, handler)
        self._open: Dict[socket.socket, threading.Thread] = {}
        self._open_lock = threading.Lock()

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
            thread.join(max(0.0, deadline - time.monotonic()))


class SpineServer:
    """A LocalSpine served over HTTP with the backend's routes.

    Args:
        spine: The LocalSpine to serve.
        host: Interface to bind (loopback unless told otherwise).
        port: TCP port; 0 picks a free one (read it back from :attr:`port` / :attr:`url`).
        api_key: When set, requests must send ``Authorization: Bearer <api_key>``.
        max_body: Largest request body accepted, in bytes (larger answers 413).
        body_timeout: Seconds a client has to send a request body (slower answers 408).

    Raises:
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
    ) -> None:
        if api_key is not None and not api_key:
            raise ValidationError("api_key must be a non-empty string or None")
        self.spine = spine
        self._httpd = _Server((host, port), _Handler)
        self._httpd.spine = spine
        self._httpd.api_key = api_key
        self._httpd.max_body = max_body
        self._httpd.body_timeout = body_timeout
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
        return (
            f"http://[{host}]:{self.port}"
            if ":" in host
            else f"http://{host}:{self.port}"
        )

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


# ---------------------------------------------------------------------------- CLI


class _UsageError(Exception):
    pass


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> Any:  # one line, no usage dump
        raise _UsageError(message)


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="ai-spine serve",
        description="Serve local spark_core flows over HTTP with the AI Spine backend's API.",
    )
    parser.add_argument(
        "--flows",
        action="append",
        default=[],
        metavar="MODULE:OBJECT",
        help="flows to serve: a LocalSpine, a {flow_id: graph|factory|spec} dict, or a "
        "zero-argument callable returning one (repeatable)",
    )
    parser.add_argument(
        "--host", default="127.0.0.1", help="interface (default 127.0.0.1)"
    )
    parser.add_argument(
        "--port",
        type=int,
        default=8000,
        help="TCP port (default 8000; 0 picks a free one)",
    )
    parser.add_argument(
        "--api-key",
        default=None,
        help="require 'Authorization: Bearer KEY' (or set AI_SPINE_SERVE_API_KEY)",
    )
    parser.add_argument(
        "--db", default=None, metavar="FILE", help="SQLite file for executions"
    )
    parser.add_argument("--demo", action="store_true", help="register the demo flows")
    parser.add_argument(
        "--allow-module",
        action="append",
        default=[],
        metavar="PREFIX",
        help="let spec flows import node classes and tools from this module prefix "
        "(repeatable; default: spark_core node types only, no tools)",
    )
    parser.add_argument(
        "--max-concurrency",
        type=int,
        default=None,  # None: not given (64), so a LocalSpine from --flows can refuse it
        help="executions running at once (default 64)",
    )
    parser.add_argument(
        "--max-executions",
        type=int,
        default=None,
        metavar="N",
        help=f"finished executions kept in memory (default {DEFAULT_MAX_EXECUTIONS}; older "
        "ones are read back from --db, or forgotten without it; 0: no bound)",
    )
    parser.add_argument(
        "--grace",
        type=float,
        default=10.0,
        help="seconds to let executions finish on shutdown",
    )
    parser.add_argument(
        "-v",
        "--verbose",
        action="store_true",
        help="log every request line and status to stderr (never headers or bodies)",
    )
    return parser


def _load_object(ref: str) -> Any:
    module_name, sep, attr = ref.partition(":")
    if not sep or not module_name or not attr:
        raise _UsageError(f"--flows expects MODULE:OBJECT, got {ref!r}")
    if os.getcwd() not in sys.path and "" not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        obj: Any = importlib.import_module(module_name)
    except Exception as exc:
        raise _UsageError(
            f"--flows {ref}: cannot import {module_name!r}: {exc}"
        ) from None
    for part in attr.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise _UsageError(
                f"--flows {ref}: {module_name!r} has no {attr!r}"
            ) from None
    return obj


def _load_flows(ref: str) -> Any:
    """Return what ``--flows ref`` names: a LocalSpine or a ``{flow_id: source}`` mapping."""
    obj = _load_object(ref)
    if callable(obj) and not isinstance(obj, LocalSpine) and not _looks_like_graph(obj):
        try:
            obj = obj()
        except Exception as exc:
            raise _UsageError(f"--flows {ref}: calling it failed: {exc}") from None
    if not isinstance(obj, (LocalSpine, Mapping)):
        raise _UsageError(
            f"--flows {ref}: expected a LocalSpine or a dict of flows, got {type(obj).__name__}"
        )
    return obj


def _build_spine(args: argparse.Namespace) -> LocalSpine:
    """The LocalSpine to serve, its flows registered before it reopens ``--db``.

    The flows must be there when the execution store is opened: interrupted runs of a
    durable flow are resumed then, and runs of flows it does not know are marked failed.
    """
    given: List[LocalSpine] = []
    flows: Dict[str, Any] = {}
    for ref in args.flows:
        obj = _load_flows(ref)
        if isinstance(obj, LocalSpine):
            given.append(obj)
            continue
        for flow_id, source in obj.items():
            if flow_id in flows:
                raise _UsageError(f"--flows {ref}: flow {flow_id!r} is given twice")
            flows[flow_id] = source
    if given:
        spine = given[0]
        try:
            _refuse_options_for(given, args)
            for flow_id, source in flows.items():
                spine.register_flow(flow_id, source)
        except BaseException:
            for other in given:
                other.close()  # release their stores before the process exits
            raise
    else:
        spine = LocalSpine(
            flows,
            db=args.db,
            max_concurrency=(
                64 if args.max_concurrency is None else args.max_concurrency
            ),
            max_executions=(
                DEFAULT_MAX_EXECUTIONS
                if args.max_executions is None
                else args.max_executions or None
            ),
            allow_modules=args.allow_module,
        )
    if args.demo:
        from ai_spine.demo import register_demo_flows

        try:
            register_demo_flows(spine)
        except BaseException:
            spine.close()
            raise
    return spine


def _refuse_options_for(given: List[LocalSpine], args: argparse.Namespace) -> None:
    """A LocalSpine from --flows was configured in Python: refuse what would not apply."""
    if len(given) > 1:
        raise _UsageError("only one --flows may give a LocalSpine")
    for option, value in (
        ("--db", args.db),
        ("--max-concurrency", args.max_concurrency),
        ("--max-executions", args.max_executions),
        ("--allow-module", args.allow_module),
    ):
        if value not in (None, []):
            raise _UsageError(
                f"{option} cannot apply to the LocalSpine given by --flows: pass it to "
                "that LocalSpine in Python instead"
            )


def _looks_like_graph(obj: Any) -> bool:
    return hasattr(obj, "nodes") and hasattr(obj, "edges")


def serve_main(argv: List[str]) -> int:
    """Run ``ai-spine serve`` until SIGINT/SIGTERM.

    Args:
        argv: The arguments after ``serve``.

    Returns:
        The exit status: 0 after a clean shutdown, 2 for bad arguments or an unusable address.
    """
    try:
        args = _parser().parse_args(argv)
    except _UsageError as exc:
        print(f"ai-spine serve: error: {exc}", file=sys.stderr)
        return 2
    except SystemExit as exc:  # --help
        return int(exc.code or 0)
    api_key = args.api_key or os.environ.get("AI_SPINE_SERVE_API_KEY") or None
    verbose: Optional[logging.Handler] = None
    level = logger.level
    if args.verbose:
        verbose = logging.StreamHandler(sys.stderr)
        verbose.setFormatter(logging.Formatter("%(asctime)s %(message)s"))
        logger.addHandler(verbose)
        logger.setLevel(logging.DEBUG)
    try:
        return _serve(args, api_key)
    finally:  # in-process callers (tests) get the logger back as it was
        if verbose is not None:
            logger.removeHandler(verbose)
            logger.setLevel(level)


def _serve(args: argparse.Namespace, api_key: Optional[str]) -> int:
    spine: Optional[LocalSpine] = None
    try:
        if not 0 <= args.port <= 65535:
            raise _UsageError(f"--port must be 0-65535, got {args.port}")
        spine = _build_spine(args)
        server = SpineServer(spine, args.host, args.port, api_key=api_key)
    except (_UsageError, AISpineError, OSError) as exc:
        if spine is not None:  # release its execution store (and loop) before exiting
            spine.close()
        if isinstance(exc, OSError):
            message = f"cannot listen on {args.host}:{args.port}: {exc.strerror or exc}"
        else:
            message = str(exc)
        print(f"ai-spine serve: error: {message}", file=sys.stderr)
        return 2
    return _run_until_signalled(server, args.grace)


def _run_until_signalled(server: SpineServer, grace: float) -> int:
    stop = threading.Event()

    def on_signal(signum: int, frame: Optional[FrameType]) -> None:
        stop.set()

    previous: Dict[signal.Signals, Any] = {}
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGINT, signal.SIGTERM):
            previous[sig] = signal.signal(sig, on_signal)
    flows = ", ".join(f["flow_id"] for f in server.spine.list_flows()) or "none"
    auth = " (API key required)" if server._httpd.api_key else ""
    print(
        f"ai-spine serve: listening on {server.url}{auth}; flows: {flows}", flush=True
    )
    server.start()
    try:
        while not stop.wait(0.5):
            pass
    except KeyboardInterrupt:  # pragma: no cover - when signals could not be installed
        pass
    finally:
        print("ai-spine serve: shutting down", flush=True)
        server.shutdown(close_spine=True, grace=grace)
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 0
