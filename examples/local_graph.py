"""Run a spark_core graph through LocalSpine: the AISpine methods, answered in-process.

The graph triages support tickets: it cleans the text, scores its sentiment, then branches to
one of three nodes that choose an action. ``LocalSpine`` runs it behind the same methods the
hosted API client has, so the loop at the bottom works unchanged with
``AISpine(base_url=...)`` against a server that has the flow.

Run it::

    python examples/local_graph.py
"""

from __future__ import annotations

from typing import Any, Dict

from ai_spine import LocalSpine
from ai_spine.demo import score_sentiment
from spark_core.graphs import Graph
from spark_core.nodes import ExecutionContext, Node

TICKETS = [
    "The new dashboard is great, I love it",
    "Export is broken again and support is slow",
    "How do I change my billing address?",
]


class Clean(Node):
    """Trims and collapses whitespace."""

    async def process(self, context: ExecutionContext) -> Dict[str, Any]:
        """Return the cleaned ticket text."""
        return {"text": " ".join(str(context.inputs.content["text"]).split())}


class Score(Node):
    """Scores the text with the demo word lists."""

    async def process(self, context: ExecutionContext) -> Dict[str, Any]:
        """Return the text with its score and label."""
        return score_sentiment(context.inputs.content["text"])


class Route(Node):
    """Chooses what to do for one label."""

    def __init__(self, name: str, action: str) -> None:
        super().__init__(name)
        self.action = action

    async def process(self, context: ExecutionContext) -> Dict[str, Any]:
        """Return the label and the chosen action."""
        return {"label": context.inputs.content["label"], "action": self.action}


def build_graph() -> Graph:
    """Build the triage graph (a fresh one per execution)."""
    clean = Clean("clean")
    score = Score("score")
    clean >> score
    score.on(label="positive") >> Route("praise", "forward to the product team")
    score.on(label="negative") >> Route("escalate", "open a priority support case")
    score.on(label="neutral") >> Route("answer", "reply with the help-centre link")
    return Graph(clean)


def main() -> None:
    """Execute the flow for every ticket, then wait for each and print the outcome."""
    with LocalSpine({"triage": build_graph}) as spine:  # or: AISpine(base_url=...)
        started = [spine.execute_flow("triage", {"text": t}) for t in TICKETS]
        for ticket, run in zip(TICKETS, started):
            done = spine.wait_for_execution(run["execution_id"])
            # output_data: one key per exit node that ran, as the backend answers
            for node_id, out in (done["output_data"] or {}).items():
                print(f"{out['label']:<8} -> {out['action']}  [{node_id}]  ({ticket})")
        flow = spine.get_flow("triage")
        print("nodes:", ", ".join(n["id"] for n in flow["nodes"]))
        print(
            "executions completed:",
            spine.get_metrics()["executions_by_status"]["completed"],
        )


if __name__ == "__main__":
    main()
