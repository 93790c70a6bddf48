"""The rule language: what compiles, what it means, where errors point, and the request names."""

from __future__ import annotations

import ast
import operator
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gexdaemon.core.errors import InvalidInput
from gexdaemon.core.models import GEXDataType, Origin, PriorityRequest, PriorityRule
from gexdaemon.core.rules import (
    DATA_TYPES,
    MAX_CONDITION_LENGTH,
    MAX_DEPTH,
    MAX_NODES,
    ORIGINS,
    REQUEST_NAMES,
    RuleConditionError,
    compile_condition,
    request_names,
)
from gexdaemon.core.settings import SeedRule, Settings
from tests.conftest import FIXED_NOW

SEED_INDEX = "data_type == 'real_time' and market_symbol in ['NDX', 'SPX']"
SEED_VOLUME = "open_interest > 10000 and volume > 5000"


def holds(text: str, **names: object) -> bool:
    return compile_condition(text).evaluate(names)


def refused(text: str) -> RuleConditionError:
    with pytest.raises(RuleConditionError) as exc:
        compile_condition(text)
    return exc.value


# --- the seed's two examples -----------------------------------------------------------


def test_the_seed_examples_compile_and_mean_what_they_say() -> None:
    assert holds(SEED_INDEX, data_type="real_time", market_symbol="SPX")
    assert holds(SEED_INDEX, data_type="real_time", market_symbol="NDX")
    assert not holds(SEED_INDEX, data_type="historical", market_symbol="SPX")
    assert not holds(SEED_INDEX, data_type="real_time", market_symbol="RUT")
    assert holds(SEED_VOLUME, open_interest=20_000, volume=6_000)
    assert not holds(SEED_VOLUME, open_interest=20_000, volume=5_000)
    assert not holds(SEED_VOLUME, open_interest=20_000)  # volume missing: None, false
    assert not holds(SEED_VOLUME)


def test_the_configured_seed_rules_compile() -> None:
    for seed in Settings().rules.seed:
        compile_condition(seed.condition)


# --- meaning ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "names", "expected"),
    [
        ("volume > 5", {"volume": 6}, True),
        ("volume >= 6", {"volume": 6}, True),
        ("volume < 6", {"volume": 6}, False),
        ("volume <= 6.0", {"volume": 6}, True),
        ("volume == 6", {"volume": 6.0}, True),
        ("volume != 6", {"volume": 7}, True),
        ("5 < volume", {"volume": 6}, True),  # a literal on the left is flipped correctly
        ("5 > volume", {"volume": 6}, False),
        ("6 <= volume", {"volume": 6}, True),
        ("0 < volume < 10", {"volume": 5}, True),
        ("0 < volume < 10", {"volume": 10}, False),
        ("0 <= volume <= 10", {"volume": 10}, True),
        ("0 < volume < oi", {"volume": 5, "oi": 6}, True),  # a general chain
        ("0 < volume < oi", {"volume": 5, "oi": 5}, False),
        ("volume > oi > 3", {"volume": 9, "oi": 4}, True),
        ("volume * 2 > oi", {"volume": 5, "oi": 9}, True),
        ("volume / oi > 0.5", {"volume": 6, "oi": 10}, True),
        ("volume / oi > 0.5", {"volume": 6, "oi": 0}, False),  # division by zero: no value
        ("volume - oi == -4", {"volume": 6, "oi": 10}, True),
        ("-volume < -5", {"volume": 6}, True),
        ("age_s > 60 * 5", {"age_s": 301.0}, True),
        ("age_s > 60 * 5", {"age_s": 300.0}, False),
        ("x in [1, 2, 3]", {"x": 2}, True),
        ("x not in [1, 2, 3]", {"x": 4}, True),
        ("x in (-1, 2.5)", {"x": -1}, True),
        ("x in {'a', 'b'}", {"x": "b"}, True),
        ("'0dte' in tags", {"tags": ["0dte", "weekly"]}, True),
        ("'0dte' not in tags", {"tags": ["weekly"]}, True),
        ("'cboe' in source_host", {"source_host": "cdn.cboe.com"}, True),
        ("tag in tags", {"tag": "a", "tags": ["a"]}, True),
        ("'k' in obj", {"obj": {"k": 1}}, True),
        ("flag", {"flag": True}, True),
        ("flag", {"flag": 1}, False),  # a bare name holds only for the boolean true
        ("flag", {"flag": "yes"}, False),
        ("not flag", {}, True),
        ("flag == False", {"flag": False}, True),
        ("True", {}, True),
        ("False", {}, False),
        ("x is None", {}, True),
        ("x is None", {"x": 0}, False),
        ("x is not None", {"x": 0}, True),
        ("a > 1 and b > 1 and c > 1", {"a": 2, "b": 2, "c": 2}, True),
        ("a > 1 and b > 1 and c > 1", {"a": 2, "b": 2, "c": 0}, False),
        ("a > 1 or b > 1 or c > 1", {"c": 2}, True),
        ("a > 1 or b > 1 or c > 1", {}, False),
        ("not (a > 1 or b > 1)", {"a": 0}, True),
        ("(a > 1 or b > 1) and c == 'x'", {"b": 3, "c": "x"}, True),
        ("ny_date >= '2026-11-01'", {"ny_date": "2026-11-26"}, True),
    ],
)
def test_conditions_mean_what_they_say(text: str, names: dict[str, object], expected: bool) -> None:
    assert compile_condition(text).evaluate(names) is expected


@pytest.mark.parametrize(
    "text",
    [
        "volume > 5",
        "volume >= 5",
        "volume < 5",
        "volume <= 5",
        "volume == 5",
        "volume != 5",
        "volume in [5]",
        "volume not in [5]",
        "0 < volume < 10",
        "volume * 2 > 1",
        "'a' in volume",
        "'a' not in volume",
        "volume < other",
    ],
)
def test_every_comparison_with_a_missing_name_is_false(text: str) -> None:
    assert not holds(text)
    assert not holds(text, volume=None)


def test_not_turns_a_false_comparison_with_a_missing_name_true() -> None:
    # Documented: `not (volume > 5)` holds for a request without volume.
    assert holds("not (volume > 5)")


@pytest.mark.parametrize(
    ("text", "names"),
    [
        ("volume > 5", {"volume": "lots"}),
        ("volume < 5", {"volume": [1, 2]}),
        ("volume >= 5", {"volume": {"a": 1}}),
        ("0 < volume < 5", {"volume": "x"}),
        ("volume > other", {"volume": 3, "other": "3"}),
        ("volume * 2 > 5", {"volume": "aaaa"}),
        ("volume * 2 > 5", {"volume": True}),
        ("volume / 2 > 5", {"volume": 10**400}),  # too large for a float: no value
        ("volume in [1, 2]", {"volume": [1]}),  # unhashable
        ("tag in tags", {"tag": [1], "tags": {"a": 1}}),
        ("'a' in tags", {"tags": 5}),
        ("1 in tags", {"tags": "abc"}),
    ],
)
def test_comparisons_that_cannot_be_made_are_false_not_errors(
    text: str, names: dict[str, object]
) -> None:
    assert compile_condition(text).evaluate(names) is False


def test_deeply_nested_metadata_does_not_escape_evaluate() -> None:
    deep: list[object] = []
    other: list[object] = []
    for _ in range(100_000):
        deep = [deep]
        other = [other]
    # Comparing the two overflows the interpreter's stack; evaluate still says False.
    assert compile_condition("a == b").evaluate({"a": deep, "b": other}) is False


# --- refusals with position and reason -------------------------------------------------


def test_an_error_points_at_the_offending_part() -> None:
    err = refused("data_type == 'real_time' and len(x) > 1")
    assert (err.line, err.column) == (1, 30)
    assert err.explanation == "calls are not allowed (column 30): `len(x)`"
    assert isinstance(err, InvalidInput)
    assert err.code == "rule_condition_invalid"
    assert err.details[0].path == "condition"
    assert "docs/rules.md" in err.message


def test_positions_count_characters_lines_and_leading_blanks() -> None:
    err = refused("(volume > 1\n and len(x))")
    assert (err.line, err.column) == (2, 6)
    assert "line 2, column 6" in err.explanation
    err = refused("é_volume > 1 and x.y")
    assert err.column == 1  # the non-ASCII name comes first
    err = refused("'é' == a and x.y")
    assert err.column == 14  # characters, not UTF-8 bytes
    err = refused("   volume > 1 and x.y")
    assert err.column == 19
    err = refused("volume = 1")
    assert err.column == 8
    assert "==" in err.reason


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("", "empty"),
        ("   ", "empty"),
        ("volume >", "not a valid condition"),
        ("volume\n > 1", "wrapped in ( )"),
        ("data_type == 'realtime'", "'realtime' can never match"),
        ("data_type in ['real_time', 'rt']", "'rt' can never match"),
        ("origin == 'web'", "can never match"),
        ("ny_weekday == 'monday'", "can never match"),
        ("ny_weekday > 'mon'", "no useful order"),
        ("market_symbol == 'spx'", "write 'SPX'"),
        ("source_host == 'CDN.cboe.com'", "lower case"),
        ("ny_date == '2026-1-5'", "YYYY-MM-DD"),
        ("data_type == 3", "is text"),
        ("age_s > '60'", "is a number"),
        ("age_s == data_type", "is a number and `data_type` is not"),
        ("market_symbol * 2 > 1", "arithmetic works on numbers only"),
        ("volume * 2 > 'a'", "compare it with a number"),
        ("x == None", "is None"),
        ("None != x", "is None"),
        ("x in [None, 1]", "None in a list"),
        ("1 < 2", "two constants"),
        ("1 in [1, 2]", "two constants"),
        ("x is 3", "`is` only tests for a missing value"),
        ("data_type is None", "always present"),
        ("x > True", "cannot be ordered"),
        ("x in 'SPX NDX'", "needs a list"),
        ("x in 3", "needs a list"),
        ("x in age_s", "is a number"),
        ("x in x", "always in itself"),
        ("x in [[1]]", "lists inside lists"),
        ("x in [y]", "literals"),
        ("x in [y + 1]", "literals, not names"),
        ("x < y in [1]", "cannot be chained"),
        ("data_type", "not true/false"),
        ("5", "not a single value"),
        ("'text'", "not a single value"),
        ("volume + 1", "arithmetic gives a number"),
        ("[1, 2]", "only allowed after `in`"),
        ("x == [1]", "only allowed after `in`"),
        ("(x > 1) == True", "results of tests"),
        ("x == not y", "not a valid condition"),
        ("x + (y > 1) > 2", "not on tests"),
        ("x / 0 > 1", "division by zero"),
        ("x > 1 / (2 - 2)", "division by zero"),
        ("x > 1e15 * 10", "between -1e15 and 1e15"),
        ("x > 10000000000000000", "between -1e15 and 1e15"),
        ("x % 2 == 0", "`%` is not allowed"),
        ("x // 2 == 0", "`//` is not allowed"),
        ("x ** 2 > 0", "powers can take unbounded time"),
        ("~x > 0", "`~` is not allowed"),
        ("requested_at > '2026'", "age_s, ny_hour"),
        ("priority_score > 0.5", "what rules produce"),
        ("metadata == 1", "metadata keys are names themselves"),
        ("true", "write True"),
        ("x == null", "write None"),
        ("_hidden > 1", "starting with '_'"),
        ("a" * 65 + " > 1", "longer than 64"),
        ("ｖolume > 1", "ASCII"),
    ],
)
def test_refusals_explain_themselves(text: str, fragment: str) -> None:
    err = refused(text)
    assert fragment in err.explanation, err.explanation
    assert err.line >= 1 and err.column >= 1


def test_length_node_and_depth_limits() -> None:
    longest = "x == '" + "a" * (MAX_CONDITION_LENGTH - 7) + "'"
    assert len(longest) == MAX_CONDITION_LENGTH
    assert compile_condition(longest).evaluate({"x": "a" * (MAX_CONDITION_LENGTH - 7)})
    err = refused(longest + " ")
    assert "2001 characters long" in err.explanation
    assert err.column == MAX_CONDITION_LENGTH + 1
    many = "x in [" + ", ".join("1" for _ in range(MAX_NODES)) + "]"
    assert len(many) <= MAX_CONDITION_LENGTH
    assert f"more than {MAX_NODES} parts" in refused(many).explanation
    fits = "x in [" + ", ".join("1" for _ in range(MAX_NODES - 10)) + "]"
    assert compile_condition(fits).evaluate({"x": 1})
    deep = "(" * (MAX_DEPTH + 1) + "x > 1" + ")" * (MAX_DEPTH + 1)
    compile_condition(deep)  # parentheses alone add no depth
    nested = "not " * (MAX_DEPTH + 1) + "x"
    assert "nested more than" in refused(nested).explanation
    compile_condition("not " * (MAX_DEPTH - 2) + "x")


def test_models_and_config_refuse_what_the_compiler_refuses() -> None:
    with pytest.raises(InvalidInput) as exc:
        PriorityRule.parse(
            {
                "name": "bad",
                "condition": "len(market_symbol) > 2",
                "priority_score": 0.5,
                "created_at": FIXED_NOW,
                "updated_at": FIXED_NOW,
            }
        )
    assert exc.value.details[0].path == "condition"
    assert exc.value.details[0].message == "calls are not allowed (column 1): `len(market_symbol)`"
    with pytest.raises(ValueError, match="calls are not allowed"):
        SeedRule(name="bad", condition="__import__('os')", priority_score=0.5)


def test_compiling_is_cached_per_text() -> None:
    text = "volume > 12345 and desk == 'cache test'"
    assert compile_condition(text) is compile_condition(text)
    assert compile_condition(text) is not compile_condition(text + " ")  # different text


def test_names_metadata_names_and_notes() -> None:
    c = compile_condition(SEED_INDEX)
    assert c.names == {"data_type", "market_symbol"}
    assert c.metadata_names == frozenset()
    assert c.notes == ()
    c = compile_condition(SEED_VOLUME)
    assert c.metadata_names == {"open_interest", "volume"}
    assert "`open_interest`, `volume` are not request fields" in c.notes[0]
    c = compile_condition("data_typ == 'real_time'")
    assert any("`data_typ` looks like the request field `data_type`" in n for n in c.notes)


def test_a_non_text_condition_is_refused_with_the_same_error_type() -> None:
    with pytest.raises(RuleConditionError, match="must be text"):
        compile_condition(42)  # type: ignore[arg-type]


def test_the_value_lists_match_the_domain_model() -> None:
    assert set(DATA_TYPES) == {t.value for t in GEXDataType}
    assert PriorityRequest.model_fields["origin"].annotation is Origin
    assert set(ORIGINS) == {o.value for o in Origin}


# --- the guard used to index rules -----------------------------------------------------


@pytest.mark.parametrize(
    ("text", "guard"),
    [
        (SEED_INDEX, ("market_symbol", frozenset({"NDX", "SPX"}))),
        ("data_type == 'snapshot' and volume > 1", ("data_type", frozenset({"snapshot"}))),
        ("'SPX' == market_symbol", ("market_symbol", frozenset({"SPX"}))),
        ("desk == 'vol'", ("desk", frozenset({"vol"}))),
        ("desk == 'vol' and data_type == 'historical'", ("data_type", frozenset({"historical"}))),
        ("x in [-1, 2]", None),  # -1 is an expression, not a literal
        ("desk == 'vol' or volume > 1", None),
        ("not (desk == 'vol')", None),
        ("desk != 'vol'", None),
        (SEED_VOLUME, None),
    ],
)
def test_guards(text: str, guard: tuple[str, frozenset[object]] | None) -> None:
    assert compile_condition(text).guard == guard


# --- differential test against a direct reading of the documented semantics ------------


def reference(node: ast.AST, names: Mapping[str, object]) -> Any:
    """docs/rules.md, read literally, on the AST (slow, obvious, independent of the compiler)."""
    if isinstance(node, ast.Expression):
        return reference(node.body, names) is True
    if isinstance(node, ast.BoolOp):
        results = (reference(v, names) is True for v in node.values)
        return all(results) if isinstance(node.op, ast.And) else any(results)
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
        return reference(node.operand, names) is not True
    if isinstance(node, ast.UnaryOp):
        value = number(reference(node.operand, names))
        return None if value is None else -value
    if isinstance(node, ast.BinOp):
        a, b = number(reference(node.left, names)), number(reference(node.right, names))
        if a is None or b is None:
            return None
        if isinstance(node.op, ast.Div):
            return None if b == 0 else a / b
        ops: dict[type[ast.AST], Callable[[float, float], float]] = {
            ast.Add: operator.add,
            ast.Sub: operator.sub,
            ast.Mult: operator.mul,
        }
        return ops[type(node.op)](a, b)
    if isinstance(node, ast.Compare):
        left = reference(node.left, names)
        for op, right_node in zip(node.ops, node.comparators, strict=True):
            if isinstance(op, ast.Is | ast.IsNot):
                return (left is None) == isinstance(op, ast.Is)
            right = reference(right_node, names)
            if left is None or right is None:
                return False
            try:
                if isinstance(op, ast.In | ast.NotIn):
                    if isinstance(right, str) and not isinstance(left, str):
                        return False
                    if not isinstance(right, str | list | tuple | dict | frozenset):
                        return False
                    inside = left in right
                    ok = inside if isinstance(op, ast.In) else not inside
                else:
                    cmp = {
                        ast.Eq: operator.eq,
                        ast.NotEq: operator.ne,
                        ast.Lt: operator.lt,
                        ast.LtE: operator.le,
                        ast.Gt: operator.gt,
                        ast.GtE: operator.ge,
                    }[type(op)]
                    ok = cmp(left, right) is True
            except TypeError:
                return False
            if not ok:
                return False
            left = right
        return True
    if isinstance(node, ast.Name):
        return names.get(node.id)
    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, ast.List | ast.Tuple | ast.Set):
        return frozenset(reference(e, names) for e in node.elts)
    raise AssertionError(f"unexpected node {type(node).__name__}")


def number(value: object) -> float | None:
    if type(value) in (int, float):
        try:
            return float(value)  # type: ignore[arg-type]
        except OverflowError:
            return None
    return None


KEYS = ["a", "b", "tags"]
scalar = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-3, 3),
    st.sampled_from([0.5, -1.5, 2.0]),
    st.sampled_from(["x", "y", "xy", ""]),
)
value = st.one_of(scalar, st.lists(scalar, max_size=3))
literal = st.one_of(
    st.integers(-3, 3).map(str),
    st.sampled_from(["0.5", "2.0", "'x'", "'y'", "'xy'", "True", "False"]),
)
name = st.sampled_from(KEYS)
operand = st.one_of(
    name,
    literal,
    st.builds(
        lambda a, o, b: f"({a} {o} {b})",
        name,
        st.sampled_from("+-*/"),
        st.one_of(name, st.integers(1, 3).map(str)),
    ),
)
comparison = st.one_of(
    st.builds(
        lambda a, o, b: f"{a} {o} {b}",
        operand,
        st.sampled_from(["==", "!=", "<", "<=", ">", ">="]),
        operand,
    ),
    st.builds(
        lambda a, o, b, c: f"{a} {o} {b} {o} {c}",
        operand,
        st.sampled_from(["<", "<="]),
        name,
        operand,
    ),
    st.builds(
        lambda a, o, items: f"{a} {o} [{', '.join(items)}]",
        name,
        st.sampled_from(["in", "not in"]),
        st.lists(literal, min_size=1, max_size=3),
    ),
    st.builds(
        lambda a, o, b: f"{a} {o} {b}",
        st.one_of(name, literal),
        st.sampled_from(["in", "not in"]),
        name,
    ),
    st.builds(lambda a, o: f"{a} {o} None", name, st.sampled_from(["is", "is not"])),
    name,
)
condition = st.recursive(
    comparison,
    lambda inner: st.one_of(
        st.builds(lambda a, o, b: f"({a}) {o} ({b})", inner, st.sampled_from(["and", "or"]), inner),
        inner.map(lambda a: f"not ({a})"),
    ),
    max_leaves=6,
)


@settings(max_examples=400, deadline=None)
@given(text=condition, names=st.dictionaries(name, value, max_size=3))
def test_compiled_conditions_agree_with_the_reference_semantics(
    text: str, names: dict[str, object]
) -> None:
    try:
        compiled = compile_condition(text)
    except RuleConditionError:
        return  # static refusals (constants compared, None literals, ...) are tested above
    tree = ast.parse(text, mode="eval")
    assert compiled.evaluate(names) is reference(tree, names), text
    if compiled.guard is not None and compiled.evaluate(names):
        key, values = compiled.guard
        assert names.get(key) in values


@settings(max_examples=300, deadline=None)
@given(
    low=st.integers(-2, 2),
    high=st.integers(-2, 2),
    ops=st.tuples(st.sampled_from(["<", "<="]), st.sampled_from(["<", "<="])),
    a=st.one_of(st.none(), st.integers(-3, 3), st.sampled_from([-0.5, 1.5, "1"])),
    flipped=st.booleans(),
)
def test_ranges_and_flipped_comparisons_match_python(
    low: int, high: int, ops: tuple[str, str], a: object, flipped: bool
) -> None:
    """The specialised closures (literal on the left, `low < a < high`) against Python itself."""
    cmp = {"<": operator.lt, "<=": operator.le}
    first, second = cmp[ops[0]], cmp[ops[1]]

    def python(check: Callable[[], object]) -> bool:
        if a is None:
            return False
        try:
            return bool(check())
        except TypeError:
            return False

    assert holds(f"{low} {ops[0]} a {ops[1]} {high}", a=a) is python(
        lambda: first(low, a) and second(a, high)
    )
    if flipped:
        assert holds(f"{low} {ops[0]} a", a=a) is python(lambda: first(low, a))
    else:
        assert holds(f"a {ops[1]} {high}", a=a) is python(lambda: second(a, high))


# --- request names ---------------------------------------------------------------------


def names_for(**overrides: Any) -> dict[str, object]:
    data: dict[str, Any] = {
        "data_type": "real_time",
        "market_symbol": "SPX",
        "source_url": "https://CDN.cboe.com/api/x.json",
        "requested_at": datetime(2026, 11, 26, 14, 30, 45, tzinfo=UTC),
        "metadata": {"volume": 10, "data_type": "historical"},
        "origin": "api",
        "reliability_score": 0.75,
        "now": datetime(2026, 11, 26, 14, 31, 0, tzinfo=UTC),
    }
    data.update(overrides)
    return request_names(**data)


def test_request_names_in_winter_and_summer() -> None:
    n = names_for()
    assert n["data_type"] == "real_time"  # a metadata key never overrides a request name
    assert n["volume"] == 10
    assert n["source_host"] == "cdn.cboe.com"
    assert n["age_s"] == 15.0
    assert n["ny_hour"] == pytest.approx(9 + 30 / 60 + 45 / 3600)  # EST: UTC-5
    assert n["ny_minute"] == 570
    assert n["ny_weekday"] == "thu"
    assert n["ny_date"] == "2026-11-26"
    assert n["reliability_score"] == 0.75
    summer = names_for(requested_at=datetime(2026, 7, 3, 3, 15, tzinfo=UTC), now=FIXED_NOW)
    assert summer["ny_hour"] == 23.25  # EDT: UTC-4, the previous New York day
    assert summer["ny_weekday"] == "thu"
    assert summer["ny_date"] == "2026-07-02"
    assert set(REQUEST_NAMES) <= set(names_for())


def test_request_names_edge_cases() -> None:
    future = names_for(now=datetime(2026, 11, 26, 14, 0, tzinfo=UTC))
    assert future["age_s"] == 0.0  # a clock behind the request never gives a negative age
    assert names_for(source_url="file:///data/spx.csv")["source_host"] == ""
    assert names_for(data_type=GEXDataType.SNAPSHOT)["data_type"] == "snapshot"
    only = names_for(wanted=frozenset({"volume"}))
    assert "ny_hour" not in only and "source_host" not in only
    some = names_for(wanted=frozenset({"ny_weekday"}))
    assert some["ny_weekday"] == "thu" and "age_s" not in some
    shifted = names_for(requested_at=datetime(2026, 11, 26, 9, 30, tzinfo=UTC) + timedelta(hours=5))
    assert shifted["ny_minute"] == 570


@settings(max_examples=200, deadline=None)
@given(
    metadata=st.dictionaries(
        st.text(min_size=1, max_size=8),
        st.recursive(
            st.none()
            | st.booleans()
            | st.integers()
            | st.floats(allow_nan=False)
            | st.text(max_size=5),
            lambda inner: (
                st.lists(inner, max_size=3)
                | st.dictionaries(st.text(max_size=3), inner, max_size=3)
            ),
            max_leaves=8,
        ),
        max_size=6,
    )
)
def test_evaluate_always_returns_a_bool(metadata: dict[str, object]) -> None:
    names = names_for(metadata=metadata)
    for text in (
        SEED_INDEX,
        SEED_VOLUME,
        "0 < a < 5",
        "a / b > 1",
        "'x' in a",
        "a in b",
        "a",
        "not a",
    ):
        assert compile_condition(text).evaluate(names) in (True, False)


# --- the same differential test on request names (typed, with their literal rules) -----

REQUEST_TEXT = {
    "market_symbol": ["'SPX'", "'NDX'", "'SP'"],
    "data_type": ["'real_time'", "'historical'"],
    "origin": ["'api'", "'drop'"],
    "source_url": ["'cboe'", "'https://cdn.cboe.com/x.json'", "'csv'"],
    "source_host": ["'cdn.cboe.com'", "'example.org'"],
}
REQUEST_NUMBER = ["age_s", "ny_hour", "reliability_score"]
typed_comparison = st.one_of(
    st.builds(
        lambda key, o, lit: f"{key} {o} {lit}",
        st.sampled_from(["market_symbol", "source_url", "source_host"]),
        st.sampled_from(["==", "!=", "<", ">="]),
        st.sampled_from(["'SPX'", "'cboe'", "'cdn.cboe.com'"]),
    ),
    st.builds(
        lambda key, o, lits: f"{key} {o} [{', '.join(lits)}]",
        st.sampled_from(sorted(REQUEST_TEXT)),
        st.sampled_from(["in", "not in"]),
        st.sampled_from(sorted(REQUEST_TEXT)).flatmap(
            lambda k: st.lists(st.sampled_from(REQUEST_TEXT[k]), min_size=1, max_size=2)
        ),
    ),
    st.builds(
        lambda lit, o, key: f"{lit} {o} {key}",
        st.sampled_from(["'cboe'", "'csv'", "'SP'", "'x'"]),
        st.sampled_from(["in", "not in"]),
        st.sampled_from(["source_url", "market_symbol", "a", "tags"]),
    ),
    st.builds(
        lambda key, o, lit: f"{key} {o} {lit}",
        st.sampled_from(REQUEST_NUMBER),
        st.sampled_from(["==", "!=", "<", "<=", ">", ">="]),
        st.sampled_from(["0", "0.5", "9.5", "60", "-1"]),
    ),
    st.builds(
        lambda lit, o, key: f"{lit} {o} {key}",
        st.sampled_from(["0", "0.5", "60"]),
        st.sampled_from(["<", "<=", ">", ">=", "==", "!="]),
        st.sampled_from(REQUEST_NUMBER),
    ),
    st.builds(
        lambda lo, o1, key, o2, hi: f"{lo} {o1} {key} {o2} {hi}",
        st.sampled_from(["0", "0.5", "9.5"]),
        st.sampled_from(["<", "<="]),
        st.sampled_from(REQUEST_NUMBER),
        st.sampled_from(["<", "<="]),
        st.sampled_from(["1", "16", "120"]),
    ),
    st.builds(
        lambda key, o, other, o2, lit: f"{key} {o} {other} {o2} {lit}",
        st.sampled_from(["age_s", "a", "b"]),
        st.sampled_from(["+", "-", "*", "/"]),
        st.sampled_from(["ny_hour", "b", "2", "0"]),
        st.sampled_from(["<", ">", "==", "!=", "<=", ">="]),
        st.sampled_from(["1", "0.5", "-2", "60"]),
    ),
    st.builds(
        lambda key, o, other: f"{key} {o} {other}",
        st.sampled_from(["age_s", "a", "b", "ny_hour"]),
        st.sampled_from(["<", ">", "==", "!=", "<=", ">="]),
        st.sampled_from(["ny_hour", "b", "-a", "a * 2"]),
    ),
    st.builds(
        lambda key, o, other: f"{key} {o} {other}",
        st.sampled_from(["a", "market_symbol", "'SPX'", "-a", "a / 2"]),
        st.sampled_from(["in", "not in"]),
        st.sampled_from(["source_url", "tags", "b"]),
    ),
    st.builds(
        lambda key, o, lits: f"{key} {o} [{', '.join(lits)}]",
        st.sampled_from(["a", "-a", "a * 2", "a + b"]),
        st.sampled_from(["in", "not in"]),
        st.lists(st.sampled_from(["1", "2.0", "-1", "0", "'x'"]), min_size=1, max_size=3),
    ),
    st.builds(
        lambda key, o: f"{key} {o} None", st.sampled_from(KEYS), st.sampled_from(["is", "is not"])
    ),
    st.sampled_from(["a", "True", "False"]),
)
typed_condition = st.recursive(
    typed_comparison,
    lambda inner: st.one_of(
        st.builds(
            lambda parts, o: f" {o} ".join(f"({p})" for p in parts),
            st.lists(inner, min_size=2, max_size=6),
            st.sampled_from(["and", "or"]),
        ),
        inner.map(lambda a: f"not ({a})"),
    ),
    max_leaves=8,
)
request_values = st.fixed_dictionaries(
    {
        "market_symbol": st.sampled_from(["SPX", "NDX", "SP"]),
        "data_type": st.sampled_from(["real_time", "historical"]),
        "origin": st.sampled_from(["api", "drop"]),
        "source_url": st.sampled_from(
            ["https://cdn.cboe.com/x.json", "file:///tmp/chain.csv", "https://example.org/a"]
        ),
        "source_host": st.sampled_from(["cdn.cboe.com", "example.org", ""]),
        "age_s": st.sampled_from([0.0, 0.5, 30.0, 60.0, 61.5, 3600.0]),
        "ny_hour": st.sampled_from([0.0, 9.5, 10.25, 16.0]),
        "reliability_score": st.sampled_from([0.0, 0.5, 0.99, 1.0]),
    },
    optional=dict.fromkeys(KEYS, value),
)


@settings(max_examples=500, deadline=None)
@given(text=typed_condition, names=request_values)
def test_request_name_conditions_agree_with_the_reference_semantics(
    text: str, names: dict[str, object]
) -> None:
    try:
        compiled = compile_condition(text)
    except RuleConditionError:
        return
    tree = ast.parse(text, mode="eval")
    assert compiled.evaluate(names) is reference(tree, names), text
    assert compiled.test(names) is reference(tree, names), text
    if compiled.guard is not None and compiled.evaluate(names):
        key, values = compiled.guard
        assert names.get(key) in values


@pytest.mark.parametrize(
    ("text", "url", "expected"),
    [
        ("'cboe' in source_url", "https://cdn.cboe.com/x.json", True),
        ("'cboe' in source_url", "https://example.org/x.json", False),
        ("'cboe' not in source_url", "https://cdn.cboe.com/x.json", False),
        ("'cboe' not in source_url", "https://example.org/x.json", True),
    ],
)
def test_a_text_in_the_source_url_is_a_substring_test(text: str, url: str, expected: bool) -> None:
    assert holds(text, source_url=url) is expected


# --- named cases the mutation run asked for ------------------------------------------------


def test_constant_arithmetic_is_folded_to_its_value() -> None:
    assert holds("volume > 4 / 2", volume=3) is True
    assert holds("volume > 4 / 2", volume=2) is False
    assert holds("volume < 10 - 4 * 2", volume=1.5) is True


def test_folding_a_division_by_zero_is_refused_in_plain_words() -> None:
    assert refused("x > 1 / (2 - 2)").reason == "division by zero"


def test_errors_inside_a_conjunction_point_at_their_own_part() -> None:
    err = refused("volume > 1 and market_symbol == 5")
    assert (err.line, err.column) == (1, 16)
    assert err.segment == "market_symbol == 5"
    err = refused("volume > 1 and 5 is None")
    assert (err.line, err.column) == (1, 16)
    assert err.reason == "`is None` applies to a name, for example `volume is None`"


def test_five_alternatives_are_each_tried() -> None:
    text = "a == 1 or a == 2 or a == 3 or a == 4 or a == 5"
    assert [holds(text, a=v) for v in (1, 3, 5, 6)] == [True, True, True, False]


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        (
            "data_type == 5",
            "`data_type` is text; compare it with text, like `data_type == 'historical'`",
        ),
        (
            "market_symbol == 5",
            "`market_symbol` is text; compare it with text, like `market_symbol == 'SPX'`",
        ),
        ("origin == 1", f"`origin` is text; compare it with text, like `origin == {ORIGINS[0]!r}`"),
    ],
)
def test_a_literal_of_the_wrong_kind_is_refused_with_a_working_example(
    text: str, reason: str
) -> None:
    assert refused(text).reason == reason


def test_an_overlong_multi_line_condition_points_at_where_the_limit_falls() -> None:
    text = "(" + "volume == 1 or\n" * 200 + "volume == 2)"
    err = refused(text)
    before = text[:MAX_CONDITION_LENGTH]
    assert err.line == before.count("\n") + 1
    assert err.column == len(before.split("\n")[-1]) + 1
    assert err.line > 1 and err.column > 1


@pytest.mark.parametrize(
    ("part", "reason", "segment"),
    [
        ("volume + 1 == 'x'", "arithmetic gives a number; compare it with a number", None),
        ("market_symbol == age_s", "`market_symbol` is text and `age_s` is not", None),
        (
            "market_symbol == age_s * 2",
            "`market_symbol` is text; it cannot equal a computed number",
            None,
        ),
        ("age_s == market_symbol", "`age_s` is a number and `market_symbol` is not", None),
        (
            "5 == market_symbol",
            "`market_symbol` is text; compare it with text, like `market_symbol == 'SPX'`",
            None,
        ),
        (
            "market_symbol in [5]",
            "`market_symbol` is text; compare it with text, like `market_symbol == 'SPX'`",
            None,
        ),
        ("market_symbol in 5", "`in` needs a list, like `market_symbol in ['SPX', 'NDX']`", None),
        (
            "a in 'SPX NDX'",
            "`in` needs a list here: write `market_symbol in ['SPX', 'NDX']` "
            "(`in 'SPX NDX'` would also match 'SP')",
            None,
        ),
        ("a in 1 + x", "`in` needs a list or a name on its right", None),
        ("a in a", "a name is always in itself", None),
        ("market_symbol in age_s", "`age_s` is a number; `in` needs a list or a text value", None),
        ("data_type + 1 > 2", "`data_type` is text; arithmetic works on numbers only", "data_type"),
        ("5 is None", "`is None` applies to a name, for example `volume is None`", None),
    ],
)
def test_each_refusal_says_exactly_why_and_points_at_its_part(
    part: str, reason: str, segment: str | None
) -> None:
    err = refused(f"volume > 1 and {part}")
    assert err.reason == reason
    assert (err.line, err.column) == (1, 16)
    assert err.segment == (segment or part)


def test_the_metadata_note_names_every_key() -> None:
    assert compile_condition("a > 1 and b > 2").notes[0] == (
        "`a`, `b` are not request fields, so they are read from the request's metadata "
        "(a request without the key never matches)"
    )


@pytest.mark.parametrize(
    ("text", "reason", "where"),
    [
        ("x > 1e16", "numbers must lie between -1e15 and 1e15", (1, 5)),
        ("_hidden > 1", "names starting with '_' are not allowed", (1, 1)),
        ("x == [1]", "a list is only allowed after `in` or `not in`", (1, 6)),
        (
            "a" * 65 + " > 1",
            "`aaaaaaaaaaaaaaaaaaaa...` is longer than 64 characters, the longest metadata key "
            "a request may carry",
            (1, 1),
        ),
        (
            "x = 1",
            "this is not a valid condition; to compare, write == (a single = is assignment)",
            (1, 3),
        ),
        (
            "volume >",
            "this is not a valid condition: it does not read as a test (check the names, "
            "quotes and brackets around here)",
            (1, 1),
        ),
        (
            "volume > 1 and\nmarket_symbol == 'SPX'",
            "a condition spread over several lines must be wrapped in ( )",
            (1, 15),
        ),
        (
            "x == 1\x00",
            "this is not a valid condition: the condition contains a NUL character",
            (1, 1),
        ),
        (
            "volume > 1 and x < y in [1]",
            "`in` and `is` cannot be chained with other comparisons; join two comparisons with `and`",
            (1, 16),
        ),
        ("\n\n  x == [1]", "a list is only allowed after `in` or `not in`", (3, 8)),
    ],
)
def test_refusals_word_for_word(text: str, reason: str, where: tuple[int, int]) -> None:
    err = refused(text)
    assert err.reason == reason
    assert (err.line, err.column) == where
    assert err.details[0].rule == "rule_condition"
    assert str(err).endswith(". See docs/rules.md for what a condition may contain.")


def test_node_count_counts_every_expression_node() -> None:
    assert compile_condition("a > 1").node_count == 3
    assert compile_condition("a > 1 and b < 2").node_count == 7


# Every refusal a trader can meet, with its words and where it points (what the API,
# the CLI and the dashboard show under the rule being edited).
REFUSALS = [
    (
        "market_symbol",
        "`market_symbol` is text, not true/false; compare it, for example `market_symbol == 'SPX'` (column 1): `market_symbol`",
    ),
    (
        "42",
        "a condition must be true or false, not a single value; compare it, for example `volume > 5000` (column 1): `42`",
    ),
    (
        "1 + 2",
        "arithmetic gives a number, not true/false; compare it, for example `volume * 2 > open_interest` (column 1): `1 + 2`",
    ),
    ("[1, 2]", "a list is only allowed after `in` or `not in` (column 1): `[1, 2]`"),
    ("volumé > 1", "names must be written in ASCII letters, digits and _ (column 1): `volumé`"),
    ("_x > 1", "names starting with '_' are not allowed (column 1): `_x`"),
    (
        "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx > 1",
        "`xxxxxxxxxxxxxxxxxxxx...` is longer than 64 characters, the longest metadata key a request may carry (column 1): `xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx…`",
    ),
    ("1e16 > volume", "numbers must lie between -1e15 and 1e15 (column 1): `1e16`"),
    (
        "b'x' == market_symbol",
        "bytes literals are not allowed; use text in quotes (column 1): `b'x'`",
    ),
    ("1j == volume", "complex numbers are not allowed (column 1): `1j`"),
    ("lambda: 1", "lambdas are not allowed (column 1): `lambda: 1`"),
    ("[1] == volume", "a list is only allowed after `in` or `not in` (column 1): `[1]`"),
    (
        "(a == b) == c",
        "compare values, not the results of tests; join tests with and/or (column 2): `a == b`",
    ),
    (
        "market_symbol + 1 > 2",
        "`market_symbol` is text; arithmetic works on numbers only (column 1): `market_symbol`",
    ),
    ("'a' + 1 > 2", "arithmetic works on numbers only (column 1): `'a'`"),
    ("-(not x) > 1", "`not` applies to a test, not to a number (column 3): `not x`"),
    ("~volume > 1", "`~` is not allowed; use + - * / (column 1): `~volume`"),
    (
        "volume ** 2 > 1",
        "`**` is not allowed (powers can take unbounded time); use + - * / (column 1): `volume ** 2`",
    ),
    ("volume // 2 > 1", "`//` is not allowed; use + - * / (column 1): `volume // 2`"),
    ("volume % 2 > 1", "`%` is not allowed; use + - * / (column 1): `volume % 2`"),
    ("volume / 0 > 1", "division by zero (column 1): `volume / 0`"),
    ("(volume + [1]) > 2", "arithmetic works on numbers only (column 11): `[1]`"),
    (
        "(volume + (a == b)) > 1",
        "arithmetic works on numbers only, not on tests (column 12): `a == b`",
    ),
    ("1 / 0.0 > volume", "division by zero (column 1): `1 / 0.0`"),
    ("1e15 * 10 > volume", "numbers must lie between -1e15 and 1e15 (column 1): `1e15 * 10`"),
    (
        "volume in [1] < 2",
        "`in` and `is` cannot be chained with other comparisons; join two comparisons with `and` (column 1): `volume in [1] < 2`",
    ),
    (
        "volume == None",
        "a comparison with None is always false; to test for a missing value write `name is None` (or `name is not None`) (column 1): `volume == None`",
    ),
    (
        "1 == 1",
        "this compares two constants, so it is always true or always false (column 1): `1 == 1`",
    ),
    ("True < volume", "True and False cannot be ordered; use == or != (column 1): `True < volume`"),
    (
        "data_type < 'snapshot'",
        "`data_type` has no useful order; list the values you want: `data_type in ['historical', 'real_time']` (column 1): `data_type < 'snapshot'`",
    ),
    (
        "volume + 1 == market_symbol",
        "`market_symbol` is text; it cannot equal a computed number (column 1): `volume + 1 == market_symbol`",
    ),
    (
        "market_symbol == volume + 1",
        "`market_symbol` is text; it cannot equal a computed number (column 1): `market_symbol == volume + 1`",
    ),
    (
        "market_symbol == 1",
        "`market_symbol` is text; compare it with text, like `market_symbol == 'SPX'` (column 1): `market_symbol == 1`",
    ),
    (
        "age_s == 'x'",
        "`age_s` is a number; compare it with a number, like `age_s > 60` (column 1): `age_s == 'x'`",
    ),
    (
        "data_type == 'bogus'",
        "`data_type` is one of 'historical', 'real_time', 'snapshot'; 'bogus' can never match (column 1): `data_type == 'bogus'`",
    ),
    (
        "market_symbol is 'SPX'",
        "`is` only tests for a missing value (`name is None`, `name is not None`); use == to compare values (column 1): `market_symbol is 'SPX'`",
    ),
    (
        "1 is None",
        "`is None` applies to a name, for example `volume is None` (column 1): `1 is None`",
    ),
    (
        "market_symbol is None",
        "`market_symbol` is always present, so it is never None (column 1): `market_symbol is None`",
    ),
    ("None in [1]", "None is never in anything; write `name is None` (column 1): `None in [1]`"),
    (
        "1 in [1, 2]",
        "this compares two constants, so it is always true or always false (column 1): `1 in [1, 2]`",
    ),
    (
        "1 in age_s",
        "`age_s` is a number; `in` needs a list or a text value (column 1): `1 in age_s`",
    ),
    (
        "market_symbol in market_symbol",
        "a name is always in itself (column 1): `market_symbol in market_symbol`",
    ),
    (
        "market_symbol in 'SPX'",
        "`in` needs a list here: write `market_symbol in ['SPX', 'NDX']` (`in 'SPX NDX'` would also match 'SP') (column 1): `market_symbol in 'SPX'`",
    ),
    (
        "volume in 5",
        "`in` needs a list, like `market_symbol in ['SPX', 'NDX']` (column 1): `volume in 5`",
    ),
    ("volume in foo()", "calls are not allowed (column 11): `foo()`"),
    ("volume in [[1]]", "lists inside lists are not allowed (column 12): `[1]`"),
    ("volume in [None]", "None in a list never matches; use `name is None` (column 12): `None`"),
    ("volume.real > 1", "attribute access (`.name`) is not allowed (column 1): `volume.real`"),
    ("f(x)", "calls are not allowed (column 1): `f(x)`"),
    (
        "x if y else z",
        "conditional expressions (`a if b else c`) are not allowed; use and/or (column 1): `x if y else z`",
    ),
    (
        "'a' in source_url in 'b'",
        "`in` and `is` cannot be chained with other comparisons; join two comparisons with `and` (column 1): `'a' in source_url in 'b'`",
    ),
    (
        "ny_date < 1",
        "`ny_date` is text; compare it with text, like `ny_date == '2026-11-26'` (column 1): `ny_date < 1`",
    ),
    (
        "origin < 'api'",
        "`origin` has no useful order; list the values you want: `origin in ['api', 'drop']` (column 1): `origin < 'api'`",
    ),
    (
        "not market_symbol",
        "`market_symbol` is text, not true/false; compare it, for example `market_symbol == 'SPX'` (column 5): `market_symbol`",
    ),
    (
        "source_host == 1",
        "`source_host` is text; compare it with text, like `source_host == 'cdn.cboe.com'` (column 1): `source_host == 1`",
    ),
    (
        "source_url == 1",
        "`source_url` is text; compare it with text, like `'cboe' in source_url` (column 1): `source_url == 1`",
    ),
    (
        "ny_hour == 'x'",
        "`ny_hour` is a number; compare it with a number, like `ny_hour >= 9.5` (column 1): `ny_hour == 'x'`",
    ),
    (
        "ny_minute == 'x'",
        "`ny_minute` is a number; compare it with a number, like `ny_minute < 960` (column 1): `ny_minute == 'x'`",
    ),
    (
        "reliability_score == 'x'",
        "`reliability_score` is a number; compare it with a number, like `reliability_score < 0.5` (column 1): `reliability_score == 'x'`",
    ),
    (
        "ny_date == 1",
        "`ny_date` is text; compare it with text, like `ny_date == '2026-11-26'` (column 1): `ny_date == 1`",
    ),
    (
        "data_type == 1",
        "`data_type` is text; compare it with text, like `data_type == 'historical'` (column 1): `data_type == 1`",
    ),
    (
        "origin == 1",
        "`origin` is text; compare it with text, like `origin == 'api'` (column 1): `origin == 1`",
    ),
    (
        "priority_score == 'x'",
        "`priority_score` cannot be used in a condition: the score is what rules produce; a rule cannot read it (column 1): `priority_score`",
    ),
    (
        "(volume > 1 and\n market_symbol == 1)",
        "`market_symbol` is text; compare it with text, like `market_symbol == 'SPX'` (line 2, column 2): `market_symbol == 1`",
    ),
    (
        "ny_weekday == 'x'",
        "`ny_weekday` is one of 'mon', 'tue', 'wed', 'thu', 'fri', 'sat', 'sun'; 'x' can never match (column 1): `ny_weekday == 'x'`",
    ),
    (
        "market_symbol == 'spx' and market_symbol",
        "market symbols are upper case, so 'spx' never matches; write 'SPX' (column 1): `market_symbol == 'spx'`",
    ),
    (
        "data_type == 'Snapshot'",
        "`data_type` is one of 'historical', 'real_time', 'snapshot'; 'Snapshot' can never match (column 1): `data_type == 'Snapshot'`",
    ),
    (
        "market_symbol in ['SPX', None]",
        "None in a list never matches; use `name is None` (column 26): `None`",
    ),
    (
        "volume is not 1",
        "`is` only tests for a missing value (`name is None`, `name is not None`); use == to compare values (column 1): `volume is not 1`",
    ),
]


@pytest.mark.parametrize(("condition", "explanation"), REFUSALS)
def test_each_refusal_says_what_and_where(condition: str, explanation: str) -> None:
    refusal = refused(condition)
    assert refusal.explanation == explanation
    assert str(refusal) == (
        f"the rule condition is refused: {explanation}. See docs/rules.md for what a "
        "condition may contain."
    )
    assert [(p.path, p.message, p.rule) for p in refusal.details] == [
        ("condition", explanation, "rule_condition")
    ]
