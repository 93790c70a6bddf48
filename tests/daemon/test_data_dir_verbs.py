"""The verbs that work on the data directory: through the running daemon, or on the files
themselves when none runs (`archive`, `lake rebuild`), with what they say to a person."""

from __future__ import annotations

import json

from tests.daemon.harness import SAMPLE_FEEDS, make_daemon


def test_archive_and_lake_rebuild_with_and_without_a_running_daemon() -> None:
    daemon = make_daemon().start()
    try:
        done = daemon.cli("--json", "ingest", str(SAMPLE_FEEDS / "SPY.json"), check=True)
        snapshot_id = json.loads(done.stdout)["snapshot_id"]
        live = daemon.cli("lake", "rebuild", check=True).stdout
        assert "1 snapshot file(s); 0 added to this database, 1 already in it" in live
        refused = daemon.cli("archive", "--older-than-days", "0")
        assert refused.returncode != 0 and "without a running daemon" in refused.stderr
    finally:
        daemon.stop()

    archived = daemon.cli("archive", "--older-than-days", "0", check=True).stdout
    assert archived.startswith("archived 1 jobs")
    for path in daemon.data_dir.glob("gex.duckdb*"):
        path.unlink()  # the database is lost; the lake is not
    rebuilt = daemon.cli("--json", "lake", "rebuild", check=True)
    report = json.loads(rebuilt.stdout)
    assert (report["files"], report["added"], report["present"]) == (1, 1, 0)
    daemon.start()
    try:
        listed = daemon.client().snapshots()["snapshots"]
        assert [s["snapshot_id"] for s in listed] == [snapshot_id]
    finally:
        daemon.stop()
