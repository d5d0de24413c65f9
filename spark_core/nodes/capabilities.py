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
import threading
import time
from collections import deque
from dataclasses import dataclass, field, fields
from typing import Any, Deque, Optional, Tuple, Type

from spark_core.errors import GraphDefinitionError
from spark_core.field_rules import field_types, rule_of
from spark_core.retry import RetrySettings


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


@dataclass(frozen=True)
class RetryCapability(RetrySettings):
    """Retry a failing node: :class:`~spark_core.retry.RetrySettings` (the fields, defaults,
    delay schedule and jitter shared with the spec's ``RetrySpec``) plus the exception
    classes worth retrying.

    Attributes:
        retry_on: Exception classes that are retried; others fail the node at once.
    """

    retry_on: Tuple[Type[BaseException], ...] = (Exception,)

    def __post_init__(self) -> None:
        for item in fields(RetrySettings):
            declared = rule_of(item)
            if declared.choices:
                value = getattr(self, item.name)
                if value not in declared.choices:
                    raise GraphDefinitionError(
                        f"RetryCapability.{item.name} must be one of "
                        f"{declared.choices}, got {value!r}"
                    )
            elif declared.minimum is not None:
                whole = field_types(RetrySettings)[item.name] is int
                _check(self, item.name, declared.minimum, whole=whole)
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
