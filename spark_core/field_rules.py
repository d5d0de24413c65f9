"""Rules declared on dataclass fields: bounds, choices, non-empty text.

A field says what it accepts once, in its metadata (``field(default=3,
metadata=rule(minimum=0))``); the spec parser (:mod:`spark_core.spec._parse`) and the node
capabilities' own checks both read that declaration, so a bound is never written twice.
"""

from __future__ import annotations

import functools
import typing
from dataclasses import Field, dataclass
from typing import Any, Callable, Dict, Mapping, Optional, Tuple

__all__ = ["FieldRule", "rule", "rule_of", "field_types"]

_KEY = "spark_core.rule"


@dataclass(frozen=True)
class FieldRule:
    """What a field accepts beyond its type.

    Attributes:
        minimum: Smallest accepted number (None: no lower bound).
        maximum: Largest accepted number (None: no upper bound).
        exclusive: Whether ``minimum`` itself is refused (``> minimum``).
        choices: The only accepted texts (empty: any text).
        nonempty: Whether a blank text is refused.
        expected: What a good value looks like, for error messages
            (``"an object of field name -> field spec"``).
        check: A further test of a text: returns what is wrong with it, or None.
    """

    minimum: Optional[float] = None
    maximum: Optional[float] = None
    exclusive: bool = False
    choices: Tuple[str, ...] = ()
    nonempty: bool = False
    expected: str = ""
    check: Optional[Callable[[str], Optional[str]]] = None


_NO_RULE = FieldRule()


def rule(
    *,
    minimum: Optional[float] = None,
    maximum: Optional[float] = None,
    exclusive: bool = False,
    choices: Tuple[str, ...] = (),
    nonempty: bool = False,
    expected: str = "",
    check: Optional[Callable[[str], Optional[str]]] = None,
) -> Mapping[str, Any]:
    """Return field metadata carrying a :class:`FieldRule`.

    Args:
        minimum: Smallest accepted number.
        maximum: Largest accepted number.
        exclusive: Whether ``minimum`` itself is refused.
        choices: The only accepted texts.
        nonempty: Whether a blank text is refused.
        expected: What a good value looks like, for error messages.
        check: A further test of a text: returns what is wrong with it, or None.

    Returns:
        A mapping to pass as ``dataclasses.field(metadata=...)``.
    """
    return {
        _KEY: FieldRule(minimum, maximum, exclusive, choices, nonempty, expected, check)
    }


def rule_of(item: Field) -> FieldRule:  # type: ignore[type-arg]
    """Return the rule declared on a dataclass field (an empty rule when none).

    Args:
        item: A field of a dataclass (from ``dataclasses.fields``).

    Returns:
        Its rule.
    """
    found: FieldRule = item.metadata.get(_KEY, _NO_RULE)
    return found


@functools.lru_cache(maxsize=None)
def field_types(cls: type) -> Dict[str, Any]:
    """Return the resolved annotations of a dataclass (cached per class).

    Modules use ``from __future__ import annotations``, so ``Field.type`` is text; this
    evaluates it once.

    Args:
        cls: The dataclass.

    Returns:
        Field name → type.
    """
    return typing.get_type_hints(cls)
