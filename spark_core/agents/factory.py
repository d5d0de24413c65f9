"""Build models and agents from JSON data (mission specs), and rebind them on a live graph.

A spec node of type ``spark_core.agents.node:AgentNode`` takes its agent from ``params``::

    {"id": "analyst", "type": "spark_core.agents.node:AgentNode",
     "params": {"model": {"provider": "openai", "model_id": "gpt-4o"},
                "system_prompt": "You are an analyst.",
                "tools": ["search"],                       # tools of the graph, by name
                "strategy": {"type": "react", "config": {"verbose": true}},
                "output_mode": "json", "max_steps": 12}}

``bind_strategies`` applies a mission's ``strategies`` bindings (``target`` node id + strategy
spec); ``replace_models`` swaps every agent's model (``simulation-run`` uses scripted ones).
API keys never come from specs: ``OpenAIModel`` reads ``OPENAI_API_KEY``, and sends it only to
the endpoint the environment names (``OPENAI_BASE_URL`` or the default): a model spec with
another ``base_url`` gets no key.
"""

from __future__ import annotations

import os
from typing import Any, Callable, Dict, Iterable, Mapping, Optional

from spark_core.agents.agent import Agent
from spark_core.agents.config import AgentConfig
from spark_core.agents.errors import AgentConfigError
from spark_core.agents.strategies import ReasoningStrategy, strategy_from_spec
from spark_core.models.scripted import EchoModel, ScriptedModel

__all__ = ["model_from_spec", "agent_from_spec", "bind_strategies", "replace_models"]

_OPENAI_KEYS = (
    "model_id",
    "base_url",
    "timeout",
    "deadline",
    "max_response_bytes",
    "max_retries",
    "backoff_factor",
    "max_retry_after",
    "pricing",
    "default_options",
)
_AGENT_KEYS = (
    "model",
    "system_prompt",
    "tools",
    "output_mode",
    "strategy",
    "reasoning_strategy",
    "max_steps",
    "parallel_tool_execution",
    "json_retries",
    "model_options",
    "name",
    "memory",
    "max_observation_chars",
)


def _check_keys(what: str, data: Mapping[str, Any], allowed: Iterable[str]) -> None:
    allowed = tuple(allowed)
    unknown = sorted(str(k) for k in data if k not in allowed)
    if unknown:
        raise AgentConfigError(
            f"{what}: unknown key(s) {unknown} (accepted: {list(allowed)})"
        )


def _env_base_url() -> str:
    from spark_core.models.openai import DEFAULT_BASE_URL

    return (os.environ.get("OPENAI_BASE_URL") or DEFAULT_BASE_URL).rstrip("/")


def model_from_spec(spec: Any) -> Any:
    """Build a model from its JSON form.

    Args:
        spec: A model id string (an OpenAI-compatible model), or a mapping with
            ``provider``: ``"openai"`` (``model_id``, ``base_url`` [no key is sent to a
            ``base_url`` other than ``OPENAI_BASE_URL``'s], ``timeout``, ``deadline``,
            ``max_response_bytes``, ``max_retries``, ``pricing`` [in, out],
            ``default_options``), ``"scripted"`` (``script``, ``loop``, ``model_id``) or
            ``"echo"`` (``prefix``). An object that already has ``complete`` is returned as
            is.

    Returns:
        The model.

    Raises:
        AgentConfigError: Unknown provider or key, or an ``api_key`` in the spec.
    """
    if callable(getattr(spec, "complete", None)):
        return spec
    if isinstance(spec, str):
        spec = {"provider": "openai", "model_id": spec}
    if not isinstance(spec, Mapping):
        raise AgentConfigError(
            f"a model spec must be a string or an object, got {spec!r}"
        )
    data = dict(spec)
    provider = str(data.pop("provider", "openai")).lower()
    if "api_key" in data:
        raise AgentConfigError(
            "model spec: api_key must not be stored in a spec; set OPENAI_API_KEY instead"
        )
    if provider == "openai":
        from spark_core.models.openai import OpenAIModel

        _check_keys("openai model spec", data, _OPENAI_KEYS)
        if "model_id" not in data:
            raise AgentConfigError("openai model spec: model_id is required")
        if (
            data.get("base_url")
            and str(data["base_url"]).rstrip("/") != _env_base_url()
        ):
            # A spec must not be able to send OPENAI_API_KEY to an endpoint of its choosing:
            # the key goes only where the environment points (set OPENAI_BASE_URL).
            data["api_key"] = ""
        return OpenAIModel(**data)
    if provider == "scripted":
        _check_keys("scripted model spec", data, ("script", "loop", "model_id"))
        script = data.pop("script", None)
        if not isinstance(script, list):
            raise AgentConfigError(
                "scripted model spec: script must be a list of replies"
            )
        try:
            return ScriptedModel(script, **data)
        except ValueError as exc:
            raise AgentConfigError(f"scripted model spec: {exc}") from None
    if provider == "echo":
        _check_keys("echo model spec", data, ("prefix", "model_id"))
        return EchoModel(**data)
    raise AgentConfigError(
        f"unknown model provider {provider!r} (known: 'openai', 'scripted', 'echo')"
    )


def _strategy(value: Any) -> Optional[ReasoningStrategy]:
    if value is None or isinstance(value, ReasoningStrategy):
        return value
    if isinstance(value, str):
        return strategy_from_spec(value)
    if isinstance(value, Mapping):
        _check_keys("strategy spec", value, ("type", "config"))
        if "type" not in value:
            raise AgentConfigError("strategy spec: type is required")
        return strategy_from_spec(str(value["type"]), value.get("config") or {})
    # A spec dataclass (ReasoningStrategySpec) has .type and .config.
    kind = getattr(value, "type", None)
    if isinstance(kind, str):
        return strategy_from_spec(kind, getattr(value, "config", None) or {})
    raise AgentConfigError(f"invalid strategy spec {value!r}")


def agent_from_spec(params: Mapping[str, Any], *, name: Optional[str] = None) -> Agent:
    """Build an agent from JSON params (see the module docstring).

    Args:
        params: ``model`` (required; see :func:`model_from_spec`), ``system_prompt``,
            ``tools`` (graph tool names), ``output_mode``, ``strategy`` (a type name or
            ``{"type", "config"}``), ``max_steps``, ``parallel_tool_execution``,
            ``json_retries``, ``model_options``, ``name``, ``memory``,
            ``max_observation_chars``.
        name: Default agent name (e.g. the node id).

    Returns:
        The agent.

    Raises:
        AgentConfigError: A missing model, or an unknown or invalid key (named).
    """
    _check_keys("agent spec", params, _AGENT_KEYS)
    data = dict(params)
    if "model" not in data:
        raise AgentConfigError("agent spec: model is required")
    data["model"] = model_from_spec(data["model"])
    strategy = data.pop("strategy", None)
    if strategy is None:
        strategy = data.pop("reasoning_strategy", None)
    data["reasoning_strategy"] = _strategy(strategy)
    tools = data.get("tools", [])
    if not isinstance(tools, list) or not all(isinstance(t, str) for t in tools):
        raise AgentConfigError("agent spec: tools must be a list of graph tool names")
    if name is not None:
        data.setdefault("name", name)
    try:
        return Agent(config=AgentConfig(**data))
    except TypeError as exc:  # pragma: no cover - keys are checked above
        raise AgentConfigError(f"agent spec: {exc}") from None


def _agent_nodes(graph: Any) -> Dict[str, Any]:
    from spark_core.agents.node import AgentNode

    return {nid: n for nid, n in graph.nodes.items() if isinstance(n, AgentNode)}


def bind_strategies(
    graph: Any, bindings: Iterable[Any]
) -> Dict[str, ReasoningStrategy]:
    """Apply strategy bindings (``MissionStrategyBindingSpec`` or dicts) to a graph's agents.

    Args:
        graph: A graph whose agent nodes are :class:`~spark_core.agents.node.AgentNode`.
        bindings: Items with ``target`` (node id) and ``strategy`` (``{"type", "config"}``
            or an object with ``type`` / ``config``).

    Returns:
        Node id -> the strategy now used.

    Raises:
        AgentConfigError: A target is not an agent node of the graph, or a strategy is
            invalid (nothing is changed then).
    """
    agents = _agent_nodes(graph)
    planned: Dict[str, ReasoningStrategy] = {}
    for binding in bindings:
        if isinstance(binding, Mapping):
            target, spec = binding.get("target"), binding.get("strategy")
        else:
            target, spec = getattr(binding, "target", None), getattr(
                binding, "strategy", None
            )
        if target not in agents:
            raise AgentConfigError(
                f"strategy binding targets {target!r}, which is not an agent node "
                f"(agent nodes: {sorted(agents)})"
            )
        strategy = _strategy(spec)
        if strategy is None:
            raise AgentConfigError(f"strategy binding for {target!r} has no strategy")
        planned[str(target)] = strategy
    for target, strategy in planned.items():
        agents[target].agent.strategy = strategy
    return planned


def replace_models(graph: Any, factory: Callable[[str, Any], Any]) -> int:
    """Swap the model of every agent node (e.g. scripted models for a simulation).

    Args:
        graph: The graph.
        factory: ``factory(node_id, current_model)`` returning the new model (or the
            current one to keep it).

    Returns:
        How many agent nodes were visited.

    Raises:
        AgentConfigError: The factory returned something that is not a model.
    """
    agents = _agent_nodes(graph)
    for node_id, node in agents.items():
        model = factory(node_id, node.agent.config.model)
        if not callable(getattr(model, "complete", None)):
            raise AgentConfigError(
                f"replace_models: factory gave {model!r} for {node_id!r}"
            )
        node.agent.config.model = model
    return len(agents)
