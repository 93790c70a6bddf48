"""Idempotency keys: a script that retries a submission gets its first job back, never a
second one, across a restart, in batches, from the drop folder and from the CLI."""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from gexdaemon.client import ApiError
from tests.daemon.harness import RunningDaemon, running_daemon
from tests.reliability.fuzzing import drop_outcome, send

SOURCE = "http://127.0.0.1:9/idem/_SPX.json"  # never fetched: the source is disabled


@pytest.fixture(scope="module")
def idem() -> Iterator[RunningDaemon]:
    with running_daemon() as d:
        c = d.client()
        c.submit({"source_url": SOURCE, "data_type": "historical", "market_symbol": "SPX"})
        c.set_source_active("127.0.0.1:9", False)  # jobs stay queued: nothing but intake here
        yield d


def request(tag: str, **extra: Any) -> dict[str, Any]:
    return {
        "source_url": f"{SOURCE}?tag={tag}",
        "data_type": "snapshot",
        "market_symbol": "SPX",
        "metadata": {"tag": tag},
        **extra,
    }


def post(d: RunningDaemon, body: Any, key: str | None = None) -> Any:
    headers = {"Content-Type": "application/json"}
    if key is not None:
        headers["Idempotency-Key"] = key
    return send(d, "POST", "/v1/requests", json.dumps(body).encode(), headers)


def jobs_tagged(d: RunningDaemon, tag: str) -> int:
    rows = d.client().query(
        f"SELECT count(*) FROM priority_requests WHERE json_extract_string(metadata, '$.tag') = '{tag}'"
    )["rows"]
    return int(rows[0][0])


def test_a_repeat_with_the_same_key_answers_with_the_first_job(idem: RunningDaemon) -> None:
    key = f"retry-{uuid.uuid4()}"
    first = post(idem, request("a", idempotency_key=key))
    again = post(idem, request("a", idempotency_key=key))
    assert first.status == 201 and again.status == 200
    assert again.headers.get("Idempotent-Replayed") == "true"
    a, b = first.json(), again.json()
    assert (b["job_id"], b["request_id"]) == (a["job_id"], a["request_id"])
    assert a["replayed"] is False and b["replayed"] is True
    assert jobs_tagged(idem, "a") == 1


def test_the_header_works_like_the_field(idem: RunningDaemon) -> None:
    key = f"hdr-{uuid.uuid4()}"
    first = post(idem, request("h"), key=key).json()
    again = post(idem, request("h", idempotency_key=key)).json()  # the field, same key
    assert again["job_id"] == first["job_id"] and again["replayed"] is True
    # A key in the body wins over the header, for a single request as for a batch entry.
    own_key = f"own-{uuid.uuid4()}"
    own = post(idem, request("h", idempotency_key=own_key), key=key)
    assert own.status == 201
    assert own.json()["job_id"] != first["job_id"] and own.json()["replayed"] is False
    repeat = post(idem, request("h", idempotency_key=own_key)).json()
    assert repeat["job_id"] == own.json()["job_id"] and repeat["replayed"] is True


def test_a_key_reused_for_a_different_request_is_refused_with_the_first_use(
    idem: RunningDaemon,
) -> None:
    key = f"reuse-{uuid.uuid4()}"
    first = post(idem, request("r1", idempotency_key=key)).json()
    other = post(idem, request("r2", idempotency_key=key))
    assert other.status == 409
    message = other.json()["error"]["message"]
    assert key in message and first["job_id"][-8:] in message and "different request" in message
    assert jobs_tagged(idem, "r2") == 0


def test_a_bad_key_is_a_422_naming_the_field(idem: RunningDaemon) -> None:
    answer = post(idem, request("bad", idempotency_key="has space"))
    assert answer.status == 422
    assert answer.json()["error"]["details"][0]["path"] == "idempotency_key"
    header = post(idem, request("bad"), key="x" * 201)
    assert header.status == 422
    assert header.json()["error"]["details"][0]["path"] == "Idempotency-Key"


def test_a_batch_under_one_header_key_repeats_as_a_whole(idem: RunningDaemon) -> None:
    key = f"batch-{uuid.uuid4()}"
    batch = {"requests": [request("b0"), request("b1")]}
    first = post(idem, batch, key=key)
    again = post(idem, batch, key=key)
    assert first.status == 201 and again.status == 200
    assert [r["job_id"] for r in again.json()["requests"]] == [
        r["job_id"] for r in first.json()["requests"]
    ]
    grown = post(idem, {"requests": [request("b0"), request("b1"), request("b2")]}, key=key)
    assert grown.status == 201  # one new entry: 201, and each entry says what it is
    flags = [r["replayed"] for r in grown.json()["requests"]]
    assert flags == [True, True, False]
    assert (jobs_tagged(idem, "b0"), jobs_tagged(idem, "b2")) == (1, 1)


def test_concurrent_repeats_make_one_job(idem: RunningDaemon) -> None:
    key = f"race-{uuid.uuid4()}"
    answers: list[str] = []

    def go() -> None:
        c = idem.client()
        answers.append(c.submit(request("race"), idempotency_key=key)["job_id"])

    threads = [threading.Thread(target=go) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(answers) == 8 and len(set(answers)) == 1
    assert jobs_tagged(idem, "race") == 1


def test_a_drop_file_dropped_twice_makes_one_job(idem: RunningDaemon) -> None:
    key = f"drop-{uuid.uuid4()}"
    body = json.dumps(request("drop", idempotency_key=key)).encode()
    receipts = []
    for name in ("req_first.json", "req_again.json"):
        part = idem.drop / f".{name}.part"
        part.write_bytes(body)
        part.rename(idem.drop / name)
        kind, receipt = drop_outcome(idem, name)
        assert kind == "processed", receipt
        receipts.append(receipt["requests"][0])
    assert receipts[0]["job_id"] == receipts[1]["job_id"]
    assert receipts[1]["replayed"] is True and not receipts[0].get("replayed")
    assert jobs_tagged(idem, "drop") == 1


def test_the_cli_says_nothing_new_was_made(idem: RunningDaemon) -> None:
    key = f"cli-{uuid.uuid4()}"
    argv = ["submit", "--url", f"{SOURCE}?tag=cli", "--symbol", "SPX", "--meta", "tag=cli"]
    first = idem.cli(*argv, "--idempotency-key", key, check=True)
    again = idem.cli(*argv, "--idempotency-key", key, check=True)
    assert "idempotency key" not in first.stdout
    assert "nothing new: the idempotency key was used before" in again.stdout
    job = first.stdout.splitlines()[1].split()[0]  # the short id in the table's first row
    assert job in again.stdout
    assert jobs_tagged(idem, "cli") == 1


def test_a_key_outlives_a_restart() -> None:
    with running_daemon() as d:
        c = d.client()
        first = c.submit(request("restart"), idempotency_key="keep-me")
        d.stop()
        d.start()
        again = d.client().submit(request("restart"), idempotency_key="keep-me")
        assert again["job_id"] == first["job_id"] and again["replayed"] is True
        with pytest.raises(ApiError) as refused:
            d.client().submit(request("restart-2"), idempotency_key="keep-me")
        assert refused.value.status == 409
