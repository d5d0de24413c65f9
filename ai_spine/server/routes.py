"""The backend's routes, each answered by a LocalSpine call: ``(status, JSON payload)``.

A handler gets a :class:`Call` (path parameters, query, decoded JSON body, headers); errors
are raised (``AISpineError`` subclasses carrying the status, or :class:`HTTPError`), and the
app turns them into FastAPI-shaped answers.
"""

from __future__ import annotations

import re
from typing import Any, Callable, Dict, List, Mapping, NamedTuple, Optional, Tuple

from ai_spine.exceptions import FlowNotFoundError
from ai_spine.local import LocalSpine
from ai_spine.local.definitions import is_definition
from ai_spine.validation import (
    detail,
    query_int,
    validate_execute_request,
    validate_flow_body,
    validate_page_request,
)

__all__ = ["HTTPError", "Call", "Route", "ROUTES", "LOCAL_USER", "PUBLIC_PATHS"]

#: Paths answered without an API key.
PUBLIC_PATHS = frozenset({"/health", "/health/detailed"})
#: What ``GET /api/v1/users/me`` answers (the backend's UserInfo): one local user with the
#: credits and rate limit the backend reports in its open mode (neither is enforced).
LOCAL_USER = {
    "id": "local",
    "email": "local@localhost",
    "name": "Local user",
    "organization": None,
    "credits": 999999,
    "rate_limit": 10000,
}


class HTTPError(Exception):
    """An HTTP answer decided while handling a request: status, detail and extra headers.

    Args:
        status: The HTTP status.
        detail: The ``detail`` of the JSON body (text or FastAPI error entries).
        headers: Extra response headers.
        close: Whether the connection must close after the answer.
    """

    def __init__(
        self,
        status: int,
        detail: Any,
        headers: Optional[Dict[str, str]] = None,
        close: bool = False,
    ) -> None:
        super().__init__(str(detail))
        self.status = status
        self.detail = detail
        self.headers = headers or {}
        self.close = close


class Call(NamedTuple):
    """What a route handler gets."""

    params: Dict[str, str]
    query: Mapping[str, List[str]]
    body: Any
    headers: Mapping[str, str]  # lower-case names


Handler = Callable[[LocalSpine, Call], Tuple[int, Any]]


class Route(NamedTuple):
    """A method, a path pattern (matched whole) and the handler answering it."""

    method: str
    pattern: "re.Pattern[str]"
    handler: Handler


def _invalid(errors: List[Dict[str, Any]]) -> HTTPError:
    return HTTPError(422, errors)


def health(spine: LocalSpine, call: Call) -> Tuple[int, Any]:
    """GET /health."""
    return 200, spine.health_check()


def metrics(spine: LocalSpine, call: Call) -> Tuple[int, Any]:
    """GET /metrics."""
    return 200, spine.get_metrics()


def status(spine: LocalSpine, call: Call) -> Tuple[int, Any]:
    """GET /status."""
    return 200, spine.get_status()


def execute(spine: LocalSpine, call: Call) -> Tuple[int, Any]:
    """POST /api/v1/flows/execute (an unknown flow is the backend's HTTP 200 answer)."""
    body = call.body
    errors = validate_execute_request(body)
    if errors:
        raise _invalid(errors)
    priority, timeout = body.get("priority"), body.get("timeout")
    try:
        answer = spine.execute_flow(
            body["flow_id"],
            body["input_data"],
            body.get("metadata"),
            # Checked above as JSON integers (5.0 included); execute_flow takes ints.
            priority=None if priority is None else int(priority),
            timeout=None if timeout is None else int(timeout),
            idempotency_key=call.headers.get("idempotency-key") or None,
        )
    except FlowNotFoundError as exc:
        return 200, exc.execution
    return 200, answer


def list_flows(spine: LocalSpine, call: Call) -> Tuple[int, Any]:
    """GET /api/v1/flows (and /my-flows: locally, every flow is yours)."""
    flows = spine.list_flows()
    return 200, {"flows": flows, "count": len(flows)}


def create_flow(spine: LocalSpine, call: Call) -> Tuple[int, Any]:
    """POST /api/v1/flows: ``{flow_id, spec, name?, description?}`` or a flow definition."""
    body = call.body
    if is_definition(body):
        return 201, spine.register_definition(body)
    errors = validate_flow_body(body, require_id=True)
    if errors:
        raise _invalid(errors)
    # A taken id is register_flow's 409 (checked under the registry's lock, so no race).
    definition = spine.register_flow(
        body["flow_id"],
        body["spec"],
        name=body.get("name"),
        description=body.get("description"),
    )
    return 201, definition


def update_flow(spine: LocalSpine, call: Call) -> Tuple[int, Any]:
    """PUT /api/v1/flows/{flow_id}: a new spec, or a new flow definition."""
    body, flow_id = call.body, call.params["flow_id"]
    if is_definition(body):
        _check_same_id(body, flow_id)
        return 200, spine.register_definition(body, update=True)
    errors = validate_flow_body(body, require_id=False)
    if errors:
        raise _invalid(errors)
    _check_same_id(body, flow_id)
    definition = spine.update_flow(
        flow_id,
        body["spec"],
        name=body.get("name"),
        description=body.get("description"),
    )
    return 200, definition


def _check_same_id(body: Any, flow_id: str) -> None:
    if body.get("flow_id", flow_id) != flow_id:
        raise _invalid(
            [
                detail(
                    ("body", "flow_id"),
                    f"flow_id must be the path's {flow_id!r} (ids are fixed)",
                    "value_error",
                )
            ]
        )


def legacy_create_flow(spine: LocalSpine, call: Call) -> Tuple[int, Any]:
    """POST /flows: a flow definition (the backend's only way to add flows in dev mode).

    As the backend, an existing id is replaced (unless the flow is defined in Python: 409).
    """
    body = call.body
    if not is_definition(body):
        raise _invalid([detail(("body", "nodes"), "Field required", "missing")])
    exists = isinstance(body.get("flow_id"), str) and any(
        f["flow_id"] == body["flow_id"] for f in spine.list_flows()
    )
    return 200, spine.register_definition(body, update=exists)


def legacy_update_flow(spine: LocalSpine, call: Call) -> Tuple[int, Any]:
    """PUT /flows/{flow_id}: a new flow definition."""
    if not is_definition(call.body):
        raise _invalid([detail(("body", "nodes"), "Field required", "missing")])
    _check_same_id(call.body, call.params["flow_id"])
    return 200, spine.register_definition(call.body, update=True)


def get_flow(spine: LocalSpine, call: Call) -> Tuple[int, Any]:
    """GET /api/v1/flows/{flow_id}."""
    return 200, spine.get_flow(call.params["flow_id"])


def delete_flow(spine: LocalSpine, call: Call) -> Tuple[int, Any]:
    """DELETE /api/v1/flows/{flow_id}: spec flows only (a Python-defined one is 409)."""
    flow_id = call.params["flow_id"]
    spine.unregister_flow(flow_id, specs_only=True)
    return 200, {
        "message": f"Flow '{flow_id}' deleted successfully",
        "status": "deleted",
        "flow_id": flow_id,
    }


def list_executions(spine: LocalSpine, call: Call) -> Tuple[int, Any]:
    """GET /api/v1/executions?limit&offset&status (a page may stop early by size)."""
    limit = query_int(call.query, "limit", 20)
    offset = query_int(call.query, "offset", 0)
    wanted = call.query.get("status", [None])[-1]
    items, total = spine.page_executions(limit, offset, wanted)
    return 200, {
        "executions": items,
        "count": len(items),
        "total": total,
        "limit": limit,
        "offset": offset,
    }


def legacy_list_executions(spine: LocalSpine, call: Call) -> Tuple[int, Any]:
    """GET /executions?flow_id&limit&offset (default limit 100), newest first."""
    limit = query_int(call.query, "limit", 100)
    offset = query_int(call.query, "offset", 0)
    errors = validate_page_request(limit, offset)
    if errors:
        raise _invalid(errors)
    flow_id = call.query.get("flow_id", [None])[-1]
    if flow_id is None:
        items, _ = spine.page_executions(limit, offset, None)
    else:  # the backend filters by flow; LocalSpine pages by status only
        matching: List[Dict[str, Any]] = []
        start = 0
        while len(matching) < offset + limit:
            page, total = spine.page_executions(1000, start, None)
            matching.extend(e for e in page if e["flow_id"] == flow_id)
            start += len(page)
            if not page or start >= total:
                break
        items = matching[offset : offset + limit]
    return 200, {"executions": items, "count": len(items), "flow_id": flow_id}


def get_execution(spine: LocalSpine, call: Call) -> Tuple[int, Any]:
    """GET /api/v1/executions/{execution_id}."""
    return 200, spine.get_execution(call.params["execution_id"])


def _node_list(found: Dict[str, Any]) -> List[Dict[str, Any]]:
    """Per-node outcomes as the backend lists its node results."""
    return [
        {
            "execution_id": found["execution_id"],
            "node_id": node_id,
            "status": outcome.get("status"),
            "error_message": outcome.get("error"),
            "execution_time_ms": int((outcome.get("duration_s") or 0) * 1000),
            "attempts": outcome.get("attempts"),
        }
        for node_id, outcome in found["node_results"].items()
    ]


def legacy_results(spine: LocalSpine, call: Call) -> Tuple[int, Any]:
    """GET /executions/{execution_id}/results: ``{execution_id, node_results: [...], count}``."""
    found = spine.get_execution_results(call.params["execution_id"])
    nodes = _node_list(found)
    return 200, {
        "execution_id": found["execution_id"],
        "node_results": nodes,
        "count": len(nodes),
    }


def legacy_messages(spine: LocalSpine, call: Call) -> Tuple[int, Any]:
    """GET /messages/{execution_id}: ``{messages, count, execution_id}``."""
    status, page = messages(spine, call)
    return status, {
        "messages": page["messages"],
        "count": page["count"],
        "execution_id": page["execution_id"],
    }


def root(spine: LocalSpine, call: Call) -> Tuple[int, Any]:
    """GET /: what the server is."""
    from ai_spine.__version__ import __version__

    return 200, {"message": "AI Spine API (local)", "version": __version__}


def health_detailed(spine: LocalSpine, call: Call) -> Tuple[int, Any]:
    """GET /health/detailed: the backend's fields (no database: ``skipped``)."""
    health = spine.health_check()
    return 200, {
        "status": health["status"],
        "timestamp": health["timestamp"],
        "database": "skipped",
        "mode": "local",
    }


def cancel(spine: LocalSpine, call: Call) -> Tuple[int, Any]:
    """POST /api/v1/executions/{execution_id}/cancel."""
    return 200, spine.cancel_execution(call.params["execution_id"])


def results(spine: LocalSpine, call: Call) -> Tuple[int, Any]:
    """GET /api/v1/executions/{execution_id}/results (with the backend's ``execution``)."""
    execution_id = call.params["execution_id"]
    found = spine.get_execution_results(execution_id)
    return 200, dict(found, execution=spine.get_execution(execution_id))


def messages(spine: LocalSpine, call: Call) -> Tuple[int, Any]:
    """GET /api/v1/executions/{execution_id}/messages: each node's outcome is one message."""
    limit = query_int(call.query, "limit", 100)
    offset = query_int(call.query, "offset", 0)
    errors = validate_page_request(limit, offset)
    if errors:
        raise _invalid(errors)
    found = spine.get_execution_results(call.params["execution_id"])
    every = [
        dict(node_id=node_id, **outcome)
        for node_id, outcome in found["node_results"].items()
    ]
    page = every[offset : offset + limit]
    return 200, {
        "execution_id": found["execution_id"],
        "messages": page,
        "count": len(page),
        "total": len(every),
        "limit": limit,
        "offset": offset,
    }


def me(spine: LocalSpine, call: Call) -> Tuple[int, Any]:
    """GET /api/v1/users/me."""
    return 200, dict(LOCAL_USER)


def list_agents(spine: LocalSpine, call: Call) -> Tuple[int, Any]:
    """GET /api/v1/agents (and /my-agents)."""
    agents = spine.list_agents()
    return 200, {"agents": agents, "count": len(agents)}


def active_agents(spine: LocalSpine, call: Call) -> Tuple[int, Any]:
    """GET /api/v1/agents/active."""
    agents = [a for a in spine.list_agents() if a.get("is_active")]
    return 200, {"agents": agents, "count": len(agents)}


def create_agent(spine: LocalSpine, call: Call) -> Tuple[int, Any]:
    """POST /api/v1/agents (an endpoint agent: no Python handler over HTTP)."""
    if isinstance(call.body, dict) and "handler" in call.body:
        raise _invalid([detail(("body", "handler"), "not accepted over HTTP", "extra")])
    return 200, spine.create_agent(call.body)


def get_agent(spine: LocalSpine, call: Call) -> Tuple[int, Any]:
    """GET /api/v1/agents/{agent_id}."""
    return 200, spine.get_agent(call.params["agent_id"])


def delete_agent(spine: LocalSpine, call: Call) -> Tuple[int, Any]:
    """DELETE /api/v1/agents/{agent_id}."""
    agent_id = call.params["agent_id"]
    spine.delete_agent(agent_id)
    return 200, {
        "message": f"Agent '{agent_id}' unregistered successfully",
        "success": True,
    }


_FLOW = r"/api/v1/flows/(?P<flow_id>[^/]+)"
_EXECUTION = r"/api/v1/executions/(?P<execution_id>[^/]+)"
ROUTES: List[Route] = [
    Route(method, re.compile(pattern + r"\Z"), handler)
    for method, pattern, handler in [
        ("GET", r"/health", health),
        ("GET", r"/health/detailed", health_detailed),
        ("GET", r"/", root),
        ("GET", r"/metrics", metrics),
        ("GET", r"/status", status),
        ("POST", r"/api/v1/flows/execute", execute),
        ("GET", r"/api/v1/flows", list_flows),
        ("POST", r"/api/v1/flows", create_flow),
        # Fixed paths before the {id} ones, or "my-flows" would be read as a flow id.
        ("GET", r"/api/v1/flows/my-flows", list_flows),
        ("GET", _FLOW, get_flow),
        ("PUT", _FLOW, update_flow),
        ("DELETE", _FLOW, delete_flow),
        ("GET", r"/api/v1/executions", list_executions),
        ("GET", _EXECUTION, get_execution),
        ("POST", _EXECUTION + "/cancel", cancel),
        ("GET", _EXECUTION + "/results", results),
        ("GET", _EXECUTION + "/messages", messages),
        ("GET", r"/api/v1/agents", list_agents),
        ("POST", r"/api/v1/agents", create_agent),
        ("GET", r"/api/v1/agents/active", active_agents),
        ("GET", r"/api/v1/agents/my-agents", list_agents),
        ("GET", r"/api/v1/agents/(?P<agent_id>[^/]+)", get_agent),
        ("DELETE", r"/api/v1/agents/(?P<agent_id>[^/]+)", delete_agent),
        ("GET", r"/api/v1/users/me", me),
        # The backend's unprefixed copies, which the published 2.x SDK calls.
        ("POST", r"/flows/execute", execute),
        ("GET", r"/flows", list_flows),
        ("POST", r"/flows", legacy_create_flow),
        ("GET", r"/flows/(?P<flow_id>[^/]+)", get_flow),
        ("PUT", r"/flows/(?P<flow_id>[^/]+)", legacy_update_flow),
        ("DELETE", r"/flows/(?P<flow_id>[^/]+)", delete_flow),
        ("GET", r"/executions", legacy_list_executions),
        ("GET", r"/executions/(?P<execution_id>[^/]+)", get_execution),
        ("POST", r"/executions/(?P<execution_id>[^/]+)/cancel", cancel),
        ("GET", r"/executions/(?P<execution_id>[^/]+)/results", legacy_results),
        ("GET", r"/messages/(?P<execution_id>[^/]+)", legacy_messages),
        ("GET", r"/agents", list_agents),
        ("POST", r"/agents", create_agent),
        ("GET", r"/agents/active", active_agents),
        ("GET", r"/agents/(?P<agent_id>[^/]+)", get_agent),
        ("DELETE", r"/agents/(?P<agent_id>[^/]+)", delete_agent),
    ]
]
