"""Dataclasses built from the backend's JSON, and the small helpers in ai_spine.utils."""

from __future__ import annotations

import datetime
import logging
from typing import Any, Dict

import pytest

from ai_spine import Agent, BatchResult, Execution, Flow
from ai_spine.exceptions import ExecutionError, ValidationError
from ai_spine.utils import (
    RedactingFilter,
    parse_batch_item,
    parse_datetime,
    redact,
    redact_headers,
    validate_batch_args,
    validate_id,
    validate_json_object,
    validate_positive_number,
)

UTC = datetime.timezone.utc


def test_execution_from_record(payloads: Dict[str, Any]) -> None:
    execution = Execution.from_dict(payloads["execution_completed"])
    assert execution.status == "completed" and execution.is_finished
    assert execution.output_data == {"approved": True, "score": 0.82}
    assert execution.created_at == datetime.datetime(
        2025, 1, 15, 10, 30, 0, 123456, tzinfo=UTC
    )
    assert execution.completed_at == datetime.datetime(
        2025, 1, 15, 10, 30, 4, tzinfo=UTC
    )
    assert execution.raw == payloads["execution_completed"]


def test_execution_from_execute_answer(payloads: Dict[str, Any]) -> None:
    execution = Execution.from_dict(payloads["execute_unknown_flow"])
    assert execution.error_message == "Flow 'no_such_flow' not found"
    assert execution.output_data is None and execution.flow_id == ""
    ran = Execution.from_dict(
        {"execution_id": "e", "status": "running", "result": {"x": 1}}
    )
    assert ran.output_data == {"x": 1} and not ran.is_finished


def test_flow_and_agent(payloads: Dict[str, Any]) -> None:
    flow = Flow.from_dict(payloads["flows"]["flows"][0])
    assert flow.flow_id == "credit_analysis" and flow.nodes[0]["id"] == "scorer"
    assert flow.created_at == datetime.datetime(2025, 1, 1, tzinfo=UTC)
    assert flow.updated_at is None
    agent = Agent.from_dict(payloads["agents"]["agents"][0])
    assert agent.capabilities == ["scoring"] and agent.is_active
    assert agent.created_at is not None and agent.created_at.tzinfo is not None


@pytest.mark.parametrize(
    "cls, data, message",
    [
        (Flow, {"name": "x"}, "missing required field 'flow_id'"),
        (Execution, {"execution_id": None}, "missing required field 'execution_id'"),
        (Agent, [], "needs a dict"),
        (
            Execution,
            {"execution_id": "e", "created_at": "yesterday"},
            "unreadable timestamp",
        ),
        (Execution, {"execution_id": "e", "created_at": 12}, "must be a string"),
    ],
)
def test_from_dict_errors_name_the_problem(cls: Any, data: Any, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        cls.from_dict(data)


def test_parse_datetime_variants() -> None:
    aware = datetime.datetime(
        2025, 1, 1, 12, tzinfo=datetime.timezone(datetime.timedelta(hours=2))
    )
    assert parse_datetime(None) is None and parse_datetime("") is None
    assert parse_datetime("2025-01-01T12:00:00+02:00") == aware
    assert parse_datetime(datetime.datetime(2025, 1, 1)) == datetime.datetime(
        2025, 1, 1, tzinfo=UTC
    )


def test_batch_result_properties() -> None:
    done = BatchResult(0, "f", {"execution_id": "e", "result": {"a": 1}})
    assert done.ok and done.execution_id == "e" and done.result == {"a": 1}
    failed = BatchResult(1, None, None, ExecutionError("boom"))
    assert not failed.ok and failed.execution_id is None and failed.result is None


def test_validate_helpers() -> None:
    assert validate_id("flow-1.v2:x@y", "flow_id") == "flow-1.v2:x@y"
    assert validate_json_object({"a": [1, None]}, "input_data") == {"a": [1, None]}
    assert validate_positive_number(0, "offset", allow_zero=True) == 0.0
    with pytest.raises(ValidationError, match="must be finite"):
        validate_positive_number(float("inf"), "timeout")
    with pytest.raises(
        ValidationError, match="timeout must be finite, got an int too large"
    ):
        validate_positive_number(10**400, "timeout")
    with pytest.raises(ValidationError, match="agent_config must not be empty"):
        validate_json_object({}, "agent_config", allow_empty=False)


def test_validate_batch_args_returns_the_items_as_a_list() -> None:
    assert validate_batch_args((x for x in "ab"), 1, 1, 0.5) == ["a", "b"]
    assert validate_batch_args([], 3, 300, 2) == []


@pytest.mark.parametrize(
    "items, numbers, message",
    [
        ("text", (1, 1, 1), "not a single str/dict"),
        (b"raw", (1, 1, 1), "not a single str/dict"),
        ({"flow_id": "f", "input_data": {}}, (1, 1, 1), "not a single str/dict"),
        (42, (1, 1, 1), "items must be iterable, got int"),
        ([], (0, 1, 1), "concurrency must be > 0"),
        ([], (1.5, 1, 1), "concurrency must be an int"),
        ([], (1, 0, 1), "wait_timeout must be > 0"),
        ([], (1, 1, -1), "interval must be > 0"),
    ],
)
def test_validate_batch_args_refuses(items: Any, numbers: Any, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        validate_batch_args(items, *numbers)


def test_parse_batch_item_shapes() -> None:
    assert parse_batch_item({"flow_id": "f", "input_data": {"a": 1}}) == (
        "f",
        {"a": 1},
        None,
    )
    assert parse_batch_item(
        {"flow_id": "f", "input_data": {}, "metadata": {"m": 1}}
    ) == (
        "f",
        {},
        {"m": 1},
    )
    assert parse_batch_item(("f", {"a": 1})) == ("f", {"a": 1}, None)
    assert parse_batch_item(["f", "kept as given"]) == ("f", "kept as given", None)


@pytest.mark.parametrize(
    "item, message",
    [
        ({"input_data": {}}, "needs 'flow_id' and 'input_data'"),
        ({"flow_id": "f"}, "needs 'flow_id' and 'input_data'"),
        (("f", {}, {}), "got tuple"),
        (42, "got int"),
        ((7, {}), "flow_id must be a string, got int"),
        ({"flow_id": None, "input_data": {}}, "flow_id must be a string, got NoneType"),
    ],
)
def test_parse_batch_item_refuses(item: Any, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        parse_batch_item(item)


def test_redaction() -> None:
    assert redact("Authorization: Bearer abc123") == "Authorization: ***"
    assert redact("use bearer xyz now") == "use bearer *** now"
    assert redact('{"api_key": "k1"}') == '{"api_key": "***"}'
    assert redact("secret is hunter22", ["hunter22"]) == "secret is ***"
    assert redact_headers({"Authorization": "Bearer x", "Accept": "a"}) == {
        "Authorization": "***",
        "Accept": "a",
    }


def test_redacting_filter_keeps_clean_records_untouched() -> None:
    record = logging.LogRecord(
        "ai_spine", logging.INFO, "f", 1, "plain %s", ("text",), None
    )
    assert RedactingFilter().filter(record)
    assert record.getMessage() == "plain text"
    clean = logging.LogRecord("ai_spine", logging.INFO, "f", 1, "no args", None, None)
    assert RedactingFilter().filter(clean) and clean.msg == "no args"
