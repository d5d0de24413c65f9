"""A fake OpenAI-compatible chat-completions server on 127.0.0.1 (standard library only).

It plays back a script of replies (text, tool calls, or HTTP errors), records every request it
receives (path, headers, JSON body) and stops when the test is done.
"""

from __future__ import annotations

import json
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable, Dict, Iterable, List, Mapping, Optional, Sequence


def reply(
    text: Optional[str] = None,
    tool_calls: Sequence[Mapping[str, Any]] = (),
    *,
    prompt_tokens: int = 10,
    completion_tokens: int = 5,
) -> Dict[str, Any]:
    """A scripted 200 reply: text and/or tool calls ``{"name", "arguments", "id"?}``."""
    return {
        "text": text,
        "tool_calls": [dict(c) for c in tool_calls],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
        },
    }


def error(
    status: int, message: str = "boom", headers: Optional[Mapping[str, str]] = None
) -> Dict[str, Any]:
    """A scripted HTTP error with an OpenAI-shaped body."""
    return {"status": status, "message": message, "headers": dict(headers or {})}


def raw(payload: Any, *, delay: float = 0.0, status: int = 200) -> Dict[str, Any]:
    """A scripted answer with this exact body (a str is sent as is, not as JSON)."""
    return {"raw": payload, "delay": delay, "raw_status": status}


def slow(step: Mapping[str, Any], delay: float) -> Dict[str, Any]:
    """The same step, answered after ``delay`` seconds."""
    return {**step, "delay": delay}


class _QuietServer(ThreadingHTTPServer):
    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a client that timed out and hung up is expected here


class FakeOpenAIServer:
    """Serve ``POST /v1/chat/completions`` from a script, on a free loopback port.

    Use as a context manager; ``base_url`` is what to give ``OpenAIModel``.
    """

    def __init__(
        self, script: Sequence[Mapping[str, Any]] = (), *, keep_alive: bool = False
    ) -> None:
        self.script: List[Dict[str, Any]] = [dict(s) for s in script]
        self.requests: List[Dict[str, Any]] = []
        self._lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            # HTTP/1.1 keeps the connection open between answers (the client pools it).
            protocol_version = "HTTP/1.1" if keep_alive else "HTTP/1.0"

            def log_message(
                self, format: str, *args: Any
            ) -> None:  # keep test output clean
                pass

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length)
                try:
                    body = json.loads(raw)
                except ValueError:
                    body = None
                with server._lock:
                    server.requests.append(
                        {
                            "path": self.path,
                            "headers": dict(self.headers),
                            "body": body,
                            "client": self.client_address,
                        }
                    )
                    step = server.script.pop(0) if server.script else None
                if step is not None and step.get("delay"):
                    server._stopping.wait(step["delay"])  # a slow model (timeouts)
                if self.path != "/v1/chat/completions":
                    self._send(404, {"error": {"message": f"no route {self.path}"}})
                elif step is None:
                    self._send(
                        500, {"error": {"message": "fake server script exhausted"}}
                    )
                elif "raw" in step:
                    self._send(step["raw_status"], step["raw"])
                elif "status" in step:
                    self._send(
                        step["status"],
                        {"error": {"message": step["message"]}},
                        step["headers"],
                    )
                else:
                    self._send(200, server._completion(step, body or {}))

            def _send(
                self,
                status: int,
                payload: Any,
                headers: Optional[Mapping[str, str]] = None,
            ) -> None:
                data = (
                    payload if isinstance(payload, str) else json.dumps(payload)
                ).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.send_header("x-request-id", f"req-{len(server.requests)}")
                for key, value in (headers or {}).items():
                    self.send_header(key, value)
                self.end_headers()
                self.wfile.write(data)

        self._stopping = threading.Event()
        self._httpd = _QuietServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(
            target=self._httpd.serve_forever,
            kwargs={"poll_interval": 0.02},
            daemon=True,
        )

    @property
    def base_url(self) -> str:
        port = self._httpd.server_address[1]
        return f"http://127.0.0.1:{port}/v1"

    def add(self, *steps: Mapping[str, Any]) -> None:
        with self._lock:
            self.script.extend(dict(s) for s in steps)

    def _completion(
        self, step: Mapping[str, Any], body: Mapping[str, Any]
    ) -> Dict[str, Any]:
        calls = []
        for index, call in enumerate(step.get("tool_calls") or ()):
            arguments = call.get("arguments", {})
            calls.append(
                {
                    "id": call.get("id", f"call_{len(self.requests)}_{index}"),
                    "type": "function",
                    "function": {
                        "name": call["name"],
                        "arguments": (
                            arguments
                            if isinstance(arguments, str)
                            else json.dumps(arguments)
                        ),
                    },
                }
            )
        message: Dict[str, Any] = {"role": "assistant", "content": step.get("text")}
        if calls:
            message["tool_calls"] = calls
        return {
            "id": f"chatcmpl-{len(self.requests)}",
            "object": "chat.completion",
            "model": body.get("model", "fake"),
            "choices": [
                {
                    "index": 0,
                    "message": message,
                    "finish_reason": "tool_calls" if calls else "stop",
                }
            ],
            "usage": step.get("usage", {"prompt_tokens": 1, "completion_tokens": 1}),
        }

    def start(self) -> FakeOpenAIServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> FakeOpenAIServer:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()


class PacedServer:
    """A raw HTTP server on 127.0.0.1 that sends each answer in pieces, with a pause between.

    ``answer()`` returns the bytes to send to one connection (status line, headers and body)
    as an iterable of pieces, so a test can trickle headers or a body, or stream far more
    than it keeps in memory. For each connection the server records how many bytes it sent
    and whether it sent them all (``sent`` / ``finished``, in connection order).
    """

    def __init__(
        self, answer: Callable[[], Iterable[bytes]], *, pause: float = 0.0
    ) -> None:
        self._answer = answer
        self._pause = pause
        self.sent: List[int] = []
        self.finished: List[bool] = []
        self._stopping = threading.Event()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(
            0.05
        )  # to notice stop(): close() does not wake accept()
        self._threads: List[threading.Thread] = []
        self._accepter = threading.Thread(target=self._accept, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._listener.getsockname()[1]}/v1"

    def _accept(self) -> None:
        while not self._stopping.is_set():
            try:
                conn, _ = self._listener.accept()
            except socket.timeout:
                continue
            except OSError:  # the listener was closed: stop
                return
            index = len(self.sent)
            self.sent.append(0)
            self.finished.append(False)
            thread = threading.Thread(
                target=self._serve, args=(conn, index), daemon=True
            )
            self._threads.append(thread)
            thread.start()

    def _serve(self, conn: socket.socket, index: int) -> None:
        with conn:
            conn.settimeout(10)
            try:
                self._read_request(conn)
                for piece in self._answer():
                    conn.sendall(piece)
                    self.sent[index] += len(piece)
                    if self._pause and self._stopping.wait(self._pause):
                        return
                self.finished[index] = True
            except OSError:  # the client hung up (what the tests look for)
                return

    @staticmethod
    def _read_request(conn: socket.socket) -> None:
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = conn.recv(65536)
            if not chunk:
                raise ConnectionError("client closed before its request")
            data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        length = 0
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        while len(body) < length:
            chunk = conn.recv(65536)
            if not chunk:
                raise ConnectionError("client closed during its request")
            body += chunk

    def wait(self, timeout: float = 10.0) -> None:
        """Wait until every connection's handler has ended (sent all, or saw a hang-up)."""
        for thread in list(self._threads):
            thread.join(timeout)

    def start(self) -> PacedServer:
        self._accepter.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        self._listener.close()
        self._accepter.join(timeout=5)
        self.wait(5)

    def __enter__(self) -> PacedServer:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()


def http_answer(
    body: bytes, *, length: Optional[int] = None, status: str = "200 OK"
) -> bytes:
    """The status line and headers of an answer (``length`` None: no Content-Length)."""
    lines = [f"HTTP/1.1 {status}", "Content-Type: application/json"]
    if length is not None:
        lines.append(f"Content-Length: {length}")
    lines.append("Connection: close")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body
