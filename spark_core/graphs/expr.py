"""A small, safe expression language for conditional edges.

Expressions look like Python (``$.outputs.score > 0.5 and $.outputs.label in ['a', 'b']``)
but are never passed to ``eval``: the text is parsed with :mod:`ast` and walked by a tiny
evaluator that accepts only a whitelisted grammar:

* ``$`` is the root object (for edges: ``{"outputs": <the node's output>}``); a bare name such
  as ``outputs`` also reads from the root. ``a.b`` and ``a['b']`` read dict keys (never Python
  attributes); ``a[0]`` indexes a list. A missing key reads as ``null``.
* Literals: numbers, strings, ``true``/``false``/``null`` (and Python's spellings), lists.
* Operators: ``and or not``, ``== != < <= > >= in not in``, ``+ - * / // %``, unary ``-``,
  ``x if cond else y``. An ordering comparison between mismatched types (say ``null > 0.5``)
  is false rather than an error.
* Functions: ``len abs min max int float str bool round lower upper``.

Names that start with an underscore, attribute calls, comprehensions, lambdas, ``**`` and
everything else are rejected when the expression is compiled.
"""

from __future__ import annotations

import ast
import operator
from typing import Any, Callable, Dict

from spark_core.errors import EdgeConditionError, ExpressionError

MAX_LENGTH = 2000
MAX_DEPTH = 50

_ROOT = "__spark_root__"
_CONSTANTS: Dict[str, Any] = {
    "true": True,
    "false": False,
    "null": None,
    "none": None,
    "True": True,
    "False": False,
    "None": None,
}


def _lower(value: Any) -> str:
    return str(value).lower()


def _upper(value: Any) -> str:
    return str(value).upper()


_FUNCTIONS: Dict[str, Callable[..., Any]] = {
    "len": len,
    "abs": abs,
    "min": min,
    "max": max,
    "int": int,
    "float": float,
    "str": str,
    "bool": bool,
    "round": round,
    "lower": _lower,
    "upper": _upper,
}
_BINOPS: Dict[type, Callable[[Any, Any], Any]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
}
_CMPOPS: Dict[type, Callable[[Any, Any], bool]] = {
    ast.Eq: operator.eq,
    ast.NotEq: operator.ne,
    ast.Lt: operator.lt,
    ast.LtE: operator.le,
    ast.Gt: operator.gt,
    ast.GtE: operator.ge,
    ast.In: lambda a, b: a in b,
    ast.NotIn: lambda a, b: a not in b,
    ast.Is: operator.is_,
    ast.IsNot: operator.is_not,
}
_ALLOWED = (
    ast.Expression,
    ast.BoolOp,
    ast.And,
    ast.Or,
    ast.UnaryOp,
    ast.Not,
    ast.USub,
    ast.UAdd,
    ast.BinOp,
    ast.Compare,
    ast.IfExp,
    ast.Name,
    ast.Load,
    ast.Attribute,
    ast.Subscript,
    ast.Constant,
    ast.List,
    ast.Tuple,
    ast.Call,
    *_BINOPS,
    *_CMPOPS,
)


def _preprocess(text: str) -> str:
    """Replace ``$`` (outside string literals) by the internal root name."""
    out = []
    quote = ""
    escaped = False
    for ch in text:
        if quote:
            out.append(ch)
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == quote:
                quote = ""
        elif ch in "'\"":
            quote = ch
            out.append(ch)
        elif ch == "$":
            out.append(_ROOT)
        else:
            out.append(ch)
    return "".join(out)


def _validate(tree: ast.AST, text: str) -> None:
    for node in ast.walk(tree):
        if not isinstance(node, _ALLOWED):
            raise ExpressionError(
                f"{type(node).__name__} is not allowed in expression {text!r}"
            )
        if isinstance(node, ast.Name) and node.id != _ROOT and node.id.startswith("_"):
            raise ExpressionError(
                f"name {node.id!r} is not allowed in expression {text!r}"
            )
        if isinstance(node, ast.Attribute) and node.attr.startswith("_"):
            raise ExpressionError(
                f"field {node.attr!r} is not allowed in expression {text!r}"
            )
        if isinstance(node, ast.Call):
            if not isinstance(node.func, ast.Name) or node.func.id not in _FUNCTIONS:
                raise ExpressionError(
                    f"only the functions {sorted(_FUNCTIONS)} may be called in {text!r}"
                )
            if node.keywords:
                raise ExpressionError(f"keyword arguments are not allowed in {text!r}")
        if isinstance(node, ast.Subscript) and isinstance(node.slice, ast.Slice):
            raise ExpressionError(f"slices are not allowed in expression {text!r}")
        if isinstance(node, ast.Constant) and not isinstance(
            node.value, (str, int, float, bool, type(None))
        ):
            raise ExpressionError(f"constant {node.value!r} is not allowed in {text!r}")


def _depth(tree: ast.AST) -> int:
    """Nesting depth of the tree (iterative, so a hostile input cannot blow the stack)."""
    deepest = 0
    stack = [(tree, 1)]
    while stack:
        node, level = stack.pop()
        deepest = max(deepest, level)
        stack.extend((child, level + 1) for child in ast.iter_child_nodes(node))
    return deepest


def _lookup(container: Any, key: Any) -> Any:
    if isinstance(container, dict):
        return container.get(key)
    if isinstance(container, (list, tuple, str)) and isinstance(key, int):
        try:
            return container[key]
        except IndexError:
            return None
    return None


class _Evaluator:
    __slots__ = ("root",)

    def __init__(self, root: Dict[str, Any]) -> None:
        self.root = root

    def eval(self, node: ast.AST) -> Any:  # noqa: C901 - one branch per grammar rule
        if isinstance(node, ast.Constant):
            return node.value
        if isinstance(node, ast.Name):
            if node.id == _ROOT:
                return self.root
            if node.id in _CONSTANTS:
                return _CONSTANTS[node.id]
            return self.root.get(node.id)
        if isinstance(node, ast.Attribute):
            return _lookup(self.eval(node.value), node.attr)
        if isinstance(node, ast.Subscript):
            index = node.slice
            if isinstance(index, ast.Index):  # pragma: no cover - Python 3.8 AST shape
                index = index.value  # type: ignore[attr-defined]
            return _lookup(self.eval(node.value), self.eval(index))
        if isinstance(node, ast.BoolOp):
            if isinstance(node.op, ast.And):
                value: Any = True
                for item in node.values:
                    value = self.eval(item)
                    if not value:
                        return value
                return value
            value = False
            for item in node.values:
                value = self.eval(item)
                if value:
                    return value
            return value
        if isinstance(node, ast.UnaryOp):
            operand = self.eval(node.operand)
            if isinstance(node.op, ast.Not):
                return not operand
            if not isinstance(operand, (int, float)):
                return None
            return -operand if isinstance(node.op, ast.USub) else +operand
        if isinstance(node, ast.Compare):
            left = self.eval(node.left)
            for op, right_node in zip(node.ops, node.comparators):
                right = self.eval(right_node)
                try:
                    ok = _CMPOPS[type(op)](left, right)
                except TypeError:
                    return False
                if not ok:
                    return False
                left = right
            return True
        if isinstance(node, ast.BinOp):
            left = self.eval(node.left)
            right = self.eval(node.right)
            if isinstance(node.op, ast.Mult) and not (
                isinstance(left, (int, float)) and isinstance(right, (int, float))
            ):
                raise EdgeConditionError("'*' works on numbers only in expressions")
            try:
                return _BINOPS[type(node.op)](left, right)
            except (TypeError, ZeroDivisionError) as exc:
                raise EdgeConditionError(
                    f"cannot compute {left!r} and {right!r}: {exc}"
                )
        if isinstance(node, ast.IfExp):
            return (
                self.eval(node.body) if self.eval(node.test) else self.eval(node.orelse)
            )
        if isinstance(node, (ast.List, ast.Tuple)):
            return [self.eval(item) for item in node.elts]
        if isinstance(node, ast.Call):
            func = _FUNCTIONS[node.func.id]  # type: ignore[attr-defined]
            args = [self.eval(arg) for arg in node.args]
            try:
                return func(*args)
            except (TypeError, ValueError) as exc:
                raise EdgeConditionError(f"{node.func.id}() failed: {exc}")  # type: ignore
        if isinstance(node, ast.Expression):
            return self.eval(node.body)
        raise EdgeConditionError(
            f"cannot evaluate {type(node).__name__}"
        )  # pragma: no cover


class Expression:
    """A compiled expression; evaluate it with :meth:`evaluate`.

    Attributes:
        text: The source text.
    """

    __slots__ = ("text", "_tree")

    def __init__(self, text: str) -> None:
        """Parse and validate ``text``.

        Args:
            text: The expression source.

        Raises:
            ExpressionError: The text is empty, too long, not valid syntax or uses something
                outside the safe grammar.
        """
        if not isinstance(text, str) or not text.strip():
            raise ExpressionError(
                f"an expression must be a non-empty string, got {text!r}"
            )
        if len(text) > MAX_LENGTH:
            raise ExpressionError(f"expression is longer than {MAX_LENGTH} characters")
        try:
            tree = ast.parse(_preprocess(text.strip()), mode="eval")
        except SyntaxError as exc:
            raise ExpressionError(f"invalid expression {text!r}: {exc.msg}") from None
        except ValueError as exc:  # e.g. NUL bytes (Python < 3.12)
            raise ExpressionError(f"invalid expression {text!r}: {exc}") from None
        except (RecursionError, MemoryError):
            raise ExpressionError("expression is nested too deeply") from None
        if _depth(tree) > MAX_DEPTH:
            raise ExpressionError(
                f"expression is nested deeper than {MAX_DEPTH} levels"
            )
        _validate(tree, text)
        self.text = text
        self._tree = tree

    def evaluate(self, root: Dict[str, Any]) -> Any:
        """Evaluate against ``root`` (what ``$`` and bare names refer to).

        Args:
            root: The root mapping, e.g. ``{"outputs": {...}}``.

        Returns:
            The value of the expression.

        Raises:
            EdgeConditionError: Arithmetic or a function call failed at run time.
        """
        return _Evaluator(root).eval(self._tree)

    def __repr__(self) -> str:
        return f"Expression({self.text!r})"


def compile_expression(text: str) -> Expression:
    """Compile ``text`` into an :class:`Expression` (raises ``ExpressionError`` if invalid).

    Args:
        text: The expression source.

    Returns:
        The compiled expression.
    """
    return Expression(text)


def evaluate(text: str, root: Dict[str, Any]) -> Any:
    """Compile and evaluate ``text`` against ``root`` in one call.

    Args:
        text: The expression source.
        root: What ``$`` refers to.

    Returns:
        The value of the expression.
    """
    return Expression(text).evaluate(root)


__all__ = ["Expression", "compile_expression", "evaluate"]
