"""`GET /v1/openapi.json`: the API described as OpenAPI 3.1, schemas derived from the domain models."""

from __future__ import annotations

import functools
from typing import Any, Literal

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from gexdaemon import __version__
from gexdaemon.core.models import (
    DataSource,
    GEXSnapshot,
    JobEvent,
    PriorityRequest,
    PriorityRule,
    ProcessingJob,
    RequestSubmission,
)

REF = "#/components/schemas/{model}"

ERROR = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["code", "message", "details"],
            "properties": {
                "code": {"type": "string"},
                "message": {"type": "string"},
                "request_id": {"type": "string"},
                "details": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "properties": {
                            "path": {
                                "type": "string",
                                "description": "field path, e.g. requests.3.market_symbol",
                            },
                            "message": {"type": "string"},
                            "rule": {"type": "string"},
                        },
                    },
                },
            },
        }
    },
}

ACCEPTED = {
    "type": "object",
    "properties": {
        "request_id": {"type": "string", "format": "uuid"},
        "job_id": {"type": "string", "format": "uuid"},
        "market_symbol": {"type": "string"},
        "priority_score": {"type": "number", "minimum": 0, "maximum": 1},
        "priority_level": {"enum": ["critical", "high", "medium", "low"]},
        "deadline": {"type": ["string", "null"], "format": "date-time"},
        "estimated_processing_time_s": {"type": "number"},
        "at_risk": {"type": "boolean"},
        "at_risk_reason": {"type": ["string", "null"]},
        "explanation": {
            "type": "object",
            "description": "which rules matched, base score, reliability adjustment",
        },
    },
}

# (method, path, summary, request schema ref or None, success status, response schema or None)
ROUTES: tuple[tuple[str, str, str, Any, int, Any], ...] = (
    ("get", "/v1/health", "Daemon health, version, uptime, queue totals", None, 200, None),
    (
        "post",
        "/v1/requests",
        'Submit one request, a list, or {"requests": [...]}; 201 = durably committed; '
        "a batch is all or nothing",
        {
            "oneOf": [
                {"$ref": REF.format(model="RequestSubmission")},
                {"type": "array", "items": {"$ref": REF.format(model="RequestSubmission")}},
                {
                    "type": "object",
                    "properties": {
                        "requests": {
                            "type": "array",
                            "items": {"$ref": REF.format(model="RequestSubmission")},
                        }
                    },
                },
            ]
        },
        201,
        {
            "oneOf": [
                ACCEPTED,
                {
                    "type": "object",
                    "properties": {"requests": {"type": "array", "items": ACCEPTED}},
                },
            ]
        },
    ),
    (
        "get",
        "/v1/requests/{id}",
        "A request with its jobs",
        None,
        200,
        {"$ref": REF.format(model="PriorityRequest")},
    ),
    (
        "get",
        "/v1/jobs",
        "Jobs newest first; filters status, level, symbol, limit, cursor",
        None,
        200,
        None,
    ),
    ("get", "/v1/jobs/{id}", "A job with its request and state history", None, 200, None),
    (
        "patch",
        "/v1/jobs/{id}",
        'Change a QUEUED job\'s level: {"priority_level": ...}',
        None,
        200,
        None,
    ),
    (
        "post",
        "/v1/jobs/{id}/cancel",
        "Cancel a QUEUED or PROCESSING job (409 otherwise)",
        None,
        200,
        None,
    ),
    (
        "post",
        "/v1/jobs/{id}/retry",
        "Retry a FAILED job (409 otherwise; at most 3 retries)",
        None,
        200,
        None,
    ),
    (
        "get",
        "/v1/queues",
        "Per level: depth, in flight, oldest wait, next deadline, SLA met ratio, throughput",
        None,
        200,
        None,
    ),
    ("get", "/v1/sla", "Breached jobs (how late) and jobs at risk", None, 200, None),
    ("get", "/v1/rules", "Priority rules", None, 200, None),
    (
        "post",
        "/v1/rules",
        "Create a rule (condition checked at save time)",
        {"$ref": REF.format(model="PriorityRule")},
        201,
        {"$ref": REF.format(model="PriorityRule")},
    ),
    (
        "post",
        "/v1/rules/test",
        'Shadow-test candidate rules on recent requests: {"rules": [...], "mode": '
        '"merge"|"replace", "limit": N}',
        None,
        200,
        None,
    ),
    (
        "get",
        "/v1/rules/{id}",
        "A rule by id or name",
        None,
        200,
        {"$ref": REF.format(model="PriorityRule")},
    ),
    (
        "patch",
        "/v1/rules/{id}",
        "Change a rule's fields (new version)",
        None,
        200,
        {"$ref": REF.format(model="PriorityRule")},
    ),
    ("delete", "/v1/rules/{id}", "Delete a rule (its history stays)", None, 200, None),
    ("get", "/v1/rules/{id}/history", "Every version of a rule", None, 200, None),
    (
        "get",
        "/v1/sources",
        "Data sources: reliability, EMA response time, circuit state",
        None,
        200,
        None,
    ),
    (
        "patch",
        "/v1/sources/{id}",
        'Enable or disable a source: {"is_active": bool}',
        None,
        200,
        {"$ref": REF.format(model="DataSource")},
    ),
    (
        "get",
        "/v1/snapshots",
        "Snapshots newest first; filters symbol, date, limit",
        None,
        200,
        None,
    ),
    (
        "get",
        "/v1/snapshots/latest",
        "The latest snapshot of ?symbol=SYM with strikes",
        None,
        200,
        {"$ref": REF.format(model="GEXSnapshot")},
    ),
    (
        "get",
        "/v1/snapshots/{id}",
        "A snapshot with its levels and strikes",
        None,
        200,
        {"$ref": REF.format(model="GEXSnapshot")},
    ),
    ("get", "/v1/gex/{symbol}/history", "Total GEX over time for a symbol", None, 200, None),
    ("post", "/v1/query", 'Read-only SQL: {"sql": "SELECT ...", "limit": N}', None, 200, None),
    (
        "post",
        "/v1/ingest",
        "Upload a chain file (the body is the file; ?filename=&symbol=&level=)",
        None,
        201,
        ACCEPTED,
    ),
    (
        "post",
        "/v1/admin/archive",
        "Archive finished jobs older than the retention",
        None,
        200,
        None,
    ),
    (
        "get",
        "/v1/events",
        "WebSocket: a state snapshot, then events with sequence numbers (job.*, sla.*, "
        'snapshot.created, source.*, rule.*); {"type": "resync"} then a new snapshot after a gap',
        None,
        101,
        None,
    ),
    ("get", "/metrics", "Prometheus text format", None, 200, None),
    ("get", "/v1/openapi.json", "This document", None, 200, None),
)

ERROR_STATUSES = {
    "400": "malformed body (not JSON, empty)",
    "403": "the peer's uid may not use the socket",
    "404": "unknown id or endpoint",
    "409": "illegal state transition",
    "413": "body too large",
    "422": "validation failed: details carry field paths",
    "503": "the daemon is shutting down",
}


@functools.cache
def openapi_document() -> dict[str, Any]:
    models: list[type[BaseModel]] = [
        RequestSubmission,
        PriorityRequest,
        ProcessingJob,
        JobEvent,
        DataSource,
        PriorityRule,
        GEXSnapshot,
    ]
    pairs: list[tuple[type[BaseModel], Literal["serialization"]]] = [
        (m, "serialization") for m in models
    ]
    _, defs = models_json_schema(pairs, ref_template=REF)
    schemas: dict[str, Any] = dict(defs.get("$defs", {}))
    schemas["Error"] = ERROR
    schemas["Accepted"] = ACCEPTED
    paths: dict[str, Any] = {}
    for method, path, summary, request, status, response in ROUTES:
        op: dict[str, Any] = {
            "summary": summary,
            "responses": {
                str(status): {
                    "description": "success",
                    **({"content": {"application/json": {"schema": response}}} if response else {}),
                },
                **{
                    code: {
                        "description": text,
                        "content": {
                            "application/json": {"schema": {"$ref": REF.format(model="Error")}}
                        },
                    }
                    for code, text in ERROR_STATUSES.items()
                },
            },
        }
        if "{id}" in path or "{symbol}" in path:
            name = "symbol" if "{symbol}" in path else "id"
            op["parameters"] = [
                {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
            ]
        if request is not None:
            op["requestBody"] = {
                "required": True,
                "content": {"application/json": {"schema": request}},
            }
        paths.setdefault(path, {})[method] = op
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "gexdaemon socket API",
            "version": __version__,
            "description": "HTTP/1.1 + JSON over the daemon's Unix socket: "
            "curl --unix-socket var/run/gexd.sock http://localhost/v1/health",
        },
        "paths": paths,
        "components": {"schemas": schemas},
    }
