"""Checkpoints: a run's state and position as one JSON document, and back.

``Graph.checkpoint_state()`` writes one; ``Graph.resume_from(checkpoint)`` checks it with
:func:`check_checkpoint` and continues the run it describes.
"""

from __future__ import annotations

import json
import time
import uuid
from typing import TYPE_CHECKING, Any, Dict, Optional

from spark_core.errors import StateValidationError
from spark_core.graphs.backends import RunRecord
from spark_core.graphs.observers import RunInfo
from spark_core.graphs.run import Run, require_node, run_from_record

if TYPE_CHECKING:  # pragma: no cover
    from spark_core.graphs.graph import Graph

CHECKPOINT_VERSION = 1

# Field -> the type it must have in a checkpoint.
_REQUIRED = {
    "run_id": str,
    "state": dict,
    "frontier": list,
    "joins": dict,
    "outputs": dict,
    "step": int,
}


def make_checkpoint(
    graph: "Graph", current: Optional[Run], last: Optional[Run]
) -> Dict[str, Any]:
    """Return the checkpoint of the run in progress, or the last run (a fresh JSON copy).

    Args:
        graph: The graph.
        current: The run in progress, if any.
        last: The graph's last run, if any (a graph that never ran: the start node).

    Returns:
        The checkpoint.

    Raises:
        StateValidationError: Something in the run is not JSON-serialisable.
    """
    run = current or last
    if run is None:
        run = Run(RunInfo(uuid.uuid4().hex, graph, time.time()))
        run.add(graph.start.id, None)
        status = "pending"
    elif run is current:
        status = "running"
    else:
        stored = graph.state.backend.load_run(run.info.run_id)
        status = (stored or {}).get("status", "completed")
    checkpoint = {
        "version": CHECKPOINT_VERSION,
        "graph_id": graph.graph_id,
        "run_id": run.info.run_id,
        "status": status,
        "inputs": run.info.inputs,
        "state": graph.state.settled(),  # not the writes of nodes still running
        "frontier": run.frontier(),
        "joins": run.joins,
        "outputs": run.outputs,
        "step": run.step,
        "last_node": run.last_node,
        "node_snapshots": {
            node_id: node.state.context_snapshot
            for node_id, node in graph.nodes.items()
        },
    }
    try:
        return json.loads(json.dumps(checkpoint, allow_nan=False))  # type: ignore
    except (TypeError, ValueError) as exc:
        raise StateValidationError(
            f"the checkpoint is not JSON-serialisable: {exc}"
        ) from None


def restore_checkpoint(graph: "Graph", checkpoint: Any) -> Run:
    """Check a checkpoint, restore its state and node snapshots; return its run.

    Args:
        graph: The graph it is for.
        checkpoint: What :func:`make_checkpoint` returned (possibly via JSON).

    Returns:
        The run's bookkeeping, at the checkpoint's position.

    Raises:
        StateValidationError: The checkpoint is malformed or its state fails the schema
            (nothing is restored then).
        GraphDefinitionError: It names nodes the graph does not have.
    """
    record = check_checkpoint(graph, checkpoint)
    graph.state.restore(checkpoint["state"])
    for node_id, snapshot in (checkpoint.get("node_snapshots") or {}).items():
        if node_id in graph.nodes:
            graph.nodes[node_id].state.context_snapshot = snapshot
    return run_from_record(graph, record)


def check_checkpoint(graph: "Graph", checkpoint: Any) -> RunRecord:
    """Check a checkpoint's shape against ``graph``; return its run record fields.

    Args:
        graph: The graph it is for.
        checkpoint: What :func:`make_checkpoint` returned (possibly via JSON).

    Returns:
        ``run_id``, ``inputs``, ``frontier``, ``joins``, ``outputs``, ``step``,
        ``last_node``.

    Raises:
        StateValidationError: The checkpoint is malformed.
        GraphDefinitionError: It names nodes the graph does not have.
    """
    if not isinstance(checkpoint, dict):
        raise StateValidationError(
            f"a checkpoint must be a dict, got {type(checkpoint)}"
        )
    if checkpoint.get("version") != CHECKPOINT_VERSION:
        raise StateValidationError(
            f"unsupported checkpoint version {checkpoint.get('version')!r}"
        )
    for key, kind in _REQUIRED.items():
        if not isinstance(checkpoint.get(key), kind):
            raise StateValidationError(
                f"checkpoint field {key!r} must be a {kind.__name__}"
            )
    for entry in checkpoint["frontier"]:
        if not (
            isinstance(entry, list) and len(entry) == 2 and isinstance(entry[0], str)
        ):
            raise StateValidationError(f"bad frontier entry in checkpoint: {entry!r}")
        require_node(graph, entry[0])
    for join_id in checkpoint["joins"]:
        require_node(graph, join_id)
    return RunRecord(
        run_id=checkpoint["run_id"],
        inputs=checkpoint.get("inputs"),
        frontier=checkpoint["frontier"],
        joins=checkpoint["joins"],
        outputs=checkpoint["outputs"],
        step=checkpoint["step"],
        last_node=checkpoint.get("last_node"),
    )


__all__ = [
    "make_checkpoint",
    "restore_checkpoint",
    "check_checkpoint",
    "CHECKPOINT_VERSION",
]
