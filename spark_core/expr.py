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

Every expression runs in bounded time and memory. The text is at most :data:`MAX_LENGTH`
characters and :data:`MAX_DEPTH` levels deep, has no loops and no ``**``; at run time
arithmetic and functions refuse integers of :data:`MAX_INT_DIGITS` digits or more (and
``round()`` to that many digits), ``*`` and ``%`` work on numbers only (no text repetition,
no ``%`` formatting), and one evaluation builds at most :data:`MAX_SIZE` characters, list
items and digits in all. Going past a bound raises
:class:`~spark_core.errors.ExpressionLimitError`, an ``ExpressionError`` that is also an
``EdgeConditionError``.
"""

from __future__ import annotations

import ast
import operator
import reprlib
from typing import Any, Callable, Dict, List

from spark_core.errors import (
    EdgeConditionError,
    ExpressionError,
    ExpressionLimitError,
)

MAX_LENGTH = 2000
MAX_DEPTH = 50
#: Integers arithmetic and functions accept or make have fewer digits than this; it also
#: bounds ``round()``'s digits and the text ``int()`` reads.
MAX_INT_DIGITS = 1000
#: Characters, list items and digits one evaluation may build in all.
MAX_SIZE = 1_000_000

_INT_LIMIT = 10**MAX_INT_DIGITS

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


def _bounded(value: Any, where: str) -> Any:
    """Refuse an integer of MAX_INT_DIGITS digits or more (arithmetic on it is superlinear)."""
    if isinstance(value, int) and not -_INT_LIMIT < value < _INT_LIMIT:
        raise ExpressionLimitError(
            f"{where}: integers in expressions must have fewer than {MAX_INT_DIGITS} digits"
        )
    return value


class _ShortRepr(reprlib.Repr):
    """reprlib's short reprs, without writing out an integer past the bound."""

    def repr_int(self, x: int, level: int) -> str:
        if not -_INT_LIMIT < x < _INT_LIMIT:
            return f"<an integer of {MAX_INT_DIGITS} digits or more>"
        return super().repr_int(x, level)


_short = _ShortRepr().repr  # for error messages, whatever the value's size


def _reason(exc: BaseException) -> str:
    """The exception's message, cut short (Python's own may quote a whole huge text)."""
    text = str(exc)
    return text if len(text) <= 200 else text[:200] + "..."


def _text_size(value: Any, budget: int) -> int:
    """A lower bound of ``len(str(value))``, counted only up to just past ``budget``."""
    total, stack = 0, [value]
    while stack and total <= budget:
        item = stack.pop()
        if isinstance(item, str):
            total += len(item) + 2
        elif isinstance(item, int):
            total += _bounded(item, "str()").bit_length() // 4 + 1
        elif isinstance(item, (list, tuple)):
            total += len(item) + 2
            stack.extend(item)
        elif isinstance(item, dict):
            total += 2 * len(item) + 2
            stack.extend(item)
            stack.extend(item.values())
        else:
            total += 4
    return total


class _Evaluator:
    __slots__ = ("root", "budget")

    def __init__(self, root: Dict[str, Any]) -> None:
        self.root = root
        self.budget = MAX_SIZE  # what this evaluation may still build

    def charge(self, size: int) -> None:
        """Spend ``size`` of the budget, or refuse when it is exhausted."""
        self.budget -= size
        if self.budget < 0:
            raise ExpressionLimitError(
                f"the expression builds more than {MAX_SIZE:,} characters, items and digits"
            )

    def text(self, value: Any) -> str:
        """``str(value)``, refused when it would overrun the budget."""
        if isinstance(value, str):
            return value
        estimate = _text_size(value, self.budget)
        self.charge(estimate)
        text = str(value)
        self.charge(
            len(text) - estimate
        )  # escapes make a text longer than its estimate
        return text

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
            _bounded(operand, "arithmetic")
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
            return self.binop(node.op, self.eval(node.left), self.eval(node.right))
        if isinstance(node, ast.IfExp):
            return (
                self.eval(node.body) if self.eval(node.test) else self.eval(node.orelse)
            )
        if isinstance(node, (ast.List, ast.Tuple)):
            self.charge(len(node.elts))
            return [self.eval(item) for item in node.elts]
        if isinstance(node, ast.Call):
            name = node.func.id  # type: ignore[attr-defined]
            return self.call(name, [self.eval(arg) for arg in node.args])
        if isinstance(node, ast.Expression):
            return self.eval(node.body)
        raise EdgeConditionError(
            f"cannot evaluate {type(node).__name__}"
        )  # pragma: no cover

    def binop(self, op: ast.operator, left: Any, right: Any) -> Any:
        """Apply an arithmetic operator within the language's bounds."""
        if isinstance(op, (ast.Mult, ast.Mod)) and not (
            isinstance(left, (int, float)) and isinstance(right, (int, float))
        ):  # no text repetition, no '%' formatting
            symbol = "*" if isinstance(op, ast.Mult) else "%"
            raise ExpressionLimitError(
                f"'{symbol}' works on numbers only in expressions"
            )
        sequences = isinstance(left, (str, list)) and type(left) is type(right)
        if isinstance(op, ast.Add) and sequences:
            self.charge(len(left) + len(right))
        _bounded(left, "arithmetic")
        _bounded(right, "arithmetic")
        try:
            result = _BINOPS[type(op)](left, right)
        except (TypeError, ArithmeticError) as exc:
            raise EdgeConditionError(
                f"cannot compute {_short(left)} and {_short(right)}: {_reason(exc)}"
            )
        return self.made(result, "arithmetic")

    def made(self, value: Any, where: str) -> Any:
        """Charge a new integer's digits to the budget and refuse it past the bound."""
        if isinstance(value, int):
            self.charge(value.bit_length() // 3 + 1)
            _bounded(value, where)
        return value

    def call(self, name: str, args: List[Any]) -> Any:
        """Call one of the language's functions within its bounds."""
        for arg in args:
            _bounded(arg, f"{name}()")
        if name == "round" and len(args) == 2 and isinstance(args[1], int):
            if not -MAX_INT_DIGITS <= args[1] <= MAX_INT_DIGITS:
                raise ExpressionLimitError(
                    f"round() digits must be between -{MAX_INT_DIGITS} and "
                    f"{MAX_INT_DIGITS}, got {args[1]}"
                )
        if name == "int" and args and isinstance(args[0], str):
            if len(args[0]) > MAX_INT_DIGITS:
                raise ExpressionLimitError(
                    f"int() reads texts of at most {MAX_INT_DIGITS} characters"
                )
        if name in ("str", "lower", "upper") and len(args) == 1:
            text = self.text(args[0])
            if name != "str":
                self.charge(len(text))
            args = [text]
        try:
            result = _FUNCTIONS[name](*args)
        except (TypeError, ValueError, ArithmeticError) as exc:
            raise EdgeConditionError(f"{name}() failed: {_reason(exc)}")
        return self.made(result, f"{name}()")


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
            ExpressionLimitError: The expression went past a bound of the language.
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


__all__ = ["MAX_INT_DIGITS", "MAX_SIZE", "Expression", "compile_expression", "evaluate"]
