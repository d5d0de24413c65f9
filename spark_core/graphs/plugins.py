"""Plug-ins: what ``Graph(telemetry=..., policy_set=..., tools=...)`` builds, from outside.

The engine's core (graph, scheduler, node runner, state) imports no plug-in package. A
plug-in registers a factory under a name when its module is imported
(``plugins.register("telemetry", TelemetryObserver)``); when a graph needs a factory that
nobody registered yet, :func:`factory` imports the module that provides it by default (the
table below, in the manner of entry points), whose import registers it.

Names and what their factory takes and returns:

* ``"telemetry"``: the ``telemetry=`` argument -> a ``GraphObserver``;
* ``"policy_set"``: the ``policy_set=`` argument -> a ``GraphObserver`` that checks
  ``node:execute`` before each node;
* ``"tool_executor"``: ``(tools, policy_set)`` -> what ``context.call_tool`` calls;
* ``"approvals"``: the graph's ``GraphState`` -> its approval store.
"""

from __future__ import annotations

import importlib
from typing import Any, Callable, Dict

# Name -> the module that registers its factory when imported.
DEFAULT_PROVIDERS: Dict[str, str] = {
    "telemetry": "spark_core.telemetry.instrument",
    "policy_set": "spark_core.governance.executor",
    "tool_executor": "spark_core.governance.executor",
    "approvals": "spark_core.governance.approvals",
}

_FACTORIES: Dict[str, Callable[..., Any]] = {}


def register(name: str, factory: Callable[..., Any]) -> None:
    """Register (or replace) the factory of plug-in ``name``.

    Args:
        name: The plug-in's name (see the module docstring).
        factory: What builds it.
    """
    _FACTORIES[name] = factory


def factory(name: str) -> Callable[..., Any]:
    """Return the factory of plug-in ``name``, importing its default provider if needed.

    Args:
        name: The plug-in's name.

    Returns:
        The registered factory.

    Raises:
        LookupError: Nobody registered ``name`` and no default provider does.
    """
    found = _FACTORIES.get(name)
    if found is None and name in DEFAULT_PROVIDERS:
        importlib.import_module(DEFAULT_PROVIDERS[name])
        found = _FACTORIES.get(name)
    if found is None:
        raise LookupError(f"no plug-in registered under {name!r}")
    return found


__all__ = ["register", "factory", "DEFAULT_PROVIDERS"]
