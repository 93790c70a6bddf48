"""End to end in a real terminal: `gextui` in tmux against a real daemon, keys in, screen out.

docs/tui.md describes the same check by hand. The tmux server is our own
(`-L`), so nothing else running on the machine is touched.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator

import pytest

from gexdaemon.client import Client
from tests.daemon.harness import (
    REPO,
    FeedServer,
    RunningDaemon,
    make_daemon,
    start_feed_server,
    wait_until,
)

pytestmark = pytest.mark.skipif(
    shutil.which("tmux") is None, reason="tmux is not installed (apt-get install tmux)"
)


@pytest.fixture(scope="module")
def desk() -> Iterator[tuple[RunningDaemon, FeedServer]]:
    feeds = start_feed_server()
    daemon = make_daemon().start()
    try:
        yield daemon, feeds
    finally:
        daemon.stop()
        feeds.stop()


class Tmux:
    def __init__(self, name: str) -> None:
        self.name = name

    def run(self, *args: str) -> str:
        done = subprocess.run(
            ["tmux", "-L", self.name, *args], capture_output=True, text=True, timeout=20
        )
        if done.returncode != 0:
            raise AssertionError(f"tmux {' '.join(args)} failed: {done.stderr}")
        return done.stdout

    def screen(self) -> str:
        return self.run("capture-pane", "-p", "-t", "gextui")

    def wait_for(self, *needles: str, timeout: float = 30.0) -> str:
        def showing() -> str | None:
            text = self.screen()
            return text if all(n in text for n in needles) else None

        try:
            return wait_until(showing, timeout=timeout, every=0.2, what=f"{needles} on screen")
        except AssertionError:
            size = self.run(
                "display", "-p", "-t", "gextui", "#{window_width}x#{window_height}"
            ).strip()
            raise AssertionError(
                f"{needles} never appeared; the {size} screen was:\n{self.screen()}"
            ) from None


@pytest.mark.parametrize(("width", "height"), [(80, 24), (120, 35), (160, 50)])
def test_gextui_in_a_real_terminal(
    desk: tuple[RunningDaemon, FeedServer], width: int, height: int
) -> None:
    daemon, feeds = desk
    with Client(daemon.socket) as gexd:
        for symbol, path, data_type in (
            ("SPX", "_SPX.json", "real_time"),
            ("SPY", "SPY_quotedata.csv", "snapshot"),
        ):
            accepted = gexd.submit(
                {
                    "source_url": f"{feeds.url}{path}",
                    "market_symbol": symbol,
                    "data_type": data_type,
                }
            )
            daemon.wait_job(accepted["job_id"])
        # Something waiting in the queue while we look: a slow fetch holds a worker.
        gexd.submit(
            {
                "source_url": f"{feeds.url}SPX_quotedata.csv?delay=20",
                "market_symbol": "SPX",
                "data_type": "snapshot",
            }
        )

    tmux = Tmux(f"gextui-test-{os.getpid()}-{width}")
    # pytest exports COLUMNS=80 and LINES=24, which would beat the pane's real size.
    command = (
        f"env -u COLUMNS -u LINES TEXTUAL_ANIMATIONS=none {sys.executable} -m gextui "
        f"--socket {daemon.socket}"
    )
    tmux.run(
        "new-session",
        "-d",
        "-s",
        "gextui",
        "-x",
        str(width),
        "-y",
        str(height),
        "-c",
        str(REPO),
        command,
    )
    try:
        overview = tmux.wait_for("CONNECTED", "CRITICAL", "QUEUED", "SPX")
        assert "last update" in overview and "GEX $/1%" in overview
        tmux.run("send-keys", "-t", "gextui", "4")
        chart = tmux.wait_for("STRIKE", "spot", "zero γ", "total GEX")
        assert "│" in chart and ("█" in chart)
        tmux.run("send-keys", "-t", "gextui", "2")
        tmux.wait_for("LIVE", "PROCESSING", "WHY")
        tmux.run("send-keys", "-t", "gextui", "3")
        tmux.wait_for("BREACHED", "AT RISK")
        tmux.run("send-keys", "-t", "gextui", "q")
        # q quits: the session (and our tmux server with it) ends.
        wait_until(lambda: not _server_up(tmux), timeout=15, what="gextui to quit on q")
    finally:
        if _server_up(tmux):
            tmux.run("kill-server")


def _server_up(tmux: Tmux) -> bool:
    return (
        subprocess.run(
            ["tmux", "-L", tmux.name, "has-session"], capture_output=True, timeout=10
        ).returncode
        == 0
    )
