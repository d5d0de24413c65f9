"""The safe expression language of conditional edges."""

from __future__ import annotations

from typing import Any, Dict

import pytest
from hypothesis import given
from hypothesis import strategies as st

from spark_core.errors import EdgeConditionError, ExpressionError
from spark_core.graphs.expr import Expression, compile_expression, evaluate

ROOT: Dict[str, Any] = {
    "outputs": {
        "score": 0.7,
        "label": "spam",
        "tags": ["a", "b"],
        "nested": {"deep": {"value": 3}},
        "count": 4,
        "flag": True,
        "none": None,
    }
}


@pytest.mark.parametrize(
    "text, expected",
    [
        ("$.outputs.score > 0.5", True),
        ("$.outputs.score >= 0.7 and $.outputs.score < 1", True),
        ("outputs.score > 0.5", True),  # bare names read from the root
        ("$['outputs']['label'] == 'spam'", True),
        ('$.outputs.label != "ham"', True),
        ("$.outputs.tags[1] == 'b'", True),
        ("$.outputs.tags[5]", None),
        ("'a' in $.outputs.tags", True),
        ("'z' not in $.outputs.tags", True),
        ("$.outputs.nested.deep.value * 2 + 1", 7),
        ("$.outputs.count // 3 + $.outputs.count % 3", 2),
        ("-$.outputs.count", -4),
        ("not $.outputs.flag", False),
        ("$.outputs.flag or false", True),
        ("$.outputs.missing", None),
        ("$.outputs.missing.deeper", None),
        ("$.outputs.missing == null", True),
        ("$.outputs.none is None", True),
        (
            "$.outputs.missing > 0.5",
            False,
        ),  # mismatched ordering is false, not an error
        ("len($.outputs.tags) == 2", True),
        ("lower('ABC') == 'abc' and upper('a') == 'A'", True),
        ("max(1, $.outputs.count) == 4 and abs(-2) == 2", True),
        ("'yes' if $.outputs.score > 0.5 else 'no'", "yes"),
        ("[1, 2] == [1, 2]", True),
        ("1 < $.outputs.count < 5", True),
        ("'$' == '$'", True),  # a dollar inside a string literal stays a dollar
        ("true and not false and null == None", True),
    ],
)
def test_evaluates(text: str, expected: Any) -> None:
    assert evaluate(text, ROOT) == expected


@pytest.mark.parametrize(
    "text",
    [
        "__import__('os').system('echo hi')",
        "$.outputs.__class__",
        "$.outputs._private",
        "().__class__.__bases__",
        "open('x')",
        "$.outputs.label.upper()",
        "[x for x in $.outputs.tags]",
        "lambda: 1",
        "2 ** 100",
        "$.outputs.tags[0:1]",
        "{'a': 1}",
        "len(x=1)",
        "a = 1",
        "",
        "   ",
        "$.outputs.score >",
        "x" * 3000,
        "b'bytes'",
        "-" * 1900 + "1",
        "(" * 300 + "1" + ")" * 300,
        "not " * 400 + "true",
        "1 ==\x00 1",
    ],
)
def test_rejects_anything_outside_the_grammar(text: str) -> None:
    with pytest.raises(ExpressionError):
        Expression(text)


def test_runtime_errors_are_typed() -> None:
    with pytest.raises(EdgeConditionError):
        evaluate("1 / 0", ROOT)
    with pytest.raises(EdgeConditionError, match="numbers"):
        evaluate("'a' * 1000000000", ROOT)
    with pytest.raises(EdgeConditionError):
        evaluate("int('x')", ROOT)
    with pytest.raises(EdgeConditionError):
        evaluate("$.outputs.label - 1", ROOT)


def test_compile_once_evaluate_many() -> None:
    expr = compile_expression("$.outputs.n > 2")
    assert [expr.evaluate({"outputs": {"n": n}}) for n in range(5)] == [
        False,
        False,
        False,
        True,
        True,
    ]
    assert repr(expr) == "Expression('$.outputs.n > 2')"


@given(st.text(max_size=60))
def test_arbitrary_text_never_escapes(text: str) -> None:
    # Any input either compiles within the grammar or is refused with ExpressionError;
    # evaluating a compiled one only ever raises EdgeConditionError.
    try:
        expr = Expression(text)
    except ExpressionError:
        return
    try:
        expr.evaluate(ROOT)
    except EdgeConditionError:
        pass


@given(st.integers(), st.integers())
def test_arithmetic_matches_python(a: int, b: int) -> None:
    root = {"outputs": {"a": a, "b": b}}
    assert evaluate("$.outputs.a + $.outputs.b", root) == a + b
    assert evaluate("$.outputs.a < $.outputs.b", root) == (a < b)
