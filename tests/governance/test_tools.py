"""Tools: schema from the signature and docstring, argument validation, invocation."""

from __future__ import annotations

import asyncio
from typing import Any, Dict, List, Literal, Optional

import pytest

from spark_core.governance import Tool, ToolArgumentError, tool
from spark_core.governance.tools import ToolError, as_tool


@tool
def write_file(
    path: str, content: str, overwrite: bool = False, mode: Optional[int] = None
) -> str:
    """Write text to a file.

    Longer explanation that is not part of the summary.

    Args:
        path: Where to write.
        content: The text
            to write.
        overwrite: Replace an existing file.
        mode: Unix permissions.
    """
    return f"{path}:{content}:{overwrite}:{mode}"


def test_decorator_builds_an_openai_style_schema() -> None:
    assert isinstance(write_file, Tool)
    assert write_file.schema() == {
        "name": "write_file",
        "description": "Write text to a file.",
        "parameters": {
            "type": "object",
            "properties": {
                "path": {"type": "string", "description": "Where to write."},
                "content": {"type": "string", "description": "The text to write."},
                "overwrite": {
                    "type": "boolean",
                    "description": "Replace an existing file.",
                    "default": False,
                },
                "mode": {
                    "type": ["integer", "null"],
                    "description": "Unix permissions.",
                    "default": None,
                },
            },
            "required": ["path", "content"],
            "additionalProperties": False,
        },
    }


def test_decorated_function_is_still_callable_directly() -> None:
    assert write_file("a", "b") == "a:b:False:None"
    assert write_file.__name__ == "write_file"


def test_decorator_with_options() -> None:
    @tool(name="pay.send", description="Send money", metadata={"risk_tier": "high"})
    async def send(amount: float, currency: Literal["USD", "EUR"] = "USD") -> dict:
        return {"amount": amount, "currency": currency}

    schema = send.schema()
    assert schema["name"] == "pay.send" and schema["description"] == "Send money"
    assert schema["parameters"]["properties"]["currency"] == {
        "enum": ["USD", "EUR"],
        "type": "string",
        "default": "USD",
    }
    assert send.metadata == {"risk_tier": "high"}
    assert asyncio.run(send.invoke({"amount": 3})) == {"amount": 3, "currency": "USD"}


def test_container_and_any_types() -> None:
    def f(  # type: ignore[no-untyped-def]
        tags: List[str], extra: Dict[str, int], anything: Any, untyped, **kw: Any
    ) -> None:
        """F."""

    params = Tool(f).parameters
    assert params["properties"]["tags"] == {
        "type": "array",
        "items": {"type": "string"},
    }
    assert params["properties"]["extra"] == {
        "type": "object",
        "additionalProperties": {"type": "integer"},
    }
    assert (
        params["properties"]["anything"] == {} and params["properties"]["untyped"] == {}
    )
    assert "additionalProperties" not in params  # **kw accepts extra arguments


@pytest.mark.parametrize(
    "arguments, message",
    [
        ({"content": "x"}, r"missing required argument\(s\) \['path'\]"),
        (
            {"path": "a", "content": "x", "colour": 1},
            r"unexpected argument\(s\) \['colour'\]",
        ),
        ({"path": 1, "content": "x"}, "argument 'path' must be string, got int"),
        (
            {"path": "a", "content": "x", "overwrite": "yes"},
            "'overwrite' must be boolean",
        ),
        ({"path": "a", "content": "x", "mode": True}, "'mode' must be"),
        (["a"], "arguments must be a mapping"),
    ],
)
def test_validation_errors_name_the_argument(arguments: Any, message: str) -> None:
    with pytest.raises(ToolArgumentError, match=message) as info:
        write_file.validate(arguments)
    assert "write_file" in str(info.value)


def test_validation_error_never_shows_the_value() -> None:
    with pytest.raises(ToolArgumentError) as info:
        write_file.validate({"path": "sk-secret-value-123456789", "content": 5})
    assert "sk-secret" not in str(info.value)


def test_numbers_nullables_and_arrays_validate() -> None:
    def f(x: float, items: List[int], maybe: Optional[str] = None) -> None:
        """F."""

    t = Tool(f)
    assert t.validate({"x": 1, "items": [1, 2]}) == {"x": 1, "items": [1, 2]}
    assert t.validate({"x": 1.5, "items": [], "maybe": None})["maybe"] is None
    with pytest.raises(ToolArgumentError):
        t.validate({"x": 1, "items": [1, "2"]})


def test_sync_tools_run_in_a_thread_and_async_tools_are_awaited() -> None:
    import threading

    seen: List[str] = []

    @tool
    def where() -> str:
        """Where."""
        seen.append(threading.current_thread().name)
        return "done"

    async def main() -> str:
        return await where.invoke({})

    assert asyncio.run(main()) == "done"
    assert seen and seen[0] != threading.main_thread().name


def test_invalid_tool_definitions() -> None:
    with pytest.raises(ToolError, match="invalid tool name"):
        Tool(lambda: None, name="has space")
    with pytest.raises(ToolError, match="callable"):
        as_tool(42)
    assert as_tool(write_file) is write_file
    assert as_tool(len).name == "len"
