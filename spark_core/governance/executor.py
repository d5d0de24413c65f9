"""One place where tool calls and node executions meet the policy set.

:class:`ToolExecutor` is what ``context.call_tool(name, **arguments)`` delegates to (and what
agents call directly)::

    executor = ToolExecutor([read_file, write_file], policy_set)
    result = await executor.call("read_file", {"path": "a.txt"}, context)

For each call it: finds the tool (:class:`ToolNotFoundError`), validates the arguments
(:class:`ToolArgumentError`), evaluates the policy with action ``tool:execute`` and resource
``tool://<name>``, appends the decision to the audit trail (graph state key ``_spark_audit``,
the newest 500 records),
emits a ``policy.decision`` event, then:

* ALLOW -> runs the tool and returns its result;
* DENY -> raises :class:`PolicyViolationError` (``.decision`` holds the decision);
* REQUIRE_APPROVAL -> stores an approval request (``_spark_approvals``) and raises
  :class:`ApprovalPendingError`, pausing the run. After the request is approved and the run
  resumed, the same call (same run, node, tool and arguments) runs exactly once; after a
  rejection it raises :class:`PolicyViolationError`, again on every later resume of that run
  (it is not asked again). A node runs again from its start when
  it resumes (after a later call of it paused the run), is retried, or its failed run is
  resumed: an approved call it already made is then not run again, its recorded result is
  given back (event ``approval.replayed``; results that are not JSON-serialisable cannot be
  kept, and that call is asked again). Once the node completes, a later execution of it
  (e.g. in a loop) asks again. This holds for the graph's own executor
  (``context.call_tool``) and for node approvals alike: an approved node that runs again
  before it completes is not asked again.

Policy conditions see these context attributes: the tool's ``metadata`` keys (e.g.
``risk_tier``), ``tool``, ``arguments``, ``node_id``, ``run_id``, ``graph_id``, ``attempt``,
plus any keys of a mapping passed as ``context`` (agents outside a graph may pass one). A
mapping cannot override what the tool declares: ``call("wipe", {...}, {"risk_tier": "low"})``
is still judged with the tool's own ``risk_tier``.
Outside a graph, approval requests live in the executor's own store: ``executor.approvals``.

:class:`NodePolicyObserver` applies the same rules to nodes themselves (action
``node:execute``, resource ``node://<id>``) before every node; ``Graph(policy_set=...)``
attaches it.
"""

from __future__ import annotations

import logging
import weakref
from typing import Any, Dict, Iterable, List, Mapping, Optional, Set

from spark_core.errors import SparkError
from spark_core.governance.approvals import (
    APPROVED,
    PENDING,
    REJECTED,
    ApprovalPendingError,
    ApprovalRequest,
    ApprovalStore,
    _DictState,
    _now,
    fingerprint,
    new_request_id,
)
from spark_core.governance.policy import (
    PolicyDecision,
    PolicyEffect,
    PolicySet,
    PolicyViolationError,
)
from spark_core.governance.tools import Tool, ToolError, ToolNotFoundError, as_tool
from spark_core.graphs import plugins
from spark_core.graphs.observers import GraphObserver
from spark_core.telemetry.redaction import redact
from spark_core.utils import LoopLock

__all__ = ["ToolExecutor", "NodePolicyObserver", "AUDIT_KEY", "enforce_policy"]

AUDIT_KEY = "_spark_audit"
# Context-metadata key where a node execution keeps the approvals its calls used.
_USED_KEY = "_spark_approvals_used"
DEFAULT_AUDIT_LIMIT = 500
_log = logging.getLogger("spark_core.governance")


def _context_state(context: Any) -> Any:
    state = getattr(context, "graph_state", None)
    if state is None:
        graph = getattr(context, "graph", None)
        state = getattr(graph, "state", None)
    return state


def _context_attrs(context: Any) -> Dict[str, Any]:
    if context is None:
        return {}
    if isinstance(context, Mapping):
        return dict(context)
    meta = getattr(context, "metadata", None) or {}
    return {
        "node_id": meta.get("node_id"),
        "run_id": getattr(context, "run_id", None) or meta.get("run_id"),
        "graph_id": meta.get("graph_id"),
        "attempt": meta.get("attempt"),
    }


async def _emit(context: Any, name: str, data: Dict[str, Any]) -> None:
    emit = getattr(context, "emit", None)
    if emit is not None and not isinstance(context, Mapping):
        await emit(name, **data)


# The audit trail has a lock of its own, per state (and event loop): a node may hold the
# state's lock() around a tool call (a read-modify-write that uses a tool), and the call's
# audit record must not wait for that node to let go.
_AUDIT_LOCKS: weakref.WeakKeyDictionary[Any, LoopLock] = weakref.WeakKeyDictionary()


async def _audit(state: Any, record: Dict[str, Any], limit: int) -> None:
    async with _AUDIT_LOCKS.setdefault(state, LoopLock()).current():
        trail = list(await state.get(AUDIT_KEY, None) or [])
        trail.append(record)
        if len(trail) > limit:
            del trail[: len(trail) - limit]
        await state.set(AUDIT_KEY, trail)


async def enforce_policy(
    policy_set: PolicySet,
    action: str,
    resource: str,
    attrs: Dict[str, Any],
    *,
    context: Any,
    state: Any,
    summary: Dict[str, Any],
    payload: Any = None,
    audit_limit: int = DEFAULT_AUDIT_LIMIT,
    audit_default_allow: bool = True,
    approvals: Optional[_ApprovalUse] = None,
) -> PolicyDecision:
    """Evaluate, audit, and act on one decision; return it when the action may proceed.

    Args:
        policy_set: The rules.
        action: e.g. ``tool:execute``.
        resource: e.g. ``tool://write_file``.
        attrs: Context attributes for rule conditions.
        context: The ExecutionContext (for events), or None.
        state: Where audit records and approval requests live.
        summary: What an approval request shows the reviewer (redacted here).
        payload: What identifies "the same call" on resume (e.g. the arguments).
        audit_limit: Keep at most this many audit records (oldest dropped).
        audit_default_allow: Also audit ALLOW decisions that no rule matched.
        approvals: When given (a graph node's call), an approved call this node execution
            already made is not asked or run again: ``approvals.replayed`` is set to its
            request; an approval this call uses is put in ``approvals.taken``.

    Returns:
        The decision (ALLOW, or REQUIRE_APPROVAL with a fresh approval consumed).

    Raises:
        PolicyViolationError: DENY, or a reviewer rejected the request.
        ApprovalPendingError: Approval is needed and not yet given.
    """
    decision = policy_set.evaluate(action, resource, attrs)
    if decision.rule is None and decision.allowed and not audit_default_allow:
        return decision  # nothing to record: no rule had anything to say
    run_id = attrs.get("run_id")
    node_id = attrs.get("node_id")
    record: Dict[str, Any] = {
        "time": _now(),
        **decision.to_dict(),
        "run_id": run_id,
        "node_id": node_id,
    }
    if decision.effect is PolicyEffect.REQUIRE_APPROVAL:
        store = ApprovalStore(state)
        fp = fingerprint(action, resource, run_id, node_id, payload)
        if approvals is not None:
            again = await store.replay(fp, approvals.attempt_ids)
            if again is not None:
                approvals.use(again.id)
                approvals.replayed = again
                await _emit(
                    context, "approval.replayed", {"request_id": again.id, **record}
                )
                return decision
        request = await store.latest(fp)
        if request is not None and request.status == REJECTED:
            # Final for this run: every later attempt fails the same way, without asking.
            await store.consume(request.id)
            record["approval_id"] = request.id
            record["approval_status"] = REJECTED
            await _audit(state, record, audit_limit)
            await _emit(
                context, "approval.rejected", {"request_id": request.id, **record}
            )
            raise PolicyViolationError(
                f"approval request {request.id!r} for {action} on {resource} was rejected"
                f" by {request.reviewer or 'a reviewer'}"
                + (f": {request.notes}" if request.notes else ""),
                decision=decision,
                request=request.to_dict(),
            )
        if request is not None and request.consumed_at:
            request = None  # used up (e.g. its process died mid-call): ask again
        if request is not None and request.status == APPROVED:
            record["approval_id"] = request.id
            record["approval_status"] = APPROVED
            if await store.consume(request.id):
                if approvals is not None:
                    approvals.use(request.id)
                    approvals.taken = request.id
                await _audit(state, record, audit_limit)
                await _emit(
                    context, "approval.used", {"request_id": request.id, **record}
                )
                return decision
            request = None  # lost a race for this approval: ask again
        if request is None:
            request = ApprovalRequest(
                id=new_request_id(),
                action=action,
                resource=resource,
                requester=f"run:{run_id}/node:{node_id}",
                run_id=run_id,
                node_id=node_id,
                policy=decision.policy,
                rule=decision.rule_name,
                reason=decision.reason,
                context=redact(summary),
                fingerprint=fp,
            )
            await store.create(request)
            await _emit(
                context, "approval.requested", {"request_id": request.id, **record}
            )
        record["approval_id"] = request.id
        record["approval_status"] = PENDING
        await _audit(state, record, audit_limit)
        await _emit(context, "policy.decision", record)
        raise ApprovalPendingError(
            f"approval required for {action} on {resource} (request {request.id}, "
            f"rule {decision.rule_name!r}); resolve it, then resume run {run_id}",
            request_id=request.id,
            request=request.to_dict(),
            decision=decision,
        )
    await _audit(state, record, audit_limit)
    await _emit(context, "policy.decision", record)
    if decision.effect is PolicyEffect.DENY:
        raise PolicyViolationError.from_decision(decision)
    return decision


class _ApprovalUse:
    """One tool call's view of the approvals its node execution used.

    Attributes:
        attempt_ids: Approvals used by the current attempt (shared by its calls).
        all_ids: Approvals used by any attempt (settled when the node completes).
        taken: The approval this call used, if any.
        replayed: The request whose recorded result this call gives back, if any.
    """

    __slots__ = ("attempt_ids", "all_ids", "taken", "replayed")

    def __init__(self, attempt_ids: List[str], all_ids: Set[str]) -> None:
        self.attempt_ids = attempt_ids
        self.all_ids = all_ids
        self.taken: Optional[str] = None
        self.replayed: Optional[ApprovalRequest] = None

    def use(self, request_id: str) -> None:
        """Note that this attempt used ``request_id``."""
        self.attempt_ids.append(request_id)
        self.all_ids.add(request_id)


def _approval_use(meta: Dict[str, Any]) -> _ApprovalUse:
    """The approvals this node execution (``meta``: its context metadata) used so far."""
    attempt = meta.get("attempt")
    entry = meta.get(_USED_KEY)
    if entry is None:
        entry = meta[_USED_KEY] = [attempt, [], set()]
    elif entry[0] != attempt:  # a retry runs the node again from its start
        entry[0], entry[1] = attempt, []
    return _ApprovalUse(entry[1], entry[2])


class ToolExecutor:
    """Runs tools by name through the policy set.

    Args:
        tools: Tools (or plain callables, wrapped with :class:`Tool`).
        policy_set: Optional PolicySet; without one every call is allowed (and not audited).
        audit_limit: Keep at most this many audit records in graph state.

    Raises:
        ToolError: Two tools share a name, or an entry is not callable.
    """

    def __init__(
        self,
        tools: Optional[Iterable[Any]] = None,
        policy_set: Optional[PolicySet] = None,
        *,
        audit_limit: int = DEFAULT_AUDIT_LIMIT,
    ) -> None:
        self.tools: Dict[str, Tool] = {}
        for obj in tools or ():
            self.register(obj)
        self.policy_set = policy_set
        self.audit_limit = audit_limit
        self._local_state = _DictState()

    def register(self, obj: Any) -> Tool:
        """Add a tool (or callable); returns the Tool.

        Raises:
            ToolError: The name is taken or ``obj`` is not callable.
        """
        t = as_tool(obj)
        if t.name in self.tools:
            raise ToolError(f"duplicate tool name {t.name!r}")
        self.tools[t.name] = t
        return t

    def get(self, name: str) -> Tool:
        """Return the tool called ``name``.

        Raises:
            ToolNotFoundError: No such tool; the message lists the known ones.
        """
        try:
            return self.tools[name]
        except KeyError:
            raise ToolNotFoundError(
                f"unknown tool {name!r}; registered tools: {sorted(self.tools)}"
            ) from None

    def schemas(self) -> List[Dict[str, Any]]:
        """Return every tool's OpenAI-style function schema, in registration order."""
        return [t.schema() for t in self.tools.values()]

    @property
    def approvals(self) -> ApprovalStore:
        """Approval requests made by calls that had no graph state (e.g. agents alone)."""
        return ApprovalStore(self._local_state)

    async def call(
        self,
        name: str,
        arguments: Optional[Mapping[str, Any]] = None,
        context: Any = None,
    ) -> Any:
        """Validate, check policy, and run one tool; returns the tool's result.

        Args:
            name: Registered tool name.
            arguments: Argument name -> value.
            context: The node's ExecutionContext, a mapping of extra policy attributes, or
                None.

        Returns:
            Whatever the tool returns.

        Raises:
            ToolNotFoundError: Unknown tool.
            ToolArgumentError: Arguments do not fit the tool's schema.
            PolicyViolationError: Denied, or the approval was rejected.
            ApprovalPendingError: Needs a human approval first.
        """
        t = self.get(name)
        args = t.validate(arguments)
        if self.policy_set is not None:
            ctx_attrs = _context_attrs(context)
            # What the tool declares (e.g. its risk_tier) wins over what a caller's mapping
            # says about the call; the engine's own attributes (node_id, run_id) win over both.
            caller = ctx_attrs if isinstance(context, Mapping) else {}
            engine = {} if isinstance(context, Mapping) else ctx_attrs
            attrs = {
                **caller,
                **t.metadata,
                **engine,
                "tool": name,
                "arguments": args,
            }
            state = (
                _context_state(context) if not isinstance(context, Mapping) else None
            )
            if state is None:
                state = self._local_state
            use = self._approval_use(context)
            await enforce_policy(
                self.policy_set,
                "tool:execute",
                f"tool://{name}",
                attrs,
                context=context,
                state=state,
                summary={"tool": name, "arguments": args},
                payload=args,
                audit_limit=self.audit_limit,
                approvals=use,
            )
            if use is not None and use.replayed is not None:
                return use.replayed.result  # this node already made this approved call
            if use is not None and use.taken is not None:
                result = await t._call_checked(dict(args))
                await ApprovalStore(state).record_result(use.taken, result)
                return result
        return await t._call_checked(dict(args))  # validated above

    def _approval_use(self, context: Any) -> Optional[_ApprovalUse]:
        """What this call needs to give back approved results, or None when they are not
        given back: outside a graph node, or with an executor other than the graph's (only
        the graph's policy observer settles them when the node completes)."""
        meta = getattr(context, "metadata", None)
        graph = getattr(context, "graph", None)
        if (
            isinstance(context, Mapping)
            or not isinstance(meta, dict)
            or graph is None
            or getattr(graph, "tool_executor", None) is not self
        ):
            return None
        return _approval_use(meta)

    def __repr__(self) -> str:
        policy = self.policy_set.name if self.policy_set is not None else None
        return f"ToolExecutor(tools={sorted(self.tools)}, policy_set={policy!r})"


class NodePolicyObserver(GraphObserver):
    """Checks ``node:execute`` on ``node://<id>`` before every node (graph observer).

    Decisions made by a rule are audited and emitted as events; ALLOW decisions that fell
    through to the default effect are not (unless ``audit_all``), so an ordinary step does
    not rewrite the audit trail.

    Args:
        policy_set: The rules. DENY stops the run with PolicyViolationError;
            REQUIRE_APPROVAL pauses it until the request is approved and the run resumed.
        audit_limit: Keep at most this many audit records in graph state.
        audit_all: Audit default ALLOW decisions too.
    """

    def __init__(
        self,
        policy_set: PolicySet,
        *,
        audit_limit: int = DEFAULT_AUDIT_LIMIT,
        audit_all: bool = False,
    ) -> None:
        if not isinstance(policy_set, PolicySet):
            raise SparkError(
                f"NodePolicyObserver needs a PolicySet, got {type(policy_set).__name__}"
            )
        self.policy_set = policy_set
        self.audit_limit = audit_limit
        self.audit_all = audit_all

    async def on_node_start(self, run: Any, node: Any, context: Any) -> None:
        """Evaluate the node policy; raise to stop or pause the run."""
        attrs = _context_attrs(context)
        attrs.update(
            node_id=node.id,
            run_id=attrs.get("run_id") or getattr(run, "run_id", None),
            node_type=type(node).__name__,
        )
        state = _context_state(context)
        if state is None:
            state = getattr(getattr(run, "graph", None), "state", None)
        meta = getattr(context, "metadata", None)
        use = _approval_use(meta) if isinstance(meta, dict) else None
        await enforce_policy(
            self.policy_set,
            "node:execute",
            f"node://{node.id}",
            attrs,
            context=context,
            state=state,
            summary={"node": node.id, "node_type": type(node).__name__},
            payload=None,
            audit_limit=self.audit_limit,
            audit_default_allow=self.audit_all,
            approvals=use,
        )
        if use is not None and use.taken is not None:
            # Until the node completes, running it again (a later call of it paused the
            # run, or it failed and the run is resumed) reuses this approval.
            await ApprovalStore(state).record_result(use.taken, None)

    async def on_node_end(self, run: Any, node: Any, context: Any, output: Any) -> None:
        """The node completed: results of the approved calls it made are not given back
        to a later execution of it (which asks again)."""
        entry = (getattr(context, "metadata", None) or {}).get(_USED_KEY)
        if entry and entry[2]:
            state = _context_state(context)
            if state is not None:
                await ApprovalStore(state).settle(sorted(entry[2]))


plugins.register("policy_set", NodePolicyObserver)
plugins.register("tool_executor", ToolExecutor)
