"""Structural parsing helpers: read JSON-shaped data, collecting issues with paths."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Dict, Iterable, List, Optional

__all__ = ["ValidationIssue", "Parser", "join_path"]

_MISSING: Any = object()


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
        minimum: Optional[int] = None,
    ) -> Any:
        """Read an integer field (booleans are not integers here).

        Args:
            data: The containing object.
            key: The field.
            path: The containing object's path.
            default: Value when absent or null.
            minimum: Smallest accepted value.

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
