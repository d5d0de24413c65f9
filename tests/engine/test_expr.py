"""The safe expression language of conditional edges."""

from __future__ import annotations

from typing import Any, Dict

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from spark_core.errors import EdgeConditionError, ExpressionError, NodeExecutionError
from spark_core.expr import (
    MAX_SIZE,
    Expression,
    compile_expression,
    evaluate,
)
from spark_core.graphs import Graph
from spark_core.nodes import Node

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


def test_the_old_path_is_the_same_module() -> None:
    import spark_core.expr
    import spark_core.graphs.expr
    from spark_core.graphs.expr import Expression as OldExpression

    assert spark_core.graphs.expr is spark_core.expr
    assert OldExpression is Expression


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


# --------------------------------------------------------------------------- bounds
# Found by a hostile test: an edge condition could freeze a server (round() with a huge
# negative digit count computes 10 ** 20000000) or allocate 500 MB ('%0500000000d' % 1).
# Every expression now runs in bounded time and memory, or raises ExpressionError.

BIG = {
    "outputs": {
        "huge": 10**5000,
        "big": 10**900,
        "inf": float("inf"),
        "text": "x" * 600_000,
        "items": [0] * 600_000,
        "fmt": "%0500000000d",
    }
}


@pytest.mark.parametrize(
    "text",
    [
        "round(1, -20000000) == 0",
        "round(1.5, 20000000)",
        "round($.outputs.big, -2000)",
        "'%0500000000d' % 1",
        "'%s' % 'x'",
        "$.outputs.fmt % 1",
        "$.outputs.text % []",
        "int('" + "9" * 1200 + "')",
        "$.outputs.big * $.outputs.big",
        "$.outputs.huge + 1",
        "-$.outputs.huge // 7",
        "str($.outputs.huge)",
        "abs($.outputs.huge) > 0",
        "1" + "0" * 1200 + " * 2",
        "$.outputs.text + $.outputs.text",
        "$.outputs.items + $.outputs.items",
        "str([$.outputs.text, $.outputs.text])",
        "lower([$.outputs.items, $.outputs.items])",
        "str([$.outputs.huge])",
    ],
)
def test_hostile_expressions_are_refused_not_computed(text: str) -> None:
    with pytest.raises(ExpressionError):
        evaluate(text, BIG)


def test_a_refused_expression_is_also_an_edge_condition_error() -> None:
    # Callers that catch a condition's run-time failure keep catching this one.
    with pytest.raises(EdgeConditionError, match="round"):
        evaluate("round(1, -20000000) == 0", ROOT)


class _Emit(Node):
    def process(self, context: Any) -> Dict[str, Any]:
        return {"digits": -20000000}


class _Never(Node):
    def process(self, context: Any) -> Dict[str, Any]:
        raise AssertionError("the edge must not fire")


def test_a_hostile_edge_condition_fails_its_node_instead_of_freezing_the_run() -> None:
    src = _Emit(name="src")
    src.on(expr="round(1, $.outputs.digits) == 0") >> _Never(name="t")
    with pytest.raises(NodeExecutionError, match="src -> t.*round") as info:
        Graph(start=src).run_sync()
    assert isinstance(info.value.__cause__, EdgeConditionError)


@pytest.mark.parametrize(
    "text",
    [
        "float($.outputs.big)",
        "int($.outputs.inf)",
        "round($.outputs.inf)",
        "$.outputs.big / 3",
        "0 + [0, $.outputs.huge]",
        "float($.outputs.text)",
    ],
)
def test_failures_on_huge_values_are_typed_errors_with_short_messages(
    text: str,
) -> None:
    with pytest.raises(EdgeConditionError) as info:
        evaluate(text, BIG)
    assert len(str(info.value)) < 500


@pytest.mark.parametrize(
    "text, expected",
    [
        ("round(1234, -2)", 1200),
        ("round(2.675, 2)", 2.67),
        ("round(0.5)", 0),
        ("round(1, -1000)", 0),
        ("17 % 5 + 7.5 % 2", 3.5),
        ("$.outputs.big > 10", True),
        ("$.outputs.big == $.outputs.big", True),
        ("len($.outputs.text) + len(lower($.outputs.text))", 1_200_000),
        ("'x' in $.outputs.text", True),
        ("int('" + "9" * 999 + "') > 0", True),
    ],
)
def test_ordinary_arithmetic_and_texts_still_work(text: str, expected: Any) -> None:
    assert evaluate(text, BIG) == expected


def _built(value: Any) -> int:
    """Characters, items and digits of what an evaluation made (the inputs not counted)."""
    seen = {id(v) for v in BIG["outputs"].values()}
    total, stack = 0, [value]
    while stack:
        item = stack.pop()
        if id(item) in seen:
            continue
        seen.add(id(item))
        if isinstance(item, int) and not isinstance(item, bool):
            total += item.bit_length() // 3 + 1
        elif isinstance(item, (str, list)):
            total += len(item)
            stack.extend(item if isinstance(item, list) else ())
        else:
            total += 1
    return total


_leaves = st.one_of(
    st.integers(-(10**6), 10**6).map(str),
    st.integers(0, 1500).map(lambda n: "1" + "0" * n),
    st.sampled_from(["0.5", "1e308", "-2.5", "true", "null", "[1, 'a']"]),
    st.sampled_from(["'%0999999999d'", "'%s%s'", "'abc'", "'9' + '9'", "''"]),
    st.sampled_from(["$.outputs." + key for key in BIG["outputs"]]),
)


def _grow(inner: Any) -> Any:
    unary = st.sampled_from(["len", "abs", "int", "float", "str", "bool", "round"])
    binary = st.sampled_from(["+", "-", "*", "/", "//", "%", "==", "<", "in", "and"])
    return st.one_of(
        st.tuples(unary, inner).map(lambda t: f"{t[0]}({t[1]})"),
        st.tuples(inner, st.integers(-(10**9), 10**9)).map(
            lambda t: f"round({t[0]}, {t[1]})"
        ),
        st.tuples(st.sampled_from(["min", "max"]), inner, inner).map(
            lambda t: f"{t[0]}({t[1]}, {t[2]})"
        ),
        st.tuples(inner, binary, inner).map(lambda t: f"({t[0]} {t[1]} {t[2]})"),
        st.tuples(inner, inner).map(lambda t: f"[{t[0]}, {t[1]}]"),
        inner.map(lambda e: f"-{e}"),
    )


@settings(max_examples=300, deadline=None)
@given(st.recursive(_leaves, _grow, max_leaves=12))
def test_random_expressions_evaluate_within_bounds_or_raise_typed_errors(
    text: str,
) -> None:
    try:
        value = evaluate(text, BIG)
    except (ExpressionError, EdgeConditionError):
        return
    # What it built fits the language's budget (plus one number per operator at most).
    assert _built(value) <= MAX_SIZE + len(text)
