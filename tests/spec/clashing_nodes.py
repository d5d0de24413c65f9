"""A node class under names the compiled code uses itself (``sys``, ``Graph``, ``EchoNode``...).

Compiled code imports it as ``from tests.spec.clashing_nodes import sys as ...``: the alias
must not replace the module's own ``sys`` or built-in node classes.
"""

from __future__ import annotations

from typing import Any, Dict

from spark_core.nodes import ExecutionContext, Node


class Clash(Node):
    """Passes its input on; its params are named like ``_make``'s own arguments."""

    def __init__(
        self, cls: Any = None, node_id: Any = None, params: Any = None, **extra: Any
    ) -> None:
        super().__init__(name=extra.pop("name", None), config=extra.pop("config", None))
        self.received = {"cls": cls, "node_id": node_id, "params": params, **extra}

    async def process(self, context: ExecutionContext) -> Dict[str, Any]:
        content = context.inputs.content
        return dict(content) if isinstance(content, dict) else {"value": content}


#: Every name below is one the compiled module (or its build_graph) defines or imports.
NAMES = (
    "sys",
    "json",
    "inspect",
    "Any",
    "Dict",
    "Optional",
    "Graph",
    "Tool",
    "Node",
    "NodeConfig",
    "SparkError",
    "EchoNode",
    "MergeNode",
    "TemplateNode",
    "ToolCallNode",
    "MissionState",
    "MissionStateModel",
    "MissionPlan",
    "PlanManager",
    "PlanStep",
    "build_graph",
    "main",
    "graph",
    "plan",
    "tool_t",
    "C_Clash",
    "n_a",
)
for _name in NAMES:
    globals()[_name] = Clash
