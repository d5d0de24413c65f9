"""A loopback OTLP/HTTP receiver: decodes what an exporter posts to ``/v1/traces``.

It answers like a collector (an empty ``ExportTraceServiceResponse``) and keeps every span
it got, decoded from protobuf with ``opentelemetry-proto``, with the request headers.
"""

from __future__ import annotations

import gzip
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Dict, List

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)


class OTLPReceiver:
    """Start with ``with OTLPReceiver() as receiver:``; ``receiver.endpoint`` is its URL."""

    def __init__(self) -> None:
        self.requests: List[ExportTraceServiceRequest] = []
        self.headers: List[Dict[str, str]] = []
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - the http.server name
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                if self.headers.get("Content-Encoding") == "gzip":
                    body = gzip.decompress(body)
                request = ExportTraceServiceRequest()
                request.ParseFromString(body)
                with receiver._lock:
                    receiver.requests.append(request)
                    receiver.headers.append(
                        {k.lower(): v for k, v in self.headers.items()}
                    )
                answer = ExportTraceServiceResponse().SerializeToString()
                self.send_response(200 if self.path == "/v1/traces" else 404)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def endpoint(self) -> str:
        """The base URL (what ``OTEL_EXPORTER_OTLP_ENDPOINT`` takes)."""
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def spans(self) -> List[Any]:
        """Every span received, with ``resource`` and ``scope`` of its batch."""
        out = []
        with self._lock:
            for request in self.requests:
                for resource_spans in request.resource_spans:
                    for scope_spans in resource_spans.scope_spans:
                        for span in scope_spans.spans:
                            out.append(
                                (resource_spans.resource, scope_spans.scope, span)
                            )
        return out

    def __enter__(self) -> OTLPReceiver:
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()
