"""LocalSpine: the AISpine methods, answered by spark_core graphs running in this process.

``LocalSpine`` keeps a registry of flows (spark_core graphs, graph factories or GraphSpec dicts)
and runs each execution on a background event loop that it owns, so it works the same in a
script, a test or a notebook cell. Every method has the name, arguments, JSON shapes and
exceptions of :class:`ai_spine.AISpine`; moving a script between local and remote is one line::

    spine = LocalSpine({"echo": make_echo_graph})        # or: AISpine(base_url=...)
    started = spine.execute_flow("echo", {"text": "hi"})
    done = spine.wait_for_execution(started["execution_id"])

Executions live in memory, the newest ``max_executions`` finished ones at most (pending and
running ones always); with ``db="file.sqlite"`` every execution is also journaled to SQLite, read
back from there once it has left memory, and listed again after a restart. Executions that were
still running when the process died are resumed when their flow (passed to the constructor)
keeps runs in a durable state backend (``SQLiteStateBackend``: committed nodes are not run
again, and the run gets what is left of its ``timeout``), and marked ``failed`` otherwise.
``close()`` leaves such durable runs unfinished in the file too, so the next start resumes them.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import sqlite3
import threading
import time
import uuid
from collections import Counter, deque
from datetime import datetime, timezone
from typing import (
    TYPE_CHECKING,
    Any,
    Callable,
    Deque,
    Dict,
    Iterable,
    List,
    Mapping,
    Optional,
    Tuple,
    TypeVar,
    Union,
    cast,
)

from ai_spine.constants import (
    DEFAULT_BATCH_CONCURRENCY,
    DEFAULT_LIST_LIMIT,
    DEFAULT_POLL_INTERVAL,
    DEFAULT_WAIT_TIMEOUT,
    EXECUTION_STATUSES,
    TERMINAL_STATUSES,
    ZERO_UUID,
)
from ai_spine.exceptions import (
    AISpineError,
    ExecutionError,
    FlowNotFoundError,
    NotFoundError,
    ServerError,
    TimeoutError,
    ValidationError,
)
from ai_spine.models import (
    AgentDict,
    BatchInput,
    BatchResult,
    ExecutionDict,
    ExecutionResponse,
    FlowDict,
)
from ai_spine.utils import (
    parse_batch_item,
    validate_batch_args,
    validate_id,
    validate_json_object,
    validate_positive_number,
)

# spark_core is imported when first used; this import is for type checkers only.
if TYPE_CHECKING:  # pragma: no cover
    from spark_core.graphs import Graph
    from spark_core.kit.loader import SpecLoader

__all__ = ["LocalSpine", "FlowSource"]

#: What ``register_flow`` accepts: a Graph, a zero-argument callable returning a fresh Graph,
#: or a spark_core GraphSpec dict.
FlowSource = Union["Graph", Callable[[], "Graph"], Mapping[str, Any]]

FINAL_STATUSES = TERMINAL_STATUSES
#: Finished executions a LocalSpine keeps in memory by default (see ``max_executions``).
DEFAULT_MAX_EXECUTIONS = 10_000
_STATUSES = frozenset(EXECUTION_STATUSES)
_T = TypeVar("_T")
_AGENT_TYPES = ("input", "processor", "output", "conditional")
_CLOSED_MESSAGE = "stopped: LocalSpine was closed before the execution finished"
_KEPT_MESSAGE = (
    "stopped: LocalSpine was closed before the execution finished; its durable state "
    "backend keeps the run, which resumes when a LocalSpine opens this db again"
)


INTERRUPTED_MESSAGE = (
    "interrupted: the process running this execution stopped before it finished "
    "(marked failed when the execution store was reopened)"
)


_wall = time.time  # the clock of execution timeouts (tests move it)


def _utcnow_iso() -> str:
    """Return the current UTC time as a naive ISO 8601 string, as the backend writes it."""
    # Cutting "+00:00" is cheaper than replace(tzinfo=None) (three calls per execution).
    return datetime.now(timezone.utc).isoformat()[:-6]


class _Done:
    """A one-shot event, cheaper than ``threading.Event`` (one lock, no Condition).

    The lock is held until :meth:`set` releases it; each waiter takes it and hands it on.
    ``set`` runs under the owning LocalSpine's ``_changed`` lock, so it releases only once.
    """

    __slots__ = ("_lock", "_set")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._lock.acquire()
        self._set = False

    def set(self) -> None:
        """Mark it done and wake every waiter."""
        if not self._set:
            self._set = True
            self._lock.release()

    def is_set(self) -> bool:
        """Whether it is done."""
        return self._set

    def wait(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for it to be done; True when it is."""
        if not self._set and self._lock.acquire(timeout=timeout):
            self._lock.release()
        return self._set


class _Record:
    """One execution's mutable state; guarded by the owning LocalSpine's lock.

    ``done`` is set exactly once, when the status becomes final, so waiters wake without
    polling.
    """

    __slots__ = (
        "execution_id",
        "flow_id",
        "status",
        "input_data",
        "output_data",
        "error_message",
        "metadata",
        "created_at",
        "updated_at",
        "completed_at",
        "execution_time",
        "started",
        "done",
        "task",
        "node_results",
        "idempotency_key",
        "timeout",
        "timeout_at",
        "durable",
        "kept",
    )

    def __init__(
        self,
        execution_id: str,
        flow_id: str,
        input_data: Dict[str, Any],
        metadata: Optional[Dict[str, Any]],
        created_at: str,
    ) -> None:
        self.execution_id = execution_id
        self.flow_id = flow_id
        self.status = "pending"
        self.input_data = input_data
        self.output_data: Dict[str, Any] = {}
        self.error_message: Optional[str] = None
        self.metadata: Dict[str, Any] = metadata or {}
        self.created_at = created_at
        self.updated_at = created_at
        self.completed_at: Optional[str] = None
        self.execution_time: Optional[float] = None
        self.started = 0.0
        self.done = _Done()
        self.task: Any = None
        self.node_results: Dict[str, Any] = {}
        self.idempotency_key: Optional[str] = None  # forgotten with the record
        self.timeout: Optional[float] = None  # seconds the run may take
        # When it runs out (time.time()), fixed when the run first starts: a resumed run
        # gets what is left, and time the process was down counts.
        self.timeout_at: Optional[float] = None
        self.durable = False  # its flow keeps runs in a durable state backend
        self.kept = False  # left unfinished by close() for the next start to resume

    def context(self) -> Dict[str, Any]:
        """Return the backend's ``ExecutionContextResponse`` shape (a fresh dict)."""
        return {
            "execution_id": self.execution_id,
            "flow_id": self.flow_id,
            "status": self.status,
            "input_data": self.input_data,
            "output_data": self.output_data,
            "error_message": self.error_message,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
            "completed_at": self.completed_at,
        }

    def response(self) -> Dict[str, Any]:
        """Return the backend's ``ExecutionResponse`` shape (a fresh dict)."""
        return {
            "execution_id": self.execution_id,
            "status": self.status,
            "result": self.output_data if self.status == "completed" else None,
            "error": self.error_message,
            "execution_time": self.execution_time,
        }

    def row(self) -> Tuple[Any, ...]:
        """Return the SQLite row for this record."""
        return (
            self.execution_id,
            self.flow_id,
            self.status,
            json.dumps(self.input_data),
            json.dumps(self.output_data),
            self.error_message,
            json.dumps(self.metadata),
            self.created_at,
            self.updated_at,
            self.completed_at,
            self.execution_time,
            json.dumps(self.node_results),
            self.timeout,
            self.timeout_at,
        )

    @classmethod
    def from_row(cls, row: Tuple[Any, ...]) -> "_Record":
        """Rebuild a record from a SQLite row written by :meth:`row`."""
        rec = cls(row[0], row[1], json.loads(row[3]), json.loads(row[6]), row[7])
        rec.status = row[2]
        rec.output_data = json.loads(row[4])
        rec.error_message = row[5]
        rec.updated_at = row[8]
        rec.completed_at = row[9]
        rec.execution_time = row[10]
        rec.node_results = json.loads(row[11] or "{}")
        rec.timeout, rec.timeout_at = row[12], row[13]
        if rec.status in FINAL_STATUSES:
            rec.done.set()
        return rec


_SCHEMA = """
CREATE TABLE IF NOT EXISTS executions (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    execution_id TEXT UNIQUE NOT NULL,
    flow_id TEXT NOT NULL,
    status TEXT NOT NULL,
    input_data TEXT NOT NULL,
    output_data TEXT NOT NULL,
    error_message TEXT,
    metadata TEXT NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    completed_at TEXT,
    execution_time REAL,
    node_results TEXT,
    timeout REAL,
    timeout_at REAL
);
CREATE TABLE IF NOT EXISTS idempotency_keys (
    key TEXT PRIMARY KEY,
    execution_id TEXT NOT NULL,
    fingerprint TEXT NOT NULL
);
"""

_SELECT = (
    "SELECT execution_id, flow_id, status, input_data, output_data, error_message,"
    " metadata, created_at, updated_at, completed_at, execution_time, node_results,"
    " timeout, timeout_at FROM executions"
)

_UPSERT = """
INSERT INTO executions (execution_id, flow_id, status, input_data, output_data, error_message,
    metadata, created_at, updated_at, completed_at, execution_time, node_results, timeout,
    timeout_at)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT(execution_id) DO UPDATE SET status = excluded.status,
    output_data = excluded.output_data, error_message = excluded.error_message,
    updated_at = excluded.updated_at, completed_at = excluded.completed_at,
    execution_time = excluded.execution_time, node_results = excluded.node_results,
    timeout_at = excluded.timeout_at
"""


class _Journal:
    """A SQLite file holding execution rows and idempotency keys.

    Args:
        path: The database file (created if missing).
    """

    def __init__(self, path: str) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._conn = sqlite3.connect(
            path, check_same_thread=False, isolation_level=None
        )
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=NORMAL")
        self._conn.executescript(_SCHEMA)
        columns = {r[1] for r in self._conn.execute("PRAGMA table_info(executions)")}
        for column in (
            "timeout",
            "timeout_at",
        ):  # a store written before they were kept
            if column not in columns:
                self._conn.execute(f"ALTER TABLE executions ADD COLUMN {column} REAL")

    def load(self, keep: Optional[int]) -> Tuple[List[_Record], "Counter[str]", Any]:
        """Read what a LocalSpine keeps in memory, and totals over every row.

        Args:
            keep: How many finished executions to read (the newest); None for all. Pending
                and running ones are always read.

        Returns:
            The records (oldest first), the status counts of the rows not read, and the
            ``(count, sum, max)`` of every row's execution time.
        """
        where = ""
        params: Tuple[Any, ...] = ()
        if keep is not None:
            where = (
                " WHERE status NOT IN ('completed', 'failed', 'cancelled') OR seq IN"
                " (SELECT seq FROM executions"
                "  WHERE status IN ('completed', 'failed', 'cancelled')"
                "  ORDER BY seq DESC LIMIT ?)"
            )
            params = (keep,)
        with self._lock:
            rows = self._conn.execute(
                _SELECT + where + " ORDER BY seq", params
            ).fetchall()
            totals = self._conn.execute(
                "SELECT status, COUNT(*) FROM executions GROUP BY status"
            ).fetchall()
            times = self._conn.execute(
                "SELECT COUNT(execution_time), COALESCE(SUM(execution_time), 0),"
                " COALESCE(MAX(execution_time), 0) FROM executions"
            ).fetchone()
        records = [_Record.from_row(tuple(r)) for r in rows]
        not_read: "Counter[str]" = Counter(dict(totals))
        not_read.subtract(rec.status for rec in records)
        return records, +not_read, times

    def get(self, execution_id: str) -> Optional[_Record]:
        """Read one execution, or None."""
        with self._lock:
            row = self._conn.execute(
                _SELECT + " WHERE execution_id = ?", (execution_id,)
            ).fetchone()
        return _Record.from_row(tuple(row)) if row is not None else None

    def page(
        self, limit: int, offset: int, status: Optional[str]
    ) -> Tuple[List[_Record], int]:
        """Read executions newest first, and how many match ``status`` in all."""
        where, params = ("", ()) if status is None else (" WHERE status = ?", (status,))
        with self._lock:
            rows = self._conn.execute(
                _SELECT + where + " ORDER BY seq DESC LIMIT ? OFFSET ?",
                params + (limit, offset),
            ).fetchall()
            (total,) = self._conn.execute(
                "SELECT COUNT(*) FROM executions" + where, params
            ).fetchone()
        return [_Record.from_row(tuple(r)) for r in rows], int(total)

    def find_key(self, key: str) -> Optional[Tuple[str, str]]:
        """Return (execution id, request fingerprint) for an idempotency key, or None."""
        with self._lock:
            row = self._conn.execute(
                "SELECT execution_id, fingerprint FROM idempotency_keys WHERE key = ?",
                (key,),
            ).fetchone()
        return (str(row[0]), str(row[1])) if row is not None else None

    def save(self, rec: _Record) -> None:
        """Insert or update one execution row (one transaction).

        The row is read from the record under the store's lock, so when two threads save the
        same record the later save writes the later state (never an older snapshot).
        """
        with self._lock:
            self._conn.execute(_UPSERT, rec.row())

    def save_key(self, key: str, execution_id: str, fingerprint: str) -> None:
        """Remember an idempotency key."""
        with self._lock:
            self._conn.execute(
                "INSERT OR IGNORE INTO idempotency_keys VALUES (?, ?, ?)",
                (key, execution_id, fingerprint),
            )

    def close(self) -> None:
        """Close the connection."""
        with self._lock:
            self._conn.close()


def _detail(loc: Iterable[Union[str, int]], msg: str, kind: str) -> Dict[str, Any]:
    return {"loc": list(loc), "msg": msg, "type": kind}


def _invalid(errors: List[Dict[str, Any]]) -> ValidationError:
    text = "; ".join(
        f"{'.'.join(str(p) for p in e['loc'][1:]) or 'body'}: {e['msg']}"
        for e in errors
    )
    return ValidationError(text, status_code=422, body={"detail": errors})


def _check_uuid(value: Any, name: str) -> str:
    """Return ``value`` as a canonical UUID string, or raise the backend's 422."""
    if isinstance(value, str):
        try:
            return str(uuid.UUID(value))
        except ValueError:
            pass
    raise _invalid(
        [
            _detail(
                ("path", name),
                f"Input should be a valid UUID, got {str(value)[:80]!r}",
                "uuid_parsing",
            )
        ]
    )


def _id_problem(value: Any, name: str, loc: str) -> Optional[Dict[str, Any]]:
    """The 422 entry for an id ``validate_id`` refuses (AISpine's rule, so both agree)."""
    try:
        validate_id(value, name)
    except ValidationError as exc:
        return _detail((loc, name), exc.message, "value_error")
    return None


def _json_copy(value: Any, name: str) -> Dict[str, Any]:
    """Check a JSON object argument and deep-copy it, so callers and runs share nothing.

    One encoding does both (on the hot path of every execute); anything it refuses gets
    ``validate_json_object``'s error, the same as AISpine raises.
    """
    if isinstance(value, dict) and all(isinstance(key, str) for key in value):
        try:
            copied: Dict[str, Any] = json.loads(json.dumps(value, allow_nan=False))
            return copied
        except (TypeError, ValueError):
            pass
    validate_json_object(value, name)  # raises the precise error
    raise ValidationError(
        f"{name} is not a JSON object"
    )  # pragma: no cover - unreachable


def validate_execute_request(body: Any) -> List[Dict[str, Any]]:
    """Check an ``ExecutionRequest`` body the way the backend does.

    Args:
        body: The decoded JSON body of ``POST /api/v1/flows/execute``.

    Returns:
        FastAPI-shaped error entries (``loc``, ``msg``, ``type``); empty when the body is valid.
    """
    if not isinstance(body, dict):
        return [_detail(("body",), "Input should be a valid dictionary", "dict_type")]
    errors: List[Dict[str, Any]] = []
    if "flow_id" not in body:
        errors.append(_detail(("body", "flow_id"), "Field required", "missing"))
    else:
        problem = _id_problem(body["flow_id"], "flow_id", "body")
        if problem is not None:
            errors.append(problem)
    if "input_data" not in body:
        errors.append(_detail(("body", "input_data"), "Field required", "missing"))
    elif not isinstance(body["input_data"], dict):
        errors.append(
            _detail(
                ("body", "input_data"),
                "Input should be a valid dictionary",
                "dict_type",
            )
        )
    metadata = body.get("metadata")
    if metadata is not None and not isinstance(metadata, dict):
        errors.append(
            _detail(
                ("body", "metadata"), "Input should be a valid dictionary", "dict_type"
            )
        )
    for name, low, high in (("priority", 0, 10), ("timeout", 1, None)):
        value = body.get(name)
        if value is None:
            continue
        if isinstance(value, float) and value.is_integer():
            value = int(value)  # JSON Schema's integer: 5.0 is one, 5.5 is not
        if not isinstance(value, int) or isinstance(value, bool):
            errors.append(
                _detail(("body", name), "Input should be a valid integer", "int_type")
            )
        elif value < low or (high is not None and value > high):
            errors.append(
                _detail(
                    ("body", name),
                    (
                        f"{name} must be an integer from {low} to {high}"
                        if high is not None
                        else f"{name} must be an integer >= {low}"
                    ),
                    "greater_than_equal" if value < low else "less_than_equal",
                )
            )
    return errors


def validate_page_request(limit: Any, offset: Any) -> List[Dict[str, Any]]:
    """Check a page's ``limit`` (1-1000) and ``offset`` (0 or more), as the server does too.

    Returns:
        FastAPI-style error entries (``loc``, ``msg``, ``type``); empty when both are fine.
    """
    errors = []
    if not isinstance(limit, int) or isinstance(limit, bool) or not 1 <= limit <= 1000:
        errors.append(
            _detail(
                ("query", "limit"),
                "limit must be an integer from 1 to 1000",
                "int_type",
            )
        )
    if not isinstance(offset, int) or isinstance(offset, bool) or offset < 0:
        errors.append(
            _detail(
                ("query", "offset"), "offset must be a non-negative integer", "int_type"
            )
        )
    return errors


class _Flow:
    """A registered flow: how to get a graph for one execution, and its FlowDefinition."""

    def __init__(
        self,
        flow_id: str,
        source: Any,
        name: Optional[str],
        description: Optional[str],
        specs: SpecLoader,
    ) -> None:
        self.flow_id = flow_id
        self.name = name or flow_id
        self.description = description or ""
        self.created_at = self.updated_at = _utcnow_iso()
        self.graph: Any = None
        self.factory: Optional[Callable[[], Any]] = None
        self.lock: Optional[asyncio.Lock] = None  # serialises runs of one shared Graph
        self.spec: Optional[Dict[str, Any]] = None
        if isinstance(source, Mapping):
            self.kind = "spec"
            try:
                self.spec = dict(
                    validate_json_object(dict(source), "spec", allow_empty=False)
                )
                self.factory = _spec_factory(self.spec, specs)
                sample = self.factory()
            except ValidationError as exc:  # the spec's error does not say which flow
                raise ValidationError(
                    f"flow {flow_id!r}: {exc.message}",
                    status_code=exc.status_code,
                    body=exc.body,
                ) from None
            if description is None and isinstance(self.spec.get("description"), str):
                self.description = self.spec["description"]
        elif _is_graph(source):
            self.kind = "graph"
            self.graph = sample = source
        elif callable(source):
            self.kind = "factory"
            self.factory = source
            try:
                sample = source()
            except Exception as exc:
                raise ValidationError(
                    f"flow {flow_id!r}: the factory failed: {type(exc).__name__}: {exc}"
                ) from exc
            if not _is_graph(sample):
                raise ValidationError(
                    f"flow {flow_id!r}: the factory returned {type(sample).__name__}, "
                    "not a spark_core Graph"
                )
        else:
            raise ValidationError(
                f"flow {flow_id!r}: expected a spark_core Graph, a zero-argument factory "
                f"returning one, or a GraphSpec dict; got {type(source).__name__}"
            )
        self.nodes = _describe_nodes(sample)
        self.durable = _is_durable(sample)
        self.entry_point = (
            str(getattr(getattr(sample, "start", None), "id", "")) or None
        )

    def new_graph(self) -> Any:
        """Return the graph one execution runs: a fresh one unless a Graph was registered."""
        if self.factory is not None:
            return self.factory()
        return self.graph

    def definition(self) -> Dict[str, Any]:
        """Return the backend's FlowDefinition shape."""
        exits = [n["id"] for n in self.nodes if n["id"] not in self._sources()]
        return {
            "flow_id": self.flow_id,
            "name": self.name,
            "description": self.description,
            "version": "1.0.0",
            "nodes": [dict(n, depends_on=list(n["depends_on"])) for n in self.nodes],
            "entry_point": self.entry_point,
            "exit_points": exits,
            "metadata": {"source": self.kind, "local": True},
            "created_at": self.created_at,
            "updated_at": self.updated_at,
        }

    def _sources(self) -> set[str]:
        return {d for n in self.nodes for d in n["depends_on"]}


def _is_durable(graph: Any) -> bool:
    """Whether ``graph`` keeps its runs in a durable state backend (they can resume)."""
    backend = getattr(getattr(graph, "state", None), "backend", None)
    return bool(getattr(backend, "durable", False))


def _is_graph(obj: Any) -> bool:
    return (
        hasattr(obj, "nodes")
        and hasattr(obj, "edges")
        and inspect.iscoroutinefunction(getattr(obj, "run", None))
    )


def _spec_factory(spec: Dict[str, Any], specs: SpecLoader) -> Callable[[], Any]:
    """Return a factory building a Graph from a GraphSpec dict with the spine's SpecLoader."""

    def build() -> Any:
        try:
            return specs.load_graph(spec)
        except AISpineError:
            raise
        except Exception as exc:  # the spec layer raises its own typed errors
            raise _invalid(
                [_detail(("body", "spec"), str(exc), "value_error")]
            ) from None

    return build


def _describe_nodes(graph: Any) -> List[Dict[str, Any]]:
    """Derive the backend's node list (id, type, depends_on) from a spark_core graph."""
    nodes: Dict[str, Any] = dict(getattr(graph, "nodes", {}) or {})
    edges = list(getattr(graph, "edges", []) or [])
    start = getattr(getattr(graph, "start", None), "id", None)
    depends: Dict[str, List[str]] = {nid: [] for nid in nodes}
    outgoing: Dict[str, List[Any]] = {nid: [] for nid in nodes}
    for edge in edges:
        if edge.target in depends and edge.source not in depends[edge.target]:
            depends[edge.target].append(edge.source)
        outgoing.setdefault(edge.source, []).append(edge)
    described = []
    for nid, node in nodes.items():
        out = outgoing.get(nid, [])
        if any(getattr(e, "kind", "always") != "always" for e in out):
            kind = "conditional"
        elif nid == start and len(nodes) > 1:
            kind = "input"
        elif not out and len(nodes) > 1:
            kind = "output"
        else:
            kind = "processor"
        described.append(
            {
                "id": nid,
                "type": kind,
                "agent_id": getattr(node, "agent_id", None),
                "depends_on": depends[nid],
                "config": {"class": type(node).__name__},
            }
        )
    return described


class _Agent:
    def __init__(
        self, info: Dict[str, Any], handler: Optional[Callable[..., Any]]
    ) -> None:
        self.info = info
        self.handler = handler


class LocalSpine:
    """Run flows in this process behind the :class:`ai_spine.AISpine` method names.

    Args:
        flows: Initial flows, ``{flow_id: graph_or_factory_or_spec}``.
        db: A SQLite file to journal executions to (listed again after a restart; runs that
            were interrupted are resumed if their graph is durable, else marked failed), or
            None to keep them in memory only.
        max_concurrency: How many executions run at once; the rest wait as ``pending``.
        max_executions: How many finished executions stay in memory (the most recently
            finished; pending and running ones always stay), so a long-lived server does not
            grow without bound. With ``db`` the older ones are read back from the file (get,
            wait, list and idempotency keys keep working); without it they are forgotten
            (``NotFoundError``). Metrics count every execution either way. None: no bound.
        allow_modules: Module prefixes GraphSpec flows may import node classes and tools
            from (``"myapp"`` allows ``myapp`` and ``myapp.*``), on top of ``spark_core``'s
            node types. Empty by default: a spec (also one sent over HTTP) imports no code.

    Example:
        >>> spine = LocalSpine({"echo": make_echo_graph})
        >>> run = spine.execute_flow("echo", {"text": "hi"})
        >>> spine.wait_for_execution(run["execution_id"])["output_data"]
        {'text': 'hi'}
    """

    def __init__(
        self,
        flows: Optional[Mapping[str, FlowSource]] = None,
        *,
        db: Optional[str] = None,
        max_concurrency: int = 64,
        max_executions: Optional[int] = DEFAULT_MAX_EXECUTIONS,
        allow_modules: Iterable[str] = (),
    ) -> None:
        from spark_core.kit.loader import SpecLoader
        from spark_core.spec.errors import SpecError

        try:  # one loader for every spec flow; it checks the prefixes
            self._specs = SpecLoader(allowed_tool_modules=allow_modules)
        except SpecError as exc:
            raise ValidationError(f"allow_modules: {exc}") from None
        # Node classes may come from spark_core and allow_modules; tools only from
        # allow_modules (none by default, so a spec cannot make the server import code).
        self.allow_modules: Tuple[str, ...] = self._specs.allowed_tool_modules
        self._specs.allowed_modules += self.allow_modules
        for name, value in (
            ("max_concurrency", max_concurrency),
            ("max_executions", max_executions),
        ):
            if value is None and name == "max_executions":
                continue
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValidationError(
                    f"{name} must be a positive integer, got {value!r}"
                )
        self.max_concurrency = max_concurrency
        self.max_executions = max_executions
        self._lock = threading.Lock()
        # Notified whenever an execution becomes final (execute_batch waits on it).
        self._changed = threading.Condition(threading.Lock())
        self._flows: Dict[str, _Flow] = {}
        self._agents: Dict[str, _Agent] = {}
        self._executions: Dict[str, _Record] = {}
        self._idempotency: Dict[str, Tuple[str, str]] = {}
        # Finished executions in memory, in the order they finished (evicted from the left),
        # and the status counts of those evicted (or never loaded), for the metrics.
        self._finished_ids: Deque[str] = deque()
        self._evicted: "Counter[str]" = Counter()
        self._loop: Optional[asyncio.AbstractEventLoop] = None
        self._thread: Optional[threading.Thread] = None
        self._sem: Optional[asyncio.Semaphore] = None
        self._closed = False
        self._started_at = time.time()
        self._finished = 0
        self._total_time = 0.0
        self._max_time = 0.0
        self._journal: Optional[_Journal] = None
        if db is not None:
            try:
                self._journal = _Journal(str(db))
                records, self._evicted, times = self._journal.load(max_executions)
            except sqlite3.Error as exc:
                if self._journal is not None:
                    self._journal.close()
                raise AISpineError(
                    f"cannot open execution store {str(db)!r}: {exc}"
                ) from None
            self._finished = int(times[0])
            self._total_time, self._max_time = float(times[1]), float(times[2])
            for rec in records:
                self._executions[rec.execution_id] = rec
                if rec.status in FINAL_STATUSES and max_executions is not None:
                    self._finished_ids.append(rec.execution_id)
        try:
            for flow_id, source in (flows or {}).items():
                self.register_flow(flow_id, source)
        except BaseException:
            if self._journal is not None:  # nobody else can close it
                self._journal.close()
            raise
        # Rows still pending/running belonged to a process that died: resume those whose
        # graph keeps its runs in a durable backend, report the others as failed.
        for rec in list(self._executions.values()):
            if rec.status not in FINAL_STATUSES and not self._resume(rec):
                self._finish(rec, "failed", {}, INTERRUPTED_MESSAGE)

    # ----------------------------------------------------------------- registry
    def register_flow(
        self,
        flow_id: str,
        flow: FlowSource,
        *,
        name: Optional[str] = None,
        description: Optional[str] = None,
        replace: bool = False,
    ) -> Dict[str, Any]:
        """Register a flow under ``flow_id``.

        Args:
            flow_id: The id callers pass to :meth:`execute_flow`.
            flow: A spark_core ``Graph`` (its executions run one at a time, each a fresh run
                with the execution id as run id), a zero-argument factory returning a fresh
                ``Graph`` per execution (runs concurrently; called once now to describe the
                flow's nodes), or a GraphSpec dict (node types from ``spark_core`` only).
            name: Human readable name (defaults to ``flow_id``).
            description: What the flow does.
            replace: Replace an existing flow with the same id instead of raising.

        Returns:
            The flow's FlowDefinition dict.

        Raises:
            ValidationError: Bad id, an unusable flow, or the id is taken and not ``replace``.
        """
        problem = _id_problem(flow_id, "flow_id", "body")
        if problem is not None:
            raise _invalid([problem])
        entry = _Flow(flow_id, flow, name, description, self._specs)
        with self._lock:
            if flow_id in self._flows and not replace:
                raise ValidationError(
                    f"Flow '{flow_id}' already exists",
                    status_code=409,
                    body={"detail": f"Flow '{flow_id}' already exists"},
                )
            self._flows[flow_id] = entry
        return entry.definition()

    def update_flow(
        self,
        flow_id: str,
        spec: Mapping[str, Any],
        *,
        name: Optional[str] = None,
        description: Optional[str] = None,
    ) -> Dict[str, Any]:
        """Replace a flow registered from a GraphSpec dict with a new spec.

        Running executions finish on the old graph; new ones use the new spec. Flows
        registered as Python graphs or factories cannot be replaced this way (use
        ``register_flow(..., replace=True)``), so a client cannot swap out server code.

        Args:
            flow_id: The flow to update.
            spec: The new GraphSpec dict.
            name: Human readable name (defaults to ``flow_id``).
            description: What the flow does (defaults to the spec's).

        Returns:
            The flow's new FlowDefinition (``created_at`` kept, ``updated_at`` now).

        Raises:
            ValidationError: A malformed id, an unusable spec (nothing changes), or a flow
                not registered from a spec (status 409).
            NotFoundError: No such flow.
        """
        validate_id(flow_id, "flow_id")
        if not isinstance(spec, Mapping):
            raise _invalid(
                [
                    _detail(
                        ("body", "spec"), "spec must be a GraphSpec object", "dict_type"
                    )
                ]
            )
        entry = _Flow(flow_id, spec, name, description, self._specs)
        with self._lock:
            old = self._flows.get(flow_id)
            if old is None:
                msg = f"Flow '{flow_id}' not found"
                raise NotFoundError(msg, status_code=404, body={"detail": msg})
            if old.kind != "spec":
                msg = (
                    f"Flow '{flow_id}' is defined in Python on this server ({old.kind}); "
                    "only flows registered from a spec can be updated"
                )
                raise ValidationError(msg, status_code=409, body={"detail": msg})
            entry.created_at = old.created_at
            self._flows[flow_id] = entry
        return entry.definition()

    def unregister_flow(self, flow_id: str) -> bool:
        """Remove a flow; running executions of it finish normally.

        Args:
            flow_id: The flow to remove.

        Returns:
            True when it was removed.

        Raises:
            ValidationError: A malformed id.
            NotFoundError: No such flow.
        """
        validate_id(flow_id, "flow_id")
        with self._lock:
            if self._flows.pop(flow_id, None) is None:
                raise NotFoundError(f"Flow '{flow_id}' not found", status_code=404)
        return True

    # ----------------------------------------------------------------- executions
    def execute_flow(
        self,
        flow_id: str,
        input_data: Dict[str, Any],
        metadata: Optional[Dict[str, Any]] = None,
        *,
        idempotency_key: Optional[str] = None,
        priority: Optional[int] = None,
        timeout: Optional[int] = None,
    ) -> ExecutionResponse:
        """Start an execution and return at once with status ``pending``.

        Args:
            flow_id: The flow to run.
            input_data: The run's input (a JSON object), the start node's ``inputs.content``.
            metadata: Free JSON data stored with the execution.
            idempotency_key: Same key and same request -> the same execution, not a new one.
            priority: 0-10, accepted for compatibility (executions start in arrival order).
            timeout: Seconds after which a still running execution fails, counted from when
                it starts running; a run resumed after a restart gets what is left.

        Returns:
            The backend's ExecutionResponse: ``execution_id``, ``status``, ``result``,
            ``error``, ``execution_time``.

        Raises:
            ValidationError: Bad arguments, or an idempotency key reused for another request.
            FlowNotFoundError: No flow has this id (as AISpine raises for the backend's answer).
            ServerError: The LocalSpine is closed (status 503, as served over HTTP).
        """
        validate_id(flow_id, "flow_id")
        data = _json_copy(input_data, "input_data")
        meta = _json_copy(metadata, "metadata") if metadata is not None else {}
        fingerprint = ""
        if idempotency_key is not None:
            validate_id(idempotency_key, "idempotency_key")
            fingerprint = json.dumps([flow_id, data, meta], sort_keys=True)
        if priority is not None:
            validate_positive_number(
                priority, "priority", allow_zero=True, integer=True
            )
            if priority > 10:
                raise ValidationError(
                    f"priority must be between 0 and 10, got {priority}"
                )
        if timeout is not None:
            validate_positive_number(timeout, "timeout", integer=True)
        flow = self._flows.get(flow_id)
        if flow is None:
            unknown = {
                "execution_id": ZERO_UUID,
                "status": "failed",
                "result": None,
                "error": f"Flow '{flow_id}' not found",
                "execution_time": None,
            }
            raise FlowNotFoundError(
                f"Flow '{flow_id}' not found",
                execution=unknown,
                flow_id=flow_id,
                body=unknown,
            )
        loop = self._loop or self._start_loop()
        now = _utcnow_iso()
        stored = None  # a key only the store remembers (its execution left memory)
        if (
            idempotency_key is not None
            and self._journal is not None
            and idempotency_key not in self._idempotency
        ):
            stored = self._from_store(self._journal.find_key, idempotency_key)
        with self._lock:
            if idempotency_key is not None:
                seen = self._idempotency.get(idempotency_key) or stored
                if seen is not None:
                    if seen[1] != fingerprint:
                        raise _invalid(
                            [
                                _detail(
                                    ("header", "Idempotency-Key"),
                                    "this key was already used with a different request",
                                    "idempotency_conflict",
                                )
                            ]
                        )
                    known = self._executions.get(seen[0]) or self._stored(seen[0])
                    if known is not None:
                        return cast(ExecutionResponse, known.response())
            if self._closed:
                raise _closed_error()
            rec = _Record(str(uuid.uuid4()), flow_id, data, meta, now)
            rec.timeout, rec.durable = timeout, flow.durable
            self._executions[rec.execution_id] = rec
            if idempotency_key is not None:
                self._idempotency[idempotency_key] = (rec.execution_id, fingerprint)
                rec.idempotency_key = idempotency_key
            answer = cast(ExecutionResponse, rec.response())
        if self._journal is not None:
            self._journal.save(rec)
            if idempotency_key is not None:
                self._journal.save_key(idempotency_key, rec.execution_id, fingerprint)
        try:
            loop.call_soon_threadsafe(self._spawn, rec, flow)
        except RuntimeError:  # close() stopped the loop meanwhile
            self._finish(rec, "failed", {}, _CLOSED_MESSAGE)
        return answer

    def get_execution(self, execution_id: str) -> ExecutionDict:
        """Return an execution in the backend's ExecutionContextResponse shape.

        Args:
            execution_id: The id :meth:`execute_flow` returned.

        Raises:
            ValidationError: Not a UUID (the backend's 422).
            NotFoundError: No such execution.
        """
        rec = self._record(execution_id)
        with self._lock:
            return cast(ExecutionDict, rec.context())

    def get_execution_results(self, execution_id: str) -> Dict[str, Any]:
        """Return an execution's detailed results, including per-node outcomes.

        Args:
            execution_id: The execution.

        Raises:
            ValidationError: Not a UUID.
            NotFoundError: No such execution.
        """
        rec = self._record(execution_id)
        with self._lock:
            return {
                "execution_id": rec.execution_id,
                "flow_id": rec.flow_id,
                "status": rec.status,
                "output_data": rec.output_data,
                "error_message": rec.error_message,
                "execution_time": rec.execution_time,
                "node_results": json.loads(json.dumps(rec.node_results)),
            }

    def wait_for_execution(
        self,
        execution_id: str,
        timeout: float = DEFAULT_WAIT_TIMEOUT,
        interval: float = DEFAULT_POLL_INTERVAL,
        *,
        on_progress: Optional[Callable[[ExecutionDict], None]] = None,
    ) -> ExecutionDict:
        """Block until the execution is final; wakes on completion (no polling).

        Args:
            execution_id: The execution to wait for.
            timeout: Seconds to wait at most.
            interval: Accepted for compatibility with AISpine; nothing is polled.
            on_progress: Called with the execution when the wait starts (if it is not final
                yet) and once it is final.

        Returns:
            The execution once its status is ``completed``.

        Raises:
            ValidationError: Not a UUID, or a non-positive timeout/interval.
            NotFoundError: No such execution.
            TimeoutError: Still not final after ``timeout`` seconds.
            ExecutionError: The execution ended ``failed`` or ``cancelled``.
        """
        timeout = validate_positive_number(timeout, "timeout")
        validate_positive_number(interval, "interval")
        rec = self._record(execution_id)
        done = rec.done
        if not done.is_set():
            if on_progress is not None:
                on_progress(self.get_execution(rec.execution_id))
            if not done.wait(min(timeout, threading.TIMEOUT_MAX)):
                raise _wait_timeout(rec.execution_id, timeout, rec.status)
        with self._lock:
            final = rec.context()
        if on_progress is not None:
            on_progress(cast(ExecutionDict, final))
        if final["status"] != "completed":
            raise _execution_error(final)
        return cast(ExecutionDict, final)

    def cancel_execution(self, execution_id: str) -> Dict[str, Any]:
        """Cancel a pending or running execution; its graph task is cancelled.

        Args:
            execution_id: The execution to cancel.

        Returns:
            ``{"execution_id", "status": "cancelled", "message"}``.

        Raises:
            ValidationError: Not a UUID, or the execution already finished (400).
            NotFoundError: No such execution.
        """
        rec = self._record(execution_id)
        with self._lock:
            if rec.status in FINAL_STATUSES:
                raise ValidationError(
                    f"Execution {rec.execution_id} is already {rec.status}",
                    status_code=400,
                    body={
                        "detail": f"Execution {rec.execution_id} is already {rec.status}"
                    },
                )
            now = _utcnow_iso()
            rec.status = "cancelled"
            rec.error_message = "Execution cancelled"
            rec.updated_at = rec.completed_at = now
            if rec.started:
                rec.execution_time = time.perf_counter() - rec.started
                self._count_time(rec.execution_time)  # as a restart counts it
            task = rec.task
        self._save(rec)
        self._retire(rec)
        self._set_done(rec)
        loop = self._loop
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(self._cancel_task, rec)
        del task
        return {
            "execution_id": rec.execution_id,
            "status": "cancelled",
            "message": f"Execution {rec.execution_id} cancelled",
        }

    def list_executions(
        self,
        limit: int = DEFAULT_LIST_LIMIT,
        offset: int = 0,
        *,
        status: Optional[str] = None,
    ) -> List[ExecutionDict]:
        """List executions, newest first.

        Args:
            limit: At most this many (1-1000).
            offset: Skip this many first.
            status: Only executions with this status.

        Raises:
            ValidationError: Bad limit, offset or status.
        """
        return cast(List[ExecutionDict], self._page(limit, offset, status)[0])

    def _page(
        self, limit: Any, offset: Any, status: Any
    ) -> Tuple[List[Dict[str, Any]], int]:
        errors = validate_page_request(limit, offset)
        if status is not None and status not in _STATUSES:
            errors.append(
                _detail(
                    ("query", "status"),
                    f"status must be one of {', '.join(EXECUTION_STATUSES)}",
                    "enum",
                )
            )
        if errors:
            raise _invalid(errors)
        page = None
        if self._journal is not None and self._evicted:
            page = self._from_store(self._journal.page, limit, offset, status)
        if page is not None:
            # Some executions live only in the store: page there, fresher state from memory.
            rows, total = page
            with self._lock:
                return [
                    self._executions.get(r.execution_id, r).context() for r in rows
                ], total
        with self._lock:
            records = list(reversed(self._executions.values()))
            if status is not None:
                records = [r for r in records if r.status == status]
            return [r.context() for r in records[offset : offset + limit]], len(records)

    def execute_batch(
        self,
        items: Iterable[BatchInput],
        concurrency: int = DEFAULT_BATCH_CONCURRENCY,
        on_progress: Optional[Callable[[int, int, BatchResult], None]] = None,
        *,
        wait_timeout: float = DEFAULT_WAIT_TIMEOUT,
        interval: float = DEFAULT_POLL_INTERVAL,
    ) -> List[BatchResult]:
        """Execute many flows and wait for each, at most ``concurrency`` at a time.

        Same contract as :meth:`ai_spine.AISpine.execute_batch`: one item's failure is recorded
        in its result and never stops the others.

        Args:
            items: ``{"flow_id", "input_data", "metadata"?}`` dicts or ``(flow_id, input)``
                pairs.
            concurrency: Items in flight at once (>= 1).
            on_progress: Called in the caller's thread as ``on_progress(done, total, result)``
                after each item finishes.
            wait_timeout: Per-item wait timeout.
            interval: Accepted for compatibility (nothing is polled).

        Returns:
            One :class:`~ai_spine.models.BatchResult` per item, in input order.

        Raises:
            ValidationError: ``items`` is not iterable or a number is out of range.
        """
        todo = validate_batch_args(items, concurrency, wait_timeout, interval)
        results: List[BatchResult] = []
        # In-flight items: record -> (index, wait deadline). Waited on in this thread (no
        # helper threads), so a caller that stops (on_progress raising, Ctrl-C) leaves
        # nothing behind; the executions themselves run on, as on a server.
        in_flight: Dict[_Record, Tuple[int, float]] = {}
        upcoming = iter(enumerate(todo))

        def done(result: BatchResult) -> None:
            results.append(result)
            if on_progress is not None:
                on_progress(len(results), len(todo), result)

        while True:
            for index, item in upcoming:
                started = self._start_batch_item(index, item)
                if isinstance(started, BatchResult):
                    done(started)
                    continue
                in_flight[started] = (index, time.monotonic() + wait_timeout)
                if len(in_flight) >= concurrency:
                    break
            if not in_flight:
                break
            for rec in self._next_finished(in_flight):
                index, _ = in_flight.pop(rec)
                done(self._batch_result(index, rec, wait_timeout))
        results.sort(key=lambda r: r.index)
        return results

    def _next_finished(
        self, waiting: Dict[_Record, Tuple[int, float]]
    ) -> List[_Record]:
        """Block until some of ``waiting`` are final or past their deadline; return those."""
        with self._changed:
            while True:
                now = time.monotonic()
                ready = [
                    r
                    for r, (_, ends) in waiting.items()
                    if r.done.is_set() or ends <= now
                ]
                if ready:
                    return ready
                soonest = min(ends for _, ends in waiting.values())
                self._changed.wait(min(soonest - now, threading.TIMEOUT_MAX))

    def _start_batch_item(self, index: int, item: Any) -> Union[BatchResult, _Record]:
        flow_id: Optional[str] = None
        try:
            flow_id, data, meta = parse_batch_item(item)
            started = self.execute_flow(flow_id, data, meta)
            return self._record(started["execution_id"])
        except ExecutionError as exc:
            return BatchResult(index, flow_id, exc.execution or None, exc)
        except AISpineError as exc:
            return BatchResult(index=index, flow_id=flow_id, error=exc)

    def _batch_result(self, index: int, rec: _Record, timeout: float) -> BatchResult:
        """The result of an item that is final or past its wait deadline.

        Read from the record itself: it may have left memory since it finished.
        """
        with self._lock:
            execution = rec.context()
        error: Optional[AISpineError] = None
        if not rec.done.is_set():
            error = _wait_timeout(rec.execution_id, timeout, execution["status"])
        elif execution["status"] != "completed":
            error = _execution_error(execution)
        return BatchResult(index, rec.flow_id, execution, error)

    # ----------------------------------------------------------------- flows
    def list_flows(self) -> List[FlowDict]:
        """Return every registered flow's FlowDefinition."""
        with self._lock:
            flows = list(self._flows.values())
        return [cast(FlowDict, f.definition()) for f in flows]

    def get_flow(self, flow_id: str) -> FlowDict:
        """Return one flow's FlowDefinition.

        Raises:
            ValidationError: A malformed id (as AISpine refuses it).
            NotFoundError: No such flow.
        """
        validate_id(flow_id, "flow_id")
        flow = self._flows.get(flow_id)
        if flow is None:
            raise NotFoundError(
                f"Flow '{flow_id}' not found",
                status_code=404,
                body={"detail": f"Flow '{flow_id}' not found"},
            )
        return cast(FlowDict, flow.definition())

    # ----------------------------------------------------------------- agents
    def create_agent(self, agent_config: Dict[str, Any]) -> AgentDict:
        """Register an agent: an HTTP ``endpoint`` or, locally, a Python ``handler``.

        Args:
            agent_config: ``agent_id``, ``name``, ``description``, ``endpoint`` (http(s) URL),
                ``capabilities`` (list of str), ``agent_type`` (input|processor|output|
                conditional); locally ``handler`` (a callable taking the input dict) may
                replace ``endpoint``.

        Returns:
            The backend's AgentInfo.

        Raises:
            ValidationError: Missing or bad fields, or the id is taken.
        """
        if not isinstance(agent_config, dict):
            raise _invalid(
                [_detail(("body",), "Input should be a valid dictionary", "dict_type")]
            )
        cfg = dict(agent_config)
        handler = cfg.pop("handler", None)
        errors = []
        problem = _id_problem(cfg.get("agent_id"), "agent_id", "body")
        if problem is not None:
            errors.append(problem)
        if not isinstance(cfg.get("name"), str) or not cfg["name"].strip():
            errors.append(
                _detail(("body", "name"), "name must be a non-empty string", "missing")
            )
        endpoint = cfg.get("endpoint")
        if handler is not None and not callable(handler):
            errors.append(
                _detail(
                    ("body", "handler"), "handler must be callable", "callable_type"
                )
            )
        if handler is None and (
            not isinstance(endpoint, str)
            or not endpoint.startswith(("http://", "https://"))
        ):
            errors.append(
                _detail(
                    ("body", "endpoint"),
                    "endpoint must be an http(s) URL",
                    "url_parsing",
                )
            )
        caps = cfg.get("capabilities", [])
        if not isinstance(caps, list) or not all(isinstance(c, str) for c in caps):
            errors.append(
                _detail(
                    ("body", "capabilities"),
                    "capabilities must be a list of str",
                    "list_type",
                )
            )
        agent_type = cfg.get("agent_type", "processor")
        if agent_type not in _AGENT_TYPES:
            errors.append(
                _detail(
                    ("body", "agent_type"),
                    f"agent_type must be one of {', '.join(_AGENT_TYPES)}",
                    "enum",
                )
            )
        if errors:
            raise _invalid(errors)
        now = _utcnow_iso()
        info = {
            "agent_id": cfg["agent_id"],
            "name": cfg["name"],
            "description": str(cfg.get("description", "")),
            "endpoint": (
                endpoint if isinstance(endpoint, str) else f"local://{cfg['agent_id']}"
            ),
            "capabilities": list(caps),
            "agent_type": agent_type,
            "is_active": bool(cfg.get("is_active", True)),
            "created_at": now,
            "updated_at": now,
        }
        with self._lock:
            if info["agent_id"] in self._agents:
                msg = f"Agent '{info['agent_id']}' already exists"
                raise ValidationError(msg, status_code=400, body={"detail": msg})
            self._agents[info["agent_id"]] = _Agent(info, handler)
        return cast(AgentDict, dict(info))

    def list_agents(self) -> List[AgentDict]:
        """Return every registered agent's AgentInfo."""
        with self._lock:
            return [cast(AgentDict, dict(a.info)) for a in self._agents.values()]

    def get_agent(self, agent_id: str) -> AgentDict:
        """Return one agent's AgentInfo.

        Raises:
            ValidationError: A malformed id (as AISpine refuses it).
            NotFoundError: No such agent.
        """
        return cast(AgentDict, dict(self._agent(agent_id).info))

    def delete_agent(self, agent_id: str) -> bool:
        """Unregister an agent.

        Returns:
            True when it was removed.

        Raises:
            ValidationError: A malformed id (as AISpine refuses it).
            NotFoundError: No such agent.
        """
        validate_id(agent_id, "agent_id")
        with self._lock:
            if self._agents.pop(agent_id, None) is None:
                msg = f"Agent '{agent_id}' not found"
                raise NotFoundError(msg, status_code=404, body={"detail": msg})
        return True

    def invoke_agent(self, agent_id: str, input_data: Dict[str, Any]) -> Dict[str, Any]:
        """Call an agent with a JSON object and return its JSON object answer.

        A ``handler`` agent is called directly; an ``endpoint`` agent gets an HTTP POST with
        the input as JSON body. Blocking: call it from a worker thread inside async code.

        Raises:
            NotFoundError: No such agent.
            ExecutionError: The agent failed or answered something other than a JSON object.
        """
        agent = self._agent(agent_id)
        try:
            if agent.handler is not None:
                out = agent.handler(input_data)
            else:
                out = _post_json(str(agent.info["endpoint"]), input_data)
        except AISpineError:
            raise
        except Exception as exc:
            raise ExecutionError(
                f"agent '{agent_id}' failed: {type(exc).__name__}: {exc}"
            ) from exc
        if out is None:
            return {}
        if not isinstance(out, dict):
            raise ExecutionError(
                f"agent '{agent_id}' returned {type(out).__name__}, expected a JSON object"
            )
        return out

    # ----------------------------------------------------------------- system
    def health_check(self) -> Dict[str, Any]:
        """Return ``{"status": "healthy", ...}`` like the backend's ``GET /health``."""
        from ai_spine.__version__ import __version__

        return {
            "status": "healthy" if not self._closed else "stopping",
            "service": "ai-spine-local",
            "version": __version__,
            "timestamp": _utcnow_iso(),
        }

    def get_metrics(self) -> Dict[str, Any]:
        """Return counts and timings of this LocalSpine's executions."""
        with self._lock:
            counts = {s: self._evicted[s] for s in EXECUTION_STATUSES}
            for rec in self._executions.values():
                counts[rec.status] += 1
            finished, total, longest = self._finished, self._total_time, self._max_time
            flows, agents = len(self._flows), len(self._agents)
        return {
            "total_executions": sum(counts.values()),
            "active_executions": counts["pending"] + counts["running"],
            "executions_by_status": counts,
            "average_execution_time": (total / finished) if finished else 0.0,
            "max_execution_time": longest,
            "total_flows": flows,
            "total_agents": agents,
            "uptime_seconds": time.time() - self._started_at,
            "timestamp": _utcnow_iso(),
        }

    def get_status(self) -> Dict[str, Any]:
        """Return an overall status: health, registry sizes and execution counts."""
        metrics = self.get_metrics()
        return {
            "status": "operational" if not self._closed else "stopping",
            "flows": metrics["total_flows"],
            "agents": metrics["total_agents"],
            "executions": metrics["executions_by_status"],
            "active_executions": metrics["active_executions"],
            "max_concurrency": self.max_concurrency,
            "persistent": self._journal is not None,
            "uptime_seconds": metrics["uptime_seconds"],
            "timestamp": metrics["timestamp"],
        }

    # ----------------------------------------------------------------- lifecycle
    def close(self, timeout: float = 5.0) -> int:
        """Stop: let running executions finish for up to ``timeout`` s, then cancel them.

        Executions cut short are marked ``failed`` with a message saying why, except, with
        ``db``, those of a durable flow: they stay ``pending``/``running`` in the store and
        resume (committed nodes are not run again) when a LocalSpine opens the db again.
        Waiters here get an ExecutionError saying so. Safe to call twice.

        Args:
            timeout: Seconds to let running executions finish.

        Returns:
            How many of the executions pending or running when it was called have ended
            (finished in time, or failed as cut short): those whose waiters elsewhere (HTTP
            pollers) have an ending to see. Durable runs left to resume are not counted;
            0 when it was closed already.
        """
        with self._lock:
            if self._closed:
                return 0
            self._closed = True
            pending = [
                r for r in self._executions.values() if r.status not in FINAL_STATUSES
            ]
        deadline = time.monotonic() + max(0.0, timeout)
        for rec in pending:
            rec.done.wait(
                min(max(0.0, deadline - time.monotonic()), threading.TIMEOUT_MAX)
            )
        for rec in pending:
            if rec.durable and self._journal is not None:
                self._keep(rec)
            else:
                self._finish(rec, "failed", {}, _CLOSED_MESSAGE)
        loop, thread = self._loop, self._thread
        if loop is not None and thread is not None:
            for rec in pending:
                loop.call_soon_threadsafe(self._cancel_task, rec)
            loop.call_soon_threadsafe(loop.stop)
            thread.join(timeout=5.0)
        if self._journal is not None:
            self._journal.close()
        return sum(1 for rec in pending if not rec.kept)

    def __enter__(self) -> "LocalSpine":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        return (
            f"LocalSpine(flows={len(self._flows)}, executions={len(self._executions)}, "
            f"db={self._journal.path if self._journal else None!r})"
        )

    # ----------------------------------------------------------------- internals
    def _record(self, execution_id: str) -> _Record:
        rec = self._executions.get(execution_id)  # fast path: canonical ids
        if rec is None:
            key = _check_uuid(execution_id, "execution_id")
            rec = self._executions.get(key) or self._stored(key)
            if rec is None:
                raise NotFoundError(
                    "Execution not found",
                    status_code=404,
                    body={"detail": "Execution not found"},
                )
        return rec

    def _stored(self, execution_id: str) -> Optional[_Record]:
        """Read an execution that left memory back from the store (None without one)."""
        if self._journal is None:
            return None
        return self._from_store(self._journal.get, execution_id)

    @staticmethod
    def _from_store(read: Callable[..., _T], *args: Any) -> Optional[_T]:
        """Call a store read; None once the store is closed (what memory holds answers)."""
        try:
            return read(*args)
        except sqlite3.Error:
            return None

    def _keep(self, rec: _Record) -> None:
        """Leave an unfinished durable run as it is in the store, for the next start."""
        with self._lock:
            if rec.status in FINAL_STATUSES:
                return
            rec.kept = True  # nothing else is saved for it (not even its cancellation)
            rec.error_message = _KEPT_MESSAGE
        self._set_done(rec)

    def _set_done(self, rec: _Record) -> None:
        """Wake the record's waiters and any batch waiting for one of its items."""
        with self._changed:
            rec.done.set()
            self._changed.notify_all()

    def _retire(self, rec: _Record) -> None:
        """Note a finished (and saved) execution; evict the oldest beyond the bound.

        Called after the final state is saved, so an evicted execution reads back final.
        """
        if self.max_executions is None:
            return  # no bound: nothing to track
        with self._lock:
            self._finished_ids.append(rec.execution_id)
            self._evict()

    def _evict(self) -> None:
        # Caller holds the lock.
        limit = self.max_executions
        while limit is not None and len(self._finished_ids) > limit:
            gone = self._executions.pop(self._finished_ids.popleft(), None)
            if gone is not None:
                self._evicted[gone.status] += 1
                if gone.idempotency_key is not None:
                    self._idempotency.pop(gone.idempotency_key, None)

    def _agent(self, agent_id: str) -> _Agent:
        validate_id(agent_id, "agent_id")
        agent = self._agents.get(agent_id)
        if agent is None:
            msg = f"Agent '{agent_id}' not found"
            raise NotFoundError(msg, status_code=404, body={"detail": msg})
        return agent

    def _save(self, rec: _Record) -> None:
        if self._journal is not None:
            try:
                self._journal.save(rec)
            except sqlite3.Error:  # pragma: no cover - a closed store during shutdown
                pass

    def _count_time(self, seconds: float) -> None:
        self._finished += 1
        self._total_time += seconds
        if seconds > self._max_time:
            self._max_time = seconds

    def _start_loop(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._closed:
                raise _closed_error()
            if self._loop is not None:
                return self._loop
            loop = asyncio.new_event_loop()
            ready = threading.Event()
            thread = threading.Thread(
                target=self._run_loop,
                args=(loop, ready),
                name="ai-spine-local",
                daemon=True,
            )
            thread.start()
            ready.wait()
            self._thread = thread
            self._loop = loop
            return loop

    def _run_loop(
        self, loop: asyncio.AbstractEventLoop, ready: threading.Event
    ) -> None:
        asyncio.set_event_loop(loop)
        self._sem = asyncio.Semaphore(self.max_concurrency)
        loop.call_soon(ready.set)
        try:
            loop.run_forever()
        finally:
            tasks = [t for t in asyncio.all_tasks(loop) if not t.done()]
            for t in tasks:
                t.cancel()
            if tasks:
                loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))
            loop.close()

    def _resume(self, rec: _Record) -> bool:
        """Schedule an interrupted run of a durable flow: resumed, or started if it never was.

        A durable graph saves its run when it starts, so without a saved run it had not
        started (it was pending) and nothing of it was done.
        """
        flow = self._flows.get(rec.flow_id)
        if flow is None:
            return False
        try:
            graph = flow.new_graph()
            if not _is_durable(graph):
                return False
            resume = graph.state.backend.load_run(rec.execution_id) is not None
        except Exception:  # a broken factory or store: report the run as interrupted
            return False
        rec.status = "pending"
        rec.started = 0.0
        rec.durable = True
        loop = self._loop or self._start_loop()
        loop.call_soon_threadsafe(self._spawn, rec, flow, graph, resume)
        return True

    def _spawn(
        self, rec: _Record, flow: _Flow, graph: Any = None, resume: bool = False
    ) -> None:
        # Runs on the loop thread; a cancel scheduled after this finds rec.task set.
        if rec.status == "pending":
            loop = self._loop
            assert loop is not None
            rec.task = loop.create_task(self._drive(rec, flow, graph, resume))

    def _cancel_task(self, rec: _Record) -> None:
        task = rec.task
        if task is not None and not task.done():
            task.cancel()

    async def _drive(
        self, rec: _Record, flow: _Flow, graph: Any = None, resume: bool = False
    ) -> None:
        sem = self._sem
        assert sem is not None
        async with sem:
            with self._lock:
                if rec.status != "pending" or rec.kept:
                    return
                rec.status = "running"
                rec.updated_at = _utcnow_iso()
                rec.started = time.perf_counter()
                if rec.timeout is not None and rec.timeout_at is None:
                    rec.timeout_at = _wall() + rec.timeout
            self._save(rec)
            try:
                if flow.lock is None and flow.factory is None:
                    flow.lock = asyncio.Lock()
                if graph is None:
                    graph = flow.new_graph()
                if flow.lock is not None:
                    async with flow.lock:
                        result = await self._run(graph, rec, resume)
                else:
                    result = await self._run(graph, rec, resume)
            except asyncio.CancelledError:
                self._finish(rec, "cancelled", {}, "Execution cancelled")
                return
            except asyncio.TimeoutError:
                self._finish(rec, "failed", {}, f"timed out after {rec.timeout:g} s")
                return
            except Exception as exc:
                self._finish(rec, "failed", {}, _describe_error(exc))
                return
            self._finish_result(rec, result)

    async def _run(self, graph: Any, rec: _Record, resume: bool) -> Any:
        if resume:
            coro = graph.resume(rec.execution_id)
        else:
            coro = graph.run(rec.input_data, run_id=rec.execution_id)
        if rec.timeout_at is None:
            return await coro
        left = rec.timeout_at - _wall()
        if left <= 0:  # ran out while the process was down
            coro.close()
            raise asyncio.TimeoutError()
        return await asyncio.wait_for(coro, left)

    def _finish_result(self, rec: _Record, result: Any) -> None:
        rec.node_results = _node_results(result)
        status = getattr(result, "status", "completed")
        if (
            status != "completed"
        ):  # spark_core raises instead; another Graph may return it
            self._finish(rec, "failed", {}, f"the run ended {status}")
            return
        content = getattr(result, "content", None)
        if content is None:
            output: Dict[str, Any] = {}
        elif isinstance(content, dict):
            output = content
        else:
            output = {"result": content}
        try:
            output = json.loads(json.dumps(output))
        except (TypeError, ValueError) as exc:
            self._finish(
                rec, "failed", {}, f"the flow's output is not JSON-serialisable: {exc}"
            )
            return
        self._finish(rec, "completed", output, None)

    def _finish(
        self, rec: _Record, status: str, output: Dict[str, Any], error: Optional[str]
    ) -> None:
        with self._lock:
            if rec.status in FINAL_STATUSES or rec.kept:
                return  # cancelled (or closed) first: a final status never changes
            now = _utcnow_iso()
            rec.status = status
            rec.output_data = output
            rec.error_message = error
            rec.updated_at = rec.completed_at = now
            if rec.started:
                rec.execution_time = time.perf_counter() - rec.started
                self._count_time(rec.execution_time)
        self._save(rec)
        self._retire(rec)
        self._set_done(rec)


def _closed_error() -> ServerError:
    """What a closed LocalSpine raises for new work: 503, as a server shutting down answers."""
    msg = "LocalSpine is closed (shutting down): no new executions"
    return ServerError(msg, status_code=503, body={"detail": msg})


def _wait_timeout(execution_id: str, timeout: float, status: str) -> TimeoutError:
    """The TimeoutError a wait raises, worded as AISpine.wait_for_execution words it."""
    return TimeoutError(
        f"execution {execution_id} not finished after {timeout:g}s "
        f"(last status: {status})",
        execution_id=execution_id,
        last_status=status,
    )


def _execution_error(final: Dict[str, Any]) -> ExecutionError:
    """The ExecutionError a wait raises for a failed or cancelled execution (as AISpine's)."""
    error = final["error_message"]
    return ExecutionError(
        f"execution {final['execution_id']} {final['status']}"
        + (f": {error}" if error else ""),
        execution=final,
    )


def _describe_error(exc: BaseException) -> str:
    text = str(exc)
    if type(exc).__module__.startswith("spark_core"):
        from spark_core.errors import RunPaused  # loaded already: a graph raised this

        if isinstance(exc, RunPaused):  # LocalSpine does not resume paused runs
            return f"the run paused ({text or 'e.g. waiting for an approval'})"
        if text:
            return text  # the engine's messages already name the node and the cause
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _node_results(result: Any) -> Dict[str, Any]:
    out: Dict[str, Any] = {}
    for nid, info in (getattr(result, "node_results", None) or {}).items():
        out[str(nid)] = {
            "status": getattr(info, "status", None),
            "attempts": getattr(info, "attempts", None),
            "duration_s": getattr(info, "duration_s", None),
            "error": getattr(info, "error", None),
        }
    return out


def _post_json(url: str, payload: Dict[str, Any]) -> Any:
    import urllib.request

    req = urllib.request.Request(
        url,
        data=json.dumps(payload).encode(),
        headers={"Content-Type": "application/json", "Accept": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(
        req, timeout=30
    ) as resp:  # noqa: S310 - http(s) checked
        return json.loads(resp.read() or b"null")
