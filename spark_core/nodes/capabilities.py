"""Node capabilities: retry, timeout, rate limit and circuit breaker.

Attach them through :class:`~spark_core.nodes.NodeConfig`. They compose in a fixed order:
the circuit breaker is checked first, then retry is the outermost loop, and the rate limit and
timeout apply to each attempt (the timeout really cancels an ``async`` node; a plain ``def``
node running in a worker thread is abandoned, not stopped, when it times out).

A capability object that keeps state (the rate limiter and the circuit breaker) shares that
state between every node configured with the same object. A bad setting raises
:class:`~spark_core.errors.GraphDefinitionError` (a ``ValueError``) naming it.
"""

from __future__ import annotations

import asyncio
import random
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Deque, Optional, Tuple, Type

from spark_core.errors import GraphDefinitionError

_STRATEGIES = ("exponential", "linear", "fixed")


def _check(
    owner: object,
    name: str,
    minimum: float,
    *,
    above: bool = False,
    whole: bool = False,
) -> None:
    """Refuse ``owner.name`` unless it is a number (an int if ``whole``) >= (or >) minimum."""
    value = getattr(owner, name)
    kinds = (int,) if whole else (int, float)
    if (
        isinstance(value, bool)
        or not isinstance(value, kinds)
        or not (value > minimum if above else value >= minimum)  # also refuses NaN
    ):
        what = "an int" if whole else "a number"
        bound = f"> {minimum:g}" if above else f">= {minimum:g}"
        raise GraphDefinitionError(
            f"{type(owner).__name__}.{name} must be {what} {bound}, got {value!r}"
        )


def _jitter(delay: float) -> float:
    """Return ``delay`` scaled by a random factor in [0.5, 1.5) (the one random knob)."""
    return delay * (0.5 + random.random())


@dataclass(frozen=True)
class RetryCapability:
    """Retry a failing node.

    ``max_retries`` counts the retries after the first attempt, so ``max_retries=3`` allows
    up to four attempts. The delay before retry ``n`` (1-based) is:

    * ``"exponential"`` (default): ``initial_delay * backoff_factor ** (n - 1)``
    * ``"linear"``: ``initial_delay * n``
    * ``"fixed"``: ``initial_delay``

    capped at ``max_delay``, then optionally jittered by a factor in [0.5, 1.5).

    Attributes:
        max_retries: Retries after the first attempt (>= 0).
        backoff_factor: Multiplier of the exponential strategy (>= 1).
        initial_delay: Delay in seconds before the first retry (>= 0).
        max_delay: Upper bound in seconds of any single delay.
        strategy: ``"exponential"``, ``"linear"`` or ``"fixed"``.
        jitter: Randomise each delay so many failing nodes do not retry in lockstep.
        retry_on: Exception classes that are retried; others fail the node at once.
    """

    max_retries: int = 3
    backoff_factor: float = 2.0
    initial_delay: float = 0.1
    max_delay: float = 30.0
    strategy: str = "exponential"
    jitter: bool = False
    retry_on: Tuple[Type[BaseException], ...] = (Exception,)

    def __post_init__(self) -> None:
        _check(self, "max_retries", 0, whole=True)
        _check(self, "backoff_factor", 1)
        _check(self, "initial_delay", 0)
        _check(self, "max_delay", 0)
        if self.strategy not in _STRATEGIES:
            raise GraphDefinitionError(
                f"RetryCapability.strategy must be one of {_STRATEGIES}, "
                f"got {self.strategy!r}"
            )
        classes = (
            self.retry_on if isinstance(self.retry_on, tuple) else (self.retry_on,)
        )
        if not all(
            isinstance(c, type) and issubclass(c, BaseException) for c in classes
        ):
            raise GraphDefinitionError(
                "RetryCapability.retry_on must be exception classes, "
                f"got {self.retry_on!r}"
            )

    def delay(self, retry: int) -> float:
        """Return the delay in seconds before retry number ``retry`` (1-based).

        Args:
            retry: Which retry is about to happen (1 for the first retry).

        Returns:
            The delay in seconds, capped at ``max_delay``.
        """
        if self.strategy == "fixed":
            base = self.initial_delay
        elif self.strategy == "linear":
            base = self.initial_delay * retry
        else:
            base = self.initial_delay * self.backoff_factor ** (retry - 1)
        base = min(base, self.max_delay)
        return min(_jitter(base), self.max_delay) if self.jitter else base

    def should_retry(self, error: BaseException, retry: int) -> bool:
        """Tell whether ``error`` may be retried as retry number ``retry``.

        Args:
            error: The exception the attempt raised.
            retry: The number of the retry that would follow (1-based).

        Returns:
            True when retries remain and the error is one of ``retry_on``.
        """
        return retry <= self.max_retries and isinstance(error, self.retry_on)


@dataclass(frozen=True)
class TimeoutCapability:
    """Limit each attempt of a node to ``timeout_seconds``.

    Attributes:
        timeout_seconds: Seconds one attempt may take (> 0).
    """

    timeout_seconds: float = 30.0

    def __post_init__(self) -> None:
        _check(self, "timeout_seconds", 0, above=True)


@dataclass
class RateLimitCapability:
    """Allow at most ``max_calls`` attempts per ``period_seconds`` (sliding window).

    Attempts over the limit wait (asynchronously) for a free slot rather than fail.

    Attributes:
        max_calls: Attempts allowed per window (>= 1).
        period_seconds: Length of the window in seconds (> 0).
    """

    max_calls: int = 10
    period_seconds: float = 1.0
    _calls: Deque[float] = field(
        default_factory=deque, init=False, repr=False, compare=False
    )
    _lock: Any = field(
        default_factory=threading.Lock, init=False, repr=False, compare=False
    )

    def __post_init__(self) -> None:
        _check(self, "max_calls", 1, whole=True)
        _check(self, "period_seconds", 0, above=True)

    def _reserve(self) -> float:
        """Take a slot if one is free (returns 0) or return how long to wait for one."""
        with self._lock:
            now = time.monotonic()
            while self._calls and now - self._calls[0] >= self.period_seconds:
                self._calls.popleft()
            if len(self._calls) < self.max_calls:
                self._calls.append(now)
                return 0.0
            return self.period_seconds - (now - self._calls[0])

    async def acquire(self) -> None:
        """Wait until the window has room, then take a slot."""
        while True:
            wait = self._reserve()
            if wait <= 0:
                return
            await asyncio.sleep(wait)


@dataclass
class CircuitBreakerCapability:
    """Stop calling a node that keeps failing.

    After ``failure_threshold`` consecutive failed attempts the circuit opens and the node
    fails at once with :class:`~spark_core.errors.CircuitOpenError`. After
    ``reset_timeout`` seconds one trial call is let through (half-open): success closes the
    circuit, failure opens it again.

    Attributes:
        failure_threshold: Consecutive failures that open the circuit (>= 1).
        reset_timeout: Seconds the circuit stays open before a trial call.
    """

    failure_threshold: int = 5
    reset_timeout: float = 60.0
    _failures: int = field(default=0, init=False, repr=False, compare=False)
    _opened_at: Optional[float] = field(
        default=None, init=False, repr=False, compare=False
    )

    def __post_init__(self) -> None:
        _check(self, "failure_threshold", 1, whole=True)
        _check(self, "reset_timeout", 0)

    @property
    def state(self) -> str:
        """``"closed"``, ``"open"`` or ``"half-open"``."""
        if self._opened_at is None:
            return "closed"
        if time.monotonic() - self._opened_at >= self.reset_timeout:
            return "half-open"
        return "open"

    def allow(self) -> bool:
        """Tell whether a call may go through now.

        When half-open, the call that gets ``True`` is the trial: the circuit counts as open
        again for ``reset_timeout`` (so concurrent callers are refused) until the trial
        records a success or a failure.

        Returns:
            True when the call may go through (closed, or the half-open trial).
        """
        state = self.state
        if state == "half-open":
            self._opened_at = time.monotonic()
        return state != "open"

    def record_success(self) -> None:
        """Close the circuit after a successful call."""
        self._failures = 0
        self._opened_at = None

    def record_failure(self) -> None:
        """Count a failed call; open the circuit at the threshold (or after a failed trial)."""
        self._failures += 1
        if self._opened_at is not None or self._failures >= self.failure_threshold:
            self._opened_at = time.monotonic()

    def reset(self) -> None:
        """Close the circuit and forget past failures."""
        self.record_success()


__all__ = [
    "RetryCapability",
    "TimeoutCapability",
    "RateLimitCapability",
    "CircuitBreakerCapability",
]
