"""``ai-spine serve`` against hostile clients: framing, slow and idle connections, limits.

Real servers on 127.0.0.1, raw sockets where a well-behaved client could not send the
request. Each test is one defect of issue 14 and failed before it was fixed.
"""

from __future__ import annotations

import json
import socket
from typing import Callable, Iterator, List, Tuple

import pytest

from ai_spine.local import LocalSpine
from ai_spine.server import SpineServer
from tests.local.flows import Hooks, make_flows

# A body that is itself a request: a server that left it in the stream would answer it too.
SMUGGLED = b"GET /api/v1/flows HTTP/1.1\r\nHost: localhost\r\n\r\n"


@pytest.fixture
def spine() -> Iterator[LocalSpine]:
    local = LocalSpine(make_flows(Hooks()))
    yield local
    local.close(timeout=2)


def exchange(srv: SpineServer, data: bytes) -> List[Tuple[int, bytes]]:
    """Send ``data``, close the sending side, and return every (status, head) answered."""
    with socket.create_connection((srv.host, srv.port), timeout=10) as sock:
        sock.sendall(data)
        sock.shutdown(socket.SHUT_WR)
        received = b""
        while chunk := sock.recv(65536):
            received += chunk
    answers = []
    for part in received.split(b"HTTP/1.1 ")[1:]:
        answers.append((int(part[:3]), part.partition(b"\r\n\r\n")[0]))
    return answers


def read_until_closed(sock: socket.socket) -> bytes:
    received = b""
    while chunk := sock.recv(65536):
        received += chunk
    return received


# ---------------------------------------------------------------- 3. request desync
@pytest.mark.parametrize(
    "framing",
    [
        b"Transfer-Encoding: gzip, chunked\r\n",
        b"Transfer-Encoding: Chunked \r\n",
        b"Transfer-Encoding: x\r\n",
        b"Transfer-Encoding: chunked\r\nTransfer-Encoding: identity\r\n",
        b"Content-Length: 2\r\nContent-Length: 2\r\n",
        b"Content-Length: 2\r\nContent-Length: 40\r\n",
        b"Content-Length: +2\r\n",
        b"Content-Length : 2\r\n",
    ],
)
def test_ambiguous_body_framing_is_refused_and_the_connection_closed(
    spine: LocalSpine, framing: bytes
) -> None:
    body = b"{}" + SMUGGLED
    request = (
        b"POST /api/v1/flows/execute HTTP/1.1\r\nHost: localhost\r\n"
        b"Content-Type: application/json\r\n" + framing + b"\r\n" + body
    )
    with SpineServer(spine) as srv:
        answers = exchange(srv, request)
    assert [status for status, _ in answers] == [400]  # one answer: nothing smuggled
    assert b"Connection: close" in answers[0][1]


def test_exactly_chunked_is_still_411_and_closes(spine: LocalSpine) -> None:
    request = (
        b"POST /api/v1/flows/execute HTTP/1.1\r\nHost: localhost\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n" + SMUGGLED
    )
    with SpineServer(spine) as srv:
        assert [status for status, _ in exchange(srv, request)] == [411]
