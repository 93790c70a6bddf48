"""Decoding JSON text with problems reported in our words: which byte, which line, which field.

msgspec decodes fast, but what it says about bad input (its message text) changes
between releases: 0.23 stopped saying "UTF-8" for a byte that is not UTF-8. So a
failed decode is never explained from the decoder's message. The bytes are
examined again here: first the encoding (the byte and its line), then the syntax
(the standard library's parser gives the line and column as numbers), and for a
typed decode, the first field whose value has the wrong type (found by walking the
expected type, not by reading the message).
"""

from __future__ import annotations

import json
import re
import uuid
from dataclasses import dataclass
from datetime import date, datetime, time
from typing import Annotated, Any, Literal, TypeVar, Union

import msgspec
import msgspec.inspect as mi

from gexdaemon.core.errors import utf8_problem

T = TypeVar("T")
_ANY = msgspec.json.Decoder()


@dataclass(frozen=True, slots=True)
class JsonTextProblem:
    """What is wrong with a JSON text: where (a line and column, or a field path) and why."""

    where: str  # "line 3 column 7", a field path "data.options[3].bid", or "(file)"
    message: str  # for a person: "is not UTF-8 text: byte 0xf3 at line 2 ..."
    rule: str  # "encoding" | "syntax" | "type"
    line: int | None = None

    def sentence(self) -> str:
        """The problem as the end of a sentence about the text: "is not valid JSON: ... at line 2 column 5"."""
        at = f" at {self.where}" if self.where.startswith("line ") else ""
        return f"{self.message}{at}"


class JsonTextError(ValueError):
    """A JSON text that could not be decoded; `problem` says where and why."""

    def __init__(self, problem: JsonTextProblem) -> None:
        super().__init__(f"{problem.where}: {problem.message}")
        self.problem = problem


def decode_json(data: bytes, decoder: msgspec.json.Decoder[Any] | None = None) -> Any:
    """Decode `data` (untyped, or with a typed msgspec decoder); raise JsonTextError on failure."""
    try:
        return (decoder or _ANY).decode(data)
    except (msgspec.DecodeError, UnicodeDecodeError):
        pass  # explained below, from the bytes, outside the except block (no chained context)
    raise JsonTextError(_explain(data, decoder))


def _explain(data: bytes, decoder: msgspec.json.Decoder[Any] | None) -> JsonTextProblem:
    encoding = utf8_problem(data)
    if encoding is not None:
        line = data[: _first_bad_byte(data)].count(b"\n") + 1
        return JsonTextProblem("(file)", encoding, "encoding", line)
    syntax = syntax_problem(data)
    if syntax is not None:
        return syntax
    if decoder is not None:
        value = _ANY.decode(data)
        found = type_problem(value, decoder.type)
        if found is not None:
            return found
    # The standard parser took it and no field is of the wrong type: a limit of msgspec's
    # (a number too large, say). Say so without guessing a position.
    return JsonTextProblem("(file)", "is not JSON this program can read", "syntax")


def _first_bad_byte(data: bytes) -> int:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as exc:
        return exc.start
    return len(data)


def syntax_problem(data: bytes) -> JsonTextProblem | None:
    """The first syntax error in UTF-8 `data` as a line and column, or None when it parses."""
    text = data.decode("utf-8")
    if not text.strip():
        return JsonTextProblem("(file)", "is empty", "syntax", 1)
    try:
        json.loads(text)
    except json.JSONDecodeError as exc:
        truncated = not text[exc.pos :].strip() or _ends_early(text)
        reason = (
            "is not valid JSON: it ends before the document does (it may be truncated)"
            if truncated
            else f"is not valid JSON: {exc.msg}"
        )
        return JsonTextProblem(
            f"line {exc.lineno} column {exc.colno}", reason, "syntax", exc.lineno
        )
    except RecursionError:
        return JsonTextProblem("(file)", "is nested too deeply", "syntax")
    return None


_STRING = re.compile(r'"(?:[^"\\]|\\.)*"')


def _ends_early(text: str) -> bool:
    """Does the text stop inside a string, object or array (a download cut short)?"""
    bare = _STRING.sub("", text)
    if '"' in bare:
        return True
    opened = bare.count("{") + bare.count("[")
    return opened > bare.count("}") + bare.count("]")


def type_problem(value: Any, expected: Any, *, strict: bool = True) -> JsonTextProblem | None:
    """The first place where decoded JSON `value` does not fit type `expected`, or None.

    Walks msgspec's own description of the type (fields, constraints, unions), so the
    path and the reason are ours: `requests[3].market_symbol: must be at most 10
    characters`. `strict=False` reads strings as numbers, as query strings need.
    """
    return _mismatch(value, mi.type_info(expected), "", strict)


def _mismatch(value: Any, t: mi.Type, path: str, strict: bool) -> JsonTextProblem | None:
    here = path or "(root)"
    if isinstance(t, mi.Metadata):
        return _mismatch(value, t.type, path, strict)
    if isinstance(t, mi.AnyType):
        return None
    if isinstance(t, mi.UnionType):
        if any(_fits(value, option, strict) for option in t.types):
            return None
        alike = [o for o in t.types if _same_kind(value, o, strict)]
        if len(alike) == 1:  # one option takes this kind of value: say what is wrong with it
            return _mismatch(value, alike[0], path, strict)
        return _problem(
            here, f"expected {' or '.join(_name(o) for o in t.types)}, got {_got(value)}"
        )
    if isinstance(t, mi.StructType):
        if not isinstance(value, dict):
            return _problem(here, f"expected an object, got {_got(value)}")
        known = {f.encode_name for f in t.fields}
        if t.forbid_unknown_fields:
            unknown = sorted(str(k) for k in value if k not in known)
            if unknown:
                listed = ", ".join(sorted(known))
                return _problem(_join(path, unknown[0]), f"unknown field (known: {listed})")
        for f in t.fields:
            if f.encode_name not in value:
                if f.required:
                    return _problem(_join(path, f.encode_name), "is required")
                continue
            inner = _mismatch(value[f.encode_name], f.type, _join(path, f.encode_name), strict)
            if inner is not None:
                return inner
        return None if _fits(value, t, strict) else _problem(here, "is invalid")
    if isinstance(t, mi.ListType | mi.VarTupleType | mi.SetType | mi.FrozenSetType):
        if not isinstance(value, list):
            return _problem(here, f"expected an array, got {_got(value)}")
        size = _size_problem(len(value), t.min_length, t.max_length, "items")
        if size:
            return _problem(here, size)
        for i, item in enumerate(value):
            inner = _mismatch(item, t.item_type, f"{path}[{i}]" if path else f"[{i}]", strict)
            if inner is not None:
                return inner
        return None
    if isinstance(t, mi.DictType):
        if not isinstance(value, dict):
            return _problem(here, f"expected an object, got {_got(value)}")
        size = _size_problem(len(value), t.min_length, t.max_length, "keys")
        if size:
            return _problem(here, size)
        for key, item in value.items():
            if not _fits(key, t.key_type, False):
                return _problem(
                    _join(path, str(key)), f"is not an allowed key ({_name(t.key_type)})"
                )
            inner = _mismatch(item, t.value_type, _join(path, str(key)), strict)
            if inner is not None:
                return inner
        return None
    if _fits(value, t, strict):
        return None
    return _problem(here, _leaf_reason(value, t, strict))


def _fits(value: Any, t: mi.Type, strict: bool) -> bool:
    if isinstance(t, mi.Metadata):
        return _fits(value, t.type, strict)
    try:
        msgspec.convert(value, _annotation(t), strict=strict)
    except (msgspec.ValidationError, TypeError):
        return False
    return True


def _annotation(t: mi.Type) -> Any:
    """Back from msgspec's type description to something `msgspec.convert` takes."""
    if isinstance(t, mi.StructType):
        return t.cls
    if isinstance(t, mi.EnumType):
        return t.cls
    if isinstance(t, mi.IntType | mi.FloatType | mi.StrType):
        base = {mi.IntType: int, mi.FloatType: float, mi.StrType: str}[type(t)]
        limits = {
            k: getattr(t, k)
            for k in ("ge", "gt", "le", "lt", "min_length", "max_length", "pattern")
            if getattr(t, k, None) is not None
        }
        return Annotated[base, msgspec.Meta(**limits)] if limits else base
    simple = {
        mi.BoolType: bool,
        mi.NoneType: type(None),
        mi.UUIDType: uuid.UUID,
        mi.DateTimeType: datetime,
        mi.DateType: date,
        mi.TimeType: time,
        mi.AnyType: Any,
    }
    if type(t) in simple:
        return simple[type(t)]
    if isinstance(t, mi.LiteralType):
        return Literal[tuple(t.values)]
    if isinstance(t, mi.ListType):
        return list[_annotation(t.item_type)]  # type: ignore[misc]
    if isinstance(t, mi.DictType):
        return dict[_annotation(t.key_type), _annotation(t.value_type)]  # type: ignore[misc]
    if isinstance(t, mi.UnionType):
        return Union[tuple(_annotation(o) for o in t.types)]  # noqa: UP007 - built at run time
    return Any


def _same_kind(value: Any, t: mi.Type, strict: bool) -> bool:
    """Could a value of this JSON kind be meant for type `t` (ignoring its constraints)?"""
    if isinstance(t, mi.Metadata):
        return _same_kind(value, t.type, strict)
    if isinstance(value, dict):
        return isinstance(t, mi.StructType | mi.DictType)
    if isinstance(value, list):
        return isinstance(t, mi.ListType | mi.VarTupleType | mi.SetType | mi.FrozenSetType)
    if isinstance(value, bool):
        return isinstance(t, mi.BoolType)
    if isinstance(value, int | float):
        return isinstance(t, mi.IntType | mi.FloatType)
    if isinstance(value, str):
        text_types = mi.StrType | mi.EnumType | mi.LiteralType | mi.UUIDType | mi.DateTimeType
        numbers = mi.IntType | mi.FloatType
        return isinstance(t, text_types | mi.DateType | mi.TimeType) or (
            not strict and isinstance(t, numbers)
        )
    return False


def _leaf_reason(value: Any, t: mi.Type, strict: bool) -> str:
    if isinstance(t, mi.IntType | mi.FloatType) and _fits(
        value, mi.FloatType() if isinstance(t, mi.FloatType) else mi.IntType(), strict
    ):
        number = float(value)
        bounds = [
            (t.ge, number >= t.ge if t.ge is not None else True, "at least"),
            (t.gt, number > t.gt if t.gt is not None else True, "greater than"),
            (t.le, number <= t.le if t.le is not None else True, "at most"),
            (t.lt, number < t.lt if t.lt is not None else True, "less than"),
        ]
        broken = [
            f"{words} {limit:g}" for limit, ok, words in bounds if limit is not None and not ok
        ]
        if broken:
            return f"must be {broken[0]} (got {value!r})"
    if isinstance(t, mi.StrType) and isinstance(value, str):
        size = _size_problem(len(value), t.min_length, t.max_length, "characters")
        if size:
            return size
        if t.pattern is not None and not re.search(t.pattern, value):
            return f"does not match the pattern {t.pattern} (got {value[:40]!r})"
    if isinstance(t, mi.EnumType):
        allowed = ", ".join(str(m.value) for m in t.cls)
        return f"must be one of {allowed} (got {str(value)[:40]!r})"
    if isinstance(t, mi.LiteralType):
        return f"must be one of {', '.join(map(str, t.values))} (got {str(value)[:40]!r})"
    return f"expected {_name(t)}, got {_got(value)}"


def _size_problem(n: int, low: int | None, high: int | None, unit: str) -> str | None:
    if low is not None and n < low:
        return f"must have at least {low} {unit} (has {n})"
    if high is not None and n > high:
        return f"must have at most {high} {unit} (has {n})"
    return None


def _join(path: str, part: str) -> str:
    return f"{path}.{part}" if path else part


def _name(t: mi.Type) -> str:
    if isinstance(t, mi.Metadata):
        return _name(t.type)
    names = {
        mi.FloatType: "a number",
        mi.IntType: "an integer",
        mi.StrType: "a string",
        mi.BoolType: "true or false",
        mi.NoneType: "null",
        mi.UUIDType: "a UUID",
        mi.DateTimeType: "an RFC 3339 date-time",
        mi.DateType: "a date (YYYY-MM-DD)",
        mi.TimeType: "a time (HH:MM:SS)",
        mi.StructType: "an object",
        mi.DictType: "an object",
        mi.ListType: "an array",
    }
    if isinstance(t, mi.EnumType):
        return "one of " + ", ".join(str(m.value) for m in t.cls)
    return names.get(type(t), type(t).__name__.removesuffix("Type").lower())


def _got(value: Any) -> str:
    return {
        dict: "an object",
        list: "an array",
        str: "a string",
        bool: "true/false",
        int: "a number",
        float: "a number",
        type(None): "null",
    }.get(type(value), type(value).__name__)


def _problem(where: str, message: str) -> JsonTextProblem:
    return JsonTextProblem(where, message, "type")
