"""Mermaid diagrams of graphs (``graph.to_mermaid()``, Jupyter's rendering)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Dict

from spark_core.nodes.base import JoinNode

if TYPE_CHECKING:  # pragma: no cover
    from spark_core.graphs.graph import Graph


def to_mermaid(graph: "Graph") -> str:
    """Return a Mermaid ``flowchart`` of ``graph`` (conditions label the edges).

    Args:
        graph: The graph.

    Returns:
        The diagram's text (the start node is rounded, joins are hexagons).
    """
    alias = {node_id: f"n{i}" for i, node_id in enumerate(graph.nodes)}
    lines = ["flowchart TD"]
    for node_id, node in graph.nodes.items():
        text = _text(node_id)
        if node is graph.start:
            shape = f'(["{text}"])'
        elif isinstance(node, JoinNode):
            shape = f'{{{{"{text}"}}}}'
        else:
            shape = f'["{text}"]'
        lines.append(f"    {alias[node_id]}{shape}")
    for edge in graph.edges:
        label = edge.label()
        arrow = f'-->|"{_text(label)}"|' if label else "-->"
        lines.append(f"    {alias[edge.source]} {arrow} {alias[edge.target]}")
    return "\n".join(lines)


def mimebundle(graph: "Graph") -> Dict[str, str]:
    """Return the graph as Jupyter's MIME bundle (see ``Graph._repr_mimebundle_``).

    Args:
        graph: The graph.

    Returns:
        MIME type -> content.
    """
    mermaid = to_mermaid(graph)
    return {
        "text/vnd.mermaid": mermaid,
        "text/markdown": f"```mermaid\n{mermaid}\n```",
        "text/plain": f"{graph!r}\n{mermaid}",
    }


def _text(text: str) -> str:
    return text.replace('"', "#quot;").replace("\n", " ")


__all__ = ["to_mermaid", "mimebundle"]
