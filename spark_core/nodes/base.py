"""Nodes: the unit of work of a graph, and the edge DSL that links them (``a >> b``).

Running a node is :mod:`spark_core.nodes.runner`'s job; where its ``process`` runs,
:mod:`spark_core.nodes.executors`'.
"""

from __future__ import annotations

import inspect
import time
from dataclasses import dataclass, field
from typing import (
    TYPE_CHECKING,
    Any,
    Callable,
    Dict,
    List,
    Optional,
    Protocol,
    Sequence,
    Tuple,
    TypeVar,
    Union,
)

from spark_core.errors import GraphDefinitionError, RunStopped
from spark_core.nodes.edges import Edge, expression_text
from spark_core.nodes.capabilities import (
    CircuitBreakerCapability,
    RateLimitCapability,
    RetryCapability,
    TimeoutCapability,
)
from spark_core.nodes.context import ExecutionContext, Inputs, NodeState
from spark_core.nodes.executors import NodeExecutor
from spark_core.nodes.runner import failure, no_route, run_node

if TYPE_CHECKING:  # pragma: no cover
    from spark_core.graphs.observers import GraphObserver, RunInfo

# A successor link kept on the source node: (target, kind, value). The graph turns these into
# Edge objects once node ids are final.
Link = Tuple["Node", str, Any]


class NodeLike(Protocol):
    """Anything that stands for a node where the engine takes one: it has ``as_node()``.

    An :class:`~spark_core.agents.Agent` is one: ``Graph(agent)``, ``a >> agent``.
    """

    def as_node(self) -> "Node":
        """Return the node this object stands for (the same one every time)."""
        ...  # pragma: no cover


NodeRef = Union["Node", NodeLike]
Target = Union[NodeRef, Sequence[NodeRef]]
# ``a >> b`` returns ``b`` with its own type, so ``a >> agent >> c`` type-checks too.
T = TypeVar("T", bound=Target)
R = TypeVar("R")


@dataclass
class NodeConfig:
    """Capabilities and options of a node.

    Attributes:
        retry: Retry failing attempts.
        timeout: Limit each attempt's duration.
        rate_limit: Limit how often attempts start.
        circuit_breaker: Stop calling a node that keeps failing.
        description: Free text shown in diagrams and specs.
        metadata: Free data for tools built on top of the engine.
        executor: Where this node's ``process`` runs (a
            :class:`~spark_core.nodes.executors.NodeExecutor`); ``None``: the graph's
            executor, by default in this process.
    """

    retry: Optional[RetryCapability] = None
    timeout: Optional[TimeoutCapability] = None
    rate_limit: Optional[RateLimitCapability] = None
    circuit_breaker: Optional[CircuitBreakerCapability] = None
    description: str = ""
    metadata: Dict[str, Any] = field(default_factory=dict)
    executor: Optional[NodeExecutor] = None

    def __post_init__(self) -> None:
        if self.executor is not None and not isinstance(self.executor, NodeExecutor):
            raise GraphDefinitionError(
                f"NodeConfig.executor must be a NodeExecutor, got {self.executor!r}"
            )

    def has_capabilities(self) -> bool:
        """Tell whether any capability is set (the engine then takes its full path).

        Returns:
            True when retry, timeout, rate limit or circuit breaker is set.
        """
        return not (
            self.retry is None
            and self.timeout is None
            and self.rate_limit is None
            and self.circuit_breaker is None
        )


@dataclass
class NodeResult:
    """The result of running one node alone with :meth:`Node.run`.

    Attributes:
        content: The node's output.
        node_id: The node's id.
        attempts: Attempts made (1 + retries).
        duration_s: Seconds the execution took.
        status: Always ``"completed"`` (a failure raises ``NodeExecutionError``).
    """

    content: Any
    node_id: str
    attempts: int = 1
    duration_s: float = 0.0
    status: str = "completed"


class _EdgeBuilder:
    """The left side of a conditional edge: ``node.on(...) >> target``."""

    __slots__ = ("_source", "_kind", "_value")

    def __init__(self, source: "Node", kind: str, value: Any) -> None:
        self._source = source
        self._kind = kind
        self._value = value

    def __rshift__(self, target: T) -> T:
        for node in _as_nodes(target):
            self._source._add_link(node, self._kind, self._value)
        return target


def as_node(obj: Any) -> Any:
    """Return ``obj`` if it is a node, else ``obj.as_node()`` when it has one (an ``Agent``).

    Args:
        obj: A node, or an object standing for one.

    Returns:
        The node, or ``obj`` unchanged (callers check the type).
    """
    if not isinstance(obj, Node):
        make = getattr(obj, "as_node", None)
        if callable(make):
            return make()
    return obj


def _as_nodes(target: Any) -> List["Node"]:
    items = list(target) if isinstance(target, (list, tuple)) else [target]
    items = [as_node(item) for item in items]
    for item in items:
        if not isinstance(item, Node):
            raise GraphDefinitionError(f"an edge must point to a Node, got {item!r}")
    return items


class Node:
    """A unit of work. Subclass it and implement ``process(self, context)``.

    ``process`` may be ``async def`` or a plain ``def`` (which runs in a worker thread so it
    never blocks the event loop). It returns a dict, or ``None``; that becomes the next node's
    ``context.inputs.content``. The base class's ``process`` passes its input through.

    Subclasses that define ``__init__`` must call ``super().__init__()``.

    Attributes:
        name: The node's name (defaults to the class name).
        id: Unique id within a graph; defaults to the name. Unnamed nodes of the same class
            in one graph get ``ClassName_2``, ``ClassName_3``, ... in discovery order.
        config: The node's :class:`NodeConfig`.
        state: The node's own :class:`~spark_core.nodes.context.NodeState`.
    """

    def __init__(
        self, name: Optional[str] = None, config: Optional[NodeConfig] = None
    ) -> None:
        """Create a node.

        Args:
            name: The node's name and default id (a non-empty string).
            config: Capabilities and options.

        Raises:
            GraphDefinitionError: ``name`` or ``config`` has the wrong type.
        """
        if name is not None and (not isinstance(name, str) or not name.strip()):
            raise GraphDefinitionError(
                f"a node name must be a non-empty string, got {name!r}"
            )
        if config is not None and not isinstance(config, NodeConfig):
            raise GraphDefinitionError(f"config must be a NodeConfig, got {config!r}")
        self.name: str = name if name is not None else type(self).__name__
        self._id: str = self.name
        # Unnamed nodes get their id numbered by the graph (ClassName_2, ...) unless the id is
        # set explicitly.
        self._auto_id = name is None
        self.config: NodeConfig = config if config is not None else NodeConfig()
        self.state = NodeState()
        self._links: List[Link] = []
        self._is_async = inspect.iscoroutinefunction(self.process)
        # The built-in pass-through implementations are trivial: call them inline rather
        # than in a worker thread.
        self._inline = getattr(type(self).process, "_spark_inline", False)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} id={getattr(self, '_id', '?')!r}>"

    @property
    def id(self) -> str:
        """The node's id, unique within a graph (defaults to its name).

        Setting it fixes the id: a graph keeps it as is, whereas nodes created without a
        name are numbered ``ClassName_2``, ``ClassName_3``, ... when their class name repeats.
        """
        return self._id

    @id.setter
    def id(self, value: str) -> None:
        if not isinstance(value, str) or not value.strip():
            raise GraphDefinitionError(
                f"a node id must be a non-empty string, got {value!r}"
            )
        self._id = value
        self._auto_id = False

    def process(self, context: ExecutionContext) -> Any:
        """Do the node's work; the base implementation returns its input unchanged.

        Override it as ``async def process(self, context)`` or as a plain ``def`` (which
        then runs in a worker thread).

        Args:
            context: The execution context.

        Returns:
            A dict (the next node's input) or ``None``.
        """
        content = context.inputs.content
        return content if isinstance(content, dict) else {"value": content}

    # ----------------------------------------------------------------- edges
    def add_edge(
        self, target: NodeRef, kind: str = "always", value: Any = None
    ) -> "Node":
        """Add an edge ``self -> target`` with an explicit condition.

        The programmatic form of ``>>`` and ``on()``, for code that builds graphs from data
        (e.g. an ``"equals"`` condition on keys such as ``expr`` or ``when``, which clash
        with ``on()``'s own keywords).

        Args:
            target: The target node.
            kind: ``"always"``, ``"equals"``, ``"expr"`` or ``"callable"``.
            value: ``None`` for ``"always"``; a dict of output key -> expected value for
                ``"equals"``; the expression text for ``"expr"``; the callable for
                ``"callable"``.

        Returns:
            The target node (``target.as_node()`` for an object standing for one).

        Raises:
            GraphDefinitionError: ``target`` is not a node, or ``kind``/``value`` do not fit.
            ExpressionError: ``value`` is not a valid expression.
        """
        target = as_node(target)
        if not isinstance(target, Node):
            raise GraphDefinitionError(f"an edge must point to a Node, got {target!r}")
        if kind == "always" and value is not None:
            raise GraphDefinitionError("an 'always' edge takes no condition value")
        if kind == "equals" and isinstance(value, dict):
            value = dict(value)
        Edge("", "", kind, value)  # validates the kind and its value
        self._add_link(target, kind, value)
        return target

    def _add_link(self, target: "Node", kind: str, value: Any) -> None:
        _require_init(self)
        _require_init(target)
        for linked, linked_kind, linked_value in self._links:
            if (
                linked is target
                and linked_kind == kind
                # Conditions are data except callables, which are compared by identity.
                and (
                    linked_value is value
                    or (kind != "callable" and linked_value == value)
                )
            ):
                return  # the same edge twice (e.g. `a >> b` repeated) is one edge
        self._links.append((target, kind, value))

    def __rshift__(self, other: T) -> T:
        """Add an unconditional edge ``self -> other`` (or to each node of a list).

        Args:
            other: The target node (or an object with ``as_node()``), or a list of them
                (fan-out).

        Returns:
            ``other``, so ``a >> b >> c`` chains.
        """
        for node in _as_nodes(other):
            self._add_link(node, "always", None)
        return other

    def __rrshift__(self, other: Sequence[NodeRef]) -> "Node":
        """``[a, b] >> self`` adds an edge from each node of the list (fan-in).

        Args:
            other: The source nodes.

        Returns:
            ``self``.
        """
        for node in _as_nodes(other):
            node._add_link(self, "always", None)
        return self

    def on(
        self,
        branch: Any = None,
        *,
        expr: Optional[str] = None,
        when: Optional[Callable[[Any], Any]] = None,
        **equals: Any,
    ) -> _EdgeBuilder:
        """Start a conditional edge: ``node.on(...) >> target``.

        Forms: ``on(branch="A")`` or ``on(status="ok")`` (output keys equal the values),
        ``on(expr="$.outputs.score > 0.5")`` (safe expression), ``on(lambda out: ...)`` or
        ``on(when=...)`` (a callable given the output). A positional non-callable value
        means ``branch=value``.

        Args:
            branch: Expected value of the output's ``"branch"`` key, or a callable.
            expr: A safe expression over ``$.outputs``.
            when: A callable receiving the output; truthy fires the edge.
            **equals: Output keys and the values they must equal.

        Returns:
            A builder; ``>> target`` adds the edge and returns the target.

        Raises:
            GraphDefinitionError: No condition or several kinds of condition were given.
            ExpressionError: ``expr`` is not a valid expression.
        """
        if callable(branch) and not isinstance(branch, type):
            if when is not None:
                raise GraphDefinitionError(
                    "give the condition callable once, not twice"
                )
            when, branch = branch, None
        if branch is not None:
            equals = {"branch": branch, **equals}
        given = [
            kind for kind, v in (("expr", expr), ("callable", when)) if v is not None
        ]
        if equals:
            given.append("equals")
        if len(given) != 1:
            raise GraphDefinitionError(
                "node.on() needs exactly one kind of condition: key=value pairs, expr=... or a "
                f"callable (got {given or 'none'})"
            )
        if expr is not None:
            return _EdgeBuilder(self, "expr", expression_text(expr))
        if when is not None:
            return _EdgeBuilder(self, "callable", when)
        return _EdgeBuilder(self, "equals", dict(equals))

    @property
    def successors(self) -> List["Node"]:
        """The nodes this node has edges to, in the order the edges were added."""
        return [target for target, _, _ in self._links]

    # ------------------------------------------------------------- running
    async def run(self, inputs: Any = None) -> NodeResult:
        """Run this node alone (with its capabilities) and return its result.

        Args:
            inputs: The node's ``inputs.content``.

        Returns:
            A :class:`NodeResult`; ``.content`` is the output.

        Raises:
            NodeExecutionError: The node failed (after retries).
        """
        _require_init(self)
        ctx = ExecutionContext(
            Inputs(inputs),
            self.state,
            metadata={"node_id": self.id, "attempt": 1, "step": 1},
        )
        started = time.perf_counter()
        try:
            output, _ = await run_node(
                self, ctx, no_route, executor=self.config.executor
            )
        except Exception as exc:
            if isinstance(exc, RunStopped):
                raise
            raise failure(self, exc)  # its __cause__ is exc (or it is exc)
        return NodeResult(
            content=output,
            node_id=self.id,
            attempts=ctx.metadata["attempt"],
            duration_s=time.perf_counter() - started,
        )


class JoinNode(Node):
    """Waits for one message from each of its parents, then runs once.

    Its ``inputs.content`` is ``{parent id: parent output}``. When a parent can no longer
    deliver (its branch was not taken) the join waits until nothing else can run, then runs
    with the messages it has: the missing parents are absent from the mapping. The base
    implementation returns that mapping unchanged; subclass and override ``process`` to
    combine the branches.
    """

    def process(self, context: ExecutionContext) -> Any:
        """Return the collected ``{parent id: output}`` mapping.

        Args:
            context: The execution context.

        Returns:
            The mapping of parent outputs.
        """
        return dict(context.inputs.content)


Node.process._spark_inline = True  # type: ignore[attr-defined]
JoinNode.process._spark_inline = True  # type: ignore[attr-defined]


def _require_init(node: Any) -> None:
    if not hasattr(node, "_links"):
        raise GraphDefinitionError(
            f"{type(node).__name__}.__init__ must call super().__init__() before the node is used"
        )


# The runner's entry point under its former name (``execute_node(node, ctx, run, observers,
# route)``), for code written against it.
async def execute_node(
    node: Node,
    ctx: ExecutionContext,
    run: Optional["RunInfo"],
    observers: Sequence["GraphObserver"],
    route: Callable[[Any], R],
) -> Tuple[Any, R]:
    """Run one node execution: :func:`spark_core.nodes.runner.run_node`.

    Args:
        node: The node.
        ctx: Its execution context.
        run: The run, for observer hooks (``None``: no hooks).
        observers: Observers to call.
        route: The node's edge conditions (output -> what fires).

    Returns:
        The node's output and what ``route`` returned for it.
    """
    return await run_node(node, ctx, route, run, observers)


__all__ = ["Node", "NodeConfig", "NodeResult", "NodeLike", "JoinNode", "execute_node"]
