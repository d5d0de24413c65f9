"""The retry policy: one immutable value that owns every retry decision.

A :class:`Retry` is never mutated. After a failed attempt the transport calls
:meth:`Retry.increment`, which returns a new policy with that attempt appended to
:attr:`Retry.history`; :meth:`Retry.is_exhausted` then says whether another attempt is allowed.

Rules (see DESIGN.md, "Client rules"):

* Idempotent requests (GET, DELETE, ... or any request carrying an ``Idempotency-Key``) are
  retried after connection errors, read errors and timeouts, and on 429, 500, 502, 503, 504.
* Any other POST is retried only when the server cannot have acted on it: the connection was
  never established, the answer was 429, or 503 with a ``Retry-After`` header. So a retry never
  starts a flow twice.
* 4xx other than 429 is never retried.
* ``Retry-After`` (seconds or an HTTP date) replaces the computed backoff. One longer than
  :attr:`Retry.retry_after_max` is not waited for: the caller gets the error at once, with
  ``retry_after`` set, instead of a synchronous call blocking for minutes or hours.
"""

from __future__ import annotations

import datetime
import email.utils
import random
import time
from dataclasses import dataclass, field, replace
from typing import FrozenSet, Optional, Tuple

from ai_spine import constants

__all__ = ["Retry", "RequestHistory", "parse_retry_after", "jitter"]

# Why the last attempt failed, as the transport classifies it.
CONNECT_ERROR = "connect"  # no connection was made: the server never saw the request
READ_ERROR = "read"  # the connection broke after the request may have been sent
TIMEOUT_ERROR = "timeout"  # no answer within the per-attempt timeout


def jitter(delay: float) -> float:
    """Spread a backoff delay so that many clients do not retry in lockstep.

    Kept tiny and separate so tests can pin it (``monkeypatch.setattr(retry, "jitter", ...)``).

    Args:
        delay: The computed backoff in seconds.

    Returns:
        A delay between half of ``delay`` and ``delay``.
    """
    return delay * (0.5 + random.random() / 2)


def parse_retry_after(
    value: Optional[str], *, now: Optional[float] = None
) -> Optional[float]:
    """Read a ``Retry-After`` header value as seconds to wait.

    Args:
        value: The header value: delay seconds (``"120"``, ``"1.5"``) or an HTTP date
            (``"Wed, 21 Oct 2015 07:28:00 GMT"``).
        now: The current time as a Unix timestamp (for tests); defaults to ``time.time()``.

    Returns:
        Seconds to wait (never negative), or None when the value is missing or unreadable.
    """
    if value is None:
        return None
    text = value.strip()
    if not text:
        return None
    try:
        seconds = float(text)
    except ValueError:
        pass
    else:
        if seconds != seconds or seconds in (float("inf"), float("-inf")):  # NaN / inf
            return None
        return max(0.0, seconds)
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when is None:  # pragma: no cover - Python < 3.10 returns None for garbage
        return None
    if when.tzinfo is None:  # "-0000" means UTC with no zone information
        when = when.replace(tzinfo=datetime.timezone.utc)
    current = time.time() if now is None else now
    return max(0.0, when.timestamp() - current)


@dataclass(frozen=True)
class RequestHistory:
    """One failed attempt, as recorded in :attr:`Retry.history`.

    Attributes:
        method: HTTP method.
        url: Full URL of the attempt.
        status: HTTP status of the answer, or None when there was no answer.
        error: The kind of transport failure (``"connect"``, ``"read"``, ``"timeout"``) or None.
    """

    method: str
    url: str
    status: Optional[int] = None
    error: Optional[str] = None


@dataclass(frozen=True)
class Retry:
    """Immutable retry policy.

    Attributes:
        total: How many retries are allowed after the first attempt.
        backoff_factor: The first retry waits about this long; each next one twice as long.
        backoff_max: Upper bound of a computed backoff, in seconds.
        retry_after_max: The longest ``Retry-After`` honoured; longer ones are not waited for.
        status_forcelist: Statuses that may be retried (subject to the POST rules).
        history: The failed attempts so far, oldest first.
    """

    total: int = constants.DEFAULT_MAX_RETRIES
    backoff_factor: float = constants.DEFAULT_BACKOFF_FACTOR
    backoff_max: float = constants.DEFAULT_BACKOFF_MAX
    retry_after_max: float = constants.DEFAULT_RETRY_AFTER_MAX
    status_forcelist: FrozenSet[int] = constants.RETRY_STATUSES
    history: Tuple[RequestHistory, ...] = field(default=())

    def __post_init__(self) -> None:
        if (
            isinstance(self.total, bool)
            or not isinstance(self.total, int)
            or self.total < 0
        ):
            raise ValueError(f"Retry.total must be an int >= 0, got {self.total!r}")
        for name in ("backoff_factor", "backoff_max", "retry_after_max"):
            value = getattr(self, name)
            if (
                isinstance(value, bool)
                or not isinstance(value, (int, float))
                or value < 0
            ):
                raise ValueError(f"Retry.{name} must be a number >= 0, got {value!r}")

    @property
    def retries_taken(self) -> int:
        """How many attempts have failed so far (the length of :attr:`history`)."""
        return len(self.history)

    def increment(
        self,
        method: str,
        url: str,
        *,
        status: Optional[int] = None,
        error: Optional[str] = None,
    ) -> "Retry":
        """Record a failed attempt.

        Args:
            method: HTTP method of the attempt.
            url: URL of the attempt.
            status: HTTP status of the answer, if there was one.
            error: Kind of transport failure, if there was no answer.

        Returns:
            A new :class:`Retry` whose history ends with this attempt; ``self`` is unchanged.
        """
        entry = RequestHistory(method=method, url=url, status=status, error=error)
        return replace(self, history=self.history + (entry,))

    def is_exhausted(self) -> bool:
        """Whether the retries allowed by :attr:`total` have all been used.

        Returns:
            True when :attr:`history` holds more failed attempts than :attr:`total` allows
            retries: no further attempt may be sent.
        """
        return len(self.history) > self.total

    def is_retryable(
        self,
        method: str,
        *,
        status: Optional[int] = None,
        error: Optional[str] = None,
        has_retry_after: bool = False,
        idempotent: bool = False,
    ) -> bool:
        """Decide whether a failed attempt may be sent again (ignoring the budget).

        Args:
            method: HTTP method.
            status: HTTP status of the answer, or None when there was none.
            error: Transport failure kind (``"connect"``, ``"read"``, ``"timeout"``), or None.
            has_retry_after: Whether the answer carried a usable ``Retry-After`` header.
            idempotent: Whether the request carries an idempotency key.

        Returns:
            True when resending cannot cause a duplicate side effect and may succeed.
        """
        safe = idempotent or method.upper() in constants.IDEMPOTENT_METHODS
        if error is not None:
            return error == CONNECT_ERROR or safe
        if status is None or status not in self.status_forcelist:
            return False
        if safe or status == 429:
            return True
        return status == 503 and has_retry_after

    def get_backoff(self) -> float:
        """The computed wait before the next attempt, jittered, in seconds.

        Grows with the number of failed attempts in :attr:`history`: ``backoff_factor``
        after the first, twice that after the second, ... capped at ``backoff_max``.

        Returns:
            Seconds to wait: 0 before any failure or with a zero ``backoff_factor``, else the
            capped exponential delay passed through :func:`jitter`.
        """
        retries = len(self.history)
        if retries == 0 or self.backoff_factor == 0:
            return 0.0
        delay = min(self.backoff_max, self.backoff_factor * (2 ** (retries - 1)))
        return jitter(delay)

    def get_delay(self, retry_after: Optional[float]) -> Optional[float]:
        """The wait before the next attempt.

        Args:
            retry_after: Seconds the server asked for (parsed ``Retry-After``), or None.

        Returns:
            ``retry_after`` when given and within :attr:`retry_after_max`, the computed backoff
            when none was given, or None when the server asked for longer than the cap (the
            caller should then give up and report the error).
        """
        if retry_after is None:
            return self.get_backoff()
        if retry_after > self.retry_after_max:
            return None
        return retry_after
