"""Known sandbox escapes and resource attacks are refused at save time; fuzzed text never
gets anything but RuleConditionError out of the compiler, and never takes long.

The corpus follows the public history of Python expression sandboxes (attribute
chains to `__subclasses__`, generator and frame objects, `str.format` traversal,
decorator-free code objects, simpleeval's CPU exhaustion cases).
"""

from __future__ import annotations

import ast
import builtins
import contextlib
import re
import time
from collections.abc import Iterator
from unittest import mock

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gexdaemon.core.rules import MAX_CONDITION_LENGTH, RuleConditionError, compile_condition

TIME_BOUND_S = 0.5  # a safety property (no input makes the compiler hang), not a benchmark

ESCAPES = [
    # attribute chains to every loaded class
    "().__class__.__bases__[0].__subclasses__()",
    "[].__class__.__mro__[1].__subclasses__()",
    "''.__class__.__mro__[-1].__subclasses__()",
    "(1).__class__.__base__.__subclasses__()[0]",
    "x.__class__",
    "x.__dict__",
    "data_type.__class__ == 1",
    "market_symbol.upper() == 'SPX'",
    "().__reduce_ex__(2)",
    "(lambda: 0).__code__.co_consts",
    "(lambda: 0).__globals__",
    # builtins and imports
    "__import__('os').system('id')",
    "__builtins__",
    "__builtins__['eval']('1')",
    "__loader__",
    "__spec__ is None",
    "eval('1') == 1",
    "exec('import os')",
    "compile('1', 'x', 'eval')",
    "open('/etc/passwd')",
    "getattr(x, '__class__')",
    "globals()",
    "locals()",
    "vars()",
    "breakpoint()",
    "type(x) == int",
    "print(1)",
    "len(x) > 1",
    "input()",
    # generators and frames
    "(x for x in []).gi_frame.f_back.f_globals",
    "(g := (x for x in [])).gi_frame",
    "[c for c in ().__class__.__base__.__subclasses__()]",
    "{k: v for k, v in x}",
    "{v for v in x}",
    "any(v > 1 for v in x)",
    "(yield x)",
    "await x",
    # format-string traversal
    "'{0.__class__.__mro__}'.format(1)",
    "'{0.__globals__}'.format(f)",
    "'%s' % x == 'a'",
    "f'{().__class__}'",
    "f'{x!r}' == 'a'",
    "f'{x:{y}}' == 'a'",
    # CPU and memory exhaustion
    "10**3999999",
    "x > 10**3999999",
    "9**9**9 > x",
    "2**2**2**2**2 > x",
    "'a'*10**9 == x",
    "'a' * 1000000000 == x",
    "[1]*10**9 == x",
    "x * 'a' == 'aa'",
    "x << 100000 > 1",
    "x > 1e400",
    "x > " + "9" * 1990,
    "-" * 1999 + "1",
    "not " * 499 + "x",
    "(" * 1000 + "x" + ")" * 1000,
    "[" * 150 + "]" * 150,
    "x" + " + x" * 600 + " > 1",
    "x in [" + ", ".join(["1"] * 600) + "]",
    "x == 1 and " * 300 + "x == 1",
    "a" * (MAX_CONDITION_LENGTH + 1),
    "x == '" + "a" * 100_000 + "'",
    "1" * 5000,
    # assignment, starred, lambdas, subscripts, slices, calls
    "x = 1",
    "(x := 1)",
    "[*x] == [1]",
    "*x, = y",
    "lambda: 1",
    "(lambda: 1)()",
    "x[0] == 1",
    "x['a'] == 1",
    "metadata['volume'] > 1",
    "x[1:2] == 'a'",
    "x if y else z",
    "{'a': 1} == x",
    # names the language keeps away
    "__class__",
    "__dunder__ > 1",
    "_private > 1",
    "x.__class__.__name__ == 'int'",
    "＿＿class＿＿ == 1",  # fullwidth underscores: NFKC turns them into __class__
    "ｘ.ｙ == 1",
    # bytes, complex, ellipsis tricks
    "b'abc' == x",
    "x == b'\\x00'",
    "bytes([1]) == x",
    "bytearray(b'a') == x",
    "1j == x",
    "x == ...",
    "...",
    # not Python expressions at all
    "import os",
    "from os import system",
    "def f(): pass",
    "x == 1; import os",
    "x == 1\nimport os",
    "x == 'a\\x00'\x00",
    "x\x00",
    "",
    "# just a comment",
]


@contextlib.contextmanager
def no_code_objects() -> Iterator[None]:
    """Fail if anything compiles text to a code object or calls eval/exec inside the block.

    `ast.parse` uses `compile(..., flags=PyCF_ONLY_AST)`; anything else is a breach.
    Scoped to a block (not the whole test) because hypothesis itself uses exec.
    """
    real_compile = builtins.compile

    def ast_only(
        source: object, filename: object, mode: str, flags: int = 0, *a: object, **k: object
    ) -> object:
        if not flags & ast.PyCF_ONLY_AST:
            raise AssertionError(f"compile() to a code object was called on {source!r:.60}")
        return real_compile(source, filename, mode, flags, *a, **k)  # type: ignore[call-overload]

    def forbidden(*args: object, **kwargs: object) -> object:
        raise AssertionError("eval/exec was called")

    with (
        mock.patch.object(builtins, "compile", ast_only),
        mock.patch.object(builtins, "eval", forbidden),
        mock.patch.object(builtins, "exec", forbidden),
    ):
        yield


def _case_id(text: str) -> str:
    # Plain ASCII ids: mutmut passes node ids back to pytest, and ids holding quotes,
    # backslashes or brackets (repr of these escapes) did not survive the round trip.
    slug = re.sub(r"[^A-Za-z0-9]+", "_", text).strip("_")[:30] or "blank"
    return f"{ESCAPES.index(text):03d}_{slug}"


@pytest.mark.parametrize("text", ESCAPES, ids=_case_id)
def test_every_known_escape_is_refused_at_save_time(text: str) -> None:
    started = time.perf_counter()
    with no_code_objects(), pytest.raises(RuleConditionError) as exc:
        compile_condition(text)
    assert time.perf_counter() - started < TIME_BOUND_S
    err = exc.value
    assert err.line >= 1 and err.column >= 1
    assert err.explanation  # a plain reason for the person who wrote it


def test_the_guard_against_code_objects_works() -> None:
    with no_code_objects(), pytest.raises(AssertionError, match="code object"):
        compile("1", "<test>", "eval")
    with no_code_objects(), pytest.raises(AssertionError, match="eval/exec"):
        eval("1")


def test_valid_conditions_compile_and_run_without_code_objects() -> None:
    with no_code_objects():
        c = compile_condition("market_symbol in ['NDX', 'SPX'] and volume / 2 > 1 + age_s")
        assert c.evaluate({"market_symbol": "SPX", "volume": 10, "age_s": 1})


# --- fuzzing ---------------------------------------------------------------------------

TOKENS = [
    "x",
    "y",
    "volume",
    "data_type",
    "market_symbol",
    "age_s",
    "__class__",
    "_x",
    "__import__",
    "True",
    "False",
    "None",
    "and",
    "or",
    "not",
    "in",
    "is",
    "if",
    "else",
    "for",
    "lambda",
    "yield",
    "await",
    "import",
    "==",
    "!=",
    "<",
    "<=",
    ">",
    ">=",
    "+",
    "-",
    "*",
    "/",
    "**",
    "%",
    "//",
    "@",
    "~",
    "<<",
    "&",
    "|",
    "^",
    ":=",
    "=",
    ".",
    ",",
    ":",
    ";",
    "(",
    ")",
    "[",
    "]",
    "{",
    "}",
    "'a'",
    '"SPX"',
    "f'{x}'",
    "b'x'",
    "1",
    "0",
    "-1",
    "1e308",
    "1e999",
    "10**9",
    "9" * 30,
    "1j",
    "...",
    "\\",
    "\n",
    "#",
    "'",
    '"',
    "'''",
    "\x00",
    "é",
    "ｘ",
]

token_soup = st.lists(st.sampled_from(TOKENS), max_size=120).map(" ".join)
glued_soup = st.lists(st.sampled_from(TOKENS), max_size=200).map("".join)
any_text = st.text(max_size=MAX_CONDITION_LENGTH + 50)
escape_mix = st.lists(st.sampled_from(ESCAPES), min_size=1, max_size=3).map(" and ".join)
metadata_value = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=4),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner, max_size=3)
    ),
    max_leaves=6,
)


@settings(
    max_examples=600,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(
    text=st.one_of(any_text, token_soup, glued_soup, escape_mix),
    names=st.dictionaries(
        st.sampled_from(["x", "y", "volume", "age_s"]), metadata_value, max_size=4
    ),
)
def test_arbitrary_text_only_ever_raises_rule_condition_error(
    text: str, names: dict[str, object]
) -> None:
    started = time.perf_counter()
    try:
        with no_code_objects():
            compiled = compile_condition(text)
            result = compiled.evaluate(names)
    except RuleConditionError as err:
        assert err.line >= 1 and err.column >= 1
    else:
        assert result in (True, False)
        # Whatever compiled reads only names: no attribute, call or subscript survived.
        tree = ast.parse(compiled.text, mode="eval")
        for node in ast.walk(tree):
            assert not isinstance(
                node, ast.Attribute | ast.Call | ast.Subscript | ast.Lambda | ast.NamedExpr
            )
            if isinstance(node, ast.Name):
                assert not node.id.startswith("_")
    elapsed = time.perf_counter() - started
    assert elapsed < TIME_BOUND_S, f"{elapsed:.3f}s for {text[:80]!r}"
