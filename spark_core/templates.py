"""Prompt and text templates from specs: plain ``{name}`` placeholders, nothing more.

Below the spec and agents packages: the ``template`` node and ``AgentNode``'s
``prompt_template`` both fill their text with :func:`fill_template`.
"""

from __future__ import annotations

import re
from typing import Any, Mapping

__all__ = ["fill_template"]

_PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")
_PLACEHOLDER_OR_ESCAPE = re.compile(r"\{\{|\}\}|\{([A-Za-z_][A-Za-z0-9_]*)\}")


def fill_template(
    template: str,
    values: Mapping[str, Any],
    *,
    strict: bool = False,
    escapes: bool = False,
) -> str:
    """Replace plain ``{name}`` placeholders with ``values[name]``; leave all else as is.

    Unlike ``str.format``, no attribute or index access (``{x.__class__}``) and no format
    spec (``{x:>99999999}``) is interpreted, so a template from a spec can neither reach into
    Python objects nor make huge strings: such text stays literal.

    Args:
        template: The text.
        values: Placeholder values (non-strings are written with ``str``).
        strict: Raise on a placeholder without a value instead of writing ``""``.
        escapes: Read ``{{`` and ``}}`` as literal braces, as ``str.format`` does
            (``{{"a": 1}}`` gives ``{"a": 1}``, ``{{name}}`` gives ``{name}``); the
            ``template`` node keeps them as written.

    Returns:
        The filled text.

    Raises:
        KeyError: ``strict`` and a placeholder has no value (the exception holds its name).
    """

    def fill(match: "re.Match[str]") -> str:
        name = match.group(1)
        if name is None:  # an escaped brace
            return match.group()[0]
        if name not in values:
            if strict:
                raise KeyError(name)
            return ""
        value = values[name]
        return value if isinstance(value, str) else str(value)

    return (_PLACEHOLDER_OR_ESCAPE if escapes else _PLACEHOLDER).sub(fill, template)
