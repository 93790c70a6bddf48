"""`gexdaemon demo`: the README's main job starts, serves, ingests the sample feeds and stops."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from gexdaemon.client import Client
from tests.conftest import REPO
from tests.daemon.harness import demo_banner, wait_until


@pytest.mark.slow
def test_demo_runs_a_desk_mix_and_produces_snapshots() -> None:
    root = Path(tempfile.mkdtemp(prefix="gxdemo-"))
    sock = root / "gexd.sock"
    env = {k: v for k, v in os.environ.items() if not k.startswith("GEXD")}
    env.update(GEXD_DATA_DIR=str(root / "var"), GEXD_SOCKET=str(sock))
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gexdaemon",
            "demo",
            "--minutes",
            "0.4",
            "--exit-after",
            "--seed",
            "7",
        ],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        banner = demo_banner(proc)
        assert (
            "gexdaemon demo is running" in banner
            and "gextui" in banner
            and "curl --unix-socket" in banner
        )
        with Client(sock) as c:
            wait_until(
                lambda: c.query("SELECT count(*) FROM gex_snapshots")["rows"][0][0] >= 3,
                timeout=60,
                what="the demo's first snapshots",
            )
            wait_until(
                lambda: (
                    {"critical", "low"} <= {j["priority_level"] for j in c.jobs(limit=500)["jobs"]}
                ),
                timeout=60,
                what="CRITICAL and LOW requests in the mix",
            )
            assert c.latest_snapshot("SPX")["strikes"]
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err[-2000:]
        assert "demo traffic finished" in out
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    demo_dirs = list((root / "var" / "demo").iterdir())
    assert len(demo_dirs) == 1 and (demo_dirs[0] / "gex.duckdb").exists()
    assert not sock.exists()  # the demo leaves nothing running
