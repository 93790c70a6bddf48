"""What the wire accepts where the OpenAPI document and msgspec read JSON differently."""

from __future__ import annotations

import pytest
from multidict import MultiDict

from gexdaemon.api import wire
from gexdaemon.core.errors import InvalidInput
from gexdaemon.protocol import routes
from gexdaemon.protocol import shapes as s


def test_a_whole_number_written_as_a_float_is_an_integer() -> None:
    # JSON Schema's "integer" takes 3.0; so does the daemon, and only where an int goes.
    assert wire.fit({"mode": "replace", "limit": 300.0}, s.ShadowTest, what="x").limit == 300
    assert wire.fit({"sql": "SELECT 1", "limit": 5.0}, s.QueryBody, what="x").limit == 5
    with pytest.raises(InvalidInput, match="limit"):
        wire.fit({"sql": "SELECT 1", "limit": 5.5}, s.QueryBody, what="x")
    with pytest.raises(InvalidInput, match="priority_level"):
        wire.fit({"priority_level": 1.0}, s.JobChange, what="x")


def test_a_query_parameter_given_is_never_null() -> None:
    with pytest.raises(InvalidInput, match="status: is not a value"):
        wire.fit_query(MultiDict(status="null"), routes.JobFilter)
    with pytest.raises(InvalidInput, match="cursor"):
        wire.fit_query(MultiDict(cursor=""), routes.JobFilter)
    assert wire.fit_query(MultiDict(symbol="null"), routes.JobFilter).symbol == "null"


def test_a_snapshot_date_must_be_a_real_date() -> None:
    assert str(wire.fit_query(MultiDict(date="2026-02-03"), routes.SnapshotFilter).date) == (
        "2026-02-03"
    )
    with pytest.raises(InvalidInput, match="date"):
        wire.fit_query(MultiDict(date="2026-02-30"), routes.SnapshotFilter)


def test_every_operation_documents_its_answers_and_its_links_resolve() -> None:
    from gexdaemon.api.openapi import openapi_document

    doc = openapi_document()
    by_id = {op["operationId"]: op for methods in doc["paths"].values() for op in methods.values()}
    assert set(by_id) == {r.name for r in routes.ROUTES}
    for route in routes.ROUTES:
        answers = by_id[route.name]["responses"]
        assert str(route.status) in answers and "405" in answers, route.name
        assert "Allow" in answers["405"]["headers"], route.name
        for status in route.error_statuses:
            assert answers[str(status)]["content"]["application/json"], (route.name, status)
        for link in answers[str(route.status)].get("links", {}).values():
            target = by_id[link["operationId"]]
            names = {p["name"] for p in target.get("parameters", [])}
            for param in link["parameters"]:
                assert param.removeprefix("query.") in names, (route.name, param)
