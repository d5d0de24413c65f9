"""Deployment readiness checks and registration with an AI Spine-compatible server.

``deploy_mission`` POSTs ``{"flow_id", "name", "description", "spec"}`` to
``<url>/api/v1/flows`` (as ``ai-spine serve`` accepts) using only the standard library.
The server loads ``spec`` (a graph) alone: :func:`flow_payload` writes the strategy bindings
and the mission's state schema into it, and :func:`not_sent` names what stays behind.
"""

from __future__ import annotations

import copy
import json
import urllib.error
import urllib.parse
import urllib.request
from typing import Any, Dict, List, Optional

from spark_core.spec._parse import ValidationIssue
from spark_core.spec.allowlist import DEFAULT_ALLOWED_MODULES, module_allowed
from spark_core.spec.errors import SpecError
from spark_core.spec.loader import SpecLoader
from spark_core.spec.models import MissionDeploymentSpec, MissionSpec
from spark_core.spec.validation import validate_mission

__all__ = [
    "DeployError",
    "deployment_readiness",
    "server_modules",
    "flow_payload",
    "not_sent",
    "deploy_mission",
]


class DeployError(SpecError):
    """Registering the mission with the server failed.

    Attributes:
        status_code: The HTTP status, when the server answered.
    """

    def __init__(self, message: str, status_code: Optional[int] = None) -> None:
        """Create the error.

        Args:
            message: What went wrong.
            status_code: The HTTP status, if any.
        """
        super().__init__(message)
        self.status_code = status_code


def _retarget(mission: MissionSpec, target: str) -> MissionSpec:
    copied = copy.deepcopy(mission)
    deployment = copied.deployment or MissionDeploymentSpec()
    deployment.target = target
    copied.deployment = deployment
    return copied


def server_modules(mission: MissionSpec) -> Dict[str, List[str]]:
    """Name the modules a server must allow to load the mission's flow.

    A server loading specs with a default ``SpecLoader()`` (as ``ai-spine serve`` does)
    imports node classes only from ``spark_core`` and tools from no module at all.

    Args:
        mission: The mission.

    Returns:
        ``{"modules": [...], "tool_modules": [...]}``: node class modules outside
        ``spark_core``, and the modules of tool references, sorted.
    """
    modules = {
        node.type.split(":", 1)[0]
        for node in mission.graph.nodes
        if ":" in node.type
        and not module_allowed(node.type.split(":", 1)[0], DEFAULT_ALLOWED_MODULES)
    }
    tool_modules = {
        tool.reference.split(":", 1)[0]
        for tool in mission.graph.tools
        if tool.reference and ":" in tool.reference
    }
    return {"modules": sorted(modules), "tool_modules": sorted(tool_modules)}


def not_sent(mission: MissionSpec) -> List[str]:
    """Name the mission sections the flow registration does not carry.

    Args:
        mission: The mission.

    Returns:
        Section names (``plan``, ``telemetry``, ``deployment``, ``simulation``,
        ``metadata``, and ``state_schema`` when the graph declares its own) present in the
        mission but not in :func:`flow_payload`'s spec: the server runs the graph only.
    """
    left = []
    if mission.plan is not None and mission.plan.steps:
        left.append("plan")
    if mission.state_schema is not None and mission.graph.state_schema is not None:
        left.append("state_schema")  # the graph's own schema wins, as when loading
    for name in ("telemetry", "deployment", "simulation"):
        if getattr(mission, name) is not None:
            left.append(name)
    if mission.metadata:
        left.append("metadata")
    return left


def deployment_readiness(
    mission: MissionSpec, target: str, *, loader: Any = None
) -> List[ValidationIssue]:
    """Check that a mission can be deployed to ``target``.

    Checks: the spec validates with deployment checks (for ``target``); the flow's graph
    (:func:`flow_payload`) loads as the server will load it (every node type resolves under
    the loader's allowed modules, every tool has a reference under its allowed tool
    modules); tools without simulation overrides are warnings, and so is each module the
    server must allow (:func:`server_modules`): the server needs the same allowances as
    ``loader``; so is, for ``production``, an agent node with an offline stand-in model
    (``echo``/``scripted``, as the ``mission-generate --strategy`` scaffold has).

    Args:
        mission: The mission.
        target: ``development``, ``staging`` or ``production``.
        loader: A ``SpecLoader`` standing for the server's (default: a plain one, which is
            what ``ai-spine serve`` uses unless told to allow more).

    Returns:
        Every issue (empty: ready).
    """
    candidate = _retarget(mission, target)
    issues = validate_mission(candidate, check_deployment=True)
    if mission.deployment is None:
        issues.append(
            ValidationIssue(
                "deployment",
                "no deployment section: defaults used (1 replica)",
                "warning",
            )
        )
    if mission.deployment is not None and mission.deployment.target != target:
        issues.append(
            ValidationIssue(
                "deployment.target",
                f"spec says {mission.deployment.target!r}, deploying to {target!r}",
                "warning",
            )
        )
    overrides = {
        o.name for o in (mission.simulation.tools if mission.simulation else [])
    }
    for index, tool in enumerate(mission.graph.tools):
        if tool.name not in overrides:
            issues.append(
                ValidationIssue(
                    f"graph.tools[{index}]",
                    f"tool {tool.name!r} has no simulation override (cannot be simulated)",
                    "warning",
                )
            )
    if target == "production":
        issues.extend(_placeholder_models(mission))
    needed = server_modules(mission)
    for module in sorted(set(needed["modules"]) | set(needed["tool_modules"])):
        what = " and ".join(
            w
            for w, kind in (("node classes", "modules"), ("tools", "tool_modules"))
            if module in needed[kind]
        )
        # ai-spine serve's --allow-module covers node classes and tools alike.
        issues.append(
            ValidationIssue(
                "graph",
                f"the server must allow {what} from module {module!r} "
                f"(ai-spine serve --allow-module {module})",
                "warning",
            )
        )
    if any(i.severity == "error" for i in issues):
        return issues
    loader = loader if loader is not None else SpecLoader()
    try:
        # Load exactly what the server will: the flow's graph alone, no simulated tools.
        loader.load_graph(flow_payload(candidate)["spec"])
    except SpecError as exc:
        issues.append(ValidationIssue("graph", f"does not load: {exc}", "error"))
    return issues


def _placeholder_models(mission: MissionSpec) -> List[ValidationIssue]:
    """Agent nodes whose model is an offline stand-in (echo, scripted), as warnings."""
    issues = []
    for index, node in enumerate(mission.graph.nodes):
        model = node.params.get("model")
        provider = str(model.get("provider")).lower() if isinstance(model, dict) else ""
        if node.type.endswith(":AgentNode") and provider in ("echo", "scripted"):
            issues.append(
                ValidationIssue(
                    f"graph.nodes[{index}].params.model",
                    f"agent node {node.id!r} would run the placeholder {provider!r} "
                    "model in production: give it a real one, e.g. "
                    '{"provider": "openai", "model_id": "gpt-4o-mini"}',
                    "warning",
                )
            )
    return issues


def flow_payload(mission: MissionSpec) -> Dict[str, Any]:
    """Build the flow-registration body for a mission.

    Args:
        mission: The mission.

    Returns:
        ``{"flow_id", "name", "description", "spec"}``: ``spec`` is the graph's dict, with
        each strategy binding written into its agent node's ``params["strategy"]`` and the
        mission's ``state_schema`` as the graph's when it declares none (the server loads the
        graph alone, so they would otherwise be lost). :func:`not_sent` names the rest.
    """
    first_line = (
        mission.description.strip().splitlines()[0] if mission.description else ""
    )
    graph = mission.graph.to_dict()
    nodes = {node["id"]: node for node in graph["nodes"]}
    for binding in mission.strategies:
        if binding.target in nodes:
            nodes[binding.target]["params"]["strategy"] = binding.strategy.to_dict()
    if graph["state_schema"] is None and mission.state_schema is not None:
        graph["state_schema"] = mission.state_schema.to_dict()
    return {
        "flow_id": mission.mission_id,
        "name": (first_line[:100] or mission.mission_id),
        "description": mission.description,
        "spec": graph,
    }


def _detail(body: bytes) -> str:
    try:
        data = json.loads(body.decode("utf-8"))
    except (ValueError, UnicodeDecodeError):
        return body.decode("utf-8", "replace").strip()[:300]
    detail = data.get("detail", data) if isinstance(data, dict) else data
    if isinstance(detail, list):
        parts = []
        for item in detail:
            if isinstance(item, dict):
                loc = ".".join(str(x) for x in item.get("loc", []))
                parts.append(
                    f"{loc}: {item.get('msg', '')}" if loc else str(item.get("msg"))
                )
            else:
                parts.append(str(item))
        return "; ".join(parts)[:300]
    return str(detail)[:300]


def deploy_mission(
    mission: MissionSpec,
    url: str,
    *,
    api_key: Optional[str] = None,
    timeout: float = 10.0,
) -> Dict[str, Any]:
    """Register the mission's graph as a flow with an AI Spine-compatible server.

    Args:
        mission: The mission (check it with :func:`deployment_readiness` first).
        url: The server's base URL, e.g. ``http://127.0.0.1:8000``.
        api_key: Sent as ``Authorization: Bearer ...`` when given (never logged).
        timeout: Seconds to wait for the server.

    Returns:
        The flow definition the server returned.

    Raises:
        DeployError: The URL is not http(s), the server is unreachable, or it refused the
            flow (409: the id exists; 422: the spec was rejected).
    """
    parsed = urllib.parse.urlparse(url)
    if parsed.scheme not in ("http", "https") or not parsed.hostname:
        raise DeployError("deploy URL must be http(s)://host[:port]")
    if parsed.username is not None or parsed.password is not None:
        # Never echoed: such a URL holds a credential (use --api-key / AI_SPINE_API_KEY).
        raise DeployError("deploy URL must not contain user:password@")
    endpoint = url.rstrip("/") + "/api/v1/flows"
    body = json.dumps(flow_payload(mission)).encode("utf-8")
    headers = {"Content-Type": "application/json", "Accept": "application/json"}
    if api_key:
        headers["Authorization"] = f"Bearer {api_key}"
    request = urllib.request.Request(
        endpoint, data=body, headers=headers, method="POST"
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
            raw = response.read()
    except urllib.error.HTTPError as exc:
        with exc:  # it holds the open response
            detail = _detail(exc.read())
        if exc.code == 409:
            message = f"flow {mission.mission_id!r} already exists on {url}"
        elif exc.code == 422:
            message = f"{url} rejected the flow spec"
        else:
            message = f"{url} answered HTTP {exc.code}"
        raise DeployError(
            f"{message}: {detail}" if detail else message, exc.code
        ) from None
    except urllib.error.URLError as exc:
        raise DeployError(f"cannot reach {url}: {exc.reason}") from None
    except (OSError, ValueError) as exc:
        raise DeployError(f"cannot reach {url}: {exc}") from None
    try:
        data = json.loads(raw.decode("utf-8")) if raw else {}
    except (ValueError, UnicodeDecodeError):
        raise DeployError(f"{url} answered with something that is not JSON") from None
    return data if isinstance(data, dict) else {"response": data}
