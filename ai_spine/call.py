"""One logical request's clock and retry decisions, apart from any I/O.

Both transports (``requests`` in :mod:`ai_spine.api`, ``aiohttp`` in
:mod:`ai_spine.async_api`) drive a :class:`Call` the same way::

    call = Call(...)
    while True:
        timeout, ends_at = call.next_attempt()    # TimeoutError when no time is left
        ... one attempt, bounded by ends_at ...   # success: return
        delay = call.settle(attempt, ...)         # raises when no retry is allowed
        ... sleep(delay) ...

so the retry, deadline and ``Retry-After`` rules exist once.
"""

from __future__ import annotations

import logging
from typing import Callable, Optional

from ai_spine.answers import Attempt, error_from_answer, transport_error
from ai_spine.exceptions import AISpineError, RateLimitError, TimeoutError
from ai_spine.retry import Retry, parse_retry_after

__all__ = ["Call"]

logger = logging.getLogger("ai_spine")


class Call:
    """The bookkeeping of one logical request: attempts' time bounds and retries.

    Args:
        method: HTTP method (upper case).
        path: Full path, e.g. ``/api/v1/flows``.
        url: URL without credentials (for the retry history).
        retry: The client's retry policy.
        timeout: Seconds one attempt may take, connect to last body byte.
        client_deadline: The client's overall bound per call, or None.
        call_deadline: This call's own bound (``wait_for_execution``'s polls), or None.
        idempotent: Whether the request carries an idempotency key.
        clock: Monotonic seconds.
    """

    def __init__(
        self,
        method: str,
        path: str,
        url: str,
        *,
        retry: Retry,
        timeout: float,
        client_deadline: Optional[float],
        call_deadline: Optional[float],
        idempotent: bool,
        clock: Callable[[], float],
    ) -> None:
        self.method = method
        self.path = path
        self.url = url
        self.retry = retry
        self.timeout = timeout
        self.idempotent = idempotent
        self.clock = clock
        budget = client_deadline
        # When the call's own bound is the tighter one, running out of it is a TimeoutError
        # (the caller's clock), not the last attempt's error.
        self.call_bound = call_deadline is not None and (
            budget is None or call_deadline <= budget
        )
        if call_deadline is not None:
            budget = call_deadline if budget is None else min(budget, call_deadline)
        self.budget = budget
        self.ends_at = None if budget is None else clock() + budget
        self.attempt_timeout = timeout
        self.attempt_ends_at = 0.0

    def deadline_error(self) -> TimeoutError:
        """The error for a call whose deadline passed.

        Returns:
            ``TimeoutError("<method> <path>: deadline of <n>s exceeded")``.
        """
        return TimeoutError(
            f"{self.method} {self.path}: deadline of {self.budget or 0:g}s exceeded"
        )

    def next_attempt(self) -> "tuple[float, float]":
        """Start an attempt.

        Returns:
            ``(timeout, ends_at)``: the attempt's seconds and when it must end, on ``clock``.

        Raises:
            TimeoutError: The call's deadline has passed.
        """
        now = self.clock()
        timeout = self.timeout
        if self.ends_at is not None:
            timeout = min(timeout, self.ends_at - now)
            if timeout <= 0:
                raise self.deadline_error()
        self.attempt_timeout = timeout
        self.attempt_ends_at = now + timeout
        return timeout, self.attempt_ends_at

    def cut_by_deadline(self) -> bool:
        """Whether the attempt that just ran out of time was bounded by the call's deadline.

        Returns:
            True when the deadline (not the per-attempt ``timeout``) ended it: the call is
            over. False when only this attempt timed out (a retry may follow).
        """
        return self.ends_at is not None and self.attempt_ends_at >= self.ends_at

    def settle(self, attempt: Attempt, *, where: str, secret: Optional[str]) -> float:
        """Turn a failed attempt into its typed error and decide on a retry.

        Args:
            attempt: The attempt: an error answer, or no answer.
            where: ``host:port`` of the API (for connection errors).
            secret: The API key, redacted wherever the server echoed it.

        Returns:
            Seconds to wait before the next attempt.

        Raises:
            AISpineError: As :meth:`failed`.
        """
        if attempt.status is None:
            assert attempt.kind is not None
            error = transport_error(
                self.method,
                self.path,
                attempt.kind,
                attempt.name,
                attempt.detail,
                self.attempt_timeout,
                where,
            )
            return self.failed(error, kind=attempt.kind)
        retry_after = parse_retry_after(attempt.headers.get("Retry-After"))
        error = error_from_answer(
            self.method,
            self.path,
            attempt.status,
            attempt.headers,
            attempt.content,
            secret=secret,
            retry_after=retry_after,
        )
        return self.failed(error, status=attempt.status, retry_after=retry_after)

    def failed(
        self,
        error: AISpineError,
        *,
        status: Optional[int] = None,
        kind: Optional[str] = None,
        retry_after: Optional[float] = None,
    ) -> float:
        """Record a failed attempt and say how long to wait before the next one.

        Args:
            error: The typed error of the attempt.
            status: The answer's status, or None when there was no answer.
            kind: The transport failure's kind when there was no answer.
            retry_after: The answer's parsed ``Retry-After``, if any.

        Returns:
            Seconds to wait before the next attempt.

        Raises:
            AISpineError: ``error`` itself when no retry is allowed, or a ``TimeoutError``
                chained to it when the deadline leaves no time (see :meth:`APIClient.request
                <ai_spine.api.APIClient.request>`).
        """
        late = self.ends_at is not None and self.clock() >= self.ends_at
        if status is None and late:
            # A failure once the deadline passed: the attempt had what was left, and used it.
            raise self.deadline_error() from error
        if isinstance(error, RateLimitError):
            retry_after = error.retry_after  # the header's, else the body's
        if not self.retry.is_retryable(
            self.method,
            status=status,
            error=kind,
            has_retry_after=retry_after is not None,
            idempotent=self.idempotent,
        ):
            raise error
        self.retry = self.retry.increment(
            self.method, self.url, status=status, error=kind
        )
        delay = self.retry.get_delay(retry_after)
        if self.retry.is_exhausted() or delay is None:
            raise error
        if self.ends_at is not None and self.clock() + delay >= self.ends_at:
            if self.call_bound:
                raise TimeoutError(
                    f"{self.method} {self.path}: deadline of {self.budget:g}s leaves no "
                    f"time to retry ({error.message})"
                ) from error
            raise error
        logger.info(
            "%s %s failed (%s); retry %d/%d in %.2fs",
            self.method,
            self.path,
            status if status is not None else kind,
            self.retry.retries_taken,
            self.retry.total,
            delay,
        )
        return delay
