"""The server's request -> response function, apart from any socket or server loop.

:class:`SpineApp` takes a :class:`Request` (method, target, headers, a way to read the body)
and returns a :class:`Response` (status, headers, JSON bytes). The stdlib server in
:mod:`ai_spine.server.stdlib` frames requests off sockets and calls it; a WSGI adapter would
call it the same way. In order, a request is checked for:

1. a well-formed target (``400``);
2. its ``Host`` when the app was told which hosts to accept (``400``; guards a key-less
   loopback server against DNS rebinding);
3. the API key, when one is set, on every path but ``/health`` (``401``), before the route
   is looked up, so nothing about the routes shows without a key;
4. the route (``404``, ``405``), then a JSON body for ``POST``/``PUT``/``PATCH`` (``415``,
   ``422 json_invalid`` for bad or too deeply nested JSON).

CORS is answered as the backend's middleware does (every origin, credentials allowed;
``OPTIONS`` preflights answered before authentication, since browsers send them without
credentials), except that a server without an API key allows only loopback origins, so a
web page elsewhere cannot drive a key-less local server.
"""

from __future__ import annotations

import hmac
import json
import logging
import uuid
from typing import Any, Callable, Dict, FrozenSet, List, Mapping, NamedTuple, Optional
from typing import Tuple
from urllib.parse import parse_qs, unquote, urlsplit

from ai_spine.exceptions import (
    AISpineError,
    AuthenticationError,
    NotFoundError,
    RateLimitError,
    ValidationError,
)
from ai_spine.local import LocalSpine
from ai_spine.server.routes import PUBLIC_PATHS, ROUTES, Call, Handler, HTTPError

__all__ = [
    "Request",
    "Response",
    "SpineApp",
    "MAX_JSON_DEPTH",
    "LOOPBACK_HOSTS",
    "escape_controls",
]

logger = logging.getLogger("ai_spine.server")

#: How deeply a request body's JSON may nest (objects and arrays).
MAX_JSON_DEPTH = 100
#: What a CORS preflight may ask for (the backend allows every method).
CORS_METHODS = "DELETE, GET, HEAD, OPTIONS, PATCH, POST, PUT"
#: Host names that reach a server bound to a loopback address.
LOOPBACK_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})
_JSON = "application/json"


class Request(NamedTuple):
    """One HTTP request as the app sees it.

    ``headers`` maps lower-case names to values (one value each: the connection layer
    refuses duplicates where they matter). ``read_body`` returns the body bytes; it may raise
    :class:`~ai_spine.server.routes.HTTPError` (too large, too slow), and the app calls it
    only for methods with a body, after authentication.
    """

    method: str
    target: str
    headers: Mapping[str, str]
    read_body: Callable[[], bytes]


class Response(NamedTuple):
    """An HTTP answer: status, headers, body bytes, and whether the connection must close."""

    status: int
    headers: List[Tuple[str, str]]
    body: bytes
    close: bool = False


class SpineApp:
    """Answer the AI Spine backend's routes from a LocalSpine.

    Args:
        spine: The LocalSpine behind the routes.
        api_key: When set, every route but ``/health`` needs
            ``Authorization: Bearer <api_key>`` (compared in constant time).
        allowed_hosts: Host names (without port) accepted in the ``Host`` header; None
            accepts any. A request without ``Host`` is accepted.
    """

    def __init__(
        self,
        spine: LocalSpine,
        api_key: Optional[str] = None,
        allowed_hosts: Optional[FrozenSet[str]] = None,
    ) -> None:
        if api_key is not None and not api_key:
            raise ValidationError("api_key must be a non-empty string or None")
        self.spine = spine
        self._key = api_key.encode() if api_key is not None else None
        self.allowed_hosts = allowed_hosts

    @property
    def requires_key(self) -> bool:
        """Whether requests need an API key."""
        return self._key is not None

    def __call__(self, request: Request) -> Response:
        """Answer one request (never raises: a bug answers 500 and is logged).

        Args:
            request: The request.

        Returns:
            The response.
        """
        request_id = uuid.uuid4().hex
        close = False
        headers: Dict[str, str] = {}
        origin = request.headers.get("origin")
        if (
            origin is not None
            and request.method == "OPTIONS"
            and "access-control-request-method" in request.headers
        ):
            try:
                self._check_host(request.headers.get("host"))
            except HTTPError as exc:
                data = json.dumps({"detail": exc.detail}).encode()
                return Response(
                    exc.status,
                    [("Content-Type", _JSON), ("X-Request-ID", request_id)],
                    data,
                )
            return self._preflight(request, origin, request_id)
        try:
            status, payload = self._answer(request)
        except HTTPError as exc:
            status, payload, headers = exc.status, {"detail": exc.detail}, exc.headers
            close = exc.close
        except AISpineError as exc:
            body = (
                exc.body
                if isinstance(exc.body, dict) and "detail" in exc.body
                else None
            )
            status, payload = _status_for(exc), body or {"detail": exc.message}
        except (
            Exception
        ):  # a bug: answer 500 without internals, keep the trace in the log
            logger.exception(
                "unhandled error for %s %s",
                request.method,
                escape_controls(request.target.split("?")[0]),
            )
            status, payload = 500, {"detail": "Internal Server Error"}
        data = json.dumps(payload).encode()
        out = [("Content-Type", _JSON), ("X-Request-ID", request_id)]
        out.extend(headers.items())
        if origin is not None and self._origin_allowed(origin):
            out.extend(self._cors_headers(origin, "cookie" in request.headers))
        return Response(status, out, data, close)

    def _origin_allowed(self, origin: str) -> bool:
        if self._key is not None:
            return True
        try:
            host = urlsplit(origin).hostname
        except ValueError:
            return False
        return host in LOOPBACK_HOSTS

    def _cors_headers(self, origin: str, cookie: bool) -> List[Tuple[str, str]]:
        """The backend's headers on an answer to a request with ``Origin``."""
        if self._key is None or cookie:  # name the origin; never "*" for these
            return [
                ("Access-Control-Allow-Origin", origin),
                ("Access-Control-Allow-Credentials", "true"),
                ("Vary", "Origin"),
            ]
        return [
            ("Access-Control-Allow-Origin", "*"),
            ("Access-Control-Allow-Credentials", "true"),
        ]

    def _preflight(self, request: Request, origin: str, request_id: str) -> Response:
        """Answer a CORS preflight as the backend does: 200 ``OK``, or 400 naming what."""
        headers = [
            ("Content-Type", "text/plain; charset=utf-8"),
            ("X-Request-ID", request_id),
            ("Vary", "Origin"),
            ("Access-Control-Allow-Methods", CORS_METHODS),
            ("Access-Control-Max-Age", "600"),
            ("Access-Control-Allow-Credentials", "true"),
        ]
        failures = []
        if self._origin_allowed(origin):
            headers.append(("Access-Control-Allow-Origin", origin))
        else:
            failures.append("origin")
        if request.headers["access-control-request-method"] not in CORS_METHODS.split(
            ", "
        ):
            failures.append("method")
        wanted = request.headers.get("access-control-request-headers")
        if wanted is not None:
            headers.append(("Access-Control-Allow-Headers", wanted))
        if failures:
            text = "Disallowed CORS " + ", ".join(failures)
            return Response(400, headers, text.encode())
        return Response(200, headers, b"OK")

    def _answer(self, request: Request) -> Tuple[int, Any]:
        try:
            parts = urlsplit(request.target)
        except ValueError:
            raise HTTPError(400, "Malformed request target") from None
        if not request.target.startswith("/") and not parts.scheme:
            raise HTTPError(400, "Malformed request target")
        self._check_host(request.headers.get("host"))
        path = parts.path.rstrip("/") or "/"
        if path not in PUBLIC_PATHS:
            self._authenticate(request.headers.get("authorization", ""))
        handler, params = _route(request.method, path)
        body = None
        if request.method in ("POST", "PUT", "PATCH"):
            body = _decode(request.read_body(), request.headers.get("content-type", ""))
        query = parse_qs(parts.query) if parts.query else {}
        call = Call(params, query, body, request.headers)
        try:
            return handler(self.spine, call)
        except HTTPError as exc:
            _add_inputs(exc.detail, call)
            raise
        except AISpineError as exc:
            if isinstance(exc.body, dict):
                _add_inputs(exc.body.get("detail"), call)
            raise

    def _check_host(self, host: Optional[str]) -> None:
        if self.allowed_hosts is None or host is None:
            return
        name = host.strip().lower()
        if name.startswith("["):  # [::1]:8000
            name = name[1 : name.find("]")] if "]" in name else ""
        elif name.count(":") == 1:
            name = name.partition(":")[0]
        if name not in self.allowed_hosts:
            raise HTTPError(
                400,
                "Host not allowed: a server on loopback without an API key answers "
                "loopback host names only",
            )

    def _authenticate(self, header: str) -> None:
        if self._key is None:
            return
        scheme, _, token = header.partition(" ")
        if not header:
            raise HTTPError(401, "Missing API key", {"WWW-Authenticate": "Bearer"})
        if scheme.lower() != "bearer" or not hmac.compare_digest(
            token.strip().encode(), self._key
        ):
            raise HTTPError(401, "Invalid API key", {"WWW-Authenticate": "Bearer"})


def _route(method: str, path: str) -> Tuple[Handler, Dict[str, str]]:
    allowed: List[str] = []
    for route in ROUTES:
        match = route.pattern.match(path)
        if match:
            if route.method == method:
                return route.handler, {
                    k: unquote(v) for k, v in match.groupdict().items()
                }
            allowed.append(route.method)
    if allowed:
        raise HTTPError(405, "Method Not Allowed", {"Allow": ", ".join(allowed)})
    raise HTTPError(404, "Not Found")


def _decode(data: bytes, content_type: str) -> Any:
    """A request body's JSON (None when empty), refused when not JSON or nested too deep."""
    if not data.strip():
        return None
    ctype = content_type.split(";")[0].strip().lower()
    if ctype != _JSON and not (
        ctype.startswith("application/") and ctype.endswith("+json")
    ):
        raise HTTPError(415, f"Content-Type must be {_JSON}, got {ctype or 'none'!r}")
    try:
        value = json.loads(data)
    except RecursionError:
        value = _TOO_DEEP
    except ValueError as exc:
        raise HTTPError(
            422,
            [
                {
                    "loc": ["body", getattr(exc, "pos", 0)],
                    "msg": f"JSON decode error: {getattr(exc, 'msg', exc)}",
                    "type": "json_invalid",
                    "input": {},
                    "ctx": {"error": str(getattr(exc, "msg", exc))},
                }
            ],
        ) from None
    if value is _TOO_DEEP or _depth_exceeds(value, MAX_JSON_DEPTH):
        raise HTTPError(
            422,
            [
                {
                    "loc": ["body"],
                    "msg": f"JSON nested deeper than {MAX_JSON_DEPTH} levels",
                    "type": "json_invalid",
                    "input": {},
                    "ctx": {"error": "recursion limit exceeded"},
                }
            ],
        )
    return value


_TOO_DEEP = object()


def _depth_exceeds(value: Any, limit: int) -> bool:
    """Whether ``value`` nests objects/arrays more than ``limit`` deep (no recursion)."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children: Any = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        if depth > limit:
            return True
        stack.extend((child, depth + 1) for child in children)
    return False


def _add_inputs(items: Any, call: Call) -> None:
    """Give each 422 entry the ``input`` pydantic would report (in place)."""
    if not isinstance(items, list):
        return
    sources: Dict[str, Any] = {
        "body": call.body,
        "query": {k: v[-1] for k, v in call.query.items()},
        "path": call.params,
        "header": dict(call.headers),
    }
    for item in items:
        if not isinstance(item, dict) or "input" in item:
            continue
        loc = item.get("loc") or []
        if not loc or loc[0] not in sources:
            continue
        value = sources[loc[0]]
        for key in loc[1:]:
            if isinstance(value, dict) and isinstance(key, str):
                key = key.lower() if loc[0] == "header" else key
                if key not in value:
                    break  # missing: pydantic reports the object that lacks it
                value = value[key]
            elif isinstance(value, list) and isinstance(key, int) and key < len(value):
                value = value[key]
            else:
                break
        item["input"] = value


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


def escape_controls(text: str) -> str:
    """``text`` with control characters written as escapes (safe for a terminal log).

    Args:
        text: Text from a request.

    Returns:
        The text, each non-printable character as ``\\xNN`` / ``\\uNNNN``.
    """
    return "".join(
        c if c.isprintable() or c == " " else c.encode("unicode_escape").decode("ascii")
        for c in text
    )
