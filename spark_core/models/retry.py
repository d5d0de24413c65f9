"""The retry policy of HTTP models: one immutable value owns every retry decision.

The rules are the client's (``ai_spine.retry``; ``spark_core`` cannot import it, so they are
restated here and a test compares them):

* retried: connection errors, timeouts, and HTTP 429, 500, 502, 503, 504;
* never retried: any other 4xx (bad request, authentication...), other 5xx;
* exponential backoff: ``backoff_factor`` seconds, doubling per retry, capped at
  ``backoff_max``, each delay jittered to between half of it and all of it (the schedule and
  the jitter are spark_core's one retry shape, :class:`spark_core.retry.RetrySettings`);
* ``Retry-After`` (seconds or an HTTP date) replaces the backoff; one longer than
  ``max_retry_after`` is not waited for: the error is raised at once.

Where LLM endpoints differ, and why:

* a chat completion has no side effect, so every failed attempt may be sent again (the
  client's POST rules, which protect against starting a flow twice, do not apply);
* HTTP 408 (the server timed out waiting for the request) is retried too: it is the same
  situation as our own timeout, which is retried;
* ``retry-after-ms`` (sent by OpenAI) is read before ``Retry-After``;
* defaults: 2 retries and a 60 s timeout per attempt (completions are slow), where the client
  has 3 and 30 s.
"""

from __future__ import annotations

import email.utils
import math
import time
from dataclasses import dataclass, field, replace
from typing import Mapping, Optional, Tuple

from spark_core.retry import RetrySettings, Rng

__all__ = ["RetryPolicy", "RETRY_STATUSES", "parse_retry_after"]

#: HTTP statuses worth another attempt: the client's (429, 500, 502, 503, 504), plus 408.
RETRY_STATUSES = frozenset({408, 429, 500, 502, 503, 504})


def _seconds(text: str) -> Optional[float]:
    """A finite number of seconds >= 0, or None (NaN and infinity are unusable)."""
    try:
        value = float(text)
    except ValueError:
        return None
    return max(0.0, value) if math.isfinite(value) else None


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
        seconds = _seconds(millis)
        if seconds is not None:
            return seconds / 1000.0
    value = lowered.get("retry-after")
    if value is None:
        return None
    value = value.strip()
    seconds = _seconds(value)
    if seconds is not None:
        return seconds
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
        rng: The random draw of the jitter (``random.random`` when None); tests pin it.
    """

    max_retries: int = 2
    backoff_factor: float = 0.5
    backoff_max: float = 8.0
    max_retry_after: float = 60.0
    history: Tuple[Tuple[str, Optional[float]], ...] = field(default=())
    rng: Optional[Rng] = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        retries = self.max_retries
        if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
            raise ValueError(f"max_retries must be an int >= 0, got {retries!r}")
        for name in ("backoff_factor", "backoff_max", "max_retry_after"):
            value = getattr(self, name)
            if (
                isinstance(value, bool)
                or not isinstance(value, (int, float))
                or not value >= 0  # NaN too
            ):
                raise ValueError(f"{name} must be a number >= 0, got {value!r}")

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
        """Return whether no retry is left."""
        return self.retries_taken > self.max_retries

    def retry_after_too_long(self, retry_after: Optional[float]) -> bool:
        """Whether the server asks for a wait longer than we accept (then fail at once).

        Args:
            retry_after: The server's requested wait in seconds, or None.

        Returns:
            True when ``retry_after`` exceeds ``max_retry_after``.
        """
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
        # urllib3's names: ``backoff_factor`` is the first delay, doubled every retry.
        schedule = RetrySettings(
            max_retries=self.max_retries,
            backoff_factor=2.0,
            initial_delay=self.backoff_factor,
            max_delay=self.backoff_max,
            jitter=True,
        )
        return schedule.delay(max(1, self.retries_taken), self.rng)
