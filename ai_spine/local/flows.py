"""The flow registry: which graph answers each ``flow_id``, and its FlowDefinition."""

from __future__ import annotations

import asyncio
import inspect
import threading
from typing import (
    TYPE_CHECKING,
    Any,
    Callable,
    Dict,
    List,
    Mapping,
    Optional,
    Union,
)

from ai_spine.exceptions import AISpineError, NotFoundError, ValidationError
from ai_spine.local.records import utcnow_iso
from ai_spine.utils import validate_id, validate_json_object
from ai_spine.validation import detail, id_problem, invalid

# spark_core is imported when first used; this import is for type checkers only.
if TYPE_CHECKING:  # pragma: no cover
    from spark_core.graphs import Graph
    from spark_core.kit.loader import SpecLoader

__all__ = ["FlowSource", "Flow", "FlowRegistry", "is_durable"]

#: What ``register_flow`` accepts: a Graph, a zero-argument callable returning a fresh Graph,
#: or a spark_core GraphSpec dict.
FlowSource = Union["Graph", Callable[[], "Graph"], Mapping[str, Any]]


class Flow:
    """A registered flow: how to get a graph for one execution, and its FlowDefinition.

    Args:
        flow_id: Its id.
        source: A Graph, a zero-argument factory, or a GraphSpec dict.
        name: Human readable name (defaults to ``flow_id``).
        description: What it does (defaults to the spec's).
        specs: The loader that builds spec flows (it holds the module allow-list).

    Raises:
        ValidationError: The source is not usable (the message names the flow).
    """

    def __init__(
        self,
        flow_id: str,
        source: Any,
        name: Optional[str],
        description: Optional[str],
        specs: SpecLoader,
        backend_definition: Optional[Dict[str, Any]] = None,
    ) -> None:
        self.flow_id = flow_id
        #: The backend's flow definition this flow was built from, if any.
        self.backend_definition = backend_definition
        self.name = name or flow_id
        self.description = description or ""
        self.created_at = self.updated_at = utcnow_iso()
        self.graph: Any = None
        self.factory: Optional[Callable[[], Any]] = None
        self.lock: Optional[asyncio.Lock] = None  # serialises runs of one shared Graph
        self.spec: Optional[Dict[str, Any]] = None
        if backend_definition is not None:
            self.kind = "definition"
            self.factory = source
            sample = source()
        elif isinstance(source, Mapping):
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
        sources = {d for n in self.nodes for d in n["depends_on"]}
        #: Nodes without outgoing edges: a completed run's ``output_data`` keys.
        self.exit_points = [n["id"] for n in self.nodes if n["id"] not in sources]
        if backend_definition is not None:  # the backend keys output_data by these
            self.exit_points = list(backend_definition["exit_points"])
        self.durable = is_durable(sample)
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
        if self.backend_definition is not None:
            return dict(
                self.backend_definition,
                created_at=self.created_at,
                updated_at=self.updated_at,
            )
        return {
            "flow_id": self.flow_id,
            "name": self.name,
            "description": self.description,
            "version": "1.0.0",
            "nodes": [dict(n, depends_on=list(n["depends_on"])) for n in self.nodes],
            "entry_point": self.entry_point,
            "exit_points": list(self.exit_points),
            "metadata": {"source": self.kind, "local": True},
            "created_at": self.created_at,
            "updated_at": self.updated_at,
        }


class FlowRegistry:
    """The flows of one LocalSpine, by id; safe to use from several threads.

    Flows registered from Python (graphs, factories) belong to the code that serves them:
    :meth:`update` refuses them, and :meth:`remove` does when told ``specs_only`` (as the
    server does), so a client cannot swap out server code.

    Args:
        specs: The loader spec flows are built with.
    """

    def __init__(self, specs: SpecLoader) -> None:
        self._specs = specs
        self._lock = threading.Lock()
        self._flows: Dict[str, Flow] = {}

    def __len__(self) -> int:
        return len(self._flows)

    def find(self, flow_id: str) -> Optional[Flow]:
        """The flow registered under ``flow_id``, or None."""
        return self._flows.get(flow_id)

    def get(self, flow_id: str) -> Flow:
        """The flow registered under ``flow_id``.

        Raises:
            ValidationError: A malformed id.
            NotFoundError: No such flow.
        """
        validate_id(flow_id, "flow_id")
        flow = self._flows.get(flow_id)
        if flow is None:
            raise _not_found(flow_id)
        return flow

    def all(self) -> List[Flow]:
        """Every flow, in registration order."""
        with self._lock:
            return list(self._flows.values())

    def add(
        self,
        flow_id: str,
        source: Any,
        name: Optional[str],
        description: Optional[str],
        replace: bool,
        backend_definition: Optional[Dict[str, Any]] = None,
    ) -> Flow:
        """Register a flow (see :meth:`ai_spine.LocalSpine.register_flow`).

        Raises:
            ValidationError: Bad id or source, or the id is taken and not ``replace`` (409).
        """
        problem = id_problem(flow_id, "flow_id", "body")
        if problem is not None:
            raise invalid([problem])
        entry = Flow(
            flow_id, source, name, description, self._specs, backend_definition
        )
        with self._lock:
            if flow_id in self._flows and not replace:
                msg = f"Flow '{flow_id}' already exists"
                raise ValidationError(msg, status_code=409, body={"detail": msg})
            self._flows[flow_id] = entry
        return entry

    def update(
        self,
        flow_id: str,
        spec: Any,
        name: Optional[str],
        description: Optional[str],
        backend_definition: Optional[Dict[str, Any]] = None,
    ) -> Flow:
        """Replace a spec flow with a new spec (see :meth:`ai_spine.LocalSpine.update_flow`).

        Raises:
            ValidationError: A malformed id, an unusable spec, or a Python-defined flow (409).
            NotFoundError: No such flow.
        """
        validate_id(flow_id, "flow_id")
        if backend_definition is None and not isinstance(spec, Mapping):
            raise invalid(
                [
                    detail(
                        ("body", "spec"), "spec must be a GraphSpec object", "dict_type"
                    )
                ]
            )
        entry = Flow(flow_id, spec, name, description, self._specs, backend_definition)
        with self._lock:
            old = self._flows.get(flow_id)
            if old is None:
                raise _not_found(flow_id)
            _refuse_python_defined(old, "updated")
            entry.created_at = old.created_at
            self._flows[flow_id] = entry
        return entry

    def remove(self, flow_id: str, specs_only: bool = False) -> None:
        """Remove a flow; with ``specs_only`` a Python-defined one is refused (409).

        Raises:
            ValidationError: A malformed id, or a Python-defined flow with ``specs_only``.
            NotFoundError: No such flow.
        """
        validate_id(flow_id, "flow_id")
        with self._lock:
            old = self._flows.get(flow_id)
            if old is None:
                raise _not_found(flow_id)
            if specs_only:
                _refuse_python_defined(old, "deleted")
            del self._flows[flow_id]


def _refuse_python_defined(flow: Flow, done: str) -> None:
    if flow.kind not in ("spec", "definition"):
        msg = (
            f"Flow '{flow.flow_id}' is defined in Python on this server ({flow.kind}); "
            f"only flows registered from a spec can be {done}"
        )
        raise ValidationError(msg, status_code=409, body={"detail": msg})


def _not_found(flow_id: str) -> NotFoundError:
    msg = f"Flow '{flow_id}' not found"
    return NotFoundError(msg, status_code=404, body={"detail": msg})


def is_durable(graph: Any) -> bool:
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
            raise invalid([detail(("body", "spec"), str(exc), "value_error")]) from None

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
