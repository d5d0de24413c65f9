"""Structural parsing: read JSON-shaped data into spec dataclasses, collecting issues with
paths.

:func:`parse_dataclass` reads any spec dataclass from its fields alone: each field's type
says how it is read (text, number, flag, JSON, a nested spec, a list or map of them,
``Optional``), its default is the dataclass's own, and its bounds, choices and non-empty
text come from its :func:`~spark_core.field_rules.rule`. A spec class adds checks no single
field can make (unique ids, one field depending on another) in a ``check_structure``
classmethod.
"""

from __future__ import annotations

import math
from dataclasses import MISSING, Field, dataclass, fields, is_dataclass
from typing import Any, Dict, Iterable, List, Optional, Tuple, Type, TypeVar, Union
from typing import get_args, get_origin

from spark_core.field_rules import field_types, rule_of

__all__ = ["ValidationIssue", "Parser", "join_path", "parse_dataclass"]

_MISSING: Any = object()
_T = TypeVar("_T")


@dataclass(frozen=True)
class ValidationIssue:
    """One problem found in a spec.

    Attributes:
        path: Where it is, e.g. ``graph.nodes[2].config.retry.max_retries``
            (empty for the document itself).
        message: What is wrong.
        severity: ``"error"`` or ``"warning"``.
    """

    path: str
    message: str
    severity: str = "error"

    def __str__(self) -> str:
        return f"{self.path}: {self.message}" if self.path else self.message

    def to_dict(self) -> Dict[str, str]:
        """Return the issue as a JSON-ready dict.

        Returns:
            ``{"path", "message", "severity"}``.
        """
        return {"path": self.path, "message": self.message, "severity": self.severity}


def join_path(base: str, key: str | int) -> str:
    """Extend a dotted spec path with a key or a list index.

    Args:
        base: The path so far.
        key: A field name or a list index.

    Returns:
        ``base.key`` or ``base[index]``.
    """
    if isinstance(key, int):
        return f"{base}[{key}]"
    return f"{base}.{key}" if base else key


def _type_name(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


class Parser:
    """Reads fields out of JSON-shaped dicts and records every problem with its path.

    Attributes:
        issues: Every error and warning recorded so far, in order.
    """

    def __init__(self) -> None:
        """Start with no issues."""
        self.issues: List[ValidationIssue] = []

    # -- recording ---------------------------------------------------------------------------
    def error(self, path: str, message: str) -> None:
        """Record an error.

        Args:
            path: Where.
            message: What.
        """
        self.issues.append(ValidationIssue(path, message, "error"))

    def warn(self, path: str, message: str) -> None:
        """Record a warning.

        Args:
            path: Where.
            message: What.
        """
        self.issues.append(ValidationIssue(path, message, "warning"))

    @property
    def has_errors(self) -> bool:
        """Whether any error (not warning) was recorded."""
        return any(i.severity == "error" for i in self.issues)

    # -- containers --------------------------------------------------------------------------
    def obj(
        self, data: Any, path: str, known: Iterable[str]
    ) -> Optional[Dict[str, Any]]:
        """Check that ``data`` is an object; warn about unknown keys.

        Args:
            data: The value.
            path: Its path.
            known: The field names this object may have.

        Returns:
            The dict, or None (with an error recorded) when it is not one.
        """
        if not isinstance(data, dict):
            self.error(path, f"must be an object, got {_type_name(data)}")
            return None
        allowed = set(known)
        for key in data:
            if not isinstance(key, str):
                self.error(path, f"keys must be strings, got {_type_name(key)}")
            elif key not in allowed:
                self.warn(join_path(path, key), "unknown field (ignored)")
        return data

    def list_of(self, data: Dict[str, Any], key: str, path: str) -> List[Any]:
        """Read an optional array field (missing or null → empty list).

        Args:
            data: The containing object.
            key: The field.
            path: The containing object's path.

        Returns:
            The list (empty when absent or wrong, with an error recorded if wrong).
        """
        value = data.get(key)
        if value is None:
            return []
        if not isinstance(value, list):
            self.error(
                join_path(path, key), f"must be an array, got {_type_name(value)}"
            )
            return []
        return value

    # -- scalars -----------------------------------------------------------------------------
    def string(
        self,
        data: Dict[str, Any],
        key: str,
        path: str,
        *,
        required: bool = False,
        default: Optional[str] = "",
        nonempty: bool = False,
    ) -> Any:
        """Read a string field.

        Args:
            data: The containing object.
            key: The field.
            path: The containing object's path.
            required: Whether the field must be present.
            default: Value when absent (None allowed for optional fields).
            nonempty: Whether an empty string is an error.

        Returns:
            The string, or the default.
        """
        where = join_path(path, key)
        value = data.get(key, _MISSING)
        if value is _MISSING or (value is None and default is None and not required):
            if required:
                self.error(where, "is required")
            return default
        if not isinstance(value, str):
            self.error(where, f"must be a string, got {_type_name(value)}")
            return default
        if nonempty and not value.strip():
            self.error(where, "must not be empty")
        return value

    def integer(
        self,
        data: Dict[str, Any],
        key: str,
        path: str,
        *,
        default: Optional[int],
        minimum: Optional[float] = None,
        maximum: Optional[float] = None,
    ) -> Any:
        """Read an integer field (booleans are not integers here).

        Args:
            data: The containing object.
            key: The field.
            path: The containing object's path.
            default: Value when absent or null.
            minimum: Smallest accepted value.
            maximum: Largest accepted value.

        Returns:
            The integer, or the default.
        """
        where = join_path(path, key)
        value = data.get(key)
        if value is None:
            return default
        if isinstance(value, bool) or not isinstance(value, int):
            self.error(where, f"must be an integer, got {_type_name(value)}")
            return default
        if minimum is not None and value < minimum:
            self.error(where, f"must be >= {minimum}")
        if maximum is not None and value > maximum:
            self.error(where, f"must be <= {maximum}")
        return value

    def number(
        self,
        data: Dict[str, Any],
        key: str,
        path: str,
        *,
        default: Optional[float],
        minimum: Optional[float] = None,
        maximum: Optional[float] = None,
        exclusive_minimum: bool = False,
    ) -> Any:
        """Read a finite number field as a float.

        Args:
            data: The containing object.
            key: The field.
            path: The containing object's path.
            default: Value when absent or null.
            minimum: Smallest accepted value.
            maximum: Largest accepted value.
            exclusive_minimum: Whether ``minimum`` itself is rejected.

        Returns:
            The number as a float, or the default.
        """
        where = join_path(path, key)
        value = data.get(key)
        if value is None:
            return default
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            self.error(where, f"must be a number, got {_type_name(value)}")
            return default
        number = float(value)
        if not math.isfinite(number):
            self.error(where, "must be a finite number")
            return default
        if minimum is not None:
            if exclusive_minimum and number <= minimum:
                self.error(where, f"must be > {minimum:g}")
            elif not exclusive_minimum and number < minimum:
                self.error(where, f"must be >= {minimum:g}")
        if maximum is not None and number > maximum:
            self.error(where, f"must be <= {maximum:g}")
        return number

    def boolean(
        self, data: Dict[str, Any], key: str, path: str, *, default: bool
    ) -> bool:
        """Read a boolean field.

        Args:
            data: The containing object.
            key: The field.
            path: The containing object's path.
            default: Value when absent or null.

        Returns:
            The boolean, or the default.
        """
        value = data.get(key)
        if value is None:
            return default
        if not isinstance(value, bool):
            self.error(
                join_path(path, key), f"must be a boolean, got {_type_name(value)}"
            )
            return default
        return value

    def json_object(self, data: Dict[str, Any], key: str, path: str) -> Dict[str, Any]:
        """Read an optional free-form JSON object field (missing or null → ``{}``).

        Args:
            data: The containing object.
            key: The field.
            path: The containing object's path.

        Returns:
            The dict (empty when absent or wrong).
        """
        where = join_path(path, key)
        value = data.get(key)
        if value is None:
            return {}
        if not isinstance(value, dict):
            self.error(where, f"must be an object, got {_type_name(value)}")
            return {}
        if self.json_value(value, where):
            return value
        return {}

    def string_map(self, data: Dict[str, Any], key: str, path: str) -> Dict[str, str]:
        """Read an optional object whose values are all strings.

        Args:
            data: The containing object.
            key: The field.
            path: The containing object's path.

        Returns:
            The dict (empty when absent or wrong).
        """
        value = self.json_object(data, key, path)
        good = True
        for name, item in value.items():
            if not isinstance(item, str):
                self.error(
                    join_path(join_path(path, key), name),
                    f"must be a string, got {_type_name(item)}",
                )
                good = False
        return value if good else {}

    def string_list(self, data: Dict[str, Any], key: str, path: str) -> List[str]:
        """Read an optional array of strings.

        Args:
            data: The containing object.
            key: The field.
            path: The containing object's path.

        Returns:
            The list of strings (bad items dropped, with errors recorded).
        """
        out: List[str] = []
        for index, item in enumerate(self.list_of(data, key, path)):
            if not isinstance(item, str):
                self.error(
                    join_path(join_path(path, key), index),
                    f"must be a string, got {_type_name(item)}",
                )
            else:
                out.append(item)
        return out

    def json_value(self, value: Any, path: str, depth: int = 0) -> bool:
        """Check that a value is plain JSON (finite numbers, string keys, not too deep).

        Args:
            value: The value.
            path: Its path.
            depth: Current nesting depth.

        Returns:
            Whether the value is acceptable.
        """
        if depth > 64:
            self.error(path, "is nested too deeply")
            return False
        if value is None or isinstance(value, (bool, str, int)):
            return True
        if isinstance(value, float):
            if not math.isfinite(value):
                self.error(path, "must be a finite number")
                return False
            return True
        if isinstance(value, list):
            return all(
                self.json_value(item, join_path(path, i), depth + 1)
                for i, item in enumerate(value)
            )
        if isinstance(value, dict):
            ok = True
            for key, item in value.items():
                if not isinstance(key, str):
                    self.error(path, f"keys must be strings, got {_type_name(key)}")
                    ok = False
                elif not self.json_value(item, join_path(path, key), depth + 1):
                    ok = False
            return ok
        self.error(path, f"must be a JSON value, got {_type_name(value)}")
        return False


def parse_dataclass(p: Parser, cls: Type[_T], data: Any, path: str) -> Optional[_T]:
    """Read a spec dataclass from JSON-shaped data, driven by its fields.

    Unknown keys are warned about and ignored. A missing or null field takes the
    dataclass's default. A field without a default is required; when a required nested
    spec is missing or unreadable the whole object is dropped (None), as a list item or
    map value that cannot be read is. Every other problem is recorded on ``p`` and the
    field keeps a usable value, so the rest of the document is still checked.

    Args:
        p: Where issues are recorded.
        cls: The spec dataclass.
        data: The JSON value to read.
        path: Its path in the document.

    Returns:
        The spec, or None when ``data`` is not an object or lacks a required nested spec
        (problems are recorded on ``p`` either way).
    """
    spec_class: Any = cls
    spec_fields = [item for item in fields(spec_class) if item.init]
    d = p.obj(data, path, [item.name for item in spec_fields])
    if d is None:
        return None
    types = field_types(spec_class)
    values: Dict[str, Any] = {}
    for item in spec_fields:
        values[item.name] = _read_field(p, d, item, types[item.name], path)
    dropped = [name for name, value in values.items() if value is _MISSING]
    for name in dropped:
        values[name] = None
    check = getattr(cls, "check_structure", None)
    if check is not None:
        check(p, d, values, path)
    return None if dropped else spec_class(**values)


def _is_spec(hint: Any) -> bool:
    return isinstance(hint, type) and is_dataclass(hint)


def _optional(hint: Any) -> Tuple[bool, Any]:
    """Split ``Optional[X]`` into ``(True, X)``; anything else is ``(False, hint)``."""
    args = get_args(hint)
    if get_origin(hint) is Union and type(None) in args:
        (inner,) = [arg for arg in args if arg is not type(None)]
        return True, inner
    return False, hint


def _read_field(
    p: Parser, d: Dict[str, Any], item: Field, hint: Any, path: str  # type: ignore[type-arg]
) -> Any:
    """Read one field of a spec (``_MISSING`` when a required nested spec is absent)."""
    name, declared = item.name, rule_of(item)
    where = join_path(path, name)
    if item.default is not MISSING:
        default, required = item.default, False
    elif item.default_factory is not MISSING:
        default, required = item.default_factory(), False
    else:
        default, required = None, True
    optional, hint = _optional(hint)
    if hint is Any:  # any JSON value; missing reads as null, so never "required"
        value = d.get(name)
        p.json_value(value, where)
        return value
    if _is_spec(hint):
        raw = d.get(name)
        if raw is None:
            if required and not optional:
                p.error(where, "is required")
                return _MISSING
            return default
        parsed = parse_dataclass(p, hint, raw, where)
        if parsed is None:
            return _MISSING if required and not optional else default
        return parsed
    if hint is str:
        text = p.string(
            d,
            name,
            path,
            required=required,
            default="" if required else default,
            nonempty=declared.nonempty,
        )
        if declared.choices and isinstance(text, str) and text not in declared.choices:
            p.error(where, f"must be one of {', '.join(declared.choices)}")
        if declared.check is not None and isinstance(d.get(name), str):
            problem = declared.check(text)
            if problem:
                p.error(where, problem)
        return text
    if hint is bool:
        return p.boolean(d, name, path, default=default)
    if hint is int:
        return p.integer(
            d,
            name,
            path,
            default=default,
            minimum=declared.minimum,
            maximum=declared.maximum,
        )
    if hint is float:
        return p.number(
            d,
            name,
            path,
            default=default,
            minimum=declared.minimum,
            maximum=declared.maximum,
            exclusive_minimum=declared.exclusive,
        )
    origin, args = get_origin(hint), get_args(hint)
    inner = args[-1] if args else Any
    if origin is list and inner is str:
        return p.string_list(d, name, path)
    if origin is list and _is_spec(inner):
        items = (
            parse_dataclass(p, inner, value, join_path(where, index))
            for index, value in enumerate(p.list_of(d, name, path))
        )
        return [parsed for parsed in items if parsed is not None]
    if origin is dict and inner is str:
        return p.string_map(d, name, path)
    if origin is dict and _is_spec(inner):
        return _read_map(p, d.get(name), inner, where, declared.expected)
    if origin is dict:
        return p.json_object(d, name, path)
    raise TypeError(f"no reader for field {name!r} of type {hint!r}")  # a bug in a spec


def _read_map(
    p: Parser, raw: Any, cls: type, where: str, expected: str
) -> Dict[str, Any]:
    """Read an object of name → nested spec (unreadable values are dropped)."""
    out: Dict[str, Any] = {}
    if raw is None:
        return out
    if not isinstance(raw, dict):
        p.error(where, f"must be {expected or 'an object'}")
        return out
    for key, value in raw.items():
        parsed = parse_dataclass(p, cls, value, join_path(where, str(key)))
        if parsed is not None:
            out[str(key)] = parsed
    return out
