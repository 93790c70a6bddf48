"""JSON text problems are found and worded by us, whatever the decoder's own message says."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

import msgspec
import pytest

from gexdaemon.core.jsontext import JsonTextError, decode_json, type_problem


class Level(StrEnum):
    CRITICAL = "critical"
    LOW = "low"


class Quote(msgspec.Struct):
    bid: float | None = None
    ask: float | None = None


class Chain(msgspec.Struct):
    options: list[Quote]
    symbol: str | None = None


def problem_of(data: bytes, decoder: msgspec.json.Decoder | None = None):  # type: ignore[type-arg]
    with pytest.raises(JsonTextError) as info:
        decode_json(data, decoder)
    return info.value.problem


def test_valid_text_decodes_untyped_and_typed() -> None:
    assert decode_json(b'{"a": [1, 2]}') == {"a": [1, 2]}
    chain = decode_json(b'{"options": [{"bid": 1.5}]}', msgspec.json.Decoder(Chain))
    assert chain.options[0].bid == 1.5


def test_a_byte_that_is_not_utf8_is_named_with_its_line() -> None:
    found = problem_of(b'{\n "a": 1,\n "b\xf3": 2}')
    assert found.rule == "encoding"
    assert found.line == 3
    assert "0xf3" in found.message and "line 3" in found.message


def test_a_syntax_error_gives_line_and_column() -> None:
    found = problem_of(b'{\n  "a": 1,\n  "b" 2\n}')
    assert found.rule == "syntax"
    assert found.where == "line 3 column 7"
    assert found.sentence().endswith("at line 3 column 7")


@pytest.mark.parametrize("text", [b'{"a": [1, 2', b'{"a": "unterminated', b'[{"a": 1}, {"b": '])
def test_a_text_cut_short_is_called_truncated(text: bytes) -> None:
    found = problem_of(text)
    assert found.rule == "syntax"
    assert "truncated" in found.message


def test_a_complete_text_with_junk_is_not_called_truncated() -> None:
    found = problem_of(b'{"a": 1} {"b": 2}')
    assert "truncated" not in found.message


def test_empty_text_says_so() -> None:
    assert problem_of(b"  \n").message == "is empty"


def test_a_wrong_type_names_the_field_path_with_list_index() -> None:
    decoder = msgspec.json.Decoder(Chain)
    found = problem_of(b'{"options": [{"bid": 1}, {"bid": 2, "ask": "x"}]}', decoder)
    assert found.rule == "type"
    assert found.where == "options[1].ask"
    assert found.message == "expected a number or null, got a string"


def test_a_missing_required_field_is_named() -> None:
    found = problem_of(b'{"symbol": "SPX"}', msgspec.json.Decoder(Chain))
    assert (found.where, found.message) == ("options", "is required")


def test_an_array_where_an_object_belongs() -> None:
    found = problem_of(b"[1, 2]", msgspec.json.Decoder(Chain))
    assert (found.where, found.message) == ("(root)", "expected an object, got an array")


class Filter(msgspec.Struct, forbid_unknown_fields=True):
    limit: Annotated[int, msgspec.Meta(ge=1, le=1000)] = 50
    symbol: Annotated[str, msgspec.Meta(max_length=10, pattern="^[A-Z]+$")] | None = None
    level: Level | None = None


@pytest.mark.parametrize(
    ("value", "where", "message"),
    [
        ({"limit": 0}, "limit", "must be at least 1 (got 0)"),
        ({"limit": 5000}, "limit", "must be at most 1000 (got 5000)"),
        ({"limit": "x"}, "limit", "expected an integer, got a string"),
        ({"symbol": "TOOLONGSYMBOL"}, "symbol", "must have at most 10 characters (has 13)"),
        ({"symbol": "spx"}, "symbol", "does not match the pattern ^[A-Z]+$ (got 'spx')"),
        ({"level": "urgent"}, "level", "must be one of critical, low (got 'urgent')"),
        ({"lmit": 5}, "lmit", "unknown field (known: level, limit, symbol)"),
    ],
)
def test_constraints_are_explained_in_our_words(value: dict, where: str, message: str) -> None:
    found = type_problem(value, Filter)
    assert found is not None
    assert (found.where, found.message) == (where, message)


def test_query_strings_are_read_as_numbers_when_not_strict() -> None:
    assert type_problem({"limit": "20"}, Filter, strict=False) is None
    found = type_problem({"limit": "0"}, Filter, strict=False)
    assert found is not None and found.message == "must be at least 1 (got '0')"


def test_a_value_that_fits_has_no_problem() -> None:
    assert type_problem({"limit": 5, "symbol": "SPX", "level": "low"}, Filter) is None
