"""Fuzzing a running daemon (bounded; bench/fuzz.py runs longer): API bodies as raw bytes,
HTTP garbage, query strings, rule conditions, drop-folder files, and mutations of every
chain format. The daemon never crashes or hangs, every input is accepted or refused with
a clear error, and nothing accepted earlier is lost."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.daemon.harness import SAMPLE_FEEDS, FeedServer, RunningDaemon, running_daemon
from tests.reliability.fuzzing import (
    CONTENT_TYPES,
    DROP_PREFIXES,
    ENDPOINTS,
    GARBAGE_HEADS,
    QUERY_PATHS,
    FuzzTarget,
    Mutation,
    chain_samples,
    daemon_problems,
    drop_contents,
    drop_names,
    drop_outcome,
    encoded,
    json_values,
    lost_requests,
    mutated_chains,
    parse_problems,
    query_values,
    request_bodies,
    rule_bodies,
    send,
    stray_quote,
)

# A small batch limit, so 413 is reachable by a fuzzed batch too.
FUZZ_CONFIG = """
[api]
max_batch = 20
"""


def bounded(n: int) -> settings:
    """A fixed set of `n` cases: CI runs the same ones every time (bench/fuzz.py explores)."""
    return settings(
        max_examples=n,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )


@pytest.fixture(scope="module")
def fuzz_daemon() -> Iterator[RunningDaemon]:
    with running_daemon(FUZZ_CONFIG) as d:
        yield d


@pytest.fixture(scope="module")
def target(fuzz_daemon: RunningDaemon, feeds: FeedServer) -> FuzzTarget:
    return FuzzTarget.prepare(fuzz_daemon, feeds.url)


def test_api_bodies_are_accepted_or_refused_clearly(target: FuzzTarget) -> None:
    @given(
        body=encoded(request_bodies(target.feed_url) | rule_bodies() | json_values),
        endpoint=st.sampled_from(ENDPOINTS),
        ctype=st.sampled_from(CONTENT_TYPES),
    )
    @bounded(150)
    def case(body: bytes, endpoint: tuple[str, str], ctype: str) -> None:
        assert target.api_case(body, endpoint, ctype) == []

    case()


def test_http_garbage_never_takes_the_daemon_down(target: FuzzTarget) -> None:
    @given(head=st.sampled_from(GARBAGE_HEADS), tail=st.binary(max_size=500))
    @bounded(40)
    def case(head: bytes, tail: bytes) -> None:
        assert target.garbage_case(head, tail) == []

    case()


def test_query_strings_are_checked(target: FuzzTarget) -> None:
    @given(template=st.sampled_from(QUERY_PATHS), value=query_values)
    @bounded(80)
    def case(template: str, value: str) -> None:
        assert target.query_case(template, value) == []

    case()


def test_rule_conditions_are_saved_or_refused_and_never_break_scoring(target: FuzzTarget) -> None:
    metadata = st.dictionaries(
        st.sampled_from(["open_interest", "volume", "x"]), json_values, max_size=3
    )

    @given(rule=rule_bodies(), metadata=metadata)
    @bounded(80)
    def case(rule: Any, metadata: dict[str, Any]) -> None:
        assert target.rule_case(rule, metadata) == []

    case()


def test_drop_files_end_processed_or_rejected(target: FuzzTarget) -> None:
    contents = drop_contents(target.feed_url, chain_samples(include_shared=False))
    files = st.lists(
        st.tuples(st.sampled_from(DROP_PREFIXES), drop_names(), contents), min_size=1, max_size=4
    )

    @given(files=files)
    @bounded(25)
    def case(files: list[tuple[str, str, bytes]]) -> None:
        assert target.drop_case(files) == []

    case()


def mutations_parse_or_are_refused(samples: list[tuple[str, bytes]], examples: int) -> None:
    @given(chain=mutated_chains(samples))
    @bounded(examples)
    def case(chain: Mutation) -> None:
        assert parse_problems(chain.name, chain.data) == [], chain

    case()


def test_sample_chain_mutations_parse_or_are_refused() -> None:
    mutations_parse_or_are_refused(chain_samples(include_shared=False), 300)


def test_shared_cboe_csv_mutations_parse_or_are_refused(shared_spx_csv: Path) -> None:
    mutations_parse_or_are_refused([(shared_spx_csv.name, shared_spx_csv.read_bytes())], 40)


def test_mutated_chains_through_the_daemon_end_with_a_clear_verdict(target: FuzzTarget) -> None:
    @given(chain=mutated_chains(chain_samples(include_shared=False)))
    @bounded(15)
    def case(chain: Mutation) -> None:
        assert target.ingest_case(chain) == []

    case()


def test_nothing_accepted_during_the_fuzzing_was_lost(target: FuzzTarget) -> None:
    accepted = target.accepted
    assert accepted.request_ids, "the fuzzing accepted no request at all: the strategies are off"
    assert lost_requests(target.d, accepted) == []
    assert daemon_problems(target.d) == []


def test_a_stray_quote_in_a_quote_table_spoils_only_its_own_row() -> None:
    """Found by the fuzzer. One stray double quote in a CBOE quote-table CSV made the
    csv module read the rest of the file as one field and raise csv.Error ("field larger
    than field limit"), which escaped the parser. A quote table has no multi-line cells, so
    each line is read on its own: the hand-edited row is excluded as malformed, by line."""
    assert parse_problems("SPY_quotedata.csv", stray_quote()) == []


def test_a_stray_quote_costs_one_row_not_the_snapshot(fuzz_daemon: RunningDaemon) -> None:
    """Before the fix the job was retried three times as a lost worker and ended with
    "internal error". Now it completes and the snapshot says which row was left out."""
    name = "SPY_stray_quote.csv"
    part = fuzz_daemon.drop / f".{name}.part"
    part.write_bytes(stray_quote(line=10))
    part.rename(fuzz_daemon.drop / name)
    kind, receipt = drop_outcome(fuzz_daemon, name)
    assert kind == "processed", receipt
    found = fuzz_daemon.wait_job(receipt["requests"][0]["job_id"])
    job = found["job"]
    assert job["status"] == "completed" and job["retry_count"] == 0, found
    snapshot = fuzz_daemon.client().snapshot(found["snapshot_id"])
    assert snapshot["excluded_rows"] == {"malformed_row": 2}, snapshot


def test_an_unknown_expiry_filter_is_refused_not_a_500(fuzz_daemon: RunningDaemon) -> None:
    """Found by the fuzzer: /v1/snapshots/latest?expiry_filter=0 answered 500 (a ValueError
    from the enum deep in the snapshot reader)."""
    answer = send(fuzz_daemon, "GET", "/v1/snapshots/latest?symbol=SPX&expiry_filter=0")
    assert answer.status == 422, answer.body
    error = answer.json()["error"]
    assert error["details"][0]["path"] == "expiry_filter" and "0dte" in error["message"]


def test_an_upload_with_a_stray_quote_is_not_a_500(fuzz_daemon: RunningDaemon) -> None:
    """The same stray quote through POST /v1/ingest, under a file name that names no
    symbol. Found by the fuzzer: csv.Error escaped while the daemon looked for the symbol
    and the answer was a 500. The file reads line by line now, and its contracts name
    the underlying (one rule for every entry point), so the upload is queued as SPY and
    its snapshot leaves out the one spoiled row, as the drop folder does."""
    answer = send(fuzz_daemon, "POST", "/v1/ingest?filename=quotes.csv", stray_quote())
    assert answer.status == 201, answer.body[:300]
    receipt = answer.json()
    assert receipt["market_symbol"] == "SPY"
    found = fuzz_daemon.wait_job(receipt["job_id"])
    assert found["job"]["status"] == "completed", found
    snapshot = fuzz_daemon.client().snapshot(found["snapshot_id"])
    assert snapshot["excluded_rows"] == {"malformed_row": 2}, snapshot


def test_a_json_file_that_is_not_utf8_is_refused_with_the_byte_and_line(
    fuzz_daemon: RunningDaemon,
) -> None:
    """Found by the fuzzer: a drop JSON file with one byte that is not UTF-8 raised
    UnicodeDecodeError (msgspec does not wrap it in DecodeError) and was rejected as an
    "internal error" with a position inside the bad fragment. Now the report names the
    byte and its line, as for any other bad file."""
    pretty = json.dumps(json.loads((SAMPLE_FEEDS / "SPX_strikes.json").read_bytes()), indent=1)
    data = pretty.encode()
    second_line = data.index(b"\n") + 3  # inside the first key of line 2
    data = data[:second_line] + b"\xf3" + data[second_line + 1 :]
    part = fuzz_daemon.drop / ".SPX_latin1.json.part"
    part.write_bytes(data)
    part.rename(fuzz_daemon.drop / "SPX_latin1.json")
    kind, report = drop_outcome(fuzz_daemon, "SPX_latin1.json")
    assert kind == "rejected", report
    message = report["error"]["message"]
    assert "not UTF-8" in message and "0xf3 at line 2" in message, message
    assert "internal error" not in message


def test_an_api_body_that_is_not_utf8_is_a_400_not_a_500(fuzz_daemon: RunningDaemon) -> None:
    answer = send(fuzz_daemon, "POST", "/v1/requests", b'{"market_symbol": "SP\xffX"}')
    assert answer.status == 400, answer.body
    assert "0xff at line 1" in answer.json()["error"]["message"]
