"""Deployment readiness checks and registration with an AI Spine-compatible server.

``deploy_mission`` POSTs ``{"flow_id", "name", "description", "spec"}`` to
``<url>/api/v1/flows`` (as ``ai-spine serve`` accepts) using only the standard library.
"""

from __future__ import annotations

import copy
import json
import urllib.error
import urllib.parse
import urllib.request
from typing import Any, Dict, List, Optional

from spark_core.spec._parse import ValidationIssue
from spark_core.spec.errors import SpecError
from spark_core.spec.models import MissionDeploymentSpec, MissionSpec
from spark_core.spec.validation import validate_mission

__all__ = ["DeployError", "deployment_readiness", "flow_payload", "deploy_mission"]


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


def deployment_readiness(
    mission: MissionSpec, target: str, *, loader: Any = None
) -> List[ValidationIssue]:
    """Check that a mission can be deployed to ``target``.

    Checks: the spec validates with deployment checks (for ``target``); its graph loads as a
    server would load it (every node type resolves under the loader's allowed modules, every
    tool has an implementation); tools without simulation overrides are warnings.

    Args:
        mission: The mission.
        target: ``development``, ``staging`` or ``production``.
        loader: A ``SpecLoader`` (default: a new one).

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
    if any(i.severity == "error" for i in issues):
        return issues
    from spark_core.kit.loader import SpecLoader

    loader = loader if loader is not None else SpecLoader()
    try:
        # Load exactly as the server will: no simulated tools.
        loader.load_mission(candidate)
    except SpecError as exc:
        issues.append(ValidationIssue("graph", f"does not load: {exc}", "error"))
    return issues


def flow_payload(mission: MissionSpec) -> Dict[str, Any]:
    """Build the flow-registration body for a mission.

    Args:
        mission: The mission.

    Returns:
        ``{"flow_id", "name", "description", "spec"}``: ``spec`` is the graph's dict, with
        each strategy binding written into its agent node's ``params["strategy"]`` (the
        server loads the graph alone, so the bindings would otherwise be lost).
    """
    first_line = (
        mission.description.strip().splitlines()[0] if mission.description else ""
    )
    graph = mission.graph.to_dict()
    nodes = {node["id"]: node for node in graph["nodes"]}
    for binding in mission.strategies:
        if binding.target in nodes:
            nodes[binding.target]["params"]["strategy"] = binding.strategy.to_dict()
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
