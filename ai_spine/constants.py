"""Every default the SDK uses, in one place."""

from __future__ import annotations

DEFAULT_BASE_URL = "https://ai-spine-api-production.up.railway.app"
API_PREFIX = "/api/v1"
ENV_API_KEY = "AI_SPINE_API_KEY"
ENV_BASE_URL = "AI_SPINE_BASE_URL"

DEFAULT_TIMEOUT = 30.0  # seconds per HTTP attempt, connecting to last byte
DEFAULT_MAX_RETRIES = 3  # retries after the first attempt
DEFAULT_BACKOFF_FACTOR = (
    0.5  # first retry waits ~0.5 s, then 1 s, 2 s, ... (before jitter)
)
DEFAULT_BACKOFF_MAX = 8.0  # no computed backoff waits longer than this
DEFAULT_RETRY_AFTER_MAX = (
    60.0  # a longer Retry-After is not waited for: the error is raised
)
DEFAULT_MAX_BODY_SIZE = (
    32 * 1024 * 1024
)  # bytes: a longer answer body is refused unread
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})

DEFAULT_POOL_MAXSIZE = (
    20  # pooled connections per host (execute_batch threads share them)
)
DEFAULT_WAIT_TIMEOUT = 300.0  # wait_for_execution: seconds before giving up
DEFAULT_POLL_INTERVAL = 2.0  # wait_for_execution: seconds between polls
DEFAULT_BATCH_CONCURRENCY = 5
DEFAULT_LIST_LIMIT = 20

EXECUTION_STATUSES = ("pending", "running", "completed", "failed", "cancelled")
TERMINAL_STATUSES = frozenset({"completed", "failed", "cancelled"})
ZERO_UUID = (
    "00000000-0000-0000-0000-000000000000"  # the backend's "unknown flow" answer
)
MAX_ID_LENGTH = 256
