"""`GET /v1/openapi.json`: the API described as OpenAPI 3.1, generated from the route table.

Every operation comes from `gexdaemon.protocol.routes`: its parameters from the
route's path and query shape, its request body and success answer from the
shapes the handlers really decode and encode, and its error answers from what
the route can meet. Links let a client (or a fuzzer) follow the ids one answer
gives to the operations that take them.
"""

from __future__ import annotations

import functools
import types
import typing
from typing import Any

import msgspec
import msgspec.inspect as mi

from gexdaemon import __version__
from gexdaemon.protocol import routes
from gexdaemon.protocol import shapes as s

REF = "#/components/schemas/{name}"

ERROR_TEXT = {
    400: "malformed: the body is not JSON (or empty), or the request is not what the path takes",
    403: "the peer's uid may not use this socket",
    404: "no such id (or endpoint)",
    405: "the path does not take this method; the Allow header lists those it takes",
    408: "the body arrived too slowly",
    409: "the job or rule is in a state that does not allow this change",
    413: "the body is larger than allowed",
    422: "validation failed: details name each field path and why",
    503: "the daemon is shutting down, or (cluster mode) its Redis is unreachable: nothing "
    "was accepted; retry",
}


def _schemas() -> tuple[dict[Any, dict[str, Any]], dict[str, Any]]:
    """A schema per body and answer type; a union of shapes is `anyOf` its members."""
    kinds: list[Any] = [s.ErrorBody]
    for route in routes.ROUTES:
        for kind in (route.answer, route.body):
            if kind is not None and kind != routes.BYTES:
                kinds.append(kind)
    unique = list(dict.fromkeys(kinds))
    members = list(dict.fromkeys(m for kind in unique for m in (_union_members(kind) or (kind,))))
    refs, components = msgspec.json.schema_components(members, ref_template=REF)
    _require_one_of(components)
    by_member = dict(zip(members, refs, strict=True))
    out: dict[Any, dict[str, Any]] = {}
    for kind in unique:
        parts = _union_members(kind)
        out[kind] = {"anyOf": [by_member[m] for m in parts]} if parts else by_member[kind]
    return out, components


def _union_members(kind: Any) -> tuple[Any, ...]:
    is_union = isinstance(kind, types.UnionType) or typing.get_origin(kind) is typing.Union
    return typing.get_args(kind) if is_union else ()


def _require_one_of(components: dict[str, Any]) -> None:
    """A body that must set one of some fields says so: `anyOf` one of them set, not null."""
    for name, schema in components.items():
        shape = getattr(s, name, None)
        fields = getattr(shape, "needs_one_of", ())
        if fields:
            props = schema["properties"]
            schema["anyOf"] = [
                {"required": [f], "properties": {f: _inline_nullable(props[f], components)}}
                for f in fields
            ]


def _parameters(route: routes.Route) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for header in route.headers:
        schema: dict[str, Any] = {
            "type": "string",
            "minLength": 1,
            "maxLength": header.max_length,
            "pattern": header.pattern,
        }
        out.append(
            {
                "name": header.name,
                "in": "header",
                "required": False,
                "description": header.description,
                "schema": schema,
            }
        )
    for param in route.params:
        schema = {"type": "string", "minLength": 1}
        if param.uuid:
            schema["format"] = "uuid"
        out.append(
            {
                "name": param.name,
                "in": "path",
                "required": True,
                "description": param.description,
                "schema": schema,
            }
        )
    if route.query is not None:
        info = mi.type_info(route.query)
        assert isinstance(info, mi.StructType)
        (schema,), components = msgspec.json.schema_components([route.query], ref_template=REF)
        props = components[route.query.__name__]["properties"]
        for field in info.fields:
            prop = _inline_nullable(props[field.encode_name], components)
            out.append(
                {
                    "name": field.encode_name,
                    "in": "query",
                    "required": field.required,
                    "schema": prop,
                }
            )
    return out


def _inline_nullable(schema: dict[str, Any], components: dict[str, Any]) -> dict[str, Any]:
    """A query parameter's schema without refs or null (an absent parameter is the null)."""
    if "$ref" in schema:
        return _inline_nullable(components[schema["$ref"].rsplit("/", 1)[1]], components)
    options = schema.get("anyOf")
    if options:
        kept = [_inline_nullable(o, components) for o in options if o.get("type") != "null"]
        merged = kept[0] if len(kept) == 1 else {"anyOf": kept}
        outer = {k: v for k, v in schema.items() if k not in ("anyOf", "title", "default")}
        if schema.get("default") is not None:
            outer["default"] = schema["default"]
        return {**outer, **merged}
    return {
        k: v
        for k, v in schema.items()
        if k != "title" and not (k == "default" and v is None)  # an absent value is no null
    }


def _link_parameter(target: routes.Route) -> str:
    """What a link fills in: the target's path parameter, else its required query parameter."""
    if target.params:
        return target.params[0].name
    assert target.query is not None, f"a link to {target.name} has nothing to fill in"
    info = mi.type_info(target.query)
    assert isinstance(info, mi.StructType)
    (required,) = [f.encode_name for f in info.fields if f.required]
    return f"query.{required}"


def _operation(
    route: routes.Route, refs: dict[Any, dict[str, Any]], by_name: dict[str, routes.Route]
) -> dict[str, Any]:
    success: dict[str, Any] = {"description": route.summary}
    if route.content == routes.TEXT:
        success["content"] = {"text/plain": {"schema": {"type": "string"}}}
    elif route.answer is not None:
        success["content"] = {"application/json": {"schema": refs[route.answer]}}
    if route.links:
        success["links"] = {
            name: {
                "operationId": target,
                "parameters": {_link_parameter(by_name[target]): expression},
            }
            for name, (target, expression) in route.links.items()
        }
    responses: dict[str, Any] = {str(route.status): success}
    for status, when in route.also.items():
        responses[str(status)] = {**success, "description": when}
    for status in route.error_statuses:
        item: dict[str, Any] = {
            "description": ERROR_TEXT[status],
            "content": {"application/json": {"schema": refs[s.ErrorBody]}},
        }
        if status == 405:
            item["headers"] = {
                "Allow": {"description": "the methods the path takes", "schema": {"type": "string"}}
            }
        responses[str(status)] = item
    op: dict[str, Any] = {
        "operationId": route.name,
        "summary": route.summary,
        "responses": responses,
    }
    params = _parameters(route)
    if params:
        op["parameters"] = params
    if route.body == routes.BYTES:
        op["requestBody"] = {
            "required": True,
            "content": {
                "application/octet-stream": {
                    "schema": {"type": "string", "format": "binary", "minLength": 1}
                }
            },
        }
    elif route.body is not None:
        op["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": refs[route.body]}},
        }
    return op


@functools.cache
def openapi_document() -> dict[str, Any]:
    refs, components = _schemas()
    by_name = {r.name: r for r in routes.ROUTES}
    paths: dict[str, Any] = {}
    for route in routes.ROUTES:
        paths.setdefault(route.path, {})[route.method.lower()] = _operation(route, refs, by_name)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "gexdaemon socket API",
            "version": __version__,
            "description": "HTTP/1.1 + JSON over the daemon's Unix socket: "
            "curl --unix-socket var/run/gexd.sock http://localhost/v1/health",
        },
        "paths": paths,
        "components": {"schemas": components},
    }


@functools.cache
def openapi_json() -> bytes:
    return msgspec.json.encode(openapi_document())
