"""The one retry shape of spark_core: the backoff schedule and its jitter.

* :class:`RetrySettings` holds the fields, defaults and bounds of a retry: how many retries,
  the delay schedule (``"exponential"``, ``"linear"`` or ``"fixed"``, capped at
  ``max_delay``) and whether delays are jittered. A node's
  :class:`~spark_core.nodes.capabilities.RetryCapability` and a spec's
  :class:`~spark_core.spec.models.RetrySpec` are these settings (plus, for the capability,
  the exception classes retried); a model's :class:`~spark_core.models.retry.RetryPolicy`
  computes its delays with them.
* :func:`jittered` is the only randomness: a delay becomes a random share between half of it
  and all of it (as the HTTP client does), so a jittered delay never exceeds the cap. The
  random draw is passed in (``rng``), so tests pin it without patching.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field, fields
from typing import Any, Callable, Dict, Optional

from spark_core.field_rules import rule

__all__ = ["STRATEGIES", "Rng", "RetrySettings", "jittered"]

STRATEGIES = ("exponential", "linear", "fixed")

#: A source of random floats in [0, 1], such as ``random.random``.
Rng = Callable[[], float]


def jittered(delay: float, rng: Optional[Rng] = None) -> float:
    """Spread a delay so that many failing callers do not retry in lockstep.

    Args:
        delay: The computed delay in seconds.
        rng: Returns a float in [0, 1] (``random.random`` when None).

    Returns:
        A delay between half of ``delay`` and ``delay``.
    """
    draw = random.random() if rng is None else rng()
    return delay * (0.5 + draw / 2)


@dataclass(frozen=True)
class RetrySettings:
    """How many times, and how far apart, a failed call is tried again.

    ``max_retries`` counts the retries after the first attempt, so ``max_retries=3`` allows
    up to four attempts. The delay before retry ``n`` (1-based) is:

    * ``"exponential"`` (default): ``initial_delay * backoff_factor ** (n - 1)``
    * ``"linear"``: ``initial_delay * n``
    * ``"fixed"``: ``initial_delay``

    capped at ``max_delay``, then, with ``jitter``, scaled by :func:`jittered`.

    Attributes:
        max_retries: Retries after the first attempt (>= 0).
        backoff_factor: Multiplier of the exponential strategy (>= 1).
        initial_delay: Delay in seconds before the first retry (>= 0).
        max_delay: Upper bound in seconds of any single delay (>= 0).
        strategy: ``"exponential"``, ``"linear"`` or ``"fixed"``.
        jitter: Randomise each delay so many failing callers do not retry in lockstep.
    """

    max_retries: int = field(default=3, metadata=rule(minimum=0))
    backoff_factor: float = field(default=2.0, metadata=rule(minimum=1))
    initial_delay: float = field(default=0.1, metadata=rule(minimum=0))
    max_delay: float = field(default=30.0, metadata=rule(minimum=0))
    strategy: str = field(default="exponential", metadata=rule(choices=STRATEGIES))
    jitter: bool = False

    def delay(self, retry: int, rng: Optional[Rng] = None) -> float:
        """Return the delay in seconds before retry number ``retry`` (1-based).

        Args:
            retry: Which retry is about to happen (1 for the first retry).
            rng: The random draw of the jitter (``random.random`` when None).

        Returns:
            The delay in seconds, never above ``max_delay``.
        """
        if self.strategy == "fixed":
            base = self.initial_delay
        elif self.strategy == "linear":
            base = self.initial_delay * retry
        else:
            try:
                base = self.initial_delay * self.backoff_factor ** (retry - 1)
            except OverflowError:  # a float power past 1e308: the cap applies anyway
                base = self.max_delay
        base = min(base, self.max_delay)
        return jittered(base, rng) if self.jitter else base

    def settings(self) -> Dict[str, Any]:
        """Return these settings alone as keyword arguments, to build another retry shape.

        ``RetryCapability(**spec.retry.settings())`` is the capability a spec describes.

        Returns:
            Field name → value, for the fields of :class:`RetrySettings` only.
        """
        return {item.name: getattr(self, item.name) for item in fields(RetrySettings)}
