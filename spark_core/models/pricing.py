"""Token prices, to turn a model's :class:`~spark_core.models.base.Usage` into US dollars.

Prices are USD per one million tokens (input, output). The table holds a few well-known
models; the longest matching prefix wins, so ``gpt-4o-2024-08-06`` is priced as ``gpt-4o``.
Register your own (or a local model at zero) with :func:`register_pricing`; unknown models cost
0.0, so a budget guardrail never fires on a guess.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any, Dict, Optional

from spark_core.models.base import Usage

__all__ = ["Pricing", "as_pricing", "register_pricing", "get_pricing", "estimate_cost"]


@dataclass(frozen=True)
class Pricing:
    """USD per one million tokens.

    Attributes:
        input_per_million: Price of one million prompt tokens.
        output_per_million: Price of one million completion tokens.
    """

    input_per_million: float
    output_per_million: float

    def __post_init__(self) -> None:
        for price in (self.input_per_million, self.output_per_million):
            if (
                isinstance(price, bool)
                or not isinstance(price, (int, float))
                or not 0 <= price < float("inf")
            ):
                raise ValueError(
                    "token prices must be numbers >= 0, got "
                    f"({self.input_per_million!r}, {self.output_per_million!r})"
                )

    def cost(self, usage: Usage) -> float:
        """Return the cost of ``usage`` in USD.

        Args:
            usage: Token counts.

        Returns:
            The cost in US dollars.
        """
        return (
            usage.prompt_tokens * self.input_per_million
            + usage.completion_tokens * self.output_per_million
        ) / 1_000_000


def as_pricing(value: Any) -> Optional[Pricing]:
    """Read a model's ``pricing=`` argument: ``(input, output)`` USD per million tokens.

    Args:
        value: A pair of prices (tuple or list), a :class:`Pricing`, or None.

    Returns:
        The pricing, or None for None.

    Raises:
        ValueError: ``value`` is not a pair of numbers >= 0.
    """
    if value is None or isinstance(value, Pricing):
        return value
    if not isinstance(value, (tuple, list)) or len(value) != 2:
        raise ValueError(
            f"pricing must be (input, output) USD per million tokens, got {value!r}"
        )
    return Pricing(*value)


# Public list prices at the time of writing; override with register_pricing().
_TABLE: Dict[str, Pricing] = {
    "gpt-4o-mini": Pricing(0.15, 0.60),
    "gpt-4o": Pricing(2.50, 10.00),
    "gpt-4.1-nano": Pricing(0.10, 0.40),
    "gpt-4.1-mini": Pricing(0.40, 1.60),
    "gpt-4.1": Pricing(2.00, 8.00),
    "gpt-4-turbo": Pricing(10.00, 30.00),
    "gpt-3.5-turbo": Pricing(0.50, 1.50),
    "o3-mini": Pricing(1.10, 4.40),
    "o4-mini": Pricing(1.10, 4.40),
}
_LOCK = threading.Lock()


def register_pricing(
    model_prefix: str, input_per_million: float, output_per_million: float
) -> None:
    """Set the price of every model whose id starts with ``model_prefix``.

    Args:
        model_prefix: A model id or id prefix, e.g. ``"llama3"``.
        input_per_million: USD per million prompt tokens.
        output_per_million: USD per million completion tokens.

    Raises:
        ValueError: If the prefix is empty or a price is negative.
    """
    if not model_prefix:
        raise ValueError("model_prefix must not be empty")
    price = Pricing(float(input_per_million), float(output_per_million))
    with _LOCK:
        _TABLE[model_prefix] = price


def get_pricing(model_id: str) -> Optional[Pricing]:
    """Return the price of ``model_id`` (longest matching prefix), or None if unknown.

    Args:
        model_id: The model's id as sent to the endpoint.

    Returns:
        The pricing, or None.
    """
    with _LOCK:
        best = max((p for p in _TABLE if model_id.startswith(p)), key=len, default=None)
        return _TABLE[best] if best is not None else None


def estimate_cost(model_id: str, usage: Usage) -> float:
    """Return the USD cost of ``usage`` on ``model_id`` (0.0 when the price is unknown).

    Args:
        model_id: The model's id.
        usage: Token counts.

    Returns:
        The estimated cost in US dollars.
    """
    price = get_pricing(model_id)
    return price.cost(usage) if price is not None else 0.0
