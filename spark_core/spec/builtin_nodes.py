"""Node types a spec can name without any import: ``echo``, ``merge``, ``template``,
``set_state``, ``tool_call``, ``step`` and ``join``.

Each class takes its spec ``params`` as keyword arguments and gives them back from
``spec_params()``, so a graph built from these nodes exports to the same spec.
"""

from __future__ import annotations

import copy
from typing import Any, Dict, List, Mapping, Optional, Type

from spark_core.nodes import ExecutionContext, JoinNode, Node, NodeConfig
from spark_core.spec.errors import SpecLoadError
from spark_core.templates import fill_template

__all__ = [
    "SpecNode",
    "EchoNode",
    "MergeNode",
    "TemplateNode",
    "SetStateNode",
    "ToolCallNode",
    "StepNode",
    "SpecJoinNode",
    "BUILTIN_NODES",
    "fill_template",
]


def _as_dict(content: Any) -> Dict[str, Any]:
    return dict(content) if isinstance(content, Mapping) else {"value": content}


def _require_str(node_type: str, name: str, value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise SpecLoadError(
            f"{node_type} node: param {name!r} must be a non-empty string"
        )
    return value


def _require_dict(node_type: str, name: str, value: Any) -> Dict[str, Any]:
    if not isinstance(value, dict):
        raise SpecLoadError(f"{node_type} node: param {name!r} must be an object")
    return dict(value)


class SpecNode(Node):
    """Base of the built-in node types: a registry name and exportable params.

    Attributes:
        spec_type: The type name specs use for the class (e.g. ``"echo"``).
    """

    spec_type = ""

    def spec_params(self) -> Dict[str, Any]:
        """Return the constructor params as JSON data (for export).

        Returns:
            The params dict (empty for nodes without params).
        """
        return {}


class EchoNode(SpecNode):
    """Passes its input through unchanged (``type: "echo"``)."""

    spec_type = "echo"

    async def process(self, context: ExecutionContext) -> Dict[str, Any]:
        """Return the input.

        Args:
            context: The execution context.

        Returns:
            The input (a non-dict input becomes ``{"value": input}``).
        """
        return _as_dict(context.inputs.content)


class MergeNode(SpecNode):
    """Adds fixed ``values`` to its input (``type: "merge"``)."""

    spec_type = "merge"

    def __init__(
        self,
        name: Optional[str] = None,
        config: Optional[NodeConfig] = None,
        values: Optional[Dict[str, Any]] = None,
    ) -> None:
        """Create the node.

        Args:
            name: Node id.
            config: Capabilities.
            values: Keys and values added to (or replacing those of) the input.
        """
        super().__init__(name=name, config=config)
        self.values = _require_dict(
            "merge", "values", values if values is not None else {}
        )

    def spec_params(self) -> Dict[str, Any]:
        """Return ``{"values": ...}``."""
        return {"values": copy.deepcopy(self.values)}

    async def process(self, context: ExecutionContext) -> Dict[str, Any]:
        """Return the input updated with ``values``.

        Args:
            context: The execution context.

        Returns:
            The merged dict.
        """
        out = _as_dict(context.inputs.content)
        out.update(copy.deepcopy(self.values))
        return out


class TemplateNode(SpecNode):
    """Fills ``{key}`` placeholders from the input (``type: "template"``).

    Only plain ``{name}`` placeholders are replaced (see :func:`fill_template`), so a
    template from a spec cannot reach into Python objects.
    """

    spec_type = "template"

    def __init__(
        self,
        name: Optional[str] = None,
        config: Optional[NodeConfig] = None,
        template: str = "",
        output_key: str = "text",
    ) -> None:
        """Create the node.

        Args:
            name: Node id.
            config: Capabilities.
            template: Text with ``{key}`` placeholders.
            output_key: Output key receiving the filled text.
        """
        super().__init__(name=name, config=config)
        if not isinstance(template, str):
            raise SpecLoadError("template node: param 'template' must be a string")
        self.template = template
        self.output_key = _require_str("template", "output_key", output_key)

    def spec_params(self) -> Dict[str, Any]:
        """Return ``{"template", "output_key"}``."""
        return {"template": self.template, "output_key": self.output_key}

    async def process(self, context: ExecutionContext) -> Dict[str, Any]:
        """Return the input plus the filled template under ``output_key``.

        Args:
            context: The execution context.

        Returns:
            The output dict; unknown placeholders become empty strings.
        """
        out = _as_dict(context.inputs.content)
        out[self.output_key] = fill_template(self.template, out)
        return out


class SetStateNode(SpecNode):
    """Writes to the graph state, then passes its input on (``type: "set_state"``)."""

    spec_type = "set_state"

    def __init__(
        self,
        name: Optional[str] = None,
        config: Optional[NodeConfig] = None,
        values: Optional[Dict[str, Any]] = None,
        from_inputs: Optional[Dict[str, str]] = None,
    ) -> None:
        """Create the node.

        Args:
            name: Node id.
            config: Capabilities.
            values: Fixed state keys and values to set.
            from_inputs: State key -> input key to copy (missing input keys are skipped).
        """
        super().__init__(name=name, config=config)
        self.values = _require_dict(
            "set_state", "values", values if values is not None else {}
        )
        mapping = _require_dict(
            "set_state", "from_inputs", from_inputs if from_inputs is not None else {}
        )
        for key, source in mapping.items():
            _require_str("set_state", f"from_inputs.{key}", source)
        self.from_inputs: Dict[str, str] = mapping

    def spec_params(self) -> Dict[str, Any]:
        """Return ``{"values", "from_inputs"}``."""
        return {
            "values": copy.deepcopy(self.values),
            "from_inputs": dict(self.from_inputs),
        }

    async def process(self, context: ExecutionContext) -> Dict[str, Any]:
        """Update the graph state and return the input.

        Args:
            context: The execution context.

        Returns:
            The input.
        """
        content = _as_dict(context.inputs.content)
        update = copy.deepcopy(self.values)
        for key, source in self.from_inputs.items():
            if source in content:
                update[key] = content[source]
        if context.graph_state is not None and update:
            await context.graph_state.update(update)
        return content


class ToolCallNode(SpecNode):
    """Calls a tool through ``ctx.call_tool`` (``type: "tool_call"``).

    The arguments are ``arguments`` (fixed) plus the input keys listed in ``input_keys``;
    the result goes under ``result_key`` in the output, next to the input.
    """

    spec_type = "tool_call"

    def __init__(
        self,
        name: Optional[str] = None,
        config: Optional[NodeConfig] = None,
        tool: str = "",
        arguments: Optional[Dict[str, Any]] = None,
        input_keys: Optional[List[str]] = None,
        result_key: str = "result",
    ) -> None:
        """Create the node.

        Args:
            name: Node id.
            config: Capabilities.
            tool: The tool's name.
            arguments: Fixed arguments.
            input_keys: Input keys passed as arguments of the same name.
            result_key: Output key receiving the tool's result.
        """
        super().__init__(name=name, config=config)
        self.tool = _require_str("tool_call", "tool", tool)
        self.arguments = _require_dict(
            "tool_call", "arguments", arguments if arguments is not None else {}
        )
        keys = input_keys if input_keys is not None else []
        if not isinstance(keys, list) or not all(isinstance(k, str) for k in keys):
            raise SpecLoadError(
                "tool_call node: param 'input_keys' must be a list of strings"
            )
        self.input_keys: List[str] = list(keys)
        self.result_key = _require_str("tool_call", "result_key", result_key)

    def spec_params(self) -> Dict[str, Any]:
        """Return ``{"tool", "arguments", "input_keys", "result_key"}``."""
        return {
            "tool": self.tool,
            "arguments": copy.deepcopy(self.arguments),
            "input_keys": list(self.input_keys),
            "result_key": self.result_key,
        }

    async def process(self, context: ExecutionContext) -> Dict[str, Any]:
        """Call the tool and return the input plus its result.

        Args:
            context: The execution context.

        Returns:
            The output dict.
        """
        content = _as_dict(context.inputs.content)
        arguments = copy.deepcopy(self.arguments)
        for key in self.input_keys:
            if key in content:
                arguments[key] = content[key]
        result = await context.call_tool(self.tool, **arguments)
        content[self.result_key] = result
        return content


class StepNode(SpecNode):
    """A scaffold step: records its id in ``steps_completed`` (``type: "step"``).

    ``mission-generate`` builds its default graph from these; replace them with real nodes.
    """

    spec_type = "step"

    def __init__(
        self,
        name: Optional[str] = None,
        config: Optional[NodeConfig] = None,
        description: str = "",
    ) -> None:
        """Create the node.

        Args:
            name: Node id (usually the plan step's id).
            config: Capabilities.
            description: What the step does.
        """
        super().__init__(name=name, config=config)
        if not isinstance(description, str):
            raise SpecLoadError("step node: param 'description' must be a string")
        self.description = description

    def spec_params(self) -> Dict[str, Any]:
        """Return ``{"description"}``."""
        return {"description": self.description}

    async def process(self, context: ExecutionContext) -> Dict[str, Any]:
        """Append this node's id to ``steps_completed`` and note it in the graph state.

        Args:
            context: The execution context.

        Returns:
            The input plus the updated ``steps_completed`` list.
        """
        content = _as_dict(context.inputs.content)
        done = content.get("steps_completed")
        content["steps_completed"] = (list(done) if isinstance(done, list) else []) + [
            self.id
        ]
        if context.graph_state is not None:
            await context.graph_state.set("last_step", self.id)
        return content


class SpecJoinNode(JoinNode):
    """Waits for all its parents; outputs ``{parent id: output}`` (``type: "join"``)."""

    spec_type = "join"

    def spec_params(self) -> Dict[str, Any]:
        """Return ``{}`` (no params)."""
        return {}


#: Registry name -> class of every built-in node type.
BUILTIN_NODES: Dict[str, Type[Node]] = {
    cls.spec_type: cls
    for cls in (EchoNode, MergeNode, TemplateNode, SetStateNode, ToolCallNode, StepNode)
}
BUILTIN_NODES["join"] = SpecJoinNode
