"""Edges between nodes and their conditions (the graph builds them from `a >> b`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, Optional

from spark_core.errors import EdgeConditionError, GraphDefinitionError
from spark_core.expr import Expression

EDGE_KINDS = ("always", "equals", "expr", "callable")


@dataclass(frozen=True)
class Edge:
    """A directed edge ``source -> target`` with an optional condition.

    Attributes:
        source: Id of the source node.
        target: Id of the target node.
        kind: ``"always"``, ``"equals"`` (output keys equal values), ``"expr"`` (a safe
            expression, see :mod:`spark_core.expr`) or ``"callable"``.
        value: ``None``, the dict of key -> expected value, the expression text, or the
            callable (called with the output, truthy means the edge fires).
    """

    source: str
    target: str
    kind: str = "always"
    value: Any = None
    _expr: Optional[Expression] = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.kind not in EDGE_KINDS:
            raise GraphDefinitionError(
                f"edge kind must be one of {EDGE_KINDS}, got {self.kind!r}"
            )
        if self.kind == "expr" and self._expr is None:
            object.__setattr__(self, "_expr", Expression(self.value))
        elif self.kind == "equals" and not isinstance(self.value, dict):
            raise GraphDefinitionError(
                "an 'equals' edge needs a dict of key -> expected value"
            )
        elif self.kind == "callable" and not callable(self.value):
            raise GraphDefinitionError("a 'callable' edge needs a callable condition")

    def matches(self, output: Optional[Dict[str, Any]]) -> bool:
        """Tell whether this edge fires for ``output`` (the source node's output).

        Args:
            output: What the source node returned (a dict or ``None``).

        Returns:
            True when the condition holds.

        Raises:
            EdgeConditionError: The condition raised an error.
        """
        kind = self.kind
        if kind == "always":
            return True
        if kind == "equals":
            if not isinstance(output, dict):
                return False
            for key, expected in self.value.items():
                if key not in output or output[key] != expected:
                    return False
            return True
        try:
            if kind == "expr":
                assert self._expr is not None
                return bool(self._expr.evaluate({"outputs": output}))
            return bool(self.value(output))
        except EdgeConditionError as exc:
            raise EdgeConditionError(
                f"edge {self.source} -> {self.target}: {exc}"
            ) from None
        except Exception as exc:
            raise EdgeConditionError(
                f"edge {self.source} -> {self.target}: condition raised "
                f"{type(exc).__name__}: {exc}"
            ) from exc

    def label(self) -> str:
        """Describe the condition in a few words (for diagrams).

        Returns:
            A short label, ``''`` for unconditional edges.
        """
        if self.kind == "equals":
            return ", ".join(f"{k}={v!r}" for k, v in self.value.items())
        if self.kind == "expr":
            return str(self.value)
        if self.kind == "callable":
            return getattr(self.value, "__name__", "condition")
        return ""


def expression_text(text: str) -> str:
    """Compile an edge expression and return its text (as an ``expr`` edge keeps it).

    Args:
        text: The expression, e.g. ``"$.outputs.score > 0.5"``.

    Returns:
        The expression's text.

    Raises:
        ExpressionError: ``text`` is not a valid expression.
    """
    return Expression(text).text


__all__ = ["Edge", "EDGE_KINDS", "expression_text"]
