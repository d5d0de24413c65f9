"""The WSGI application: in-process through wsgiref, and under a real gunicorn with 2 workers."""

from __future__ import annotations

import io
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Tuple
from wsgiref.util import setup_testing_defaults

import pytest

from ai_spine.exceptions import ValidationError
from ai_spine.server.wsgi import WORKER_HEADER, WSGIApp, make_app
from tests.local.http_util import call
from tests.pgcluster import free_port

ROOT = Path(__file__).resolve().parents[2]


def _wsgi(
    app: WSGIApp,
    method: str,
    target: str,
    body: Optional[Any] = None,
    headers: Optional[Dict[str, str]] = None,
) -> Tuple[str, Dict[str, str], Any]:
    path, _, query = target.partition("?")
    data = json.dumps(body).encode() if body is not None else b""
    environ: Dict[str, Any] = {
        "REQUEST_METHOD": method,
        "PATH_INFO": path,
        "QUERY_STRING": query,
        "wsgi.input": io.BytesIO(data),
    }
    if body is not None:
        environ["CONTENT_TYPE"] = "application/json"
        environ["CONTENT_LENGTH"] = str(len(data))
    for name, value in (headers or {}).items():
        environ["HTTP_" + name.upper().replace("-", "_")] = value
    setup_testing_defaults(environ)
    seen: Dict[str, Any] = {}

    def start_response(status: str, out: List[Tuple[str, str]]) -> None:
        seen["status"], seen["headers"] = status, dict(out)

    raw = b"".join(app(environ, start_response))
    assert seen["headers"]["Content-Length"] == str(len(raw))
    return seen["status"], seen["headers"], json.loads(raw)


@pytest.fixture
def app() -> Iterator[WSGIApp]:
    wsgi = make_app("tests.local.flows:served_flows", api_key="k", worker_header=True)
    yield wsgi
    wsgi.app.spine.close(timeout=2)


def test_wsgi_app_runs_and_reads_executions(app: WSGIApp) -> None:
    auth = {"Authorization": "Bearer k"}
    status, headers, started = _wsgi(
        app,
        "POST",
        "/api/v1/flows/execute",
        {"flow_id": "echo", "input_data": {"w": "sgi"}},
        auth,
    )
    assert status == "200 OK"
    assert headers[WORKER_HEADER] == str(os.getpid())
    app.app.spine.wait_for_execution(started["execution_id"], timeout=20)
    status, _, got = _wsgi(
        app, "GET", f"/api/v1/executions/{started['execution_id']}", headers=auth
    )
    assert status == "200 OK" and got["output_data"] == {"echo": {"w": "sgi"}}
    status, _, listed = _wsgi(app, "GET", "/api/v1/executions?limit=1", headers=auth)
    assert [e["execution_id"] for e in listed["executions"]] == [
        started["execution_id"]
    ]


def test_wsgi_app_keeps_the_servers_answers_for_errors(app: WSGIApp) -> None:
    assert _wsgi(app, "GET", "/api/v1/executions")[0] == "401 Unauthorized"
    assert _wsgi(app, "GET", "/health")[0] == "200 OK"
    auth = {"Authorization": "Bearer k"}
    assert _wsgi(app, "GET", "/nowhere", headers=auth)[0] == "404 Not Found"
    status, headers, body = _wsgi(
        app,
        "POST",
        "/api/v1/flows/execute",
        {"flow_id": "echo", "input_data": {"x": "y" * 2_000_000}},
        auth,
    )
    assert status == "413 Request Entity Too Large"
    assert headers["Connection"] == "close"
    assert "too large" in body["detail"]


def test_make_app_refuses_what_it_cannot_load() -> None:
    with pytest.raises(ValidationError, match="MODULE:OBJECT"):
        make_app("no-colon")
    with pytest.raises(ValidationError, match="not a LocalSpine"):
        make_app("tests.local.flows:served_spine")


class Gunicorn:
    """``gunicorn -w 2`` on a free loopback port, stopped by its master's pid."""

    def __init__(self, db: str) -> None:
        exe = shutil.which("gunicorn", path=os.path.dirname(sys.executable))
        assert exe, "gunicorn is in the dev extra"
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc = subprocess.Popen(
            [
                exe,
                "--workers",
                "2",
                "--bind",
                f"127.0.0.1:{self.port}",
                "--graceful-timeout",
                "5",
                'ai_spine.server.wsgi:make_app(flows="tests.local.flows:served_flows",'
                " worker_header=True, grace=1)",
            ],
            cwd=str(ROOT),
            env={**os.environ, "AI_SPINE_SERVE_DB": db},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        deadline = time.monotonic() + 60
        while True:
            try:
                if call("GET", self.url + "/health")[0] == 200:
                    return
            except OSError:
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise AssertionError(f"gunicorn did not start: {self.stderr}")
            time.sleep(0.1)

    def stop(self) -> int:
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
        try:
            _, self.stderr = self.proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            os.kill(self.proc.pid, signal.SIGKILL)
            _, self.stderr = self.proc.communicate()
        return self.proc.returncode

    stderr = ""


def _finish_request(
    sock: socket.socket, rest: bytes
) -> Tuple[int, Dict[str, str], Any]:
    sock.sendall(rest)
    data = b""
    while True:
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = dict(line.split(": ", 1) for line in lines[1:])
    return int(lines[0].split()[1]), headers, json.loads(body)


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_two_gunicorn_workers_serve_one_execution_list(pg_dsn: str) -> None:
    server = Gunicorn(pg_dsn)
    try:
        # A request whose first bytes are sent and the rest held back keeps the worker
        # that accepted it busy (sync workers serve one request at a time), so the next
        # request is served by the other worker.
        held = socket.create_connection(("127.0.0.1", server.port), timeout=30)
        held.sendall(b"POST ")
        time.sleep(0.3)
        status, headers, started = call(
            "POST",
            server.url + "/api/v1/flows/execute",
            json_body={"flow_id": "sleep", "input_data": {"seconds": 60}},
        )
        assert status == 200
        runner = headers[WORKER_HEADER]
        execution_id = started["execution_id"]
        deadline = time.monotonic() + 20
        while (
            call("GET", f"{server.url}/api/v1/executions/{execution_id}")[2]["status"]
            != "running"
        ):
            assert time.monotonic() < deadline, "the execution never started"
            time.sleep(0.05)
        status, headers, cancelled = _finish_request(
            held,
            f"/api/v1/executions/{execution_id}/cancel HTTP/1.1\r\n"
            f"Host: 127.0.0.1:{server.port}\r\nContent-Length: 0\r\n"
            "Connection: close\r\n\r\n".encode(),
        )
        held.close()
        assert status == 200 and cancelled["status"] == "cancelled"
        assert headers[WORKER_HEADER] != runner  # served by the other worker
        # Both workers list it as cancelled, and the worker running it stopped the run.
        seen: Dict[str, int] = {}
        deadline = time.monotonic() + 30
        while len(seen) < 2 or seen[runner] != 0:
            assert time.monotonic() < deadline, f"workers seen: {seen}"
            _, headers, metrics = call("GET", server.url + "/metrics")
            seen[headers[WORKER_HEADER]] = metrics["active_executions"]
            _, _, listed = call("GET", server.url + "/api/v1/executions")
            assert [(e["execution_id"], e["status"]) for e in listed["executions"]] == [
                (execution_id, "cancelled")
            ]
    finally:
        assert server.stop() == 0, server.stderr


def test_make_app_takes_a_dict_the_demo_and_a_raw_target() -> None:
    from tests.local.flows import served_flows

    wsgi = make_app(served_flows(), demo=True)
    try:
        ids = {f["flow_id"] for f in wsgi.app.spine.list_flows()}
        assert {"echo", "sleep", "sentiment", "word_stats"} <= ids
        seen: Dict[str, Any] = {}
        environ: Dict[str, Any] = {
            "REQUEST_METHOD": "GET",
            "RAW_URI": "/api/v1/flows/%65cho",  # gunicorn's target as sent
            "PATH_INFO": "/ignored",
            "wsgi.input": io.BytesIO(b""),
        }
        body = b"".join(wsgi(environ, lambda status, out: seen.update(status=status)))
        assert seen["status"] == "200 OK"
        assert json.loads(body)["flow_id"] == "echo"
        environ = {
            "REQUEST_METHOD": "POST",
            "PATH_INFO": "/api/v1/flows/execute",
            "CONTENT_TYPE": "application/json",
            "CONTENT_LENGTH": "many",
            "wsgi.input": io.BytesIO(b"{}"),
        }
        body = b"".join(wsgi(environ, lambda status, out: seen.update(status=status)))
        assert seen["status"] == "400 Bad Request"
        assert json.loads(body)["detail"] == "Bad Content-Length"
    finally:
        wsgi.app.spine.close(timeout=2)
