"""The server's routes as a WSGI application, for gunicorn and other production servers.

``ai-spine serve`` stays the one-command embedded server. To run several worker processes
behind one address, each worker builds its own LocalSpine on one shared PostgreSQL journal
(``db="postgresql://..."``), so every worker answers for every execution::

    AI_SPINE_SERVE_DB=postgresql://user:pw@db/spine \\
    gunicorn -w 4 -b 127.0.0.1:8000 \\
        'ai_spine.server.wsgi:make_app(flows="myapp.flows:FLOWS")'

gunicorn imports the app in each worker after it forks (its default), so no worker shares
the parent's connections or threads. Secrets come from the environment
(``AI_SPINE_SERVE_DB``, ``AI_SPINE_SERVE_API_KEY``), never from the command line where
``ps`` shows them.
"""

from __future__ import annotations

import atexit
import os
from http import HTTPStatus
from typing import Any, Callable, Dict, Iterable, List, Mapping, Optional, Tuple, Union
from urllib.parse import quote

from ai_spine.exceptions import ValidationError
from ai_spine.local import LocalSpine
from ai_spine.server.app import Request, SpineApp
from ai_spine.server.routes import HTTPError
from ai_spine.server.stdlib import DEFAULT_MAX_BODY

__all__ = ["WSGIApp", "make_app", "WORKER_HEADER"]

#: The response header naming the worker process that answered (``worker_header=True``).
WORKER_HEADER = "X-AI-Spine-Worker"

StartResponse = Callable[..., Any]


class WSGIApp:
    """A :class:`~ai_spine.server.app.SpineApp` behind the WSGI interface (PEP 3333).

    Args:
        app: The request -> response function.
        max_body: Largest request body accepted, in bytes (larger answers 413).
        worker_header: Add ``X-AI-Spine-Worker: <pid>`` to every response (to see which
            worker answered; off by default, as it tells clients about the host).
    """

    def __init__(
        self,
        app: SpineApp,
        *,
        max_body: int = DEFAULT_MAX_BODY,
        worker_header: bool = False,
    ) -> None:
        self.app = app
        self.max_body = max_body
        self.worker_header = worker_header

    def __call__(
        self, environ: Dict[str, Any], start_response: StartResponse
    ) -> Iterable[bytes]:
        """Answer one WSGI request.

        Args:
            environ: The WSGI environment.
            start_response: The server's ``start_response``.

        Returns:
            The response body, in one piece.
        """
        headers = {
            key[5:].replace("_", "-").lower(): value
            for key, value in environ.items()
            if key.startswith("HTTP_")
        }
        for key in ("CONTENT_TYPE", "CONTENT_LENGTH"):
            if environ.get(key):
                headers[key.replace("_", "-").lower()] = environ[key]
        response = self.app(
            Request(
                environ.get("REQUEST_METHOD", "GET"),
                _target(environ),
                headers,
                lambda: self._read_body(environ),
            )
        )
        out: List[Tuple[str, str]] = list(response.headers)
        out.append(("Content-Length", str(len(response.body))))
        if self.worker_header:
            out.append((WORKER_HEADER, str(os.getpid())))
        if response.close:
            out.append(("Connection", "close"))
        start_response(f"{response.status} {_reason(response.status)}", out)
        return [response.body]

    def _read_body(self, environ: Mapping[str, Any]) -> bytes:
        try:
            length = int(environ.get("CONTENT_LENGTH") or 0)
        except ValueError:
            raise HTTPError(400, "Bad Content-Length", close=True) from None
        if length > self.max_body:
            raise HTTPError(
                413,
                f"Request body too large: {length} bytes (limit {self.max_body})",
                close=True,
            )
        data: bytes = environ["wsgi.input"].read(length) if length > 0 else b""
        return data


def _target(environ: Mapping[str, Any]) -> str:
    """The request target as sent (percent-encoding kept, as SpineApp expects)."""
    raw = environ.get("RAW_URI") or environ.get("REQUEST_URI")
    if raw:
        return str(raw)
    path = environ.get("SCRIPT_NAME", "") + environ.get("PATH_INFO", "")
    # WSGI hands the path decoded as latin-1: encode it back to the bytes sent.
    target = quote(path.encode("latin-1"), safe="/:@!$&'()*+,;=-._~")
    query = environ.get("QUERY_STRING")
    return f"{target}?{query}" if query else target


def _reason(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:  # pragma: no cover - SpineApp answers standard statuses
        return "Unknown"


def _dask_executor(address: Optional[str]) -> Any:
    """The executor for ``dask=``, or ``None`` (an unreachable scheduler is refused)."""
    if address is None:
        return None
    from ai_spine.serve_cli import _dask_executor as serve_dask_executor
    from ai_spine.serve_cli import _UsageError

    try:
        return serve_dask_executor(address)
    except _UsageError as exc:
        raise ValidationError(str(exc)) from None


def make_app(
    flows: Union[str, Mapping[str, Any], None] = None,
    *,
    db: Optional[str] = None,
    api_key: Optional[str] = None,
    allow_modules: Iterable[str] = (),
    max_concurrency: int = 64,
    demo: bool = False,
    worker_header: bool = False,
    max_body: int = DEFAULT_MAX_BODY,
    grace: float = 10.0,
    dask: Optional[str] = None,
) -> WSGIApp:
    """Build the WSGI application one server worker runs (gunicorn's ``module:make_app(...)``).

    Each call builds its own LocalSpine, closed (with ``grace``) when the process exits.

    Args:
        flows: ``"MODULE:OBJECT"`` naming a ``{flow_id: graph|factory|spec}`` dict or a
            zero-argument callable returning one (as ``ai-spine serve --flows``), or the
            dict itself.
        db: The execution journal: a ``postgresql://`` URL shared by every worker (a SQLite
            file works for one worker only). Default: ``$AI_SPINE_SERVE_DB``, else memory.
        api_key: Require ``Authorization: Bearer <key>``. Default:
            ``$AI_SPINE_SERVE_API_KEY``, else no key.
        allow_modules: Module prefixes spec flows may import from (as ``--allow-module``).
        max_concurrency: Executions running at once in each worker.
        demo: Also register the demo flows.
        worker_header: Name the answering worker's pid in ``X-AI-Spine-Worker``.
        max_body: Largest request body accepted, in bytes.
        grace: Seconds running executions get to finish when the worker exits.
        dask: A Dask scheduler's address: each execution runs as a task on that cluster
            (as ``ai-spine serve --dask``). Default: ``$AI_SPINE_SERVE_DASK``, else in the
            worker process.

    Returns:
        The WSGI application.

    Raises:
        ValidationError: ``flows`` cannot be loaded, or the Dask scheduler is unreachable.
        AISpineError: The journal cannot be opened (its password hidden).
    """
    sources: Mapping[str, Any] = {}
    if isinstance(flows, str):
        from ai_spine.serve_cli import _load_flows, _UsageError

        try:
            loaded = _load_flows(flows)
        except _UsageError as exc:
            raise ValidationError(str(exc)) from None
        if isinstance(loaded, LocalSpine):
            raise ValidationError(
                f"flows {flows}: give a dict of flows, not a LocalSpine (each worker "
                "builds its own)"
            )
        sources = loaded
    elif flows is not None:
        sources = flows
    spine = LocalSpine(
        sources,
        db=db or os.environ.get("AI_SPINE_SERVE_DB") or None,
        allow_modules=allow_modules,
        max_concurrency=max_concurrency,
        executor=_dask_executor(dask or os.environ.get("AI_SPINE_SERVE_DASK") or None),
    )
    if demo:
        from ai_spine.demo import register_demo_flows

        register_demo_flows(spine)
    atexit.register(spine.close, grace)
    key = api_key or os.environ.get("AI_SPINE_SERVE_API_KEY") or None
    return WSGIApp(
        SpineApp(spine, api_key=key), max_body=max_body, worker_header=worker_header
    )
