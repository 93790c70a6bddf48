"""Dashboard benchmark: frame flushes with 10,000 queued jobs under a steady event stream, and
attach-to-first-paint. Headless (`App.run_test`), on this machine's terminal-less driver.

Run from the repository root:
    /tmp/venv/bin/python bench/tui_bench.py [--jobs 10000] [--rate 200] [--seconds 8] [--no-daemon]

(a) recorded desk: a state snapshot holding `--jobs` queued jobs, played through the
    same link a live daemon feeds (`gextui.replay.ReplayDaemon`), then `--rate`
    events/s (jobs queued, started, completed; snapshots; source updates) for
    `--seconds` per view. For each flush (state -> widgets, inside batch_update)
    and the screen update that follows it: median and worst. Targets: worst
    flush <= 50 ms at 10,000 jobs; first paint after attach < 100 ms.
(b) baseline in the same process: the naive table (clear and re-add the shown rows
    every flush, and once all 10,000), and the ratio to (a).
(c) a real daemon (`gexdaemon run` in a temporary folder) holding `--jobs` queued
    jobs (its one source disabled, so they stay queued) and a steady stream of
    submissions: attach-to-first-paint through the socket, and flushes on the Jobs
    view. The daemon's first message carries its 2,000 most urgent live jobs.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(REPO))
import msgspec  # noqa: E402
from machine import describe, report_arguments  # noqa: E402
from machine import start_daemon as start_bench_daemon  # noqa: E402
from rich.text import Text  # noqa: E402
from textual.app import App, ComposeResult  # noqa: E402
from textual.widgets import DataTable  # noqa: E402

from gexdaemon.client import AsyncClient  # noqa: E402
from gexdaemon.protocol import shapes as s  # noqa: E402
from gextui.app import GexTui  # noqa: E402
from gextui.replay import ReplayDaemon  # noqa: E402
from gextui.views.jobs.filters import ROW_CAP  # noqa: E402
from gextui.views.jobs.table import COLUMN_KEYS, COLUMNS, static_cells, time_cells  # noqa: E402
from gextui.views.jobs.view import JobsView  # noqa: E402
from tests.tui import recording  # noqa: E402

SIZE = (160, 50)
DAEMON_CONFIG = """
[daemon]
workers = 4
[api]
max_batch = 10000
max_body_bytes = 67108864
[logging]
level = "warning"
"""
HELD_SOURCE = "http://127.0.0.1:9"  # never fetched: disabled before the jobs are queued


def ms(seconds: float) -> str:
    return f"{seconds * 1000:7.1f} ms"


def summary(name: str, values: list[float]) -> str:
    if not values:
        return f"  {name:<34} (none)"
    return (
        f"  {name:<34} median {ms(statistics.median(values))}   worst {ms(max(values))}"
        f"   n={len(values)}"
    )


class FrameClock:
    """Times each flush and the screen update that paints it (bench-only instrumentation)."""

    def __init__(self, app: GexTui) -> None:
        self.app = app
        self.flushes: list[float] = []
        self.paints: list[float] = []
        self.frames: list[float] = []
        self._pending: float | None = None
        self.first_data_paint_at: float | None = None
        self.attached_at: float | None = None
        flush = app.flush

        def timed_flush() -> None:
            started = time.perf_counter()
            flush()
            self._pending = time.perf_counter() - started
            if self.recording:
                self.flushes.append(self._pending)

        app.flush = timed_flush  # type: ignore[method-assign]
        self.recording = False
        apply_snapshot = app.desk.apply_snapshot

        def timed_snapshot(message: Any) -> None:
            apply_snapshot(message)
            if self.attached_at is None:
                self.attached_at = time.perf_counter()

        app.desk.apply_snapshot = timed_snapshot  # type: ignore[method-assign]

    def watch_screen(self) -> None:
        screen = self.app.screen
        update = screen._on_timer_update

        def timed_update() -> None:
            started = time.perf_counter()
            update()
            took = time.perf_counter() - started
            if self._pending is not None:
                if self.recording:
                    self.paints.append(took)
                    self.frames.append(self._pending + took)
                if self.first_data_paint_at is None and self.app.desk.link.connects:
                    self.first_data_paint_at = time.perf_counter()
                self._pending = None

        screen._on_timer_update = timed_update  # type: ignore[method-assign]

    def reset(self) -> None:
        self.flushes, self.paints, self.frames = [], [], []


class TimedTui(GexTui):
    """The app with a `FrameClock` hooked in before the link starts."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.animation_level = "none"
        self.frame_clock = FrameClock(self)

    def on_mount(self) -> None:
        # Textual also runs GexTui.on_mount (handlers run for every class in the MRO).
        self.frame_clock.watch_screen()


class Stream:
    """A steady event stream for the recorded desk: new jobs, starts, completions, snapshots."""

    def __init__(self, daemon: ReplayDaemon, queued: list[str], seq: int) -> None:
        self.daemon = daemon
        self.queued = queued
        self.running: list[str] = []
        self.seq = seq
        self.next_job = 10_000_000
        self.rng = random.Random(5)
        self.jobs: dict[str, dict[str, Any]] = {}

    def _emit(self, kind: str, data: dict[str, Any]) -> None:
        self.seq += 1
        self.daemon.push(
            {"seq": self.seq, "type": kind, "at": recording.DESK_NOW.isoformat(), "data": data}
        )

    def one(self) -> None:
        roll = self.rng.random()
        if roll < 0.34 or not self.queued:
            self.next_job += 1
            job = recording.job_summary(
                self.next_job,
                level=self.rng.choice(("critical", "high", "medium", "low")),
                status="queued",
                symbol=self.rng.choice(("SPX", "NDX", "SPY")),
                age_s=0.0,
            )
            self.jobs[job["job_id"]] = job
            self.queued.append(job["job_id"])
            self._emit("job.queued", job)
        elif roll < 0.67 or not self.running:
            job_id = self.queued.pop(self.rng.randrange(len(self.queued)))
            job = self.jobs[job_id] | {
                "status": "processing",
                "started_at": recording.DESK_NOW.isoformat(),
            }
            self.jobs[job_id] = job
            self.running.append(job_id)
            self._emit("job.started", job)
        elif roll < 0.97:
            job_id = self.running.pop(0)
            job = self.jobs.pop(job_id) | {
                "status": "completed",
                "completed_at": recording.DESK_NOW.isoformat(),
                "sla_status": "met",
            }
            self._emit("job.completed", job)
        elif roll < 0.99:
            snap = recording.snapshots()[0] | {
                "snapshot_id": f"s{self.seq}",
                "total_gex": self.rng.uniform(-8e9, 8e9),
            }
            self._emit("snapshot.created", snap)
        else:
            self._emit("source.updated", recording.sources()[0])

    async def run(self, rate: float, seconds: float) -> int:
        """Emit `rate` events a second, in 20 ms ticks, for `seconds`."""
        sent = 0
        started = time.perf_counter()
        while (elapsed := time.perf_counter() - started) < seconds:
            due = int(elapsed * rate)
            while sent < due:
                self.one()
                sent += 1
            await asyncio.sleep(0.02)
        return sent


def recorded_desk(n_jobs: int) -> tuple[ReplayDaemon, list[str], int]:
    jobs = []
    levels = ("critical", "high", "medium", "low")
    for i in range(n_jobs):
        job = recording.job_summary(
            100_000 + i,
            level=levels[i % 4],
            status="queued",
            symbol=("SPX", "NDX", "SPY")[i % 3],
            age_s=5.0 + (i % 1700),
        )
        jobs.append(job)
    snapshot = recording.state_snapshot(seq=1000, jobs=jobs)
    daemon = ReplayDaemon([snapshot], recording.responses(), label="recorded desk")
    # The stream's jobs carry their own summaries; the ones from the snapshot are looked up here.
    return daemon, [j["job_id"] for j in jobs], 1000


async def wait_for(condition: Callable[[], Any], pilot: Any, within_s: float = 60.0) -> None:
    give_up = time.perf_counter() + within_s
    while not condition():
        if time.perf_counter() > give_up:
            raise SystemExit("timed out waiting for the dashboard")
        await pilot.pause(0.01)


async def recorded_run(n_jobs: int, rate: float, seconds: float) -> dict[str, Any]:
    daemon, queued, seq = recorded_desk(n_jobs)
    stream = Stream(daemon, queued, seq)
    stream.jobs.update({j["job_id"]: j for j in daemon._messages[0]["state"]["jobs"]})
    app = TimedTui(daemon, clock=lambda: recording.DESK_NOW, poll_s=1.0)
    clock = app.frame_clock
    out: dict[str, Any] = {}
    started = time.perf_counter()
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(lambda: clock.first_data_paint_at is not None, pilot)
        out["start_to_paint"] = clock.first_data_paint_at - started  # type: ignore[operator]
        out["attach_to_paint"] = clock.first_data_paint_at - clock.attached_at  # type: ignore[operator]
        switch = time.perf_counter()
        await pilot.press("2")
        await pilot.pause()
        out["switch_to_jobs"] = time.perf_counter() - switch
        jobs = app.query_one(JobsView)
        out["rows"] = jobs.table.row_count
        for view in ("2", "1", "4"):
            await pilot.press(view)
            await pilot.pause()
            clock.reset()
            clock.recording = True
            sent = await stream.run(rate, seconds)
            clock.recording = False
            out[view] = (list(clock.flushes), list(clock.paints), list(clock.frames), sent)
        out["live_jobs"] = len(app.desk.jobs)
        out["events"] = app.desk.events_seen
    return out


class NaiveTable(App[None]):
    """The naive dashboard table: a DataTable cleared and re-filled on every flush."""

    def __init__(self) -> None:
        super().__init__()
        self.animation_level = "none"
        self.paints: list[float] = []

    def compose(self) -> ComposeResult:
        yield DataTable()

    def on_mount(self) -> None:
        table = self.query_one(DataTable)
        for column in COLUMNS:
            table.add_column(column.label, key=column.key, width=column.width)
        screen = self.screen
        update = screen._on_timer_update

        def timed_update() -> None:
            started = time.perf_counter()
            update()
            self.paints.append(time.perf_counter() - started)

        screen._on_timer_update = timed_update  # type: ignore[method-assign]


async def naive_baseline(n_jobs: int, shown: int) -> tuple[list[float], list[float], float]:
    """Clear and re-add the rows on every flush (no keys, no diff): rebuild and repaint times."""
    daemon, _, _ = recorded_desk(n_jobs)
    jobs = msgspec.convert(daemon._messages[0]["state"]["jobs"], list[s.JobRow])
    now = recording.DESK_NOW
    app = NaiveTable()
    async with app.run_test(size=SIZE) as pilot:
        table = app.query_one(DataTable)

        def rebuild(rows: list[s.JobRow]) -> float:
            started = time.perf_counter()
            with app.batch_update():
                table.clear()
                for job in rows:
                    cells = static_cells(job) | time_cells(job, now)
                    table.add_row(Text(job.job_id[-8:]), *(cells[c] for c in COLUMN_KEYS[1:]))
            return time.perf_counter() - started

        capped: list[float] = []
        paints: list[float] = []  # per rebuild: every screen update it caused
        for offset in range(10):
            app.paints.clear()
            capped.append(rebuild(jobs[offset : offset + shown]))
            await pilot.pause(0.05)
            paints.append(sum(app.paints))
        everything = rebuild(jobs)
        await pilot.pause()
    return capped, paints, everything


def start_daemon(root: Path) -> tuple[subprocess.Popen[bytes], Path]:
    return start_bench_daemon(root, DAEMON_CONFIG)


def request(i: int) -> dict[str, Any]:
    return {
        "source_url": f"{HELD_SOURCE}/chains/SPX.json?i={i}",
        "data_type": ("real_time", "snapshot", "historical")[i % 3],
        "market_symbol": ("SPX", "NDX", "SPY")[i % 3],
        "metadata": {"open_interest": 1000 + i % 30000, "volume": i % 9000},
    }


async def daemon_run(n_jobs: int, rate: float, seconds: float) -> dict[str, Any]:
    root = Path(tempfile.mkdtemp(prefix="gxt-"))
    proc, sock = start_daemon(root)
    out: dict[str, Any] = {}
    try:
        async with AsyncClient(sock, timeout=120) as gexd:
            await gexd.submit(request(0))
            await gexd.set_source_active("127.0.0.1:9", False)
            for start in range(1, n_jobs, 5000):
                await gexd.submit([request(i) for i in range(start, min(n_jobs, start + 5000))])
            out["held"] = sum(level["depth"] for level in (await gexd.queues())["levels"])
            for initial in ("overview", "jobs"):
                app = TimedTui(AsyncClient(sock, timeout=30), initial_view=initial)
                clock = app.frame_clock
                async with app.run_test(size=SIZE) as pilot:
                    await wait_for(lambda c=clock: c.first_data_paint_at is not None, pilot)
                    out[f"attach_to_paint_{initial}"] = (
                        clock.first_data_paint_at - clock.attached_at
                    )  # type: ignore[operator]
                    if initial != "jobs":
                        continue
                    clock.reset()
                    clock.recording = True
                    sent = 0
                    started = time.perf_counter()
                    while (elapsed := time.perf_counter() - started) < seconds:
                        due = int(elapsed * rate)
                        if due > sent:
                            await gexd.submit(
                                [request(n_jobs + sent + k) for k in range(due - sent)]
                            )
                            sent = due
                        await pilot.pause(0.02)
                    clock.recording = False
                    out["flushes"], out["paints"], out["frames"] = (
                        clock.flushes,
                        clock.paints,
                        clock.frames,
                    )
                    out["sent"] = sent
                    out["live_jobs_seen"] = len(app.desk.jobs)
                    link = app.desk.link
                    out["link"] = (link.connects, link.resyncs, link.gaps)
                    out["events"] = app.desk.events_seen
    finally:
        proc.terminate()
        proc.wait(timeout=60)
        shutil.rmtree(root, ignore_errors=True)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--jobs", type=int, default=10_000)
    ap.add_argument(
        "--rate", type=float, default=200.0, help="events (recorded) or submits (daemon) per second"
    )
    ap.add_argument("--seconds", type=float, default=8.0)
    ap.add_argument("--no-daemon", action="store_true", help="skip (c), the real daemon")
    args = report_arguments(ap, "3 s per view")
    if args.quick:
        args.seconds = 3.0
    print(describe(("textual", "rich", "aiohttp", "msgspec")))
    print(
        f"terminal {SIZE[0]}x{SIZE[1]} (headless), refresh 4 Hz, live table capped at {ROW_CAP} rows\n"
    )

    recorded = asyncio.run(recorded_run(args.jobs, args.rate, args.seconds))
    print(
        f"(a) recorded desk: {args.jobs:,} queued jobs, {args.rate:g} events/s for {args.seconds:g} s per view"
    )
    print(
        f"  first paint after the snapshot      {ms(recorded['attach_to_paint'])}   (target < 100 ms)"
    )
    print(f"  app start to first paint with data  {ms(recorded['start_to_paint'])}")
    print(
        f"  key 2 to Jobs drawn ({recorded['rows']} rows)  {ms(recorded['switch_to_jobs'])}"
        "   (through Pilot, its own waits included)"
    )
    for view, name in (("2", "Jobs"), ("1", "Overview"), ("4", "GEX")):
        flushes, paints, frames, sent = recorded[view]
        print(f"  {name} view, {sent:,} events:")
        print(summary("flush (state -> widgets)", flushes))
        print(summary("screen update after a flush", paints))
        print(summary("frame (flush + screen update)", frames))
    print(
        f"  live jobs at the end {recorded['live_jobs']:,}, events applied {recorded['events']:,}"
    )

    capped, naive_paints, everything = asyncio.run(naive_baseline(args.jobs, ROW_CAP))
    jobs_flush = statistics.median(recorded["2"][0])
    jobs_frame = statistics.median(recorded["2"][2])
    print("\n(b) baseline: the naive table (a DataTable cleared and re-filled every flush)")
    print(summary(f"re-add the {ROW_CAP} shown rows", capped))
    print(summary("screen updates after it", naive_paints))
    print(f"  re-add all {args.jobs:,} rows once            {ms(everything)}")
    jobs_frame = statistics.median(recorded["2"][2])
    naive_frame = statistics.median([r + p for r, p in zip(capped, naive_paints, strict=True)])
    print(
        f"  ratios: naive frame / our Jobs frame {naive_frame / jobs_frame:.1f}x, naive rebuild / "
        f"our Jobs flush {statistics.median(capped) / jobs_flush:.1f}x, all-rows rebuild / our "
        f"Jobs flush {everything / jobs_flush:.0f}x"
    )

    live: dict[str, Any] | None = None
    if not args.no_daemon:
        live = asyncio.run(daemon_run(args.jobs, min(args.rate, 100.0), args.seconds))
        print(
            f"\n(c) real daemon: {live['held']:,} queued jobs held, {live['sent']:,} submits during the measurement"
        )
        print(
            f"  attach to first paint, Overview     {ms(live['attach_to_paint_overview'])}   (target < 100 ms)"
        )
        print(
            f"  attach to first paint, Jobs         {ms(live['attach_to_paint_jobs'])}   (target < 100 ms)"
        )
        print(summary("Jobs flush (state -> widgets)", live["flushes"]))
        print(summary("Jobs frame (flush + update)", live["frames"]))
        print(
            f"  live jobs on the desk {live['live_jobs_seen']:,} (2,000 from the snapshot + new), events {live['events']:,}"
        )
        connects, resyncs, gaps = live["link"]
        print(f"  link: {connects} attach(es), {resyncs} resync(s), {gaps} gap(s)")

    print("\nsummary")
    flushes = recorded["2"][0]
    print(
        f"  Jobs flush median {ms(statistics.median(flushes))}, worst {ms(max(flushes))}  (target: worst <= 50 ms)"
    )
    print(
        f"  Jobs frame median {ms(statistics.median(recorded['2'][2]))}, worst {ms(max(recorded['2'][2]))}"
    )
    print(
        f"  first paint after attach {ms(recorded['attach_to_paint'])} recorded"
        + (f", {ms(live['attach_to_paint_jobs'])} real daemon (Jobs view)" if live else "")
        + "  (target < 100 ms)"
    )
    every_flush = [f for view in ("2", "1", "4") for f in recorded[view][0]]
    print(
        f"  worst flush over every view {ms(max(every_flush))}, median {ms(statistics.median(every_flush))}"
        "  (target worst <= 50 ms)"
    )
    if args.json:
        print(
            json.dumps(
                {
                    "tui": {
                        "flush_worst_ms": round(max(every_flush) * 1000, 1),
                        "flush_median_ms": round(statistics.median(every_flush) * 1000, 1),
                        "jobs_flush_worst_ms": round(max(flushes) * 1000, 1),
                        "first_paint_ms": round(recorded["attach_to_paint"] * 1000, 1),
                        "jobs": args.jobs,
                    }
                }
            )
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
