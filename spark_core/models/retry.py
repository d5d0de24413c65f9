"""The retry policy of HTTP models: one immutable value owns every retry decision."""

from __future__ import annotations

import email.utils
import random
import time
from dataclasses import dataclass, field, replace
from typing import Mapping, Optional, Tuple

__all__ = ["RetryPolicy", "RETRY_STATUSES", "parse_retry_after"]

#: HTTP statuses worth another attempt: rate limited, or a transient server failure.
RETRY_STATUSES = frozenset({408, 409, 429, 500, 502, 503, 504})


def _jitter(delay: float) -> float:
    """Return ``delay`` scaled by a random factor in [0.75, 1.0] (tests pin this)."""
    return delay * (1.0 - 0.25 * random.random())


def parse_retry_after(
    headers: Mapping[str, str], now: Optional[float] = None
) -> Optional[float]:
    """Read how long the server asked us to wait, in seconds.

    Understands ``retry-after-ms`` (OpenAI), and ``Retry-After`` as seconds or an HTTP date.

    Args:
        headers: Response headers (a case-insensitive mapping such as requests' is best; plain
            dicts are searched case-insensitively too).
        now: The current time (``time.time()`` when None); for tests.

    Returns:
        Seconds to wait (>= 0), or None when the headers say nothing usable.
    """
    lowered = {k.lower(): v for k, v in headers.items()}
    millis = lowered.get("retry-after-ms")
    if millis is not None:
        try:
            return max(0.0, float(millis) / 1000.0)
        except ValueError:
            pass
    value = lowered.get("retry-after")
    if value is None:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        parsed = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if (
        parsed is None
    ):  # pragma: no cover - older Pythons return None instead of raising
        return None
    current = time.time() if now is None else now
    return max(0.0, parsed.timestamp() - current)


@dataclass(frozen=True)
class RetryPolicy:
    """How many times, and how long apart, a failed model call is tried again.

    ``increment()`` returns a new policy with one more attempt in ``history``; the request loop
    asks ``is_exhausted()`` and ``delay(retry_after)``. Exponential backoff with jitter, capped
    at ``backoff_max``; a server's ``Retry-After`` wins unless it is longer than
    ``max_retry_after`` (then we fail fast instead of blocking for hours).

    Attributes:
        max_retries: Retries after the first attempt (0 disables retrying).
        backoff_factor: First backoff in seconds; doubles every retry.
        backoff_max: Upper bound of one backoff.
        max_retry_after: Longest ``Retry-After`` we are willing to honour, in seconds.
        history: One ``(reason, retry_after)`` entry per failed attempt so far.
    """

    max_retries: int = 2
    backoff_factor: float = 0.5
    backoff_max: float = 8.0
    max_retry_after: float = 60.0
    history: Tuple[Tuple[str, Optional[float]], ...] = field(default=())

    def __post_init__(self) -> None:
        if self.max_retries < 0:
            raise ValueError(f"max_retries must be >= 0, got {self.max_retries}")
        if self.backoff_factor < 0 or self.backoff_max < 0 or self.max_retry_after < 0:
            raise ValueError(
                "backoff_factor, backoff_max and max_retry_after must be >= 0"
            )

    @property
    def retries_taken(self) -> int:
        """How many retries were made so far."""
        return len(self.history)

    def increment(
        self, reason: str, retry_after: Optional[float] = None
    ) -> RetryPolicy:
        """Return a copy with one more failed attempt recorded.

        Args:
            reason: Why the attempt failed (``"HTTP 429"``, ``"ConnectionError"``...).
            retry_after: The server's requested wait, if any.

        Returns:
            The new policy.
        """
        return replace(self, history=self.history + ((reason, retry_after),))

    def is_exhausted(self) -> bool:
        """True when no retry is left."""
        return self.retries_taken > self.max_retries

    def retry_after_too_long(self, retry_after: Optional[float]) -> bool:
        """True when the server asks for a wait longer than we accept."""
        return retry_after is not None and retry_after > self.max_retry_after

    def delay(self, retry_after: Optional[float] = None) -> float:
        """Seconds to sleep before the next attempt.

        Args:
            retry_after: The server's requested wait, which wins when given.

        Returns:
            The delay in seconds.
        """
        if retry_after is not None:
            return min(retry_after, self.max_retry_after)
        exponent = max(0, self.retries_taken - 1)
        return _jitter(min(self.backoff_max, self.backoff_factor * (2**exponent)))
