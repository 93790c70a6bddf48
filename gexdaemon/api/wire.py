"""JSON on the wire: one encoder for every response, strict decoding of request bodies."""

from __future__ import annotations

import uuid
from datetime import date, datetime, time, timedelta
from enum import Enum
from typing import Any

import msgspec

from gexdaemon.core.errors import MalformedInput
from gexdaemon.core.jsontext import JsonTextError, decode_json


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

# msgspec encodes these natively; listed for readers of this module.
NATIVE = (datetime, date, time, uuid.UUID)


def encode(value: Any) -> bytes:
    return _encoder.encode(value)


def decode_body(body: bytes, *, what: str = "request body") -> Any:
    if not body.strip():
        raise MalformedInput(f"the {what} is empty; send a JSON object")
    try:
        return decode_json(body)
    except JsonTextError as exc:
        raise MalformedInput(f"the {what} {exc.problem.sentence()}") from None
