"""The server's edge paths, in process: bodies no route read, odd headers, limits, 500s."""

from __future__ import annotations

import http.client
import json
from typing import Any, Dict, Iterator, Optional, Tuple

import pytest

from ai_spine.local import LocalSpine
from ai_spine.server import SpineServer
from tests.local.flows import Hooks, make_flows

KEY = "edge-key-not-secret"


@pytest.fixture
def keyed() -> Iterator[SpineServer]:
    spine = LocalSpine(make_flows(Hooks()))
    with SpineServer(spine, api_key=KEY, max_body=4096) as srv:
        yield srv
    spine.close()


@pytest.fixture
def conn(keyed: SpineServer) -> Iterator[http.client.HTTPConnection]:
    """One keep-alive connection to ``keyed``."""
    connection = http.client.HTTPConnection(keyed.host, keyed.port, timeout=10)
    yield connection
    connection.close()


def exchange(
    conn: http.client.HTTPConnection,
    method: str,
    path: str,
    body: Optional[bytes] = None,
    headers: Optional[Dict[str, str]] = None,
) -> Tuple[int, Dict[str, str], Any]:
    conn.request(method, path, body=body, headers=headers or {})
    response = conn.getresponse()
    raw = response.read()
    return (
        response.status,
        dict(response.getheaders()),
        json.loads(raw) if raw else None,
    )


AUTH = {"Authorization": f"Bearer {KEY}"}
# A body that is itself a valid request: if the server left it in the stream, it would answer
# it as the next request on the connection.
SMUGGLED = b"GET /nope HTTP/1.1\r\nHost: x\r\n\r\n"


@pytest.mark.parametrize(
    "method, path, headers",
    [
        ("POST", "/api/v1/flows/execute", {}),  # 401 before the body is read
        ("POST", "/api/v1/nowhere", AUTH),  # 404 before the body is read
        ("GET", "/api/v1/flows", AUTH),  # a GET never reads its body
    ],
)
def test_a_body_no_route_read_is_not_parsed_as_the_next_request(
    conn: http.client.HTTPConnection,
    method: str,
    path: str,
    headers: Dict[str, str],
) -> None:
    sent = dict(headers, **{"Content-Type": "application/json"})
    first = exchange(conn, method, path, SMUGGLED, sent)[0]
    assert first in (200, 401, 404)
    status, _, body = exchange(conn, "GET", "/health")
    assert status == 200
    assert body["status"] == "healthy"
