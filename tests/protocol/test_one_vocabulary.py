"""One name per fact: the wire shapes, the domain models and the database columns agree.

A field renamed in one place and not the others fails here, before a user meets it
(the way `gexdaemon rules test` once read `before` while the API sent `levels_before`).
"""

from __future__ import annotations

import ast
import typing

import msgspec
import pytest

from gexdaemon.api.openapi import openapi_document
from gexdaemon.api.server import HANDLERS
from gexdaemon.core import models
from gexdaemon.protocol import routes
from gexdaemon.protocol import shapes as s
from gexdaemon.storage import rows

MIRRORS = [
    shape
    for shape in vars(s).values()
    if isinstance(shape, type) and issubclass(shape, s.Shape) and shape.mirrors
]


def model_names(model: type[models.DomainModel]) -> set[str]:
    return set(model.model_fields) | set(model.model_computed_fields)


def test_every_mirroring_shape_was_found() -> None:
    assert {m.mirrors for m in MIRRORS} >= {
        "RequestSubmission",
        "PriorityRequest",
        "ProcessingJob",
        "JobEvent",
        "PriorityRule",
        "DataSource",
        "GEXStrike",
        "GEXSnapshot",
    }


@pytest.mark.parametrize("shape", MIRRORS, ids=lambda m: m.__name__)
def test_a_wire_shape_has_its_models_fields_and_only_its_declared_extras(
    shape: type[s.Shape],
) -> None:
    model = getattr(models, shape.mirrors)
    wire = set(shape.__struct_fields__)
    assert wire - shape.extras == model_names(model), (
        f"{shape.__name__} and {model.__name__} name different fields"
    )
    assert shape.extras <= wire


def test_a_job_row_is_job_and_request_facts_plus_what_it_derives() -> None:
    derived = {
        "source",  # the request's source as its base URL
        "at_risk_reason",
        "estimated_processing_time_s",  # PriorityRequest.estimated_processing_time, in seconds
        "processing_duration_s",  # ProcessingJob.processing_duration, in seconds
        "snapshot_id",
    }
    known = model_names(models.ProcessingJob) | model_names(models.PriorityRequest)
    assert set(s.JobRow.__struct_fields__) - derived <= known


@pytest.mark.parametrize(
    ("table", "model", "extra_columns"),
    [
        (rows.REQUESTS, models.PriorityRequest, set()),
        (rows.JOBS, models.ProcessingJob, set()),
        (rows.EVENTS, models.JobEvent, set()),
        (rows.SOURCES, models.DataSource, set()),
        (rows.RULES, models.PriorityRule, set()),
    ],
    ids=lambda v: getattr(v, "name", getattr(v, "__name__", "")),
)
def test_a_table_has_its_models_fields(
    table: rows.TableSpec, model: type[models.DomainModel], extra_columns: set[str]
) -> None:
    columns = set(table.column_names)
    # Derived fields (a job's duration, a source's score) may be stored where queries need them.
    assert columns - extra_columns <= model_names(model), (
        f"{table.name} has columns its model lacks"
    )
    assert set(model.model_fields) <= columns, f"{model.__name__} has fields {table.name} lacks"


def test_snapshot_rows_and_strike_rows_match_the_wire() -> None:
    assert set(rows.SNAPSHOTS.column_names) == set(s.SnapshotSummary.__struct_fields__)
    assert set(rows.STRIKES.column_names) - {"snapshot_id", "snapshot_date"} == set(
        s.StrikeRow.__struct_fields__
    )


def test_every_route_has_its_handler_and_its_operation() -> None:
    assert set(HANDLERS) == {r.name for r in routes.ROUTES}
    doc = openapi_document()
    operations = {op["operationId"] for methods in doc["paths"].values() for op in methods.values()}
    assert operations == {r.name for r in routes.ROUTES}


def test_every_client_call_is_a_route() -> None:
    from gexdaemon.client.calls import Calls

    calls = {name for name in vars(Calls) if not name.startswith("_")} - {"origin"}
    assert {r.name for r in routes.ROUTES} - {"events"} == calls


def test_every_event_type_names_its_data_shape() -> None:
    from gexdaemon.core.vocab import EventType

    assert set(s.EVENT_DATA) == set(EventType)


def test_the_openapi_schema_of_each_answer_is_the_shape_the_client_decodes() -> None:
    doc = openapi_document()
    schemas = doc["components"]["schemas"]
    for route in routes.ROUTES:
        answer = route.answer
        members = typing.get_args(answer) or (answer,)
        for member in members:
            if isinstance(member, type) and issubclass(member, msgspec.Struct):
                documented = set(schemas[member.__name__]["properties"])
                assert documented == {f.encode_name for f in msgspec.structs.fields(member)}, (
                    route.name
                )


def _shape_of(annotation: ast.expr | None) -> type[s.Shape] | None:
    """`s.X`, `Sequence[s.X]`, `list[s.X]`, `Col[s.X]` -> X (a wire shape), else None."""
    if annotation is None:
        return None
    if isinstance(annotation, ast.Subscript):
        return _shape_of(annotation.slice)
    if (
        isinstance(annotation, ast.Attribute)
        and isinstance(annotation.value, ast.Name)
        and annotation.value.id == "s"
    ):
        found = getattr(s, annotation.attr, None)
        return found if isinstance(found, type) and issubclass(found, s.Shape) else None
    return None


def _reads(module_path: str) -> list[tuple[str, int, type[s.Shape], str]]:
    """Every `param.name` read where `param` is annotated as a wire shape (or a list of one),
    and every lambda's `x.name` inside `Col(...)` columns of a `Col[s.X]`-typed table."""
    from pathlib import Path

    tree = ast.parse(Path(module_path).read_text())
    out = []
    for fn in ast.walk(tree):
        if not isinstance(fn, ast.FunctionDef):
            continue
        typed = {a.arg: _shape_of(a.annotation) for a in fn.args.args + fn.args.kwonlyargs}
        typed = {name: shape for name, shape in typed.items() if shape is not None}
        for node in ast.walk(fn):
            if (
                isinstance(node, ast.Attribute)
                and isinstance(node.value, ast.Name)
                and node.value.id in typed
                and isinstance(node.ctx, ast.Load)
            ):
                out.append((fn.name, node.lineno, typed[node.value.id], node.attr))
    return out


@pytest.mark.parametrize(
    ("module", "at_least"),
    [("gexdaemon/cli/render.py", 20), ("gexdaemon/cli/remote_verbs.py", 3)],
)
def test_what_the_cli_prints_is_read_from_fields_the_wire_has(module: str, at_least: int) -> None:
    """The `rules test` crash (the renderer read `before`; the wire said `levels_before`)
    cannot come back: every field a renderer reads from a wire shape exists on it."""
    from tests.conftest import REPO

    reads = _reads(str(REPO / module))
    assert len(reads) >= at_least  # the scan sees the renderers
    missing = [
        f"{fn}:{line} reads {shape.__name__}.{attr}"
        for fn, line, shape, attr in reads
        if attr not in shape.__struct_fields__ and not hasattr(shape, attr)
    ]
    assert not missing, missing
