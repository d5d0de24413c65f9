"""Fixtures for the spec tests: a stand-in AI Spine flow-registration server."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Dict, Iterator, List, Tuple

import pytest


class FlowServer:
    """Records POST /api/v1/flows requests and answers with a chosen status and body."""

    def __init__(self) -> None:
        self.requests: List[Dict[str, Any]] = []
        self.reply: Tuple[int, Any] = (201, None)
        self.flows: Dict[str, Any] = {}
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server naming
                length = int(self.headers.get("Content-Length", "0"))
                body = json.loads(self.rfile.read(length) or b"null")
                outer.requests.append(
                    {"path": self.path, "headers": dict(self.headers), "body": body}
                )
                status, payload = outer.reply
                if payload is None and status == 201:
                    if body["flow_id"] in outer.flows:
                        status, payload = 409, {"detail": "Flow already exists"}
                    else:
                        payload = {"flow_id": body["flow_id"], "name": body["name"]}
                        outer.flows[body["flow_id"]] = payload
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> "FlowServer":
        self.thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join()


@pytest.fixture
def flow_server() -> Iterator[FlowServer]:
    """A running stand-in server on a free loopback port, stopped after the test."""
    with FlowServer() as server:
        yield server
