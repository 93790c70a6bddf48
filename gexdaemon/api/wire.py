"""JSON on the wire: one encoder for every answer, strict decoding of bodies and query strings.

Bodies and query strings are decoded into the route's shape; what does not fit
is explained in our words with its field path (`gexdaemon.core.jsontext`), so
a 422 says `limit: must be at most 1000 (got 5000)` whatever msgspec's own
message says this year.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from enum import Enum
from typing import Any

import msgspec
import msgspec.inspect as mi

from gexdaemon.core.errors import InvalidInput, MalformedInput, Problem
from gexdaemon.core.jsontext import JsonTextError, decode_json, type_problem


def _enc_hook(value: Any) -> Any:
    if isinstance(value, timedelta):
        return value.total_seconds()
    if hasattr(value, "model_dump"):
        return value.model_dump(mode="json")
    if hasattr(value, "as_dict"):
        return value.as_dict()
    if isinstance(value, Enum):
        return value.value
    raise NotImplementedError(f"cannot encode {type(value).__name__}")


_encoder = msgspec.json.Encoder(enc_hook=_enc_hook, decimal_format="number")


def encode(value: Any) -> bytes:
    return _encoder.encode(value)


def decode_body(body: bytes, *, what: str = "request body") -> Any:
    if not body.strip():
        raise MalformedInput(f"the {what} is empty; send a JSON object")
    try:
        return decode_json(body)
    except JsonTextError as exc:
        raise MalformedInput(f"the {what} {exc.problem.sentence()}") from None


def fit(value: Any, shape: Any, *, what: str, strict: bool = True) -> Any:
    """`value` (decoded JSON) as `shape`; a 422 naming the first field that does not fit."""
    try:
        return msgspec.convert(value, shape, strict=strict)
    except msgspec.ValidationError:
        pass  # explained below in our words, with no chained context
    whole = _whole_numbers(value, mi.type_info(shape))
    if whole is not value:
        # JSON has one number type: 3.0 is the integer 3 (as JSON Schema's "integer" says).
        try:
            return msgspec.convert(whole, shape, strict=strict)
        except msgspec.ValidationError:
            value = whole
    found = type_problem(value, shape, strict=strict)
    problem = Problem(found.where, found.message, rule=found.rule) if found else None
    raise InvalidInput.from_problems(what, [problem or Problem("(root)", "does not fit")])


def fit_query(query: Mapping[str, str], shape: type[Any]) -> Any:
    """A query string as `shape`: numbers from text, enum values in any case, each name once."""
    getall = getattr(query, "getall", None)
    repeated = sorted({k for k in query if getall is not None and len(getall(k)) > 1})
    if repeated:
        raise InvalidInput.from_problems(
            "the query string", [Problem(k, "is given more than once") for k in repeated]
        )
    values = {k: query[k] for k in query}
    for name in _enum_fields(shape):
        if isinstance(values.get(name), str):
            values[name] = values[name].lower()
    found = fit(values, shape, what="the query string", strict=False)
    # Lax decoding reads the text `null` as None; a parameter given is never null.
    nulls = [k for k in values if k in shape.__struct_fields__ and getattr(found, k) is None]
    if nulls:
        raise InvalidInput.from_problems(
            "the query string",
            [
                Problem(k, f"is not a value (got {values[k]!r}); leave the parameter out")
                for k in nulls
            ],
        )
    return found


def _whole_numbers(value: Any, kind: mi.Type) -> Any:
    """`value` with each integral float where `kind` takes an int made an int (else `value`)."""
    if isinstance(kind, mi.Metadata):
        return _whole_numbers(value, kind.type)
    if isinstance(value, float):
        takes_int = isinstance(kind, mi.IntType) or (
            isinstance(kind, mi.UnionType)
            and any(isinstance(_bare(o), mi.IntType) for o in kind.types)
            and not any(isinstance(_bare(o), mi.FloatType) for o in kind.types)
        )
        return int(value) if takes_int and value.is_integer() else value
    if isinstance(kind, mi.UnionType):
        for option in kind.types:
            whole = _whole_numbers(value, _bare(option))
            if whole is not value:
                return whole
        return value
    if isinstance(value, dict) and isinstance(kind, mi.StructType):
        by_name = {f.encode_name: f.type for f in kind.fields}
        changed = {k: _whole_numbers(v, by_name[k]) for k, v in value.items() if k in by_name}
        if all(changed[k] is value[k] for k in changed):
            return value
        return {**value, **changed}
    if isinstance(value, dict) and isinstance(kind, mi.DictType):
        items = {k: _whole_numbers(v, kind.value_type) for k, v in value.items()}
        return value if all(items[k] is value[k] for k in value) else items
    if isinstance(value, list) and isinstance(kind, mi.ListType | mi.VarTupleType | mi.SetType):
        listed = [_whole_numbers(v, kind.item_type) for v in value]
        return value if all(a is b for a, b in zip(listed, value, strict=True)) else listed
    return value


def _bare(kind: mi.Type) -> mi.Type:
    return _bare(kind.type) if isinstance(kind, mi.Metadata) else kind


def _enum_fields(shape: type[Any]) -> tuple[str, ...]:
    info = mi.type_info(shape)
    assert isinstance(info, mi.StructType)

    def is_enum(t: mi.Type) -> bool:
        if isinstance(t, mi.Metadata):
            return is_enum(t.type)
        if isinstance(t, mi.UnionType):
            return any(is_enum(o) for o in t.types)
        return isinstance(t, mi.EnumType)

    return tuple(f.encode_name for f in info.fields if is_enum(f.type))
