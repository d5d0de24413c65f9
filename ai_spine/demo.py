"""The flows ``ai-spine serve --demo`` registers: small, real spark_core graphs.

* ``echo``: one node; the output is the input.
* ``sentiment``: scores ``text`` with a word list (handles "not good"), then branches to one of
  three nodes by label (``positive`` / ``negative`` / ``neutral``), which picks an action.
* ``word_stats``: splits ``text`` into words, fans out to three nodes running concurrently
  (count, longest words, most frequent words) and joins their results.

Each name maps to a factory, so every execution runs a fresh graph.
"""

from __future__ import annotations

import re
from collections import Counter
from typing import TYPE_CHECKING, Any, Callable, Dict, List

from spark_core.graphs import Graph
from spark_core.nodes import ExecutionContext, JoinNode, Node

if TYPE_CHECKING:  # pragma: no cover
    from ai_spine.local import LocalSpine

__all__ = [
    "echo_graph",
    "sentiment_graph",
    "word_stats_graph",
    "score_sentiment",
    "DEMO_FLOWS",
    "register_demo_flows",
]

POSITIVE_WORDS = frozenset(
    "good great amazing love loved lovely excellent happy wonderful fantastic best awesome "
    "nice like liked enjoy enjoyed brilliant perfect fast helpful delightful superb".split()
)
NEGATIVE_WORDS = frozenset(
    "bad terrible awful hate hated worst poor sad horrible disappointing disappointed broken "
    "slow ugly useless annoying angry boring buggy fail failed failure".split()
)
NEGATORS = frozenset(
    {"not", "never", "no", "isn't", "wasn't", "don't", "doesn't", "didn't"}
)
_WORD = re.compile(r"[a-z']+")


def _text(context: ExecutionContext) -> str:
    content = context.inputs.content
    text = content.get("text") if isinstance(content, dict) else None
    if not isinstance(text, str):
        raise ValueError("input_data.text must be a string")
    return text


def score_sentiment(text: str) -> Dict[str, Any]:
    """Score ``text`` with the word lists; a negator flips the next sentiment word.

    Args:
        text: Any text.

    Returns:
        ``{"text", "score" (-1..1), "label", "positive_words", "negative_words"}``.
    """
    positive: List[str] = []
    negative: List[str] = []
    flip = False
    for word in _WORD.findall(text.lower()):
        if word in NEGATORS:
            flip = True
            continue
        hit_pos, hit_neg = word in POSITIVE_WORDS, word in NEGATIVE_WORDS
        if flip:
            hit_pos, hit_neg = hit_neg, hit_pos
            word = "not " + word
        if hit_pos:
            positive.append(word)
        elif hit_neg:
            negative.append(word)
        flip = False
    total = len(positive) + len(negative)
    score = (len(positive) - len(negative)) / total if total else 0.0
    label = "positive" if score > 0 else "negative" if score < 0 else "neutral"
    return {
        "text": text,
        "score": round(score, 3),
        "label": label,
        "positive_words": positive,
        "negative_words": negative,
    }


class Echo(Node):
    """Returns its input unchanged."""

    async def process(self, context: ExecutionContext) -> Any:
        """Return the input dict."""
        content = context.inputs.content
        return dict(content) if isinstance(content, dict) else {"value": content}


class ScoreSentiment(Node):
    """Scores ``text`` (see :func:`score_sentiment`)."""

    async def process(self, context: ExecutionContext) -> Any:
        """Return the score dict."""
        return score_sentiment(_text(context))


class Act(Node):
    """Adds the ``action`` chosen for one sentiment label."""

    def __init__(self, name: str, action: str) -> None:
        super().__init__(name)
        self.action = action

    async def process(self, context: ExecutionContext) -> Any:
        """Return the score dict with ``action`` added."""
        return dict(context.inputs.content, action=self.action)


class SplitWords(Node):
    """Splits ``text`` into lower-case words."""

    async def process(self, context: ExecutionContext) -> Any:
        """Return ``{"words": [...]}``."""
        return {"words": _WORD.findall(_text(context).lower())}


class CountWords(Node):
    """Counts words."""

    async def process(self, context: ExecutionContext) -> Any:
        """Return ``{"word_count", "unique_words"}``."""
        words = context.inputs.content["words"]
        return {"word_count": len(words), "unique_words": len(set(words))}


class LongestWords(Node):
    """Finds the longest words."""

    async def process(self, context: ExecutionContext) -> Any:
        """Return ``{"longest": [...]}`` (up to three, longest first)."""
        words = sorted(set(context.inputs.content["words"]), key=lambda w: (-len(w), w))
        return {"longest": words[:3]}


class FrequentWords(Node):
    """Finds the most frequent words."""

    async def process(self, context: ExecutionContext) -> Any:
        """Return ``{"most_common": [[word, count], ...]}`` (up to three)."""
        counts = Counter(context.inputs.content["words"])
        return {"most_common": [[w, n] for w, n in counts.most_common(3)]}


class MergeStats(JoinNode):
    """Merges the branches' dicts into one."""

    async def process(self, context: ExecutionContext) -> Any:
        """Return the union of every parent's output."""
        merged: Dict[str, Any] = {}
        for output in context.inputs.content.values():
            merged.update(output or {})
        return merged


def echo_graph() -> Graph:
    """Build the ``echo`` flow: one node returning its input."""
    return Graph(Echo("echo"))


def sentiment_graph() -> Graph:
    """Build the ``sentiment`` flow: score, then branch on the label."""
    score = ScoreSentiment("score")
    score.on(label="positive") >> Act("thank", "thank the customer")
    score.on(label="negative") >> Act("escalate", "escalate to support")
    score.on(label="neutral") >> Act("acknowledge", "acknowledge the message")
    return Graph(score)


def word_stats_graph() -> Graph:
    """Build the ``word_stats`` flow: split, fan out to three branches, join."""
    split = SplitWords("split")
    branches: List[Node] = [
        CountWords("count"),
        LongestWords("longest"),
        FrequentWords("frequent"),
    ]
    split >> branches
    branches >> MergeStats("merge")
    return Graph(split)


#: flow id -> (factory, name, description)
DEMO_FLOWS: Dict[str, "tuple[Callable[[], Graph], str, str]"] = {
    "echo": (echo_graph, "Echo", "Returns its input unchanged."),
    "sentiment": (
        sentiment_graph,
        "Sentiment",
        "Scores input_data.text with a word list and branches on the label.",
    ),
    "word_stats": (
        word_stats_graph,
        "Word statistics",
        "Splits input_data.text into words, computes three statistics in parallel, joins.",
    ),
}


def register_demo_flows(spine: "LocalSpine") -> None:
    """Register every demo flow on ``spine`` (replacing flows with the same ids).

    Args:
        spine: The LocalSpine to add the flows to.
    """
    for flow_id, (factory, name, description) in DEMO_FLOWS.items():
        spine.register_flow(
            flow_id, factory, name=name, description=description, replace=True
        )
