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
import types
import typing
from dataclasses import dataclass
from typing import Any, TypeVar

import msgspec

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


def type_problem(value: Any, expected: Any, path: str = "") -> JsonTextProblem | None:
    """The first place where decoded JSON `value` does not fit type `expected`, or None."""
    try:
        msgspec.convert(value, expected)
    except msgspec.ValidationError:
        pass
    else:
        return None
    here = path or "(root)"
    origin = typing.get_origin(expected)
    if isinstance(expected, type) and issubclass(expected, msgspec.Struct):
        if not isinstance(value, dict):
            return _wrong(here, value, "an object")
        hints = typing.get_type_hints(expected)
        for field in msgspec.structs.fields(expected):
            if field.encode_name not in value:
                if field.required:
                    return JsonTextProblem(_join(path, field.encode_name), "is missing", "type")
                continue
            inner = type_problem(
                value[field.encode_name], hints[field.name], _join(path, field.encode_name)
            )
            if inner is not None:
                return inner
        return JsonTextProblem(here, "does not have the expected fields", "type")
    if origin in (list, tuple) or expected in (list, tuple):
        if not isinstance(value, list):
            return _wrong(here, value, "an array")
        args = typing.get_args(expected)
        item = args[0] if args else Any
        for i, element in enumerate(value):
            inner = type_problem(element, item, f"{here}[{i}]" if path else f"[{i}]")
            if inner is not None:
                return inner
    if origin in (types.UnionType, typing.Union):
        names = " or ".join(_type_name(a) for a in typing.get_args(expected))
        return _wrong(here, value, names)
    return _wrong(here, value, _type_name(expected))


def _join(path: str, part: str) -> str:
    return f"{path}.{part}" if path else part


def _type_name(kind: Any) -> str:
    return {
        float: "a number",
        int: "an integer",
        str: "a string",
        bool: "true or false",
        type(None): "null",
    }.get(kind, getattr(kind, "__name__", str(kind)))


def _wrong(where: str, value: Any, wanted: str) -> JsonTextProblem:
    got = {
        dict: "an object",
        list: "an array",
        str: "a string",
        bool: "true/false",
        int: "a number",
        float: "a number",
        type(None): "null",
    }.get(type(value), type(value).__name__)
    return JsonTextProblem(where, f"expected {wanted}, got {got}", "type")
