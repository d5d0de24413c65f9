"""Tools: plain functions with a name, a typed parameter schema and argument checks.

Decorate a function with :func:`tool` (or wrap it with :class:`Tool`)::

    @tool
    def write_file(path: str, content: str, overwrite: bool = False) -> dict:
        '''Write text to a file.

        Args:
            path: Where to write.
            content: The text.
            overwrite: Replace an existing file.
        '''

The parameter schema is read from the signature (str, int, float, bool, list/List[X],
dict/Dict[str, X], Optional[X], Literal[...], Any) and the Google-style ``Args:`` section.

Stable API (agents rely on it):

* ``Tool.name``, ``Tool.description``, ``Tool.metadata`` (free dict, e.g. ``risk_tier``;
  its keys are visible to policy conditions).
* ``Tool.schema()`` returns an OpenAI-style function schema
  ``{"name", "description", "parameters": {JSON schema}}``.
* ``Tool.validate(arguments)`` returns the checked arguments or raises
  :class:`ToolArgumentError` naming the argument.
* ``await Tool.invoke(arguments)`` validates then calls (plain functions run in a thread).
* A decorated function stays callable directly: ``write_file("a.txt", "hi")``.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import re
import sys
import typing
from typing import Any, Callable, Dict, List, Mapping, Optional, Tuple, Union, overload

from spark_core.errors import SparkError

__all__ = [
    "Tool",
    "tool",
    "as_tool",
    "ToolError",
    "ToolArgumentError",
    "ToolNotFoundError",
]


class ToolError(SparkError):
    """Base class for tool definition and call errors."""


class ToolArgumentError(ToolError, ValueError):
    """Arguments given to a tool do not fit its parameter schema."""


class ToolNotFoundError(ToolError, KeyError):
    """No tool is registered under the requested name."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]{0,63}$")
_JSON_SCALARS: Dict[Any, Dict[str, Any]] = {
    str: {"type": "string"},
    int: {"type": "integer"},
    float: {"type": "number"},
    bool: {"type": "boolean"},
    type(None): {"type": "null"},
}
_STRING_TYPES: Dict[str, Any] = {
    "str": str,
    "int": int,
    "float": float,
    "bool": bool,
    "dict": dict,
    "list": list,
    "None": type(None),
    "Any": Any,
}


def _resolve_annotations(func: Callable[..., Any]) -> Dict[str, Any]:
    """Evaluate annotations; on Python 3.9 ``X | None`` strings fail, so degrade gently."""
    try:
        return typing.get_type_hints(func)
    except Exception:  # noqa: BLE001 - unresolvable hints fall back to the raw text
        raw = dict(getattr(func, "__annotations__", {}))
        out: Dict[str, Any] = {}
        for key, value in raw.items():
            if isinstance(value, str):
                parts = [p.strip() for p in value.split("|")]
                types = [_STRING_TYPES.get(p, Any) for p in parts]
                if len(types) == 1:
                    out[key] = types[0]
                elif Any in types:
                    out[key] = Any
                else:
                    out[key] = Union[tuple(types)]
            else:
                out[key] = value
        return out


def _json_schema(annotation: Any) -> Dict[str, Any]:
    """Translate a Python annotation into a JSON-schema fragment."""
    if annotation is inspect.Parameter.empty or annotation is Any:
        return {}
    if annotation in _JSON_SCALARS:
        return dict(_JSON_SCALARS[annotation])
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is Union or (sys.version_info >= (3, 10) and _is_union_type(annotation)):
        non_null = [a for a in args if a is not type(None)]
        if len(non_null) == 1 and len(non_null) < len(args):
            inner = _json_schema(non_null[0])
            if "type" in inner and isinstance(inner["type"], str):
                return {**inner, "type": [inner["type"], "null"]}
            return {"anyOf": [inner, {"type": "null"}]}
        return {"anyOf": [_json_schema(a) for a in args]}
    if origin is typing.Literal:
        schema: Dict[str, Any] = {"enum": list(args)}
        kinds = {type(a) for a in args}
        if len(kinds) == 1 and next(iter(kinds)) in _JSON_SCALARS:
            schema["type"] = _JSON_SCALARS[next(iter(kinds))]["type"]
        return schema
    if annotation in (list, tuple, set, frozenset) or origin in (
        list,
        tuple,
        set,
        frozenset,
    ):
        out: Dict[str, Any] = {"type": "array"}
        if args and origin is not tuple:
            out["items"] = _json_schema(args[0])
        return out
    if annotation is dict or origin is dict or origin is Mapping:
        out = {"type": "object"}
        if len(args) == 2 and args[1] is not Any:
            out["additionalProperties"] = _json_schema(args[1])
        return out
    return {}


def _is_union_type(annotation: Any) -> bool:
    union_type = getattr(__import__("types"), "UnionType", None)
    return union_type is not None and isinstance(annotation, union_type)


def _parse_docstring(doc: str) -> Tuple[str, Dict[str, str]]:
    """Return (summary, {param: description}) from a Google-style docstring."""
    doc = inspect.cleandoc(doc or "")
    if not doc:
        return "", {}
    sections = re.split(r"\n\s*\n", doc, maxsplit=1)
    summary = " ".join(sections[0].split())
    params: Dict[str, str] = {}
    match = re.search(r"^(?:Args|Arguments|Parameters):\s*$", doc, flags=re.MULTILINE)
    if match:
        current: Optional[str] = None
        base_indent: Optional[int] = None
        for line in doc[match.end() :].splitlines()[1:]:
            if not line.strip():
                continue
            indent = len(line) - len(line.lstrip())
            if indent == 0:
                break
            if base_indent is None:
                base_indent = indent
            entry = re.match(r"^\s*(\*{0,2}\w+)\s*(?:\([^)]*\))?\s*:\s*(.*)$", line)
            if indent == base_indent and entry:
                current = entry.group(1).lstrip("*")
                params[current] = entry.group(2).strip()
            elif current is not None:
                params[current] = (params[current] + " " + line.strip()).strip()
    return summary, params


def _type_ok(value: Any, schema: Mapping[str, Any]) -> bool:
    """Check ``value`` against the subset of JSON schema produced by :func:`_json_schema`."""
    if "enum" in schema and value not in schema["enum"]:
        return False
    if "anyOf" in schema:
        return any(_type_ok(value, s) for s in schema["anyOf"])
    kind = schema.get("type")
    if kind is None:
        return True
    kinds = kind if isinstance(kind, list) else [kind]
    for k in kinds:
        if k == "null" and value is None:
            return True
        if k == "string" and isinstance(value, str):
            return True
        if k == "boolean" and isinstance(value, bool):
            return True
        if k == "integer" and isinstance(value, int) and not isinstance(value, bool):
            return True
        if (
            k == "number"
            and isinstance(value, (int, float))
            and not isinstance(value, bool)
        ):
            return True
        if k == "array" and isinstance(value, (list, tuple)):
            items = schema.get("items")
            return not items or all(_type_ok(v, items) for v in value)
        if k == "object" and isinstance(value, Mapping):
            extra = schema.get("additionalProperties")
            return not isinstance(extra, Mapping) or all(
                _type_ok(v, extra) for v in value.values()
            )
    return False


def _describe(value: Any) -> str:
    return "null" if value is None else type(value).__name__


class Tool:
    """A callable with a name, a description and a typed parameter schema.

    Args:
        func: The function (plain or ``async def``).
        name: Tool name (defaults to the function name); letters, digits, ``_ . -``.
        description: Defaults to the first paragraph of the docstring.
        metadata: Free attributes, e.g. ``{"risk_tier": "high"}``; policy conditions see
            them as context attributes.
        run_in_thread: Run a plain function in a worker thread so it cannot block the loop.
    """

    def __init__(
        self,
        func: Callable[..., Any],
        *,
        name: Optional[str] = None,
        description: Optional[str] = None,
        metadata: Optional[Mapping[str, Any]] = None,
        run_in_thread: bool = True,
    ) -> None:
        if not callable(func):
            raise ToolError(f"a tool needs a callable, got {type(func).__name__}")
        tool_name = name if name is not None else getattr(func, "__name__", "")
        if not isinstance(tool_name, str) or not _NAME_RE.match(tool_name):
            raise ToolError(
                f"invalid tool name {tool_name!r}: use 1-64 letters, digits, '_', '.' or '-'"
            )
        self.func = func
        self.name = tool_name
        summary, param_docs = _parse_docstring(getattr(func, "__doc__", "") or "")
        self.description = description if description is not None else summary
        self.metadata: Dict[str, Any] = dict(metadata or {})
        self.run_in_thread = run_in_thread
        self._is_async = inspect.iscoroutinefunction(
            func
        ) or inspect.iscoroutinefunction(getattr(func, "__call__", None))
        self._properties: Dict[str, Dict[str, Any]] = {}
        self._required: List[str] = []
        self._accepts_extra = False
        self._positional_only: List[str] = []
        hints = _resolve_annotations(func)
        for param in inspect.signature(func).parameters.values():
            if param.kind is inspect.Parameter.VAR_KEYWORD:
                self._accepts_extra = True
                continue
            if param.kind is inspect.Parameter.VAR_POSITIONAL:
                continue
            if param.kind is inspect.Parameter.POSITIONAL_ONLY:
                self._positional_only.append(param.name)
            prop = _json_schema(hints.get(param.name, param.annotation))
            if param.name in param_docs and param_docs[param.name]:
                prop["description"] = param_docs[param.name]
            if param.default is inspect.Parameter.empty:
                self._required.append(param.name)
            elif param.default is None or isinstance(
                param.default, (str, int, float, bool)
            ):
                prop["default"] = param.default
            self._properties[param.name] = prop
        functools.update_wrapper(self, func)

    @property
    def parameters(self) -> Dict[str, Any]:
        """The JSON schema of the arguments (``{"type": "object", "properties": ...}``)."""
        schema: Dict[str, Any] = {
            "type": "object",
            "properties": {k: dict(v) for k, v in self._properties.items()},
            "required": list(self._required),
        }
        if not self._accepts_extra:
            schema["additionalProperties"] = False
        return schema

    def schema(self) -> Dict[str, Any]:
        """Return an OpenAI-style function schema: ``{"name", "description", "parameters"}``."""
        return {
            "name": self.name,
            "description": self.description,
            "parameters": self.parameters,
        }

    def validate(self, arguments: Optional[Mapping[str, Any]]) -> Dict[str, Any]:
        """Check arguments against the schema.

        Args:
            arguments: Argument name -> value (None means no arguments).

        Returns:
            A new dict of the arguments.

        Raises:
            ToolArgumentError: Not a mapping, an unknown or missing argument, or a value of
                the wrong type (the message names the tool and argument, never the value).
        """
        if arguments is None:
            arguments = {}
        if not isinstance(arguments, Mapping):
            raise ToolArgumentError(
                f"tool {self.name!r}: arguments must be a mapping, got {type(arguments).__name__}"
            )
        args = dict(arguments)
        if not self._accepts_extra:
            unknown = sorted(str(k) for k in args if k not in self._properties)
            if unknown:
                raise ToolArgumentError(
                    f"tool {self.name!r}: unexpected argument(s) {unknown}; "
                    f"expected {sorted(self._properties)}"
                )
        missing = [k for k in self._required if k not in args]
        if missing:
            raise ToolArgumentError(
                f"tool {self.name!r}: missing required argument(s) {missing}"
            )
        for key, value in args.items():
            prop = self._properties.get(key)
            if prop is not None and not _type_ok(value, prop):
                expected = prop.get("type", prop.get("enum", prop.get("anyOf")))
                raise ToolArgumentError(
                    f"tool {self.name!r}: argument {key!r} must be {expected}, "
                    f"got {_describe(value)}"
                )
        return args

    async def invoke(self, arguments: Optional[Mapping[str, Any]] = None) -> Any:
        """Validate ``arguments`` and call the function; returns its result.

        Raises:
            ToolArgumentError: The arguments do not fit the schema.
        """
        return await self._call_checked(self.validate(arguments))

    async def _call_checked(self, args: Dict[str, Any]) -> Any:
        """Call the function with arguments :meth:`validate` returned (a dict it may
        consume)."""
        positional = [args.pop(k) for k in self._positional_only if k in args]
        if self._is_async:
            return await self.func(*positional, **args)
        if self.run_in_thread:
            return await asyncio.to_thread(self.func, *positional, **args)
        result = self.func(*positional, **args)
        if inspect.isawaitable(result):
            result = await result
        return result

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """Call the wrapped function directly (no validation, no policy)."""
        return self.func(*args, **kwargs)

    def __repr__(self) -> str:
        return f"Tool(name={self.name!r}, parameters={sorted(self._properties)})"


@overload
def tool(func: Callable[..., Any]) -> Tool: ...


@overload
def tool(
    func: None = None,
    *,
    name: Optional[str] = None,
    description: Optional[str] = None,
    metadata: Optional[Mapping[str, Any]] = None,
    run_in_thread: bool = True,
) -> Callable[[Callable[..., Any]], Tool]: ...


def tool(
    func: Optional[Callable[..., Any]] = None,
    *,
    name: Optional[str] = None,
    description: Optional[str] = None,
    metadata: Optional[Mapping[str, Any]] = None,
    run_in_thread: bool = True,
) -> Union[Tool, Callable[[Callable[..., Any]], Tool]]:
    """Turn a function into a :class:`Tool`; usable as ``@tool`` or ``@tool(name=...)``.

    Args:
        func: The function, when used without parentheses.
        name: Tool name (defaults to the function name).
        description: Defaults to the docstring summary.
        metadata: Free attributes visible to policy conditions (e.g. ``risk_tier``).
        run_in_thread: Run a plain function in a worker thread.

    Returns:
        The Tool, or a decorator producing it.
    """

    def wrap(f: Callable[..., Any]) -> Tool:
        return Tool(
            f,
            name=name,
            description=description,
            metadata=metadata,
            run_in_thread=run_in_thread,
        )

    if func is not None:
        return wrap(func)
    return wrap


def as_tool(obj: Any) -> Tool:
    """Return ``obj`` if it is a Tool, else wrap the callable in one.

    Raises:
        ToolError: ``obj`` is neither a Tool nor callable.
    """
    if isinstance(obj, Tool):
        return obj
    if callable(obj):
        return Tool(obj)
    raise ToolError(f"expected a Tool or a callable, got {type(obj).__name__}")
