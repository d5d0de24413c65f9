"""The demo flows ``ai-spine serve --demo`` registers, run in process."""

from __future__ import annotations

from typing import Any, Dict, Iterator

import pytest

from ai_spine.demo import DEMO_FLOWS, register_demo_flows, score_sentiment
from ai_spine.exceptions import ExecutionError
from ai_spine.local import LocalSpine


@pytest.fixture
def demo() -> Iterator[LocalSpine]:
    spine = LocalSpine()
    register_demo_flows(spine)
    yield spine
    spine.close()


def run(spine: LocalSpine, flow_id: str, data: Dict[str, Any]) -> Dict[str, Any]:
    started = spine.execute_flow(flow_id, data)
    return dict(spine.wait_for_execution(started["execution_id"], 10)["result"])


def test_every_demo_flow_is_registered_with_its_name(demo: LocalSpine) -> None:
    flows = {f["flow_id"]: f for f in demo.list_flows()}
    assert list(flows) == list(DEMO_FLOWS)
    assert flows["sentiment"]["name"] == "Sentiment"
    register_demo_flows(demo)  # again: replaces, never duplicates
    assert [f["flow_id"] for f in demo.list_flows()] == list(DEMO_FLOWS)


@pytest.mark.parametrize(
    "text, label, action",
    [
        ("I love it, it is great", "positive", "thank the customer"),
        ("this is slow and buggy", "negative", "escalate to support"),
        ("it arrived on tuesday", "neutral", "acknowledge the message"),
        ("not good at all", "negative", "escalate to support"),
    ],
)
def test_sentiment_branches_on_the_label(
    demo: LocalSpine, text: str, label: str, action: str
) -> None:
    out = run(demo, "sentiment", {"text": text})
    assert (out["label"], out["action"]) == (label, action)


def test_a_negator_flips_the_next_sentiment_word() -> None:
    scored = score_sentiment("not bad, not good")
    assert scored["positive_words"] == ["not bad"]
    assert scored["negative_words"] == ["not good"]
    assert scored["score"] == 0.0


def test_word_stats_joins_three_parallel_branches(demo: LocalSpine) -> None:
    out = run(demo, "word_stats", {"text": "to be or not to be, brevity"})
    assert out["word_count"] == 7 and out["unique_words"] == 5
    assert out["longest"] == ["brevity", "not", "be"]
    assert out["most_common"][:2] == [["to", 2], ["be", 2]]


def test_echo_and_a_missing_text_fail_clearly(demo: LocalSpine) -> None:
    assert run(demo, "echo", {"a": [1]}) == {"a": [1]}
    with pytest.raises(ExecutionError, match="input_data.text must be a string"):
        run(demo, "sentiment", {"txt": "typo"})
