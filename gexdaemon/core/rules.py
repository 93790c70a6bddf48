"""The rule language: compiles a priority rule's condition text into a safe, fast test.

A condition is a Python-like expression (`data_type == 'real_time' and
market_symbol in ['NDX', 'SPX']`), but it is never run as Python. The text is
parsed with `ast.parse(mode="eval")`, every node is checked against a short
whitelist, and the tree is turned into nested closures. Nothing the user
writes can reach an attribute, a call, a subscript or a builtin, because the
compiler has no case that would produce one. docs/rules.md is the user's
description of the language; keep the two in step.

Safety limits (checked before any closure is built): MAX_CONDITION_LENGTH
characters, MAX_NODES expression nodes, MAX_DEPTH levels of nesting, numbers
within +-MAX_NUMBER, no `**` and arithmetic on floats only (so no big-integer
or repetition blow-ups: `'a' * 10**9` and `10**3999999` are refused).

Evaluation never raises for any input values: a comparison that cannot be
made (a missing metadata key, `None > 3`, text against a number) is False.

This module must not import gexdaemon.core.models (models imports it to
validate `PriorityRule.condition` at save time).
"""

from __future__ import annotations

import ast
import difflib
import functools
import itertools
import math
import operator
import re
import threading
import warnings
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final, Literal
from urllib.parse import urlsplit

from gexdaemon.core.errors import InvalidInput, Problem
from gexdaemon.core.timeutil import NEW_YORK, as_utc
from gexdaemon.core.vocab import MAX_CONDITION_LENGTH, GEXDataType, Origin

MAX_NODES: Final = 500
MAX_DEPTH: Final = 32
MAX_NAME_LENGTH: Final = 64  # the longest metadata key a request may carry
MAX_NUMBER: Final = 1e15

Names = Mapping[str, object]
Test = Callable[[Names], bool]
Getter = Callable[[Names], object]
NumberGetter = Callable[[Names], float | None]

DATA_TYPES: Final = tuple(t.value for t in GEXDataType)
WEEKDAYS: Final = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
ORIGINS: Final = tuple(o.value for o in Origin)
_DATE_PATTERN = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_NAME_PATTERN = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")


# ---------------------------------------------------------------------------
# The names a condition can use
# ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RequestName:
    """A name filled from the request itself (as opposed to one of its metadata keys)."""

    name: str
    kind: Literal["text", "number"]
    meaning: str
    values: tuple[str, ...] = ()  # when set: the only values it ever takes
    literal_rule: Callable[[str], str] | None = None  # why a text literal can never match


def _upper_case(value: str) -> str:
    if value != value.upper():
        return f"market symbols are upper case, so {value!r} never matches; write {value.upper()!r}"
    return ""


def _lower_case(value: str) -> str:
    if value != value.lower():
        return f"host names are lower case, so {value!r} never matches; write {value.lower()!r}"
    return ""


def _iso_date(value: str) -> str:
    if not _DATE_PATTERN.match(value):
        return f"ny_date is written YYYY-MM-DD, so {value!r} never matches"
    return ""


REQUEST_NAMES: Final[Mapping[str, RequestName]] = {
    n.name: n
    for n in (
        RequestName("data_type", "text", "'historical', 'real_time' or 'snapshot'", DATA_TYPES),
        RequestName("market_symbol", "text", "the ticker, upper case ('SPX')", (), _upper_case),
        RequestName("source_url", "text", "the URL the chain is fetched from"),
        RequestName(
            "source_host", "text", "the URL's host, lower case ('cdn.cboe.com')", (), _lower_case
        ),
        RequestName("origin", "text", "where the request came from", ORIGINS),
        RequestName("age_s", "number", "seconds between requested_at and scoring"),
        RequestName("ny_hour", "number", "New York hour of requested_at as a decimal (9.5)"),
        RequestName("ny_minute", "number", "New York minute of the day of requested_at (570)"),
        RequestName(
            "ny_weekday", "text", "New York weekday of requested_at ('mon'..'sun')", WEEKDAYS
        ),
        RequestName(
            "ny_date", "text", "New York date of requested_at ('2026-11-26')", (), _iso_date
        ),
        RequestName("reliability_score", "number", "the source's success ratio, 0 to 1"),
    )
}

_TIME_HINT = "use age_s, ny_hour, ny_minute, ny_weekday or ny_date instead"
RESERVED_NAMES: Final[Mapping[str, str]] = {
    "requested_at": f"requested_at is an instant, awkward to compare; {_TIME_HINT}",
    "deadline": "the deadline is set from the level a rule produces; a rule cannot use it",
    "priority_score": "the score is what rules produce; a rule cannot read it",
    "priority_level": "the level is what rules produce; a rule cannot read it",
    "estimated_processing_time": "the estimate is not known to rules",
    "request_id": "request ids are random; a rule on them means nothing",
    "source_id": "use source_host or source_url instead",
    "explanation": "the explanation is written after scoring; a rule cannot read it",
    "metadata": "metadata keys are names themselves: write `volume`, not `metadata['volume']`",
    "true": "write True (capital T)",
    "false": "write False (capital F)",
    "none": "write None (capital N)",
    "null": "write None for a missing value",
}


# ---------------------------------------------------------------------------
# Errors
# ---------------------------------------------------------------------------


class RuleConditionError(InvalidInput):
    """A condition the rule language refuses, with its position and a plain explanation."""

    code = "rule_condition_invalid"

    def __init__(self, reason: str, *, line: int = 1, column: int = 1, segment: str = "") -> None:
        where = f"line {line}, column {column}" if line > 1 else f"column {column}"
        shown = f": `{_shorten(segment)}`" if segment.strip() else ""
        explanation = f"{reason} ({where}){shown}"
        super().__init__(
            f"the rule condition is refused: {explanation}. See docs/rules.md for what a "
            "condition may contain.",
            details=[Problem(path="condition", message=explanation, rule="rule_condition")],
        )
        self.reason = reason
        self.line = line
        self.column = column
        self.segment = segment
        self.explanation = explanation


def _shorten(text: str, limit: int = 60) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


# ---------------------------------------------------------------------------
# The compiled form
# ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, eq=False)
class CompiledCondition:
    """A checked condition: `evaluate(names)` is True when it holds for a request."""

    text: str
    names: frozenset[str]
    metadata_names: frozenset[str]
    node_count: int
    depth: int
    test: Test = field(repr=False)
    notes: tuple[str, ...] = ()  # things worth telling the author that are not errors
    # (name, values): the condition can only hold when names[name] is one of values.
    # Lets a rule set skip rules for other symbols or data types without evaluating them.
    guard: tuple[str, frozenset[object]] | None = None

    def evaluate(self, names: Names) -> bool:
        try:
            return self.test(names) is True
        except Exception:
            # The closures already turn impossible comparisons into False; this only
            # catches pathological values (a recursion error comparing deeply nested
            # metadata lists), which must not take scoring down either.
            return False


def compile_condition(text: str) -> CompiledCondition:
    """Check `text` against the rule language and compile it; raises `RuleConditionError`.

    Results are cached by text, so every rule version is compiled once.
    """
    if not isinstance(text, str):
        raise RuleConditionError(f"a condition must be text, not {type(text).__name__}")
    return _compile_cached(text)


_PARSE_LOCK = threading.Lock()


@functools.lru_cache(maxsize=4096)
def _compile_cached(text: str) -> CompiledCondition:
    return _Compiler(text).compile()


# ---------------------------------------------------------------------------
# The compiler
# ---------------------------------------------------------------------------


_REFUSED: Final[Mapping[type[ast.AST], str]] = {
    ast.Call: "calls are not allowed",
    ast.Attribute: "attribute access (`.name`) is not allowed",
    ast.Subscript: "subscripts (`x[...]`) are not allowed; metadata keys are names themselves",
    ast.Slice: "slices are not allowed",
    ast.ListComp: "comprehensions are not allowed",
    ast.SetComp: "comprehensions are not allowed",
    ast.DictComp: "comprehensions are not allowed",
    ast.GeneratorExp: "generator expressions are not allowed",
    ast.Lambda: "lambdas are not allowed",
    ast.JoinedStr: "f-strings are not allowed",
    ast.FormattedValue: "f-strings are not allowed",
    ast.NamedExpr: "assignment expressions (`:=`) are not allowed",
    ast.Starred: "starred expressions (`*x`) are not allowed",
    ast.IfExp: "conditional expressions (`a if b else c`) are not allowed; use and/or",
    ast.Dict: "dict literals are not allowed",
    ast.Await: "`await` is not allowed",
    ast.Yield: "`yield` is not allowed",
    ast.YieldFrom: "`yield from` is not allowed",
}

_ARITHMETIC: Final[Mapping[type[ast.operator], str]] = {
    ast.Add: "+",
    ast.Sub: "-",
    ast.Mult: "*",
    ast.Div: "/",
}

_OPERATOR_TEXT: Final[Mapping[type[ast.AST], str]] = {
    ast.Pow: "**",
    ast.Mod: "%",
    ast.FloorDiv: "//",
    ast.MatMult: "@",
    ast.LShift: "<<",
    ast.RShift: ">>",
    ast.BitOr: "|",
    ast.BitAnd: "&",
    ast.BitXor: "^",
    ast.Invert: "~",
}

_ORDERING: Final[Mapping[type[ast.cmpop], Callable[[Any, Any], Any]]] = {
    ast.Lt: operator.lt,
    ast.LtE: operator.le,
    ast.Gt: operator.gt,
    ast.GtE: operator.ge,
}
_EQUALITY: Final[Mapping[type[ast.cmpop], Callable[[Any, Any], Any]]] = {
    ast.Eq: operator.eq,
    ast.NotEq: operator.ne,
}
_FLIPPED: Final[Mapping[type[ast.cmpop], type[ast.cmpop]]] = {
    ast.Lt: ast.Gt,
    ast.LtE: ast.GtE,
    ast.Gt: ast.Lt,
    ast.GtE: ast.LtE,
    ast.Eq: ast.Eq,
    ast.NotEq: ast.NotEq,
}


@dataclass(frozen=True, slots=True)
class _Const:
    value: object
    node: ast.expr


@dataclass(frozen=True, slots=True)
class _Name:
    key: str
    spec: RequestName | None
    node: ast.expr


@dataclass(frozen=True, slots=True)
class _Arith:
    """A number computed from at least one name (pure constants are folded)."""

    fn: NumberGetter
    node: ast.expr


_Operand = _Const | _Name | _Arith


# A lone `=` (not part of ==, !=, <= or >=): someone meant to compare.
_SINGLE_EQUALS = re.compile(r"(?<![=!<>])=(?!=)")


def _parses(text: str) -> bool:
    try:
        with _PARSE_LOCK, warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ast.parse(text, mode="eval")
    except (SyntaxError, ValueError, MemoryError, RecursionError, OverflowError):
        return False
    return True


class _Compiler:
    def __init__(self, text: str) -> None:
        self.original = text
        stripped = text.strip()
        lead = text[: len(text) - len(text.lstrip())]
        # Positions are reported in the text as the user wrote it, leading blanks included.
        self.line_shift = lead.count("\n")
        self.col_shift = len(lead) - (lead.rfind("\n") + 1)
        self.text = stripped
        self.lines = stripped.split("\n")
        self.names: set[str] = set()
        self.metadata_names: set[str] = set()

    # -- entry -----------------------------------------------------------------------

    def compile(self) -> CompiledCondition:
        text = self.text
        if not text:
            raise RuleConditionError(
                "the condition is empty; write a test such as `data_type == 'real_time'`"
            )
        if len(self.original) > MAX_CONDITION_LENGTH:
            line, column = self._char_position(MAX_CONDITION_LENGTH)
            raise RuleConditionError(
                f"the condition is {len(self.original)} characters long; at most "
                f"{MAX_CONDITION_LENGTH} are allowed (split it into several rules)",
                line=line,
                column=column,
            )
        tree = self._parse()
        count, depth = self._check_size(tree)
        test = self._test(tree.body)
        return CompiledCondition(
            text=text,
            names=frozenset(self.names),
            metadata_names=frozenset(self.metadata_names),
            node_count=count,
            depth=depth,
            test=test,
            notes=self._notes(),
            guard=_guard(tree.body),
        )

    def _parse(self) -> ast.Expression:
        try:
            # An invalid escape such as '\d' only warns; it must not become an error when
            # the interpreter runs with -W error. catch_warnings swaps process-wide state,
            # hence the lock (rules are compiled from reader threads too).
            with _PARSE_LOCK, warnings.catch_warnings():
                warnings.simplefilter("ignore")
                return ast.parse(self.text, mode="eval")
        except SyntaxError as exc:
            # What is wrong is told in our own words: the parser's message differs between
            # Python versions and is not something a trader should have to read.
            line = exc.lineno or 1
            column = exc.offset or 1
            segment = self.lines[line - 1] if 0 < line <= len(self.lines) else ""
            raise RuleConditionError(
                self._syntax_reason(segment),
                line=line + self.line_shift,
                column=column + (self.col_shift if line == 1 else 0),
                segment=segment,
            ) from None
        except (ValueError, MemoryError, RecursionError, OverflowError) as exc:
            # The C parser signals "too complex" inputs with these rather than SyntaxError.
            raise RuleConditionError(
                f"this is not a valid condition: the parser gave up ({type(exc).__name__})"
            ) from None

    def _syntax_reason(self, segment: str) -> str:
        """Why a text that does not parse is not a condition, as far as we can tell."""
        if "\x00" in self.text:
            return "this is not a valid condition: the condition contains a NUL character"
        if "\n" in self.text and _parses(f"({self.text})"):
            return "a condition spread over several lines must be wrapped in ( )"
        if _SINGLE_EQUALS.search(segment):
            return "this is not a valid condition; to compare, write == (a single = is assignment)"
        return (
            "this is not a valid condition: it does not read as a test "
            "(check the names, quotes and brackets around here)"
        )

    def _check_size(self, tree: ast.Expression) -> tuple[int, int]:
        """Count expression nodes and measure nesting, without recursion."""
        count = 0
        deepest = 0
        stack: list[tuple[ast.AST, int]] = [(tree.body, 1)]
        while stack:
            node, depth = stack.pop()
            count += 1
            deepest = max(deepest, depth)
            if depth > MAX_DEPTH:
                raise self._error(
                    node,
                    f"the condition is nested more than {MAX_DEPTH} levels deep; simplify it",
                )
            if count > MAX_NODES:
                raise self._error(
                    node,
                    f"the condition has more than {MAX_NODES} parts; split it into several rules",
                )
            for child in ast.iter_child_nodes(node):
                if isinstance(child, ast.expr):
                    stack.append((child, depth + 1))
        return count, deepest

    # -- positions and errors ---------------------------------------------------------

    def _position(self, node: ast.AST) -> tuple[int, int]:
        lineno = getattr(node, "lineno", 1) or 1
        col_bytes = getattr(node, "col_offset", 0) or 0
        line_text = self.lines[lineno - 1] if 0 < lineno <= len(self.lines) else ""
        # ast offsets count UTF-8 bytes; people count characters.
        column = len(line_text.encode()[:col_bytes].decode(errors="ignore")) + 1
        if lineno == 1:
            column += self.col_shift
        return lineno + self.line_shift, column

    def _char_position(self, index: int) -> tuple[int, int]:
        before = self.original[:index]
        return before.count("\n") + 1, index - (before.rfind("\n") + 1) + 1

    def _error(self, node: ast.AST, reason: str) -> RuleConditionError:
        segment = ""
        if isinstance(node, ast.expr):
            segment = ast.get_source_segment(self.text, node) or ""
        line, column = self._position(node)
        return RuleConditionError(reason, line=line, column=column, segment=segment)

    def _kind_error(self, node: ast.expr) -> RuleConditionError:
        for kind, reason in _REFUSED.items():
            if isinstance(node, kind):
                return self._error(node, reason)
        return self._error(node, f"`{type(node).__name__}` expressions are not allowed")

    # -- tests (things that are true or false) -----------------------------------------

    def _test(self, node: ast.expr) -> Test:
        if isinstance(node, ast.BoolOp):
            parts = [self._test(v) for v in node.values]
            return _all_of(parts) if isinstance(node.op, ast.And) else _any_of(parts)
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
            inner = self._test(node.operand)
            return lambda names: not inner(names)
        if isinstance(node, ast.Compare):
            return self._compare(node)
        if isinstance(node, ast.Name):
            name = self._name(node)
            if name.spec is not None:
                raise self._error(
                    node,
                    f"`{name.key}` is {_kind_text(name.spec)}, not true/false; compare it, "
                    f"for example {_example(name.spec)}",
                )
            key = name.key
            return lambda names: names.get(key) is True
        if isinstance(node, ast.Constant):
            if isinstance(node.value, bool):
                constant = node.value
                return lambda names: constant
            self._constant(node)  # refuses bytes, complex, ... with their own message
            raise self._error(
                node,
                "a condition must be true or false, not a single value; compare it, "
                "for example `volume > 5000`",
            )
        if isinstance(node, ast.BinOp | ast.UnaryOp):
            self._number(node)  # refuses forbidden operators with their own message
            raise self._error(
                node,
                "arithmetic gives a number, not true/false; compare it, for example "
                "`volume * 2 > open_interest`",
            )
        if isinstance(node, ast.List | ast.Tuple | ast.Set):
            raise self._error(node, "a list is only allowed after `in` or `not in`")
        raise self._kind_error(node)

    # -- values --------------------------------------------------------------------------

    def _name(self, node: ast.Name) -> _Name:
        key = node.id
        written = ast.get_source_segment(self.text, node) or key
        if written != key or not key.isascii():
            raise self._error(node, "names must be written in ASCII letters, digits and _")
        if key.startswith("_"):
            raise self._error(node, "names starting with '_' are not allowed")
        if not _NAME_PATTERN.match(key):
            raise self._error(node, "names must start with a letter")
        if len(key) > MAX_NAME_LENGTH:
            raise self._error(
                node,
                f"`{key[:20]}...` is longer than {MAX_NAME_LENGTH} characters, the longest "
                "metadata key a request may carry",
            )
        if key in RESERVED_NAMES:
            raise self._error(node, f"`{key}` cannot be used in a condition: {RESERVED_NAMES[key]}")
        spec = REQUEST_NAMES.get(key)
        self.names.add(key)
        if spec is None:
            self.metadata_names.add(key)
        return _Name(key, spec, node)

    def _constant(self, node: ast.Constant) -> _Const:
        value = node.value
        if value is None or isinstance(value, bool | str):
            return _Const(value, node)
        if isinstance(value, int | float):
            # abs() first: an int compares with a float exactly, but math.isfinite would
            # convert a 2000-digit literal to float and overflow.
            if abs(value) > MAX_NUMBER or not math.isfinite(value):
                raise self._error(node, "numbers must lie between -1e15 and 1e15")
            return _Const(value, node)
        if isinstance(value, bytes):
            raise self._error(node, "bytes literals are not allowed; use text in quotes")
        if isinstance(value, complex):
            raise self._error(node, "complex numbers are not allowed")
        raise self._error(node, f"`{ast.get_source_segment(self.text, node)}` is not allowed")

    def _value(self, node: ast.expr) -> _Operand:
        """A comparison operand: a name, a literal or a bounded arithmetic expression."""
        if isinstance(node, ast.Name):
            return self._name(node)
        if isinstance(node, ast.Constant):
            return self._constant(node)
        if isinstance(node, ast.BinOp | ast.UnaryOp):
            if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
                raise self._error(node, "`not` applies to a test; write `not (a == b)`")
            return self._number(node)
        if isinstance(node, ast.List | ast.Tuple | ast.Set):
            raise self._error(node, "a list is only allowed after `in` or `not in`")
        if isinstance(node, ast.Compare | ast.BoolOp):
            raise self._error(
                node,
                "compare values, not the results of tests; join tests with and/or",
            )
        raise self._kind_error(node)

    def _number(self, node: ast.expr) -> _Operand:
        """An arithmetic operand: names and number literals under + - * / and unary -."""
        if isinstance(node, ast.Name):
            name = self._name(node)
            if name.spec is not None and name.spec.kind != "number":
                raise self._error(node, f"`{name.key}` is text; arithmetic works on numbers only")
            return name
        if isinstance(node, ast.Constant):
            const = self._constant(node)
            if not _is_number(const.value):
                raise self._error(node, "arithmetic works on numbers only")
            return const
        if isinstance(node, ast.UnaryOp):
            if isinstance(node.op, ast.Not):
                raise self._error(node, "`not` applies to a test, not to a number")
            if isinstance(node.op, ast.Invert):
                raise self._error(node, "`~` is not allowed; use + - * /")
            inner = self._number(node.operand)
            if isinstance(node.op, ast.UAdd):
                return inner
            if isinstance(inner, _Const):
                return _Const(-_as_float_const(inner.value), node)
            get = _number_getter(inner)
            return _Arith(_negate(get), node)
        if isinstance(node, ast.BinOp):
            symbol = _ARITHMETIC.get(type(node.op))
            if symbol is None:
                shown = _OPERATOR_TEXT.get(type(node.op), type(node.op).__name__)
                why = " (powers can take unbounded time)" if shown == "**" else ""
                raise self._error(node, f"`{shown}` is not allowed{why}; use + - * /")
            left = self._number(node.left)
            right = self._number(node.right)
            if isinstance(left, _Const) and isinstance(right, _Const):
                return _Const(self._fold(node, symbol, left.value, right.value), node)
            if symbol == "/" and isinstance(right, _Const) and right.value == 0:
                raise self._error(node, "division by zero")
            return _Arith(_arithmetic(symbol, _number_getter(left), _number_getter(right)), node)
        if isinstance(node, ast.List | ast.Tuple | ast.Set):
            raise self._error(node, "arithmetic works on numbers only")
        if isinstance(node, ast.Compare | ast.BoolOp):
            raise self._error(node, "arithmetic works on numbers only, not on tests")
        raise self._kind_error(node)

    def _fold(self, node: ast.expr, symbol: str, a: object, b: object) -> float:
        x, y = _as_float_const(a), _as_float_const(b)
        if symbol == "+":
            result = x + y
        elif symbol == "-":
            result = x - y
        elif symbol == "*":
            result = x * y
        else:
            if y == 0:
                raise self._error(node, "division by zero")
            result = x / y
        if not math.isfinite(result) or abs(result) > MAX_NUMBER:
            raise self._error(node, "numbers must lie between -1e15 and 1e15")
        return result

    # -- comparisons --------------------------------------------------------------------

    def _compare(self, node: ast.Compare) -> Test:
        ops = node.ops
        if len(ops) == 1:
            if isinstance(ops[0], ast.Is | ast.IsNot):
                return self._is_none(node)
            if isinstance(ops[0], ast.In | ast.NotIn):
                return self._membership(node)
        for op in ops:
            if isinstance(op, ast.Is | ast.IsNot | ast.In | ast.NotIn):
                raise self._error(
                    node,
                    "`in` and `is` cannot be chained with other comparisons; join two "
                    "comparisons with `and`",
                )
        operands = [self._value(x) for x in (node.left, *node.comparators)]
        for (a, b), op in zip(itertools.pairwise(operands), ops, strict=True):
            self._check_pair(node, a, type(op), b)
        if len(ops) == 1:
            a, b = operands
            op_type = type(ops[0])
            if isinstance(a, _Name) and isinstance(b, _Const):
                return _name_vs_constant(a.key, op_type, b.value)
            if isinstance(a, _Const) and isinstance(b, _Name):
                return _name_vs_constant(b.key, _FLIPPED[op_type], a.value)
            if isinstance(a, _Arith) and isinstance(b, _Const):
                return _number_vs_constant(a.fn, op_type, b.value)
            if isinstance(a, _Const) and isinstance(b, _Arith):
                return _number_vs_constant(b.fn, _FLIPPED[op_type], a.value)
        if len(ops) == 2:
            low, middle, high = operands
            low_op, high_op = type(ops[0]), type(ops[1])
            if (
                isinstance(low, _Const)
                and isinstance(middle, _Name)
                and isinstance(high, _Const)
                and low_op in (ast.Lt, ast.LtE)
                and high_op in (ast.Lt, ast.LtE)
            ):
                return _range(low.value, low_op, middle.key, high_op, high.value)
        getters = [_getter(x) for x in operands]
        functions = [_ORDERING.get(type(op)) or _EQUALITY[type(op)] for op in ops]
        return _chain(getters, functions)

    def _check_pair(self, node: ast.Compare, a: _Operand, op: type[ast.cmpop], b: _Operand) -> None:
        for side in (a, b):
            if isinstance(side, _Const) and side.value is None:
                raise self._error(
                    node,
                    "a comparison with None is always false; to test for a missing value "
                    "write `name is None` (or `name is not None`)",
                )
        if isinstance(a, _Const) and isinstance(b, _Const):
            raise self._error(
                node, "this compares two constants, so it is always true or always false"
            )
        ordering = op in _ORDERING
        for side in (a, b):
            if ordering and isinstance(side, _Const) and isinstance(side.value, bool):
                raise self._error(node, "True and False cannot be ordered; use == or !=")
            if ordering and isinstance(side, _Name) and side.spec and side.spec.values:
                raise self._error(
                    node,
                    f"`{side.key}` has no useful order; list the values you want: "
                    f"`{side.key} in [{', '.join(repr(v) for v in side.spec.values[:2])}]`",
                )
        self._check_types(node, a, b)
        self._check_types(node, b, a)

    def _check_types(self, node: ast.expr, a: _Operand, b: _Operand) -> None:
        """Refuse comparisons that can never hold because of what a request name holds."""
        if isinstance(a, _Arith) and isinstance(b, _Const) and not _is_number(b.value):
            raise self._error(node, "arithmetic gives a number; compare it with a number")
        if not isinstance(a, _Name) or a.spec is None:
            return
        spec = a.spec
        if isinstance(b, _Const):
            self._check_literal(node, spec, b.value)
        elif isinstance(b, _Name) and b.spec is not None and b.spec.kind != spec.kind:
            raise self._error(node, f"`{a.key}` is {_kind_text(spec)} and `{b.key}` is not")
        elif isinstance(b, _Arith) and spec.kind != "number":
            raise self._error(node, f"`{a.key}` is text; it cannot equal a computed number")

    def _check_literal(self, node: ast.expr, spec: RequestName, value: object) -> None:
        if spec.kind == "text" and not isinstance(value, str):
            raise self._error(
                node, f"`{spec.name}` is text; compare it with text, like {_example(spec)}"
            )
        if spec.kind == "number" and not _is_number(value):
            raise self._error(
                node, f"`{spec.name}` is a number; compare it with a number, like {_example(spec)}"
            )
        if isinstance(value, str):
            if spec.values and value not in spec.values:
                allowed = ", ".join(repr(v) for v in spec.values)
                raise self._error(
                    node, f"`{spec.name}` is one of {allowed}; {value!r} can never match"
                )
            if spec.literal_rule is not None:
                problem = spec.literal_rule(value)
                if problem:
                    raise self._error(node, problem)

    def _is_none(self, node: ast.Compare) -> Test:
        right = node.comparators[0]
        if not (isinstance(right, ast.Constant) and right.value is None):
            raise self._error(
                node,
                "`is` only tests for a missing value (`name is None`, `name is not None`); "
                "use == to compare values",
            )
        if not isinstance(node.left, ast.Name):
            raise self._error(node, "`is None` applies to a name, for example `volume is None`")
        name = self._name(node.left)
        if name.spec is not None:
            raise self._error(node, f"`{name.key}` is always present, so it is never None")
        key = name.key
        if isinstance(node.ops[0], ast.Is):
            return lambda names: names.get(key) is None
        return lambda names: names.get(key) is not None

    def _membership(self, node: ast.Compare) -> Test:
        right_node = node.comparators[0]
        negate = isinstance(node.ops[0], ast.NotIn)
        left = self._value(node.left)
        if isinstance(left, _Const) and left.value is None:
            raise self._error(node, "None is never in anything; write `name is None`")
        if isinstance(right_node, ast.List | ast.Tuple | ast.Set):
            if isinstance(left, _Const):
                raise self._error(
                    node, "this compares two constants, so it is always true or always false"
                )
            members = [self._member(element) for element in right_node.elts]
            for value in members:
                if isinstance(left, _Name) and left.spec is not None:
                    self._check_literal(node, left.spec, value)
                if isinstance(left, _Arith) and not _is_number(value):
                    raise self._error(node, "arithmetic gives a number; list numbers after `in`")
            if isinstance(left, _Name):
                return _name_in_literal(left.key, frozenset(members), negate)
            return _in_literal(_getter(left), frozenset(members), negate)
        if isinstance(right_node, ast.Name):
            right = self._name(right_node)
            if right.spec is not None and right.spec.kind != "text":
                raise self._error(
                    node, f"`{right.key}` is a number; `in` needs a list or a text value"
                )
            if isinstance(left, _Name) and left.key == right.key:
                raise self._error(node, "a name is always in itself")
            if isinstance(left, _Const):
                return _constant_in_name(left.value, right.key, negate)
            return _in_value(_getter(left), right.key, negate)
        if isinstance(right_node, ast.Constant) and isinstance(right_node.value, str):
            raise self._error(
                node,
                "`in` needs a list here: write `market_symbol in ['SPX', 'NDX']` "
                "(`in 'SPX NDX'` would also match 'SP')",
            )
        if isinstance(right_node, ast.Constant):
            self._constant(right_node)
            raise self._error(node, "`in` needs a list, like `market_symbol in ['SPX', 'NDX']`")
        self._value(right_node)  # refuses the forbidden kinds with their own message
        raise self._error(node, "`in` needs a list or a name on its right")

    def _member(self, node: ast.expr) -> object:
        """One element of a literal list: text, a number, True or False."""
        if isinstance(node, ast.List | ast.Tuple | ast.Set):
            raise self._error(node, "lists inside lists are not allowed")
        if isinstance(node, ast.Constant):
            value = self._constant(node).value
            if value is None:
                raise self._error(node, "None in a list never matches; use `name is None`")
            return value
        if isinstance(node, ast.UnaryOp | ast.BinOp):
            folded = self._number(node)
            if isinstance(folded, _Const):
                return folded.value
            raise self._error(node, "list elements must be literals, not names")
        if isinstance(node, ast.Name):
            raise self._error(node, "list elements must be literals; quote text: 'SPX'")
        raise self._kind_error(node)

    # -- notes ----------------------------------------------------------------------------

    def _notes(self) -> tuple[str, ...]:
        if not self.metadata_names:
            return ()
        listed = ", ".join(f"`{key}`" for key in sorted(self.metadata_names))
        notes = [
            f"{listed} {'is' if len(self.metadata_names) == 1 else 'are'} not request "
            "fields, so they are read from the request's metadata (a request without "
            "the key never matches)"
        ]
        for key in sorted(self.metadata_names):
            close = difflib.get_close_matches(key, list(REQUEST_NAMES), n=1, cutoff=0.8)
            if close:
                notes.append(
                    f"`{key}` looks like the request field `{close[0]}`; check the spelling"
                )
        return tuple(notes)


# Which equality to index a rule on when it has several: the most selective first.
_GUARD_PREFERENCE: Final = ("market_symbol", "data_type", "source_host", "origin", "ny_date")


def _guard(body: ast.expr) -> tuple[str, frozenset[object]] | None:
    """A `name == literal` or `name in [literals]` that the whole condition requires.

    Only called on a tree that compiled, so literals are known to be plain scalars.
    A top-level `and` requires each of its parts; `or` and `not` require nothing.
    """
    parts = body.values if isinstance(body, ast.BoolOp) and isinstance(body.op, ast.And) else [body]
    found: list[tuple[str, frozenset[object]]] = []
    for part in parts:
        if not isinstance(part, ast.Compare) or len(part.ops) != 1:
            continue
        left, op, right = part.left, part.ops[0], part.comparators[0]
        if isinstance(op, ast.Eq) and isinstance(left, ast.Constant):
            left, right = right, left
        if not isinstance(left, ast.Name):
            continue
        if isinstance(op, ast.Eq) and isinstance(right, ast.Constant):
            found.append((left.id, frozenset({right.value})))
        elif isinstance(op, ast.In) and isinstance(right, ast.List | ast.Tuple | ast.Set):
            values = [e.value for e in right.elts if isinstance(e, ast.Constant)]
            if len(values) == len(right.elts):  # negative numbers are UnaryOp: skip those
                found.append((left.id, frozenset(values)))
    if not found:
        return None

    def preference(guard: tuple[str, frozenset[object]]) -> tuple[int, int]:
        key, values = guard
        rank = _GUARD_PREFERENCE.index(key) if key in _GUARD_PREFERENCE else len(_GUARD_PREFERENCE)
        return rank, len(values)

    return min(found, key=preference)


# ---------------------------------------------------------------------------
# Closures (the compiled form). Every one returns a bool and never raises for
# JSON-like values: TypeError from comparing unlike types means "does not hold".
# ---------------------------------------------------------------------------


def _all_of(parts: list[Test]) -> Test:
    if len(parts) == 2:
        first, second = parts

        def both(names: Names) -> bool:
            return first(names) and second(names)

        return both
    if len(parts) <= 4:
        # Nested pairs beat a loop for the short conjunctions rules are made of; longer
        # ones loop, so a long condition never nests calls deeply.
        return _all_of([parts[0], _all_of(parts[1:])])

    def every(names: Names) -> bool:
        for part in parts:  # noqa: SIM110 - all() over a generator is slower on this hot path
            if not part(names):
                return False
        return True

    return every


def _any_of(parts: list[Test]) -> Test:
    if len(parts) == 2:
        first, second = parts

        def either(names: Names) -> bool:
            return first(names) or second(names)

        return either
    if len(parts) <= 4:
        return _any_of([parts[0], _any_of(parts[1:])])

    def some(names: Names) -> bool:
        for part in parts:  # noqa: SIM110 - any() over a generator is slower on this hot path
            if part(names):
                return True
        return False

    return some


def _name_vs_constant(key: str, op: type[ast.cmpop], constant: object) -> Test:
    """The common `name <op> literal` shape, specialised: one lookup, no operator call."""
    c: Any = constant
    if op is ast.Eq:

        def equal(names: Names) -> bool:
            v = names.get(key)
            return v is not None and v == c

        return equal
    if op is ast.NotEq:

        def different(names: Names) -> bool:
            v = names.get(key)
            return v is not None and v != c

        return different
    if op is ast.Gt:

        def greater(names: Names) -> bool:
            v: Any = names.get(key)
            if v is None:
                return False
            try:
                return (v > c) is True
            except TypeError:
                return False

        return greater
    if op is ast.GtE:

        def at_least(names: Names) -> bool:
            v: Any = names.get(key)
            if v is None:
                return False
            try:
                return (v >= c) is True
            except TypeError:
                return False

        return at_least
    if op is ast.Lt:

        def less(names: Names) -> bool:
            v: Any = names.get(key)
            if v is None:
                return False
            try:
                return (v < c) is True
            except TypeError:
                return False

        return less

    assert op is ast.LtE

    def at_most(names: Names) -> bool:
        v: Any = names.get(key)
        if v is None:
            return False
        try:
            return (v <= c) is True
        except TypeError:
            return False

    return at_most


def _range(
    low: object, low_op: type[ast.cmpop], key: str, high_op: type[ast.cmpop], high: object
) -> Test:
    """`low < name < high` (any of < <= on either side), one lookup."""
    lo: Any = low
    hi: Any = high
    lo_strict = low_op is ast.Lt
    hi_strict = high_op is ast.Lt

    def within(names: Names) -> bool:
        v: Any = names.get(key)
        if v is None:
            return False
        try:
            above = (lo < v) if lo_strict else (lo <= v)
            if above is not True:
                return False
            return ((v < hi) if hi_strict else (v <= hi)) is True
        except TypeError:
            return False

    return within


def _number_vs_constant(get: NumberGetter, op: type[ast.cmpop], constant: object) -> Test:
    """`arithmetic <op> number`: both sides are numbers, so no comparison can raise."""
    fn = _ORDERING.get(op) or _EQUALITY[op]
    c: Any = constant

    def compared(names: Names) -> bool:
        v = get(names)
        return v is not None and fn(v, c) is True

    return compared


def _chain(getters: list[Getter], functions: list[Callable[[Any, Any], Any]]) -> Test:
    first = getters[0]
    rest = list(zip(functions, getters[1:], strict=True))

    def chain(names: Names) -> bool:
        a = first(names)
        if a is None:
            return False
        for fn, get in rest:
            b = get(names)
            if b is None:
                return False
            try:
                if fn(a, b) is not True:
                    return False
            except TypeError:
                return False
            a = b
        return True

    return chain


def _in_literal(get: Getter, members: frozenset[object], negate: bool) -> Test:
    def inside(names: Names) -> bool:
        v = get(names)
        if v is None:
            return False
        try:
            return (v in members) is not negate
        except TypeError:  # an unhashable metadata value (a list) is in no literal list
            return False

    return inside


def _name_in_literal(key: str, members: frozenset[object], negate: bool) -> Test:
    """`name in [...]`, specialised: one lookup, a set probe."""

    def inside(names: Names) -> bool:
        v = names.get(key)
        if v is None:
            return False
        try:
            return (v in members) is not negate
        except TypeError:
            return False

    return inside


def _constant_in_name(constant: object, key: str, negate: bool) -> Test:
    """`'0dte' in tags`, specialised: the common way to test a metadata list or text."""
    c: Any = constant
    text = isinstance(constant, str)

    def inside(names: Names) -> bool:
        container = names.get(key)
        if isinstance(container, list | tuple | dict) or (text and isinstance(container, str)):
            try:
                return (c in container) is not negate
            except TypeError:
                return False
        return False

    return inside


def _in_value(get: Getter, key: str, negate: bool) -> Test:
    """`x in name`: text in text (substring), a value in a list, a key in an object."""

    def inside(names: Names) -> bool:
        v = get(names)
        container = names.get(key)
        if v is None or container is None:
            return False
        if isinstance(container, str):
            if not isinstance(v, str):
                return False
            return (v in container) is not negate
        if isinstance(container, list | tuple | dict):
            try:
                return (v in container) is not negate
            except TypeError:
                return False
        return False

    return inside


def _getter(operand: _Operand) -> Getter:
    if isinstance(operand, _Const):
        value = operand.value
        return lambda names: value
    if isinstance(operand, _Name):
        key = operand.key
        return lambda names: names.get(key)
    return operand.fn


def _number_getter(operand: _Operand) -> NumberGetter:
    """Arithmetic runs on floats, so no operand can grow into a huge integer."""
    if isinstance(operand, _Const):
        constant = _as_float_const(operand.value)
        return lambda names: constant
    if isinstance(operand, _Name):
        key = operand.key

        def number(names: Names) -> float | None:
            v = names.get(key)
            kind = type(v)
            if kind is float:
                return v  # type: ignore[return-value]
            if kind is int:
                try:
                    return float(v)  # type: ignore[arg-type]
                except OverflowError:
                    return None
            return None

        return number
    return operand.fn


def _negate(get: NumberGetter) -> NumberGetter:
    def negated(names: Names) -> float | None:
        v = get(names)
        return None if v is None else -v

    return negated


def _arithmetic(symbol: str, left: NumberGetter, right: NumberGetter) -> NumberGetter:
    if symbol == "/":

        def divide(names: Names) -> float | None:
            a = left(names)
            if a is None:
                return None
            b = right(names)
            if b is None or b == 0:
                return None
            return a / b

        return divide

    fn: Callable[[float, float], float] = {
        "+": operator.add,
        "-": operator.sub,
        "*": operator.mul,
    }[symbol]

    def combine(names: Names) -> float | None:
        a = left(names)
        if a is None:
            return None
        b = right(names)
        if b is None:
            return None
        return fn(a, b)

    return combine


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _as_float_const(value: object) -> float:
    assert isinstance(value, int | float)
    return float(value)


def _kind_text(spec: RequestName) -> str:
    return "a number" if spec.kind == "number" else "text"


def _example(spec: RequestName) -> str:
    if spec.values:
        return f"`{spec.name} == {spec.values[0]!r}`"
    examples = {
        "market_symbol": "`market_symbol == 'SPX'`",
        "source_host": "`source_host == 'cdn.cboe.com'`",
        "source_url": "`'cboe' in source_url`",
        "ny_date": "`ny_date == '2026-11-26'`",
        "age_s": "`age_s > 60`",
        "ny_hour": "`ny_hour >= 9.5`",
        "ny_minute": "`ny_minute < 960`",
        "reliability_score": "`reliability_score < 0.5`",
    }
    return examples.get(spec.name, f"`{spec.name} == ...`")


# ---------------------------------------------------------------------------
# Building the names of one request
# ---------------------------------------------------------------------------

_NEW_YORK_NAMES = frozenset({"ny_hour", "ny_minute", "ny_weekday", "ny_date"})
_DERIVED = _NEW_YORK_NAMES | {"source_host", "age_s"}


def request_names(
    *,
    data_type: str,
    market_symbol: str,
    source_url: str,
    requested_at: datetime,
    metadata: Mapping[str, object],
    origin: str,
    reliability_score: float,
    now: datetime,
    wanted: Collection[str] | None = None,
) -> dict[str, object]:
    """The names a condition sees for one request: its metadata, then the request names.

    Request names win over metadata keys of the same name. `wanted` (the names
    the active rules use) skips the derived names nobody reads; None computes all.
    """
    names: dict[str, object] = dict(metadata)
    names["data_type"] = str(data_type)
    names["market_symbol"] = market_symbol
    names["source_url"] = source_url
    names["origin"] = origin
    names["reliability_score"] = reliability_score
    want = _DERIVED if wanted is None else wanted
    if _DERIVED.isdisjoint(want):
        return names
    if "source_host" in want:
        names["source_host"] = _host_of(source_url)
    requested = _utc(requested_at)
    if "age_s" in want:
        names["age_s"] = max(0.0, (_utc(now) - requested).total_seconds())
    if not _NEW_YORK_NAMES.isdisjoint(want):
        local = requested.astimezone(NEW_YORK)
        hour, minute = local.hour, local.minute
        names["ny_hour"] = hour + minute / 60 + local.second / 3600
        names["ny_minute"] = hour * 60 + minute
        names["ny_weekday"] = WEEKDAYS[local.weekday()]
        names["ny_date"] = local.date().isoformat()
    return names


def _utc(value: datetime) -> datetime:
    # Scoring runs per request: skip the conversion when the instant is already UTC.
    return value if value.tzinfo is UTC else as_utc(value)


@functools.lru_cache(maxsize=1024)
def _host_of(url: str) -> str:
    """A URL's host, lower case; cached because a desk polls the same URLs all day."""
    try:
        return urlsplit(url).hostname or ""
    except ValueError:
        return ""
