"""One name per fact: the wire shapes, the domain models and the database columns agree.

A field renamed in one place and not the others fails here, before a user meets it
(the way `gexdaemon rules test` once read `before` while the API sent `levels_before`).
"""

from __future__ import annotations

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
