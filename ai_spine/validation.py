"""Request validation in the backend's (FastAPI's) shape, for LocalSpine and the server.

Each check returns or raises error entries ``{"loc": [...], "msg": ..., "type": ...}``; a
:class:`~ai_spine.exceptions.ValidationError` made by :func:`invalid` carries them as
``{"detail": [...]}``, which the server sends as its 422 body unchanged.
"""

from __future__ import annotations

import re
import uuid
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence, Union

from ai_spine.exceptions import ValidationError
from ai_spine.rules import MAX_INT, MAX_PRIORITY, MIN_PRIORITY
from ai_spine.utils import validate_id

__all__ = [
    "MAX_PAGE_LIMIT",
    "detail",
    "invalid",
    "check_uuid",
    "id_problem",
    "validate_execute_request",
    "validate_page_request",
    "validate_flow_body",
    "query_int",
]

#: The most items one page of a listing asks for.
MAX_PAGE_LIMIT = 1000
_INTEGER = re.compile(r"[+-]?[0-9]+")  # ASCII digits only, unlike int()

Entry = Dict[str, Any]


def detail(
    loc: Iterable[Union[str, int]],
    msg: str,
    kind: str,
    ctx: Optional[Dict[str, Any]] = None,
) -> Entry:
    """One FastAPI-shaped error entry.

    The server adds the offending ``input`` (as pydantic does: the parent object for a
    missing field) when it answers.

    Args:
        loc: Where the bad value is (``("body", "timeout")``, ``("query", "limit")``).
        msg: What is wrong with it.
        kind: The error type (``missing``, ``int_type``, ...).
        ctx: The error's context, for the types pydantic gives one (``{"ge": 1}``...).

    Returns:
        ``{"loc": [...], "msg": msg, "type": kind}`` (and ``ctx``).
    """
    entry: Entry = {"loc": list(loc), "msg": msg, "type": kind}
    if ctx is not None:
        entry["ctx"] = ctx
    return entry


def expected(values: Sequence[str]) -> Dict[str, Any]:
    """Pydantic's ``ctx`` of an ``enum`` error: ``{"expected": "'a', 'b' or 'c'"}``."""
    quoted = [repr(v) for v in values]
    text = (
        quoted[0] if len(quoted) == 1 else f"{', '.join(quoted[:-1])} or {quoted[-1]}"
    )
    return {"expected": text}


def invalid(errors: Sequence[Entry]) -> ValidationError:
    """A 422 ValidationError whose message lists ``errors`` and whose body holds them.

    Args:
        errors: Entries made by :func:`detail`.

    Returns:
        The error to raise.
    """
    text = "; ".join(
        f"{'.'.join(str(p) for p in e['loc'][1:]) or 'body'}: {e['msg']}"
        for e in errors
    )
    return ValidationError(text, status_code=422, body={"detail": list(errors)})


def check_uuid(value: Any, name: str) -> str:
    """Return ``value`` as a canonical UUID string.

    Args:
        value: The id from a path.
        name: The path parameter's name.

    Returns:
        The canonical UUID.

    Raises:
        ValidationError: Not a UUID (the backend's 422).
    """
    if isinstance(value, str):
        try:
            return str(uuid.UUID(value))
        except ValueError:
            pass
    raise invalid(
        [
            detail(
                ("path", name),
                f"Input should be a valid UUID, got {str(value)[:80]!r}",
                "uuid_parsing",
                {"error": "invalid UUID"},
            )
        ]
    )


def id_problem(value: Any, name: str, loc: str) -> Optional[Entry]:
    """The entry for an id ``validate_id`` refuses (AISpine's rule, so both agree), or None.

    Args:
        value: The id.
        name: Its field name.
        loc: Where it came from (``body``, ``path``).

    Returns:
        An error entry, or None when the id is fine.
    """
    try:
        validate_id(value, name)
    except ValidationError as exc:
        return detail((loc, name), exc.message, "value_error")
    return None


def _integer_problem(
    value: Any, loc: Sequence[str], low: int, high: int
) -> Optional[Entry]:
    """The entry for a JSON integer outside ``low..high`` (5.0 counts as 5), or None."""
    name = loc[-1]
    if isinstance(value, float) and value.is_integer():
        value = int(value)  # JSON Schema's integer: 5.0 is one, 5.5 is not
    if not isinstance(value, int) or isinstance(value, bool):
        return detail(loc, "Input should be a valid integer", "int_type")
    if value < low:
        return detail(
            loc,
            f"{name} must be an integer >= {low}",
            "greater_than_equal",
            {"ge": low},
        )
    if value > high:
        return detail(
            loc, f"{name} must be an integer <= {high}", "less_than_equal", {"le": high}
        )
    return None


def validate_execute_request(body: Any) -> List[Entry]:
    """Check an ``ExecutionRequest`` body the way the backend does.

    Args:
        body: The decoded JSON body of ``POST /api/v1/flows/execute``.

    Returns:
        Error entries; empty when the body is valid.
    """
    if not isinstance(body, dict):
        return [detail(("body",), "Input should be a valid dictionary", "dict_type")]
    errors: List[Entry] = []
    if "flow_id" not in body:
        errors.append(detail(("body", "flow_id"), "Field required", "missing"))
    else:
        problem = id_problem(body["flow_id"], "flow_id", "body")
        if problem is not None:
            errors.append(problem)
    if "input_data" not in body:
        errors.append(detail(("body", "input_data"), "Field required", "missing"))
    elif not isinstance(body["input_data"], dict):
        errors.append(
            detail(
                ("body", "input_data"),
                "Input should be a valid dictionary",
                "dict_type",
            )
        )
    metadata = body.get("metadata")
    if metadata is not None and not isinstance(metadata, dict):
        errors.append(
            detail(
                ("body", "metadata"), "Input should be a valid dictionary", "dict_type"
            )
        )
    for name, low, high in (
        ("priority", MIN_PRIORITY, MAX_PRIORITY),
        ("timeout", 1, MAX_INT),
    ):
        value = body.get(name)
        if value is not None:
            problem = _integer_problem(value, ("body", name), low, high)
            if problem is not None:
                errors.append(problem)
    return errors


def validate_page_request(limit: Any, offset: Any) -> List[Entry]:
    """Check a page's ``limit`` (1-1000) and ``offset`` (0 to :data:`MAX_INT`).

    Args:
        limit: Items asked for.
        offset: Items skipped.

    Returns:
        Error entries; empty when both are fine.
    """
    errors = []
    for name, value, low, high in (
        ("limit", limit, 1, MAX_PAGE_LIMIT),
        ("offset", offset, 0, MAX_INT),
    ):
        if isinstance(value, float):  # a page is counted in whole items
            value = str(value)
        problem = _integer_problem(value, ("query", name), low, high)
        if problem is not None:
            errors.append(problem)
    return errors


def validate_flow_body(body: Any, require_id: bool) -> List[Entry]:
    """Check a create (``require_id``) or update flow body: ``flow_id``, ``spec``, names.

    Args:
        body: The decoded JSON body.
        require_id: Whether ``flow_id`` must be there (create).

    Returns:
        Error entries; empty when the body is valid.
    """
    if not isinstance(body, dict):
        return [detail(("body",), "Input should be a valid dictionary", "dict_type")]
    errors = []
    for key in ("flow_id", "spec") if require_id else ("spec",):
        if key not in body:
            errors.append(detail(("body", key), "Field required", "missing"))
    if "spec" in body and not isinstance(body["spec"], dict):
        errors.append(
            detail(("body", "spec"), "spec must be a GraphSpec object", "dict_type")
        )
    for key in ("name", "description"):
        if body.get(key) is not None and not isinstance(body[key], str):
            errors.append(
                detail(("body", key), "Input should be a valid string", "string_type")
            )
    return errors


def query_int(query: Mapping[str, List[str]], name: str, default: int) -> int:
    """Read an integer query parameter (the last one given), or ``default``.

    Args:
        query: The parsed query string (``parse_qs``).
        name: The parameter.
        default: Its value when absent.

    Returns:
        The integer.

    Raises:
        ValidationError: Not an integer, or one of more than 19 digits (beyond any bound).
    """
    values = query.get(name)
    if not values:
        return default
    text = values[-1].strip()
    if not _INTEGER.fullmatch(text):
        raise invalid(
            [detail(("query", name), "Input should be a valid integer", "int_parsing")]
        )
    if len(text.lstrip("+-")) > 19:  # beyond MAX_INT whatever the bound
        raise invalid(
            [
                detail(
                    ("query", name),
                    f"{name} must be at most {MAX_INT}",
                    "less_than_equal",
                    {"le": MAX_INT},
                )
            ]
        )
    return int(text)
