"""Error handling: every failure is a typed exception you can catch precisely.

Each step below triggers one kind of error on purpose and shows what the SDK raises.

    ai-spine serve --demo --port 8000 &
    AI_SPINE_BASE_URL=http://127.0.0.1:8000 python examples/error_handling.py
"""

from __future__ import annotations

import os
import socket
import sys
from typing import Callable

from ai_spine import (
    AISpine,
    AISpineError,
    AuthenticationError,
    ExecutionError,
    FlowNotFoundError,
    NetworkError,
    NotFoundError,
    RateLimitError,
    ServerError,
    TimeoutError,
    ValidationError,
)


def attempt(title: str, action: Callable[[], object]) -> None:
    """Run one action and report how it ended."""
    print(f"- {title}")
    try:
        result = action()
    except FlowNotFoundError as exc:  # before NotFoundError/ExecutionError: it is both
        print(f"    FlowNotFoundError: {exc} (flow_id={exc.flow_id!r})")
    except ValidationError as exc:
        where = (
            "before sending" if exc.status_code is None else f"HTTP {exc.status_code}"
        )
        print(f"    ValidationError ({where}): {exc.message}")
    except AuthenticationError as exc:
        print(f"    AuthenticationError: check AI_SPINE_API_KEY ({exc.message})")
    except NotFoundError as exc:
        print(f"    NotFoundError: {exc.message}")
    except RateLimitError as exc:
        print(f"    RateLimitError: retry after {exc.retry_after} s")
    except ExecutionError as exc:
        print(f"    ExecutionError: execution {exc.execution_id} ended {exc.status}")
    except TimeoutError as exc:  # also a builtins.TimeoutError
        print(f"    TimeoutError: {exc.message}")
    except NetworkError as exc:
        print(f"    NetworkError: {exc.message}")
    except ServerError as exc:
        print(f"    ServerError: {exc}")
    except AISpineError as exc:  # anything else the SDK raises
        print(f"    {type(exc).__name__}: {exc}")
    else:
        print(f"    ok: {result}")


def closed_port() -> int:
    """A local port with nothing listening on it."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def main() -> int:
    """Run the example; returns the process exit code."""
    flow_id = os.environ.get("AI_SPINE_FLOW", "echo")
    with AISpine(timeout=10, max_retries=1) as client:
        attempt(
            "malformed flow id (no request is sent)",
            lambda: client.execute_flow("a/b", {}),
        )
        attempt(
            "input that is not JSON",
            lambda: client.execute_flow(flow_id, {"x": object()}),
        )
        attempt("unknown flow", lambda: client.execute_flow("no_such_flow", {}))
        attempt("unknown agent", lambda: client.get_agent("no_such_agent"))
        attempt(
            "waiting with a tiny timeout",
            lambda: client.wait_for_execution(
                client.execute_flow(flow_id, {"text": "hi"})["execution_id"],
                timeout=0.001,
            ),
        )
        attempt("a working call", lambda: client.health_check().get("status"))

    # Nothing listens on this port: connection refused, retried, then NetworkError.
    with AISpine(
        base_url=f"http://127.0.0.1:{closed_port()}", max_retries=1
    ) as offline:
        attempt("server unreachable", offline.health_check)
    return 0


if __name__ == "__main__":
    sys.exit(main())
