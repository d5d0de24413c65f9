"""`OpenAIModel`: any OpenAI-compatible chat-completions endpoint, over ``requests``.

Works with the hosted OpenAI API and with every server that speaks its
``POST {base_url}/chat/completions`` dialect (vLLM, llama.cpp, Ollama, LM Studio, LiteLLM...).
``requests`` is imported only when the first call is made, so ``import spark_core`` stays
standard-library only; the blocking HTTP call runs in a worker thread.
"""

from __future__ import annotations

import asyncio
import logging
import math
import os
import threading
import time
import urllib.parse
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

from spark_core.models.base import (
    MessageLike,
    ModelAuthenticationError,
    ModelBadRequestError,
    ModelConfigError,
    ModelConnectionError,
    ModelError,
    ModelRateLimitError,
    ModelResponse,
    ModelResponseError,
    ModelResponseTooLargeError,
    ModelServerError,
    ModelTimeoutError,
    ToolCall,
    Usage,
    coerce_messages,
    decode_json,
)
from spark_core.models.pricing import as_pricing, estimate_cost
from spark_core.models.retry import RETRY_STATUSES, RetryPolicy, parse_retry_after

__all__ = [
    "OpenAIModel",
    "DEFAULT_BASE_URL",
    "DEFAULT_TIMEOUT",
    "DEFAULT_MAX_RETRIES",
    "DEFAULT_MAX_RESPONSE_BYTES",
]

#: Where requests go when neither ``base_url`` nor ``OPENAI_BASE_URL`` is set.
DEFAULT_BASE_URL = "https://api.openai.com/v1"
#: Seconds one attempt may take, from connecting to the body's last byte.
DEFAULT_TIMEOUT = 60.0
#: Retries after the first attempt (see :mod:`spark_core.models.retry` for which failures).
DEFAULT_MAX_RETRIES = 2
#: Longest answer body read; a chat completion is far smaller, so a longer one is refused.
DEFAULT_MAX_RESPONSE_BYTES = 32 * 1024 * 1024

logger = logging.getLogger("spark_core.models.openai")

# (status or None for a transport failure, headers, decoded body or text, request id)
_Reply = Tuple[Optional[int], Dict[str, str], Any, Optional[str]]


def _display_url(url: str) -> str:
    """The URL without user:password or query (they may hold credentials)."""
    parts = urllib.parse.urlsplit(url)
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    return urllib.parse.urlunsplit((parts.scheme, host, parts.path, "", ""))


class _Transient(Exception):
    """Internal: one attempt failed in a way worth retrying."""

    def __init__(
        self, reason: str, error: ModelError, retry_after: Optional[float]
    ) -> None:
        super().__init__(reason)
        self.reason = reason
        self.error = error
        self.retry_after = retry_after


class OpenAIModel:
    """A chat model behind an OpenAI-compatible HTTP endpoint.

    Example:
        >>> model = OpenAIModel(model_id="gpt-4o")            # doctest: +SKIP
        >>> reply = await model.complete([{"role": "user", "content": "Hi"}])  # doctest: +SKIP

    Args:
        model_id: The model name sent to the endpoint (``"gpt-4o"``, ``"llama3.1"``...).
        api_key: Bearer key; defaults to ``OPENAI_API_KEY``. May stay unset for local servers
            that need none (no ``Authorization`` header is sent then).
        base_url: Endpoint root up to ``/v1``; defaults to ``OPENAI_BASE_URL``, else
            :data:`DEFAULT_BASE_URL`.
        timeout: Seconds one attempt may take, from connecting to the last byte of the
            answer (not per socket read: a server trickling its answer is cut off at it).
        max_retries: Retries after the first attempt on HTTP 408, 429, 500, 502, 503, 504,
            timeouts and connection errors (a chat completion has no side effect, so a retry
            is safe); the rules are in :mod:`spark_core.models.retry`.
        backoff_factor: First backoff in seconds (doubles per retry, with jitter).
        max_retry_after: Longest server ``Retry-After`` honoured; longer ones fail at once.
        pricing: ``(input, output)`` USD per million tokens, overriding the price table.
        default_options: Options sent with every call (``temperature``, ``max_tokens``...).
        headers: Extra HTTP headers (never logged).
        deadline: Seconds the whole call may take, retries and their waits included, or
            None (default) for no bound beyond ``timeout`` per attempt. An attempt running
            at the deadline is cut (:class:`ModelTimeoutError`); a retry whose wait would end
            past it is not made, and the last error is raised as it is.
        max_response_bytes: Longest answer body read (after decompression); a longer one
            raises :class:`ModelResponseTooLargeError` without being read past the limit.

    Raises:
        ModelConfigError: An argument has the wrong type or value (the message names it).
    """

    def __init__(
        self,
        model_id: str,
        api_key: Optional[str] = None,
        base_url: Optional[str] = None,
        timeout: float = DEFAULT_TIMEOUT,
        max_retries: int = DEFAULT_MAX_RETRIES,
        *,
        backoff_factor: float = 0.5,
        max_retry_after: float = 60.0,
        pricing: Optional[Tuple[float, float]] = None,
        default_options: Optional[Mapping[str, Any]] = None,
        headers: Optional[Mapping[str, str]] = None,
        deadline: Optional[float] = None,
        max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
    ) -> None:
        if not isinstance(model_id, str) or not model_id:
            raise ModelConfigError(
                f"model_id must be a non-empty string, got {model_id!r}"
            )
        for name, value in (("api_key", api_key), ("base_url", base_url)):
            if value is not None and not isinstance(value, str):
                # type only: the value may be a secret
                raise ModelConfigError(
                    f"{name} must be a string or None, got {type(value).__name__}"
                )
        url = (
            base_url or os.environ.get("OPENAI_BASE_URL") or DEFAULT_BASE_URL
        ).rstrip("/")
        if not url.startswith(("http://", "https://")):
            raise ModelConfigError(
                f"base_url must start with http:// or https://, got {_display_url(url)!r}"
            )
        if (
            isinstance(timeout, bool)
            or not isinstance(timeout, (int, float))
            or not 0 < timeout < float("inf")
        ):
            raise ModelConfigError(
                f"timeout must be a number > 0 seconds, got {timeout!r}"
            )
        if deadline is not None and (
            isinstance(deadline, bool)
            or not isinstance(deadline, (int, float))
            or not 0 < deadline < math.inf
        ):
            raise ModelConfigError(
                f"deadline must be None or a number > 0 seconds, got {deadline!r}"
            )
        if (
            isinstance(max_response_bytes, bool)
            or not isinstance(max_response_bytes, int)
            or max_response_bytes <= 0
        ):
            raise ModelConfigError(
                f"max_response_bytes must be an int > 0, got {max_response_bytes!r}"
            )
        try:
            self.retry = RetryPolicy(
                max_retries=max_retries,
                backoff_factor=backoff_factor,
                max_retry_after=max_retry_after,
            )
            self.pricing = as_pricing(pricing)
        except ValueError as exc:
            raise ModelConfigError(str(exc)) from None
        for name, mapping in (
            ("default_options", default_options),
            ("headers", headers),
        ):
            if mapping is not None and not isinstance(mapping, Mapping):
                raise ModelConfigError(
                    f"{name} must be a mapping, got {type(mapping).__name__}"
                )
        self.model_id = model_id
        self.base_url = url
        self._shown_url = _display_url(url)
        self.timeout = float(timeout)
        self.deadline = None if deadline is None else float(deadline)
        self.max_response_bytes = max_response_bytes
        self.max_retries = max_retries
        self.default_options: Dict[str, Any] = dict(default_options or {})
        self._api_key = (
            api_key if api_key is not None else os.environ.get("OPENAI_API_KEY")
        )
        self._headers = dict(headers or {})
        self._session: Any = None
        self._session_lock = threading.Lock()

    # -- public -----------------------------------------------------------------------

    def __repr__(self) -> str:
        key = "set" if self._api_key else "unset"
        return (
            f"OpenAIModel(model_id={self.model_id!r}, base_url={self._shown_url!r}, "
            f"api_key={key})"
        )

    @property
    def has_api_key(self) -> bool:
        """Whether a key will be sent (the key itself is never exposed)."""
        return bool(self._api_key)

    def estimate_cost(self, usage: Usage) -> float:
        """Return the USD cost of ``usage`` (explicit ``pricing`` first, then the table).

        Args:
            usage: Token counts.

        Returns:
            Cost in US dollars; 0.0 for unknown models.
        """
        if self.pricing is not None:
            return self.pricing.cost(usage)
        return estimate_cost(self.model_id, usage)

    async def complete(
        self,
        messages: Sequence[MessageLike],
        tools: Optional[Sequence[Mapping[str, Any]]] = None,
        **options: Any,
    ) -> ModelResponse:
        """Send the conversation to ``{base_url}/chat/completions`` and parse the reply.

        Args:
            messages: The conversation.
            tools: Tool schemas in the OpenAI function format.
            **options: Extra body fields (``temperature``, ``response_format``...).

        Returns:
            The parsed reply.

        Raises:
            ModelAuthenticationError: 401/403.
            ModelBadRequestError: Other 4xx (not retried).
            ModelRateLimitError: 429 after all retries (or a too-long ``Retry-After``).
            ModelServerError: 5xx (500, 502, 503, 504 after all retries).
            ModelConnectionError: Unreachable after all retries.
            ModelTimeoutError: No whole answer within ``timeout``, or HTTP 408, after all
                retries; or the ``deadline`` passed.
            ModelResponseError: A 2xx answer that is not a chat completion.
            ModelResponseTooLargeError: An answer longer than ``max_response_bytes``.
        """
        payload: Dict[str, Any] = {
            "model": self.model_id,
            "messages": [m.to_dict() for m in coerce_messages(messages)],
        }
        if tools:
            payload["tools"] = [dict(t) for t in tools]
        payload.update(self.default_options)
        payload.update(options)
        ends_at = None if self.deadline is None else time.monotonic() + self.deadline
        retry = self.retry
        while True:
            budget, by_deadline = self.timeout, False
            if ends_at is not None:
                left = ends_at - time.monotonic()
                if left <= 0:
                    raise ModelTimeoutError(self._deadline_passed())
                if left < budget:
                    budget, by_deadline = left, True
            try:
                return await asyncio.to_thread(
                    self._attempt, payload, retry.retries_taken + 1, budget, by_deadline
                )
            except _Transient as failure:
                retry = retry.increment(failure.reason, failure.retry_after)
                if retry.is_exhausted() or retry.retry_after_too_long(
                    failure.retry_after
                ):
                    raise failure.error from None
                delay = retry.delay(failure.retry_after)
                if ends_at is not None and time.monotonic() + delay >= ends_at:
                    raise failure.error from None  # no time left for another attempt
                logger.info(
                    "model call failed (%s); retry %d/%d in %.2fs",
                    failure.reason,
                    retry.retries_taken,
                    retry.max_retries,
                    delay,
                )
                await asyncio.sleep(delay)

    def close(self) -> None:
        """Close the pooled HTTP session (a new one opens on the next call)."""
        with self._session_lock:
            if self._session is not None:
                self._session.close()
                self._session = None

    def __enter__(self) -> OpenAIModel:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # -- internals --------------------------------------------------------------------

    def _redact(self, text: str) -> str:
        """Remove the key from any text a server echoed back."""
        if self._api_key and self._api_key in text:
            return text.replace(self._api_key, "***")
        return text

    def _get_session(self) -> Any:
        # lazy: keeps `import spark_core` standard-library only
        from spark_core.models.transport import new_session

        with self._session_lock:
            if self._session is None:
                self._session = new_session()
            return self._session

    def _deadline_passed(self) -> str:
        return (
            f"model call to {self._shown_url}: deadline of {self.deadline:g}s exceeded"
        )

    def _attempt(
        self, payload: Dict[str, Any], attempt: int, budget: float, by_deadline: bool
    ) -> ModelResponse:
        """One HTTP round trip within ``budget`` seconds (runs in a worker thread)."""
        import requests

        from spark_core.models.transport import AttemptTimer, BodyTooLarge, read_body

        url = f"{self.base_url}/chat/completions"
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        headers.update(self._headers)
        if self._api_key:
            headers["Authorization"] = f"Bearer {self._api_key}"
        shown = f"{self._shown_url}/chat/completions"
        logger.debug("POST %s model=%s attempt=%d", shown, self.model_id, attempt)
        if by_deadline:
            late = self._deadline_passed()
        else:
            late = f"model endpoint {self._shown_url} did not answer within {budget:g}s"
        with AttemptTimer(budget) as timer:
            try:
                # stream=True: the body is read while the timer can still cut it.
                resp = self._get_session().post(
                    url, json=payload, headers=headers, timeout=budget, stream=True
                )
                content: Optional[bytes] = read_body(resp, self.max_response_bytes)
            except BodyTooLarge:
                content = None
            except requests.RequestException as exc:
                if timer.stop() or isinstance(exc, requests.Timeout):
                    raise _Transient("timeout", ModelTimeoutError(late), None) from None
                msg = self._redact(
                    f"cannot reach model endpoint {self._shown_url}: {type(exc).__name__}"
                )
                raise _Transient(
                    type(exc).__name__, ModelConnectionError(msg), None
                ) from None
            if timer.stop():  # cut mid-body: what was read may look whole but is not
                resp.close()
                raise _Transient("timeout", ModelTimeoutError(late), None)
        request_id = resp.headers.get("x-request-id")
        logger.debug(
            "POST %s -> %d (request id %s)", shown, resp.status_code, request_id
        )
        too_large = f"answer over {self.max_response_bytes} bytes (max_response_bytes), not read"
        if resp.status_code >= 400:
            text = too_large if content is None else self._text(resp, content)
            raise self._http_error(
                resp.status_code, dict(resp.headers), text, request_id
            )
        if content is None:
            raise ModelResponseTooLargeError(
                f"model endpoint {too_large}",
                limit=self.max_response_bytes,
                status_code=resp.status_code,
                request_id=request_id,
            )
        try:
            data = decode_json(content)
        except ValueError as exc:
            raise ModelResponseError(
                f"model endpoint answered with a body that is not JSON ({exc})",
                status_code=resp.status_code,
                request_id=request_id,
            ) from None
        return self._parse(data, request_id)

    @staticmethod
    def _text(resp: Any, content: bytes) -> str:
        """The body as text, in the answer's charset (as ``requests`` would decode it)."""
        try:
            return content.decode(resp.encoding or "utf-8", errors="replace")
        except LookupError:  # a charset Python does not know
            return content.decode("utf-8", errors="replace")

    def _http_error(
        self, status: int, headers: Dict[str, str], text: str, request_id: Optional[str]
    ) -> Exception:
        """Map an HTTP error to a typed error (wrapped in _Transient when retryable)."""
        text = self._redact(text)
        body: Any = text
        detail = text.strip()[:500] or "no detail"
        try:
            body = decode_json(text)
        except ValueError:
            pass
        if isinstance(body, dict):
            err = body.get("error", body.get("detail"))
            if isinstance(err, dict) and isinstance(err.get("message"), str):
                detail = err["message"]
            elif isinstance(err, str):
                detail = err
        kw: Dict[str, Any] = {
            "status_code": status,
            "request_id": request_id,
            "body": body,
        }
        message = f"model endpoint error: {detail}"
        if status in (401, 403):
            return ModelAuthenticationError(message, **kw)
        retry_after = parse_retry_after(headers)
        error: ModelError
        if status == 429:
            error = ModelRateLimitError(message, retry_after=retry_after, **kw)
        elif status >= 500:
            error = ModelServerError(message, **kw)
        elif status == 408:  # the server gave up waiting for our request
            error = ModelTimeoutError(message, **kw)
        else:
            error = ModelBadRequestError(message, **kw)
        if status in RETRY_STATUSES:
            return _Transient(f"HTTP {status}", error, retry_after)
        return error

    def _parse(self, data: Any, request_id: Optional[str]) -> ModelResponse:
        """Turn a decoded chat-completion body into a :class:`ModelResponse`."""
        try:
            choice = data["choices"][0]
            message = choice["message"]
        except (KeyError, IndexError, TypeError):
            raise ModelResponseError(
                "model endpoint answer has no choices[0].message",
                request_id=request_id,
                body=data,
            ) from None
        if not isinstance(message, dict):
            raise ModelResponseError("choices[0].message is not an object", body=data)
        content = message.get("content")
        if isinstance(content, list):  # some servers send content parts
            texts = [p.get("text", "") for p in content if isinstance(p, dict)]
            if not all(isinstance(t, str) for t in texts):
                raise ModelResponseError(
                    "choices[0].message.content has a part that is not text", body=data
                )
            content = "".join(texts)
        if content is not None and not isinstance(content, str):
            raise ModelResponseError(
                "choices[0].message.content is not text", body=data
            )
        usage = data.get("usage")
        if usage is not None and not isinstance(usage, dict):
            raise ModelResponseError("usage is not an object", body=data)
        tool_calls = message.get("tool_calls")
        if tool_calls is not None and not isinstance(tool_calls, list):
            raise ModelResponseError(
                "choices[0].message.tool_calls is not a list", body=data
            )
        finish_reason = choice.get("finish_reason")
        calls: List[ToolCall] = []
        for index, call in enumerate(tool_calls or ()):
            if not isinstance(call, dict):
                raise ModelResponseError("a tool call is not an object", body=data)
            if not call.get("id"):
                # Some servers send no ids; the agent matches results to calls by id, so
                # two calls of one tool must not share the default "call_<name>".
                call = dict(call, id=f"call_{index}")
            calls.append(ToolCall.from_dict(call))
        return ModelResponse(
            text=content,
            tool_calls=calls,
            usage=Usage.from_dict(usage),
            raw=data,
            model=str(data.get("model") or self.model_id),
            finish_reason=finish_reason if isinstance(finish_reason, str) else None,
        )
