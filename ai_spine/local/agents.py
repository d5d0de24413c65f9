"""The agent registry: agents a LocalSpine knows, reached by HTTP or a Python handler."""

from __future__ import annotations

import json
import threading
from typing import Any, Callable, Dict, List, Optional

from ai_spine.exceptions import (
    AISpineError,
    ExecutionError,
    NotFoundError,
)
from ai_spine.local.records import utcnow_iso
from ai_spine.utils import validate_id
from ai_spine.validation import detail, expected, id_problem, invalid

__all__ = ["AGENT_TYPES", "AgentRegistry"]

AGENT_TYPES = ("input", "processor", "output", "conditional")


class _Agent:
    def __init__(
        self, info: Dict[str, Any], handler: Optional[Callable[..., Any]]
    ) -> None:
        self.info = info
        self.handler = handler


class AgentRegistry:
    """Agents by id, with the backend's AgentInfo for each; safe across threads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._agents: Dict[str, _Agent] = {}

    def __len__(self) -> int:
        return len(self._agents)

    def create(self, agent_config: Any) -> Dict[str, Any]:
        """Register an agent (see :meth:`ai_spine.LocalSpine.create_agent`).

        Returns:
            A copy of its AgentInfo.

        Raises:
            ValidationError: Missing or bad fields (a taken id is overwritten, as the
                backend does).
        """
        if not isinstance(agent_config, dict):
            raise invalid(
                [detail(("body",), "Input should be a valid dictionary", "dict_type")]
            )
        cfg = dict(agent_config)
        handler = cfg.pop("handler", None)
        errors = _problems(cfg, handler)
        if errors:
            raise invalid(errors)
        endpoint = cfg.get("endpoint")
        now = utcnow_iso()
        info = {
            "agent_id": cfg["agent_id"],
            "name": cfg["name"],
            "description": str(cfg.get("description", "")),
            "endpoint": (
                endpoint if isinstance(endpoint, str) else f"local://{cfg['agent_id']}"
            ),
            "capabilities": list(cfg.get("capabilities", [])),
            "agent_type": cfg.get("agent_type", "processor"),
            "is_active": bool(cfg.get("is_active", True)),
            "created_at": now,
            "updated_at": now,
        }
        with self._lock:  # a taken id is overwritten, as the backend's registry does
            self._agents[info["agent_id"]] = _Agent(info, handler)
        return dict(info)

    def all(self) -> List[Dict[str, Any]]:
        """Copies of every agent's AgentInfo."""
        with self._lock:
            return [dict(a.info) for a in self._agents.values()]

    def get(self, agent_id: str) -> Dict[str, Any]:
        """A copy of one agent's AgentInfo.

        Raises:
            ValidationError: A malformed id.
            NotFoundError: No such agent.
        """
        return dict(self._agent(agent_id).info)

    def remove(self, agent_id: str) -> None:
        """Unregister an agent.

        Raises:
            ValidationError: A malformed id.
            NotFoundError: No such agent.
        """
        validate_id(agent_id, "agent_id")
        with self._lock:
            if self._agents.pop(agent_id, None) is None:
                raise _not_found(agent_id)

    def invoke(self, agent_id: str, input_data: Dict[str, Any]) -> Dict[str, Any]:
        """Call an agent (see :meth:`ai_spine.LocalSpine.invoke_agent`).

        Raises:
            NotFoundError: No such agent.
            ExecutionError: The agent failed or answered something other than a JSON object.
        """
        agent = self._agent(agent_id)
        try:
            if agent.handler is not None:
                out = agent.handler(input_data)
            else:
                out = _post_json(str(agent.info["endpoint"]), input_data)
        except AISpineError:
            raise
        except Exception as exc:
            raise ExecutionError(
                f"agent '{agent_id}' failed: {type(exc).__name__}: {exc}"
            ) from exc
        if out is None:
            return {}
        if not isinstance(out, dict):
            raise ExecutionError(
                f"agent '{agent_id}' returned {type(out).__name__}, expected a JSON object"
            )
        return out

    def exists(self, agent_id: str) -> bool:
        """Whether an agent is registered under ``agent_id``."""
        return agent_id in self._agents

    def run_step(
        self,
        agent_id: str,
        execution_id: str,
        node_id: str,
        input_data: Dict[str, Any],
        config: Dict[str, Any],
    ) -> Any:
        """Run one node of a backend flow definition on an agent, as the backend does.

        A ``handler`` agent gets the input; an ``endpoint`` agent gets
        ``POST {endpoint}/execute`` with ``{execution_id, node_id, input, config}`` and
        answers ``{"output": ...}``.

        Raises:
            NotFoundError: No such agent.
            ExecutionError: The agent failed or its answer is not a JSON object.
        """
        agent = self._agent(agent_id)
        if agent.handler is not None:
            return self.invoke(agent_id, input_data)
        envelope = {
            "execution_id": execution_id,
            "node_id": node_id,
            "input": input_data,
            "config": config,
        }
        url = str(agent.info["endpoint"]).rstrip("/") + "/execute"
        try:
            answer = _post_json(url, envelope)
        except Exception as exc:
            raise ExecutionError(
                f"agent '{agent_id}' failed: {type(exc).__name__}: {exc}"
            ) from exc
        if not isinstance(answer, dict):
            raise ExecutionError(
                f"agent '{agent_id}' answered {type(answer).__name__}, expected a JSON object"
            )
        return answer.get("output", {})

    def _agent(self, agent_id: str) -> _Agent:
        validate_id(agent_id, "agent_id")
        agent = self._agents.get(agent_id)
        if agent is None:
            raise _not_found(agent_id)
        return agent


def _problems(cfg: Dict[str, Any], handler: Any) -> List[Dict[str, Any]]:
    """The 422 entries for an agent config (``handler`` popped from it already)."""
    errors = []
    problem = id_problem(cfg.get("agent_id"), "agent_id", "body")
    if problem is not None:
        errors.append(problem)
    if not isinstance(cfg.get("name"), str) or not cfg["name"].strip():
        errors.append(
            detail(("body", "name"), "name must be a non-empty string", "missing")
        )
    endpoint = cfg.get("endpoint")
    if handler is not None and not callable(handler):
        errors.append(
            detail(("body", "handler"), "handler must be callable", "callable_type")
        )
    if handler is None and (
        not isinstance(endpoint, str)
        or not endpoint.startswith(("http://", "https://"))
    ):
        errors.append(
            detail(
                ("body", "endpoint"), "endpoint must be an http(s) URL", "url_parsing"
            )
        )
    caps = cfg.get("capabilities", [])
    if not isinstance(caps, list) or not all(isinstance(c, str) for c in caps):
        errors.append(
            detail(
                ("body", "capabilities"),
                "capabilities must be a list of str",
                "list_type",
            )
        )
    if cfg.get("agent_type", "processor") not in AGENT_TYPES:
        errors.append(
            detail(
                ("body", "agent_type"),
                f"agent_type must be one of {', '.join(AGENT_TYPES)}",
                "enum",
                expected(AGENT_TYPES),
            )
        )
    return errors


def _not_found(agent_id: str) -> NotFoundError:
    msg = f"Agent '{agent_id}' not found"
    return NotFoundError(msg, status_code=404, body={"detail": msg})


def _post_json(url: str, payload: Dict[str, Any]) -> Any:
    import urllib.request

    req = urllib.request.Request(
        url,
        data=json.dumps(payload).encode(),
        headers={"Content-Type": "application/json", "Accept": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(
        req, timeout=30
    ) as resp:  # noqa: S310 - http(s) checked
        return json.loads(resp.read() or b"null")
