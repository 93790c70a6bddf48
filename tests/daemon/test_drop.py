"""The drop folder: request files, chain files, junk, half-written files, files from before start."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path
from typing import Any

import pytest

from tests.daemon.harness import SAMPLE_FEEDS, FeedServer, RunningDaemon, make_daemon, wait_until


def processed(daemon: RunningDaemon, name: str) -> Path | None:
    found = list((daemon.drop / "processed").glob(f"*/{name}"))
    return found[0] if found else None


def rejected_report(daemon: RunningDaemon, name: str) -> dict[str, object] | None:
    path = daemon.drop / "rejected" / f"{name}.error.json"
    return json.loads(path.read_text()) if path.exists() else None


def drop_atomically(daemon: RunningDaemon, name: str, data: bytes) -> Path:
    tmp = daemon.drop / f".{name}.part"
    tmp.write_bytes(data)
    final = daemon.drop / name
    tmp.rename(final)
    return final


def receipt_of(daemon: RunningDaemon, name: str, data: bytes) -> dict[str, Any]:
    """Drop `data` as `name` and read the receipt written beside the processed file."""
    drop_atomically(daemon, name, data)
    moved = wait_until(lambda: processed(daemon, name), what=f"{name} to be processed")
    # A chain file moves before its job is queued (its source_url names where it stays),
    # so its receipt comes a moment after it.
    written = moved.with_name(f"{name}.receipt.json")
    wait_until(written.exists, what=f"{name}'s receipt")
    receipt: dict[str, Any] = json.loads(written.read_text())
    return receipt


def test_a_request_file_is_queued_and_receipted(daemon: RunningDaemon, feeds: FeedServer) -> None:
    payload = {
        "requests": [
            {
                "source_url": f"{feeds.url}SPY.json",
                "data_type": "snapshot",
                "market_symbol": "SPY",
                "metadata": {"open_interest": 20000, "volume": 9000},
            },
            {
                "source_url": f"{feeds.url}_NDX.json",
                "data_type": "real_time",
                "market_symbol": "NDX",
            },
        ]
    }
    receipt = receipt_of(daemon, "desk_batch.json", json.dumps(payload).encode())
    levels = [r["priority_level"] for r in receipt["requests"]]
    assert levels == ["high", "critical"]  # high volume rule; real-time index rule
    for item in receipt["requests"]:
        assert daemon.wait_job(item["job_id"])["job"]["status"] == "completed"
    assert not (daemon.drop / "desk_batch.json").exists()


def test_a_toml_request_file(daemon: RunningDaemon, feeds: FeedServer) -> None:
    text = f'source_url = "{feeds.url}SPX_strikes.csv"\ndata_type = "historical"\nmarket_symbol = "SPX"\n'
    receipt = receipt_of(daemon, "one.toml", text.encode())
    assert receipt["requests"][0]["priority_level"] == "low"


def test_one_bad_entry_rejects_the_file_and_says_which(
    daemon: RunningDaemon, feeds: FeedServer
) -> None:
    payload = [
        {"source_url": f"{feeds.url}SPY.json", "data_type": "snapshot", "market_symbol": "SPY"},
        {
            "source_url": f"{feeds.url}SPY.json",
            "data_type": "snapshot",
            "market_symbol": "NOTREAL1",
        },
    ]
    drop_atomically(daemon, "mixed.json", json.dumps(payload).encode())
    report = wait_until(
        lambda: rejected_report(daemon, "mixed.json"), what="mixed.json to be rejected"
    )
    assert (daemon.drop / "rejected" / "mixed.json").read_bytes() == json.dumps(
        payload
    ).encode()  # kept as is
    details = report["error"]["details"]  # type: ignore[index]
    assert [d["path"] for d in details] == ["1.market_symbol"]
    assert (
        "nothing" in report["error"]["message"] or "none was accepted" in report["error"]["message"]
    )  # type: ignore[index]


@pytest.mark.parametrize(
    ("name", "data", "needle"),
    [
        ("junk.bin", bytes(range(256)) * 8, "binary"),
        ("broken.json", b'{"requests": [ {"source_url": ', "not valid JSON"),
        ("empty.csv", b"", "empty"),
        (
            "NOTREAL1_chain.csv",
            (SAMPLE_FEEDS / "SPX_strikes.csv").read_bytes()[:0] + b"a,b\n1,2\n",
            "not a supported",
        ),
    ],
)
def test_bad_files_are_quarantined_with_an_explanation(
    daemon: RunningDaemon, name: str, data: bytes, needle: str
) -> None:
    drop_atomically(daemon, name, data)
    report = wait_until(lambda: rejected_report(daemon, name), what=f"{name} to be rejected")
    assert needle in json.dumps(report), report
    assert (daemon.drop / "rejected" / name).read_bytes() == data  # never deleted, never altered


def test_a_chain_file_becomes_a_snapshot(daemon: RunningDaemon) -> None:
    c = daemon.client()
    receipt = receipt_of(
        daemon, "NDX_quotedata.csv", (SAMPLE_FEEDS / "NDX_quotedata.csv").read_bytes()
    )
    job = daemon.wait_job(receipt["requests"][0]["job_id"])
    assert job["job"]["status"] == "completed", job
    snap = c.snapshot(job["snapshot_id"])
    assert snap["market_symbol"] == "NDX"


def test_ignored_names_stay_where_they_are(daemon: RunningDaemon) -> None:
    for name in (".hidden.json", "half.json.tmp", "upload.csv.part"):
        (daemon.drop / name).write_text("{}")
    marker = drop_atomically(
        daemon, "SPX_strikes.ndjson", (SAMPLE_FEEDS / "SPX_strikes.ndjson").read_bytes()
    )
    wait_until(lambda: not marker.exists(), what="the marker file to be taken")
    for name in (".hidden.json", "half.json.tmp", "upload.csv.part"):
        assert (daemon.drop / name).exists()


def test_a_slow_writer_is_waited_for_not_rejected(daemon: RunningDaemon) -> None:
    data = (SAMPLE_FEEDS / "SPX_strikes.csv").read_bytes()
    target = daemon.drop / "SPX_slowly.csv"
    with target.open("wb") as fh:
        for i in range(0, len(data), len(data) // 6):
            fh.write(data[i : i + len(data) // 6])
            fh.flush()
            time.sleep(0.06)  # a writer that trickles, slower than the poll, faster than settle
    moved = wait_until(
        lambda: processed(daemon, "SPX_slowly.csv"), what="the slow file to be processed"
    )
    assert moved.read_bytes() == data
    assert rejected_report(daemon, "SPX_slowly.csv") is None


def test_files_that_arrived_while_down_are_picked_up_at_start(feeds: FeedServer) -> None:
    d = make_daemon()
    d.drop.mkdir(parents=True)
    (d.drop / "early.json").write_text(
        json.dumps(
            {"source_url": f"{feeds.url}SPY.json", "data_type": "snapshot", "market_symbol": "SPY"}
        )
    )
    shutil.copyfile(SAMPLE_FEEDS / "SPX_strikes.csv", d.drop / "SPX_early.csv")
    d.start()
    try:
        for name in ("early.json", "SPX_early.csv"):
            wait_until(lambda n=name: processed(d, n), what=f"{name} to be processed")
    finally:
        assert d.stop() == 0
