"""Node capabilities: retry, timeout, rate limit and circuit breaker.

Attach them through :class:`~spark_core.nodes.NodeConfig`. They compose in a fixed order:
the circuit breaker is checked first, then retry is the outermost loop, and the rate limit and
timeout apply to each attempt (the timeout really cancels an ``async`` node; a plain ``def``
node running in a worker thread is abandoned, not stopped, when it times out).

A capability object that keeps state (the rate limiter and the circuit breaker) shares that
state between every node configured with the same object.
"""

from __future__ import annotations

import asyncio
import random
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Deque, Optional, Tuple, Type

_STRATEGIES = ("exponential", "linear", "fixed")


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
        if not isinstance(self.max_retries, int) or self.max_retries < 0:
            raise ValueError(
                f"max_retries must be an int >= 0, got {self.max_retries!r}"
            )
        if self.backoff_factor < 1:
            raise ValueError(
                f"backoff_factor must be >= 1, got {self.backoff_factor!r}"
            )
        if self.initial_delay < 0 or self.max_delay < 0:
            raise ValueError("initial_delay and max_delay must be >= 0")
        if self.strategy not in _STRATEGIES:
            raise ValueError(
                f"strategy must be one of {_STRATEGIES}, got {self.strategy!r}"
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
        if not self.timeout_seconds > 0:
            raise ValueError(
                f"timeout_seconds must be > 0, got {self.timeout_seconds!r}"
            )


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
        if not isinstance(self.max_calls, int) or self.max_calls < 1:
            raise ValueError(f"max_calls must be an int >= 1, got {self.max_calls!r}")
        if not self.period_seconds > 0:
            raise ValueError(f"period_seconds must be > 0, got {self.period_seconds!r}")

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
        if not isinstance(self.failure_threshold, int) or self.failure_threshold < 1:
            raise ValueError(
                f"failure_threshold must be an int >= 1, got {self.failure_threshold!r}"
            )
        if self.reset_timeout < 0:
            raise ValueError(f"reset_timeout must be >= 0, got {self.reset_timeout!r}")

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
