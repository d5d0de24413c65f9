"""Human approvals: requests persisted in graph state, listed and resolved by an operator.

When a policy answers REQUIRE_APPROVAL, the executor stores an approval request under the
reserved state key ``_spark_approvals`` (a mapping id -> request dict) and raises
:class:`ApprovalPendingError`, which pauses the run. An operator then lists and resolves
requests::

    pending = await graph.approvals.list(status="pending")
    await graph.approvals.resolve(pending[0].id, "approved", reviewer="ana", notes="ok")
    await graph.resume(run_id)          # the approved call runs exactly once

Without a graph (e.g. the ``spark-spec approval-*`` CLI, another process)::

    store = ApprovalStore.open("state/mission.sqlite")     # a SQLiteStateBackend file
    # or ApprovalStore.open("postgresql://user:pw@host/db")  (a PostgresStateBackend)
    store.list_sync(status="pending")
    store.resolve_sync("apr-...", "approved", reviewer="ops")

A request moves ``pending -> approved | rejected`` once: resolving it again raises
:class:`ApprovalAlreadyResolvedError`. An approved request is *consumed* (``consumed_at``
set) when the paused call runs; a consumed approval is never reused. With a durable backend
it is stored as used *before* the call runs (under a lock file, ``<state file>.lock``; on
PostgreSQL under an advisory lock), so two
processes resuming one run cannot both run it, and a process that dies mid-call does not run
it again on resume: the resumed run asks for a fresh approval (at most once, never twice).
A rejection is final for its run: the call fails with ``PolicyViolationError`` each time the
run is resumed, without a new request (a new run asks again).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as _dt
import hashlib
import inspect
import json
import os
import uuid
from dataclasses import asdict, dataclass, field, fields
from typing import Any, AsyncIterator, Collection, Dict, List, Mapping, Optional, Tuple

from spark_core.errors import RunPaused, SparkError
from spark_core.graphs import plugins
from spark_core.graphs.backends import SQLiteStateBackend
from spark_core.utils import LoopLock

try:  # POSIX only: cross-process locking of the state file
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

__all__ = [
    "APPROVALS_KEY",
    "ApprovalRequest",
    "ApprovalStore",
    "ApprovalPendingError",
    "ApprovalError",
    "ApprovalNotFoundError",
    "ApprovalAlreadyResolvedError",
    "PENDING",
    "APPROVED",
    "REJECTED",
]

APPROVALS_KEY = "_spark_approvals"
PENDING = "pending"
APPROVED = "approved"
REJECTED = "rejected"
_STATUSES = (PENDING, APPROVED, REJECTED)


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="milliseconds")


def fingerprint(
    action: str, resource: str, run_id: Any, node_id: Any, payload: Any
) -> str:
    """Identify "the same call" across a pause and resume (hash of its JSON form)."""
    text = json.dumps(
        [action, resource, run_id, node_id, payload], sort_keys=True, default=repr
    ).encode()
    return hashlib.sha256(text).hexdigest()[:32]


@dataclass
class ApprovalRequest:
    """One approval request, as stored in graph state.

    Attributes:
        id: Request id (``apr-...``), what operators resolve.
        action: e.g. ``tool:execute``.
        resource: e.g. ``tool://write_file``.
        status: ``pending``, ``approved`` or ``rejected``.
        created_at: ISO 8601 UTC time of the request.
        requester: Who asked (``run:<run_id>/node:<node_id>``).
        run_id: The paused run, if any.
        node_id: The node that asked, if any.
        policy: Name of the policy set.
        rule: Name of the rule that required approval.
        reason: The rule's reason.
        context: A redacted summary of what was asked (tool name, arguments).
        reviewer: Who resolved it.
        notes: The reviewer's note.
        resolved_at: ISO 8601 UTC time of the resolution.
        consumed_at: When the approved (or rejected) answer was used by the resumed run.
        fingerprint: Hash of the call, used to match the resumed call to this request.
        result: What the approved call returned (when JSON-serialisable), so a node that
            runs again before it completes (it paused later on, failed, or is retried)
            gets the result back instead of running the call a second time.
        result_at: When ``result`` was recorded (None: no result to give back).
        settled_at: When the node that made the call completed (the result is no longer
            given back: a later execution of the node, e.g. in a loop, asks again).
    """

    id: str
    action: str
    resource: str
    status: str = PENDING
    created_at: str = field(default_factory=_now)
    requester: str = ""
    run_id: Optional[str] = None
    node_id: Optional[str] = None
    policy: Optional[str] = None
    rule: Optional[str] = None
    reason: str = ""
    context: Dict[str, Any] = field(default_factory=dict)
    reviewer: Optional[str] = None
    notes: Optional[str] = None
    resolved_at: Optional[str] = None
    consumed_at: Optional[str] = None
    fingerprint: str = ""
    result: Any = None
    result_at: Optional[str] = None
    settled_at: Optional[str] = None

    def to_dict(self) -> Dict[str, Any]:
        """Return the JSON-serialisable form stored in graph state."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ApprovalRequest:
        """Build a request from its stored form (unknown keys are ignored)."""
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


class ApprovalError(SparkError, ValueError):
    """An approval operation was invalid (bad status, unknown id, already resolved)."""


class ApprovalNotFoundError(ApprovalError, KeyError):
    """No approval request has the given id."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class ApprovalAlreadyResolvedError(ApprovalError):
    """The request was already approved or rejected; a request is resolved once."""


class ApprovalPendingError(RunPaused):
    """The run paused until a human resolves an approval request.

    Attributes:
        request_id: Id of the pending request (resolve it, then ``graph.resume(run_id)``).
        request: The request as a dict.
        decision: The PolicyDecision that required approval.
    """

    def __init__(
        self,
        message: str,
        *,
        request_id: str,
        request: Optional[Mapping[str, Any]] = None,
        decision: Any = None,
    ) -> None:
        super().__init__(message)
        self.request_id = request_id
        self.request = dict(request or {})
        self.decision = decision

    def stop_event(self) -> Optional[Tuple[str, Dict[str, Any]]]:
        """Telemetry's ``approval.pending`` event: the request's id, action, resource.

        Returns:
            The event name and its attributes.
        """
        return "approval.pending", {
            "request_id": self.request_id,
            "action": self.request.get("action"),
            "resource": self.request.get("resource"),
        }


class _BackendState:
    """GraphState-like access to a state backend alone (another process, the CLI).

    ``cache``: the GraphState over the same backend, if any; its copy of a written key is
    updated too, so ``graph.state.get`` agrees (without the write being committed again).
    """

    def __init__(self, backend: Any, cache: Any = None) -> None:
        for name in ("load_keys", "save_state_keys"):
            if not callable(getattr(backend, name, None)):
                raise ApprovalError(
                    f"{type(backend).__name__} has no {name}(); "
                    "use a SQLiteStateBackend (or a GraphState)"
                )
        self.backend = backend
        self._cache = cache
        self._lock = LoopLock()

    async def get(self, key: str, default: Any = None) -> Any:
        data = self.backend.load_keys([key])
        if inspect.isawaitable(data):
            data = await data
        return dict(data or {}).get(key, default)

    async def set(self, key: str, value: Any) -> None:
        done = self.backend.save_state_keys({key: value})
        if inspect.isawaitable(done):
            await done
        cached = getattr(self._cache, "_data", None)
        if isinstance(cached, dict):
            cached[key] = value

    def lock(self) -> Any:
        exclusive = getattr(self.backend, "exclusive", None)
        if callable(exclusive):  # a database server's own lock (PostgreSQL)
            return _BackendLock(self._lock.current(), exclusive(APPROVALS_KEY))
        return _FileLock(self._lock.current(), getattr(self.backend, "path", None))


class _BackendLock:
    """An asyncio lock plus the backend's cross-process lock (a blocking context manager,
    entered and left in a worker thread)."""

    def __init__(self, lock: asyncio.Lock, exclusive: Any) -> None:
        self._lock = lock
        self._exclusive = exclusive

    async def __aenter__(self) -> None:
        await self._lock.acquire()
        try:
            await asyncio.to_thread(self._exclusive.__enter__)
        except BaseException:
            self._lock.release()
            raise

    async def __aexit__(self, *exc: Any) -> None:
        try:
            await asyncio.to_thread(self._exclusive.__exit__, None, None, None)
        finally:
            self._lock.release()


class _FileLock:
    """An asyncio lock plus, where the OS has ``flock``, an exclusive lock shared by every
    process using one state file, so two processes (two CLI calls, two resumes) cannot both
    resolve or use one request.

    The lock is taken on a sidecar file (``<state file>.lock``), never on the database
    itself: closing any descriptor of a SQLite file drops the POSIX locks SQLite holds on it
    in this process (in WAL mode, the shared lock every open connection keeps).
    """

    def __init__(self, lock: asyncio.Lock, path: Any) -> None:
        self._lock = lock
        is_file = isinstance(path, str) and os.path.isfile(path)
        self._path = path + ".lock" if is_file else None
        self._fh: Any = None

    async def __aenter__(self) -> None:
        await self._lock.acquire()
        if self._path is None or fcntl is None:
            return
        try:
            self._fh = open(self._path, "ab")
            await asyncio.to_thread(fcntl.flock, self._fh.fileno(), fcntl.LOCK_EX)
        except BaseException:
            if self._fh is not None:
                self._fh.close()
                self._fh = None
            self._lock.release()
            raise

    async def __aexit__(self, *exc: Any) -> None:
        try:
            if self._fh is not None:
                self._fh.close()  # closing releases the flock
                self._fh = None
        finally:
            self._lock.release()


class _DictState:
    """Process-local state used by a ToolExecutor that runs outside any graph."""

    def __init__(self) -> None:
        self.data: Dict[str, Any] = {}
        self._lock = LoopLock()

    async def get(self, key: str, default: Any = None) -> Any:
        return self.data.get(key, default)

    async def set(self, key: str, value: Any) -> None:
        self.data[key] = value

    def lock(self) -> Any:
        return self._lock.current()


class ApprovalStore:
    """List, create and resolve approval requests kept in a state.

    Args:
        state: A GraphState (async ``get``/``set`` and ``lock()``), or anything with the
            same methods. Use :meth:`from_backend` / :meth:`open` for a backend alone. The
            requests of a GraphState are read from and written to its backend directly
            (not through the graph's cache or step buffer; under a lock on the state file
            when it is one), so a store over the backend alone and the graph's own store
            always agree, whatever the backend.
    """

    def __init__(self, state: Any) -> None:
        backend = getattr(state, "backend", None)
        if backend is not None and not isinstance(state, _BackendState):
            # Requests are shared with whoever else opens the backend (the CLI, a store made
            # with from_backend, another process resuming the run). A graph state caches
            # what it loaded and, when durable, buffers writes until its step commits: read
            # and write requests on the backend at once, so an approval is marked used
            # before the call runs and a resolution made elsewhere is seen and never
            # overwritten by a step's commit.
            state = _BackendState(backend, cache=state)
        self.state = state

    @classmethod
    def from_backend(cls, backend: Any) -> ApprovalStore:
        """Make a store over a state backend without a Graph (uses ``load_keys`` and
        ``save_state_keys``).

        Raises:
            ApprovalError: The backend lacks those methods.
        """
        return cls(_BackendState(backend))

    @classmethod
    def open(cls, path: str) -> ApprovalStore:
        """Make a store over the SQLite state file at ``path`` (as the CLI does), or over
        a PostgreSQL database when ``path`` is a ``postgresql://`` DSN.

        Raises:
            ApprovalError: The file does not exist.
            StateBackendError: The database cannot be reached (password hidden).
        """
        from spark_core.pgconnect import is_dsn

        if is_dsn(path):
            from spark_core.graphs.postgres import PostgresStateBackend

            return cls.from_backend(PostgresStateBackend(path))
        if not os.path.exists(path):
            raise ApprovalError(f"state file not found: {path}")
        return cls.from_backend(SQLiteStateBackend(path))

    @contextlib.asynccontextmanager
    async def _locked(self) -> AsyncIterator[None]:
        lock = self.state.lock()
        async with lock:
            yield

    async def _load(self) -> Dict[str, Dict[str, Any]]:
        raw = await self.state.get(APPROVALS_KEY, None)
        if raw and not isinstance(raw, Mapping):
            raise ApprovalError(
                f"state key {APPROVALS_KEY!r} is corrupt: not a mapping"
            )
        return {str(k): dict(v) for k, v in (raw or {}).items()}

    async def list(
        self, status: Optional[str] = None, *, run_id: Optional[str] = None
    ) -> List[ApprovalRequest]:
        """Return requests, oldest first, optionally only those with ``status`` / ``run_id``.

        Raises:
            ApprovalError: ``status`` is not pending, approved or rejected.
        """
        if status is not None and status not in _STATUSES:
            raise ApprovalError(
                f"unknown approval status {status!r}: expected {_STATUSES}"
            )
        items = [ApprovalRequest.from_dict(v) for v in (await self._load()).values()]
        return [
            r
            for r in items
            if (status is None or r.status == status)
            and (run_id is None or r.run_id == run_id)
        ]

    async def get(self, request_id: str) -> ApprovalRequest:
        """Return one request.

        Raises:
            ApprovalNotFoundError: No request has this id.
        """
        data = (await self._load()).get(request_id)
        if data is None:
            raise ApprovalNotFoundError(f"no approval request with id {request_id!r}")
        return ApprovalRequest.from_dict(data)

    async def resolve(
        self,
        request_id: str,
        status: str,
        *,
        reviewer: Optional[str] = None,
        notes: Optional[str] = None,
    ) -> ApprovalRequest:
        """Approve or reject a pending request (once).

        Args:
            request_id: The request id.
            status: ``"approved"`` or ``"rejected"``.
            reviewer: Who decided.
            notes: Why.

        Returns:
            The resolved request.

        Raises:
            ApprovalError: ``status`` is not approved/rejected.
            ApprovalNotFoundError: No request has this id.
            ApprovalAlreadyResolvedError: The request was already resolved.
        """
        if status not in (APPROVED, REJECTED):
            raise ApprovalError(
                f"approval status must be {APPROVED!r} or {REJECTED!r}, got {status!r}"
            )
        async with self._locked():
            requests = await self._load()
            data = requests.get(request_id)
            if data is None:
                raise ApprovalNotFoundError(
                    f"no approval request with id {request_id!r}"
                )
            if data.get("status") != PENDING:
                raise ApprovalAlreadyResolvedError(
                    f"approval request {request_id!r} is already {data.get('status')}"
                )
            data.update(
                status=status, reviewer=reviewer, notes=notes, resolved_at=_now()
            )
            requests[request_id] = data
            await self.state.set(APPROVALS_KEY, requests)
        return ApprovalRequest.from_dict(data)

    async def create(self, request: ApprovalRequest) -> ApprovalRequest:
        """Persist a new pending request (used by the executor and node policies)."""
        async with self._locked():
            requests = await self._load()
            requests[request.id] = request.to_dict()
            await self.state.set(APPROVALS_KEY, requests)
        return request

    async def latest(self, fingerprint_: str) -> Optional[ApprovalRequest]:
        """Return the newest request for a call fingerprint (used or not), if any."""
        for data in reversed(list((await self._load()).values())):
            if data.get("fingerprint") == fingerprint_:
                return ApprovalRequest.from_dict(data)
        return None

    async def consume(self, request_id: str) -> bool:
        """Mark a resolved request as used; False if it was already used (then do not act).

        This is the "exactly once" gate: it is checked and set under the state lock.
        """
        async with self._locked():
            requests = await self._load()
            data = requests.get(request_id)
            if data is None or data.get("consumed_at") or data.get("status") == PENDING:
                return False
            data["consumed_at"] = _now()
            requests[request_id] = data
            await self.state.set(APPROVALS_KEY, requests)
        return True

    async def replay(
        self, fingerprint_: str, exclude: Collection[str] = ()
    ) -> Optional[ApprovalRequest]:
        """Return the oldest approved, used request for a call fingerprint whose result was
        recorded and whose node has not completed since, leaving out ``exclude`` ids."""
        for data in (await self._load()).values():
            if (
                data.get("fingerprint") == fingerprint_
                and data.get("status") == APPROVED
                and data.get("result_at")
                and not data.get("settled_at")
                and data.get("id") not in exclude
            ):
                return ApprovalRequest.from_dict(data)
        return None

    async def record_result(self, request_id: str, result: Any) -> bool:
        """Store what an approved call returned; False (nothing stored) when the result is
        not JSON-serialisable (a node that runs again is then asked again)."""
        try:
            json.dumps(result, allow_nan=False)
        except (TypeError, ValueError):
            return False
        return await self._update([request_id], result=result, result_at=_now())

    async def settle(self, request_ids: Collection[str]) -> None:
        """Mark requests whose node completed: their results are not given back again."""
        await self._update(request_ids, settled_at=_now())

    async def _update(self, request_ids: Collection[str], **values: Any) -> bool:
        async with self._locked():
            requests = await self._load()
            found = [requests[i] for i in request_ids if i in requests]
            for data in found:
                data.update(values)
            if found:
                await self.state.set(APPROVALS_KEY, requests)
        return bool(found)

    def list_sync(
        self, status: Optional[str] = None, *, run_id: Optional[str] = None
    ) -> List[ApprovalRequest]:
        """Blocking :meth:`list`, for scripts and CLIs (not inside a running event loop)."""
        return asyncio.run(self.list(status, run_id=run_id))

    def resolve_sync(
        self,
        request_id: str,
        status: str,
        *,
        reviewer: Optional[str] = None,
        notes: Optional[str] = None,
    ) -> ApprovalRequest:
        """Blocking :meth:`resolve`, for scripts and CLIs (not inside a running event loop)."""
        return asyncio.run(
            self.resolve(request_id, status, reviewer=reviewer, notes=notes)
        )


def new_request_id() -> str:
    """Return a fresh request id."""
    return "apr-" + uuid.uuid4().hex[:16]


plugins.register("approvals", ApprovalStore)
