"""``ai-spine serve``: a LocalSpine behind an HTTP server that speaks the AI Spine backend's API.

Routes, status codes and JSON shapes follow the backend (``/api/v1/flows/execute``,
``/api/v1/executions/...``, ``/api/v1/flows...``, ``/api/v1/agents...``, ``/health``,
``/metrics``, ``/status``), errors are FastAPI-shaped (``{"detail": ...}``), a non-UUID
execution id answers 422. With an API key set, every route but ``/health`` needs
``Authorization: Bearer <key>`` (compared in constant time).

The package, by job:

* :mod:`~ai_spine.server.routes`: the route table, each route one LocalSpine call;
* :mod:`~ai_spine.server.app`: :class:`SpineApp`, the request -> response function (host
  check, authentication, routing, JSON bodies), free of sockets;
* :mod:`~ai_spine.server.stdlib`: :class:`SpineServer`, the stdlib threaded server around it
  (framing, timeouts, connection cap);
* :mod:`~ai_spine.server.wsgi`: the same app as a WSGI application, for gunicorn with several
  worker processes on one PostgreSQL execution journal;
* the ``ai-spine serve`` command line is :mod:`ai_spine.serve_cli`.

In-process use (tests, notebooks)::

    with SpineServer(LocalSpine({"echo": make_graph})) as server:   # free port on 127.0.0.1
        client = AISpine(base_url=server.url)
"""

from __future__ import annotations

from typing import Any

from ai_spine.server.app import Request, Response, SpineApp
from ai_spine.server.routes import LOCAL_USER
from ai_spine.server.stdlib import (
    DEFAULT_BACKLOG,
    DEFAULT_BODY_TIMEOUT,
    DEFAULT_HEADER_TIMEOUT,
    DEFAULT_IDLE_TIMEOUT,
    DEFAULT_MAX_BODY,
    DEFAULT_MAX_CONNECTIONS,
    SpineServer,
)

__all__ = [
    "SpineServer",
    "SpineApp",
    "Request",
    "Response",
    "LOCAL_USER",
    "serve_main",
    "DEFAULT_MAX_BODY",
    "DEFAULT_BODY_TIMEOUT",
    "DEFAULT_HEADER_TIMEOUT",
    "DEFAULT_IDLE_TIMEOUT",
    "DEFAULT_MAX_CONNECTIONS",
    "DEFAULT_BACKLOG",
]


def __getattr__(name: str) -> Any:
    """``serve_main`` lives with the command line (:mod:`ai_spine.serve_cli`).

    Args:
        name: The attribute looked up.

    Returns:
        :func:`ai_spine.serve_cli.serve_main`.

    Raises:
        AttributeError: For any other name.
    """
    if name == "serve_main":
        from ai_spine.serve_cli import serve_main

        return serve_main
    raise AttributeError(f"module 'ai_spine.server' has no attribute {name!r}")
